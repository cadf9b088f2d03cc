//! Each socket's owner: the container behind a forwarder, the engine's own binding, a
//! plain process; and the entries for ports held by no socket (reservations, ports a
//! finding names).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::findings::Finding;
use super::forwarder::Role;
use super::{forwarder, ownership, Owner, PortEntry, Via};
use crate::model::{Container, ContainerState, LiveBinding, Process, Proto, Snapshot, Socket};

/// Entries for the ports that findings name for containers that do not hold them, so each
/// finding shows up on its port.
pub(super) fn requested(ports: &[PortEntry], findings: &[Finding]) -> Vec<PortEntry> {
    let mut out: Vec<PortEntry> = Vec::new();
    let mut present: HashSet<(usize, Proto, IpAddr, u16)> = ports
        .iter()
        .filter_map(|e| Some((e.container_index()?, e)))
        .flat_map(|(index, e)| e.served().map(move |ip| (index, e.proto, ip, e.port)))
        .collect();
    for f in findings {
        let Some(index) = f.container else { continue };
        for r in &f.ports {
            if present.insert((index, r.proto, r.ip, r.port)) {
                out.push(unbacked(r.proto, r.ip, r.port, index, Via::Requested));
            }
        }
    }
    out
}

/// The containers that hold ports, by the protocol and host port of each live binding, in
/// snapshot order: built once, so that attributing thousands of sockets does not scan
/// every container for each (5,000 sockets and 300 containers took 8% of a scan).
pub(super) struct Live(HashMap<(Proto, u16), Vec<usize>>);

impl Live {
    pub(super) fn new(snapshot: &Snapshot) -> Live {
        let mut by_port: HashMap<(Proto, u16), Vec<usize>> = HashMap::new();
        for (index, c) in snapshot.containers.iter().enumerate() {
            if !holds_ports(c) {
                continue;
            }
            for b in &c.live {
                let holders = by_port.entry((b.proto, b.host_port)).or_default();
                if holders.last() != Some(&index) {
                    holders.push(index);
                }
            }
        }
        Live(by_port)
    }
}

pub(super) fn attribute(
    snapshot: &Snapshot,
    local: &[usize],
    live: &Live,
    socket: &Socket,
) -> PortEntry {
    let host = &snapshot.host;
    let held: Vec<(&Process, Role)> = socket
        .pids
        .iter()
        .filter_map(|pid| host.processes.get(pid))
        .map(|p| (p, forwarder::role(host, p)))
        .collect();
    // The forwarder wins over the engine: newer engines bind the socket in dockerd and hand
    // it to docker-proxy, so both may hold it for a moment.
    let find = |pick: fn(&Role) -> bool| held.iter().find(|(_, r)| pick(r));
    let primary = find(|r| matches!(r, Role::DockerProxy { .. }))
        .or_else(|| find(|r| matches!(r, Role::Conmon { .. })))
        .or_else(|| find(|r| matches!(r, Role::Engine)))
        .or_else(|| find(|r| matches!(r, Role::Desktop(_))))
        .or(held.first());
    let owner = match primary {
        Some((p, role)) => attribute_held((snapshot, live), socket, &held, p, role),
        None => match find_live((snapshot, live), socket, local) {
            Some(index) => Owner::Container {
                index,
                via: Via::Binding,
            },
            None => Owner::Unknown {
                reason: unknown_reason(snapshot, socket),
            },
        },
    };
    let note = held.iter().find_map(|(_, role)| match role {
        Role::Impostor { claims, why } => Some(format!("calls itself {claims}, but {why}")),
        _ => None,
    });
    PortEntry {
        proto: socket.proto,
        ip: socket.ip,
        port: socket.port,
        bound: true,
        pids: socket.pids.clone(),
        process: primary.map(|(p, _)| p.name.clone()),
        holder_pid: primary.map(|(p, _)| p.pid),
        owner,
        findings: Vec::new(),
        severity: None,
        note,
        dual_stack: socket.dual_stack(),
    }
}

/// The owner of a socket whose holders are `held`, `p` being the one that explains it.
fn attribute_held(
    (snapshot, live): (&Snapshot, &Live),
    socket: &Socket,
    held: &[(&Process, Role)],
    p: &Process,
    role: &Role,
) -> Owner {
    let judged = |judges: Result<Vec<usize>, ownership::Unjudged>,
                  found: &dyn Fn(&[usize]) -> Owner| match judges {
        Ok(engines) => found(&engines),
        Err(reason) => Owner::NotJudged { reason },
    };
    match role {
        Role::DockerProxy { engine } => {
            judged(ownership::proxy_judges(snapshot, p, *engine), &|engines| {
                attribute_proxy((snapshot, live), socket, p, engines)
            })
        }
        Role::Conmon { uid } => match forwarder::parse_conmon(&p.cmdline) {
            Some((container_id, container_name)) => {
                judged(ownership::conmon_judges(snapshot, p, *uid), &|engines| {
                    let live = snapshot.containers.iter().position(|c| {
                        c.id == container_id && holds_ports(c) && engines.contains(&c.engine)
                    });
                    match live {
                        Some(index) => Owner::Container {
                            index,
                            via: Via::Conmon,
                        },
                        None => Owner::Conmon {
                            container_id: container_id.clone(),
                            container_name: container_name.clone(),
                        },
                    }
                })
            }
            None => Owner::Process,
        },
        Role::Engine => judged(
            ownership::engine_judges(snapshot, p.pid),
            &|engines| match find_live((snapshot, live), socket, engines) {
                Some(index) => Owner::Container {
                    index,
                    via: Via::Engine,
                },
                None => Owner::Engine,
            },
        ),
        Role::Desktop(product) => {
            match find_live((snapshot, live), socket, &ownership::same_user(snapshot, p)) {
                Some(index) => Owner::Container {
                    index,
                    via: Via::Forwarder,
                },
                None => Owner::Forwarder { product },
            }
        }
        Role::Plain | Role::Impostor { .. } => {
            match held
                .iter()
                .find_map(|(p, _)| ownership::host_network_container(snapshot, p))
            {
                Some(index) => Owner::Container {
                    index,
                    via: Via::HostNetwork,
                },
                None => Owner::Process,
            }
        }
    }
}

