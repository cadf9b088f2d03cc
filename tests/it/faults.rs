//! Phase three of the suite: the engine fails under a running prune. These tests stop and
//! restart the shared engine, so `.ci/test` runs them alone, one at a time, with
//! `PORTREAP_FAULT_PHASE=1`; in the ordinary run they have nothing to test.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn in_phase() -> bool {
    if std::env::var("PORTREAP_FAULT_PHASE").as_deref() != Ok("1") {
        eprintln!("skipping: runs in the fault phase of .ci/test (it stops the engine)");
        return false;
    }
    assert!(require_engine(), "the fault phase needs the engine");
    true
}

/// Kills the default engine (by its pidfile: a second engine runs beside it).
fn kill_engine() {
    let id = docker(&["info", "--format", "{{.ID}}"]); // proves it answers before we kill it
    assert!(!id.is_empty());
    let pid = std::fs::read_to_string("/var/run/docker.pid").expect("the engine's pidfile");
    let pid = pid.trim();
    let status = Command::new("kill").args(["-KILL", pid]).status().unwrap();
    assert!(status.success(), "no dockerd {pid} to kill");
    let proc_dir = format!("/proc/{pid}");
    // Gone and reaped: dockerd refuses to start while its pidfile names a live PID, and
    // a zombie is one.
    eventually(Duration::from_secs(20), || {
        (!std::path::Path::new(&proc_dir).exists()).then_some(())
    })
    .expect("dockerd did not die");
}

fn start_engine() {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/setup"))
        .output()
        .unwrap();
    assert_success(&out);
}

fn paused_pair(cleanup: &mut Cleanup, tag: &str) -> Vec<String> {
    let names: Vec<String> = (0..2).map(|_| unique("fault")).collect();
    for n in &names {
        let port = free_port();
        run_container(
            cleanup,
            n,
            &[
                "--label",
                &format!("portreap.test={tag}"),
                "-p",
                &format!("{port}:80"),
            ],
            &["httpd", "-f", "-p", "80"],
        );
        docker(&["pause", n]);
    }
    names
}

#[test]
fn the_engine_stops_between_plan_and_action() {
    if !in_phase() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("stop");
    paused_pair(&mut cleanup, &tag);
    let child = delayed_prune(&[
        "--timeout",
        "2s",
        "--include-suspects",
        "--label",
        &format!("portreap.test={tag}"),
    ]);
    kill_engine();
    let out = child.wait_with_output().unwrap();
    start_engine();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions = doc["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "{doc:#}");
    for a in actions {
        assert_eq!(a["outcome"], "failed", "{a:#}");
        let detail = a["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("cannot re-check the container: "),
            "{detail}"
        );
        assert_eq!(a["port_free_after"], serde_json::Value::Null);
    }
}

#[test]
fn the_engine_restarts_mid_run() {
    if !in_phase() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("restart");
    let names = paused_pair(&mut cleanup, &tag);
    // A freshly restarted engine takes a while to answer its first calls, and killing and
    // starting it takes up to 6 s here: the prune acts only after that.
    let child = delayed_prune_for(
        "15s",
        &[
            "--timeout",
            "20s",
            "--include-suspects",
            "--label",
            &format!("portreap.test={tag}"),
        ],
    );
    kill_engine();
    start_engine();
    let out = child.wait_with_output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    // The engine came back with the containers exited: not the state that justified the
    // action, so nothing was done to them.
    for a in doc["actions"].as_array().unwrap() {
        assert_eq!(a["outcome"], "skipped", "{a:#}");
        assert!(
            a["detail"]
                .as_str()
                .unwrap()
                .contains("its state changed: was paused, now exited"),
            "{a:#}"
        );
    }
    for n in &names {
        assert_eq!(docker(&["inspect", "-f", "{{.State.Status}}", n]), "exited");
    }
}
