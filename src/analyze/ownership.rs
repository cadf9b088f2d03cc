//! Which engine judges a forwarder. A forwarder belongs to the engine that started it, and
//! only that engine's containers can account for it: judged against another engine's
//! list, every healthy container's proxy would look orphaned. An engine's answer is
//! trusted for this host's forwarders only when that engine is proven to run here.

use std::fmt;

use crate::model::{EngineKind, EngineStatus, Process, Snapshot};

/// The engines asked (their positions, as [`crate::model::Container::engine`] counts
/// them) that are proven to run on this host.
pub fn local_engines(snapshot: &Snapshot) -> Vec<usize> {
    local_engines_where(snapshot, |_| true)
}

/// [`local_engines`] that also satisfy `keep`.
fn local_engines_where(snapshot: &Snapshot, keep: impl Fn(&EngineStatus) -> bool) -> Vec<usize> {
    snapshot
        .all_engines()
        .enumerate()
        .filter(|(_, e)| e.reachable && e.process.is_some() && keep(e))
        .map(|(i, _)| i)
        .collect()
}

/// The asked engine served by the engine process `pid`.
fn asked(snapshot: &Snapshot, pid: u32) -> Option<usize> {
    snapshot
        .all_engines()
        .position(|e| e.reachable && e.process == Some(pid))
}

/// Why the engines asked cannot judge a forwarder (or an engine's own socket). Never a
/// leak: the text names the engine it belongs to and how to ask it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unjudged {
    /// It belongs to an engine process that was not asked.
    EngineNotAsked(NotAsked),
    /// A docker-proxy with no engine parent, and no Docker engine asked runs here.
    ProxyWithoutEngine {
        /// The proxy.
        pid: u32,
        /// Why each reachable engine asked is not proven local.
        none_local: NoneLocal,
    },
    /// A conmon whose user's Podman engine (in its mount namespace) was not asked.
    ConmonEngineNotAsked {
        /// The conmon.
        pid: u32,
        /// Its user.
        uid: u32,
        /// Its engine.
        engine: NotAsked,
    },
    /// A conmon in another mount namespace than every Podman engine of its user asked.
    ConmonElsewhere {
        /// The conmon.
        pid: u32,
        /// Its user.
        uid: u32,
    },
    /// A conmon whose user has no Podman engine asked and proven local.
    ConmonWithoutEngine {
        /// The conmon.
        pid: u32,
        /// Its user.
        uid: u32,
    },
}

/// An engine process found on the host but not asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotAsked {
    /// Its kind.
    pub kind: EngineKind,
    /// Its process.
    pub pid: u32,
    /// The API socket to ask it at, if it has one portreap can reach.
    pub socket: Option<String>,
}

/// The engines asked that answered, each with why it is not proven to run here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoneLocal(pub Vec<(String, Option<String>)>);

impl fmt::Display for NotAsked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let NotAsked { kind, pid, socket } = self;
        let kind = kind.as_str();
        match socket {
            Some(url) => write!(
                f,
                "it belongs to the {kind} engine pid {pid} at {url}, which was not asked: add --all-engines or --host {}",
                crate::shell::quote(url)
            ),
            None => write!(
                f,
                "it belongs to the {kind} engine pid {pid}, which was not asked and has no API socket portreap can reach"
            ),
        }
    }
}

impl fmt::Display for NoneLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no engine answered");
        }
        let why: Vec<String> = self
            .0
            .iter()
            .map(|(endpoint, why)| match why {
                Some(why) => format!("{endpoint}: {why}"),
                None => format!("{endpoint}: not proven to run here"),
            })
            .collect();
        write!(
            f,
            "no engine asked is proven to run on this host ({}), so this host's forwarders are not judged by its answer",
            why.join("; ")
        )
    }
}

impl fmt::Display for Unjudged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unjudged::EngineNotAsked(engine) => engine.fmt(f),
            Unjudged::ProxyWithoutEngine { pid, none_local } => {
                write!(f, "docker-proxy pid {pid} has no engine parent, and {none_local}")
            }
            Unjudged::ConmonEngineNotAsked { pid, uid, engine } => write!(
                f,
                "conmon pid {pid} monitors a container of Podman (uid {uid}); {engine}"
            ),
            Unjudged::ConmonElsewhere { pid, uid } => write!(
                f,
                "conmon pid {pid} runs in another mount namespace than every Podman engine of uid {uid} asked (or its namespace is not readable), so none of them started it: add --all-engines"
            ),
            Unjudged::ConmonWithoutEngine { pid, uid } => write!(
                f,
                "conmon pid {pid} monitors a container of Podman (uid {uid}), and no Podman engine of that user was asked and proven to run here: add --all-engines or --host with its socket"
            ),
        }
    }
}

