//! The finding catalogue: one small rule per kind of leak, each over plain facts.
//!
//! False positives are the worst bug this tool can have: every rule requires positive
//! evidence (a state, a missing directory, a proxy whose target is gone), never the mere
//! absence of information, and a healthy holder matches none.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::{Owner, PortEntry, Via};
use crate::model::Timestamp;
use crate::model::{Container, ContainerState, Process, Proto, Snapshot};
use crate::time::human;

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
    /// Evidence, in a sentence a user can act on.
    pub reason: String,
    /// What freeing the ports takes.
    pub action: Action,
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
        out.extend(orphaned_proxies(snapshot, ports));
        if snapshot.podman_queried() {
            out.extend(orphaned_conmons(snapshot, ports));
        }
    }
    for (index, container) in snapshot.containers.iter().enumerate() {
        out.extend(container_findings(snapshot, ports, index, container));
    }
    out.extend(superseded_compose_projects(snapshot));
    out.extend(super::compose::orphan_services(snapshot));
    if engine_complete {
        out.extend(engine_reservations(snapshot, ports));
    }
    out
}

fn port_ref(entry: &PortEntry) -> PortRef {
    PortRef {
        proto: entry.proto,
        ip: entry.ip,
        port: entry.port,
    }
}

/// A docker-proxy listening for a port whose target no container that publishes that port
/// has. Both proxies of one binding (IPv4 and IPv6) make one finding.
fn orphaned_proxies(snapshot: &Snapshot, ports: &[PortEntry]) -> Vec<Finding> {
    let mut groups: BTreeMap<(Proto, u16, Option<SocketAddr>), Vec<&PortEntry>> = BTreeMap::new();
    for entry in ports {
        if let Owner::Proxy { target } = &entry.owner {
            let to = target
                .as_ref()
                .map(|t| SocketAddr::new(t.container_ip, t.container_port));
            groups
                .entry((entry.proto, entry.port, to))
                .or_default()
                .push(entry);
        }
    }
    groups
        .into_iter()
        .map(|((proto, port, to), entries)| {
            let mut pids: Vec<u32> = entries.iter().flat_map(|e| e.pids.iter().copied()).collect();
            pids.sort_unstable();
            pids.dedup();
            let listen = listening(&entries);
            let pid_list = pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
            let why = match to {
                Some(to) => {
                    let owner = snapshot
                        .containers
                        .iter()
                        .find(|c| c.addresses.contains(&to.ip()));
                    match owner {
                        Some(c) => format!(
                            "forwards {listen} to {to}; that address is now container {}'s, which does not publish {port}/{proto}",
                            c.name
                        ),
                        None => format!("forwards {listen} to {to}; no container has that address"),
                    }
                }
                None => format!("listens on {listen}; no container publishes {port}/{proto}"),
            };
            let reason = format!("docker-proxy pid {pid_list} {why}");
            orphaned_forwarder(snapshot, &entries, pids, reason)
        })
        .collect()
}

