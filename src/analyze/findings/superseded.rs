//! A compose project started from the same directory under an older name.

use std::collections::BTreeMap;

use super::{container_ports, describe, list, Action, Evidence, Finding, Kind, PortRef};
use crate::model::{Proto, Snapshot, Timestamp};

/// Compose's default project name for a directory: its base name, lower-cased, keeping
/// the characters compose v2 keeps (v1 kept only letters and digits; both are accepted).
fn project_names_for(dir: &str) -> [String; 2] {
    let base = dir
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_lowercase();
    let v2: String = base
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    let v1: String = base
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .collect();
    [v2, v1]
}

/// Two compose projects started from one directory, where only one carries the name that
/// directory gives today: the other was started under an old name (a renamed folder, an
/// old `-p`) and is flagged only when its containers are all older than the current
/// project's and publish a port the current project asks for, the port conflict that makes
/// it a leak rather than a deliberate second instance.
///
/// Projects are compared within one engine only: labels are anyone's to write, and a
/// user's own engine (rootless, a fake socket under `/run/user`) could list a container
/// labelled after a victim's directory to make the victim's project look superseded.
pub(super) fn compose_projects(snapshot: &Snapshot) -> Vec<Finding> {
    type Projects<'a> = BTreeMap<&'a str, Vec<usize>>;
    let mut by_dir: BTreeMap<(usize, &str), Projects<'_>> = BTreeMap::new();
    for (i, c) in snapshot.containers.iter().enumerate() {
        if let (Some(project), Some(dir)) = (c.compose_project(), c.compose_working_dir()) {
            by_dir
                .entry((c.engine, dir))
                .or_default()
                .entry(project)
                .or_default()
                .push(i);
        }
    }
    let mut out = Vec::new();
    for ((_, dir), projects) in by_dir {
        if projects.len() >= 2 {
            superseded_in(snapshot, dir, &projects, &mut out);
        }
    }
    out
}

/// The findings of one directory's projects: those all older than the one its name
/// gives today, on the ports that one asks for.
fn superseded_in(
    snapshot: &Snapshot,
    dir: &str,
    projects: &BTreeMap<&str, Vec<usize>>,
    out: &mut Vec<Finding>,
) {
    let names = project_names_for(dir);
    let current: Vec<&str> = projects
        .keys()
        .copied()
        .filter(|p| names.iter().any(|n| n == p))
        .collect();
    let [current] = current[..] else { return };
    let created = |i: &usize| {
        snapshot.containers[*i]
            .created
            .as_ref()
            .map(Timestamp::unix)
    };
    let current_members = &projects[current];
    let Some(current_oldest) = current_members
        .iter()
        .map(created)
        .collect::<Option<Vec<_>>>()
        .and_then(|v| v.into_iter().min())
    else {
        return;
    };
    let wanted: Vec<(Proto, u16)> = current_members
        .iter()
        .flat_map(|i| container_ports(&snapshot.containers[*i]))
        .map(|r| (r.proto, r.port))
        .collect();
    let older = projects.iter().filter(|(project, members)| {
        **project != current
            && members
                .iter()
                .all(|i| created(i).is_some_and(|t| t < current_oldest))
    });
    for &i in older.flat_map(|(_, members)| members) {
        let c = &snapshot.containers[i];
        let clash: Vec<PortRef> = container_ports(c)
            .into_iter()
            .filter(|r| wanted.contains(&(r.proto, r.port)))
            .collect();
        if clash.is_empty() {
            continue;
        }
        out.push(Finding {
            kind: Kind::OrphanedCompose,
            severity: Kind::OrphanedCompose.severity(),
            reason: format!(
                "{}: superseded by compose project {current} from the same directory {dir}, which wants {}",
                describe(snapshot, c),
                list(&clash)
            ),
            ports: clash,
            container: Some(i),
            pids: Vec::new(),
            evidence: Evidence::Superseded {
                by: current.to_owned(),
            },
            action: Action::RemoveContainer,
        });
    }
}
