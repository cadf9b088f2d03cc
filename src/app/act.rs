//! `prune` and `free`: lock, gather, plan, show the plan, confirm, re-check and act,
//! verify, report. Each step is one function below; [`act`] reads as the list of them.

use std::cell::Cell;
use std::io::{self, IsTerminal};

use anyhow::Context as _;

use super::free::{named_ports, report_named_ports, wait_until_free};
use super::output::{confirm, say, write_human, write_stdout};
use super::{is_broken_pipe, Exit};
use crate::act::lock::Lock;
use crate::act::{execute, Outcome, Report};
use crate::analyze::{analyze, Analysis};
use crate::config::{Act, Global, UsageError, Verb};
use crate::facts::gather_to_act;
use crate::model::{Proto, Snapshot};
use crate::plan::Plan;
use crate::report;
use crate::report::prune::Layout;

/// Whether each named port of `free` is free after acting.
type PortsFree = Vec<(Proto, u16, bool)>;

/// Runs `prune` or `free` (`verb`) with the shared options.
pub(super) fn act(global: &Global, options: &Act, verb: &Verb) -> anyhow::Result<Exit> {
    if global.snapshot.is_some() && !options.dry_run {
        return Err(UsageError("--snapshot only works with --dry-run".into()).into());
    }
    // Lock before gathering facts: a second run plans from what the first left.
    let lock = match lock(options) {
        Ok(lock) => lock,
        Err(exit) => return Ok(exit),
    };
    let since = matches!(verb, Verb::Since { .. });
    let mut snapshot = gather_to_act(global, owners(verb), since)?;
    if since {
        crate::host::read_holders_lineage(&mut snapshot.host, &global.proc_root);
    }
    if !snapshot.engines_complete() {
        crate::messages::stderr_line(&format!(
            "portreap: acting needs the engine's whole answer ({})",
            report::table::engine_line(&snapshot)
        ));
        return Ok(Exit::EngineUnreachable);
    }
    let jobs = since_jobs(global, &snapshot, verb)?;
    let analysis = analyze(&snapshot);
    let plan = plan(&snapshot, &analysis, verb, options, jobs.as_ref());
    let run = Run {
        global,
        options,
        verb,
        snapshot: &snapshot,
        plan: &plan,
        lock: Cell::new(lock),
    };
    run.show_plan()?;
    if plan.actions.is_empty() {
        run.cleanup_done();
        return run.finish(&[], options.dry_run);
    }
    if options.dry_run {
        run.emit(&execute::dry_run(&plan), true, &run.named_ports_free())?;
        return Ok(Exit::Problem);
    }
    if let Some(refused) = run.consent()? {
        return Ok(refused);
    }
    let reports = run.execute()?;
    run.cleanup_done();
    say(options.json, &report::prune::summary(&reports));
    run.finish(&reports, false)
}

/// For a baseline's cleanup, what it knows of the jobs on this host (see
/// [`crate::act::jobs`]); the engines asked must be ones the baseline was saved against
/// (with `--all-engines`, the others' containers are only kept).
fn since_jobs(
    global: &Global,
    snapshot: &Snapshot,
    verb: &Verb,
) -> anyhow::Result<Option<crate::plan::baseline::Jobs>> {
    let Verb::Since { baseline, .. } = verb else {
        return Ok(None);
    };
    let mut known = std::collections::BTreeSet::new();
    for (i, e) in snapshot.all_engines().enumerate() {
        if baseline.engines.iter().any(|r| r.is(e)) {
            known.insert(i);
        } else if !global.all_engines {
            let saved: Vec<String> = baseline.engines.iter().map(ToString::to_string).collect();
            let now = crate::plan::baseline::EngineRecord::of(e);
            return Err(UsageError(format!(
                "--since-baseline: the baseline was saved against {}, and this prune asks {now}: name the engine it was saved against, or save one against this engine",
                if saved.is_empty() { "no engine".into() } else { saved.join(" and ") }
            ))
            .into());
        }
    }
    let jobs = crate::act::jobs::jobs(&baseline.job, &global.proc_root, known);
    Ok(Some(jobs))
}

