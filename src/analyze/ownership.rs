//! Which engine judges a forwarder. A forwarder belongs to the engine that started it, and
//! only that engine's containers can account for it: judged against another engine's
//! list, every healthy container's proxy would look orphaned. An engine's answer is
//! trusted for this host's forwarders only when that engine is proven to run here.

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

/// How to name the engine process `pid` and how to ask it.
fn not_asked(snapshot: &Snapshot, pid: u32) -> String {
    let kind = snapshot
        .host
        .engine(pid)
        .map_or("Docker", |e| e.kind.as_str());
    match snapshot.host.engine(pid).and_then(|e| e.sockets.first()) {
        Some(url) => format!(
            "it belongs to the {kind} engine pid {pid} at {url}, which was not asked: add --all-engines or --host {}",
            crate::shell::quote(url)
        ),
        None => format!(
            "it belongs to the {kind} engine pid {pid}, which was not asked and has no API socket portreap can reach"
        ),
    }
}

/// Why nothing asked can judge this host's forwarders.
fn none_local(snapshot: &Snapshot) -> String {
    let why: Vec<String> = snapshot
        .all_engines()
        .filter(|e| e.reachable)
        .map(|e| match &e.locality {
            Some(why) => format!("{}: {why}", e.endpoint),
            None => format!("{}: not proven to run here", e.endpoint),
        })
        .collect();
    if why.is_empty() {
        "no engine answered".into()
    } else {
        format!(
            "no engine asked is proven to run on this host ({}), so this host's forwarders are not judged by its answer",
            why.join("; ")
        )
    }
}

/// The engines whose containers may account for the proven docker-proxy `p`: the one
/// that started it; for a proxy whose engine is gone, every asked local Docker engine.
pub fn proxy_judges(
    snapshot: &Snapshot,
    p: &Process,
    engine: Option<u32>,
) -> Result<Vec<usize>, String> {
    match engine {
        Some(pid) => engine_judges(snapshot, pid),
        None => {
            let docker = local_engines_where(snapshot, |e| !e.is_podman());
            if docker.is_empty() {
                Err(format!(
                    "docker-proxy pid {} has no engine parent, and {}",
                    p.pid,
                    none_local(snapshot)
                ))
            } else {
                Ok(docker)
            }
        }
    }
}

/// The engine whose own process `pid` is: judged by itself, if it was asked.
pub fn engine_judges(snapshot: &Snapshot, pid: u32) -> Result<Vec<usize>, String> {
    asked(snapshot, pid)
        .map(|i| vec![i])
        .ok_or_else(|| not_asked(snapshot, pid))
}

/// The Podman engines that may account for the proven conmon `p` of user `uid`: conmon
/// detaches from the engine that started it, so its engine is told by the user it runs
/// as, among the Podman engines proven to run here.
pub fn conmon_judges(snapshot: &Snapshot, p: &Process, uid: u32) -> Result<Vec<usize>, String> {
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
    Err(match known {
        Some(e) => format!(
            "conmon pid {} monitors a container of Podman (uid {uid}); {}",
            p.pid,
            not_asked(snapshot, e.pid)
        ),
        None if !podman.is_empty() => format!(
            "conmon pid {} runs in another mount namespace than every Podman engine of uid {uid} asked (or its namespace is not readable), so none of them started it: add --all-engines",
            p.pid
        ),
        None => format!(
            "conmon pid {} monitors a container of Podman (uid {uid}), and no Podman engine of that user was asked and proven to run here: add --all-engines or --host with its socket",
            p.pid
        ),
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
