//! What the user typed: clap definitions only. Validation beyond parsing lives in `config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::analyze::findings::{Kind, Severity};
use crate::portspec::PortSpec;
use crate::time::{parse_duration, parse_duration_or_zero};
use std::time::Duration;

/// Who is holding my port, and is it a leak?
///
/// portreap lists the host's listening sockets with their real owners: the container behind
/// a docker-proxy, the compose project and service, the host-network container, the plain
/// process, or the Docker reservation that no socket backs.
#[derive(Debug, Parser)]
// Global options may come before the subcommand (`portreap --host X scan`), so
// `args_conflicts_with_subcommands` is not used; the bare form's scan options are checked
// against a subcommand in `app` instead.
#[command(name = "portreap", version)]
pub struct Cli {
    /// Engine and host options, accepted before or after the subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// What to do; `scan` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options of `scan`, for the bare `portreap` form.
    #[command(flatten)]
    pub scan: ScanArgs,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Engine endpoint (unix:///path or tcp://host:port); overrides DOCKER_HOST and the
    /// docker context.
    #[arg(long, short = 'H', global = true, value_name = "URL")]
    pub host: Option<String>,

    /// Docker context to use (like `docker --context`); overrides DOCKER_HOST and
    /// DOCKER_CONTEXT.
    #[arg(long, global = true, value_name = "NAME", conflicts_with = "host")]
    pub context: Option<String>,

    /// Say less on stderr: no engine line, notes or progress; errors still.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Say more on stderr: what was read and how long each step took.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,

    /// Also ask every other local engine socket that exists (rootful and rootless Docker,
    /// rootful and rootless Podman) and attribute ports across all of them.
    #[arg(long, global = true)]
    pub all_engines: bool,

    /// Neither read nor write the cache of containers' port bindings
    /// ($XDG_CACHE_HOME/portreap, else ~/.cache/portreap), which spares inspecting
    /// stopped containers that cannot bear on the answer.
    #[arg(long, global = true)]
    pub no_cache: bool,

    /// Config file for unattended runs (TOML; default: $XDG_CONFIG_HOME/portreap/config.toml
    /// when it exists). Flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    /// Bound on every engine call (e.g. 5s, 500ms, 2m).
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Where the host's root filesystem is visible (mount it read-only when portreap runs
    /// in a container); used to check that compose projects' directories still exist.
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub host_root: PathBuf,

    /// Where the host's /proc is mounted (when portreap runs in a container).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/proc",
        hide = true
    )]
    pub proc_root: PathBuf,

    /// Read facts from a recorded snapshot (`portreap debug snapshot`) instead of the host
    /// and engine. For tests and bug reports.
    #[arg(long, global = true, value_name = "FILE", hide = true)]
    pub snapshot: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List ports with their owners (the default command).
    Scan(ScanArgs),
    /// Free leaked ports: stop or remove what the findings name, safely.
    ///
    /// Acts on leaks by default (--include-suspects adds suspects); never on information
    /// findings, never on containers labelled portreap.keep=true, never on the engine or
    /// PID 1. Each target is re-checked right before acting, and each port is probed
    /// afterwards.
    Prune(PruneArgs),
    /// Explain who holds a port, whether it is a leak, and the command that frees it.
    Why(WhyArgs),
    /// Free the named ports, whatever holds them: containers (even healthy ones), stale
    /// proxies, and with --kill-processes plain processes. Never the engine or PID 1.
    Free(FreeArgs),
    /// Record or use a CI baseline: the port holders a host had when a job started.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Print the scan as Prometheus metrics: findings by kind and severity, ports by
    /// owner, engines up, scan time. With --output, for node_exporter's textfile collector.
    Metrics(MetricsArgs),
    /// Print the effective prune settings and where each comes from (flag, config file,
    /// default).
    Config,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff); e.g. `portreap man > /usr/local/share/man/man1/portreap.1`.
    Man,
    /// Developer tools.
    #[command(hide = true, subcommand)]
    Debug(DebugCommand),
}

impl ScanArgs {
    /// Whether any option was given (to reject `portreap --json prune`).
    pub fn any(&self) -> bool {
        self.all || self.json || self.check || !self.port.is_empty()
    }
}