/// The run's lock (none for a dry run, which changes nothing), or the exit when another
/// run holds it past `--wait`.
fn lock(options: &Act) -> Result<Option<Lock>, Exit> {
    if options.dry_run {
        return Ok(None);
    }
    crate::act::lock::acquire_default(options.wait)
        .map(Some)
        .map_err(|e| {
            crate::messages::stderr_line(&format!("portreap: {e}"));
            Exit::Problem
        })
}

/// What the verb can act on, and so what must be read: prune acts on findings, which the
/// forwarders' view gives exactly (tests/it/scan_engine.rs); free on the holders of its
/// ports; a baseline cleanup on any holder.
fn owners(verb: &Verb) -> crate::host::Owners<'_> {
    match verb {
        Verb::Prune(_) => crate::host::Owners::Forwarders,
        Verb::Free { ports, .. } => crate::host::Owners::EveryHolderOn(ports),
        Verb::Since { .. } => crate::host::Owners::All,
    }
}

/// The plan of the verb's planner.
fn plan(
    snapshot: &Snapshot,
    analysis: &Analysis,
    verb: &Verb,
    options: &Act,
    jobs: Option<&crate::plan::baseline::Jobs>,
) -> Plan {
    match verb {
        Verb::Prune(filters) => crate::plan::prune(snapshot, analysis, filters),
        Verb::Since {
            baseline,
            kill_processes,
            filters,
        } => crate::plan::baseline::plan_since(
            snapshot,
            analysis,
            (
                baseline,
                jobs.unwrap_or(&crate::plan::baseline::Jobs::default()),
            ),
            *kill_processes,
            filters,
        ),
        Verb::Free {
            ports,
            kill_processes,
            ..
        } => crate::plan::free(
            snapshot,
            analysis,
            ports,
            crate::plan::FreeOptions {
                kill_processes: *kill_processes,
                stop_only: options.stop_only,
                euid: rustix::process::geteuid().as_raw(),
            },
        ),
    }
}

/// One run of `prune` or `free` once its plan is made.
struct Run<'a> {
    global: &'a Global,
    options: &'a Act,
    verb: &'a Verb,
    snapshot: &'a Snapshot,
    plan: &'a Plan,
    /// Held until every action is done; waiting for TIME_WAIT to clear acts on nothing,
    /// and must not keep every other prune and free waiting for up to a minute.
    lock: Cell<Option<Lock>>,
}

