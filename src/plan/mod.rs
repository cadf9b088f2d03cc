//! Pure planning: findings (or named ports) and filters in, the list of actions and of
//! what is kept, with why, out. Nothing here touches the system: [`crate::act`] carries a
//! plan out.

pub mod baseline;
mod free;
mod prune;

pub use free::free;
pub use prune::prune;

#[cfg(test)]
mod tests;

use crate::analyze::findings::{Action, Kind, PortRef};
use crate::model::{Container, ContainerState, Process, Snapshot};
use crate::portspec::PortSpec;

/// The label that protects a container from portreap.
pub const KEEP_LABEL: &str = "portreap.keep";

/// `KEY` or `KEY=VALUE`: the one reading of `--label` and of the config file's
/// `keep_labels`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// The label's key.
    pub key: String,
    /// The value it must have; any value when `None`.
    pub value: Option<String>,
}

impl Label {
    /// Whether `c` carries this label (with this value, when one is given).
    pub fn matches(&self, c: &Container) -> bool {
        match (c.labels.get(&self.key), &self.value) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
            (None, _) => false,
        }
    }
}

/// Text that is not `KEY` or `KEY=VALUE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelError(String);

impl std::fmt::Display for LabelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}' is not a label (expected KEY or KEY=VALUE)", self.0)
    }
}

impl std::error::Error for LabelError {}

impl std::str::FromStr for Label {
    type Err = LabelError;

    fn from_str(text: &str) -> Result<Self, LabelError> {
        let (key, value) = match text.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (text, None),
        };
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(LabelError(text.to_owned()));
        }
        Ok(Label {
            key: key.to_owned(),
            value,
        })
    }
}

/// What the user asked prune to consider.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// Act on suspects as well as leaks.
    pub include_suspects: bool,
    /// Only these kinds (and then regardless of severity, except `info`).
    pub kinds: Vec<Kind>,
    /// Only findings on these ports.
    pub ports: Option<PortSpec>,
    /// Only containers of this compose project.
    pub project: Option<String>,
    /// Only containers with all these labels (`KEY` or `KEY=VALUE`).
    pub labels: Vec<Label>,
    /// Stop containers instead of removing them.
    pub stop_only: bool,
    /// Containers created less than this long ago are left alone (a `compose up` may be
    /// starting them); zero disables the guard.
    pub min_age: std::time::Duration,
    /// Act only on holders older than this (containers by creation, processes by start):
    /// a cron job's policy, on top of `min_age`.
    pub older_than: Option<std::time::Duration>,
    /// What the config file protects.
    pub protect: Protect,
}

/// Holders the config file says are never acted on.
#[derive(Clone, Debug, Default)]
pub struct Protect {
    /// Compose projects.
    pub projects: Vec<String>,
    /// Images, as the container names them.
    pub images: Vec<String>,
    /// Ports.
    pub ports: Option<PortSpec>,
    /// Labels (`KEY` or `KEY=VALUE`) that protect like `portreap.keep`.
    pub labels: Vec<Label>,
}

impl Protect {
    /// Why a container is protected, if it is.
    fn container(&self, c: &Container, ports: &[PortRef]) -> Option<String> {
        if let Some(p) = c
            .compose_project()
            .filter(|p| self.projects.iter().any(|q| q == p))
        {
            return Some(format!("protected by the config file: compose project {p}"));
        }
        if self.images.contains(&c.image) {
            return Some(format!("protected by the config file: image {}", c.image));
        }
        if let Some(l) = self.labels.iter().find(|l| l.matches(c)) {
            return Some(format!("protected by the config file: label {}", l.key));
        }
        self.ports(ports)
    }

    /// Why ports are protected, if one is.
    fn ports(&self, ports: &[PortRef]) -> Option<String> {
        let spec = self.ports.as_ref()?;
        let hit = ports.iter().find(|p| spec.matches(p.proto, p.port))?;
        Some(format!(
            "protected by the config file: port {}/{}",
            hit.port, hit.proto
        ))
    }
}

