//! Planning and the re-check rules, on hand-built findings and a fake system.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::engine::Error as EngineError;

use super::execute::{self, Exited, Ops, Outcome, Pinned, Signal, Timing};
use super::plan::{self, ContainerStep, Filters, Target};
use crate::analyze::analyze;
use crate::analyze::findings::{Kind, PortRef};
use crate::model::{
    Container, ContainerState, EngineStatus, HostFacts, LiveBinding, Process, Proto, Snapshot,
    Socket,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn container(id: &str, name: &str, state: ContainerState, port: u16) -> Container {
    Container {
        image: "img".into(),
        network_mode: Some("bridge".into()),
        addresses: vec![ip("172.17.0.9")],
        live: vec![LiveBinding {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: ip("0.0.0.0"),
            host_port: port,
        }],
        ..Container::new(id, name, state)
    }
}

fn proxy_process(pid: u32, port: u16) -> Process {
    Process {
        pid,
        ppid: 1,
        uid: Some(0),
        name: "docker-proxy".into(),
        cmdline: format!("/usr/sbin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port {port} -container-ip 172.17.255.1 -container-port 80")
            .split(' ')
            .map(str::to_owned)
            .collect(),
        start_ticks: Some(4242),
        container_id: None,
        started: None,
        exe: Some(crate::model::Executable {
            path: "/usr/sbin/docker-proxy".into(),
            deleted: false,
            owner: 0,
            shared_write: false,
        }),
        pid_ns: None,
        mnt_ns: None,
    }
}

/// A host with: an orphaned proxy (pid 50, port 5432), a paused container `admin`
/// (port 8080), a dead one `old` (8081), and a paused one labelled keep (8082).
fn scene() -> Snapshot {
    let mut host = HostFacts::default();
    host.processes.insert(50, proxy_process(50, 5432));
    host.sockets.push(Socket {
        proto: Proto::Tcp,
        ip: ip("0.0.0.0"),
        port: 5432,
        inode: 1,
        uid: 0,
        pids: vec![50],
        v6only: None,
    });
    let admin = container("a1", "admin", ContainerState::Paused, 8080);
    let mut old = container("d1", "old", ContainerState::Dead, 8081);
    old.live.clear();
    old.requested.push(crate::model::RequestedBinding {
        proto: Proto::Tcp,
        container_port: 80,
        host_ip: None,
        host_ports: Some(crate::portspec::PortRange {
            start: 8081,
            end: 8081,
        }),
    });
    let mut kept = container("k1", "precious", ContainerState::Paused, 8082);
    kept.labels.insert("portreap.keep".into(), "true".into());
    kept.labels.insert("team".into(), "db".into());
    Snapshot {
        host,
        containers: vec![admin, old, kept],
        engine: EngineStatus {
            reachable: true,
            kind: Some(crate::model::EngineKind::Docker),
            process: Some(2),
            uid: Some(0),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn planned(filters: &Filters) -> plan::Plan {
    let snap = scene();
    plan::plan(&snap, &analyze(&snap), filters)
}

fn names(p: &plan::Plan) -> Vec<String> {
    p.actions.iter().map(|a| a.describe()).collect()
}

#[test]
fn default_scope_is_leaks() {
    let p = planned(&Filters::default());
    assert_eq!(
        names(&p),
        ["kill docker-proxy pid 50", "remove container old"]
    );
    assert!(p.kept.is_empty(), "the kept container is only a suspect");
}

#[test]
fn suspects_on_request_and_the_keep_label_wins() {
    let p = planned(&Filters {
        include_suspects: true,
        ..Filters::default()
    });
    assert_eq!(
        names(&p),
        [
            "kill docker-proxy pid 50",
            "remove container admin",
            "remove container old"
        ]
    );
    assert_eq!(p.kept.len(), 1);
    assert_eq!(p.kept[0].reason, "label portreap.keep=true");
}

#[test]
fn filters_narrow() {
    let kind = |k| Filters {
        kinds: vec![k],
        ..Filters::default()
    };
    // An explicit kind selects suspects without --include-suspects.
    assert_eq!(
        names(&planned(&kind(Kind::PausedContainer))),
        ["remove container admin"]
    );
    assert_eq!(
        names(&planned(&kind(Kind::OrphanedProxy))),
        ["kill docker-proxy pid 50"]
    );
    let port = Filters {
        ports: Some("8081".parse().unwrap()),
        ..Filters::default()
    };
    assert_eq!(names(&planned(&port)), ["remove container old"]);
    // Label and project filters select containers only: never the proxy.
    let label = Filters {
        include_suspects: true,
        labels: vec![("team".into(), Some("db".into()))],
        ..Filters::default()
    };
    let p = planned(&label);
    assert!(p.actions.is_empty());
    assert_eq!(p.kept.len(), 1);
    let project = Filters {
        project: Some("shop".into()),
        ..Filters::default()
    };
    assert!(planned(&project).actions.is_empty());
}

#[test]
fn stop_only_keeps_containers_but_a_dead_one_can_only_be_removed() {
    let p = planned(&Filters {
        include_suspects: true,
        stop_only: true,
        ..Filters::default()
    });
    let steps: Vec<(String, ContainerStep)> = p
        .actions
        .iter()
        .filter_map(|a| match &a.target {
            Target::Container { name, step, .. } => Some((name.clone(), *step)),
            Target::Process { .. } => None,
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("admin".to_owned(), ContainerStep::Stop),
            ("old".to_owned(), ContainerStep::Remove)
        ]
    );
}

#[test]
fn never_act_processes_are_refused_not_planned() {
    let mut snap = scene();
    let mut init = proxy_process(1, 5432);
    init.pid = 1;
    snap.host.processes.clear();
    snap.host.processes.insert(1, init);
    snap.host.sockets[0].pids = vec![1];
    let p = plan::plan(&snap, &analyze(&snap), &Filters::default());
    assert_eq!(names(&p), ["remove container old"]);
    assert_eq!(p.refused.len(), 1);
    assert!(p.refused[0]
        .reason
        .contains("pid 1 (docker-proxy) is never signalled"));
}

#[test]
fn parsers_for_flags() {
    assert_eq!(plan::parse_label("a=b"), Ok(("a".into(), Some("b".into()))));
    assert_eq!(plan::parse_label("a"), Ok(("a".into(), None)));
    assert_eq!(
        plan::parse_label("a=b=c"),
        Ok(("a".into(), Some("b=c".into())))
    );
    assert!(plan::parse_label("=b").is_err());
    assert_eq!(plan::parse_kind("dead-container"), Ok(Kind::DeadContainer));
    assert!(plan::parse_kind("engine-reservation")
        .unwrap_err()
        .contains("informational"));
    assert!(plan::parse_kind("nope")
        .unwrap_err()
        .contains("unknown kind"));
}

// ---- execution against a fake system ------------------------------------------------

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
    fn signal(&self, signal: Signal) -> Result<(), String> {
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
    fn pin(&self, pid: u32) -> Result<Option<FakePin>, String> {
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

fn run(fake: &Fake, p: &plan::Plan) -> Vec<execute::Report> {
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

fn suspects() -> Filters {
    Filters {
        include_suspects: true,
        ..Filters::default()
    }
}

#[test]
fn unchanged_targets_are_acted_on_in_order_of_operations() {
    let snap = scene();
    let p = plan::plan(&snap, &analyze(&snap), &suspects());
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
    let p = plan::plan(&snap, &analyze(&snap), &suspects());

    let fake = world_for(&snap);
    fake.0.borrow_mut().containers.remove("a1");
    let r = run(&fake, &p);
    assert_eq!(
        r[1].outcome,
        Outcome::Skipped("the container no longer exists".into())
    );

    let fake = world_for(&snap);
    fake.0.borrow_mut().containers.get_mut("a1").unwrap().state = ContainerState::Running;
    let r = run(&fake, &p);
    assert_eq!(
        r[1].outcome,
        Outcome::Skipped("its state changed: was paused, now running".into())
    );
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
    let p = plan::plan(&snap, &analyze(&snap), &suspects());
    assert_eq!(p.actions[1].kinds, vec![Kind::UnhealthyContainer]);
    let fake = world_for(&snap);
    fake.0.borrow_mut().containers.get_mut("a1").unwrap().health =
        crate::model::Health::parse("healthy");
    let r = run(&fake, &p);
    assert_eq!(
        r[1].outcome,
        Outcome::Skipped("it recovered: health is now healthy".into())
    );
}

#[test]
fn a_container_without_process_is_removed_on_the_engines_own_check() {
    let snap = scene();
    let p = plan::plan(&snap, &analyze(&snap), &Filters::default());
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
        Outcome::Skipped("its state changed: was dead, now running".into())
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
    assert_eq!(
        r[1].outcome,
        Outcome::Skipped("the container no longer exists".into())
    );
}

#[test]
fn a_crash_looping_dormant_container_found_running_is_stopped_then_removed() {
    let mut snap = scene();
    snap.containers[1].state = ContainerState::Exited;
    snap.containers[1].restart_policy = crate::model::RestartPolicy::parse("always");
    let p = plan::plan(
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
    let p = plan::plan(&snap, &analyze(&snap), &suspects());
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
    let p = plan::plan(&snap, &analyze(&snap), &Filters::default());
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
        Outcome::Skipped("pid 50 now belongs to another process (postgres), not signalled".into())
    );
    assert!(!fake.0.borrow().calls.iter().any(|c| c.contains(" 50")));
}

#[test]
fn a_process_that_exec_d_another_program_or_changed_user_is_never_signalled() {
    let snap = scene();
    let p = plan::plan(&snap, &analyze(&snap), &Filters::default());
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
            Outcome::Skipped(format!(
                "pid 50 now belongs to {what} (docker-proxy), not signalled"
            )),
        );
        assert!(!fake.0.borrow().calls.iter().any(|c| c.contains(" 50")));
    }
}

#[test]
fn a_process_gone_before_acting_is_skipped() {
    let snap = scene();
    let p = plan::plan(&snap, &analyze(&snap), &Filters::default());
    let fake = world_for(&snap);
    fake.0.borrow_mut().processes.remove(&50);
    let r = run(&fake, &p);
    assert_eq!(
        r[0].outcome,
        Outcome::Skipped("pid 50 has already exited".into())
    );
}

#[test]
fn sigterm_then_sigkill_then_failure() {
    let snap = scene();
    let p = plan::plan(&snap, &analyze(&snap), &Filters::default());
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
    let p = plan::plan(&snap, &analyze(&snap), &Filters::default());
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
    let proxy_only = plan::plan(
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
    let p = plan::plan(
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
        Outcome::Skipped("/src/shop exists again".into())
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
        Outcome::Skipped(
            "/src/shop can no longer be checked (Permission denied (os error 13))".into()
        )
    );
}

#[test]
fn free_refuses_what_it_must_never_touch() {
    let mut snap = scene();
    let mut add = |pid: u32, name: &str, line: &str, uid: u32, port: u16| {
        let mut p = proxy_process(pid, port);
        p.name = name.into();
        p.cmdline = line.split(' ').map(str::to_owned).collect();
        p.uid = Some(uid);
        snap.host.processes.insert(pid, p);
        snap.host.sockets.push(Socket {
            proto: Proto::Tcp,
            ip: ip("0.0.0.0"),
            port,
            inode: u32::from(port),
            uid,
            pids: vec![pid],
            v6only: None,
        });
    };
    add(
        70,
        "com.docker.back",
        "/opt/docker-desktop/bin/com.docker.backend",
        1000,
        9001,
    );
    add(71, "dockerd", "/usr/sbin/dockerd", 0, 9002);
    add(72, "python3", "python3 -m http.server 9003", 1000, 9003);
    add(73, "nginx", "nginx", 33, 9004);
    let analysis = analyze(&snap);
    let free = |spec: &str, kill: bool, euid: u32| {
        plan::plan_free(
            &snap,
            &analysis,
            &spec.parse().unwrap(),
            plan::FreeOptions {
                kill_processes: kill,
                stop_only: false,
                euid,
            },
        )
    };
    let p = free("9001,9002,9003", false, 1000);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let reasons: Vec<&str> = p.refused.iter().map(|h| h.reason.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("Docker Desktop's port forwarder holds it")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("dockerd (pid 71) is never signalled")
                || r.contains("the engine (dockerd)")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("pass --kill-processes")),
        "{reasons:?}"
    );
    // With --kill-processes: our own process, yes; another user's, only as root.
    let p = free("9003,9004", true, 1000);
    assert_eq!(names(&p), ["kill python3 pid 72"]);
    assert!(p.refused[0]
        .reason
        .contains("nginx (pid 73) belongs to another user"));
    let p = free("9003,9004", true, 0);
    assert_eq!(names(&p), ["kill python3 pid 72", "kill nginx pid 73"]);
    // A healthy container is freed too; a kept one is not.
    let p = free("8080,8082", false, 0);
    assert_eq!(names(&p), ["remove container admin"]);
    assert_eq!(p.kept.len(), 1);
}

#[test]
fn the_grace_age_keeps_young_containers() {
    let mut snap = scene();
    snap.taken_at = Some(1_795_614_697); // 2026-11-25T13:51:37Z
    snap.containers[0].created = crate::model::Timestamp::parse("2026-11-25T13:51:30Z"); // 7 s old
    snap.containers[1].created = crate::model::Timestamp::parse("2026-11-25T12:00:00Z");
    let young = Filters {
        include_suspects: true,
        min_age: Duration::from_secs(30),
        ..Filters::default()
    };
    let p = plan::plan(&snap, &analyze(&snap), &young);
    assert_eq!(
        names(&p),
        ["kill docker-proxy pid 50", "remove container old"]
    );
    assert!(p.kept.iter().any(|k| k
        .reason
        .starts_with("created 7s ago, younger than --min-age 30s")));
    // Unknown creation time: not shown old enough.
    snap.containers[1].created = None;
    let p = plan::plan(&snap, &analyze(&snap), &young);
    assert_eq!(names(&p), ["kill docker-proxy pid 50"]);
}

#[test]
fn older_than_keeps_fresh_holders_containers_and_processes() {
    let mut snap = scene();
    snap.taken_at = Some(1_795_614_697); // 2026-11-25T13:51:37Z
    snap.containers[1].created = crate::model::Timestamp::parse("2026-11-25T13:00:00Z"); // 51 min old
    snap.host.processes.get_mut(&50).unwrap().started = Some(1_795_614_697 - 600); // 10 min
    let policy = |limit: u64| Filters {
        older_than: Some(Duration::from_secs(limit)),
        ..Filters::default()
    };
    let p = plan::plan(&snap, &analyze(&snap), &policy(1800));
    assert_eq!(names(&p), ["remove container old"]);
    assert!(
        p.kept.iter().any(|k| k.reason
            == "docker-proxy pid 50 started 10 min ago, not older than --older-than 1800s"),
        "{:?}",
        p.kept
    );
    let p = plan::plan(&snap, &analyze(&snap), &policy(3600));
    assert!(names(&p).is_empty());
    assert!(
        p.kept
            .iter()
            .any(|k| k.reason == "created 51 min ago, not older than --older-than 3600s"),
        "{:?}",
        p.kept
    );
    let p = plan::plan(&snap, &analyze(&snap), &policy(60));
    assert_eq!(
        names(&p),
        ["kill docker-proxy pid 50", "remove container old"]
    );
}

#[test]
fn since_baseline_acts_on_what_is_new_and_keeps_the_rest() {
    use super::baseline::{plan_since, record};
    let snap = scene();
    let analysis = analyze(&snap);
    // Everything existed at the baseline: nothing to do, containers holding ports kept.
    let p = plan_since(&snap, &analysis, &record(&snap), false, &Filters::default());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(p
        .kept
        .iter()
        .all(|k| k.reason == "in the baseline: not created by this job"));
    // An empty baseline: every holder is the job's, healthy or not; the keep label still
    // protects...
    let empty = super::baseline::Baseline::default();
    let p = plan_since(&snap, &analysis, &empty, false, &Filters::default());
    let mut got = names(&p);
    got.sort();
    assert_eq!(
        got,
        [
            "kill docker-proxy pid 50",
            "remove container admin",
            "remove container old"
        ]
    );
    assert!(p
        .kept
        .iter()
        .any(|k| k.reason == "label portreap.keep=true"));
    // ...and label narrowing leaves processes out.
    let team = Filters {
        labels: vec![("team".into(), Some("db".into()))],
        ..Filters::default()
    };
    let p = plan_since(&snap, &analysis, &empty, false, &team);
    assert!(names(&p).is_empty());
    assert_eq!(p.kept.len(), 1);
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
    let p = plan::plan(&snap, &analyze(&snap), &filters);
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
        Outcome::Skipped("service web is defined again in its compose files".into())
    );
    // The file broke meanwhile: not proven an orphan any more.
    assert!(matches!(
        outcome(ComposeDefinition::NotJudged { reason: "not valid YAML".into() }),
        Outcome::Skipped(why) if why.contains("can no longer be judged")
    ));
    assert_eq!(outcome(defines(&["frontend"])), Outcome::Done);
}
