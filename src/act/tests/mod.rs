//! The re-check rules and the order of operations, on plans of hand-built scenes carried
//! out against a fake system.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use super::execute::{self, Exited, Ops, Pinned, Signal, Timing};
use super::outcome::{Changed, EngineCall, Failure, Outcome, Skip};
use crate::analyze::analyze;
use crate::analyze::findings::{Kind, PortRef};
use crate::engine::Error as EngineError;
use crate::model::{Container, ContainerState, Process, Snapshot};
use crate::plan::{self, Filters, Plan};
use crate::testkit::{names, scene, suspects};

#[derive(Default)]
struct World {
    containers: BTreeMap<String, Container>,
    processes: BTreeMap<u32, Process>,
    /// PIDs that exit on SIGTERM; others need SIGKILL; `immortal` survive that too.
    polite: HashSet<u32>,
    immortal: HashSet<u32>,
    held: HashSet<u16>,
    paths: HashSet<String>,
    unreadable_paths: BTreeMap<String, String>,
    /// What compose files define, by their paths joined with ",".
    definitions: BTreeMap<String, crate::model::ComposeDefinition>,
    calls: Vec<String>,
    /// Containers inspected, in order: the re-check's round trips.
    inspected: Vec<String>,
    fail_remove: bool,
}

#[derive(Clone, Default)]
struct Fake(Rc<RefCell<World>>);

struct FakePin {
    pid: u32,
    world: Fake,
}

impl Pinned for FakePin {
    fn signal(&self, signal: Signal) -> std::io::Result<()> {
        let mut w = self.world.0.borrow_mut();
        w.calls.push(format!("{signal:?} {}", self.pid));
        let exits = match signal {
            Signal::Term => w.polite.contains(&self.pid),
            Signal::Kill => !w.immortal.contains(&self.pid),
        };
        if exits {
            w.processes.remove(&self.pid);
        }
        Ok(())
    }

    async fn wait_exit(&self, _limit: Duration) -> Exited {
        if self.world.0.borrow().processes.contains_key(&self.pid) {
            Exited::No
        } else {
            Exited::Yes
        }
    }
}

impl Ops for Fake {
    type Pin = FakePin;

    async fn inspect(&self, _engine: usize, id: &str) -> Result<Option<Container>, EngineError> {
        let mut w = self.0.borrow_mut();
        w.inspected.push(id.to_owned());
        Ok(w.containers.get(id).cloned())
    }
    async fn unpause(&self, _engine: usize, id: &str) -> Result<(), EngineError> {
        self.0.borrow_mut().calls.push(format!("unpause {id}"));
        Ok(())
    }
    async fn stop(&self, _engine: usize, id: &str, _grace: Duration) -> Result<(), EngineError> {
        self.0.borrow_mut().calls.push(format!("stop {id}"));
        Ok(())
    }
    async fn remove(&self, _engine: usize, id: &str, force: bool) -> Result<bool, EngineError> {
        let mut w = self.0.borrow_mut();
        let Some(state) = w.containers.get(id).map(|c| c.state.clone()) else {
            return Ok(false);
        };
        // Like the engine: without force, only a container without a process goes.
        if state.has_process() && !force {
            w.calls.push(format!("remove {id} (refused: {state})"));
            return Err(EngineError::Api {
                status: 409,
                message: format!("you cannot remove a {state} container"),
            });
        }
        w.calls.push(format!(
            "remove {id}{}",
            if force { " --force" } else { "" }
        ));
        if w.fail_remove {
            return Err(EngineError::Api {
                status: 500,
                message: "device or resource busy".into(),
            });
        }
        w.containers.remove(id);
        w.held.clear();
        Ok(true)
    }
    fn pin(&self, pid: u32) -> std::io::Result<Option<FakePin>> {
        Ok(self
            .0
            .borrow()
            .processes
            .contains_key(&pid)
            .then(|| FakePin {
                pid,
                world: self.clone(),
            }))
    }
    fn process(&self, pid: u32) -> Option<Process> {
        self.0.borrow().processes.get(&pid).cloned()
    }
    fn path_state(&self, _engine: usize, path: &str) -> crate::model::PathState {
        let w = self.0.borrow();
        if let Some(why) = w.unreadable_paths.get(path) {
            crate::model::PathState::Unknown(why.clone())
        } else if w.paths.contains(path) {
            crate::model::PathState::Exists
        } else {
            crate::model::PathState::Gone
        }
    }
    fn compose_definition(
        &self,
        _engine: usize,
        files: &[String],
    ) -> crate::model::ComposeDefinition {
        self.0
            .borrow()
            .definitions
            .get(&files.join(","))
            .cloned()
            .unwrap_or(crate::model::ComposeDefinition::NotJudged {
                reason: "no such files".into(),
            })
    }
    fn port_free(&self, port: &PortRef) -> bool {
        !self.0.borrow().held.contains(&port.port)
    }
    async fn sleep(&self, _duration: Duration) {}
}

const TIMING: Timing = Timing {
    grace: Duration::from_millis(10),
    settle: Duration::from_millis(300),
};

fn run(fake: &Fake, p: &Plan) -> Vec<execute::Report> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(execute::execute(fake, p, TIMING, |_| {}))
}

fn world_for(snap: &Snapshot) -> Fake {
    let fake = Fake::default();
    {
        let mut w = fake.0.borrow_mut();
        for c in &snap.containers {
            w.containers.insert(c.id.clone(), c.clone());
        }
        w.processes = snap.host.processes.clone();
        w.polite.insert(50);
    }
    fake
}

mod containers;
mod processes;
