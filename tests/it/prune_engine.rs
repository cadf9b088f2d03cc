//! `prune` on the real engine. Every prune here is scoped (by label, project or port) to
//! what its test created, because tests share the host with whatever else runs there.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

fn exists(name: &str) -> bool {
    Command::new("docker")
        .args(["inspect", name])
        .output()
        .unwrap()
        .status
        .success()
}

fn state(name: &str) -> String {
    docker(&["inspect", "-f", "{{.State.Status}}", name])
}

fn label(tag: &str) -> String {
    format!("portreap.test={tag}")
}

/// A container of this test: `--label portreap.test=<tag>`.
fn labelled(cleanup: &mut Cleanup, name: &str, tag: &str, args: &[&str]) -> u16 {
    let port = free_port();
    let mut all = vec![
        "--label".to_owned(),
        label(tag),
        "-p".to_owned(),
        format!("{port}:80"),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run_container(cleanup, name, &all, &["httpd", "-f", "-p", "80"]);
    port
}

/// A paused container of this test (a `paused-container` suspect), and its label tag.
fn paused(cleanup: &mut Cleanup, what: &str) -> (String, String) {
    let (tag, name) = (unique(what), unique(what));
    labelled(cleanup, &name, &tag, &[]);
    docker(&["pause", &name]);
    (tag, name)
}

/// The action on the container named `name`.
fn action_for<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["container"]["name"] == name)
        .unwrap_or_else(|| panic!("{name} not planned: {doc:#}"))
}

/// An action's outcome and its detail ("" when none).
fn outcome(action: &Value) -> (String, String) {
    (
        action["outcome"].as_str().unwrap().to_owned(),
        action["detail"].as_str().unwrap_or("").to_owned(),
    )
}

fn only_action(doc: &Value) -> &Value {
    let actions = doc["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{doc:#}");
    &actions[0]
}

fn assert_done_and_free(action: &Value) {
    assert_eq!(action["outcome"], "done", "{action:#}");
    assert_eq!(action["port_free_after"], true, "{action:#}");
}

