//! Acting on processes: pinned, re-identified, signalled, and what is reported.

use super::*;

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
    assert_eq!(r[0].outcome, Outcome::Failed(Failure::SurvivedKill(50)));
    assert_eq!(r[0].port_free_after, None);
}

#[test]
fn failures_and_ports_still_held_are_reported() {
    let snap = scene();
    let p = plan::prune(&snap, &analyze(&snap), &Filters::default());
    let fake = world_for(&snap);
    fake.0.borrow_mut().fail_remove = true;
    let r = run(&fake, &p);
    let busy = crate::engine::Error::Api {
        status: 500,
        message: "device or resource busy".into(),
    };
    let failure = Failure::Engine {
        call: EngineCall::Remove,
        error: busy,
    };
    assert_eq!(
        failure.to_string(),
        "remove failed: the engine answered 500: device or resource busy"
    );
    assert_eq!(r[1].outcome, Outcome::Failed(failure));

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