impl Run<'_> {
    /// A baseline's cleanup that acted (not a dry run) ends its job's registration.
    fn cleanup_done(&self) {
        if let (Verb::Since { baseline, .. }, false) = (self.verb, self.options.dry_run) {
            crate::act::jobs::unregister(&baseline.job, self.snapshot.taken_at);
        }
    }

    /// The plan, on stdout (stderr when stdout carries JSON).
    fn show_plan(&self) -> anyhow::Result<()> {
        let nothing = match self.verb {
            Verb::Prune(_) | Verb::Since { .. } => "Nothing to prune.",
            Verb::Free { .. } => "Nothing to act on.",
        };
        let text = report::prune::plan_text(self.snapshot, self.plan, nothing);
        if self.options.json {
            crate::messages::note(text.trim_end());
            Ok(())
        } else {
            write_human(&text)
        }
    }

    /// `None` when the run may act (`--yes`, or a yes on the terminal); else the exit of
    /// a run that did not, with the plan reported as a dry run when nobody could answer.
    fn consent(&self) -> anyhow::Result<Option<Exit>> {
        if self.options.yes {
            return Ok(None);
        }
        if !(io::stdin().is_terminal() && io::stderr().is_terminal()) {
            crate::messages::stderr_line(
                "portreap: not acting: no terminal to confirm on; pass --yes to act",
            );
            self.emit(&execute::dry_run(self.plan), true, &self.named_ports_free())?;
            return Ok(Some(Exit::Problem));
        }
        if !confirm() {
            crate::messages::stderr_line("portreap: not acting.");
            return Ok(Some(Exit::Problem));
        }
        Ok(None)
    }

    /// Connects to every engine asked, in the snapshot's order (containers carry it), and
    /// carries out the plan, each action re-checked right before it is taken.
    fn execute(&self) -> anyhow::Result<Vec<Report>> {
        let (global, options, snapshot) = (self.global, self.options, self.snapshot);
        if let Some(delay) = options.act_delay {
            crate::messages::note(&format!("portreap: waiting {delay:?} before acting"));
            std::thread::sleep(delay);
        }
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
        let system = crate::act::system::System {
            engines,
            proc_root: global.proc_root.clone(),
            roots: snapshot
                .all_engines()
                .map(|e| crate::host::compose::Roots::new(&global.host_root, &global.proc_root, e))
                .collect(),
        };
        let timing = crate::act::Timing {
            grace: options.grace,
            settle: std::time::Duration::from_secs(3),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let started = std::time::Instant::now();
        let reports = runtime.block_on(crate::act::execute(&system, self.plan, timing, |r| {
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
        Ok(reports)
    }

    /// Says which named ports are free now, writes the reports, and judges the run.
    fn finish(&self, reports: &[Report], dry_run: bool) -> anyhow::Result<Exit> {
        let free = self.named_ports_free();
        report_named_ports(self.global, self.options.json, &free);
        self.emit(reports, dry_run, &free)?;
        Ok(self.verdict(reports, &free))
    }

    /// `free` succeeds when the named ports are free, whatever was planned; with
    /// `--until-free` it waits for that (TIME_WAIT lets go on its own), without the lock.
    fn named_ports_free(&self) -> PortsFree {
        match self.verb {
            Verb::Free {
                ports, until_free, ..
            } => {
                if until_free.is_some() {
                    drop(self.lock.take());
                }
                wait_until_free(&named_ports(ports), *until_free, self.options.json)
            }
            Verb::Prune(_) | Verb::Since { .. } => Vec::new(),
        }
    }

    /// The JSON report (stdout, `--report`) and the Markdown summary, as asked.
    fn emit(
        &self,
        reports: &[Report],
        dry_run: bool,
        free: &[(Proto, u16, bool)],
    ) -> anyhow::Result<()> {
        let options = self.options;
        if options.json || options.report.is_some() {
            let ports_free = matches!(self.verb, Verb::Free { .. }).then_some(free);
            let doc = |layout| {
                report::prune::json(
                    self.snapshot,
                    self.plan,
                    reports,
                    dry_run,
                    ports_free,
                    layout,
                )
            };
            // The file first: a reader that went away must not cost the report.
            if let Some(path) = &options.report {
                crate::safe_file::write(path, doc(Layout::Pretty).as_bytes())
                    .with_context(|| format!("cannot write the report to {}", path.display()))?;
            }
            if options.json {
                // A terminal gets it indented; anything else one line a run, so cron's
                // `>> portreap.jsonl` is a JSON Lines log a shipper reads line by line.
                let text = doc(if io::stdout().is_terminal() {
                    Layout::Pretty
                } else {
                    Layout::OneLine
                });
                // Nobody reads stdout any more: the report and the exit status still say
                // what happened.
                match write_stdout(&text) {
                    Err(e) if is_broken_pipe(&e) => {}
                    other => other?,
                }
            }
        }
        if let Some((path, append)) = &options.summary {
            let title = match self.verb {
                Verb::Prune(_) | Verb::Since { .. } => "prune",
                Verb::Free { .. } => "free",
            };
            let text = report::prune::markdown(self.snapshot, self.plan, reports, dry_run, title);
            let written = if *append {
                crate::safe_file::append(path, text.as_bytes())
            } else {
                crate::safe_file::write(path, text.as_bytes())
            };
            written.with_context(|| format!("cannot write the summary to {}", path.display()))?;
        }
        Ok(())
    }

    /// Exit 0 when every action was done (prune) or every named port is free (free).
    fn verdict(&self, reports: &[Report], free: &[(Proto, u16, bool)]) -> Exit {
        let ok = match self.verb {
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
    }
}
