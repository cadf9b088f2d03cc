//! The finding catalogue: one small rule per kind of leak, each over plain facts. The
//! rules live by subject: `containers` (one container each), `forwarders` (proxies,
//! conmons and the engine's own sockets), `superseded` and `analyze::compose` (compose
//! projects and services); start errors are read in `conflict`.
//!
//! False positives are the worst bug this tool can have: every rule requires positive
//! evidence (a state, a missing directory, a proxy whose target is gone), never the mere
//! absence of information, and a healthy holder matches none.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::{Owner, PortEntry};
use crate::model::Timestamp;
use crate::model::{Container, ContainerState, Process, Proto, Snapshot};
use crate::time::human;

mod conflict;
mod containers;
mod forwarders;
mod superseded;

pub use conflict::{conflict_core, port_conflict};

/// How bad a finding is; decides what `prune` acts on by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Certainly stale: `prune` acts on it.
    Leak,
    /// Probably unwanted: `prune --include-suspects` acts on it.
    Suspect,
    /// Explains something; never acted on.
    Info,
}

impl Severity {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Leak => "leak",
            Severity::Suspect => "suspect",
            Severity::Info => "info",
        }
    }
}

/// The kinds of finding. Their ids are part of the JSON contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A docker-proxy whose container is gone.
    OrphanedProxy,
    /// A container in state `dead` with port bindings.
    DeadContainer,
    /// A container of a compose project whose files are gone, or that was superseded.
    OrphanedCompose,
    /// A container of a compose project whose files no longer define its service (renamed
    /// or deleted): compose's "orphan container".
    OrphanService,
    /// A paused container holding published ports.
    PausedContainer,
    /// A running container whose health check fails, publishing ports.
    UnhealthyContainer,
    /// A container in a restart loop on published ports.
    RestartingContainer,
    /// An exited `--restart always` container that will take its ports back.
    DormantBinding,
    /// A container whose start failed because its port was taken.
    BlockedStart,
    /// A port the engine reserves for no live holder.
    EngineReservation,
}

impl Kind {
    /// Every kind, in catalogue order.
    pub const ALL: [Kind; 10] = [
        Kind::OrphanedProxy,
        Kind::DeadContainer,
        Kind::OrphanedCompose,
        Kind::OrphanService,
        Kind::PausedContainer,
        Kind::UnhealthyContainer,
        Kind::RestartingContainer,
        Kind::DormantBinding,
        Kind::BlockedStart,
        Kind::EngineReservation,
    ];

    /// Stable id.
    pub fn id(self) -> &'static str {
        match self {
            Kind::OrphanedProxy => "orphaned-proxy",
            Kind::DeadContainer => "dead-container",
            Kind::OrphanedCompose => "orphaned-compose",
            Kind::OrphanService => "orphan-service",
            Kind::PausedContainer => "paused-container",
            Kind::UnhealthyContainer => "unhealthy-container",
            Kind::RestartingContainer => "restarting-container",
            Kind::DormantBinding => "dormant-binding",
            Kind::BlockedStart => "blocked-start",
            Kind::EngineReservation => "engine-reservation",
        }
    }

    /// Severity of the kind.
    pub fn severity(self) -> Severity {
        match self {
            Kind::OrphanedProxy | Kind::DeadContainer | Kind::OrphanedCompose => Severity::Leak,
            // A leak when a container of its project is blocked on its port.
            Kind::OrphanService
            | Kind::PausedContainer
            | Kind::UnhealthyContainer
            | Kind::RestartingContainer
            | Kind::DormantBinding => Severity::Suspect,
            Kind::BlockedStart | Kind::EngineReservation => Severity::Info,
        }
    }

    /// What freeing a port of this kind takes, before the evidence says otherwise (a
    /// forwarder on the never-act list is then `none`).
    pub fn default_action(self) -> Action {
        match self {
            Kind::OrphanedProxy => Action::KillProcess,
            Kind::BlockedStart | Kind::EngineReservation => Action::None,
            _ => Action::RemoveContainer,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// What freeing the port takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Signal the holding process (SIGTERM, then SIGKILL).
    KillProcess,
    /// Stop (unpausing first) and remove the container.
    RemoveContainer,
    /// Stop the container.
    StopContainer,
    /// Nothing portreap will do.
    None,
}

impl Action {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::KillProcess => "kill-process",
            Action::RemoveContainer => "remove-container",
            Action::StopContainer => "stop-container",
            Action::None => "none",
        }
    }
}

