//! Pure planning: findings and filters in, the list of actions (and of what is kept) out.

use std::collections::BTreeMap;

use crate::analyze::findings::{Action, Finding, Kind, PortRef, Severity};
use crate::analyze::{Analysis, Owner};
use crate::model::{Container, ContainerState, Process, Proto, Snapshot};
use crate::portspec::PortSpec;

/// The label that protects a container from portreap.
pub const KEEP_LABEL: &str = "portreap.keep";

/// What the user asked prune to consider.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// Act on suspects as well as leaks.
    pub include_suspects: bool,
    /// Only these kinds (and then regardless of severity, except `info`).
    pub kinds: Vec<Kind>,
    /// Only findings on these ports.
    pub ports: Option<PortSpec>,
    /// Only containers of this compose project.
    pub project: Option<String>,
    /// Only containers with all these labels (`KEY` or `KEY=VALUE`).
    pub labels: Vec<(String, Option<String>)>,
    /// Stop containers instead of removing them.
    pub stop_only: bool,
    /// Containers created less than this long ago are left alone (a `compose up` may be
    /// starting them); zero disables the guard.
    pub min_age: std::time::Duration,
    /// Act only on holders older than this (containers by creation, processes by start):
    /// a cron job's policy, on top of `min_age`.
    pub older_than: Option<std::time::Duration>,
    /// What the config file protects.
    pub protect: Protect,
}

/// Holders the config file says are never acted on.
#[derive(Clone, Debug, Default)]
pub struct Protect {
    /// Compose projects.
    pub projects: Vec<String>,
    /// Images, as the container names them.
    pub images: Vec<String>,
    /// Ports.
    pub ports: Option<PortSpec>,
    /// Labels (`KEY` or `KEY=VALUE`) that protect like `portreap.keep`.
    pub labels: Vec<(String, Option<String>)>,
}

impl Protect {
    /// Why a container is protected, if it is.
    fn container(&self, c: &Container, ports: &[PortRef]) -> Option<String> {
        if let Some(p) = c
            .compose_project()
            .filter(|p| self.projects.iter().any(|q| q == p))
        {
            return Some(format!("protected by the config file: compose project {p}"));
        }
        if self.images.contains(&c.image) {
            return Some(format!("protected by the config file: image {}", c.image));
        }
        let labelled = |(k, v): &&(String, Option<String>)| match (c.labels.get(k), v) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
            (None, _) => false,
        };
        if let Some((k, _)) = self.labels.iter().find(labelled) {
            return Some(format!("protected by the config file: label {k}"));
        }
        self.ports(ports)
    }

    /// Why ports are protected, if one is.
    fn ports(&self, ports: &[PortRef]) -> Option<String> {
        let spec = self.ports.as_ref()?;
        let hit = ports.iter().find(|p| spec.matches(p.proto, p.port))?;
        Some(format!(
            "protected by the config file: port {}/{}",
            hit.port, hit.proto
        ))
    }
}

/// What to do to a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerStep {
    /// Stop (unpausing first), then remove.
    Remove,
    /// Stop only (unpausing first).
    Stop,
}

/// What must still hold right before acting, or the action is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// The state the plan saw.
    pub planned: ContainerState,
    /// States that still justify the action.
    pub states: Vec<ContainerState>,
    /// Health that must still be reported (unhealthy), if the finding rests on it.
    pub health: Option<crate::model::Health>,
    /// Paths that must still be missing (an orphaned compose project's directory or files).
    pub missing_paths: Vec<String>,
    /// A service its compose files must still not define (an orphan service).
    pub orphan: Option<Orphan>,
}

/// An orphan service's container: the service its files must still leave undefined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    /// The project's compose files, host paths.
    pub files: Vec<String>,
    /// The service.
    pub service: String,
}

impl Expect {
    /// Only "still the same container in the same state": for actions that do not rest on
    /// a finding.
    pub fn unchanged(c: &Container) -> Self {
        Expect {
            planned: c.state.clone(),
            states: vec![c.state.clone()],
            health: None,
            missing_paths: Vec::new(),
            orphan: None,
        }
    }
}

/// Who is acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A container, by full id.
    Container {
        /// Full id: a container recreated under the same name is another container.
        id: String,
        /// Name, for people.
        name: String,
        /// Compose project, if any.
        project: Option<String>,
        /// Which queried engine knows it (see [`crate::model::Container::engine`]).
        engine: usize,
        /// Stop or remove.
        step: ContainerStep,
        /// What must still be true.
        expect: Expect,
    },
    /// A process, by PID and start time.
    Process {
        /// PID.
        pid: u32,
        /// Name, for people.
        name: String,
        /// Start time in ticks since boot: with the PID, the identity.
        start_ticks: Option<u64>,
        /// Command line at planning time; must be unchanged.
        cmdline: Vec<String>,
        /// Executable at planning time; must be unchanged (a process that exec'd another
        /// program keeps its PID, start time and possibly its command line).
        exe: Option<crate::model::Executable>,
        /// User at planning time; must be unchanged.
        uid: Option<u32>,
    },
}

