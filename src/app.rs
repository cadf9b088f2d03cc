//! Wiring: parse, gather facts, analyse, render, and map the outcome to an exit code.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};

use crate::analyze::findings::Severity;
use crate::analyze::{analyze, PortEntry};
use crate::cli::{Cli, Command, DebugCommand};
use crate::config::{Global, Scan, UsageError};
use crate::model::Snapshot;
use crate::report;

/// Exit statuses (documented in the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success, nothing to report.
    Ok = 0,
    /// Leaks found (with `--check`), or an action failed; also any runtime error.
    Problem = 1,
    /// Usage error.
    Usage = 2,
    /// The engine could not be reached by a command that needs it.
    EngineUnreachable = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Runs portreap with the process arguments and returns its exit status. Errors are
/// printed here, one line each.
pub fn run() -> Exit {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    match dispatch(cli) {
        Ok(exit) => exit,
        Err(e) if is_broken_pipe(&e) => Exit::Ok,
        Err(e) => match e.downcast_ref::<UsageError>() {
            Some(usage) => {
                crate::messages::stderr_line(&format!("portreap: {usage}"));
                Exit::Usage
            }
            None => {
                crate::messages::stderr_line(&format!("portreap: error: {e:#}"));
                Exit::Problem
            }
        },
    }
}

/// clap's help and version go to stdout as usual; its errors are cut to their first line,
/// so every usage error is one line on stderr.
fn clap_error(e: clap::Error) -> Exit {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            Exit::Ok
        }
        _ => {
            let rendered = e.render().to_string();
            let mut lines = rendered.lines().skip_while(|l| l.trim().is_empty());
            let mut line = lines
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_owned();
            // "the following required arguments were not provided:" lists them below.
            if line.ends_with(':') {
                let listed: Vec<&str> = lines
                    .take_while(|l| l.starts_with(' '))
                    .map(str::trim)
                    .collect();
                line = format!("{line} {}", listed.join(", "));
            }
            crate::messages::stderr_line(&format!("portreap: {line}"));
            Exit::Usage
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    crate::messages::set(cli.global.quiet, cli.global.verbose);
    let global = Global::new(&cli.global)?;
    if cli.command.is_some() && cli.scan.any() {
        return Err(UsageError(
            "scan options (--all, --json, --check, --port) go after the subcommand, or use them without one".into(),
        )
        .into());
    }
    match cli.command {
        None => scan(&global, &Scan::new(&cli.scan)),
        Some(Command::Scan(args)) => scan(&global, &Scan::new(&args)),
        Some(Command::Prune(args)) => act(
            &global,
            &crate::config::Act::new(&args.act)?,
            &crate::config::Verb::prune(
                &args,
                crate::settings::load(global.config.as_deref())?.as_ref(),
            )?,
        ),
        Some(Command::Free(args)) => act(
            &global,
            &crate::config::Act::new(&args.act)?,
            &crate::config::Verb::free(&args),
        ),
        Some(Command::Why(args)) => why(&global, &args),
        Some(Command::Metrics(args)) => metrics(&global, &args),
        Some(Command::Baseline(crate::cli::BaselineCommand::Save { file })) => {
            if let Some(why) = crate::safe_file::refuse(&file) {
                return Err(UsageError(why).into());
            }
            let snapshot = gather(&global, crate::host::Owners::All)?;
            if !snapshot.engines_complete() {
                crate::messages::stderr_line(&format!(
                    "portreap: a baseline needs the engine's whole answer ({})",
                    report::table::engine_line(&snapshot)
                ));
                return Ok(Exit::EngineUnreachable);
            }
            let baseline = crate::prune::baseline::record(&snapshot);
            let mut text = serde_json::to_string_pretty(&baseline)?;
            text.push('\n');
            crate::safe_file::write(&file, text.as_bytes())
                .with_context(|| format!("cannot write the baseline to {}", file.display()))?;
            crate::messages::note(&format!(
                "baseline: {} containers, {} processes holding sockets, saved to {}",
                baseline.containers.len(),
                baseline.processes.len(),
                file.display()
            ));
            Ok(Exit::Ok)
        }
        Some(Command::Config) => {
            let loaded = crate::settings::load(global.config.as_deref())?;
            let (_, settings) = crate::config::prune_filters(None, loaded.as_ref())?;
            let mut text = match &loaded {
                Some(l) => format!("config file: {}\n", l.path.display()),
                None => "config file: none\n".to_owned(),
            };
            for s in settings {
                text.push_str(&format!(
                    "prune.{:<18} {:<36} ({})\n",
                    s.name, s.value, s.source
                ));
            }
            write_stdout(&text)?;
            Ok(Exit::Ok)
        }
        Some(Command::Completions { shell }) => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "portreap", &mut out);
            write_stdout(&String::from_utf8_lossy(&out))?;
            Ok(Exit::Ok)
        }
        Some(Command::Man) => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            write_stdout(&String::from_utf8_lossy(&out))?;
            Ok(Exit::Ok)
        }
        Some(Command::Debug(DebugCommand::Panic)) => {
            panic!("deliberate panic (portreap debug panic)")
        }
        Some(Command::Debug(DebugCommand::Snapshot)) => {
            let snapshot = gather(&global, crate::host::Owners::All)?;
            let mut text = serde_json::to_string_pretty(&snapshot)?;
            text.push('\n');
            write_stdout(&text)?;
            Ok(Exit::Ok)
        }
    }
}

