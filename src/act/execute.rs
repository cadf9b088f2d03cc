//! Acting on a plan, like a careful operator: re-check each target right before acting,
//! act, then prove the port is free. The outside world is reached through [`Ops`] only,
//! so the re-check rules are tested with fakes.

use std::fmt;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use crate::analyze::findings::{never_act, PortRef};
use crate::engine::Error as EngineError;
use crate::model::{Container, ContainerState, Health, Process};
use crate::plan::{ContainerStep, Expect, Plan, PlannedAction, Target};

/// How many actions run at once: most of an action is waiting (a stop's grace, the
/// engine's removal), and the waits overlap. The docker CLI runs up to 50 removals or
/// stops at once too.
const CONCURRENCY: usize = 50;

/// Signals portreap sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Ask to exit.
    Term,
    /// Force.
    Kill,
}

/// Whether a signalled process exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exited {
    /// It is gone.
    Yes,
    /// Still there after the wait.
    No,
}

/// A process pinned for signalling: signals reach this process, never a successor that
/// reuses its PID.
pub trait Pinned {
    /// Sends a signal.
    fn signal(&self, signal: Signal) -> std::io::Result<()>;
    /// Waits up to `limit` for the process to exit.
    fn wait_exit(&self, limit: Duration) -> impl std::future::Future<Output = Exited>;
}

/// The side effects prune needs.
#[allow(async_fn_in_trait)] // single-threaded runtime: futures need not be Send
pub trait Ops {
    /// A pinned process handle.
    type Pin: Pinned;
    /// The container now, asked of the engine that knows it; `None` if gone.
    async fn inspect(&self, engine: usize, id: &str) -> Result<Option<Container>, EngineError>;
    /// Unpauses.
    async fn unpause(&self, engine: usize, id: &str) -> Result<(), EngineError>;
    /// Stops with a grace period.
    async fn stop(&self, engine: usize, id: &str, grace: Duration) -> Result<(), EngineError>;
    /// Removes. Without `force` the engine refuses a container that runs, is paused or
    /// is restarting. `Ok(false)`: there was no such container.
    async fn remove(&self, engine: usize, id: &str, force: bool) -> Result<bool, EngineError>;
    /// Pins the process with this PID, if it exists.
    fn pin(&self, pid: u32) -> std::io::Result<Option<Self::Pin>>;
    /// Reads the process with this PID now (after pinning, so it is the pinned one).
    fn process(&self, pid: u32) -> Option<Process>;
    /// Whether a path exists on the host of engine `engine` (see
    /// [`crate::host::compose::path_state`]).
    fn path_state(&self, engine: usize, path: &str) -> crate::model::PathState;
    /// What compose `files` define now, as engine `engine`'s host has them.
    fn compose_definition(
        &self,
        engine: usize,
        files: &[String],
    ) -> crate::model::ComposeDefinition;
    /// Whether the exact address and protocol can be bound now.
    fn port_free(&self, port: &PortRef) -> bool;
    /// Waits a little between probes.
    async fn sleep(&self, duration: Duration);
}

/// Timing knobs.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long a container gets to stop, and a process to exit after SIGTERM.
    pub grace: Duration,
    /// How long to keep probing a port that is not free yet.
    pub settle: Duration,
}

/// What happened to one action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not run: dry run.
    Planned,
    /// Done.
    Done,
    /// Not done because the target changed or is gone.
    Skipped(Skip),
    /// Tried and failed; the message says why.
    Failed(String),
}

impl Outcome {
    /// JSON name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Planned => "planned",
            Outcome::Done => "done",
            Outcome::Skipped(_) => "skipped",
            Outcome::Failed(_) => "failed",
        }
    }

    /// The reason of a skip or failure.
    pub fn detail(&self) -> Option<String> {
        match self {
            Outcome::Skipped(why) => Some(why.to_string()),
            Outcome::Failed(why) => Some(why.clone()),
            Outcome::Planned | Outcome::Done => None,
        }
    }
}