/// One planned action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedAction {
    /// The findings that justify it.
    pub kinds: Vec<Kind>,
    /// Ports it should free.
    pub ports: Vec<PortRef>,
    /// Who.
    pub target: Target,
    /// Index of the container in the snapshot, for reports.
    pub container: Option<usize>,
}

impl PlannedAction {
    /// The action's name in the JSON contract.
    pub fn action(&self) -> Action {
        match &self.target {
            Target::Container {
                step: ContainerStep::Remove,
                ..
            } => Action::RemoveContainer,
            Target::Container {
                step: ContainerStep::Stop,
                ..
            } => Action::StopContainer,
            Target::Process { .. } => Action::KillProcess,
        }
    }

    /// `remove container web-1`, `kill docker-proxy pid 123`.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Container {
                name,
                step,
                project,
                ..
            } => {
                let verb = match step {
                    ContainerStep::Remove => "remove",
                    ContainerStep::Stop => "stop",
                };
                match project {
                    Some(p) => format!("{verb} container {name} (compose project {p})"),
                    None => format!("{verb} container {name}"),
                }
            }
            Target::Process { pid, name, .. } => format!("kill {name} pid {pid}"),
        }
    }
}

/// A finding prune will not act on, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The findings concerned.
    pub kinds: Vec<Kind>,
    /// Their ports.
    pub ports: Vec<PortRef>,
    /// Container index, if a container.
    pub container: Option<usize>,
    /// Why it is left alone.
    pub reason: String,
}

/// The plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// What will be done, one target each.
    pub actions: Vec<PlannedAction>,
    /// Containers selected but protected by the keep label.
    pub kept: Vec<Held>,
    /// Selected findings that no action may address (the never-act list).
    pub refused: Vec<Held>,
}