#[test]
fn suspects_are_pruned_and_ports_freed_leaving_neighbours_alone() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("suspects");
    let paused = unique("paused");
    let p1 = labelled(&mut cleanup, &paused, &tag, &[]);
    docker(&["pause", &paused]);
    let unhealthy = unique("unhealthy");
    let p2 = labelled(
        &mut cleanup,
        &unhealthy,
        &tag,
        &[
            "--health-cmd",
            "false",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
    );
    let dormant = unique("dormant");
    let p3 = labelled(&mut cleanup, &dormant, &tag, &["--restart", "always"]);
    docker(&["stop", "-t", "1", &dormant]);
    // Neighbours: a healthy container of the same test, and a paused one of another owner.
    let healthy = unique("healthy");
    let p4 = labelled(&mut cleanup, &healthy, &tag, &[]);
    let foreign = unique("foreign");
    labelled(&mut cleanup, &foreign, &unique("other"), &[]);
    docker(&["pause", &foreign]);
    wait_for_finding(p2, "unhealthy-container");

    // Leaks only by default: nothing here is a leak.
    let (code, doc) = prune(&["--yes", "--label", &label(&tag)]);
    assert_eq!(
        (code, doc["actions"].as_array().unwrap().len()),
        (0, 0),
        "{doc:#}"
    );

    let (code, doc) = prune(&["--yes", "--include-suspects", "--label", &label(&tag)]);
    assert_eq!(code, 0, "{doc:#}");
    let actions = doc["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3, "{doc:#}");
    for (name, port, kind) in [
        (&paused, p1, "paused-container"),
        (&unhealthy, p2, "unhealthy-container"),
        (&dormant, p3, "dormant-binding"),
    ] {
        let a = action_for(&doc, name);
        assert_eq!(a["kind"], kind);
        assert_eq!(a["action"], "remove-container");
        assert_done_and_free(a);
        assert!(a["ports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["port"] == port));
        assert!(!exists(name), "{name} still exists");
    }
    assert_eq!(state(&healthy), "running");
    assert_eq!(state(&foreign), "paused", "a leak this test did not create");
    assert!(findings_on(&scan_port(p4), p4).is_empty());

    // Idempotent: nothing left to do.
    let (code, doc) = prune(&["--yes", "--include-suspects", "--label", &label(&tag)]);
    assert_eq!(
        (code, doc["actions"].as_array().unwrap().len()),
        (0, 0),
        "{doc:#}"
    );
}

#[test]
fn without_grace_a_paused_container_is_force_removed() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, name) = paused(&mut cleanup, "nograce");
    let (code, doc) = prune_with_grace(
        "0s",
        &["--yes", "--include-suspects", "--label", &label(&tag)],
    );
    assert_eq!(code, 0, "{doc:#}");
    let a = only_action(&doc);
    assert_eq!(a["kind"], "paused-container");
    assert_done_and_free(a);
    assert!(!exists(&name));
}

#[test]
fn a_crash_looping_container_is_pruned() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("loop");
    let name = unique("loop");
    let port = free_port();
    run_container(
        &mut cleanup,
        &name,
        &[
            "--label",
            &label(&tag),
            "-p",
            &format!("{port}:80"),
            "--restart",
            "always",
        ],
        &["sh", "-c", "sleep 0.2; exit 3"],
    );
    wait_for_finding(port, "restarting-container");
    // The loop flickers between restarting, running and exited (then it reads as a
    // dormant binding): any suspect finding on it will do, retried while it flickers.
    let doc = eventually(Duration::from_secs(20), || {
        let (code, doc) = prune(&["--yes", "--include-suspects", "--label", &label(&tag)]);
        (code == 0 && !doc["actions"].as_array().unwrap().is_empty()).then_some(doc)
    })
    .expect("the crash loop was never pruned");
    let a = only_action(&doc);
    assert!(
        matches!(
            a["kind"].as_str(),
            Some("restarting-container" | "dormant-binding")
        ),
        "{a:#}"
    );
    assert_done_and_free(a);
    assert!(!exists(&name));
}

#[test]
fn leaks_are_pruned_by_default_orphaned_proxy_and_dead_container() {
    if !require_engine() {
        return;
    }
    // Orphaned proxy: killed, port free.
    let port = free_port();
    let proxy = stale_proxy("tcp", "0.0.0.0", port, "172.17.255.240");
    eventually(Duration::from_secs(10), || {
        (!entries(&scan_port(port), "tcp", port).is_empty()).then_some(())
    })
    .expect("proxy never listened");
    let (code, doc) = prune(&["--yes", "--port", &port.to_string()]);
    assert_eq!(code, 0, "{doc:#}");
    let a = only_action(&doc);
    assert_eq!(
        (a["kind"].as_str(), a["action"].as_str()),
        (Some("orphaned-proxy"), Some("kill-process"))
    );
    assert_eq!(a["pids"], serde_json::json!([proxy.0.id()]));
    assert_done_and_free(a);

    // Dead container: its failed removal is undone, then prune removes it.
    let mut cleanup = Cleanup::default();
    let name = unique("dead");
    let dport = free_port();
    let id = httpd(&mut cleanup, &name, dport);
    let root = docker(&["info", "--format", "{{.DockerRootDir}}"]);
    let file = engine_fs(&format!("{root}/containers/{id}/hostname"));
    assert!(Command::new("chattr")
        .args(["+i", &file])
        .status()
        .unwrap()
        .success());
    let rm = Command::new("docker")
        .args(["rm", "-f", &name])
        .output()
        .unwrap();
    let _ = Command::new("chattr").args(["-i", &file]).status();
    assert!(!rm.status.success());
    wait_for_finding(dport, "dead-container");
    let (code, doc) = prune(&["--yes", "--port", &dport.to_string()]);
    assert_eq!(code, 0, "{doc:#}");
    let a = only_action(&doc);
    assert_eq!(a["kind"], "dead-container");
    assert_done_and_free(a);
    assert!(!exists(&name));
}

#[test]
fn an_orphaned_compose_project_is_pruned_by_project() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let parent = tempfile::tempdir().unwrap();
    let project = unique("orphan").replace('-', "");
    let dir = parent.path().join(&project);
    std::fs::create_dir(&dir).unwrap();
    cleanup.compose(&project, &dir);
    let port = free_port();
    compose_up_ok(&dir, None, port);
    // A live project is not touched.
    let (code, doc) = prune(&["--yes", "--project", &project]);
    assert_eq!((code, doc["actions"].as_array().unwrap().len()), (0, 0));

    std::fs::remove_dir_all(&dir).unwrap();
    let (code, doc) = prune(&["--yes", "--project", &project]);
    assert_eq!(code, 0, "{doc:#}");
    let a = only_action(&doc);
    assert_eq!(a["kind"], "orphaned-compose");
    assert_eq!(a["container"]["compose_project"], project.as_str());
    assert_done_and_free(a);
}

