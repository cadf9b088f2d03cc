//! CI baselines: the port holders a host had when a job started, so that at its end the job
//! cleans exactly what it left, whatever its health, and nothing that was there before.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{
    container_action, container_selected, kept_by_label, process_action, Expect, Filters, Held,
    Plan,
};
use crate::analyze::findings::{never_act, PortRef};
use crate::analyze::{Analysis, Owner};
use crate::model::Snapshot;

/// What existed at the start of a job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version.
    pub schema_version: u32,
    /// When it was taken (seconds since the epoch).
    pub taken_at: Option<i64>,
    /// Every container, by full id (a container recreated under the same name is new).
    pub containers: BTreeSet<String>,
    /// Every socket-holding process, by PID and start time (PIDs get reused).
    pub processes: BTreeSet<(u32, u64)>,
}

/// Records the baseline of a snapshot.
pub fn record(snapshot: &Snapshot) -> Baseline {
    Baseline {
        schema_version: 1,
        taken_at: snapshot.taken_at,
        containers: snapshot.containers.iter().map(|c| c.id.clone()).collect(),
        processes: snapshot
            .host
            .processes
            .values()
            .filter_map(|p| Some((p.pid, p.start_ticks?)))
            .collect(),
    }
}

/// Plans removing every container that holds or asks for a port and was not in the
/// baseline, and signalling every forwarder (and, with `kill_processes`, every other
/// process) that holds a port and was not in it. What was in it is listed as kept.
///
/// `filters` narrows by port, compose project and label (the last two select containers
/// only, so processes are then left out).
pub fn plan_since(
    snapshot: &Snapshot,
    analysis: &Analysis,
    baseline: &Baseline,
    kill_processes: bool,
    filters: &Filters,
) -> Plan {
    let narrowed_to_containers = filters.project.is_some() || !filters.labels.is_empty();
    let mut out = Plan::default();
    let mut new_containers: std::collections::BTreeMap<usize, Vec<PortRef>> = Default::default();
    let mut new_processes: std::collections::BTreeMap<u32, Vec<PortRef>> = Default::default();
    let mut kept_containers: std::collections::BTreeMap<usize, Vec<PortRef>> = Default::default();
    for entry in &analysis.ports {
        if filters
            .ports
            .as_ref()
            .is_some_and(|spec| !spec.matches(entry.proto, entry.port))
        {
            continue;
        }
        let port = entry.port_ref();
        match &entry.owner {
            Owner::Container { index, .. } => {
                let c = &snapshot.containers[*index];
                if !container_selected(c, filters) {
                    continue;
                }
                let slot = if baseline.containers.contains(&c.id) {
                    kept_containers.entry(*index).or_default()
                } else {
                    new_containers.entry(*index).or_default()
                };
                if !slot.contains(&port) {
                    slot.push(port);
                }
            }
            Owner::Proxy { .. } | Owner::Conmon { .. } | Owner::Process => {
                if narrowed_to_containers {
                    continue;
                }
                let Some(p) = entry.holder(snapshot) else {
                    continue;
                };
                let known = p
                    .start_ticks
                    .is_some_and(|t| baseline.processes.contains(&(p.pid, t)));
                let plain = matches!(entry.owner, Owner::Process);
                if known {
                    continue;
                }
                if let Some(why) = never_act(p) {
                    out.refused.push(Held {
                        kinds: Vec::new(),
                        ports: vec![port],
                        container: None,
                        reason: why,
                    });
                } else if plain && !kill_processes {
                    out.refused.push(Held {
                        kinds: Vec::new(),
                        ports: vec![port],
                        container: None,
                        reason: format!("{} (pid {}) started after the baseline: pass --kill-processes to signal it", p.name, p.pid),
                    });
                } else {
                    new_processes.entry(p.pid).or_default().push(port);
                }
            }
            Owner::Forwarder { .. }
            | Owner::Engine
            | Owner::Unknown { .. }
            | Owner::NotJudged { .. } => {}
        }
    }
    for (index, ports) in kept_containers {
        if new_containers.contains_key(&index) {
            continue;
        }
        out.keep(
            Vec::new(),
            ports,
            Some(index),
            "in the baseline: not created by this job".into(),
        );
    }
    for (pid, ports) in new_processes {
        out.actions.push(process_action(
            &snapshot.host.processes[&pid],
            Vec::new(),
            ports,
        ));
    }
    for (index, ports) in new_containers {
        let c = &snapshot.containers[index];
        if let Some(reason) = kept_by_label(c) {
            out.keep(Vec::new(), ports, Some(index), reason);
            continue;
        }
        out.actions.push(container_action(
            c,
            index,
            Vec::new(),
            ports,
            false,
            Expect::unchanged(c),
        ));
    }
    out
}