/// The keep label's value, when it protects the container.
pub(crate) fn keep_label(c: &Container) -> Option<&str> {
    c.labels
        .get(KEEP_LABEL)
        .map(String::as_str)
        .filter(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

pub(crate) fn process_action(
    process: &crate::model::Process,
    kinds: Vec<Kind>,
    ports: Vec<PortRef>,
) -> PlannedAction {
    PlannedAction {
        kinds,
        ports,
        target: Target::Process {
            pid: process.pid,
            name: process.name.clone(),
            start_ticks: process.start_ticks,
            cmdline: process.cmdline.clone(),
            exe: process.exe.clone(),
            uid: process.uid,
        },
        container: None,
    }
}

/// Stop or remove `c` (a dead container can only be removed), if `expect` still holds.
pub(crate) fn container_action(
    c: &Container,
    index: usize,
    kinds: Vec<Kind>,
    ports: Vec<PortRef>,
    stop_only: bool,
    expect: Expect,
) -> PlannedAction {
    PlannedAction {
        target: Target::Container {
            id: c.id.clone(),
            name: c.name.clone(),
            project: c.compose_project().map(str::to_owned),
            engine: c.engine,
            step: if stop_only && c.state != ContainerState::Dead {
                ContainerStep::Stop
            } else {
                ContainerStep::Remove
            },
            expect,
        },
        kinds,
        ports,
        container: Some(index),
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

/// Whether a container passes the project and label filters.
pub(crate) fn container_selected(c: &Container, filters: &Filters) -> bool {
    if let Some(project) = &filters.project {
        if c.compose_project() != Some(project.as_str()) {
            return false;
        }
    }
    filters
        .labels
        .iter()
        .all(|(key, value)| match (c.labels.get(key), value) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
            (None, _) => false,
        })
}

fn merge(ports: &mut Vec<PortRef>, more: &[PortRef]) {
    for p in more {
        if !ports.contains(p) {
            ports.push(*p);
        }
    }
    ports.sort();
}

/// Builds the plan: one action per container (whatever number of findings it has) and per
/// process, the keep label honoured, never-act findings listed as refused.
pub fn plan(snapshot: &Snapshot, analysis: &Analysis, filters: &Filters) -> Plan {
    let mut out = Plan::default();
    let mut by_container: BTreeMap<usize, (Vec<Kind>, Vec<PortRef>)> = BTreeMap::new();
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
            Some(index) => {
                let (kinds, ports) = by_container.entry(index).or_default();
                if !kinds.contains(&f.kind) {
                    kinds.push(f.kind);
                }
                merge(ports, &f.ports);
            }
            None => {
                for &pid in &f.pids {
                    let Some(process) = snapshot.host.processes.get(&pid) else {
                        continue;
                    };
                    // The ports this very process holds.
                    let ports: Vec<PortRef> = analysis
                        .ports
                        .iter()
                        .filter(|e| {
                            e.pids.contains(&pid)
                                && matches!(e.owner, Owner::Proxy { .. } | Owner::Conmon { .. })
                        })
                        .map(|e| PortRef {
                            proto: e.proto,
                            ip: e.ip,
                            port: e.port,
                        })
                        .collect();
                    if let Some(why) = filters.protect.ports(&ports) {
                        out.kept.push(Held {
                            kinds: vec![f.kind],
                            ports,
                            container: None,
                            reason: why,
                        });
                        continue;
                    }
                    if let Some(limit) = filters.older_than {
                        let age = process
                            .started
                            .zip(snapshot.taken_at)
                            .map(|(s, now)| now - s);
                        if age.is_none_or(|a| a < secs(limit)) {
                            out.kept.push(Held {
                                kinds: vec![f.kind],
                                ports,
                                container: None,
                                reason: format!(
                                    "{} pid {pid} started {} ago, not older than --older-than {}s",
                                    process.name,
                                    age.map_or("an unknown time".into(), crate::time::human),
                                    limit.as_secs()
                                ),
                            });
                            continue;
                        }
                    }
                    out.actions
                        .push(process_action(process, vec![f.kind], ports));
                }
            }
        }
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
        if let Some(why) = filters.protect.container(c, &ports) {
            out.kept.push(Held {
                kinds,
                ports,
                container: Some(index),
                reason: why,
            });
            continue;
        }
        if let Some(limit) = filters.older_than {
            if let Some(age) = too_young(snapshot, c, limit) {
                out.kept.push(Held {
                    kinds,
                    ports,
                    container: Some(index),
                    reason: format!(
                        "created {} ago, not older than --older-than {}s",
                        crate::time::human(age),
                        limit.as_secs()
                    ),
                });
                continue;
            }
        }
        if let Some(age) = too_young(snapshot, c, filters.min_age) {
            out.kept.push(Held {
                kinds,
                ports,
                container: Some(index),
                reason: format!(
                    "created {} ago, younger than --min-age {}s: it may still be starting",
                    crate::time::human(age),
                    filters.min_age.as_secs()
                ),
            });
            continue;
        }
        let expect = expectation(snapshot, c, &kinds);
        out.actions.push(container_action(
            c,
            index,
            kinds,
            ports,
            filters.stop_only,
            expect,
        ));
    }
    out
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The container's age when it is below `min_age`; an unknown creation time counts as
/// old enough only when the guard is off.
fn too_young(snapshot: &Snapshot, c: &Container, min_age: std::time::Duration) -> Option<i64> {
    if min_age.is_zero() {
        return None;
    }
    let created = c.created.as_ref().map(crate::model::Timestamp::unix);
    let age = match (created, snapshot.taken_at) {
        (Some(created), Some(now)) => now - created,
        // Without both clocks, the age cannot be shown to be enough.
        _ => 0,
    };
    (age < i64::try_from(min_age.as_secs()).unwrap_or(i64::MAX)).then_some(age)
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

/// Parses `--label KEY[=VALUE]`.
pub fn parse_label(text: &str) -> Result<(String, Option<String>), String> {
    let (key, value) = match text.split_once('=') {
        Some((k, v)) => (k, Some(v.to_owned())),
        None => (text, None),
    };
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(format!(
            "'{text}' is not a label (expected KEY or KEY=VALUE)"
        ));
    }
    Ok((key.to_owned(), value))
}

/// Parses `--kind K`: a finding id prune may act on.
pub fn parse_kind(text: &str) -> Result<Kind, String> {
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.id() == text)
        .ok_or_else(|| {
            let ids: Vec<&str> = Kind::ALL
                .iter()
                .filter(|k| k.severity() != Severity::Info)
                .map(|k| k.id())
                .collect();
            format!("unknown kind '{text}' (expected one of {})", ids.join(", "))
        })?;
    if kind.severity() == Severity::Info {
        return Err(format!("{text} is informational: prune never acts on it"));
    }
    Ok(kind)
}

/// What `free` may touch.
#[derive(Clone, Copy, Debug)]
pub struct FreeOptions {
    /// Signal plain processes too.
    pub kill_processes: bool,
    /// Stop containers instead of removing them.
    pub stop_only: bool,
    /// Our effective uid: a process of another user is refused unless we are root.
    pub euid: u32,
}

/// Plans freeing the ports of `spec`, whatever holds them: every container (healthy or
/// not), every docker-proxy, and plain processes when allowed. The engine, the
/// never-act list, other users' processes and invisible owners are refused with the
/// reason; the keep label is honoured.
pub fn plan_free(
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