/// What to do to a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerStep {
    /// Stop (unpausing first), then remove.
    Remove,
    /// Stop only (unpausing first).
    Stop,
}

/// What must still hold right before acting, or the action is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// The state the plan saw.
    pub planned: ContainerState,
    /// States that still justify the action.
    pub states: Vec<ContainerState>,
    /// Health that must still be reported (unhealthy), if the finding rests on it.
    pub health: Option<crate::model::Health>,
    /// Paths that must still be missing (an orphaned compose project's directory or files).
    pub missing_paths: Vec<String>,
    /// A service its compose files must still not define (an orphan service).
    pub orphan: Option<Orphan>,
}

/// An orphan service's container: the service its files must still leave undefined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    /// The project's compose files, host paths.
    pub files: Vec<String>,
    /// The service.
    pub service: String,
}

impl Expect {
    /// Only "still the same container in the same state": for actions that do not rest on
    /// a finding.
    pub fn unchanged(c: &Container) -> Self {
        Expect {
            planned: c.state.clone(),
            states: vec![c.state.clone()],
            health: None,
            missing_paths: Vec::new(),
            orphan: None,
        }
    }
}

/// Who is acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A container, by full id.
    Container {
        /// Full id: a container recreated under the same name is another container.
        id: String,
        /// Name, for people.
        name: String,
        /// Compose project, if any.
        project: Option<String>,
        /// Which queried engine knows it (see [`crate::model::Container::engine`]).
        engine: usize,
        /// Stop or remove.
        step: ContainerStep,
        /// What must still be true.
        expect: Expect,
    },
    /// A process, by PID and start time.
    Process {
        /// PID.
        pid: u32,
        /// Name, for people.
        name: String,
        /// Start time in ticks since boot: with the PID, the identity.
        start_ticks: Option<u64>,
        /// Command line at planning time; must be unchanged.
        cmdline: Vec<String>,
        /// Executable at planning time; must be unchanged (a process that exec'd another
        /// program keeps its PID, start time and possibly its command line).
        exe: Option<crate::model::Executable>,
        /// User at planning time; must be unchanged.
        uid: Option<u32>,
    },
}

/// One planned action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedAction {
    /// The findings that justify it.
    pub kinds: Vec<Kind>,
    /// Ports it should free.
    pub ports: Vec<PortRef>,
    /// Who.
    pub target: Target,
    /// Index of the container in the snapshot, for reports.
    pub container: Option<usize>,
    /// Whether its ports are this host's, so that a bind probe here proves them free
    /// after acting: a process here, or a container of an engine proven to run here (a
    /// remote engine's ports are on its own host).
    pub probed_here: bool,
}

impl PlannedAction {
    /// The action's name in the JSON contract.
    pub fn action(&self) -> Action {
        match &self.target {
            Target::Container {
                step: ContainerStep::Remove,
                ..
            } => Action::RemoveContainer,
            Target::Container {
                step: ContainerStep::Stop,
                ..
            } => Action::StopContainer,
            Target::Process { .. } => Action::KillProcess,
        }
    }

    /// `remove container web-1`, `kill docker-proxy pid 123`.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Container {
                name,
                step,
                project,
                ..
            } => {
                let verb = match step {
                    ContainerStep::Remove => "remove",
                    ContainerStep::Stop => "stop",
                };
                match project {
                    Some(p) => format!("{verb} container {name} (compose project {p})"),
                    None => format!("{verb} container {name}"),
                }
            }
            Target::Process { pid, name, .. } => format!("kill {name} pid {pid}"),
        }
    }
}

/// A finding prune will not act on, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The findings concerned.
    pub kinds: Vec<Kind>,
    /// Their ports.
    pub ports: Vec<PortRef>,
    /// Container index, if a container.
    pub container: Option<usize>,
    /// Why it is left alone.
    pub reason: String,
}