/// Why an action was not taken at the instant of acting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The container was removed meanwhile.
    ContainerGone,
    /// The process exited meanwhile.
    Exited(u32),
    /// The target is not what the plan saw.
    Changed(Changed),
    /// The process read now is one portreap never signals (the reason says which).
    NeverAct(String),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::ContainerGone => f.write_str("the container no longer exists"),
            Skip::Exited(pid) => write!(f, "pid {pid} has already exited"),
            Skip::Changed(how) => how.fmt(f),
            Skip::NeverAct(why) => f.write_str(why),
        }
    }
}

/// The result of one action.
#[derive(Clone, Debug)]
pub struct Report {
    /// The action.
    pub action: PlannedAction,
    /// What happened.
    pub outcome: Outcome,
    /// After acting, whether every port of the action was free (bind-probed); `None`
    /// when not acted on.
    pub port_free_after: Option<bool>,
    /// Ports still held after acting.
    pub still_held: Vec<PortRef>,
}

/// Runs the plan, calling `progress` as each action completes.
pub async fn execute<O: Ops>(
    ops: &O,
    plan: &Plan,
    timing: Timing,
    mut progress: impl FnMut(&Report),
) -> Vec<Report> {
    let mut done: Vec<(usize, Report)> = stream::iter(plan.actions.iter().cloned().enumerate())
        .map(|(i, action)| async move { (i, run(ops, action, timing).await) })
        .buffer_unordered(CONCURRENCY)
        .inspect(|(_, report)| progress(report))
        .collect()
        .await;
    // Report in plan order, whatever order they completed in.
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, report)| report).collect()
}

async fn run<O: Ops>(ops: &O, action: PlannedAction, timing: Timing) -> Report {
    let outcome = match &action.target {
        Target::Container {
            id,
            step,
            expect,
            engine,
            ..
        } => act_on_container(ops, *engine, id, *step, expect, timing).await,
        Target::Process { pid, .. } => act_on_process(ops, *pid, &action.target, timing).await,
    };
    let (port_free_after, still_held) = if outcome == Outcome::Done {
        let held = verify(ops, &action.ports, timing).await;
        (Some(held.is_empty()), held)
    } else {
        (None, Vec::new())
    };
    Report {
        action,
        outcome,
        port_free_after,
        still_held,
    }
}

/// The ports still held once the engine and kernel had `settle` to release them.
async fn verify<O: Ops>(ops: &O, ports: &[PortRef], timing: Timing) -> Vec<PortRef> {
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    loop {
        let held: Vec<PortRef> = ports
            .iter()
            .copied()
            .filter(|p| !ops.port_free(p))
            .collect();
        if held.is_empty() || waited >= timing.settle {
            return held;
        }
        ops.sleep(step).await;
        waited += step;
    }
}

/// What changed since the plan, so that the action no longer holds: the target is
/// skipped, and the report says which of these it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// The name now belongs to another container (this id).
    OtherContainer(String),
    /// The container left the states that justified the action.
    State {
        /// The states the plan accepted.
        was: Vec<ContainerState>,
        /// The state now.
        now: ContainerState,
    },
    /// The health check that failed passes now (or is no longer reported).
    Recovered(Option<Health>),
    /// A compose path that had to stay missing exists again.
    PathBack(String),
    /// A compose path can no longer be told missing.
    PathUnknown {
        /// The path.
        path: String,
        /// Why it cannot be checked.
        why: String,
    },
    /// The orphan's service is defined again in its compose files.
    ServiceBack(String),
    /// The orphan's compose files can no longer be judged.
    FilesNotJudged(String),
    /// The PID belongs to another process than the one planned.
    OtherProcess {
        /// The PID.
        pid: u32,
        /// Its name now.
        name: String,
        /// What differs: another process, program, user or command line.
        what: &'static str,
    },
}

