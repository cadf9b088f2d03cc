//! What will be done: the typed arguments validated and resolved (endpoint chosen, timeout
//! parsed, output style decided). Errors here are usage errors.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{GlobalArgs, ScanArgs};
use crate::engine::endpoint::{self, Endpoint, ProcessEnv};
use crate::portspec::PortSpec;
use crate::report::table::Style;
use crate::settings::Loaded;

/// A usage error: printed as one line, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Settings shared by every command.
#[derive(Debug)]
pub struct Global {
    /// The engine to ask, or why none could be chosen (reported, not fatal).
    pub endpoint: Result<Endpoint, endpoint::Error>,
    /// Bound on each engine call.
    pub timeout: Duration,
    /// The host's root filesystem.
    pub host_root: PathBuf,
    /// The host's /proc.
    pub proc_root: PathBuf,
    /// Recorded facts to use instead of the live system.
    pub snapshot: Option<PathBuf>,
    /// Query every local engine socket too.
    pub all_engines: bool,
    /// The config file asked for.
    pub config: Option<PathBuf>,
    /// Where containers' port bindings are remembered; `None` with `--no-cache`.
    pub cache_dir: Option<PathBuf>,
}

impl Global {
    /// Validates global options.
    pub fn new(args: &GlobalArgs) -> Result<Self, UsageError> {
        if let Some(host) = &args.host {
            endpoint::parse_url(host).map_err(|e| UsageError(format!("--host: {e}")))?;
        }
        Ok(Global {
            endpoint: endpoint::resolve(args.host.as_deref(), args.context.as_deref(), &ProcessEnv),
            timeout: args.timeout,
            host_root: args.host_root.clone(),
            proc_root: args.proc_root.clone(),
            snapshot: args.snapshot.clone(),
            all_engines: args.all_engines,
            config: args.config.clone(),
            cache_dir: if args.no_cache {
                None
            } else {
                crate::engine::cache::Cache::default_dir(|key| std::env::var(key).ok())
            },
        })
    }

    /// The engines to ask: the resolved one first, then (with `--all-engines`) every other
    /// local engine: those `found` in the process table, and the well-known sockets.
    pub fn endpoints(
        &self,
        found: &[crate::model::LocalEngine],
    ) -> Vec<Result<Endpoint, endpoint::Error>> {
        let mut out = vec![self.endpoint.clone()];
        if self.all_engines {
            out.extend(
                endpoint::local_sockets(self.endpoint.as_ref().ok(), found, &ProcessEnv)
                    .into_iter()
                    .map(Ok),
            );
        }
        out
    }
}

/// Settings of `scan`.
#[derive(Debug)]
pub struct Scan {
    /// Every socket, not only Docker's.
    pub all: bool,
    /// JSON output.
    pub json: bool,
    /// Exit 1 on leaks.
    pub check: bool,
    /// Port filter.
    pub ports: Option<PortSpec>,
    /// Table style.
    pub style: Style,
}

impl Scan {
    /// Resolves `scan` options.
    pub fn new(args: &ScanArgs) -> Self {
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let ports = (!args.port.is_empty())
            .then(|| PortSpec(args.port.iter().flat_map(|s| s.0.iter().copied()).collect()));
        Scan {
            all: args.all,
            json: args.json,
            check: args.check,
            ports,
            style: Style {
                tty,
                color: tty && !no_color,
            },
        }
    }
}

/// How the acting commands act.
#[derive(Debug)]
pub struct Act {
    /// Change nothing.
    pub dry_run: bool,
    /// Act without asking.
    pub yes: bool,
    /// JSON report on stdout.
    pub json: bool,
    /// Stop containers, keep them.
    pub stop_only: bool,
    /// Grace for stopping and SIGTERM.
    pub grace: Duration,
    /// How long to wait for another prune.
    pub wait: Duration,
    /// Pause before acting (tests).
    pub act_delay: Option<Duration>,
    /// Log each action as a JSON line on stderr.
    pub log_json: bool,
    /// Where to write the JSON report as well.
    pub report: Option<PathBuf>,
    /// Where the Markdown summary goes, and whether to append (GitHub's step summary).
    pub summary: Option<(PathBuf, bool)>,
}

