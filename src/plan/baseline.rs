//! CI baselines: the port holders a host had when a job started, so that at its end the job
//! cleans exactly what it left, whatever its health, and nothing that was there before, nor
//! what another job on the same host made meanwhile.
//!
//! A baseline records every container and every process by identities nobody can forge
//! (container ids, PID and start time), the engines it was saved against, and the job
//! itself: its workspace, its CI job ids, and the chain of processes it ran in. Jobs
//! register on the host (see `act::jobs`); at the end, a new holder is this job's only
//! when that is proven (made in its workspace, labelled with its id, started under its own
//! processes) or when no other registered job ran when it was made.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    container_action, container_selected, kept_by_label, process_action, Expect, Filters, Held,
    Plan,
};
use crate::analyze::findings::{never_act, PortRef};
use crate::analyze::{Analysis, Owner};
use crate::host::lineage::Known;
use crate::model::{Container, EngineStatus, Process, Snapshot};

/// The baseline format this version writes and reads.
pub const SCHEMA_VERSION: u32 = 2;

/// The most a baseline file may hold: a host with 100,000 processes and 10,000
/// containers needs about 4 MiB.
pub const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// The label by which a job marks a container its own (its value: the job's id).
pub const JOB_LABEL: &str = "portreap.job";

/// What existed at the start of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// When it was taken (seconds since the epoch).
    pub taken_at: Option<i64>,
    /// Every container, by full id (a container recreated under the same name is new).
    pub containers: BTreeSet<String>,
    /// Every process of the host, by PID and start time (PIDs get reused), whatever it
    /// held then.
    pub processes: BTreeSet<(u32, u64)>,
    /// The engines asked.
    pub engines: Vec<EngineRecord>,
    /// The job that saved it.
    pub job: Job,
}

/// An engine a baseline was saved against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineRecord {
    /// Its endpoint.
    pub endpoint: String,
    /// `docker` or `podman`.
    pub kind: Option<String>,
    /// Docker's own id (`/info`); Podman gives none that lasts.
    pub id: Option<String>,
    /// The user its serving process runs as, when known.
    pub uid: Option<u32>,
}

impl EngineRecord {
    /// The record of an engine that answered.
    pub fn of(e: &EngineStatus) -> Self {
        EngineRecord {
            endpoint: e.endpoint.clone(),
            kind: e.kind.map(|k| k.as_str().to_owned()),
            id: e.id.clone(),
            uid: e.uid,
        }
    }

    /// Whether `e` is this engine: the same endpoint and kind, the same id where the
    /// engine has one (Docker always does), the same serving user where both are known.
    pub fn is(&self, e: &EngineStatus) -> bool {
        let now = EngineRecord::of(e);
        self.endpoint == now.endpoint
            && self.kind == now.kind
            && self.id == now.id
            && (self.uid.is_none() || now.uid.is_none() || self.uid == now.uid)
    }
}

impl std::fmt::Display for EngineRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at {}",
            self.kind.as_deref().unwrap_or("engine"),
            self.endpoint
        )?;
        match &self.id {
            Some(id) => write!(f, " (id {id})"),
            None => Ok(()),
        }
    }
}

/// A CI job, as it registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// A random id, for its label ([`JOB_LABEL`]) and its registration.
    pub id: String,
    /// Its workspace (`GITHUB_WORKSPACE`, `CI_PROJECT_DIR`, `WORKSPACE`, else the working
    /// directory), absolute.
    pub workspace: Option<String>,
    /// The CI's ids of the job found in its environment (`GITHUB_RUN_ID`, `CI_JOB_ID`,
    /// `BUILD_TAG`, ...).
    pub ci: BTreeMap<String, String>,
    /// The process that saved the baseline and its ancestors, nearest first (PID 1 left
    /// out).
    pub chain: Vec<Known>,
    /// When it registered (seconds since the epoch).
    pub registered: Option<i64>,
    /// The user it runs as (the sudoer under `sudo`).
    #[serde(default)]
    pub uid: Option<u32>,
    /// When its cleanup ended it (in the registry only).
    #[serde(default)]
    pub ended: Option<i64>,
    /// The jobs registered on the host that were over when this one registered: nothing
    /// made since can be theirs.
    #[serde(default)]
    pub over_before: BTreeSet<String>,
}

impl Job {
    /// How people are told which job it is: its CI ids, else its workspace, else its id.
    pub fn describe(&self) -> String {
        let ci: Vec<String> = self.ci.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut out = format!("job {}", self.id);
        if !ci.is_empty() {
            out.push_str(&format!(" ({})", ci.join(", ")));
        }
        if let Some(ws) = &self.workspace {
            out.push_str(&format!(" in {ws}"));
        }
        out
    }
}