#[test]
fn healthy_holders_are_never_planned() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let hostnet = unique("hostnet");
    let hport = free_port();
    run_container(
        &mut cleanup,
        &hostnet,
        &["--network", "host"],
        &["httpd", "-f", "-p", &hport.to_string()],
    );
    let running = unique("running");
    let rport = free_port();
    httpd(&mut cleanup, &running, rport);
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let lport = listener.local_addr().unwrap().port();
    let spec = format!("{hport},{rport},{lport}");
    let (code, doc) = prune(&["--yes", "--include-suspects", "--port", &spec]);
    assert_eq!(code, 0);
    assert_eq!(doc["actions"], serde_json::json!([]), "{doc:#}");
    assert_eq!(state(&hostnet), "running");
    assert_eq!(state(&running), "running");
    assert!(std::net::TcpStream::connect(("127.0.0.1", lport)).is_ok());
}

#[test]
fn dry_run_and_no_terminal_change_nothing_and_keep_label_is_honoured() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("dry");
    let paused = unique("dry");
    labelled(&mut cleanup, &paused, &tag, &[]);
    docker(&["pause", &paused]);
    let kept = unique("kept");
    labelled(
        &mut cleanup,
        &kept,
        &tag,
        &["--label", "portreap.keep=true"],
    );
    docker(&["pause", &kept]);

    let (code, doc) = prune(&["--dry-run", "--include-suspects", "--label", &label(&tag)]);
    assert_eq!(code, 1, "a dry run that found work");
    assert_eq!(doc["dry_run"], true);
    let a = only_action(&doc);
    assert_eq!(
        (a["outcome"].as_str(), a["container"]["name"].as_str()),
        (Some("planned"), Some(paused.as_str()))
    );
    assert_eq!(doc["kept"][0]["container"]["name"], kept.as_str());
    assert_eq!(doc["kept"][0]["reason"], "label portreap.keep=true");
    assert_eq!(state(&paused), "paused");

    // No --yes and no terminal: the plan, and nothing done.
    let out = portreap()
        .args([
            "prune",
            "--min-age",
            "0s",
            "--include-suspects",
            "--label",
            &label(&tag),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pass --yes to act"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("remove container {paused}")));
    assert_eq!(state(&paused), "paused");

    let (code, doc) = prune(&["--yes", "--include-suspects", "--label", &label(&tag)]);
    assert_eq!(code, 0, "{doc:#}");
    assert_done_and_free(only_action(&doc));
    assert_eq!(state(&kept), "paused", "kept container untouched");
}

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

/// Runs prune under a pseudo-terminal (`script`) and answers its question.
fn prune_on_a_terminal(args: &str, answer: &str) -> String {
    let bin = assert_cmd::cargo::cargo_bin("portreap");
    on_a_terminal(
        &format!("{} prune --grace 1s --min-age 0s {args}", bin.display()),
        answer,
    )
}

#[test]
fn on_a_terminal_prune_asks_first() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, name) = paused(&mut cleanup, "ask");
    let args = format!("--include-suspects --label {}", label(&tag));
    let screen = prune_on_a_terminal(&args, "n\n");
    assert!(
        screen.contains("Proceed? [y/N]") && screen.contains("not acting"),
        "{screen}"
    );
    assert_eq!(state(&name), "paused");
    let screen = prune_on_a_terminal(&args, "y\n");
    assert!(
        screen.contains(&format!("done     remove container {name}")),
        "{screen}"
    );
    assert!(!exists(&name));
}

#[test]
fn a_container_younger_than_the_grace_age_is_left_alone_unless_asked() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, name) = paused(&mut cleanup, "young");
    // Default guard: 30 s. A container a compose up just started is not touched.
    let out = portreap()
        .args([
            "prune",
            "--json",
            "--yes",
            "--include-suspects",
            "--label",
            &label(&tag),
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["actions"], serde_json::json!([]));
    let reason = doc["kept"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("younger than --min-age 30s"), "{reason}");
    assert_eq!(state(&name), "paused");
    // A shorter guard than its age lets prune act.
    std::thread::sleep(Duration::from_millis(2100));
    let out = portreap()
        .args([
            "prune",
            "--json",
            "--yes",
            "--grace",
            "1s",
            "--include-suspects",
            "--label",
            &label(&tag),
            "--min-age",
            "2s",
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = out.status.code().unwrap();
    assert_eq!(code, 0, "{doc:#}");
    assert_done_and_free(only_action(&doc));
}

#[test]
fn reports_for_pipelines_a_json_file_and_a_markdown_summary() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("report");
    let name = unique("report");
    let port = labelled(&mut cleanup, &name, &tag, &[]);
    docker(&["pause", &name]);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let step_summary = dir.path().join("step-summary.md");
    std::fs::write(&step_summary, "earlier step\n").unwrap();
    // Human output on stdout, the JSON report in a file, the summary appended to
    // GITHUB_STEP_SUMMARY as GitHub Actions expects.
    let out = portreap()
        .args([
            "prune",
            "--yes",
            "--grace",
            "1s",
            "--min-age",
            "0s",
            "--include-suspects",
        ])
        .args([
            "--label",
            &label(&tag),
            "--report",
            report.to_str().unwrap(),
        ])
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("done     remove container {name}"))
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_done_and_free(only_action(&doc));
    let md = std::fs::read_to_string(&step_summary).unwrap();
    assert!(md.starts_with("earlier step\n### portreap prune\n"), "{md}");
    assert!(md.contains(&format!("| remove-container | remove container {name} | paused-container | 0.0.0.0:{port}/tcp, [::]:{port}/tcp | done | yes |")), "{md}");
    assert!(md.contains("1 done, 0 skipped, 0 failed."), "{md}");

    // An explicit file wins over the environment, and is written whole.
    let explicit = dir.path().join("summary.md");
    let out = portreap()
        .args([
            "prune",
            "--dry-run",
            "--label",
            &label(&tag),
            "--summary-markdown",
            explicit.to_str().unwrap(),
        ])
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&explicit).unwrap(),
        "### portreap prune (dry run)\n\nNothing to act on.\n\n"
    );
    assert_eq!(
        std::fs::read_to_string(&step_summary).unwrap(),
        md,
        "the step summary is left alone"
    );
}

