//! The re-check rules and the order of operations, on plans of hand-built scenes carried
//! out against a fake system.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use super::execute::{self, Changed, Exited, Ops, Outcome, Pinned, Signal, Skip, Timing};
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

#[test]
fn unchanged_targets_are_acted_on_in_order_of_operations() {
    let snap = scene();
    let p = plan::prune(&snap, &analyze(&snap), &suspects());
    let fake = world_for(&snap);
    let reports = run(&fake, &p);
    assert!(
        reports.iter().all(|r| r.outcome == Outcome::Done),
        "{reports:?}"
    );
    assert!(reports.iter().all(|r| r.port_free_after == Some(true)));
    let calls = fake.0.borrow().calls.clone();
    // Paused: unpause, stop, remove. Dead: no stop. Polite proxy: SIGTERM only.
    assert_eq!(
        calls,
        [
            "Term 50",
            "unpause a1",
            "stop a1",
            "remove a1 --force",
            "remove d1"
        ]
    );
}

#[test]
fn a_container_removed_recreated_or_changed_meanwhile_is_skipped() {
    let snap = scene();
    let p = plan::prune(&snap, &analyze(&snap), &suspects());

    let fake = world_for(&snap);
    fake.0.borrow_mut().containers.remove("a1");
    let r = run(&fake, &p);
    assert_eq!(r[1].outcome, Outcome::Skipped(Skip::ContainerGone));

    let fake = world_for(&snap);
    fake.0.borrow_mut().containers.get_mut("a1").unwrap().state = ContainerState::Running;
    let r = run(&fake, &p);
    let changed = Skip::Changed(Changed::State {
        was: vec![ContainerState::Paused],
        now: ContainerState::Running,
    });
    assert_eq!(
        changed.to_string(),
        "its state changed: was paused, now running"
    );
    assert_eq!(r[1].outcome, Outcome::Skipped(changed));
    assert!(
        !fake.0.borrow().calls.iter().any(|c| c.ends_with("a1")),
        "nothing done to a1"
    );
}

#[test]
fn a_recovered_container_is_skipped() {
    let mut snap = scene();
    snap.containers[0].state = ContainerState::Running;
    snap.containers[0].health = crate::model::Health::parse("unhealthy");
    let p = plan::prune(&snap, &analyze(&snap), &suspects());
    assert_eq!(p.actions[1].kinds, vec![Kind::UnhealthyContainer]);
    let fake = world_for(&snap);
    fake.0.borrow_mut().containers.get_mut("a1").unwrap().health =
        crate::model::Health::parse("healthy");
    let r = run(&fake, &p);
    assert_eq!(
        r[1].outcome,
        Outcome::Skipped(Skip::Changed(Changed::Recovered(
            crate::model::Health::parse("healthy")
        )))
    );
}

#[test]
fn a_container_without_process_is_removed_on_the_engines_own_check() {
    let snap = scene();
    let p = plan::prune(&snap, &analyze(&snap), &Filters::default());
    assert_eq!(p.actions[1].describe(), "remove container old");

    // Still dead: one unforced removal, no inspect round trip.
    let fake = world_for(&snap);
    let r = run(&fake, &p);
    assert_eq!(r[1].outcome, Outcome::Done);
    assert_eq!(fake.0.borrow().calls, ["Term 50", "remove d1"]);
    assert!(fake.0.borrow().inspected.is_empty());

    // Started meanwhile: the engine refuses, the full re-check explains, nothing is forced.
    let fake = world_for(&snap);
    fake.0.borrow_mut().containers.get_mut("d1").unwrap().state = ContainerState::Running;
    let r = run(&fake, &p);
    assert_eq!(
        r[1].outcome,
        Outcome::Skipped(Skip::Changed(Changed::State {
            was: vec![ContainerState::Dead],
            now: ContainerState::Running,
        }))
    );
    assert_eq!(
        fake.0.borrow().calls,
        ["Term 50", "remove d1 (refused: running)"]
    );
    assert_eq!(fake.0.borrow().inspected, ["d1"]);

    // Gone meanwhile: skipped, not failed.
    let fake = world_for(&snap);
    fake.0.borrow_mut().containers.remove("d1");
    let r = run(&fake, &p);
    assert_eq!(r[1].outcome, Outcome::Skipped(Skip::ContainerGone));
}

