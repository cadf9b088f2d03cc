//! Forwarders without their container (docker-proxy, conmon) and sockets or bindings the
//! engine keeps for no one.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::{describe, list, never_act, Action, Evidence, Finding, Kind, PortRef};
use crate::analyze::{Owner, PortEntry, Via};
use crate::model::{ContainerState, Process, Proto, Snapshot};

/// A docker-proxy listening for a port whose target no container that publishes that port
/// has. Both proxies of one binding (IPv4 and IPv6) make one finding.
pub(super) fn orphaned_proxies(snapshot: &Snapshot, ports: &[PortEntry]) -> Vec<Finding> {
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
            let now_at = to.and_then(|to| {
                snapshot
                    .containers
                    .iter()
                    .position(|c| c.addresses.contains(&to.ip()))
            });
            let why = match to {
                Some(to) => {
                    match now_at.map(|i| &snapshot.containers[i]) {
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
            let evidence = Evidence::ProxyTarget { to, now_at };
            orphaned_forwarder(snapshot, &entries, pids, (evidence, reason))
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
    (evidence, mut reason): (Evidence, String),
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
        ports: entries.iter().map(|e| e.port_ref()).collect(),
        container: None,
        pids,
        evidence,
        reason,
        action,
    }
}

/// A Podman `conmon` holding published ports for a container the (Podman) engine no longer
/// runs: the forwarder outlived its container.
pub(super) fn orphaned_conmons(snapshot: &Snapshot, ports: &[PortEntry]) -> Vec<Finding> {
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
            let evidence = Evidence::ConmonTarget {
                state: known.map(|c| c.state.clone()),
                container_id: id,
            };
            orphaned_forwarder(snapshot, &entries, vec![pid], (evidence, reason))
        })
        .collect()
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
pub(super) fn engine_reservations(snapshot: &Snapshot, ports: &[PortEntry]) -> Vec<Finding> {
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
                    ports: vec![entry.port_ref()],
                    container: None,
                    pids: entry.pids.clone(),
                    evidence: Evidence::EngineSocket,
                    reason: format!(
                        "the engine (dockerd pid {}) holds {} for no container; only an engine restart releases it",
                        entry.pids.first().map_or("?".into(), u32::to_string),
                        entry.port_ref()
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
        let refs: Vec<PortRef> = entries.iter().map(|e| e.port_ref()).collect();
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
            evidence: Evidence::UnbackedBinding {
                state: c.state.clone(),
            },
            reason,
            action: Action::None,
        });
    }
    out
}