/// The engine process `pid`, found but not asked.
fn not_asked(snapshot: &Snapshot, pid: u32) -> NotAsked {
    let engine = snapshot.host.engine(pid);
    NotAsked {
        kind: engine.map_or(EngineKind::Docker, |e| e.kind),
        pid,
        socket: engine.and_then(|e| e.sockets.first()).cloned(),
    }
}

/// Why nothing asked can judge this host's forwarders.
fn none_local(snapshot: &Snapshot) -> NoneLocal {
    NoneLocal(
        snapshot
            .all_engines()
            .filter(|e| e.reachable)
            .map(|e| (e.endpoint.clone(), e.locality.clone()))
            .collect(),
    )
}

/// The engines whose containers may account for the proven docker-proxy `p`: the one
/// that started it; for a proxy whose engine is gone, every asked local Docker engine.
pub fn proxy_judges(
    snapshot: &Snapshot,
    p: &Process,
    engine: Option<u32>,
) -> Result<Vec<usize>, Unjudged> {
    match engine {
        Some(pid) => engine_judges(snapshot, pid),
        None => {
            let docker = local_engines_where(snapshot, |e| !e.is_podman());
            if docker.is_empty() {
                Err(Unjudged::ProxyWithoutEngine {
                    pid: p.pid,
                    none_local: none_local(snapshot),
                })
            } else {
                Ok(docker)
            }
        }
    }
}

/// The engine whose own process `pid` is: judged by itself, if it was asked.
pub fn engine_judges(snapshot: &Snapshot, pid: u32) -> Result<Vec<usize>, Unjudged> {
    asked(snapshot, pid)
        .map(|i| vec![i])
        .ok_or_else(|| Unjudged::EngineNotAsked(not_asked(snapshot, pid)))
}

/// The Podman engines that may account for the proven conmon `p` of user `uid`: conmon
/// detaches from the engine that started it, so its engine is told by the user it runs
/// as, among the Podman engines proven to run here.
pub fn conmon_judges(snapshot: &Snapshot, p: &Process, uid: u32) -> Result<Vec<usize>, Unjudged> {
    let podman = local_engines_where(snapshot, |e| e.is_podman() && e.uid == Some(uid));
    // Two Podman engines of one user (the host's and one in a chroot) each start conmons:
    // a conmon shares the mount namespace of the engine that started it, so only the
    // engines in its namespace can account for it. Unknown namespaces prove nothing.
    let same_ns: Vec<usize> = podman
        .iter()
        .copied()
        .filter(|&i| p.mnt_ns.is_some() && engine_mnt_ns(snapshot, i) == p.mnt_ns)
        .collect();
    if !same_ns.is_empty() {
        return Ok(same_ns);
    }
    // Its own engine, not asked: the one in its mount namespace.
    let known = snapshot.host.engines.iter().find(|e| {
        e.kind == EngineKind::Podman && e.uid == uid && e.mnt_ns.is_some() && e.mnt_ns == p.mnt_ns
    });
    let pid = p.pid;
    Err(match known {
        Some(e) => Unjudged::ConmonEngineNotAsked {
            pid,
            uid,
            engine: not_asked(snapshot, e.pid),
        },
        None if !podman.is_empty() => Unjudged::ConmonElsewhere { pid, uid },
        None => Unjudged::ConmonWithoutEngine { pid, uid },
    })
}

/// The mount namespace of the asked engine `index`'s process.
fn engine_mnt_ns(snapshot: &Snapshot, index: usize) -> Option<u64> {
    let pid = snapshot.all_engines().nth(index)?.process?;
    snapshot.host.engine(pid)?.mnt_ns
}

/// The asked engines served by the same user as `p`: a rootless or desktop forwarder
/// serves its own user's engine.
pub fn same_user(snapshot: &Snapshot, p: &Process) -> Vec<usize> {
    snapshot
        .all_engines()
        .enumerate()
        .filter(|(_, e)| e.reachable && p.uid.is_some() && e.uid == p.uid)
        .map(|(i, _)| i)
        .collect()
}

/// The `--network host` container whose process `p` is. A cgroup path can be delegated
/// to a user, so it only names a candidate: the container must share the host's network
/// and `p` must run in it, as its main process, a descendant of it, or in its own PID
/// namespace.
pub fn host_network_container(snapshot: &Snapshot, p: &Process) -> Option<usize> {
    let id = p.container_id.as_deref()?;
    let index = snapshot.containers.iter().position(|c| c.id == id)?;
    let c = &snapshot.containers[index];
    let main = c.pid?;
    let host = &snapshot.host;
    let inside = p.pid == main
        || host.ancestors(p.pid).any(|a| a.pid == main)
        || host
            .processes
            .get(&main)
            .is_some_and(|m| m.pid_ns.is_some() && m.pid_ns == p.pid_ns && m.pid_ns != host.pid_ns);
    (c.is_host_network() && inside).then_some(index)
}
