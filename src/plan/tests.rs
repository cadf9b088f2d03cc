//! Planning on hand-built findings: what is selected, kept, refused.

use std::time::Duration;

use super::{ContainerStep, Filters, Plan, Target};
use crate::analyze::analyze;
use crate::analyze::findings::Kind;
use crate::model::{Proto, Socket};
use crate::testkit::{ip, names, proxy_process, scene};

fn planned(filters: &Filters) -> Plan {
    let snap = scene();
    super::prune(&snap, &analyze(&snap), filters)
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
        labels: vec!["team=db".parse().unwrap()],
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
    let p = super::prune(&snap, &analyze(&snap), &Filters::default());
    assert_eq!(names(&p), ["remove container old"]);
    assert_eq!(p.refused.len(), 1);
    assert!(p.refused[0]
        .reason
        .contains("pid 1 (docker-proxy) is never signalled"));
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
    // Started from a shell (a daemon init adopted would be the system's).
    snap.host.processes.get_mut(&73).unwrap().ppid = 500;
    let analysis = analyze(&snap);
    let free = |spec: &str, kill: bool, euid: u32| {
        super::free(
            &snap,
            &analysis,
            &spec.parse().unwrap(),
            super::FreeOptions {
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
    let p = super::prune(&snap, &analyze(&snap), &young);
    assert_eq!(
        names(&p),
        ["kill docker-proxy pid 50", "remove container old"]
    );
    assert!(p.kept.iter().any(|k| k
        .reason
        .starts_with("created 7s ago, younger than --min-age 30s")));
    // Unknown creation time: not shown old enough, and said to be unknown (never "0s").
    snap.containers[1].created = None;
    let p = super::prune(&snap, &analyze(&snap), &young);
    assert_eq!(names(&p), ["kill docker-proxy pid 50"]);
    let reasons: Vec<&str> = p.kept.iter().map(|k| k.reason.as_str()).collect();
    assert!(
        reasons.contains(
            &"its creation time is not known, so it is not shown older than --min-age 30s"
        ),
        "{reasons:?}"
    );
    assert!(!reasons.iter().any(|r| r.contains("0s ago")), "{reasons:?}");
    let policy = Filters {
        older_than: Some(Duration::from_secs(60)),
        ..young.clone()
    };
    let p = super::prune(&snap, &analyze(&snap), &policy);
    assert!(p.kept.iter().any(|k| k.reason
        == "its creation time is not known, so it is not shown older than --older-than 60s"));
    // A creation time ahead of this host's clock is said so.
    snap.containers[1].created = crate::model::Timestamp::parse("2026-11-25T13:53:37Z");
    let p = super::prune(&snap, &analyze(&snap), &young);
    assert!(p.kept.iter().any(|k| k.reason
        == "created 2 min ahead of this host's clock, younger than --min-age 30s: it may still be starting"));
    snap.containers[1].created = None;
    // Without the guards, the age decides nothing: the young one and the unknown one go.
    let off = Filters {
        min_age: Duration::ZERO,
        ..young
    };
    let p = super::prune(&snap, &analyze(&snap), &off);
    assert_eq!(
        names(&p),
        [
            "kill docker-proxy pid 50",
            "remove container admin",
            "remove container old"
        ]
    );
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
    let p = super::prune(&snap, &analyze(&snap), &policy(1800));
    assert_eq!(names(&p), ["remove container old"]);
    assert!(
        p.kept.iter().any(|k| k.reason
            == "docker-proxy pid 50 started 10 min ago, not older than --older-than 1800s"),
        "{:?}",
        p.kept
    );
    let p = super::prune(&snap, &analyze(&snap), &policy(3600));
    assert!(names(&p).is_empty());
    assert!(
        p.kept
            .iter()
            .any(|k| k.reason == "created 51 min ago, not older than --older-than 3600s"),
        "{:?}",
        p.kept
    );
    let p = super::prune(&snap, &analyze(&snap), &policy(60));
    assert_eq!(
        names(&p),
        ["kill docker-proxy pid 50", "remove container old"]
    );
}

fn job(id: &str, workspace: &str) -> super::baseline::Job {
    super::baseline::Job {
        id: id.into(),
        workspace: Some(workspace.into()),
        ci: [("CI_JOB_ID".to_owned(), format!("{id}00"))].into(),
        chain: Vec::new(),
        registered: Some(1_000),
        uid: Some(0),
        ended: None,
        over_before: Default::default(),
    }
}

/// This job (`me`, in /ci/a) alone on its engine (0): no other job registered.
fn alone() -> super::baseline::Jobs {
    super::baseline::Jobs {
        workspace: Some("/ci/a".into()),
        id: "me".into(),
        uid: Some(0),
        engines: [0].into(),
        ..Default::default()
    }
}

/// Labels `c` as compose project `p`'s, started in `dir`.
fn compose(c: &mut crate::model::Container, dir: &str) {
    c.labels
        .insert("com.docker.compose.project".into(), "p".into());
    c.labels
        .insert("com.docker.compose.project.working_dir".into(), dir.into());
}

fn empty_baseline() -> super::baseline::Baseline {
    super::baseline::record(
        &crate::model::Snapshot::default(),
        Default::default(),
        job("me", "/ci/a"),
    )
}

#[test]
fn since_baseline_acts_on_what_is_new_and_keeps_the_rest() {
    use super::baseline::{plan_since, record};
    let snap = scene();
    let analysis = analyze(&snap);
    let jobs = alone();
    // Everything existed at the baseline: nothing to do, containers holding ports kept.
    let all = record(&snap, Default::default(), job("me", "/ci/a"));
    let p = plan_since(&snap, &analysis, (&all, &jobs), false, &Filters::default());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(p
        .kept
        .iter()
        .all(|k| k.reason == "in the baseline: not created by this job"));
    // An empty baseline: every holder is the job's, healthy or not; the keep label still
    // protects...
    let empty = empty_baseline();
    let p = plan_since(
        &snap,
        &analysis,
        (&empty, &jobs),
        false,
        &Filters::default(),
    );
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
        labels: vec!["team=db".parse().unwrap()],
        ..Filters::default()
    };
    let p = plan_since(&snap, &analysis, (&empty, &jobs), false, &team);
    assert!(names(&p).is_empty());
    assert_eq!(p.kept.len(), 1);
    // A process that existed at the baseline, whatever it held then, is not new.
    let mut before = empty_baseline();
    before.processes.insert((50, 4242));
    let p = plan_since(
        &snap,
        &analysis,
        (&before, &jobs),
        false,
        &Filters::default(),
    );
    assert!(!names(&p).contains(&"kill docker-proxy pid 50".to_owned()));
}

/// Another job ran on the host meanwhile: what it may have made is kept, named; what is
/// proven this job's (its workspace, its label, its processes) or made before the other
/// started goes.
#[test]
fn since_baseline_leaves_another_jobs_work_alone() {
    use super::baseline::{plan_since, OtherJob};
    use crate::model::Timestamp;
    let mut snap = scene();
    snap.taken_at = Some(2_000);
    // admin: started in the other job's workspace; old: made while it ran.
    compose(&mut snap.containers[0], "/ci/b/app");
    snap.containers[1].created = Timestamp::from_unix(1_500);
    let analysis = analyze(&snap);
    let mut jobs = alone();
    jobs.others.push(OtherJob {
        job: job("other", "/ci/b"),
        own: [(50, 4242)].into(),
        start: Some(1_200),
    });
    jobs.claims.push(job("other", "/ci/b"));
    let empty = empty_baseline();
    let plan = |jobs: &super::baseline::Jobs| {
        plan_since(&snap, &analysis, (&empty, jobs), false, &Filters::default())
    };
    let p = plan(&jobs);
    assert!(names(&p).is_empty(), "{:?}", names(&p));
    let reasons: Vec<&str> = p.kept.iter().map(|k| k.reason.as_str()).collect();
    assert!(reasons.contains(
        &"its compose project was started in the workspace of job other (CI_JOB_ID=other00) in /ci/b"
    ), "{reasons:?}");
    assert!(reasons.contains(
        &"created while job other (CI_JOB_ID=other00) in /ci/b was running, and nothing proves it this job's: label it portreap.job=me or start it in this job's workspace"
    ), "{reasons:?}");
    assert!(
        reasons.contains(&"it runs under job other (CI_JOB_ID=other00) in /ci/b"),
        "{reasons:?}"
    );

    // Proven this job's: its workspace, its label; its own process.
    compose(&mut snap.containers[0], "/ci/a/app");
    snap.containers[1]
        .labels
        .insert("portreap.job".into(), "me".into());
    jobs.own.insert((50, 4242));
    jobs.others[0].own.clear();
    let analysis2 = analyze(&snap);
    let p = plan_since(
        &snap,
        &analysis2,
        (&empty, &jobs),
        false,
        &Filters::default(),
    );
    let mut got = names(&p);
    got.sort();
    assert_eq!(
        got,
        [
            "kill docker-proxy pid 50",
            "remove container admin (compose project p)",
            "remove container old"
        ]
    );
    // A label naming the other job, or another engine: kept.
    snap.containers[1]
        .labels
        .insert("portreap.job".into(), "other".into());
    snap.containers[0].engine = 1;
    let analysis3 = analyze(&snap);
    let p = plan_since(
        &snap,
        &analysis3,
        (&empty, &jobs),
        false,
        &Filters::default(),
    );
    assert_eq!(names(&p), ["kill docker-proxy pid 50"]);
    let reasons: Vec<&str> = p.kept.iter().map(|k| k.reason.as_str()).collect();
    assert!(
        reasons.contains(&"labelled portreap.job=other: job other (CI_JOB_ID=other00) in /ci/b"),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"its engine is not one the baseline was saved against"),
        "{reasons:?}"
    );
}

/// The config file's protections and the age guards hold for a baseline's cleanup too.
#[test]
fn since_baseline_honours_protections_and_ages() {
    use super::baseline::plan_since;
    use crate::model::Timestamp;
    let mut snap = scene();
    snap.taken_at = Some(2_000);
    snap.containers[0].created = Timestamp::from_unix(1_990); // 10 s old
    snap.containers[1].created = Timestamp::from_unix(100);
    snap.containers[1].image = "postgres:16".into();
    let analysis = analyze(&snap);
    let empty = empty_baseline();
    let filters = Filters {
        min_age: Duration::from_secs(30),
        protect: super::Protect {
            images: vec!["postgres:16".into()],
            ports: Some("5432".parse().unwrap()),
            ..Default::default()
        },
        ..Filters::default()
    };
    let p = plan_since(&snap, &analysis, (&empty, &alone()), false, &filters);
    assert!(names(&p).is_empty(), "{:?}", names(&p));
    let reasons: Vec<&str> = p.kept.iter().map(|k| k.reason.as_str()).collect();
    for want in [
        "created 10s ago, younger than --min-age 30s: it may still be starting",
        "protected by the config file: image postgres:16",
        "protected by the config file: port 5432/tcp",
    ] {
        assert!(reasons.contains(&want), "{want}: {reasons:?}");
    }
}

/// `free --kill-processes`, even as root, spares the system's daemons and a process that
/// holds a socket another user made and handed to it (the system bus, handed a user's
/// listening socket over D-Bus): neither is the port's own program.
#[test]
fn free_spares_system_daemons_and_sockets_handed_over() {
    let mut snap = scene();
    let mut add = |pid: u32, name: &str, uid: u32, creator: u32, session: u32, port: u16| {
        let mut p = proxy_process(pid, port);
        p.name = name.into();
        p.cmdline = vec![format!("/usr/bin/{name}")];
        p.uid = Some(uid);
        p.session = Some(session);
        snap.host.processes.insert(pid, p);
        snap.host.sockets.push(Socket {
            proto: Proto::Tcp,
            ip: ip("0.0.0.0"),
            port,
            inode: u32::from(port),
            uid: creator,
            pids: vec![pid],
            v6only: None,
        });
    };
    // The bus (by name), a daemon of a system user (leads its session), a root daemon, a
    // process of user 1001 holding a socket uid 65534 made, and a plain one of its own.
    add(80, "dbus-daemon", 101, 101, 80, 9101);
    add(81, "exporter", 107, 107, 81, 9102);
    add(82, "rsyncd", 0, 0, 82, 9103);
    add(83, "keeper", 1001, 65534, 9, 9104);
    add(84, "node", 1001, 1001, 9, 9105);
    // A worker (www-data) of a root daemon, on a socket of its own.
    add(86, "worker", 33, 33, 82, 9106);
    snap.host.processes.get_mut(&86).unwrap().ppid = 82;
    let free = |snap: &crate::model::Snapshot, ports: &str| {
        super::free(
            snap,
            &analyze(snap),
            &ports.parse().unwrap(),
            super::FreeOptions {
                kill_processes: true,
                stop_only: false,
                euid: 0,
            },
        )
    };
    let p = free(&snap, "9101-9106");
    assert_eq!(names(&p), ["kill node pid 84"]);
    let reasons: Vec<&str> = p.refused.iter().map(|h| h.reason.as_str()).collect();
    for want in [
        "dbus-daemon (pid 80) is a daemon of the system: stop its service instead",
        "exporter (pid 81) runs as system user 107 on its own (it leads its session, or init adopted it): a daemon of the system, stop its service instead",
        "rsyncd (pid 82) runs as system user 0 on its own (it leads its session, or init adopted it): a daemon of the system, stop its service instead",
        "the socket on 0.0.0.0:9104/tcp was made by uid 65534 and handed to keeper (pid 83, uid 1001), which did not make it: stop the program of uid 65534 that made it",
        "worker (pid 86) runs under rsyncd (pid 82), a daemon of the system: stop its service instead",
    ] {
        assert!(reasons.contains(&want), "{want}: {reasons:?}");
    }
    // A socket its maker holds too, as the holder's parent (a server whose workers
    // dropped privileges); the same socket held by the maker elsewhere proves nothing.
    let mut maker = proxy_process(85, 9104);
    maker.name = "nginx".into();
    maker.uid = Some(0);
    maker.session = Some(9);
    maker.ppid = 500;
    snap.host.processes.insert(85, maker);
    snap.host.processes.get_mut(&83).unwrap().ppid = 85;
    let socket = snap
        .host
        .sockets
        .iter_mut()
        .find(|s| s.port == 9104)
        .unwrap();
    socket.uid = 0;
    socket.pids.push(85);
    let p = free(&snap, "9104");
    assert!(p.refused.is_empty(), "{:?}", p.refused);
    assert!(names(&p).contains(&"kill nginx pid 85".to_owned()));
}

/// What an ended or unknown job claims stays claimed, and without the registry only a
/// proof makes a holder this job's (found by an attacker review: a job judged over, a
/// label of a job not registered, a shared workspace, a registry a user could refuse).
#[test]
fn since_baseline_needs_proof_when_jobs_cannot_be_told_apart() {
    use super::baseline::plan_since;
    let mut snap = scene();
    snap.taken_at = Some(2_000);
    // admin: started where an ended job's workspace and this one's overlap; old: labelled
    // for a job nobody knows.
    compose(&mut snap.containers[0], "/ci/a/b/app");
    snap.containers[1]
        .labels
        .insert("portreap.job".into(), "stranger".into());
    let analysis = analyze(&snap);
    let mut jobs = alone();
    jobs.claims.push(job("ended", "/ci/a/b"));
    let empty = empty_baseline();
    let p = plan_since(
        &snap,
        &analysis,
        (&empty, &jobs),
        false,
        &Filters::default(),
    );
    assert_eq!(names(&p), ["kill docker-proxy pid 50"]);
    let reasons: Vec<&str> = p.kept.iter().map(|k| k.reason.as_str()).collect();
    for want in [
        "its compose project was started in the workspace of job ended (CI_JOB_ID=ended00) in /ci/a/b",
        "labelled portreap.job=stranger: another job's",
    ] {
        assert!(reasons.contains(&want), "{want}: {reasons:?}");
    }
    // No registry: nothing unproven is taken; this job's workspace still proves.
    jobs.claims.clear();
    jobs.unknown = Some("the registry of jobs is not available (refused)".into());
    snap.containers[1].labels.remove("portreap.job");
    let analysis = analyze(&snap);
    let p = plan_since(
        &snap,
        &analysis,
        (&empty, &jobs),
        false,
        &Filters::default(),
    );
    assert_eq!(names(&p), ["remove container admin (compose project p)"]);
    let reasons: Vec<&str> = p.kept.iter().map(|k| k.reason.as_str()).collect();
    assert!(reasons.contains(&"the registry of jobs is not available (refused), so only this job's label or workspace proves it this job's"), "{reasons:?}");
    assert!(reasons.contains(&"the registry of jobs is not available (refused), so only this job's processes prove it this job's"), "{reasons:?}");
}