/// The plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// What will be done, one target each.
    pub actions: Vec<PlannedAction>,
    /// Containers selected but protected by the keep label.
    pub kept: Vec<Held>,
    /// Selected findings that no action may address (the never-act list).
    pub refused: Vec<Held>,
}

pub(crate) fn process_action(
    process: &crate::model::Process,
    kinds: Vec<Kind>,
    ports: Vec<PortRef>,
) -> PlannedAction {
    PlannedAction {
        kinds,
        ports,
        target: Target::Process {
            pid: process.pid,
            name: process.name.clone(),
            start_ticks: process.start_ticks,
            cmdline: process.cmdline.clone(),
            exe: process.exe.clone(),
            uid: process.uid,
        },
        container: None,
        probed_here: true,
    }
}

/// Stop or remove the snapshot's container `index` (a dead container can only be
/// removed), if `expect` still holds.
pub(crate) fn container_action(
    snapshot: &Snapshot,
    index: usize,
    kinds: Vec<Kind>,
    ports: Vec<PortRef>,
    stop_only: bool,
    expect: Expect,
) -> PlannedAction {
    let c = &snapshot.containers[index];
    PlannedAction {
        target: Target::Container {
            id: c.id.clone(),
            name: c.name.clone(),
            project: c.compose_project().map(str::to_owned),
            engine: c.engine,
            step: if stop_only && c.state != ContainerState::Dead {
                ContainerStep::Stop
            } else {
                ContainerStep::Remove
            },
            expect,
        },
        kinds,
        ports,
        container: Some(index),
        probed_here: snapshot.engine_of(c).process.is_some(),
    }
}

/// Whether a container passes the project and label filters.
pub(crate) fn container_selected(c: &Container, filters: &Filters) -> bool {
    if let Some(project) = &filters.project {
        if c.compose_project() != Some(project.as_str()) {
            return false;
        }
    }
    filters.labels.iter().all(|l| l.matches(c))
}

fn merge(ports: &mut Vec<PortRef>, more: &[PortRef]) {
    for p in more {
        if !ports.contains(p) {
            ports.push(*p);
        }
    }
    ports.sort();
}

/// What each holder (a container's index, a PID) is planned for: the finding kinds and
/// the ports, gathered across entries and findings, each once.
struct Holdings<K>(std::collections::BTreeMap<K, (Vec<Kind>, Vec<PortRef>)>);

impl<K: Ord> Holdings<K> {
    fn new() -> Self {
        Holdings(std::collections::BTreeMap::new())
    }

    fn add(&mut self, holder: K, kinds: &[Kind], ports: &[PortRef]) {
        let (have, held) = self.0.entry(holder).or_default();
        for k in kinds {
            if !have.contains(k) {
                have.push(*k);
            }
        }
        merge(held, ports);
    }
}