/// Why a baseline file cannot be used.
pub fn parse(raw: &[u8]) -> Result<Baseline, String> {
    #[derive(Deserialize)]
    struct Version {
        schema_version: Option<u32>,
    }
    let version: Version =
        serde_json::from_slice(raw).map_err(|e| format!("not a portreap baseline: {e}"))?;
    match version.schema_version {
        Some(SCHEMA_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "schema_version {v}, and this portreap reads {SCHEMA_VERSION}: save the baseline again with it"
            ))
        }
        None => return Err("not a portreap baseline: no schema_version".into()),
    }
    serde_json::from_slice(raw).map_err(|e| format!("not a portreap baseline: {e}"))
}

/// Records the baseline of a snapshot: its containers, every process of the host
/// (`processes`), its engines and the job.
pub fn record(snapshot: &Snapshot, processes: BTreeSet<(u32, u64)>, job: Job) -> Baseline {
    Baseline {
        schema_version: SCHEMA_VERSION,
        taken_at: snapshot.taken_at,
        containers: snapshot.containers.iter().map(|c| c.id.clone()).collect(),
        processes: processes
            .into_iter()
            .chain(
                snapshot
                    .host
                    .processes
                    .values()
                    .filter_map(|p| Some((p.pid, p.start_ticks?))),
            )
            .collect(),
        engines: snapshot
            .all_engines()
            .filter(|e| e.reachable)
            .map(EngineRecord::of)
            .collect(),
        job,
    }
}

/// Another job registered on the host, as the cleanup sees it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherJob {
    /// Its registration.
    pub job: Job,
    /// Its processes that are no other job's (nor this one's), by PID and start time.
    pub own: BTreeSet<(u32, u64)>,
    /// When its first own process started; `None` when none is known (then it may have
    /// run at any time since it registered).
    pub start: Option<i64>,
}

impl OtherJob {
    /// Whether it may have been running at `t`: it had started, and had not ended by
    /// its cleanup (it may still run, or have died at a time nobody saw).
    fn may_have_run_at(&self, t: i64) -> bool {
        // A second of margin each way: times are whole seconds.
        let started = self
            .start
            .or(self.job.registered)
            .is_none_or(|start| t.saturating_add(1) >= start);
        started && self.job.ended.is_none_or(|end| t <= end.saturating_add(1))
    }
}

/// What the cleanup knows of the jobs: this one and the others registered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Jobs {
    /// This job's workspace.
    pub workspace: Option<String>,
    /// This job's id.
    pub id: String,
    /// The user this job runs as: another user's process is never its own unless its
    /// processes started it.
    pub uid: Option<u32>,
    /// This job's processes that are no other job's (then and now), by PID and start.
    pub own: BTreeSet<(u32, u64)>,
    /// The other jobs registered on the host that may have run since this one began.
    pub others: Vec<OtherJob>,
    /// Every other registration, over or not: a workspace or a label of theirs still
    /// claims what they made.
    pub claims: Vec<Job>,
    /// Why the other jobs cannot be known (the registry could not be read): then only a
    /// proof (this job's label, workspace or processes) makes something this job's.
    pub unknown: Option<String>,
    /// The engines the baseline knows, by their position in the snapshot; a container of
    /// another engine is not judged.
    pub engines: BTreeSet<usize>,
}