#[test]
fn older_than_leaves_fresh_holders_to_their_developer() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, name) = paused(&mut cleanup, "older");
    // The dev host's long-lived healthy service, of the same owner.
    let service = unique("olderservice");
    labelled(&mut cleanup, &service, &tag, &[]);
    let port = free_port();
    let _proxy = stale_proxy("tcp", "127.0.0.1", port, "172.17.255.239");
    let (code, doc) = prune(&[
        "--yes",
        "--include-suspects",
        "--label",
        &label(&tag),
        "--older-than",
        "1h",
    ]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["actions"], serde_json::json!([]));
    assert!(
        doc["kept"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not older than --older-than 3600s"),
        "{doc:#}"
    );
    assert_eq!(state(&name), "paused");
    // The fresh stale proxy is spared by the policy too.
    eventually(Duration::from_secs(10), || {
        (!entries(&scan_port(port), "tcp", port).is_empty()).then_some(())
    })
    .expect("proxy never listened");
    let (_, doc) = prune(&["--yes", "--port", &port.to_string(), "--older-than", "1h"]);
    assert_eq!(doc["actions"], serde_json::json!([]));
    assert!(
        doc["kept"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("docker-proxy pid"),
        "{doc:#}"
    );
    std::thread::sleep(Duration::from_millis(2100));
    let (code, doc) = prune(&[
        "--yes",
        "--include-suspects",
        "--label",
        &label(&tag),
        "--older-than",
        "1s",
    ]);
    assert_eq!(code, 0, "{doc:#}");
    assert_done_and_free(only_action(&doc));
    assert_eq!(
        state(&service),
        "running",
        "a healthy service survives the cron policy"
    );
}

#[test]
fn json_log_lines_for_cron() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, name) = paused(&mut cleanup, "log");
    let out = portreap()
        .args([
            "prune",
            "--yes",
            "--grace",
            "1s",
            "--min-age",
            "0s",
            "--include-suspects",
        ])
        .args(["--label", &label(&tag), "--log-format", "json", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let line = stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{stderr}"));
    let event: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(event["event"], "action");
    assert_eq!(event["outcome"], "done");
    assert_eq!(event["target"], format!("remove container {name}"));
    assert!(event["ts"].as_u64().unwrap() > 1_700_000_000);
    // stdout still carries only the report.
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["actions"][0]["outcome"], "done");
}

#[test]
fn the_config_file_drives_an_unattended_prune() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, _name) = paused(&mut cleanup, "conf");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    // Suspects included and no grace age, by the file; the label protects.
    std::fs::write(
        &config,
        format!(
            "[prune]\ninclude_suspects = true\nmin_age = \"0s\"\nkeep_labels = [\"{}\"]\n",
            label(&tag)
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = portreap()
            .args([
                "prune",
                "--json",
                "--yes",
                "--grace",
                "1s",
                "--label",
                &label(&tag),
                "--config",
                config.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code().unwrap(), doc)
    };
    let (code, doc) = run(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["actions"], serde_json::json!([]));
    assert!(
        doc["kept"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("protected by the config file: label portreap.test"),
        "{doc:#}"
    );
    // Without the protection, the file's include_suspects makes the paused container a target.
    std::fs::write(
        &config,
        "[prune]\ninclude_suspects = true\nmin_age = \"0s\"\n",
    )
    .unwrap();
    let (code, doc) = run(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_done_and_free(only_action(&doc));
}
