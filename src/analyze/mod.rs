//! Pure analysis: a [`Snapshot`] in, every port with its owner out. Nothing here touches
//! the system, so each rule is tested on hand-built or recorded snapshots.

mod attribute;
mod compose;
pub mod findings;
pub mod forwarder;
pub mod origin;
pub mod ownership;
pub mod why;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::model::{Container, Process, Proto, Snapshot};
use attribute::{attribute, requested, reservations};
use findings::{Finding, Kind};
use forwarder::ProxyTarget;

/// How a container holds one of its published ports on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Through a `docker-proxy` process.
    DockerProxy,
    /// The engine holds the socket itself (userland proxy disabled).
    Engine,
    /// A process of a `--network host` container holds it.
    HostNetwork,
    /// No owning process is visible, but the engine reports the binding on that address.
    Binding,
    /// The engine reports the binding but no socket backs it.
    Reservation,
    /// Through Podman's `conmon` process.
    Conmon,
    /// Through a desktop or rootless engine's forwarder (Docker Desktop, rootlesskit, ...).
    Forwarder,
    /// The container asks for the port but does not hold it (not running, or its start
    /// failed); shown because a finding concerns it.
    Requested,
}

impl Via {
    /// Stable name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::DockerProxy => "docker-proxy",
            Via::Engine => "engine",
            Via::HostNetwork => "host-network",
            Via::Binding => "binding",
            Via::Reservation => "reservation",
            Via::Conmon => "conmon",
            Via::Forwarder => "forwarder",
            Via::Requested => "requested",
        }
    }
}

/// Who holds a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A container (index into [`Snapshot::containers`]).
    Container {
        /// Which container.
        index: usize,
        /// How the host side is held.
        via: Via,
    },
    /// A `docker-proxy` whose target no container's live binding accounts for.
    Proxy {
        /// What its command line says it forwards, if it could be parsed.
        target: Option<ProxyTarget>,
    },
    /// A proven Podman `conmon` whose container is not a live container of the local
    /// Podman engines of its user that were asked.
    Conmon {
        /// The container id on its command line.
        container_id: String,
        /// The container name on its command line.
        container_name: Option<String>,
    },
    /// A forwarder of a desktop or rootless engine (never signalled), with no container of
    /// the queried engine matching the port.
    Forwarder {
        /// Docker Desktop, OrbStack, Colima, Lima, rootless Docker or rootless Podman.
        product: &'static str,
    },
    /// The engine holds the socket and no container claims it.
    Engine,
    /// A forwarder (or an engine's own socket) that the engines asked cannot judge: it
    /// belongs to an engine that was not asked, or no engine asked is proven to run on
    /// this host. Never a leak.
    NotJudged {
        /// Why, naming the engine it belongs to and how to ask it.
        reason: ownership::Unjudged,
    },
    /// An ordinary process.
    Process,
    /// Nobody visible; the reason says why.
    Unknown {
        /// Why the owner is not known.
        reason: String,
    },
}

impl Owner {
    /// Stable name of the owner kind, used in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Owner::Container { .. } => "container",
            Owner::Proxy { .. } => "docker-proxy",
            Owner::Conmon { .. } => "conmon",
            Owner::Forwarder { .. } => "forwarder",
            Owner::Engine => "engine",
            Owner::NotJudged { .. } => "not-judged",
            Owner::Process => "process",
            Owner::Unknown { .. } => "unknown",
        }
    }
}

/// One host port (a socket, or an engine binding with no socket) and who owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortEntry {
    /// Protocol.
    pub proto: Proto,
    /// Address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
    /// Whether a host socket exists (false for a bare engine reservation).
    pub bound: bool,
    /// PIDs holding the socket.
    pub pids: Vec<u32>,
    /// Name of the holding process that explains the socket (the proxy when a proxy and
    /// the engine share it).
    pub process: Option<String>,
    /// PID of that process.
    pub holder_pid: Option<u32>,
    /// The owner.
    pub owner: Owner,
    /// Kinds of the findings that concern this port.
    pub findings: Vec<Kind>,
    /// The worst severity among those findings (a kind's own can be raised by its
    /// evidence: an orphan service blocking its project's start is a leak).
    pub severity: Option<findings::Severity>,
    /// What disproves the holder's claim to be a forwarder or an engine, if it makes one.
    pub note: Option<String>,
    /// A dual-stack `::` socket (see [`crate::model::Socket::dual_stack`]): it backs an IPv4 wildcard
    /// binding too.
    pub dual_stack: bool,
}

