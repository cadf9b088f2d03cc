//! CI baselines: the port holders a host had when a job started, so that at its end the job
//! cleans exactly what it left, whatever its health, and nothing that was there before.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    container_action, container_selected, kept_by_label, process_action, Expect, Filters, Held,
    Plan,
};
use crate::analyze::findings::{never_act, PortRef};
use crate::analyze::{Analysis, Owner};
use crate::model::{Process, Snapshot};

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
    let mut sorted = Sorted::default();
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
                if container_selected(c, filters) {
                    let new = !baseline.containers.contains(&c.id);
                    sorted.container(*index, new, port);
                }
            }
            Owner::Proxy { .. } | Owner::Conmon { .. } | Owner::Process
                if !narrowed_to_containers =>
            {
                let Some(p) = entry.holder(snapshot) else {
                    continue;
                };
                let plain = matches!(entry.owner, Owner::Process);
                if let Some(held) = sorted.process(p, baseline, plain && !kill_processes, port) {
                    out.refused.push(held);
                }
            }
            _ => {}
        }
    }
    sorted.plan(snapshot, out)
}

/// The holders a job left, by the ports each holds, and those the baseline knew.
#[derive(Default)]
struct Sorted {
    new_containers: BTreeMap<usize, Vec<PortRef>>,
    kept_containers: BTreeMap<usize, Vec<PortRef>>,
    new_processes: BTreeMap<u32, Vec<PortRef>>,
}

impl Sorted {
    fn container(&mut self, index: usize, new: bool, port: PortRef) {
        let slot = if new {
            &mut self.new_containers
        } else {
            &mut self.kept_containers
        };
        let ports = slot.entry(index).or_default();
        if !ports.contains(&port) {
            ports.push(port);
        }
    }

    /// Notes a process holding `port` that the baseline does not know; what may not be
    /// signalled (never, or a plain process without `--kill-processes`) is returned.
    fn process(
        &mut self,
        p: &Process,
        baseline: &Baseline,
        plain_refused: bool,
        port: PortRef,
    ) -> Option<Held> {
        let known = p
            .start_ticks
            .is_some_and(|t| baseline.processes.contains(&(p.pid, t)));
        if known {
            return None;
        }
        let refused = |reason| Held {
            kinds: Vec::new(),
            ports: vec![port],
            container: None,
            reason,
        };
        if let Some(why) = never_act(p) {
            return Some(refused(why));
        }
        if plain_refused {
            return Some(refused(format!(
                "{} (pid {}) started after the baseline: pass --kill-processes to signal it",
                p.name, p.pid
            )));
        }
        self.new_processes.entry(p.pid).or_default().push(port);
        None
    }

    /// Acts on what is new, keeps what the baseline knew.
    fn plan(self, snapshot: &Snapshot, mut out: Plan) -> Plan {
        for (index, ports) in self.kept_containers {
            out.keep(
                Vec::new(),
                ports,
                Some(index),
                "in the baseline: not created by this job".into(),
            );
        }
        for (pid, ports) in self.new_processes {
            out.actions.push(process_action(
                &snapshot.host.processes[&pid],
                Vec::new(),
                ports,
            ));
        }
        for (index, ports) in self.new_containers {
            let c = &snapshot.containers[index];
            if let Some(reason) = kept_by_label(c) {
                out.keep(Vec::new(), ports, Some(index), reason);
                continue;
            }
            out.actions.push(container_action(
                snapshot,
                index,
                Vec::new(),
                ports,
                false,
                Expect::unchanged(c),
            ));
        }
        out
    }
}
