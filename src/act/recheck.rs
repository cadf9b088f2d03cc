//! The re-checks made right before acting: is the container or process still the one the
//! plan judged, for the reason it judged it? Each answers with what [`Changed`], if
//! anything.

use super::execute::Ops;
use super::outcome::Changed;
use crate::model::{Container, Process};
use crate::plan::{Expect, Target};

pub(super) fn recheck(
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
pub(super) fn compose_back(engine: usize, expect: &Expect, ops: &impl Ops) -> Option<Changed> {
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

/// Whether the process read now is the one the plan saw: same start (so not a reused
/// PID), same program and user (so it did not exec another), same command line.
pub(super) fn same_process(now: &Process, planned: &Target) -> Result<(), Changed> {
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