impl Act {
    /// Validates the shared options.
    pub fn new(args: &crate::cli::ActArgs) -> Result<Self, UsageError> {
        if args.dry_run && args.yes {
            return Err(UsageError(
                "--dry-run and --yes contradict each other".into(),
            ));
        }
        let summary = match (
            &args.summary_markdown,
            std::env::var_os("GITHUB_STEP_SUMMARY"),
        ) {
            (Some(path), _) => Some((path.clone(), false)),
            (None, Some(path)) if !path.is_empty() => Some((PathBuf::from(path), true)),
            (None, _) => None,
        };
        // Refused before anything is done, not after acting.
        let outputs = args.report.iter().chain(summary.iter().map(|(p, _)| p));
        if let Some(why) = outputs.filter_map(|p| crate::safe_file::refuse(p)).next() {
            return Err(UsageError(why));
        }
        Ok(Act {
            dry_run: args.dry_run,
            yes: args.yes,
            json: args.json,
            stop_only: args.stop_only,
            grace: args.grace,
            wait: args.wait,
            act_delay: args.debug_act_delay,
            log_json: args.log_format == "json",
            report: args.report.clone(),
            summary,
        })
    }
}

fn merged(specs: &[PortSpec]) -> Option<PortSpec> {
    (!specs.is_empty()).then(|| PortSpec(specs.iter().flat_map(|s| s.0.iter().copied()).collect()))
}

/// What an acting command will act on.
#[derive(Debug)]
pub enum Verb {
    /// `prune`: findings, filtered.
    Prune(crate::plan::Filters),
    /// `prune --since-baseline`: every holder the baseline does not know.
    Since {
        /// The baseline.
        baseline: Box<crate::plan::baseline::Baseline>,
        /// Plain processes too.
        kill_processes: bool,
        /// Narrowing by port, project and label.
        filters: crate::plan::Filters,
    },
    /// `free`: whatever holds these ports.
    Free {
        /// The ports.
        ports: PortSpec,
        /// Plain processes too.
        kill_processes: bool,
        /// How long to wait for the ports to become free after acting.
        until_free: Option<Duration>,
    },
}

impl Verb {
    /// `prune` options, with the config file's defaults under the flags.
    pub fn prune(
        args: &crate::cli::PruneArgs,
        loaded: Option<&Loaded>,
    ) -> Result<Self, UsageError> {
        if let Some(path) = &args.since_baseline {
            let baseline = crate::safe_file::read_record(path, crate::plan::baseline::MAX_BYTES)
                .and_then(|raw| crate::plan::baseline::parse(&raw))
                .map_err(|why| {
                    UsageError(format!("--since-baseline: {}: {why}", path.display()))
                })?;
            // The config file's protections and age guards hold here as in every prune.
            let (filters, _) = prune_filters(Some(args), loaded)?;
            return Ok(Verb::Since {
                baseline: Box::new(baseline),
                kill_processes: args.kill_processes,
                filters,
            });
        }
        let (filters, _) = prune_filters(Some(args), loaded)?;
        Ok(Verb::Prune(filters))
    }

    /// `free` options.
    pub fn free(args: &crate::cli::FreeArgs) -> Self {
        Verb::Free {
            ports: merged(&args.ports).unwrap_or_else(|| PortSpec(Vec::new())),
            kill_processes: args.kill_processes,
            until_free: args.until_free,
        }
    }
}

/// One effective setting, for `portreap config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Its name in the config file.
    pub name: &'static str,
    /// Its value, as text.
    pub value: String,
    /// `--flag`, the config file's path, or `default`.
    pub source: String,
}

