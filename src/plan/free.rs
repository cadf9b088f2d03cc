//! `free`'s plan: whatever holds the named ports, bar what must never be touched.

use std::fmt;

use super::{container_action, kept_by_label, merge, process_action};
use super::{Expect, FreeOptions, Held, Holdings, Plan};
use crate::analyze::findings::{never_act, Kind, PortRef};
use crate::analyze::{Analysis, Owner, PortEntry, Via};
use crate::model::{Process, Proto, Snapshot, TcpState};
use crate::portspec::PortSpec;

/// What `free` is to act on, gathered over the ports' entries before any action is made.
struct Free<'a> {
    snapshot: &'a Snapshot,
    options: FreeOptions,
    by_container: Holdings<usize>,
    by_pid: Holdings<u32>,
    out: Plan,
}

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
    let mut free = Free {
        snapshot,
        options,
        by_container: Holdings::new(),
        by_pid: Holdings::new(),
        out: Plan::default(),
    };
    for entry in analysis
        .ports
        .iter()
        .filter(|e| spec.matches(e.proto, e.port))
    {
        free.entry(entry);
    }
    free.port_uses(spec);
    let Free {
        by_container,
        by_pid,
        mut out,
        ..
    } = free;
    for (pid, (kinds, ports)) in by_pid {
        out.actions
            .push(process_action(&snapshot.host.processes[&pid], kinds, ports));
    }
    for (index, (kinds, ports)) in by_container {
        let c = &snapshot.containers[index];
        match kept_by_label(c) {
            Some(reason) => out.keep(kinds, ports, Some(index), reason),
            // Freeing does not rest on a finding: only "still the same container in the
            // same state" must hold.
            None => out.actions.push(container_action(
                snapshot,
                index,
                kinds,
                ports,
                options.stop_only,
                Expect::unchanged(c),
            )),
        }
    }
    out
}

impl Free<'_> {
    /// One socket on an asked port: its holder planned for, or refused with why.
    fn entry(&mut self, entry: &PortEntry) {
        let refusal = match &entry.owner {
            Owner::Container {
                via: Via::Requested,
                ..
            } => return,
            Owner::Container { index, .. } => {
                self.by_container
                    .add(*index, &entry.findings, &[entry.port_ref()]);
                return;
            }
            Owner::Proxy { .. } | Owner::Conmon { .. } => match entry.holder(self.snapshot) {
                Some(process) => return self.signal(entry, &[process], true),
                None => Refusal::Unreadable,
            },
            // Every process holding the socket: a pre-fork server's workers share it
            // with their parent, and the port is free only once all of them let go.
            Owner::Process => {
                let family: Vec<&Process> = entry
                    .pids
                    .iter()
                    .filter_map(|pid| self.snapshot.host.processes.get(pid))
                    .collect();
                if !family.is_empty() {
                    return self.signal(entry, &family, false);
                }
                Refusal::Unreadable
            }
            Owner::Forwarder { product } => Refusal::Forwarder(product.to_string()),
            Owner::Engine => Refusal::Engine,
            Owner::Unknown { reason } => Refusal::NotVisible(reason.clone()),
            Owner::NotJudged { reason } => Refusal::NotJudged {
                name: entry.process.clone(),
                pid: entry.holder_pid,
                reason: reason.to_string(),
            },
        };
        refuse_port(
            &mut self.out,
            &entry.findings,
            entry.port_ref(),
            refusal.to_string(),
        );
    }

    /// Plans signalling each of `processes` for the entry's port, or refuses it.
    fn signal(&mut self, entry: &PortEntry, processes: &[&Process], forwarder: bool) {
        // One holder that may not be signalled spares them all: killing the others would
        // not free the port, and they are its workers.
        let spared = processes.iter().find_map(|p| {
            never_act(p).or_else(|| {
                (!forwarder)
                    .then(|| super::plain_refusal(self.snapshot, p, &entry.port_ref()))
                    .flatten()
            })
        });
        if let Some(why) = spared {
            refuse_port(&mut self.out, &entry.findings, entry.port_ref(), why);
            return;
        }
        for process in processes {
            match may_signal(process, forwarder, self.options) {
                Err(why) => refuse_port(
                    &mut self.out,
                    &entry.findings,
                    entry.port_ref(),
                    why.to_string(),
                ),
                Ok(()) => self
                    .by_pid
                    .add(process.pid, &entry.findings, &[entry.port_ref()]),
            }
        }
    }

    /// The holders of the ports' sockets that do not listen (bound only, connections an
    /// earlier listener accepted): plain processes, signalled only with --kill-processes.
    /// TIME_WAIT has no holder to act on; `free --until-free` waits for it instead.
    fn port_uses(&mut self, spec: &PortSpec) {
        let snapshot = self.snapshot;
        for u in snapshot.host.port_uses.iter().filter(|u| {
            spec.matches(Proto::Tcp, u.port)
                && !matches!(u.state, TcpState::TimeWait | TcpState::Close)
        }) {
            let port = PortRef {
                proto: Proto::Tcp,
                ip: u.ip,
                port: u.port,
            };
            for process in u.pids.iter().filter_map(|p| snapshot.host.processes.get(p)) {
                let daemon = super::system_daemon(snapshot, process).map(Refusal::NeverAct);
                match daemon.map_or_else(|| may_signal(process, false, self.options), Err) {
                    Ok(()) => self.by_pid.add(process.pid, &[], &[port]),
                    Err(why) => refuse_port(&mut self.out, &[], port, why.to_string()),
                }
            }
        }
    }
}