#[test]
fn a_crash_looping_dormant_container_found_running_is_stopped_then_removed() {
    let mut snap = scene();
    snap.containers[1].state = ContainerState::Exited;
    snap.containers[1].restart_policy = crate::model::RestartPolicy::parse("always");
    let p = plan::prune(
        &snap,
        &analyze(&snap),
        &Filters {
            kinds: vec![Kind::DormantBinding],
            ..Filters::default()
        },
    );
    assert_eq!(names(&p), ["remove container old"]);
    let fake = world_for(&snap);
    fake.0.borrow_mut().containers.get_mut("d1").unwrap().state = ContainerState::Running;
    let r = run(&fake, &p);
    assert_eq!(r[0].outcome, Outcome::Done);
    assert_eq!(
        fake.0.borrow().calls,
        [
            "remove d1 (refused: running)",
            "stop d1",
            "remove d1 --force"
        ]
    );
}

#[test]
fn without_grace_a_paused_container_is_force_removed_in_one_call() {
    let snap = scene();
    let p = plan::prune(&snap, &analyze(&snap), &suspects());
    let fake = world_for(&snap);
    let timing = Timing {
        grace: Duration::ZERO,
        ..TIMING
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let r = rt.block_on(execute::execute(&fake, &p, timing, |_| {}));
    assert!(r.iter().all(|r| r.outcome == Outcome::Done), "{r:?}");
    // Still re-checked first: a paused container that recovered is not killed.
    assert_eq!(fake.0.borrow().inspected, ["a1"]);
    assert_eq!(
        fake.0.borrow().calls,
        ["Term 50", "remove a1 --force", "remove d1"]
    );
}

#[test]
fn a_reused_pid_is_never_signalled() {
    let snap = scene();
    let p = plan::prune(&snap, &analyze(&snap), &Filters::default());
    let fake = world_for(&snap);
    {
        let mut w = fake.0.borrow_mut();
        let p50 = w.processes.get_mut(&50).unwrap();
        p50.start_ticks = Some(9999);
        p50.name = "postgres".into();
    }
    let r = run(&fake, &p);
    assert_eq!(
        r[0].outcome,
        Outcome::Skipped(Skip::Changed(Changed::OtherProcess {
            pid: 50,
            name: "postgres".into(),
            what: "another process",
        }))
    );
    assert!(!fake.0.borrow().calls.iter().any(|c| c.contains(" 50")));
}

#[test]
fn a_process_that_exec_d_another_program_or_changed_user_is_never_signalled() {
    let snap = scene();
    let p = plan::prune(&snap, &analyze(&snap), &Filters::default());
    type Change = (&'static str, fn(&mut Process));
    let cases: [Change; 2] = [
        ("another program", |p| {
            // Same PID, start time and argv: only the executable tells.
            p.exe.as_mut().unwrap().path = "/tmp/payload".into();
        }),
        ("another user", |p| p.uid = Some(1000)),
    ];
    for (what, change) in cases {
        let fake = world_for(&snap);
        change(fake.0.borrow_mut().processes.get_mut(&50).unwrap());
        let r = run(&fake, &p);
        assert_eq!(
            r[0].outcome,
            Outcome::Skipped(Skip::Changed(Changed::OtherProcess {
                pid: 50,
                name: "docker-proxy".into(),
                what,
            })),
        );
        assert!(!fake.0.borrow().calls.iter().any(|c| c.contains(" 50")));
    }
}

#[test]
fn a_process_gone_before_acting_is_skipped() {
    let snap = scene();
    let p = plan::prune(&snap, &analyze(&snap), &Filters::default());
    let fake = world_for(&snap);
    fake.0.borrow_mut().processes.remove(&50);
    let r = run(&fake, &p);
    assert_eq!(r[0].outcome, Outcome::Skipped(Skip::Exited(50)));
}

#[test]
fn sigterm_then_sigkill_then_failure() {
    let snap = scene();
    let p = plan::prune(&snap, &analyze(&snap), &Filters::default());
    let fake = world_for(&snap);
    fake.0.borrow_mut().polite.clear();
    let r = run(&fake, &p);
    assert_eq!(r[0].outcome, Outcome::Done);
    assert_eq!(fake.0.borrow().calls[..2], ["Term 50", "Kill 50"]);

    let fake = world_for(&snap);
    fake.0.borrow_mut().polite.clear();
    fake.0.borrow_mut().immortal.insert(50);
    let r = run(&fake, &p);
    assert_eq!(
        r[0].outcome,
        Outcome::Failed("pid 50 survived SIGKILL".into())
    );
    assert_eq!(r[0].port_free_after, None);
}

#[test]
fn failures_and_ports_still_held_are_reported() {
    let snap = scene();
    let p = plan::prune(&snap, &analyze(&snap), &Filters::default());
    let fake = world_for(&snap);
    fake.0.borrow_mut().fail_remove = true;
    let r = run(&fake, &p);
    assert_eq!(
        r[1].outcome,
        Outcome::Failed("remove failed: the engine answered 500: device or resource busy".into())
    );

    // The proxy is gone but something still holds its port: a stale reservation.
    let fake = world_for(&snap);
    fake.0.borrow_mut().held.insert(5432);
    let proxy_only = plan::prune(
        &snap,
        &analyze(&snap),
        &Filters {
            kinds: vec![Kind::OrphanedProxy],
            ..Filters::default()
        },
    );
    let r = run(&fake, &proxy_only);
    assert_eq!(r[0].outcome, Outcome::Done);
    assert_eq!(r[0].port_free_after, Some(false));
    assert_eq!(r[0].still_held.len(), 1);
}

#[test]
fn an_orphaned_compose_project_whose_directory_is_back_is_skipped() {
    let mut snap = scene();
    let c = &mut snap.containers[0];
    c.state = ContainerState::Running;
    c.labels
        .insert("com.docker.compose.project".into(), "shop".into());
    c.labels.insert(
        "com.docker.compose.project.working_dir".into(),
        "/src/shop".into(),
    );
    snap.fs.visible = true;
    snap.fs.exists.insert("/src/shop".into(), false);
    let p = plan::prune(
        &snap,
        &analyze(&snap),
        &Filters {
            project: Some("shop".into()),
            ..Filters::default()
        },
    );
    assert_eq!(names(&p), ["remove container admin (compose project shop)"]);
    let fake = world_for(&snap);
    fake.0.borrow_mut().paths.insert("/src/shop".into());
    let r = run(&fake, &p);
    assert_eq!(
        r[0].outcome,
        Outcome::Skipped(Skip::Changed(Changed::PathBack("/src/shop".into())))
    );
    // Unreadable now (an NFS mount came back with root_squash): not proven gone.
    let fake = world_for(&snap);
    fake.0
        .borrow_mut()
        .unreadable_paths
        .insert("/src/shop".into(), "Permission denied (os error 13)".into());
    let r = run(&fake, &p);
    assert_eq!(
        r[0].outcome,
        Outcome::Skipped(Skip::Changed(Changed::PathUnknown {
            path: "/src/shop".into(),
            why: "Permission denied (os error 13)".into(),
        }))
    );
}

#[test]
fn an_orphan_whose_service_is_defined_again_is_skipped() {
    use crate::model::ComposeDefinition;
    const FILES: &str = "/src/shop/compose.yaml";
    let mut snap = scene();
    let c = &mut snap.containers[0];
    c.state = ContainerState::Running;
    for (key, value) in [
        ("com.docker.compose.project", "shop"),
        ("com.docker.compose.service", "web"),
        ("com.docker.compose.project.working_dir", "/src/shop"),
        ("com.docker.compose.project.config_files", FILES),
    ] {
        c.labels.insert(key.into(), value.into());
    }
    snap.fs.visible = true;
    snap.fs.exists.insert("/src/shop".into(), true);
    snap.fs.exists.insert(FILES.into(), true);
    let defines = |services: &[&str]| ComposeDefinition::Read {
        services: services.iter().map(|s| s.to_string()).collect(),
        name: None,
        files: vec![FILES.into()],
    };
    snap.fs
        .definitions
        .insert(FILES.into(), defines(&["frontend"]));
    let filters = Filters {
        kinds: vec![Kind::OrphanService],
        ..Filters::default()
    };
    let p = plan::prune(&snap, &analyze(&snap), &filters);
    assert_eq!(names(&p), ["remove container admin (compose project shop)"]);
    let outcome = |definition: ComposeDefinition| {
        let fake = world_for(&snap);
        fake.0
            .borrow_mut()
            .definitions
            .insert(FILES.into(), definition);
        run(&fake, &p).remove(0).outcome
    };
    // The rename was undone between plan and action.
    assert_eq!(
        outcome(defines(&["web"])),
        Outcome::Skipped(Skip::Changed(Changed::ServiceBack("web".into())))
    );
    // The file broke meanwhile: not proven an orphan any more.
    assert!(matches!(
        outcome(ComposeDefinition::NotJudged {
            reason: "not valid YAML".into()
        }),
        Outcome::Skipped(Skip::Changed(Changed::FilesNotJudged(_)))
    ));
    assert_eq!(outcome(defines(&["frontend"])), Outcome::Done);
}
