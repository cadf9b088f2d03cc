//! `prune`'s plan: the selected findings, one action per holder, the rest kept with why.

use std::time::Duration;

use super::{container_action, container_selected, kept_by_label, process_action};
use super::{Expect, Filters, Held, Holdings, Orphan, Plan};
use crate::analyze::findings::{Action, Finding, Kind, PortRef, Severity};
use crate::analyze::{Analysis, Owner, PortEntry};
use crate::model::{Container, ContainerState, Process, Snapshot};

/// Builds the plan: one action per container (whatever number of findings it has) and per
/// process, the keep label honoured, never-act findings listed as refused.
pub fn prune(snapshot: &Snapshot, analysis: &Analysis, filters: &Filters) -> Plan {
    let mut out = Plan::default();
    let mut by_container = Holdings::new();
    for f in analysis
        .findings
        .iter()
        .filter(|f| selected(f, snapshot, filters))
    {
        if f.action == Action::None {
            out.refused.push(Held {
                kinds: vec![f.kind],
                ports: f.ports.clone(),
                container: f.container,
                reason: f.reason.clone(),
            });
            continue;
        }
        match f.container {
            Some(index) => by_container.add(index, &[f.kind], &f.ports),
            None => plan_processes(snapshot, analysis, filters, f, &mut out),
        }
    }
    for (index, (kinds, ports)) in by_container {
        let c = &snapshot.containers[index];
        match held_back(snapshot, c, &ports, filters) {
            Some(reason) => out.keep(kinds, ports, Some(index), reason),
            None => {
                let expect = expectation(snapshot, c, &kinds);
                out.actions.push(container_action(
                    snapshot,
                    index,
                    kinds,
                    ports,
                    filters.stop_only,
                    expect,
                ));
            }
        }
    }
    out
}

/// The processes of a finding without a container (a forwarder whose container is gone):
/// each signalled for the ports it holds itself, unless the config protects them or it is
/// younger than `--older-than`.
fn plan_processes(
    snapshot: &Snapshot,
    analysis: &Analysis,
    filters: &Filters,
    f: &Finding,
    out: &mut Plan,
) {
    for &pid in &f.pids {
        let Some(process) = snapshot.host.processes.get(&pid) else {
            continue;
        };
        let ports: Vec<PortRef> = analysis
            .ports
            .iter()
            .filter(|e| {
                e.pids.contains(&pid)
                    && matches!(e.owner, Owner::Proxy { .. } | Owner::Conmon { .. })
            })
            .map(PortEntry::port_ref)
            .collect();
        let why = filters
            .protect
            .ports(&ports)
            .or_else(|| too_fresh(snapshot, process, filters.older_than?));
        match why {
            Some(reason) => out.keep(vec![f.kind], ports, None, reason),
            None => out
                .actions
                .push(process_action(process, vec![f.kind], ports)),
        }
    }
}

/// Why `--older-than` keeps a process, if it does: it started too recently, or when is
/// not known.
pub(super) fn too_fresh(snapshot: &Snapshot, process: &Process, limit: Duration) -> Option<String> {
    let age = process
        .started
        .zip(snapshot.taken_at)
        .map(|(s, now)| now - s);
    if age.is_some_and(|a| a >= secs(limit)) {
        return None;
    }
    Some(format!(
        "{} pid {} started {} ago, not older than --older-than {}s",
        process.name,
        process.pid,
        age.map_or("an unknown time".into(), crate::time::human),
        limit.as_secs()
    ))
}