/// Why `free` leaves a port's holder alone.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Refusal {
    /// On the never-act list (the engine, its runtime, desktop forwarders, PID 1).
    NeverAct(String),
    /// A plain process, and `--kill-processes` was not given.
    PlainProcess { name: String, pid: u32 },
    /// Another user's process, and portreap does not run as root.
    OtherUser { name: String, pid: u32 },
    /// The holding process could not be read.
    Unreadable,
    /// A desktop VM's forwarder holds it.
    Forwarder(String),
    /// The engine holds it for no container.
    Engine,
    /// The socket's owner could not be seen.
    NotVisible(String),
    /// Another engine's forwarder, not judged by the engines asked.
    NotJudged {
        name: Option<String>,
        pid: Option<u32>,
        reason: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NeverAct(why) => f.write_str(why),
            Refusal::PlainProcess { name, pid } => write!(
                f,
                "{name} (pid {pid}) is a plain process: pass --kill-processes to signal it"
            ),
            Refusal::OtherUser { name, pid } => {
                write!(f, "{name} (pid {pid}) belongs to another user")
            }
            Refusal::Unreadable => f.write_str("the holding process could not be read"),
            Refusal::Forwarder(product) => write!(
                f,
                "{product}'s port forwarder holds it and is never signalled: stop the container in {product}"
            ),
            Refusal::Engine => f.write_str(
                "the engine (dockerd) holds it for no container: only an engine restart releases it",
            ),
            Refusal::NotVisible(reason) => write!(f, "owner not visible: {reason}"),
            Refusal::NotJudged { name, pid, reason } => write!(
                f,
                "{} (pid {}) is not judged: {reason}",
                name.as_deref().unwrap_or("?"),
                pid.map_or("?".into(), |p| p.to_string())
            ),
        }
    }
}

/// Whether `free` may signal `process`; the refusal says why not.
fn may_signal(process: &Process, forwarder: bool, options: FreeOptions) -> Result<(), Refusal> {
    if let Some(why) = never_act(process) {
        return Err(Refusal::NeverAct(why));
    }
    let (name, pid) = (&process.name, process.pid);
    if !forwarder && !options.kill_processes {
        let name = name.clone();
        return Err(Refusal::PlainProcess { name, pid });
    }
    if options.euid != 0 && process.uid.is_some_and(|u| u != options.euid) {
        let name = name.clone();
        return Err(Refusal::OtherUser { name, pid });
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
