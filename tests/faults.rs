//! Phase three of the suite: the engine fails under a running prune. These tests stop and
//! restart the shared engine, so `.ci/test` runs them alone, one at a time, with
//! `PORTREAP_FAULT_PHASE=1`; in the ordinary run they have nothing to test.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn in_phase() -> bool {
    if std::env::var("PORTREAP_FAULT_PHASE").as_deref() != Ok("1") {
        eprintln!("skipping: runs in the fault phase of .ci/test (it stops the engine)");
        return false;
    }
    assert!(require_engine(), "the fault phase needs the engine");
    true
}

fn kill_engine() {
    let pid = docker(&["info", "--format", "{{.ID}}"]); // proves it answers before we kill it
    assert!(!pid.is_empty());
    let status = Command::new("pkill")
        .args(["-KILL", "-x", "dockerd"])
        .status()
        .unwrap();
    assert!(status.success(), "no dockerd to kill");
    eventually(Duration::from_secs(20), || {
        (!Command::new("pgrep")
            .args(["-x", "dockerd"])
            .status()
            .unwrap()
            .success())
        .then_some(())
    })
    .expect("dockerd did not die");
}

fn start_engine() {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/setup"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A prune that waits between plan and action; returns when it has planned.
fn delayed_prune(label: &str, timeout: &str) -> std::process::Child {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("portreap"))
        .args([
            "prune",
            "--json",
            "--yes",
            "--grace",
            "1s",
            "--min-age",
            "0s",
            "--timeout",
            timeout,
            "--include-suspects",
            "--label",
            label,
            "--debug-act-delay",
            "3s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 256];
        let mut told = false;
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
            if !told && String::from_utf8_lossy(&seen).contains("before acting") {
                told = tx.send(()).is_ok();
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("prune never planned");
    child
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
    let child = delayed_prune(&format!("portreap.test={tag}"), "2s");
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
    // A freshly restarted engine takes a while to answer its first calls.
    let child = delayed_prune(&format!("portreap.test={tag}"), "20s");
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
