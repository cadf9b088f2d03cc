//! Races between plan and action, reused PIDs, and two prunes at once (the lock).

use super::*;

fn finish(child: std::process::Child) -> (i32, Value) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

#[test]
fn races_between_plan_and_action_are_skipped() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("race");
    let (gone, revived, recreated) = (unique("gone"), unique("revived"), unique("recreated"));
    labelled(&mut cleanup, &gone, &tag, &[]);
    labelled(&mut cleanup, &revived, &tag, &[]);
    labelled(&mut cleanup, &recreated, &tag, &[]);
    for name in [&gone, &revived, &recreated] {
        docker(&["pause", name]);
    }
    let child = delayed_prune(&["--include-suspects", "--label", &label(&tag)]);
    docker(&["rm", "-f", &gone]);
    docker(&["unpause", &revived]);
    // Removed and created again under the same name, paused like the old one: another
    // container (another id), which the plan never saw.
    docker(&["rm", "-f", &recreated]);
    labelled(&mut cleanup, &recreated, &tag, &[]);
    docker(&["pause", &recreated]);
    let (code, doc) = finish(child);
    assert_eq!(code, 1, "{doc:#}");
    let detail = |name: &str| outcome(action_for(&doc, name));
    assert_eq!(
        detail(&gone),
        ("skipped".into(), "the container no longer exists".into())
    );
    assert_eq!(
        detail(&recreated),
        ("skipped".into(), "the container no longer exists".into())
    );
    assert_eq!(
        state(&recreated),
        "paused",
        "the new container of the same name is untouched"
    );
    assert_eq!(
        detail(&revived),
        (
            "skipped".into(),
            "its state changed: was paused, now running".into()
        )
    );
    assert_eq!(
        state(&revived),
        "running",
        "the revived container was left alone"
    );
}

#[test]
fn a_stopped_container_started_or_removed_meanwhile_is_skipped_by_the_engines_check() {
    if !require_engine() {
        return;
    }
    // Stopped containers are removed without an inspect first: the engine's unforced
    // removal refuses one that runs. Both races must still end as skips.
    let mut cleanup = Cleanup::default();
    let gone_dir = tempfile::tempdir().unwrap();
    let project = unique("stopped").replace('-', "");
    let tag = unique("stopped");
    let (started, gone) = (unique("started"), unique("gone"));
    let compose = [
        format!("com.docker.compose.project={project}"),
        format!(
            "com.docker.compose.project.working_dir={}",
            gone_dir.path().display()
        ),
        "com.docker.compose.service=web".to_owned(),
    ];
    let mut args = Vec::new();
    for l in &compose {
        args.extend(["--label", l.as_str()]);
    }
    labelled(&mut cleanup, &started, &tag, &args);
    labelled(&mut cleanup, &gone, &tag, &args);
    docker(&["stop", "-t", "0", &started, &gone]);
    std::fs::remove_dir(gone_dir.path()).unwrap();

    let child = delayed_prune(&["--project", &project]);
    docker(&["start", &started]);
    docker(&["rm", &gone]);
    let (code, doc) = finish(child);
    assert_eq!(code, 1, "{doc:#}");
    let detail = |name: &str| {
        let a = action_for(&doc, name);
        assert_eq!(a["kind"], "orphaned-compose", "{a:#}");
        outcome(a)
    };
    assert_eq!(
        detail(&started),
        (
            "skipped".into(),
            "its state changed: was exited, now running".into()
        )
    );
    assert_eq!(
        state(&started),
        "running",
        "the started container was left alone"
    );
    assert_eq!(
        detail(&gone),
        ("skipped".into(), "the container no longer exists".into())
    );
}

/// Makes the next forked process get `pid` (root only; retried, other processes fork too).
fn spawn_with_pid(pid: u32) -> Option<ChildGuard> {
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        if child.id() == pid {
            return Some(ChildGuard(child));
        }
        drop(ChildGuard(child));
    }
    None
}