/// The prune filters from flags over the config file over the defaults, and where each
/// setting came from. `args` is `None` for `portreap config`.
pub fn prune_filters(
    args: Option<&crate::cli::PruneArgs>,
    loaded: Option<&Loaded>,
) -> Result<(crate::plan::Filters, Vec<Setting>), UsageError> {
    use crate::time::{parse_duration, parse_duration_or_zero};
    let mut p = Precedence {
        loaded,
        settings: Vec::new(),
    };
    let include_suspects = p.pick(
        "include_suspects",
        args.filter(|a| a.include_suspects)
            .map(|_| (true, "--include-suspects")),
        |l| l.file.prune.include_suspects.map(Ok),
        false,
        bool::to_string,
    )?;
    let kinds = p.pick(
        "kinds",
        args.filter(|a| !a.kind.is_empty())
            .map(|a| (a.kind.clone(), "--kind")),
        |l| {
            let names = l.file.prune.kinds.as_ref()?;
            Some(
                names
                    .iter()
                    .map(|n| l.parse("kinds", n, crate::cli::parse_kind))
                    .collect(),
            )
        },
        Vec::new(),
        |kinds| match kinds.as_slice() {
            [] => "leaks (and suspects if included)".into(),
            _ => kinds.iter().map(|k| k.id()).collect::<Vec<_>>().join(","),
        },
    )?;
    let older_than = p.pick(
        "older_than",
        args.and_then(|a| a.older_than)
            .map(|d| (Some(d), "--older-than")),
        |l| {
            let text = l.file.prune.older_than.as_ref()?;
            Some(l.parse("older_than", text, parse_duration).map(Some))
        },
        None,
        |d| d.map_or("none".into(), |d| format!("{}s", d.as_secs())),
    )?;
    let min_age = p.pick(
        "min_age",
        args.and_then(|a| a.min_age).map(|d| (d, "--min-age")),
        |l| {
            let text = l.file.prune.min_age.as_ref()?;
            Some(l.parse("min_age", text, parse_duration_or_zero))
        },
        Duration::from_secs(30),
        |d| format!("{}s", d.as_secs()),
    )?;
    let protect = match loaded {
        Some(l) => protect(l, &mut p.settings)?,
        None => crate::plan::Protect::default(),
    };
    let filters = crate::plan::Filters {
        include_suspects,
        kinds,
        older_than,
        min_age,
        protect,
        ports: args.and_then(|a| merged(&a.port)),
        project: args.and_then(|a| a.project.clone()),
        labels: args.map(|a| a.label.clone()).unwrap_or_default(),
        stop_only: args.is_some_and(|a| a.act.stop_only),
    };
    Ok((filters, p.settings))
}

/// Flag over config file over default: the one precedence of every prune setting, and
/// the record of where each came from.
struct Precedence<'a> {
    loaded: Option<&'a Loaded>,
    settings: Vec<Setting>,
}

impl Precedence<'_> {
    /// The flag's value (with the flag's name) if typed, else the file's if it sets one
    /// (read only then: a flag overrides a bad value too), else `default`.
    fn pick<T>(
        &mut self,
        name: &'static str,
        flag: Option<(T, &'static str)>,
        file: impl FnOnce(&Loaded) -> Option<Result<T, UsageError>>,
        default: T,
        show: impl FnOnce(&T) -> String,
    ) -> Result<T, UsageError> {
        let from_file = || self.loaded.and_then(|l| Some((file(l)?, l.path.display())));
        let (value, source) = match flag {
            Some((value, flag)) => (value, flag.to_owned()),
            None => match from_file() {
                Some((value, path)) => (value?, path.to_string()),
                None => (default, "default".to_owned()),
            },
        };
        self.settings.push(Setting {
            name,
            value: show(&value),
            source,
        });
        Ok(value)
    }
}

/// What the config file protects (no flag sets these).
fn protect(l: &Loaded, settings: &mut Vec<Setting>) -> Result<crate::plan::Protect, UsageError> {
    let f = &l.file.prune;
    let protect = crate::plan::Protect {
        projects: f.protect_projects.clone(),
        images: f.protect_images.clone(),
        ports: f
            .protect_ports
            .as_ref()
            .map(|p| l.parse("protect_ports", p, str::parse::<PortSpec>))
            .transpose()?,
        labels: f
            .keep_labels
            .iter()
            .map(|k| l.parse("keep_labels", k, str::parse))
            .collect::<Result<_, _>>()?,
    };
    let texts = |list: &[toml::Spanned<String>]| {
        list.iter()
            .map(|s| s.get_ref().as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    for (name, value) in [
        ("protect_projects", f.protect_projects.join(",")),
        ("protect_images", f.protect_images.join(",")),
        ("protect_ports", texts(f.protect_ports.as_slice())),
        ("keep_labels", texts(&f.keep_labels)),
    ] {
        settings.push(Setting {
            name,
            value,
            source: l.path.display().to_string(),
        });
    }
    Ok(protect)
}
