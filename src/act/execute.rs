//! Acting on a plan, like a careful operator: re-check each target right before acting,
//! act, then prove the port is free. The outside world is reached through [`Ops`] only,
//! so the re-check rules are tested with fakes.

use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use super::outcome::{EngineCall, Failure, Outcome, Skip};
use super::recheck::{compose_back, recheck, same_process};
use crate::analyze::findings::{never_act, PortRef};
use crate::engine::Error as EngineError;
use crate::model::{Container, ContainerState, Process};
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

impl Signal {
    /// Its name, as `kill -l` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
        }
    }
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

/// The result of one action.
#[derive(Clone, Debug)]
pub struct Report {
    /// The action.
    pub action: PlannedAction,
    /// What happened.
    pub outcome: Outcome,
    /// After acting, whether every port of the action was free (bind-probed); `None`
    /// when not acted on, or when its ports are not this host's (see
    /// [`PlannedAction::probed_here`]).
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
    // A remote engine's ports are on its host: a probe here would prove nothing.
    let (port_free_after, still_held) = if outcome == Outcome::Done && action.probed_here {
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
        Err(e) => return Outcome::Failed(Failure::Recheck(e)),
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
            Err(e) => failed(EngineCall::Remove, e),
        };
    }
    if now.state == ContainerState::Paused {
        if let Err(e) = ops.unpause(engine, id).await {
            return failed(EngineCall::Unpause, e);
        }
    }
    // Exited, created and dead containers have no process to stop. They are removed
    // without force: one started since the re-check is refused by the engine, not killed.
    if running {
        if let Err(e) = ops.stop(engine, id, timing.grace).await {
            return failed(EngineCall::Stop, e);
        }
    }
    if step == ContainerStep::Remove {
        // Gone after the stop is the goal reached: the engine removes a container run
        // with --rm itself once it stops.
        if let Err(e) = ops.remove(engine, id, running).await {
            return failed(EngineCall::Remove, e);
        }
    }
    Outcome::Done
}

async fn act_on_process<O: Ops>(ops: &O, pid: u32, planned: &Target, timing: Timing) -> Outcome {
    // Pin first, then check identity: once pinned, the checked process is the one that
    // receives the signal, even if the PID is reused meanwhile.
    let pinned = match ops.pin(pid) {
        Ok(Some(pinned)) => pinned,
        Ok(None) => return Outcome::Skipped(Skip::Exited(pid)),
        Err(e) => {
            let error = (&e).into();
            return Outcome::Failed(Failure::Pin { pid, error });
        }
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
        return signal_failed(Signal::Term, &e);
    }
    if pinned.wait_exit(timing.grace).await == Exited::Yes {
        return Outcome::Done;
    }
    if let Err(e) = pinned.signal(Signal::Kill) {
        return signal_failed(Signal::Kill, &e);
    }
    match pinned.wait_exit(Duration::from_secs(2)).await {
        Exited::Yes => Outcome::Done,
        Exited::No => Outcome::Failed(Failure::SurvivedKill(pid)),
    }
}

fn failed(call: EngineCall, error: EngineError) -> Outcome {
    Outcome::Failed(Failure::Engine { call, error })
}

fn signal_failed(signal: Signal, error: &std::io::Error) -> Outcome {
    Outcome::Failed(Failure::Signal {
        signal,
        error: error.into(),
    })
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