#[test]
fn a_reused_pid_is_not_signalled() {
    if !require_engine() {
        return;
    }
    let port = free_port();
    let proxy = stale_proxy("tcp", "0.0.0.0", port, "172.17.255.241");
    let pid = proxy.0.id();
    eventually(Duration::from_secs(10), || {
        (!entries(&scan_port(port), "tcp", port).is_empty()).then_some(())
    })
    .expect("proxy never listened");
    let child = delayed_prune(&["--port", &port.to_string()]);
    drop(proxy); // the proxy exits...
    let impostor =
        spawn_with_pid(pid).expect("could not reuse the pid (needs root and ns_last_pid)");
    let (code, doc) = finish(child);
    assert_eq!(code, 1, "{doc:#}");
    let a = only_action(&doc);
    assert_eq!(a["outcome"], "skipped");
    let detail = a["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("pid {pid} now belongs to another process (sleep)")),
        "{detail}"
    );
    // ...and the process that took its PID is alive.
    let mut impostor = impostor;
    assert!(
        impostor.0.try_wait().unwrap().is_none(),
        "the impostor was signalled"
    );
}

#[test]
fn two_concurrent_prunes_act_on_each_target_once() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("twice");
    let names: Vec<String> = (0..3).map(|_| unique("twice")).collect();
    for n in &names {
        labelled(&mut cleanup, n, &tag, &[]);
        docker(&["pause", n]);
    }
    let args = [
        "prune",
        "--json",
        "--yes",
        "--grace",
        "1s",
        "--min-age",
        "0s",
        "--include-suspects",
        "--label",
        &label(&tag),
    ];
    let spawn = || {
        Command::new(assert_cmd::cargo::cargo_bin("portreap"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (ca, da) = finish(a);
    let (cb, db) = finish(b);
    assert_eq!((ca, cb), (0, 0), "{da:#}\n{db:#}");
    let mut done: Vec<String> = [da, db]
        .iter()
        .flat_map(|d| d["actions"].as_array().unwrap().clone())
        .map(|a| {
            assert_eq!(a["outcome"], "done", "{a:#}");
            a["container"]["name"].as_str().unwrap().to_owned()
        })
        .collect();
    done.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(done, expected, "each container acted on exactly once");
}

/// Holds the shared lock the way another prune would, for a few seconds.
fn hold_the_lock() -> ChildGuard {
    let holder = Command::new("flock")
        .args(["/run/portreap.lock", "sleep", "4"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    ChildGuard(holder)
}

#[test]
fn a_second_prune_gives_up_on_the_lock_after_its_wait() {
    if !require_engine() {
        return;
    }
    let _holder = hold_the_lock();
    let out = portreap()
        .args([
            "prune",
            "--yes",
            "--wait",
            "500ms",
            "--label",
            "portreap.test=none",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another portreap prune") && stderr.contains("gave up after"),
        "{stderr}"
    );
}

#[test]
fn root_and_the_engines_group_share_one_lock_nobody_else_can_hold_it() {
    if !require_engine() || !is_root() {
        return;
    }
    // A root prune creates the shared lock and lets the engine's group in.
    let out = portreap()
        .args(["prune", "--yes", "--label", "portreap.test=none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let meta = std::fs::metadata("/run/portreap.lock").unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!(meta.gid().to_string(), docker_gid().trim());
    let _holder = hold_the_lock();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let as_user = |groups: Option<&str>| {
        let out = as_nobody(groups, assert_cmd::cargo::cargo_bin("portreap"))
            .args([
                "prune",
                "--yes",
                "--wait",
                "200ms",
                "--label",
                "portreap.test=none",
            ])
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("DOCKER_HOST")
            .env("TMPDIR", tmp.path())
            .env("HOME", "/nonexistent")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A member of the engine's group waits for root's prune, like root would.
    let member = as_user(Some(docker_gid().trim()));
    assert!(
        member.contains("another portreap prune") && member.contains("/run/portreap.lock"),
        "{member}"
    );
    // Anyone else cannot open it (so cannot hold it against root): their own lock.
    let stranger = as_user(None);
    assert!(!stranger.contains("another portreap prune"), "{stranger}");
    assert!(
        tmp.path().join("portreap-65534.lock").exists(),
        "{stranger}"
    );
}