impl<K> IntoIterator for Holdings<K> {
    type Item = (K, (Vec<Kind>, Vec<PortRef>));
    type IntoIter = std::collections::btree_map::IntoIter<K, (Vec<Kind>, Vec<PortRef>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Plan {
    fn keep(
        &mut self,
        kinds: Vec<Kind>,
        ports: Vec<PortRef>,
        container: Option<usize>,
        reason: String,
    ) {
        self.kept.push(Held {
            kinds,
            ports,
            container,
            reason,
        });
    }
}

/// Why the keep label protects `c`, if it does: it wins over every verb and option.
fn kept_by_label(c: &Container) -> Option<String> {
    c.labels
        .get(KEEP_LABEL)
        .filter(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
        .map(|value| format!("label {KEEP_LABEL}={value}"))
}

/// The first uid of a person's account (Debian's `UID_MIN`); those below are the
/// system's.
const UID_MIN: u32 = 1000;

/// Daemons of the system that may hold a port a user asks for (the system bus, the init
/// system and its helpers, the authorization and login services). A name proves nothing
/// (any process may take one), but here it only ever spares a process.
const SYSTEM_DAEMONS: [&str; 7] = [
    "dbus-daemon",
    "dbus-broker",
    "dbus-broker-lau",
    "systemd",
    "polkitd",
    "sshd",
    "(sd-pam)",
];

/// Why a plain process holding `port` is not signalled even with `--kill-processes`: its
/// user cannot be read, it is a daemon of the system or runs under one, or the socket was
/// made by another user and handed to it (an unprivileged user can hand its socket to
/// the system bus, and a prune run as root must not kill the bus for it). `None` when
/// none of these can be said.
pub(crate) fn plain_refusal(snapshot: &Snapshot, p: &Process, port: &PortRef) -> Option<String> {
    system_daemon(snapshot, p).or_else(|| handed_over(snapshot, p, port))
}

/// A user of the system rather than a person: below Debian's `UID_MIN`, or in the ranges
/// kept for `nobody` and systemd's dynamic users.
fn system_uid(uid: u32) -> bool {
    !(UID_MIN..60_000).contains(&uid)
}

/// Why `p` is a daemon of the system, if it is: by name, as a system user's process that
/// leads its own session or was left to init (a double-forking daemon), or as a worker
/// of such a daemon that runs as another user (a web server's workers).
pub(crate) fn system_daemon(snapshot: &Snapshot, p: &Process) -> Option<String> {
    let Some(uid) = p.uid else {
        return Some(format!(
            "{} (pid {}): its user cannot be read",
            p.name, p.pid
        ));
    };
    if let Some(why) = daemon_itself(p, uid) {
        return Some(why);
    }
    // A worker that dropped privileges below a daemon (a web server's www-data workers
    // under its root master): its parent, of another user, is a daemon of the system.
    let above = snapshot
        .host
        .processes
        .get(&p.ppid)
        .filter(|a| a.pid != 1 && a.uid != Some(uid))
        .filter(|a| a.uid.is_some_and(|u| daemon_itself(a, u).is_some()))?;
    Some(format!(
        "{} (pid {}) runs under {} (pid {}), a daemon of the system: stop its service instead",
        p.name, p.pid, above.name, above.pid
    ))
}

fn daemon_itself(p: &Process, uid: u32) -> Option<String> {
    let (name, pid) = (&p.name, p.pid);
    if SYSTEM_DAEMONS.contains(&name.as_str()) || name.starts_with("systemd-") {
        return Some(format!(
            "{name} (pid {pid}) is a daemon of the system: stop its service instead"
        ));
    }
    let detached = p.session == Some(pid) || p.ppid == 1;
    (system_uid(uid) && detached).then(|| {
        format!(
            "{name} (pid {pid}) runs as system user {uid} on its own (it leads its session, or init adopted it): a daemon of the system, stop its service instead"
        )
    })
}

fn handed_over(snapshot: &Snapshot, p: &Process, port: &PortRef) -> Option<String> {
    let holder = p.uid?;
    let host = &snapshot.host;
    let socket = host.sockets.iter().find(|s| {
        s.proto == port.proto && s.port == port.port && s.ip == port.ip && s.pids.contains(&p.pid)
    })?;
    let creator = socket.uid;
    // Made by an ancestor that holds it too (a server whose workers dropped privileges):
    // privileges flow down the process tree, a descriptor passed over a socket does not.
    let from_ancestor = host
        .ancestors(p.pid)
        .any(|a| a.uid == Some(creator) && socket.pids.contains(&a.pid));
    (creator != holder && !from_ancestor).then(|| {
        format!(
            "the socket on {port} was made by uid {creator} and handed to {} (pid {}, uid {holder}), which did not make it: stop the program of uid {creator} that made it",
            p.name, p.pid
        )
    })
}

/// What `free` may touch.
#[derive(Clone, Copy, Debug)]
pub struct FreeOptions {
    /// Signal plain processes too.
    pub kill_processes: bool,
    /// Stop containers instead of removing them.
    pub stop_only: bool,
    /// Our effective uid: a process of another user is refused unless we are root.
    pub euid: u32,
}
