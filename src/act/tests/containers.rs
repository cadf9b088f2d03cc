//! Acting on containers: the re-check, the engine's own check, compose paths and services.

use super::*;

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

/// An engine not proven to run on this host may be remote: its containers' ports are on
/// its host, so a bind probe here proves nothing and none is claimed. A process here is
/// still probed.
#[test]
fn a_remote_engines_ports_are_not_claimed_free() {
    let mut snap = scene();
    snap.engine.process = None;
    let p = plan::prune(&snap, &analyze(&snap), &suspects());
    let fake = world_for(&snap);
    let reports = run(&fake, &p);
    let free_after = |r: &execute::Report| (r.action.describe(), r.port_free_after);
    let seen: Vec<_> = reports.iter().map(free_after).collect();
    assert!(
        reports.iter().all(|r| r.outcome == Outcome::Done),
        "{reports:?}"
    );
    for r in &reports {
        let here = matches!(r.action.target, plan::Target::Process { .. });
        assert_eq!(r.port_free_after, here.then_some(true), "{seen:?}");
    }
    let remote = reports
        .iter()
        .find(|r| r.port_free_after.is_none())
        .expect("a container action");
    let line = crate::report::prune::progress_line(remote);
    assert!(
        line.ends_with("not probed: its engine is not proven to run on this host"),
        "{line}"
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