impl PortEntry {
    /// The address and port, as findings and plans name them.
    pub fn port_ref(&self) -> findings::PortRef {
        findings::PortRef {
            proto: self.proto,
            ip: self.ip,
            port: self.port,
        }
    }

    /// The binding addresses it backs: its own, and IPv4's wildcard too for a dual-stack
    /// `::` socket. A finding names its container's bindings, so this is how an entry is
    /// told to be the one a finding concerns.
    pub fn served(&self) -> impl Iterator<Item = IpAddr> {
        let any4 = IpAddr::from(Ipv4Addr::UNSPECIFIED);
        std::iter::once(self.ip).chain(self.dual_stack.then_some(any4))
    }

    /// The container behind the port, if any.
    pub fn container<'a>(&self, snapshot: &'a Snapshot) -> Option<&'a Container> {
        match self.owner {
            Owner::Container { index, .. } => snapshot.containers.get(index),
            _ => None,
        }
    }

    /// The process named by [`PortEntry::process`].
    pub fn holder<'a>(&self, snapshot: &'a Snapshot) -> Option<&'a Process> {
        snapshot.host.processes.get(&self.holder_pid?)
    }

    /// Whether Docker is involved or a finding concerns it: shown by the default view.
    pub fn involves_docker(&self) -> bool {
        !self.findings.is_empty()
            || matches!(
                self.owner,
                Owner::Container { .. }
                    | Owner::Proxy { .. }
                    | Owner::Conmon { .. }
                    | Owner::Forwarder { .. }
                    | Owner::Engine
                    | Owner::NotJudged { .. }
            )
    }

    fn container_index(&self) -> Option<usize> {
        match self.owner {
            Owner::Container { index, .. } => Some(index),
            _ => None,
        }
    }
}

/// What the analysis concluded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Every port, sorted by port, protocol, then address (IPv4 first).
    pub ports: Vec<PortEntry>,
    /// Every finding, in catalogue order.
    pub findings: Vec<Finding>,
}

/// Attributes every socket and every live engine binding to its owner, then judges them.
pub fn analyze(snapshot: &Snapshot) -> Analysis {
    // The engines proven to run here, the only ones whose bindings explain this host's
    // sockets when no owner is visible.
    let local = ownership::local_engines(snapshot);
    let live = attribute::Live::new(snapshot);
    let mut ports: Vec<PortEntry> = snapshot
        .host
        .sockets
        .iter()
        .map(|socket| attribute(snapshot, &local, &live, socket))
        .collect();
    ports.extend(reservations(snapshot, &ports));
    let mut findings = findings::find(snapshot, &ports);
    findings.sort_by_key(|f| (f.kind, f.ports.first().map(|p| (p.port, p.proto))));
    ports.extend(requested(&ports, &findings));
    // A container's finding marks that container's entries only, never another holder of
    // the same port (a blocked container's port is someone else's). Indexed, so a
    // container publishing a hundred thousand ports costs no more than linear time.
    let mut marks: HashMap<(findings::PortRef, Option<usize>), Vec<&Finding>> = HashMap::new();
    for f in &findings {
        for p in &f.ports {
            marks.entry((*p, f.container)).or_default().push(f);
        }
    }
    for entry in &mut ports {
        let ips: Vec<IpAddr> = entry.served().collect();
        for ip in ips {
            let here = findings::PortRef {
                proto: entry.proto,
                ip,
                port: entry.port,
            };
            for f in marks
                .get(&(here, entry.container_index()))
                .into_iter()
                .flatten()
            {
                if !entry.findings.contains(&f.kind) {
                    entry.findings.push(f.kind);
                }
                entry.severity = entry.severity.into_iter().chain([f.severity]).min();
            }
        }
    }
    // Per port: held sockets first, then each owner's addresses together (IPv4 first), so
    // one owner's sockets of a binding read as one row.
    ports.sort_by_key(|p| {
        (
            p.port,
            p.proto,
            !p.bound,
            p.container_index(),
            p.holder_pid,
            p.ip.is_ipv6(),
            p.ip,
        )
    });
    Analysis { ports, findings }
}

#[cfg(test)]
mod tests;
