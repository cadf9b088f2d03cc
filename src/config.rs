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
    pub endpoint: Result<Endpoint, String>,
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
        })
    }

    /// The engines to ask: the resolved one first, then (with `--all-engines`) every other
    /// local engine socket that exists.
    pub fn endpoints(&self) -> Vec<Result<Endpoint, String>> {
        let mut out = vec![self.endpoint.clone()];
        if self.all_engines {
            out.extend(
                endpoint::local_sockets(self.endpoint.as_ref().ok(), &ProcessEnv)
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
        Ok(Act {
            dry_run: args.dry_run,
            yes: args.yes,
            json: args.json,
            stop_only: args.stop_only,
            grace: duration("grace", &args.grace)?,
            wait: duration("wait", &args.wait)?,
            act_delay: args
                .debug_act_delay
                .as_deref()
                .map(|d| duration("debug-act-delay", d))
                .transpose()?,
            log_json: args.log_format == "json",
            report: args.report.clone(),
            summary: match (
                &args.summary_markdown,
                std::env::var_os("GITHUB_STEP_SUMMARY"),
            ) {
                (Some(path), _) => Some((path.clone(), false)),
                (None, Some(path)) if !path.is_empty() => Some((PathBuf::from(path), true)),
                (None, _) => None,
            },
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
    Prune(crate::prune::Filters),
    /// `prune --since-baseline`: every holder the baseline does not know.
    Since {
        /// The baseline.
        baseline: crate::prune::baseline::Baseline,
        /// Plain processes too.
        kill_processes: bool,
        /// Narrowing by port, project and label.
        filters: crate::prune::Filters,
    },
    /// `free`: whatever holds these ports.
    Free {
        /// The ports.
        ports: PortSpec,
        /// Plain processes too.
        kill_processes: bool,
    },
}

impl Verb {
    /// `prune` options.
    pub fn prune(args: &crate::cli::PruneArgs) -> Result<Self, UsageError> {
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
                filters: crate::prune::Filters {
                    ports: merged(&args.port),
                    project: args.project.clone(),
                    labels: args.label.clone(),
                    ..crate::prune::Filters::default()
                },
            });
        }
        let min_age = if args.min_age.trim() == "0" || args.min_age.trim() == "0s" {
            Duration::ZERO
        } else {
            parse_duration(&args.min_age).map_err(|e| UsageError(format!("--min-age: {e}")))?
        };
        let older_than = args
            .older_than
            .as_deref()
            .map(|d| parse_duration(d).map_err(|e| UsageError(format!("--older-than: {e}"))))
            .transpose()?;
        Ok(Verb::Prune(crate::prune::Filters {
            min_age,
            older_than,
            include_suspects: args.include_suspects,
            kinds: args.kind.clone(),
            ports: merged(&args.port),
            project: args.project.clone(),
            labels: args.label.clone(),
            stop_only: args.act.stop_only,
        }))
    }

    /// `free` options.
    pub fn free(args: &crate::cli::FreeArgs) -> Self {
        Verb::Free {
            ports: merged(&args.ports).unwrap_or_else(|| PortSpec(Vec::new())),
            kill_processes: args.kill_processes,
        }
    }
}
