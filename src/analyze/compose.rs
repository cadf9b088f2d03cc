//! Compose's own notion of a leftover: an orphan container, whose service the project's
//! files no longer define (renamed or deleted). `docker compose up` warns about it and
//! then fails to start the renamed service on the port the orphan still holds.

use super::findings::{container_ports, describe, list, port_conflict, Action, Finding, Kind};
use super::findings::{Evidence, PortRef, Severity};
use crate::model::{ComposeDefinition, Container, ContainerState, Snapshot};

/// Every container whose compose files exist, were read, and define no service of its
/// name. One-offs (`compose run`) are never orphans, as compose has it; nor is anything
/// whose files portreap could not read, or whose files now name another project.
pub fn orphan_services(snapshot: &Snapshot) -> Vec<Finding> {
    if !snapshot.fs.visible {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (index, c) in snapshot.containers.iter().enumerate() {
        let (Some(project), Some(service)) = (c.compose_project(), c.compose_service()) else {
            continue;
        };
        if c.compose_oneoff() {
            continue;
        }
        let refs = container_ports(c);
        let Some(ComposeDefinition::Read { services, name, .. }) = c
            .compose_files_key()
            .and_then(|key| snapshot.fs.definitions.get(&key))
        else {
            continue;
        };
        if refs.is_empty() || services.contains(service) || !same_project(name, project) {
            continue;
        }
        let blocked = blocked_by(snapshot, index, c, &refs);
        let files = c
            .compose_paths()
            .map(|(_, f)| f.join(", "))
            .unwrap_or_default();
        let mut reason = format!(
            "{}: its compose files ({files}) no longer define service {service}; compose calls it an orphan container (\"If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up\"); it publishes {}",
            describe(snapshot, c),
            list(&refs)
        );
        if !blocked.is_empty() {
            reason.push_str(&format!(
                ", which {} of the same project could not take",
                blocked.join(", ")
            ));
        }
        out.push(Finding {
            kind: Kind::OrphanService,
            severity: if blocked.is_empty() {
                Severity::Suspect
            } else {
                Severity::Leak
            },
            ports: refs,
            container: Some(index),
            pids: Vec::new(),
            evidence: Evidence::ServiceUndefined {
                service: service.to_owned(),
                blocks: blocked.len(),
            },
            reason,
            action: Action::RemoveContainer,
        });
    }
    out
}

/// Whether files that set `name` still describe `project`: a `name:` other than the
/// project's means the directory now holds another project (or one started with `-p`),
/// and nothing of this one is judged from them.
fn same_project(name: &Option<String>, project: &str) -> bool {
    match name {
        None => true,
        Some(name) => !name.contains('$') && name.to_lowercase() == project,
    }
}

/// The other containers of `c`'s project (same engine) whose start failed on one of `refs`.
fn blocked_by(snapshot: &Snapshot, index: usize, c: &Container, refs: &[PortRef]) -> Vec<String> {
    snapshot
        .containers
        .iter()
        .enumerate()
        .filter(|&(i, d)| {
            i != index
                && d.engine == c.engine
                && d.compose_project() == c.compose_project()
                && matches!(d.state, ContainerState::Created | ContainerState::Exited)
        })
        .filter(|(_, d)| {
            d.error
                .as_deref()
                .and_then(port_conflict)
                .is_some_and(|(_, _, port)| refs.iter().any(|r| r.port == port))
        })
        .map(|(_, d)| match d.compose_service() {
            Some(s) => format!("{} (service {s})", d.name),
            None => d.name.clone(),
        })
        .collect()
}