/// Whether `path` is `dir` or below it.
fn within(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    !dir.is_empty()
        && path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Jobs {
    /// Why a container the baseline does not know is not proven this job's, if it is not.
    fn container_doubt(&self, c: &Container) -> Option<String> {
        if !self.engines.contains(&c.engine) {
            return Some("its engine is not one the baseline was saved against".into());
        }
        if let Some(label) = c.labels.get(JOB_LABEL) {
            if *label == self.id {
                return None;
            }
            let whose = self.claims.iter().find(|j| j.id == *label);
            return Some(match whose {
                Some(j) => format!("labelled {JOB_LABEL}={label}: {}", j.describe()),
                None => format!("labelled {JOB_LABEL}={label}: another job's"),
            });
        }
        if let Some((dir, files)) = c.compose_paths() {
            let paths: Vec<&str> = std::iter::once(dir.as_str())
                .chain(files.iter().map(String::as_str))
                .collect();
            // Another job's workspace claims it, even where this job's holds it too.
            let theirs = self.claims.iter().find(|j| {
                j.workspace
                    .as_deref()
                    .is_some_and(|ws| paths.iter().any(|p| within(p, ws)))
            });
            if let Some(j) = theirs {
                return Some(format!(
                    "its compose project was started in the workspace of {}",
                    j.describe()
                ));
            }
            let mine = self.workspace.as_deref();
            if mine.is_some_and(|ws| paths.iter().any(|p| within(p, ws))) {
                return None;
            }
        }
        if let Some(why) = &self.unknown {
            return Some(format!(
                "{why}, so only this job's label or workspace proves it this job's"
            ));
        }
        if self.others.is_empty() {
            return None;
        }
        let Some(created) = c.created.as_ref().map(crate::model::Timestamp::unix) else {
            return Some("its creation time is not known, so it may be another job's".into());
        };
        self.running_at(created, "created")
    }

    /// Why something made (or started) at `t` may be another job's: one was running.
    fn running_at(&self, t: i64, made: &str) -> Option<String> {
        let o = self.others.iter().find(|o| o.may_have_run_at(t))?;
        Some(format!(
            "{made} while {} was running, and nothing proves it this job's: label it {JOB_LABEL}={} or start it in this job's workspace",
            o.job.describe(),
            self.id
        ))
    }

    /// Why a process the baseline does not know is not proven this job's, if it is not:
    /// started under this job's own processes it is, under another's it is not.
    fn process_doubt(&self, snapshot: &Snapshot, p: &Process) -> Option<String> {
        let identity = |q: &Process| q.start_ticks.map(|t| (q.pid, t));
        let lineage: Vec<(u32, u64)> = std::iter::once(p)
            .chain(snapshot.host.ancestors(p.pid))
            .filter_map(identity)
            .collect();
        if lineage.iter().any(|id| self.own.contains(id)) {
            return None;
        }
        if p.uid.is_none() || p.uid != self.uid {
            return Some(format!(
                "it runs as {}, not as this job's user, and not under this job's processes",
                p.uid
                    .map_or("an unknown user".into(), |u| format!("uid {u}"))
            ));
        }
        if let Some(o) = self
            .others
            .iter()
            .find(|o| lineage.iter().any(|id| o.own.contains(id)))
        {
            return Some(format!("it runs under {}", o.job.describe()));
        }
        if let Some(why) = &self.unknown {
            return Some(format!(
                "{why}, so only this job's processes prove it this job's"
            ));
        }
        if self.others.is_empty() {
            return None;
        }
        let Some(started) = p.started else {
            return Some("its start time is not known, so it may be another job's".into());
        };
        self.running_at(started, "started")
    }
}

/// Plans removing every container that holds or asks for a port and was not in the
/// baseline, and signalling every forwarder (and, with `kill_processes`, every other
/// process) that holds a port and was not in it, when it is proven this job's (see
/// [`Jobs`]). What was in it is listed as kept, and so is what may be another job's, what
/// the keep label, the config file's protections and the age guards keep.
///
/// `filters` narrows by port, compose project and label (the last two select containers
/// only, so processes are then left out).
pub fn plan_since(
    snapshot: &Snapshot,
    analysis: &Analysis,
    (baseline, jobs): (&Baseline, &Jobs),
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
                let known = p
                    .start_ticks
                    .is_some_and(|t| baseline.processes.contains(&(p.pid, t)));
                if known {
                    continue;
                }
                // A forwarder may serve an engine the baseline does not know (asked with
                // --all-engines): its own engine's containers are only kept, so is it.
                if !plain && jobs.engines.len() < snapshot.all_engines().count() {
                    out.keep(
                        Vec::new(),
                        vec![port],
                        None,
                        "a forwarder, and the baseline does not know every engine asked".into(),
                    );
                    continue;
                }
                if let Some(why) = plain
                    .then(|| super::plain_refusal(snapshot, p, &port))
                    .flatten()
                {
                    out.refused.push(Held {
                        kinds: Vec::new(),
                        ports: vec![port],
                        container: None,
                        reason: why,
                    });
                    continue;
                }
                if let Some(held) = sorted.process(p, plain && !kill_processes, port) {
                    out.refused.push(held);
                }
            }
            _ => {}
        }
    }
    sorted.plan(snapshot, jobs, filters, out)
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
    fn process(&mut self, p: &Process, plain_refused: bool, port: PortRef) -> Option<Held> {
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

    /// Acts on what is new and proven this job's, keeps the rest.
    fn plan(self, snapshot: &Snapshot, jobs: &Jobs, filters: &Filters, mut out: Plan) -> Plan {
        for (index, ports) in self.kept_containers {
            out.keep(
                Vec::new(),
                ports,
                Some(index),
                "in the baseline: not created by this job".into(),
            );
        }
        for (pid, ports) in self.new_processes {
            let p = &snapshot.host.processes[&pid];
            let why = jobs
                .process_doubt(snapshot, p)
                .or_else(|| filters.protect.ports(&ports))
                .or_else(|| super::prune::too_fresh(snapshot, p, filters.older_than?));
            match why {
                Some(reason) => out.keep(Vec::new(), ports, None, reason),
                None => out.actions.push(process_action(p, Vec::new(), ports)),
            }
        }
        for (index, ports) in self.new_containers {
            let c = &snapshot.containers[index];
            let why = kept_by_label(c)
                .or_else(|| jobs.container_doubt(c))
                .or_else(|| super::prune::held_back(snapshot, c, &ports, filters));
            if let Some(reason) = why {
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