/// Options of `scan`.
#[derive(Debug, Args, Default)]
pub struct ScanArgs {
    /// Show every listening socket, not only those involving Docker.
    #[arg(long, short = 'a')]
    pub all: bool,

    /// Print the JSON document (schema version 1) and nothing else on stdout.
    #[arg(long)]
    pub json: bool,

    /// Exit with status 1 when a leak is found (for CI and cron).
    #[arg(long)]
    pub check: bool,

    /// Only these ports: 3000, 3000/udp, 8000-8100, 80,443 (repeatable). Implies --all
    /// for the ports named.
    #[arg(long, short = 'p', value_name = "SPEC")]
    pub port: Vec<PortSpec>,
}

/// Options shared by the commands that act (`prune`, `free`).
#[derive(Debug, Args)]
pub struct ActArgs {
    /// Print the plan and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// Act without asking (needed when no terminal is attached).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Stop containers but keep them.
    #[arg(long)]
    pub stop_only: bool,

    /// How long a container gets to stop, and a process to exit after SIGTERM; 0 kills
    /// at once, like `docker rm -f`.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration_or_zero)]
    pub grace: Duration,

    /// How long to wait for another prune or free to finish.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub wait: Duration,

    /// Print the JSON report and nothing else on stdout.
    #[arg(long)]
    pub json: bool,

    /// How to log each action as it completes: `text` lines, or `json` lines on stderr
    /// (for cron and log collectors).
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,

    /// Also write the JSON report to this file (whatever goes to stdout).
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,

    /// Write a short Markdown summary of what was found and freed to this file; without it,
    /// and with GITHUB_STEP_SUMMARY set, the summary is appended there.
    #[arg(long, value_name = "FILE")]
    pub summary_markdown: Option<std::path::PathBuf>,

    /// Pause between planning and acting (tests of races).
    #[arg(long, value_name = "DURATION", hide = true, value_parser = parse_duration)]
    pub debug_act_delay: Option<Duration>,
}

/// Options of `prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Act on suspects (paused, unhealthy, restarting, dormant) as well as leaks.
    #[arg(long)]
    pub include_suspects: bool,

    /// Only this finding kind (repeatable), e.g. orphaned-proxy, paused-container.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub kind: Vec<crate::analyze::findings::Kind>,

    /// Only findings on these ports: 3000, 3000/udp, 8000-8100, 80,443 (repeatable).
    #[arg(long, short = 'p', value_name = "SPEC")]
    pub port: Vec<PortSpec>,

    /// Only containers of this compose project.
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,

    /// Only containers with this label (repeatable; all must match).
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub label: Vec<crate::plan::Label>,

    /// Act on every port holder that was not in this baseline (`baseline save`), whatever
    /// its health, and on nothing that was: the cleanup step of a CI job.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["include_suspects", "kind"])]
    pub since_baseline: Option<std::path::PathBuf>,

    /// With --since-baseline, also signal plain processes started after the baseline.
    #[arg(long, requires = "since_baseline")]
    pub kill_processes: bool,

    /// Leave containers created less than this long ago (a compose up may be starting
    /// them); 0s turns the guard off.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_or_zero)]
    pub min_age: Option<Duration>,

    /// Act only on holders older than this (containers by creation, processes by start),
    /// e.g. 30m, 2h, 7d: a cron job never races a developer's fresh `compose up`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Option<Duration>,

    /// How to act.
    #[command(flatten)]
    pub act: ActArgs,
}

/// Options of `free`.
#[derive(Debug, Args)]
pub struct FreeArgs {
    /// Ports to free: 3000, 3000/udp, 8000-8100, 80,443.
    #[arg(value_name = "PORT", required = true)]
    pub ports: Vec<PortSpec>,

    /// Also signal plain processes holding the ports (SIGTERM, wait --grace, SIGKILL).
    #[arg(long)]
    pub kill_processes: bool,

    /// Then wait, at most DURATION, until the ports are free: connections in TIME_WAIT
    /// let a port go on their own (60 s on Linux), and no signal hastens them.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub until_free: Option<Duration>,

    /// How to act.
    #[command(flatten)]
    pub act: ActArgs,
}