/// `0.0.0.0:3105 and [::]:3105`.
fn listening(entries: &[&PortEntry]) -> String {
    entries
        .iter()
        .map(|e| SocketAddr::new(e.ip, e.port).to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The `orphaned-proxy` finding for forwarders `pids` holding `entries`: a kill, unless one
/// of them is on the never-act list, which the reason then says.
fn orphaned_forwarder(
    snapshot: &Snapshot,
    entries: &[&PortEntry],
    pids: Vec<u32>,
    mut reason: String,
) -> Finding {
    let protected: Vec<String> = pids
        .iter()
        .filter_map(|pid| snapshot.host.processes.get(pid))
        .filter_map(never_act)
        .collect();
    let action = if protected.is_empty() {
        Action::KillProcess
    } else {
        reason.push_str(&format!("; not acted on: {}", protected.join(", ")));
        Action::None
    };
    Finding {
        kind: Kind::OrphanedProxy,
        severity: Kind::OrphanedProxy.severity(),
        ports: entries.iter().map(|e| port_ref(e)).collect(),
        container: None,
        pids,
        reason,
        action,
    }
}

/// A Podman `conmon` holding published ports for a container the (Podman) engine no longer
/// runs: the forwarder outlived its container.
fn orphaned_conmons(snapshot: &Snapshot, ports: &[PortEntry]) -> Vec<Finding> {
    let mut groups: BTreeMap<(u32, String), Vec<&PortEntry>> = BTreeMap::new();
    for entry in ports {
        if let (Owner::Conmon { container_id, .. }, Some(pid)) = (&entry.owner, entry.holder_pid) {
            groups
                .entry((pid, container_id.clone()))
                .or_default()
                .push(entry);
        }
    }
    groups
        .into_iter()
        .map(|((pid, id), entries)| {
            let listen = listening(&entries);
            let known = snapshot.containers.iter().find(|c| c.id == id);
            let name = match &entries[0].owner {
                Owner::Conmon {
                    container_name: Some(n),
                    ..
                } => n.clone(),
                _ => id.get(..12).unwrap_or(&id).to_owned(),
            };
            let state = match known {
                Some(c) => format!("which is {}", c.state),
                None => "which the engine no longer knows".to_owned(),
            };
            let reason =
                format!("conmon pid {pid} holds {listen} for Podman container {name}, {state}");
            orphaned_forwarder(snapshot, &entries, vec![pid], reason)
        })
        .collect()
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

/// The part of a start error that matters: the engine wraps it in "driver failed
/// programming external connectivity on endpoint NAME (ID): ...".
pub fn conflict_core(error: &str) -> &str {
    [
        "Bind for ",
        "Error starting userland proxy: ",
        "failed to bind host port for ",
        "listen ",
    ]
    .iter()
    .find_map(|marker| error.find(marker).map(|i| &error[i..]))
    .unwrap_or(error)
}

/// Whether a start error says the host port was taken, and which port.
pub fn port_conflict(error: &str) -> Option<(Option<Proto>, Option<IpAddr>, u16)> {
    let lower = error.to_ascii_lowercase();
    if !(lower.contains("port is already allocated") || lower.contains("address already in use")) {
        return None;
    }
    // "Bind for 0.0.0.0:3000 failed: port is already allocated"
    // "listen tcp4 0.0.0.0:3000: bind: address already in use"
    // "listen udp6 [::]:53: bind: address already in use"
    // Engines 28+, which bind the host port themselves:
    // "failed to bind host port for 0.0.0.0:3000:172.17.0.2:80/tcp: address already in use"
    if let Some(mapping) = lower
        .find("failed to bind host port for ")
        .map(|i| &error[i + "failed to bind host port for ".len()..])
    {
        return host_side(mapping);
    }
    let proto = if lower.contains("listen udp") {
        Some(Proto::Udp)
    } else if lower.contains("listen tcp") {
        Some(Proto::Tcp)
    } else {
        None
    };
    for word in error.split(|c: char| c.is_whitespace()) {
        let word = word.trim_end_matches(':');
        if let Ok(addr) = word.parse::<SocketAddr>() {
            return Some((proto, Some(addr.ip()), addr.port()));
        }
        // Engines 28+ print an IPv6 host address unbracketed: "Bind for :::3000 failed".
        if let Some((ip, port)) = word.rsplit_once(':') {
            if let (Ok(ip), Ok(port)) = (ip.parse::<IpAddr>(), port.parse::<u16>()) {
                return Some((proto, Some(ip), port));
            }
        }
    }
    None
}

/// The host side of an engine's port mapping `HOSTIP:PORT:CONTAINERIP:PORT/PROTO`, the
/// host address bracketed when IPv6 (`[::]:53:...`).
fn host_side(mapping: &str) -> Option<(Option<Proto>, Option<IpAddr>, u16)> {
    let mapping = mapping.split_whitespace().next()?.trim_end_matches(':');
    let proto = match mapping.rsplit_once('/').map(|(_, p)| p) {
        Some("tcp") => Some(Proto::Tcp),
        Some("udp") => Some(Proto::Udp),
        _ => None,
    };
    let (ip, rest) = match mapping.strip_prefix('[') {
        Some(v6) => {
            let (ip, rest) = v6.split_once(']')?;
            (ip, rest.strip_prefix(':')?)
        }
        None => mapping.split_once(':')?,
    };
    let port = rest.split(':').next()?.parse().ok()?;
    Some((proto, Some(ip.parse().ok()?), port))
}

fn container_findings(
    snapshot: &Snapshot,
    ports: &[PortEntry],
    index: usize,
    c: &Container,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let refs = container_ports(c);
    let mut push = |kind: Kind, reason: String, action: Action, refs: Vec<PortRef>| {
        out.push(Finding {
            kind,
            severity: kind.severity(),
            ports: refs,
            container: Some(index),
            pids: Vec::new(),
            reason,
            action,
        })
    };
    let who = describe(snapshot, c);
    let has_ports = !refs.is_empty();

    if c.state == ContainerState::Dead && has_ports {
        push(
            Kind::DeadContainer,
            format!(
                "{who} is dead (its removal failed part way) and still has bindings {}",
                list(&refs)
            ),
            Action::RemoveContainer,
            refs.clone(),
        );
    }

    if has_ports && snapshot.fs.visible {
        if let Some((dir, files)) = c.compose_paths() {
            let exists = |p: &String| snapshot.fs.exists.get(p).copied();
            let unjudged = std::iter::once(&dir)
                .chain(&files)
                .any(|p| snapshot.fs.unjudged.contains_key(p));
            let gone = if unjudged {
                None
            } else if exists(&dir) == Some(false) {
                Some(format!("its working directory {dir} no longer exists"))
            } else if !files.is_empty() && files.iter().all(|f| exists(f) == Some(false)) {
                Some(format!(
                    "none of its compose files exist any more ({})",
                    files.join(", ")
                ))
            } else {
                None
            };
            if let Some(gone) = gone {
                push(
                    Kind::OrphanedCompose,
                    format!(
                        "{who}: {gone}; nothing can `compose down` it (ports {})",
                        list(&refs)
                    ),
                    Action::RemoveContainer,
                    refs.clone(),
                );
            }
        }
    }

    if c.state == ContainerState::Paused && !c.live.is_empty() {
        let since = age(snapshot, c.started_at.as_ref())
            .map(|a| format!(" (up {a})"))
            .unwrap_or_default();
        // Its proxies may have died while it slept: then the engine still reserves the
        // ports, but nothing accepts on them.
        let (reserved, open): (Vec<PortRef>, Vec<PortRef>) =
            refs.iter().partition(|r| reserved_only(ports, index, r));
        let mut says = Vec::new();
        if !open.is_empty() {
            says.push(format!(
                "{} accept connections and nothing answers",
                list(&open)
            ));
        }
        if !reserved.is_empty() {
            says.push(format!(
                "the engine still reserves {} for it with no socket open (its proxies are gone): connections are refused and nothing else can publish them",
                list(&reserved)
            ));
        }
        push(
            Kind::PausedContainer,
            format!("{who} is paused{since}: {}", says.join("; ")),
            Action::RemoveContainer,
            refs.clone(),
        );
    }

    if c.state == ContainerState::Running
        && c.health == Some(crate::model::Health::Unhealthy)
        && !c.live.is_empty()
    {
        let bound = if c.failing_since_exact {
            ""
        } else {
            "at least "
        };
        let duration = age(snapshot, c.failing_since.as_ref())
            .map(|a| format!(" for {bound}{a}"))
            .unwrap_or_default();
        push(
            Kind::UnhealthyContainer,
            format!(
                "{who} has been unhealthy{duration} ({} failed checks in a row) while publishing {}",
                c.failing_streak,
                list(&refs)
            ),
            Action::RemoveContainer,
            refs.clone(),
        );
    }

    let restarts = c
        .restart_policy
        .as_ref()
        .is_some_and(crate::model::RestartPolicy::restarts);
    let uptime = c
        .started_at
        .as_ref()
        .map(Timestamp::unix)
        .zip(snapshot.taken_at)
        .map(|(started, now)| now - started);
    let looping_now = c.state == ContainerState::Restarting;
    // Caught between two crashes: up again, but only briefly, after several restarts.
    let looping_between = c.state == ContainerState::Running
        && restarts
        && c.restart_count >= 3
        && uptime.is_some_and(|u| u < 60);
    if (looping_now || looping_between) && has_ports {
        let state = if looping_now {
            "restarting"
        } else {
            "up again briefly"
        };
        push(
            Kind::RestartingContainer,
            format!(
                "{who} is in a restart loop ({state}, {} restarts, last exit code {}): {} flap",
                c.restart_count,
                c.exit_code.map_or("?".to_owned(), |e| e.to_string()),
                list(&refs)
            ),
            Action::RemoveContainer,
            refs.clone(),
        );
    }

    if c.state == ContainerState::Exited
        && c.restart_policy == Some(crate::model::RestartPolicy::Always)
        && has_ports
    {
        let ago = age(snapshot, c.finished_at.as_ref())
            .map(|a| format!(" {a} ago"))
            .unwrap_or_default();
        push(
            Kind::DormantBinding,
            format!(
                "{who} exited{ago} with restart policy `always`: it will bind {} again when the engine restarts",
                list(&refs)
            ),
            Action::RemoveContainer,
            refs.clone(),
        );
    }

    if matches!(c.state, ContainerState::Created | ContainerState::Exited) {
        if let Some((proto, ip, port)) = c.error.as_deref().and_then(port_conflict) {
            let holders: Vec<String> = ports
                .iter()
                .filter(|e| e.bound && e.port == port && proto.is_none_or(|p| p == e.proto))
                .filter(|e| !matches!(e.owner, Owner::Container { index: i, .. } if i == index))
                .map(|e| holder_phrase(snapshot, e))
                .collect();
            let mut holders = holders;
            holders.sort();
            holders.dedup();
            // No socket on it, but a container's binding in the engine still takes it:
            // the next start fails the same way.
            let mut reservers: Vec<String> = ports
                .iter()
                .filter(|e| !e.bound && e.port == port && proto.is_none_or(|p| p == e.proto))
                .filter(|e| matches!(e.owner, Owner::Container { index: i, .. } if i != index))
                .map(|e| holder_phrase(snapshot, e))
                .collect();
            reservers.sort();
            reservers.dedup();
            let now = if holders.is_empty() && !reservers.is_empty() {
                format!(
                    "no socket holds port {port} now, but the engine still reserves it for {}",
                    reservers.join("; ")
                )
            } else if holders.is_empty() {
                format!("port {port} is free now")
            } else {
                format!("port {port} is now held by {}", holders.join("; "))
            };
            let mut blocked: Vec<PortRef> =
                refs.iter().copied().filter(|r| r.port == port).collect();
            if blocked.is_empty() {
                blocked.push(PortRef {
                    proto: proto.unwrap_or(Proto::Tcp),
                    ip: ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
                    port,
                });
            }
            push(
                Kind::BlockedStart,
                format!(
                    "{who} could not start: \"{}\"; {now}",
                    conflict_core(c.error.as_deref().unwrap_or_default())
                ),
                Action::None,
                blocked,
            );
        }
    }
    out
}

/// Whether the engine reserves `r` for the container with no socket behind it (a port
/// whose sockets were not read has no such entry: unseen is not unbacked).
fn reserved_only(ports: &[PortEntry], index: usize, r: &PortRef) -> bool {
    ports.iter().any(|e| {
        e.proto == r.proto
            && e.ip == r.ip
            && e.port == r.port
            && matches!(e.owner, Owner::Container { index: i, via: Via::Reservation } if i == index)
    })
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

/// Compose's default project name for a directory: its base name, lower-cased, keeping
/// the characters compose v2 keeps (v1 kept only letters and digits; both are accepted).
fn project_names_for(dir: &str) -> [String; 2] {
    let base = dir
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_lowercase();
    let v2: String = base
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    let v1: String = base
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .collect();
    [v2, v1]
}

/// Two compose projects started from one directory, where only one carries the name that
/// directory gives today: the other was started under an old name (a renamed folder, an
/// old `-p`) and is flagged only when its containers are all older than the current
/// project's and publish a port the current project asks for, the port conflict that makes
/// it a leak rather than a deliberate second instance.
fn superseded_compose_projects(snapshot: &Snapshot) -> Vec<Finding> {
    let mut by_dir: BTreeMap<&str, BTreeMap<&str, Vec<usize>>> = BTreeMap::new();
    for (i, c) in snapshot.containers.iter().enumerate() {
        if let (Some(project), Some(dir)) = (
            c.compose_project(),
            c.labels.get(crate::model::labels::WORKING_DIR),
        ) {
            by_dir
                .entry(dir)
                .or_default()
                .entry(project)
                .or_default()
                .push(i);
        }
    }
    let mut out = Vec::new();
    for (dir, projects) in by_dir {
        if projects.len() < 2 {
            continue;
        }
        let names = project_names_for(dir);
        let current: Vec<&str> = projects
            .keys()
            .copied()
            .filter(|p| names.iter().any(|n| n == p))
            .collect();
        let [current] = current[..] else { continue };
        let created = |i: &usize| {
            snapshot.containers[*i]
                .created
                .as_ref()
                .map(Timestamp::unix)
        };
        let current_members = &projects[current];
        let Some(current_oldest) = current_members
            .iter()
            .map(created)
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().min())
        else {
            continue;
        };
        let wanted: Vec<(Proto, u16)> = current_members
            .iter()
            .flat_map(|i| container_ports(&snapshot.containers[*i]))
            .map(|r| (r.proto, r.port))
            .collect();
        for (project, members) in &projects {
            if *project == current {
                continue;
            }
            let all_older = members
                .iter()
                .all(|i| created(i).is_some_and(|t| t < current_oldest));
            if !all_older {
                continue;
            }
            for &i in members {
                let c = &snapshot.containers[i];
                let clash: Vec<PortRef> = container_ports(c)
                    .into_iter()
                    .filter(|r| wanted.contains(&(r.proto, r.port)))
                    .collect();
                if clash.is_empty() {
                    continue;
                }
                out.push(Finding {
                    kind: Kind::OrphanedCompose,
                    severity: Kind::OrphanedCompose.severity(),
                    reason: format!(
                        "{}: superseded by compose project {current} from the same directory {dir}, which wants {}",
                        describe(snapshot, c),
                        list(&clash)
                    ),
                    ports: clash,
                    container: Some(i),
                    pids: Vec::new(),
                    action: Action::RemoveContainer,
                });
            }
        }
    }
    out
}

/// Ports dockerd serves itself (API and swarm), which are not reservations.
fn engine_service_ports(process: &Process) -> Vec<u16> {
    let mut ports = vec![2375, 2376, 2377, 7946];
    let mut args = process.cmdline.iter();
    while let Some(arg) = args.next() {
        let value = if arg == "-H" || arg == "--host" {
            args.next().cloned()
        } else {
            arg.strip_prefix("--host=")
                .or_else(|| arg.strip_prefix("-H="))
                .map(str::to_owned)
        };
        if let Some(port) = value
            .as_deref()
            .and_then(|v| v.rsplit(':').next())
            .and_then(|p| p.trim_end_matches('/').parse().ok())
        {
            ports.push(port);
        }
    }
    ports
}

/// Sockets the engine holds for no container, and bindings the engine reports that no
/// socket backs: only the engine (or restarting the container) releases them.
fn engine_reservations(snapshot: &Snapshot, ports: &[PortEntry]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut by_container: BTreeMap<(usize, Proto, u16), Vec<&PortEntry>> = BTreeMap::new();
    for entry in ports {
        match entry.owner {
            Owner::Engine => {
                let holder = entry.holder(snapshot);
                if holder.is_some_and(|p| engine_service_ports(p).contains(&entry.port)) {
                    continue;
                }
                out.push(Finding {
                    kind: Kind::EngineReservation,
                    severity: Kind::EngineReservation.severity(),
                    ports: vec![port_ref(entry)],
                    container: None,
                    pids: entry.pids.clone(),
                    reason: format!(
                        "the engine (dockerd pid {}) holds {} for no container; only an engine restart releases it",
                        entry.pids.first().map_or("?".into(), u32::to_string),
                        port_ref(entry)
                    ),
                    action: Action::None,
                });
            }
            Owner::Container {
                index,
                via: Via::Reservation,
            } => by_container
                .entry((index, entry.proto, entry.port))
                .or_default()
                .push(entry),
            _ => {}
        }
    }
    for ((index, proto, port), entries) in by_container {
        let c = &snapshot.containers[index];
        let forwarder = if snapshot.engine_of(c).is_podman() {
            "conmon"
        } else {
            "docker-proxy"
        };
        let refs: Vec<PortRef> = entries.iter().map(|e| port_ref(e)).collect();
        let reason = if matches!(
            c.state,
            ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
        ) {
            format!(
                "the engine reserves {port}/{proto} for {} but no socket backs it (its {forwarder} is gone): the port is unusable until the container or the engine restarts",
                describe(snapshot, c)
            )
        } else {
            format!(
                "the engine still lists {} for {}, which is {}, and no socket backs it: a stale record only an engine restart clears",
                list(&refs),
                describe(snapshot, c),
                c.state
            )
        };
        out.push(Finding {
            kind: Kind::EngineReservation,
            severity: Kind::EngineReservation.severity(),
            ports: refs,
            container: Some(index),
            pids: Vec::new(),
            reason,
            action: Action::None,
        });
    }
    out
}