/// The container (of `engines`) a proven docker-proxy forwards to.
fn attribute_proxy(
    (snapshot, live): (&Snapshot, &Live),
    socket: &Socket,
    proxy: &Process,
    engines: &[usize],
) -> Owner {
    let target = forwarder::parse_docker_proxy(&proxy.cmdline);
    let index = match &target {
        // The target address alone is not enough: addresses are reused as soon as a
        // container stops, so the container must also publish this very port pair.
        Some(t) => snapshot.containers.iter().position(|c| {
            engines.contains(&c.engine)
                && c.addresses.contains(&t.container_ip)
                && c.live.iter().any(|b| {
                    b.proto == t.proto
                        && b.host_port == t.host_port
                        && b.container_port == t.container_port
                })
        }),
        None => find_live((snapshot, live), socket, engines),
    };
    match index {
        Some(index) => Owner::Container {
            index,
            via: Via::DockerProxy,
        },
        None => Owner::Proxy { target },
    }
}

/// A running (or paused, restarting) container of `engines` whose live binding is this
/// socket.
fn find_live(
    (snapshot, live): (&Snapshot, &Live),
    socket: &Socket,
    engines: &[usize],
) -> Option<usize> {
    let holders = live.0.get(&(socket.proto, socket.port))?;
    holders.iter().copied().find(|&index| {
        let c = &snapshot.containers[index];
        engines.contains(&c.engine)
            && c.live.iter().any(|b| {
                b.proto == socket.proto && b.host_port == socket.port && socket.serves(b.host_ip)
            })
    })
}

fn holds_ports(c: &Container) -> bool {
    matches!(
        c.state,
        ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
    )
}

fn unknown_reason(snapshot: &Snapshot, socket: &Socket) -> String {
    let host = &snapshot.host;
    if let Some(e) = &host.proc_error {
        format!("owner not readable: {e}")
    } else if host.unreadable_processes > 0 && host.read_as == Some(0) {
        format!(
            "owner not readable: the descriptors of {} processes are not readable even as root (socket uid {}; in a container, add the SYS_PTRACE capability)",
            host.unreadable_processes, socket.uid
        )
    } else if host.unreadable_processes > 0 {
        format!(
            "owner not readable: the descriptors of {} processes are not readable (socket uid {}; run as root to see every owner)",
            host.unreadable_processes, socket.uid
        )
    } else {
        "no process in this PID namespace holds it (a kernel socket, or a process in another PID namespace)".into()
    }
}

/// Engine bindings that no socket backs. With the userland proxy the engine keeps one
/// socket per binding address; without it, one socket per port, so a binding on another
/// address of the same port is backed when the engine holds the port for that container.
pub(super) fn reservations(snapshot: &Snapshot, ports: &[PortEntry]) -> Vec<PortEntry> {
    let mut exact = HashSet::new();
    let mut engine_held = HashSet::new();
    for entry in ports {
        if let Owner::Container { index, via } = entry.owner {
            for ip in entry.served() {
                exact.insert((index, entry.proto, ip, entry.port));
            }
            if via == Via::Engine {
                engine_held.insert((index, entry.proto, entry.port));
            }
        }
    }
    let mut out = Vec::new();
    for (index, container) in snapshot.containers.iter().enumerate() {
        // Podman reports a container's configured ports as live even before it runs.
        if snapshot.engine_of(container).is_podman() && !holds_ports(container) {
            continue;
        }
        // An engine not proven to run here binds its ports on another host.
        if snapshot.engine_of(container).process.is_none() {
            continue;
        }
        for LiveBinding {
            proto,
            host_ip,
            host_port,
            ..
        } in &container.live
        {
            let backed = exact.contains(&(index, *proto, *host_ip, *host_port))
                || engine_held.contains(&(index, *proto, *host_port));
            if !backed && snapshot.host.covers(*proto, *host_port) {
                out.push(unbacked(
                    *proto,
                    *host_ip,
                    *host_port,
                    index,
                    Via::Reservation,
                ));
            }
        }
    }
    out
}

/// The entry of a container's port that no socket backs (`via` says why it is listed).
fn unbacked(proto: Proto, ip: IpAddr, port: u16, index: usize, via: Via) -> PortEntry {
    PortEntry {
        proto,
        ip,
        port,
        bound: false,
        pids: Vec::new(),
        process: None,
        holder_pid: None,
        owner: Owner::Container { index, via },
        findings: Vec::new(),
        severity: None,
        note: None,
        dual_stack: false,
    }
}