/// Options of `why`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["ports", "container"])))]
pub struct WhyArgs {
    /// Ports to explain: 3000, 3000/udp, 8000-8100, 80,443.
    #[arg(value_name = "PORT")]
    pub ports: Vec<PortSpec>,

    /// Explain a container instead: the ports it asks for and who holds each now.
    #[arg(long, short = 'c', value_name = "NAME", conflicts_with = "ports")]
    pub container: Option<String>,

    /// The scan document restricted to these ports, with a `why` section.
    #[arg(long)]
    pub json: bool,
}

/// Options of `metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Count every listening socket, not only those involving Docker.
    #[arg(long, short = 'a')]
    pub all: bool,

    /// Write to FILE instead of stdout, atomically (a temporary file beside it, then a
    /// rename; mode 0644): name a `.prom` file in node_exporter's textfile directory.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,

    /// Keep running, rewriting --output every DURATION (e.g. 60s): for a DaemonSet or a
    /// long-running service.
    #[arg(long, value_name = "DURATION", requires = "output", value_parser = parse_duration)]
    pub every: Option<Duration>,
}

/// `baseline` subcommands.
#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Save the host's port holders (container ids, process identities) to FILE; at the
    /// end of the job, `prune --since-baseline FILE` removes what the job left.
    /// Prints the job's id, for the job to label the containers it starts
    /// (`--label portreap.job=ID`).
    Save {
        /// Where to write it (JSON).
        file: std::path::PathBuf,
    },
}

/// Hidden developer tools.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print the raw facts (host sockets, processes, containers) as JSON.
    Snapshot,
    /// Panic on purpose, to test the panic report.
    Panic,
}

/// A `--kind` (or config `kinds`) prune cannot act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KindError {
    /// No finding has this id.
    Unknown(String),
    /// An informational kind: never acted on.
    Informational(Kind),
}

impl std::fmt::Display for KindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KindError::Unknown(text) => {
                let ids: Vec<&str> = Kind::ALL
                    .iter()
                    .filter(|k| k.severity() != Severity::Info)
                    .map(|k| k.id())
                    .collect();
                write!(
                    f,
                    "unknown kind '{text}' (expected one of {})",
                    ids.join(", ")
                )
            }
            KindError::Informational(kind) => {
                write!(f, "{} is informational: prune never acts on it", kind.id())
            }
        }
    }
}

impl std::error::Error for KindError {}

/// Parses `--kind K` (and the config file's `kinds`): a finding id prune may act on.
pub fn parse_kind(text: &str) -> Result<Kind, KindError> {
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.id() == text)
        .ok_or_else(|| KindError::Unknown(text.to_owned()))?;
    if kind.severity() == Severity::Info {
        return Err(KindError::Informational(kind));
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bare_form_takes_scan_options() {
        let cli = Cli::try_parse_from(["portreap", "--json", "-p", "3000"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.scan.json);
        let cli =
            Cli::try_parse_from(["portreap", "scan", "--all", "--host", "unix:///x"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Scan(ScanArgs { all: true, .. }))
        ));
        // Global options before the subcommand, as with docker -H.
        let cli =
            Cli::try_parse_from(["portreap", "--host", "unix:///x", "scan", "--all"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Scan(ScanArgs { all: true, .. }))
        ));
        assert_eq!(cli.global.host.as_deref(), Some("unix:///x"));
    }

    #[test]
    fn parsers_for_flags() {
        use crate::plan::Label;
        let label = |key: &str, value: Option<&str>| Label {
            key: key.into(),
            value: value.map(Into::into),
        };
        assert_eq!("a=b".parse(), Ok(label("a", Some("b"))));
        assert_eq!("a".parse(), Ok(label("a", None)));
        assert_eq!("a=b=c".parse(), Ok(label("a", Some("b=c"))));
        assert!("=b".parse::<Label>().is_err());
        assert!("a b".parse::<Label>().is_err());
        assert_eq!(parse_kind("dead-container"), Ok(Kind::DeadContainer));
        assert_eq!(
            parse_kind("engine-reservation"),
            Err(KindError::Informational(Kind::EngineReservation))
        );
        assert_eq!(parse_kind("nope"), Err(KindError::Unknown("nope".into())));
        assert!(parse_kind("nope")
            .unwrap_err()
            .to_string()
            .contains("unknown kind"));
    }
}
