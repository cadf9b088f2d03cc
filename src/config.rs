//! What will be done: the typed arguments validated and resolved (endpoint chosen, timeout
//! parsed, output style decided). Errors here are usage errors.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{GlobalArgs, ScanArgs};
use crate::engine::endpoint::{self, Endpoint, ProcessEnv};
use crate::portspec::PortSpec;
use crate::report::table::Style;

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
}

impl Global {
    /// Validates global options.
    pub fn new(args: &GlobalArgs) -> Result<Self, UsageError> {
        if let Some(host) = &args.host {
            endpoint::parse_url(host).map_err(|e| UsageError(format!("--host: {e}")))?;
        }
        let timeout =
            parse_duration(&args.timeout).map_err(|e| UsageError(format!("--timeout: {e}")))?;
        Ok(Global {
            endpoint: endpoint::resolve(args.host.as_deref(), args.context.as_deref(), &ProcessEnv),
            timeout,
            host_root: args.host_root.clone(),
            proc_root: args.proc_root.clone(),
            snapshot: args.snapshot.clone(),
            all_engines: args.all_engines,
            config: args.config.clone(),
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

/// Parses `5s`, `500ms`, `2m`, `1.5s`, `2h`, `7d`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (e.g. 5s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}' (use ms, s, m, h or d)"
            ))
        }
    };
    if !(seconds > 0.0 && seconds <= 365.0 * 86_400.0) {
        return Err(format!(
            "'{text}' is out of range (more than 0, at most 365d)"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "0", "0s", "-1s", "abc", "5x", "1.2.3s", "400d", "nan"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
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
        let duration = |flag: &str, text: &str| {
            parse_duration(text).map_err(|e| UsageError(format!("--{flag}: {e}")))
        };
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
            grace: parse_duration_or_zero(&args.grace)
                .map_err(|e| UsageError(format!("--grace: {e}")))?,
            wait: duration("wait", &args.wait)?,
            act_delay: args
                .debug_act_delay
                .as_deref()
                .map(|d| duration("debug-act-delay", d))
                .transpose()?,
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
        baseline: crate::plan::baseline::Baseline,
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
        loaded: Option<&crate::settings::Loaded>,
    ) -> Result<Self, UsageError> {
        if let Some(path) = &args.since_baseline {
            let raw = std::fs::read(path).map_err(|e| {
                UsageError(format!(
                    "--since-baseline: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            let baseline = serde_json::from_slice(&raw).map_err(|e| {
                UsageError(format!(
                    "--since-baseline: {} is not a portreap baseline: {e}",
                    path.display()
                ))
            })?;
            return Ok(Verb::Since {
                baseline,
                kill_processes: args.kill_processes,
                filters: crate::plan::Filters {
                    ports: merged(&args.port),
                    project: args.project.clone(),
                    labels: args.label.clone(),
                    ..crate::plan::Filters::default()
                },
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

/// [`parse_duration`], and `0` / `0s` for "none" where none makes sense (no minimum age,
/// no grace).
fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    if matches!(text.trim(), "0" | "0s") {
        Ok(Duration::ZERO)
    } else {
        parse_duration(text)
    }
}

/// The prune filters from flags over the config file over the defaults, and where each
/// setting came from. `args` is `None` for `portreap config`.
pub fn prune_filters(
    args: Option<&crate::cli::PruneArgs>,
    loaded: Option<&crate::settings::Loaded>,
) -> Result<(crate::plan::Filters, Vec<Setting>), UsageError> {
    use crate::cli::{parse_kind, parse_label};
    use crate::plan::Protect;
    let file = loaded.map(|l| &l.file.prune);
    let from_file = || loaded.map_or_else(String::new, |l| l.path.display().to_string());
    let bad = |key: &str, e: String| match loaded {
        Some(l) => l.error(key, &e),
        None => UsageError(e),
    };
    let mut settings = Vec::new();
    let mut note = |name, value: String, source: String| {
        settings.push(Setting {
            name,
            value,
            source,
        })
    };

    let (include_suspects, source) = match (
        args.is_some_and(|a| a.include_suspects),
        file.and_then(|f| f.include_suspects),
    ) {
        (true, _) => (true, "--include-suspects".to_owned()),
        (false, Some(v)) => (v, from_file()),
        (false, None) => (false, "default".to_owned()),
    };
    note("include_suspects", include_suspects.to_string(), source);

    let (kinds, source) = match (
        args.map(|a| a.kind.clone()).filter(|k| !k.is_empty()),
        file.and_then(|f| f.kinds.as_ref()),
    ) {
        (Some(k), _) => (k, "--kind".to_owned()),
        (None, Some(names)) => (
            names
                .iter()
                .map(|n| parse_kind(n).map_err(|e| bad("kinds", e)))
                .collect::<Result<Vec<_>, _>>()?,
            from_file(),
        ),
        (None, None) => (Vec::new(), "default".to_owned()),
    };
    note(
        "kinds",
        if kinds.is_empty() {
            "leaks (and suspects if included)".into()
        } else {
            kinds.iter().map(|k| k.id()).collect::<Vec<_>>().join(",")
        },
        source,
    );

    let (older_than, source) = match (
        args.and_then(|a| a.older_than.as_deref()),
        file.and_then(|f| f.older_than.as_deref()),
    ) {
        (Some(t), _) => (
            Some(parse_duration(t).map_err(|e| UsageError(format!("--older-than: {e}")))?),
            "--older-than".to_owned(),
        ),
        (None, Some(t)) => (
            Some(parse_duration(t).map_err(|e| bad("older_than", e))?),
            from_file(),
        ),
        (None, None) => (None, "default".to_owned()),
    };
    note(
        "older_than",
        older_than.map_or("none".into(), |d| format!("{}s", d.as_secs())),
        source,
    );

    let (min_age, source) = match (
        args.and_then(|a| a.min_age.as_deref()),
        file.and_then(|f| f.min_age.as_deref()),
    ) {
        (Some(t), _) => (
            parse_duration_or_zero(t).map_err(|e| UsageError(format!("--min-age: {e}")))?,
            "--min-age".to_owned(),
        ),
        (None, Some(t)) => (
            parse_duration_or_zero(t).map_err(|e| bad("min_age", e))?,
            from_file(),
        ),
        (None, None) => (Duration::from_secs(30), "default".to_owned()),
    };
    note("min_age", format!("{}s", min_age.as_secs()), source);

    let mut protect = Protect::default();
    if let Some(f) = file {
        protect.projects = f.protect_projects.clone();
        protect.images = f.protect_images.clone();
        protect.ports = f
            .protect_ports
            .as_deref()
            .map(|p| {
                p.parse::<PortSpec>()
                    .map_err(|e| bad("protect_ports", e.to_string()))
            })
            .transpose()?;
        protect.labels = f
            .keep_labels
            .iter()
            .map(|l| parse_label(l).map_err(|e| bad("keep_labels", e)))
            .collect::<Result<_, _>>()?;
        let src = from_file();
        note(
            "protect_projects",
            f.protect_projects.join(","),
            src.clone(),
        );
        note("protect_images", f.protect_images.join(","), src.clone());
        note(
            "protect_ports",
            f.protect_ports.clone().unwrap_or_default(),
            src.clone(),
        );
        note("keep_labels", f.keep_labels.join(","), src);
    }
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
    Ok((filters, settings))
}
