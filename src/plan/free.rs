//! `free`'s plan: whatever holds the named ports, bar what must never be touched.

use std::collections::BTreeMap;

use super::{container_action, keep_label, merge, process_action};
use super::{Expect, FreeOptions, Held, Plan, KEEP_LABEL};
use crate::analyze::findings::{Kind, PortRef};
use crate::analyze::{Analysis, Owner};
use crate::model::{Process, Proto, Snapshot};
use crate::portspec::PortSpec;

/// Plans freeing the ports of `spec`, whatever holds them: every container (healthy or
/// not), every docker-proxy, and plain processes when allowed. The engine, the
/// never-act list, other users' processes and invisible owners are refused with the
/// reason; the keep label is honoured.
pub fn free(
    snapshot: &Snapshot,
    analysis: &Analysis,
    spec: &PortSpec,
    options: FreeOptions,
) -> Plan {
    let mut out = Plan::default();
    let mut by_container: BTreeMap<usize, (Vec<Kind>, Vec<PortRef>)> = BTreeMap::new();
    let mut by_pid: BTreeMap<u32, (Vec<Kind>, Vec<PortRef>)> = BTreeMap::new();
    let refuse = |out: &mut Plan, entry: &crate::analyze::PortEntry, reason: String| {
        let port = PortRef {
            proto: entry.proto,
            ip: entry.ip,
            port: entry.port,
        };
        refuse_port(out, &entry.findings, port, reason);
    };
    for entry in analysis
        .ports
        .iter()
        .filter(|e| spec.matches(e.proto, e.port))
    {
        let port = PortRef {
            proto: entry.proto,
            ip: entry.ip,
            port: entry.port,
        };
        match &entry.owner {
            Owner::Container { via: crate::analyze::Via::Requested, .. } => {}
            Owner::Container { index, .. } => {
                let (kinds, ports) = by_container.entry(*index).or_default();
                for k in &entry.findings {
                    if !kinds.contains(k) {
                        kinds.push(*k);
                    }
                }
                merge(ports, &[port]);
            }
            Owner::Proxy { .. } | Owner::Conmon { .. } => {
                let Some(process) = entry.holder(snapshot) else {
                    refuse(&mut out, entry, "the holding process could not be read".into());
                    continue;
                };
                match may_signal(process, true, options) {
                    Err(why) => refuse(&mut out, entry, why),
                    Ok(()) => add_pid(&mut by_pid, process.pid, &entry.findings, port),
                }
            }
            // Every process holding the socket: a pre-fork server's workers share it
            // with their parent, and the port is free only once all of them let go.
            Owner::Process => {
                let family: Vec<&Process> = entry
                    .pids
                    .iter()
                    .filter_map(|pid| snapshot.host.processes.get(pid))
                    .collect();
                if family.is_empty() {
                    refuse(&mut out, entry, "the holding process could not be read".into());
                }
                for process in family {
                    match may_signal(process, false, options) {
                        Err(why) => refuse(&mut out, entry, why),
                        Ok(()) => add_pid(&mut by_pid, process.pid, &entry.findings, port),
                    }
                }
            }
            Owner::Forwarder { product } => refuse(
                &mut out,
                entry,
                format!("{product}'s port forwarder holds it and is never signalled: stop the container in {product}"),
            ),
            Owner::Engine => refuse(
                &mut out,
                entry,
                "the engine (dockerd) holds it for no container: only an engine restart releases it".into(),
            ),
            Owner::Unknown { reason } => refuse(&mut out, entry, format!("owner not visible: {reason}")),
            Owner::NotJudged { reason } => refuse(
                &mut out,
                entry,
                format!(
                    "{} (pid {}) is not judged: {reason}",
                    entry.process.as_deref().unwrap_or("?"),
                    entry.holder_pid.map_or("?".into(), |p| p.to_string())
                ),
            ),
        }
    }
    plan_port_uses(snapshot, spec, options, &mut by_pid, &mut out);
    for (pid, (kinds, ports)) in by_pid {
        out.actions
            .push(process_action(&snapshot.host.processes[&pid], kinds, ports));
    }
    for (index, (kinds, ports)) in by_container {
        let c = &snapshot.containers[index];
        if let Some(label) = keep_label(c) {
            out.kept.push(Held {
                kinds,
                ports,
                container: Some(index),
                reason: format!("label {KEEP_LABEL}={label}"),
            });
            continue;
        }
        // Freeing does not rest on a finding: only "still the same container in the same
        // state" must hold.
        out.actions.push(container_action(
            c,
            index,
            kinds,
            ports,
            options.stop_only,
            Expect::unchanged(c),
        ));
    }
    out
}

/// Whether `free` may signal `process`; the refusal says why not.
fn may_signal(process: &Process, forwarder: bool, options: FreeOptions) -> Result<(), String> {
    if let Some(why) = crate::analyze::findings::never_act(process) {
        return Err(why);
    }
    if !forwarder && !options.kill_processes {
        return Err(format!(
            "{} (pid {}) is a plain process: pass --kill-processes to signal it",
            process.name, process.pid
        ));
    }
    if options.euid != 0 && process.uid.is_some_and(|u| u != options.euid) {
        return Err(format!(
            "{} (pid {}) belongs to another user",
            process.name, process.pid
        ));
    }
    Ok(())
}

/// Records that `port` is not acted on for `reason`: one entry per reason, its ports
/// merged.
fn refuse_port(out: &mut Plan, kinds: &[Kind], port: PortRef, reason: String) {
    match out.refused.iter_mut().find(|h| h.reason == reason) {
        Some(h) => merge(&mut h.ports, &[port]),
        None => out.refused.push(Held {
            kinds: kinds.to_vec(),
            ports: vec![port],
            container: None,
            reason,
        }),
    }
}

fn add_pid(
    by_pid: &mut BTreeMap<u32, (Vec<Kind>, Vec<PortRef>)>,
    pid: u32,
    findings: &[Kind],
    port: PortRef,
) {
    let (kinds, ports) = by_pid.entry(pid).or_default();
    for k in findings {
        if !kinds.contains(k) {
            kinds.push(*k);
        }
    }
    merge(ports, &[port]);
}

/// The holders of the ports' sockets that do not listen (bound only, connections an
/// earlier listener accepted): plain processes, signalled only with --kill-processes.
/// TIME_WAIT has no holder to act on; `free --until-free` waits for it instead.
fn plan_port_uses(
    snapshot: &Snapshot,
    spec: &PortSpec,
    options: FreeOptions,
    by_pid: &mut BTreeMap<u32, (Vec<Kind>, Vec<PortRef>)>,
    out: &mut Plan,
) {
    use crate::model::TcpState;
    for u in snapshot.host.port_uses.iter().filter(|u| {
        spec.matches(Proto::Tcp, u.port) && !matches!(u.state, TcpState::TimeWait | TcpState::Close)
    }) {
        let port = PortRef {
            proto: Proto::Tcp,
            ip: u.ip,
            port: u.port,
        };
        for process in u.pids.iter().filter_map(|p| snapshot.host.processes.get(p)) {
            match may_signal(process, false, options) {
                Ok(()) => add_pid(by_pid, process.pid, &[], port),
                Err(reason) => refuse_port(out, &[], port, reason),
            }
        }
    }
}