/// Reads the host and asks the engine at the same time: the engine round trips and the
/// `/proc` walk are independent.
fn gather(global: &Global, owners: crate::host::Owners<'_>) -> anyhow::Result<Snapshot> {
    if let Some(path) = &global.snapshot {
        let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        return serde_json::from_slice(&raw)
            .with_context(|| format!("{} is not a portreap snapshot", path.display()));
    }
    // Every engine is asked at once with the host walk, so the engines to ask must be
    // known first: a quick look at the process table's names, only when all are asked.
    let found = if global.all_engines {
        crate::host::engines::discover_all(&global.proc_root)
    } else {
        Vec::new()
    };
    let (host, engines) = std::thread::scope(|scope| {
        let host = scope.spawn(|| {
            let start = std::time::Instant::now();
            let host = crate::host::collect(&global.proc_root, owners);
            if let Ok(h) = &host {
                crate::messages::detail(&format!(
                    "host: {} sockets, {} owning processes, {} unreadable, in {:.1} ms",
                    h.sockets.len(),
                    h.processes.len(),
                    h.unreadable_processes,
                    start.elapsed().as_secs_f64() * 1e3
                ));
            }
            host
        });
        let start = std::time::Instant::now();
        let engines =
            crate::engine::collect_all(global.endpoints(&found), global.timeout, owners.ports());
        for e in &engines {
            crate::messages::detail(&format!(
                "engine: {} containers from {} in {:.1} ms",
                e.containers.len(),
                if e.status.endpoint.is_empty() {
                    "nowhere"
                } else {
                    &e.status.endpoint
                },
                start.elapsed().as_secs_f64() * 1e3
            ));
        }
        (host.join(), engines)
    });
    let mut host = match host {
        Ok(host) => host?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let taken_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    let mut engines = engines.into_iter();
    let first = engines
        .next()
        .unwrap_or_else(|| crate::engine::EngineFacts {
            status: crate::model::EngineStatus::default(),
            containers: Vec::new(),
        });
    if global.all_engines {
        crate::host::engines::merge(&mut host, found);
        host.engines_searched = true;
    }
    let mut first_status = first.status;
    crate::host::engines::prove(&mut first_status, &mut host, &global.proc_root);
    let mut containers = first.containers;
    let mut others = Vec::new();
    for mut e in engines {
        crate::host::engines::prove(&mut e.status, &mut host, &global.proc_root);
        containers.extend(e.containers);
        others.push(e.status);
    }
    // A host-network container's processes are told from impostors by its main process.
    let main_pids: Vec<u32> = containers
        .iter()
        .filter(|c| c.is_host_network())
        .filter_map(|c| c.pid)
        .collect();
    crate::host::read_processes(&mut host, &global.proc_root, &main_pids);
    if matches!(owners, crate::host::Owners::Forwarders) {
        // A plain process on a port some container asks for must be named: walk the
        // skipped processes for those sockets only.
        let asked: std::collections::HashSet<(crate::model::Proto, u16)> = containers
            .iter()
            .flat_map(|c| {
                let live = c.live.iter().map(|b| (b.proto, b.host_port));
                let requested = c.requested.iter().flat_map(|r| {
                    r.host_ports
                        .into_iter()
                        .flat_map(move |range| (range.start..=range.end).map(move |p| (r.proto, p)))
                });
                live.chain(requested).collect::<Vec<_>>()
            })
            .collect();
        crate::host::resolve_more(&mut host, &global.proc_root, |s| {
            asked.contains(&(s.proto, s.port))
        });
    }
    Ok(Snapshot {
        taken_at,
        host,
        fs: crate::host::compose::compose_facts(
            &containers,
            &std::iter::once(&first_status)
                .chain(&others)
                .map(|e| {
                    (
                        e,
                        crate::host::compose::Roots::new(&global.host_root, &global.proc_root, e),
                    )
                })
                .collect::<Vec<_>>(),
        ),
        engine: first_status,
        engines: others,
        containers,
    })
}

fn scan(global: &Global, options: &Scan) -> anyhow::Result<Exit> {
    // The default view shows Docker's ports only, and needs only their owners.
    let owners = match (&options.ports, options.all) {
        (Some(spec), _) => crate::host::Owners::OnPorts(spec),
        (None, true) => crate::host::Owners::All,
        (None, false) => crate::host::Owners::Forwarders,
    };
    let snapshot = gather(global, owners)?;
    let analysis = analyze(&snapshot);
    let keep = |p: &PortEntry| match &options.ports {
        Some(spec) => spec.matches(p.proto, p.port),
        None => options.all || p.involves_docker(),
    };
    if options.json {
        let mut out = io::BufWriter::new(io::stdout().lock());
        report::json::write_scan(&mut out, &snapshot, &analysis, keep)?;
        out.flush()?;
    } else {
        write_human(&report::table::scan(
            &snapshot,
            &analysis,
            keep,
            options.style,
            match (&options.ports, options.all) {
                (Some(_), _) => "Nothing holds those ports.",
                (None, true) => "No listening sockets.",
                (None, false) => "No port involves Docker (--all lists every socket).",
            },
        ))?;
        crate::messages::note(&report::table::engine_line(&snapshot));
        if let (false, Some(note)) = (snapshot.fs.visible, &snapshot.fs.note) {
            crate::messages::note(&format!("note: {note}"));
        }
        for (path, error) in &snapshot.fs.unjudged {
            crate::messages::note(&format!(
                "note: compose path {path} could not be checked ({error}); its project is not judged"
            ));
        }
    }
    let leak_found = analysis.findings.iter().any(|f| {
        f.severity == Severity::Leak
            && options
                .ports
                .as_ref()
                .is_none_or(|spec| f.ports.iter().any(|p| spec.matches(p.proto, p.port)))
    });
    Ok(if options.check && leak_found {
        Exit::Problem
    } else {
        Exit::Ok
    })
}

/// `metrics`: once to stdout or a file, or for ever with `--every`. An unreachable engine
/// is a metric, not a failure; a file that cannot be written is.
fn metrics(global: &Global, args: &crate::cli::MetricsArgs) -> anyhow::Result<Exit> {
    if let Some(why) = args.output.as_deref().and_then(crate::safe_file::refuse) {
        return Err(UsageError(why).into());
    }
    loop {
        let start = std::time::Instant::now();
        let owners = if args.all {
            crate::host::Owners::All
        } else {
            crate::host::Owners::Forwarders
        };
        let snapshot = gather(global, owners)?;
        let analysis = analyze(&snapshot);
        let run = report::metrics::Run {
            elapsed: start.elapsed(),
            all: args.all,
        };
        let text = report::metrics::render(&snapshot, &analysis, &run);
        match &args.output {
            Some(path) => crate::safe_file::write_public(path, text.as_bytes())
                .with_context(|| format!("cannot write the metrics to {}", path.display()))?,
            None => write_stdout(&text)?,
        }
        match args.every {
            Some(every) => std::thread::sleep(every.saturating_sub(start.elapsed())),
            None => return Ok(Exit::Ok),
        }
    }
}

/// Writes human output through the last guard against escapes from outside text.
fn write_human(text: &str) -> anyhow::Result<()> {
    write_stdout(&report::safe::text(text))
}

/// Writes JSON, completions and the man page as they are.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Prints a line of human output: to stdout normally, to stderr (a note, silenced by
/// `-q`) when stdout carries JSON.
/// A reader of stdout that went away is not a failure of the action being reported.
fn say(json: bool, text: &str) {
    if json {
        crate::messages::note(text);
    } else {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{}", report::safe::text(text));
        let _ = out.flush();
    }
}

fn confirm() -> bool {
    use std::io::{BufRead, IsTerminal};
    if !(io::stdin().is_terminal() && io::stderr().is_terminal()) {
        return false;
    }
    {
        use std::io::Write;
        let mut err = io::stderr().lock();
        let _ = write!(err, "Proceed? [y/N] ");
        let _ = err.flush();
    }
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer).is_ok()
        && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// `prune` and `free`: lock, gather, plan, confirm, re-check and act, verify.
fn act(
    global: &Global,
    options: &crate::config::Act,
    verb: &crate::config::Verb,
) -> anyhow::Result<Exit> {
    use crate::config::Verb;
    use crate::prune::{execute, Outcome, Report};
    use std::io::IsTerminal;

    if global.snapshot.is_some() && !options.dry_run {
        return Err(UsageError("--snapshot only works with --dry-run".into()).into());
    }
    // Lock before gathering facts: a second run plans from what the first left.
    let lock = if options.dry_run {
        None
    } else {
        match crate::prune::lock::acquire_default(options.wait) {
            Ok(lock) => Some(lock),
            Err(e) => {
                crate::messages::stderr_line(&format!("portreap: {e}"));
                return Ok(Exit::Problem);
            }
        }
    };
    // Held until every action is done; waiting for TIME_WAIT to clear acts on nothing, and
    // must not keep every other prune and free waiting for up to a minute.
    let lock = std::cell::Cell::new(lock);
    // Read what the verb can act on: prune acts on findings, which the forwarders' view
    // gives exactly (tests/scan_engine.rs); free on the holders of its ports; a baseline
    // cleanup on any holder.
    let owners = match verb {
        Verb::Prune(_) => crate::host::Owners::Forwarders,
        Verb::Free { ports, .. } => crate::host::Owners::OnPorts(ports),
        Verb::Since { .. } => crate::host::Owners::All,
    };
    let snapshot = gather(global, owners)?;
    if !snapshot.engines_complete() {
        crate::messages::stderr_line(&format!(
            "portreap: acting needs the engine's whole answer ({})",
            report::table::engine_line(&snapshot)
        ));
        return Ok(Exit::EngineUnreachable);
    }
    let analysis = analyze(&snapshot);
    let plan = match verb {
        Verb::Prune(filters) => crate::prune::plan(&snapshot, &analysis, filters),
        Verb::Since {
            baseline,
            kill_processes,
            filters,
        } => crate::prune::baseline::plan_since(
            &snapshot,
            &analysis,
            baseline,
            *kill_processes,
            filters,
        ),
        Verb::Free {
            ports,
            kill_processes,
            ..
        } => crate::prune::plan::plan_free(
            &snapshot,
            &analysis,
            ports,
            crate::prune::plan::FreeOptions {
                kill_processes: *kill_processes,
                stop_only: options.stop_only,
                // SAFETY: geteuid has no preconditions.
                euid: unsafe { libc::geteuid() },
            },
        ),
    };
    // `free` succeeds when the named ports are free, whatever was planned; with
    // --until-free it waits for that (TIME_WAIT lets go on its own).
    let named_ports_free = || -> Vec<(crate::model::Proto, u16, bool)> {
        match verb {
            Verb::Free {
                ports, until_free, ..
            } => {
                if until_free.is_some() {
                    drop(lock.take());
                }
                wait_until_free(&named_ports(ports), *until_free, options.json)
            }
            Verb::Prune(_) | Verb::Since { .. } => Vec::new(),
        }
    };
    let emit = |reports: &[Report],
                dry_run: bool,
                free: &[(crate::model::Proto, u16, bool)]|
     -> anyhow::Result<()> {
        if options.json || options.report.is_some() {
            let doc = report::prune::json(&snapshot, &plan, reports, dry_run);
            let mut doc: serde_json::Value = serde_json::from_str(&doc)?;
            if let Verb::Free { .. } = verb {
                doc["ports_free"] = free
                    .iter()
                    .map(|(proto, port, free)| serde_json::json!({"proto": proto.as_str(), "port": port, "free": free}))
                    .collect();
            }
            let mut text = serde_json::to_string_pretty(&doc)?;
            text.push('\n');
            // The file first: a reader that went away must not cost the report.
            if let Some(path) = &options.report {
                crate::safe_file::write(path, text.as_bytes())
                    .with_context(|| format!("cannot write the report to {}", path.display()))?;
            }
            if options.json {
                // Nobody reads stdout any more: the report and the exit status still
                // say what happened.
                match write_stdout(&text) {
                    Err(e) if is_broken_pipe(&e) => {}
                    other => other?,
                }
            }
        }
        if let Some((path, append)) = &options.summary {
            let title = match verb {
                Verb::Prune(_) | Verb::Since { .. } => "prune",
                Verb::Free { .. } => "free",
            };
            let text = report::prune::markdown(&snapshot, &plan, reports, dry_run, title);
            let written = if *append {
                crate::safe_file::append(path, text.as_bytes())
            } else {
                crate::safe_file::write(path, text.as_bytes())
            };
            written.with_context(|| format!("cannot write the summary to {}", path.display()))?;
        }
        Ok(())
    };
    let verdict = |reports: &[Report], free: &[(crate::model::Proto, u16, bool)]| -> Exit {
        let ok = match verb {
            Verb::Prune(_) | Verb::Since { .. } => {
                reports.iter().all(|r| r.outcome == Outcome::Done)
            }
            Verb::Free { .. } => free.iter().all(|(_, _, f)| *f),
        };
        if ok {
            Exit::Ok
        } else {
            Exit::Problem
        }
    };

    let nothing = match verb {
        Verb::Prune(_) | Verb::Since { .. } => "Nothing to prune.",
        Verb::Free { .. } => "Nothing to act on.",
    };
    let plan_text = report::prune::plan_text(&snapshot, &plan, nothing);
    if options.json {
        crate::messages::note(plan_text.trim_end());
    } else {
        write_human(&plan_text)?;
    }
    if plan.actions.is_empty() {
        let free = named_ports_free();
        emit(&[], options.dry_run, &free)?;
        report_named_ports(global, options.json, &free);
        return Ok(verdict(&[], &free));
    }
    if options.dry_run {
        emit(&execute::dry_run(&plan), true, &named_ports_free())?;
        return Ok(Exit::Problem);
    }
    if !options.yes {
        if !(io::stdin().is_terminal() && io::stderr().is_terminal()) {
            crate::messages::stderr_line(
                "portreap: not acting: no terminal to confirm on; pass --yes to act",
            );
            emit(&execute::dry_run(&plan), true, &named_ports_free())?;
            return Ok(Exit::Problem);
        }
        if !confirm() {
            crate::messages::stderr_line("portreap: not acting.");
            return Ok(Exit::Problem);
        }
    }
    if let Some(delay) = options.act_delay {
        crate::messages::note(&format!("portreap: waiting {delay:?} before acting"));
        std::thread::sleep(delay);
    }
    // One connection per engine queried, in the snapshot's order (containers carry it).
    let engines = snapshot
        .all_engines()
        .map(|e| {
            let endpoint = crate::engine::endpoint::Endpoint {
                url: e.endpoint.clone(),
                source: e.source.clone(),
            };
            crate::engine::Client::connect(&endpoint, global.timeout)
                .map_err(|e| anyhow::anyhow!(e))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let system = crate::prune::system::System {
        engines,
        proc_root: global.proc_root.clone(),
        roots: snapshot
            .all_engines()
            .map(|e| crate::host::compose::Roots::new(&global.host_root, &global.proc_root, e))
            .collect(),
    };
    let timing = crate::prune::Timing {
        grace: options.grace,
        settle: std::time::Duration::from_secs(3),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let started = std::time::Instant::now();
    let reports = runtime.block_on(crate::prune::execute(&system, &plan, timing, |r| {
        if options.log_json {
            crate::messages::stderr_json(&report::prune::log_line(r));
        } else {
            say(options.json, &report::prune::progress_line(r));
        }
    }));
    crate::messages::detail(&format!(
        "acted: {} actions in {:.1} ms",
        reports.len(),
        started.elapsed().as_secs_f64() * 1e3
    ));
    say(options.json, &report::prune::summary(&reports));
    let free = named_ports_free();
    report_named_ports(global, options.json, &free);
    emit(&reports, false, &free)?;
    Ok(verdict(&reports, &free))
}

/// The (protocol, port) pairs a spec names; a port without protocol names both.
fn named_ports(spec: &crate::portspec::PortSpec) -> Vec<(crate::model::Proto, u16)> {
    use crate::model::Proto;
    let mut out = Vec::new();
    for sel in &spec.0 {
        let protos: &[Proto] = match sel.proto {
            Some(Proto::Tcp) => &[Proto::Tcp],
            Some(Proto::Udp) => &[Proto::Udp],
            None => &[Proto::Tcp, Proto::Udp],
        };
        for port in sel.range.start..=sel.range.end {
            for proto in protos {
                if !out.contains(&(*proto, port)) {
                    out.push((*proto, port));
                }
            }
        }
    }
    out
}

/// Free on every address: binds on 0.0.0.0 and on :: both succeed.
fn port_is_free(proto: crate::model::Proto, port: u16) -> bool {
    ["0.0.0.0", "::"].iter().all(|ip| {
        crate::prune::system::probe(&crate::analyze::findings::PortRef {
            proto,
            // Both literals above are valid addresses.
            ip: ip.parse().expect("literal address"),
            port,
        })
    })
}

/// Whether each port is free now, waiting at most `until` for all of them to be.
fn wait_until_free(
    ports: &[(crate::model::Proto, u16)],
    until: Option<std::time::Duration>,
    json: bool,
) -> Vec<(crate::model::Proto, u16, bool)> {
    let check = || -> Vec<(crate::model::Proto, u16, bool)> {
        ports
            .iter()
            .map(|&(proto, port)| (proto, port, port_is_free(proto, port)))
            .collect()
    };
    let mut now = check();
    let Some(until) = until else { return now };
    let started = std::time::Instant::now();
    let mut said = false;
    while now.iter().any(|(_, _, free)| !free) && started.elapsed() < until {
        if !said {
            say(
                json,
                &format!(
                    "Waiting up to {}s for the ports to be free...",
                    until.as_secs()
                ),
            );
            said = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        now = check();
    }
    if said {
        crate::messages::detail(&format!("waited {:.1}s", started.elapsed().as_secs_f64()));
    }
    now
}

fn report_named_ports(global: &Global, json: bool, free: &[(crate::model::Proto, u16, bool)]) {
    let held: Vec<(crate::model::Proto, u16)> = free
        .iter()
        .filter(|(_, _, f)| !f)
        .map(|&(proto, port, _)| (proto, port))
        .collect();
    if free.is_empty() {
        return;
    }
    if held.is_empty() {
        say(json, "All named ports are free.");
        return;
    }
    let names: Vec<String> = held
        .iter()
        .map(|(proto, port)| format!("{port}/{proto}"))
        .collect();
    say(json, &format!("Still held: {}.", names.join(", ")));
    for line in held_by_now(global, &held) {
        say(json, &format!("  {line}"));
    }
}

/// Who holds `ports` now, read afresh: the answer is the kernel's, never a guess that
/// the engine reserves them.
fn held_by_now(global: &Global, ports: &[(crate::model::Proto, u16)]) -> Vec<String> {
    use crate::portspec::{PortRange, PortSel, PortSpec};
    let spec = PortSpec(
        ports
            .iter()
            .map(|&(proto, port)| PortSel {
                proto: Some(proto),
                range: PortRange {
                    start: port,
                    end: port,
                },
            })
            .collect(),
    );
    let Ok(host) = crate::host::collect(&global.proc_root, crate::host::Owners::OnPorts(&spec))
    else {
        return Vec::new();
    };
    let snapshot = crate::model::Snapshot {
        host,
        ..crate::model::Snapshot::default()
    };
    ports
        .iter()
        .map(|&(proto, port)| report::bind::held_now(&snapshot, proto, port))
        .collect()
}

fn why(global: &Global, args: &crate::cli::WhyArgs) -> anyhow::Result<Exit> {
    let spec = crate::portspec::PortSpec(
        args.ports
            .iter()
            .flat_map(|s| s.0.iter().copied())
            .collect(),
    );
    // A container's ports are known only once the engine answered: every owner then.
    let owners = if args.container.is_some() {
        crate::host::Owners::All
    } else {
        crate::host::Owners::OnPorts(&spec)
    };
    let snapshot = gather(global, owners)?;
    let analysis = analyze(&snapshot);
    if let Some(name) = &args.container {
        let wanted = name.trim_start_matches('/');
        let Some(index) = snapshot
            .containers
            .iter()
            .position(|c| c.name == wanted || (wanted.len() >= 4 && c.id.starts_with(wanted)))
        else {
            let why = if snapshot.engine.reachable {
                format!("no container named '{wanted}'")
            } else {
                format!(
                    "cannot look up container '{wanted}': {}",
                    report::table::engine_line(&snapshot)
                )
            };
            return Err(UsageError(why).into());
        };
        if args.json {
            let c = &snapshot.containers[index];
            let spec = crate::portspec::PortSpec(
                c.requested
                    .iter()
                    .filter_map(|r| {
                        r.host_ports.map(|range| crate::portspec::PortSel {
                            range,
                            proto: Some(r.proto),
                        })
                    })
                    .collect(),
            );
            return why_json(&snapshot, &analysis, &spec);
        }
        write_human(&report::why::container_text(&snapshot, &analysis, index))?;
        return Ok(Exit::Ok);
    }
    if args.json {
        return why_json(&snapshot, &analysis, &spec);
    }
    let asked = report::why::asked_ports(&snapshot, &analysis, &spec);
    if asked.is_empty() {
        write_human("Nothing holds or wants those ports.\n")?;
    } else {
        write_human(&report::why::text(&snapshot, &analysis, &asked))?;
    }
    Ok(Exit::Ok)
}

fn why_json(
    snapshot: &Snapshot,
    analysis: &crate::analyze::Analysis,
    spec: &crate::portspec::PortSpec,
) -> anyhow::Result<Exit> {
    let asked = report::why::asked_ports(snapshot, analysis, spec);
    let scan = report::json::scan(snapshot, analysis, |p| spec.matches(p.proto, p.port));
    let mut doc: serde_json::Value = serde_json::from_str(&scan)?;
    doc["why"] = report::why::json_section(snapshot, analysis, &asked);
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    write_stdout(&text)?;
    Ok(Exit::Ok)
}