/// A host address and port a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRef {
    /// Protocol.
    pub proto: Proto,
    /// Address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", SocketAddr::new(self.ip, self.port), self.proto)
    }
}

/// One verdict, with its evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What kind.
    pub kind: Kind,
    /// How bad: the kind's, or less where the evidence says so.
    pub severity: Severity,
    /// Ports concerned.
    pub ports: Vec<PortRef>,
    /// The container concerned (index into the snapshot), if any.
    pub container: Option<usize>,
    /// Processes concerned.
    pub pids: Vec<u32>,
    /// The facts it rests on, typed: what tests (and code) rely on.
    pub evidence: Evidence,
    /// The evidence in a sentence a user can act on.
    pub reason: String,
    /// What freeing the ports takes.
    pub action: Action,
}

/// The facts behind a finding, one variant per way a rule concludes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// A docker-proxy forwards to `to` (unknown when its arguments do not say), where no
    /// container publishing the port lives; `now_at` is the container that has the address
    /// now, if one does.
    ProxyTarget {
        /// Where it forwards.
        to: Option<SocketAddr>,
        /// The container holding that address now (index into the snapshot).
        now_at: Option<usize>,
    },
    /// A conmon holds ports for a container the engine runs no more: in `state`, or
    /// unknown to the engine (`None`).
    ConmonTarget {
        /// The container it monitors.
        container_id: String,
        /// That container's state, if the engine still lists it.
        state: Option<ContainerState>,
    },
    /// The engine's own process holds a socket for no container.
    EngineSocket,
    /// The engine lists a binding no socket backs, for a container in `state`.
    UnbackedBinding {
        /// The container's state.
        state: ContainerState,
    },
    /// A dead container still has bindings.
    Dead,
    /// What of a compose project's paths is gone.
    ComposeGone(ComposeGone),
    /// Another compose project from the same directory carries the name it gives today.
    Superseded {
        /// That project.
        by: String,
    },
    /// The compose files no longer define the container's service.
    ServiceUndefined {
        /// The service.
        service: String,
        /// Containers of the same project that could not take its ports.
        blocks: usize,
    },
    /// Paused: the ports that accept and hang, and those the engine reserves with no socket.
    Paused {
        /// Held by a socket nobody answers.
        open: Vec<PortRef>,
        /// Reserved, no socket.
        reserved: Vec<PortRef>,
    },
    /// Its health check fails.
    Unhealthy {
        /// Failed checks in a row.
        failing_streak: i64,
    },
    /// A restart loop: restarting now, or up briefly between crashes.
    Restarting {
        /// In the `restarting` state now.
        now: bool,
        /// Restarts so far.
        restarts: i64,
        /// The last exit code.
        exit_code: Option<i64>,
    },
    /// Exited with restart policy `always`.
    Dormant,
    /// It could not start on `port`, which is now as `now` says.
    BlockedStart {
        /// The port.
        port: u16,
        /// The port now.
        now: PortNow,
    },
}

/// A compose project's paths that are gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComposeGone {
    /// Its working directory.
    WorkingDir(String),
    /// Every one of its compose files.
    Files(Vec<String>),
}

/// What holds a port a container could not start on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortNow {
    /// Nothing.
    Free,
    /// No socket, but a binding of another container in the engine.
    Reserved,
    /// A socket.
    Held,
}

/// Processes portreap never signals, whatever the evidence: the engine, its runtime, the
/// desktop VMs' forwarders, and init.
pub fn never_act(process: &Process) -> Option<String> {
    if process.pid == 1 {
        return Some(format!("pid 1 ({}) is never signalled", process.name));
    }
    let name = process.name.as_str();
    if let Some(product) = super::forwarder::desktop_product(process) {
        return Some(format!(
            "{name} (pid {}) forwards ports for {product} and is never signalled",
            process.pid
        ));
    }
    (crate::model::known::NEVER_SIGNALLED.contains(&name) || name.starts_with("containerd-shim"))
        .then(|| format!("{name} (pid {}) is never signalled", process.pid))
}