impl fmt::Display for Changed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Changed::OtherContainer(id) => {
                write!(f, "the name now belongs to another container ({id})")
            }
            Changed::State { was, now } => {
                let was: Vec<&str> = was.iter().map(ContainerState::as_str).collect();
                write!(f, "its state changed: was {}, now {now}", was.join("/"))
            }
            Changed::Recovered(health) => write!(
                f,
                "it recovered: health is now {}",
                health.as_ref().map_or("not reported", Health::as_str)
            ),
            Changed::PathBack(path) => write!(f, "{path} exists again"),
            Changed::PathUnknown { path, why } => {
                write!(f, "{path} can no longer be checked ({why})")
            }
            Changed::ServiceBack(service) => {
                write!(f, "service {service} is defined again in its compose files")
            }
            Changed::FilesNotJudged(reason) => {
                write!(f, "its compose files can no longer be judged ({reason})")
            }
            Changed::OtherProcess { pid, name, what } => {
                write!(f, "pid {pid} now belongs to {what} ({name}), not signalled")
            }
        }
    }
}

fn recheck(
    now: &Container,
    (engine, id): (usize, &str),
    expect: &Expect,
    ops: &impl Ops,
) -> Result<(), Changed> {
    if now.id != id {
        return Err(Changed::OtherContainer(now.id.clone()));
    }
    if !expect.states.contains(&now.state) {
        return Err(Changed::State {
            was: expect.states.clone(),
            now: now.state.clone(),
        });
    }
    if let Some(health) = &expect.health {
        if now.health.as_ref() != Some(health) {
            return Err(Changed::Recovered(now.health.clone()));
        }
    }
    match compose_back(engine, expect, ops) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// Why an action that rests on compose no longer holds: a missing path is back, or an
/// orphan's service is defined again.
fn compose_back(engine: usize, expect: &Expect, ops: &impl Ops) -> Option<Changed> {
    path_back(engine, expect, ops).or_else(|| service_back(engine, expect, ops))
}

/// Why removing an orphan no longer holds: its service is defined again (the rename was
/// undone), or its files can no longer be read.
fn service_back(engine: usize, expect: &Expect, ops: &impl Ops) -> Option<Changed> {
    use crate::model::ComposeDefinition;
    let orphan = expect.orphan.as_ref()?;
    match ops.compose_definition(engine, &orphan.files) {
        ComposeDefinition::Read { services, .. } if services.contains(&orphan.service) => {
            Some(Changed::ServiceBack(orphan.service.clone()))
        }
        ComposeDefinition::Read { .. } => None,
        ComposeDefinition::NotJudged { reason } => Some(Changed::FilesNotJudged(reason)),
    }
}

/// Why the action no longer holds if a path that had to stay missing is back, or can no
/// longer be told missing.
fn path_back(engine: usize, expect: &Expect, ops: &impl Ops) -> Option<Changed> {
    use crate::model::PathState;
    expect
        .missing_paths
        .iter()
        .find_map(|p| match ops.path_state(engine, p) {
            PathState::Gone => None,
            PathState::Exists => Some(Changed::PathBack(p.clone())),
            PathState::Unknown(why) => Some(Changed::PathUnknown {
                path: p.clone(),
                why,
            }),
        })
}

async fn act_on_container<O: Ops>(
    ops: &O,
    engine: usize,
    id: &str,
    step: ContainerStep,
    expect: &Expect,
    timing: Timing,
) -> Outcome {
    if step == ContainerStep::Remove && !expect.planned.has_process() {
        // The engine's unforced removal is the re-check, made at the instant of acting: it
        // removes a container only while it has no process, which is the state the plan
        // saw (exited, created and dead differ in history, not in what they hold). Only a
        // refusal (it was started meanwhile) needs the full re-check below.
        if let Some(why) = compose_back(engine, expect, ops) {
            return Outcome::Skipped(Skip::Changed(why));
        }
        match ops.remove(engine, id, false).await {
            Ok(true) => return Outcome::Done,
            Ok(false) => return Outcome::Skipped(Skip::ContainerGone),
            // Refused for its state (409: started meanwhile) or failed otherwise: judged
            // afresh below, and the re-check names a failure that persists.
            Err(_) => {}
        }
    }
    let now = match ops.inspect(engine, id).await {
        Ok(Some(now)) => now,
        Ok(None) => return Outcome::Skipped(Skip::ContainerGone),
        Err(e) => return Outcome::Failed(format!("cannot re-check the container: {e}")),
    };
    if let Err(why) = recheck(&now, (engine, id), expect, ops) {
        return Outcome::Skipped(Skip::Changed(why));
    }
    let running = now.state.has_process();
    if running && step == ContainerStep::Remove && timing.grace.is_zero() {
        // No grace to give: the engine's forced removal kills (paused or not) and removes
        // in one call, as `docker rm -f` does, instead of unpause, stop and remove.
        return match ops.remove(engine, id, true).await {
            Ok(_) => Outcome::Done,
            Err(e) => Outcome::Failed(format!("remove failed: {e}")),
        };
    }
    if now.state == ContainerState::Paused {
        if let Err(e) = ops.unpause(engine, id).await {
            return Outcome::Failed(format!("unpause failed: {e}"));
        }
    }
    // Exited, created and dead containers have no process to stop. They are removed
    // without force: one started since the re-check is refused by the engine, not killed.
    if running {
        if let Err(e) = ops.stop(engine, id, timing.grace).await {
            return Outcome::Failed(format!("stop failed: {e}"));
        }
    }
    if step == ContainerStep::Remove {
        // Gone after the stop is the goal reached: the engine removes a container run
        // with --rm itself once it stops.
        if let Err(e) = ops.remove(engine, id, running).await {
            return Outcome::Failed(format!("remove failed: {e}"));
        }
    }
    Outcome::Done
}

/// Whether the process read now is the one the plan saw: same start (so not a reused
/// PID), same program and user (so it did not exec another), same command line.
fn same_process(now: &Process, planned: &Target) -> Result<(), Changed> {
    let Target::Process {
        start_ticks,
        cmdline,
        exe,
        uid,
        ..
    } = planned
    else {
        // Only process targets reach here; anything else is never signalled.
        return Err(Changed::OtherProcess {
            pid: now.pid,
            name: now.name.clone(),
            what: "a target that is not a process",
        });
    };
    let changed = if now.start_ticks != *start_ticks {
        Some("another process")
    } else if now.exe.as_ref().map(|e| &e.path) != exe.as_ref().map(|e| &e.path) {
        Some("another program")
    } else if now.uid != *uid {
        Some("another user")
    } else if now.cmdline != *cmdline {
        Some("another command line")
    } else {
        None
    };
    match changed {
        Some(what) => Err(Changed::OtherProcess {
            pid: now.pid,
            name: now.name.clone(),
            what,
        }),
        None => Ok(()),
    }
}

async fn act_on_process<O: Ops>(ops: &O, pid: u32, planned: &Target, timing: Timing) -> Outcome {
    // Pin first, then check identity: once pinned, the checked process is the one that
    // receives the signal, even if the PID is reused meanwhile.
    let pinned = match ops.pin(pid) {
        Ok(Some(pinned)) => pinned,
        Ok(None) => return Outcome::Skipped(Skip::Exited(pid)),
        Err(e) => return Outcome::Failed(format!("cannot pin pid {pid}: {e}")),
    };
    let Some(now) = ops.process(pid) else {
        return Outcome::Skipped(Skip::Exited(pid));
    };
    if let Err(why) = same_process(&now, planned) {
        return Outcome::Skipped(Skip::Changed(why));
    }
    if let Some(why) = never_act(&now) {
        return Outcome::Skipped(Skip::NeverAct(why));
    }
    if let Err(e) = pinned.signal(Signal::Term) {
        return Outcome::Failed(format!("SIGTERM failed: {e}"));
    }
    if pinned.wait_exit(timing.grace).await == Exited::Yes {
        return Outcome::Done;
    }
    if let Err(e) = pinned.signal(Signal::Kill) {
        return Outcome::Failed(format!("SIGKILL failed: {e}"));
    }
    match pinned.wait_exit(Duration::from_secs(2)).await {
        Exited::Yes => Outcome::Done,
        Exited::No => Outcome::Failed(format!("pid {pid} survived SIGKILL")),
    }
}

/// Runs nothing: every action reported as planned.
pub fn dry_run(plan: &Plan) -> Vec<Report> {
    plan.actions
        .iter()
        .map(|action| Report {
            action: action.clone(),
            outcome: Outcome::Planned,
            port_free_after: None,
            still_held: Vec::new(),
        })
        .collect()
}