/// Why a selected container is left alone, if it is: the keep label, the config file's
/// protection, `--older-than`, or `--min-age` (it may still be starting), in that order.
/// An age guard that is on keeps a container whose age is not known: unknown is never
/// old enough.
pub(super) fn held_back(
    snapshot: &Snapshot,
    c: &Container,
    ports: &[PortRef],
    filters: &Filters,
) -> Option<String> {
    if let Some(why) = kept_by_label(c).or_else(|| filters.protect.container(c, ports)) {
        return Some(why);
    }
    let age = container_age(snapshot, c);
    let below = |limit: Duration| age.is_none_or(|age| age < secs(limit));
    if let Some(limit) = filters.older_than.filter(|&l| below(l)) {
        return Some(match age {
            Some(age) => format!(
                "{}, not older than --older-than {}s",
                created_ago(age),
                limit.as_secs()
            ),
            None => unknown_age("--older-than", limit),
        });
    }
    let limit = filters.min_age;
    if limit.is_zero() || !below(limit) {
        return None;
    }
    Some(match age {
        Some(age) => format!(
            "{}, younger than --min-age {}s: it may still be starting",
            created_ago(age),
            limit.as_secs()
        ),
        None => unknown_age("--min-age", limit),
    })
}

/// `created 5 min ago`; a creation time ahead of this host's clock (the engine's clock
/// runs ahead) is said so, never "0s ago".
fn created_ago(age: i64) -> String {
    match age {
        0.. => format!("created {} ago", crate::time::human(age)),
        _ => format!(
            "created {} ahead of this host's clock",
            crate::time::human(-age)
        ),
    }
}

fn unknown_age(guard: &str, limit: Duration) -> String {
    format!(
        "its creation time is not known, so it is not shown older than {guard} {}s",
        limit.as_secs()
    )
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// How long ago the container was created, when both the engine's creation time and
/// the snapshot's clock are known.
fn container_age(snapshot: &Snapshot, c: &Container) -> Option<i64> {
    let created = c.created.as_ref()?.unix();
    Some(snapshot.taken_at? - created)
}

fn expectation(snapshot: &Snapshot, c: &Container, kinds: &[Kind]) -> Expect {
    let mut states = vec![c.state.clone()];
    let restarts = c
        .restart_policy
        .as_ref()
        .is_some_and(crate::model::RestartPolicy::restarts);
    if restarts
        && (kinds.contains(&Kind::RestartingContainer) || kinds.contains(&Kind::DormantBinding))
    {
        // A crash loop passes through these on its own between plan and action.
        for s in [
            ContainerState::Restarting,
            ContainerState::Running,
            ContainerState::Exited,
        ] {
            if !states.contains(&s) {
                states.push(s);
            }
        }
    }
    let missing_paths = if kinds.contains(&Kind::OrphanedCompose) {
        c.compose_paths()
            .map(|(dir, files)| {
                std::iter::once(dir)
                    .chain(files)
                    .filter(|p| snapshot.fs.exists.get(p) == Some(&false))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Expect {
        planned: c.state.clone(),
        states,
        health: kinds
            .contains(&Kind::UnhealthyContainer)
            .then_some(crate::model::Health::Unhealthy),
        missing_paths,
        orphan: kinds.contains(&Kind::OrphanService).then(|| Orphan {
            files: c.compose_paths().map(|(_, f)| f).unwrap_or_default(),
            service: c.compose_service().unwrap_or_default().to_owned(),
        }),
    }
}

fn selected(f: &Finding, snapshot: &Snapshot, filters: &Filters) -> bool {
    let severity = f.severity;
    if severity == Severity::Info {
        return false;
    }
    let by_severity = if filters.kinds.is_empty() {
        severity == Severity::Leak || (filters.include_suspects && severity == Severity::Suspect)
    } else {
        filters.kinds.contains(&f.kind)
    };
    if !by_severity {
        return false;
    }
    if let Some(spec) = &filters.ports {
        if !f.ports.iter().any(|p| spec.matches(p.proto, p.port)) {
            return false;
        }
    }
    if filters.project.is_none() && filters.labels.is_empty() {
        return true;
    }
    // Project and label filters select containers; a process finding never matches them.
    f.container
        .and_then(|i| snapshot.containers.get(i))
        .is_some_and(|c| container_selected(c, filters))
}