/// Builds every finding for the attributed ports.
///
/// Judging a proxy or an engine-held socket "without container" needs the engine's whole
/// answer: with the engine unreachable, or an inspect failed, every proxy would look
/// orphaned. Those rules are then not applied at all.
pub fn find(snapshot: &Snapshot, ports: &[PortEntry]) -> Vec<Finding> {
    let mut out = Vec::new();
    let engine_complete = snapshot.engines_complete();
    if engine_complete {
        out.extend(forwarders::orphaned_proxies(snapshot, ports));
        if snapshot.podman_queried() {
            out.extend(forwarders::orphaned_conmons(snapshot, ports));
        }
    }
    for (index, container) in snapshot.containers.iter().enumerate() {
        out.extend(containers::findings(snapshot, ports, index, container));
    }
    out.extend(superseded::compose_projects(snapshot));
    out.extend(super::compose::orphan_services(snapshot));
    if engine_complete {
        out.extend(forwarders::engine_reservations(snapshot, ports));
    }
    out.retain(|f| !acts_on_a_victim(snapshot, f));
    out
}

/// Whether `f` would act on a container whose last start failed because its port was
/// taken: the victim of whatever holds the port (a user can squat a restarting
/// container's port to make it look dormant or crash-looping). Only `blocked-start`,
/// which explains and never acts, is said of it.
fn acts_on_a_victim(snapshot: &Snapshot, f: &Finding) -> bool {
    f.action != Action::None
        && f.container
            .and_then(|i| snapshot.containers.get(i))
            .and_then(|c| c.error.as_deref())
            .and_then(port_conflict)
            .is_some()
}

/// The ports a container holds now, or else the ones it asks for.
pub(super) fn container_ports(c: &Container) -> Vec<PortRef> {
    let mut refs: Vec<PortRef> = if c.live.is_empty() {
        c.requested
            .iter()
            .filter_map(|r| {
                let range = r.host_ports?;
                (range.start == range.end).then(|| PortRef {
                    proto: r.proto,
                    ip: r.host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
                    port: range.start,
                })
            })
            .collect()
    } else {
        c.live
            .iter()
            .map(|b| PortRef {
                proto: b.proto,
                ip: b.host_ip,
                port: b.host_port,
            })
            .collect()
    };
    refs.sort();
    refs.dedup();
    refs
}

pub(super) fn describe(snapshot: &Snapshot, c: &Container) -> String {
    let who = snapshot.container_label(c);
    match (c.compose_project(), c.compose_service()) {
        (Some(p), Some(s)) => format!("{who} (compose project {p}, service {s})"),
        (Some(p), None) => format!("{who} (compose project {p})"),
        _ => who,
    }
}

fn age(snapshot: &Snapshot, since: Option<&Timestamp>) -> Option<String> {
    Some(human(snapshot.taken_at? - since?.unix()))
}

pub(super) fn list(ports: &[PortRef]) -> String {
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names who holds a port entry, for sentences.
pub fn holder_phrase(snapshot: &Snapshot, entry: &PortEntry) -> String {
    let pid = entry
        .pids
        .first()
        .map(|p| format!(" pid {p}"))
        .unwrap_or_default();
    let process = entry.process.as_deref().unwrap_or("a process");
    match &entry.owner {
        Owner::Container { .. } => match entry.container(snapshot) {
            Some(c) => describe(snapshot, c),
            None => "a container".into(),
        },
        Owner::Proxy { .. } => format!("docker-proxy{pid} (no container)"),
        Owner::Conmon { .. } => format!("conmon{pid} (its container does not run)"),
        Owner::Forwarder { product } => format!("{product}'s forwarder {process}{pid}"),
        Owner::Engine => format!("the engine{pid}"),
        Owner::NotJudged { .. } => format!("{process}{pid} (another engine's, not judged)"),
        Owner::Process => format!("{process}{pid}"),
        Owner::Unknown { .. } => "an unknown process".into(),
    }
}
