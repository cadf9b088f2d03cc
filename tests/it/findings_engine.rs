//! Every finding kind reproduced on the real engine, and checked in `scan --json`.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

fn only_finding(doc: &Value, port: u16) -> &Value {
    let found = findings_on(doc, port);
    assert_eq!(found.len(), 1, "port {port}: {doc:#}");
    found[0]
}

fn ports_of(finding: &Value) -> Vec<(String, String, u64)> {
    let mut ports: Vec<_> = finding["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["proto"].as_str().unwrap().to_owned(),
                p["ip"].as_str().unwrap().to_owned(),
                p["port"].as_u64().unwrap(),
            )
        })
        .collect();
    ports.sort();
    ports
}

#[test]
fn orphaned_proxy_tcp_on_both_families_and_udp() {
    if !require_engine() {
        return;
    }
    let (tcp, udp) = (free_port(), free_port());
    let v4 = stale_proxy("tcp", "0.0.0.0", tcp, "172.17.255.250");
    let v6 = stale_proxy("tcp", "::", tcp, "172.17.255.250");
    let u = stale_proxy("udp", "0.0.0.0", udp, "172.17.255.251");
    let pids = |g: &ChildGuard| g.0.id() as u64;
    let doc = eventually(Duration::from_secs(10), || {
        let doc = json(&["scan", "--json", "--port", &format!("{tcp}/tcp,{udp}/udp")]);
        // Listening, and seen with their holders: a socket bound between the descriptor
        // walk and the socket dump has no owner yet.
        let owned = |e: &&&Value| e["owner"]["kind"] != "unknown";
        (entries(&doc, "tcp", tcp).iter().filter(owned).count() == 2
            && entries(&doc, "udp", udp).iter().filter(owned).count() == 1)
            .then_some(doc)
    })
    .expect("proxies never listened");

    let f = only_finding(&doc, tcp);
    assert_eq!(f["kind"], "orphaned-proxy");
    assert_eq!(f["severity"], "leak");
    assert_eq!(f["action"], "kill-process");
    assert_eq!(f["container"], Value::Null);
    let mut expected = vec![pids(&v4), pids(&v6)];
    expected.sort();
    assert_eq!(f["pids"], serde_json::json!(expected));
    assert_eq!(
        ports_of(f),
        [
            ("tcp".into(), "0.0.0.0".into(), tcp as u64),
            ("tcp".into(), "::".into(), tcp as u64)
        ]
    );
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("to 172.17.255.250:80; no container has that address"),
        "{f:#}"
    );
    for entry in entries(&doc, "tcp", tcp) {
        assert_eq!(entry["owner"]["kind"], "docker-proxy");
        assert_eq!(entry["owner"]["target"], "172.17.255.250:80");
        assert_eq!(entry["findings"], serde_json::json!(["orphaned-proxy"]));
    }
    let f = only_finding(&doc, udp);
    assert_eq!(f["kind"], "orphaned-proxy");
    assert_eq!(f["pids"], serde_json::json!([pids(&u)]));
    assert_eq!(ports_of(f), [("udp".into(), "0.0.0.0".into(), udp as u64)]);

    // A container asking for the port now fails to start, and says who is in the way.
    let mut cleanup = Cleanup::default();
    let blocked = unique("behindproxy");
    cleanup.container(&blocked);
    let run = Command::new("docker")
        .args([
            "run",
            "-d",
            "--name",
            &blocked,
            "-p",
            &format!("{tcp}:80"),
            &image(),
            "httpd",
            "-f",
            "-p",
            "80",
        ])
        .output()
        .unwrap();
    assert!(
        !run.status.success(),
        "the stale proxy should block the port"
    );
    let doc = scan_port(tcp);
    let blocked_finding = finding_of(&doc, tcp, "blocked-start", "");
    assert_eq!(blocked_finding["container"]["name"], blocked.as_str());
    let reason = blocked_finding["reason"].as_str().unwrap();
    assert!(
        reason.contains("address already in use") && reason.contains("docker-proxy pid"),
        "{reason}"
    );
}

#[test]
fn blocked_start_names_the_container_holding_the_port() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (holder, blocked) = (unique("holder"), unique("blocked"));
    let port = free_port();
    httpd(&mut cleanup, &holder, port);
    assert_blocked(&mut cleanup, &blocked, port);
    let doc = scan_port(port);
    let f = only_finding(&doc, port);
    assert_eq!(
        (
            f["kind"].as_str(),
            f["severity"].as_str(),
            f["action"].as_str()
        ),
        (Some("blocked-start"), Some("info"), Some("none"))
    );
    assert_eq!(f["container"]["name"], blocked.as_str());
    assert_eq!(f["container"]["state"], "created");
    let reason = f["reason"].as_str().unwrap();
    // The engine names the binding it allocated first: IPv4's on 20.10, either on 28.
    let said = |ip: &str| format!("Bind for {ip}:{port} failed: port is already allocated");
    assert!(
        reason.contains(&said("0.0.0.0")) || reason.contains(&said("::")),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("now held by container {holder}")),
        "{reason}"
    );
    // The holder is legitimate: its rows carry nothing.
    for entry in entries(&doc, "tcp", port) {
        if entry["container"]["name"] == holder.as_str() {
            assert_eq!(entry["findings"], serde_json::json!([]));
        } else {
            assert_eq!(entry["owner"]["via"], "requested");
            assert_eq!(entry["findings"], serde_json::json!(["blocked-start"]));
        }
    }
}

/// An IPv6-only binding taken: engines 28+ name the address unbracketed (`Bind for
/// :::PORT failed`), 20.10 bracketed; the blocked start is found either way.
#[test]
fn blocked_start_on_an_ipv6_only_binding() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (holder, blocked) = (unique("v6holder"), unique("v6blocked"));
    let port = free_port();
    let publish = format!("[::]:{port}:80");
    run_container(
        &mut cleanup,
        &holder,
        &["-p", &publish],
        &["httpd", "-f", "-p", "80"],
    );
    cleanup.container(&blocked);
    let run = Command::new("docker")
        .args(["run", "-d", "--name", &blocked, "-p", &publish, &image()])
        .args(["httpd", "-f", "-p", "80"])
        .output()
        .unwrap();
    assert!(!run.status.success(), "{blocked} started on a taken port");
    let said = String::from_utf8_lossy(&run.stderr);
    let doc = scan_port(port);
    let f = finding_of(
        &doc,
        port,
        "blocked-start",
        &format!("docker run said: {said}"),
    );
    assert_eq!(f["container"]["name"], blocked.as_str());
    let reason = f["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("now held by container {holder}")),
        "{reason}"
    );
}

#[test]
fn paused_container() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("paused");
    let port = free_port();
    httpd(&mut cleanup, &name, port);
    docker(&["pause", &name]);
    let doc = scan_port(port);
    let f = only_finding(&doc, port);
    assert_eq!(
        (
            f["kind"].as_str(),
            f["severity"].as_str(),
            f["action"].as_str()
        ),
        (
            Some("paused-container"),
            Some("suspect"),
            Some("remove-container")
        )
    );
    assert_eq!(f["container"]["name"], name.as_str());
    assert_eq!(ports_of(f).len(), 2, "both proxies' addresses");
    assert!(f["reason"].as_str().unwrap().contains("is paused"));
    docker(&["unpause", &name]);
    assert!(
        findings_on(&scan_port(port), port).is_empty(),
        "unpaused: nothing to say"
    );
}

#[test]
fn a_paused_container_whose_proxies_died_still_reserves_its_port() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (name, blocked) = (unique("pausednoproxy"), unique("blockedbyreserve"));
    let port = free_port();
    httpd(&mut cleanup, &name, port);
    docker(&["pause", &name]);
    let doc = scan_port(port);
    for entry in entries(&doc, "tcp", port) {
        for pid in entry["pids"].as_array().unwrap() {
            let killed = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
            assert!(killed.success(), "kill {pid}");
        }
    }
    assert!(
        eventually(Duration::from_secs(5), || port_free(port).then_some(())).is_some(),
        "its proxies are gone"
    );
    let doc = scan_port(port);
    let f = finding_of(&doc, port, "paused-container", "");
    let reason = f["reason"].as_str().unwrap();
    assert!(
        reason.contains("still reserves") && !reason.contains("accept connections"),
        "{reason}"
    );
    // The kernel would let a bind through; the engine's allocator does not.
    let refused = blocked_run(&mut cleanup, &blocked, port);
    let doc = scan_port(port);
    let f = finding_of(
        &doc,
        port,
        "blocked-start",
        &format!("docker run said: {refused}"),
    );
    let reason = f["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "no socket holds port {port} now, but the engine still reserves it for container {name}"
        )),
        "{reason}"
    );
}

#[test]
fn unhealthy_container() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("unhealthy");
    let port = free_port();
    run_container(
        &mut cleanup,
        &name,
        &[
            "-p",
            &format!("{port}:80"),
            "--health-cmd",
            "false",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
        &["httpd", "-f", "-p", "80"],
    );
    let doc = wait_for_finding(port, "unhealthy-container");
    let f = only_finding(&doc, port);
    assert_eq!(
        (f["severity"].as_str(), f["action"].as_str()),
        (Some("suspect"), Some("remove-container"))
    );
    assert_eq!(f["container"]["health"], "unhealthy");
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("failed checks in a row"),
        "{f:#}"
    );
}

#[test]
fn a_passing_health_check_is_not_a_finding() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("healthy");
    let port = free_port();
    run_container(
        &mut cleanup,
        &name,
        &[
            "-p",
            &format!("{port}:80"),
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
        ],
        &["httpd", "-f", "-p", "80"],
    );
    let doc = eventually(Duration::from_secs(20), || {
        let doc = scan_port(port);
        (entries(&doc, "tcp", port).first()?["container"]["health"] == "healthy").then_some(doc)
    })
    .expect("never healthy");
    assert!(findings_on(&doc, port).is_empty(), "{doc:#}");
}

#[test]
fn restarting_container() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("restarting");
    let port = free_port();
    run_container(
        &mut cleanup,
        &name,
        &["-p", &format!("{port}:80"), "--restart", "always"],
        &["sh", "-c", "sleep 0.2; exit 3"],
    );
    let doc = wait_for_finding(port, "restarting-container");
    let f = finding_of(&doc, port, "restarting-container", "");
    assert_eq!(
        (f["severity"].as_str(), f["action"].as_str()),
        (Some("suspect"), Some("remove-container"))
    );
    assert_eq!(f["container"]["name"], name.as_str());
    assert!(
        f["reason"].as_str().unwrap().contains("restart loop"),
        "{f:#}"
    );
}

#[test]
fn dormant_binding_of_an_exited_restart_always_container() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (dormant, plain) = (unique("dormant"), unique("stopped"));
    let (port, other) = (free_port(), free_port());
    run_container(
        &mut cleanup,
        &dormant,
        &["-p", &format!("{port}:80"), "--restart", "always"],
        &["httpd", "-f", "-p", "80"],
    );
    httpd(&mut cleanup, &plain, other);
    docker(&["stop", "-t", "1", &dormant, &plain]);
    let doc = json(&["scan", "--json", "--port", &format!("{port},{other}")]);
    let f = only_finding(&doc, port);
    assert_eq!(
        (f["kind"].as_str(), f["severity"].as_str()),
        (Some("dormant-binding"), Some("suspect"))
    );
    assert_eq!(f["container"]["state"], "exited");
    assert!(
        f["reason"].as_str().unwrap().contains("will bind 0.0.0.0:"),
        "{f:#}"
    );
    let entry = entries(&doc, "tcp", port);
    assert_eq!(entry.len(), 1);
    assert_eq!(entry[0]["bound"], false);
    assert_eq!(entry[0]["owner"]["via"], "requested");
    // A stopped container without a restart policy holds nothing and will take nothing.
    assert!(findings_on(&doc, other).is_empty(), "{doc:#}");
}

/// The engine marks a container `dead` when its removal fails part way; an immutable file
/// in its directory makes the removal fail for real.
#[test]
fn dead_container() {
    if !require_engine() {
        return;
    }
    struct Immutable(String);
    impl Drop for Immutable {
        fn drop(&mut self) {
            let _ = Command::new("chattr").args(["-i", &self.0]).status();
        }
    }
    let mut cleanup = Cleanup::default();
    let name = unique("dead");
    let port = free_port();
    let id = httpd(&mut cleanup, &name, port);
    let root = docker(&["info", "--format", "{{.DockerRootDir}}"]);
    let file = engine_fs(&format!("{root}/containers/{id}/hostname"));
    let guard = Immutable(file.clone());
    assert!(
        Command::new("chattr")
            .args(["+i", &file])
            .status()
            .unwrap()
            .success(),
        "chattr +i {file}"
    );
    let rm = Command::new("docker")
        .args(["rm", "-f", &name])
        .output()
        .unwrap();
    assert!(!rm.status.success(), "removal should fail");
    let doc = wait_for_finding(port, "dead-container");
    let f = only_finding(&doc, port);
    assert_eq!(
        (f["severity"].as_str(), f["action"].as_str()),
        (Some("leak"), Some("remove-container"))
    );
    assert_eq!(f["container"]["state"], "dead");
    drop(guard);
}

#[test]
fn orphaned_compose_when_the_project_directory_is_gone() {
    if !require_engine() {
        return;
    }
    // v1 records relative file names, v2 absolute paths: both are judged.
    for compose in [Compose::V2, Compose::V1] {
        directory_gone(compose);
    }
}

fn directory_gone(compose: Compose) {
    let mut cleanup = Cleanup::default();
    let parent = tempfile::tempdir().unwrap();
    let project = unique("gone").replace('-', "");
    let dir = parent.path().join(&project);
    std::fs::create_dir(&dir).unwrap();
    cleanup.compose(&project, &dir);
    let port = free_port();
    let up = compose_up_with(compose, &dir, None, port, None);
    assert_success(&up);
    // A live project: no finding.
    assert!(findings_on(&scan_port(port), port).is_empty());

    std::fs::remove_dir_all(&dir).unwrap();
    let doc = scan_port(port);
    let f = only_finding(&doc, port);
    assert_eq!(
        (
            f["kind"].as_str(),
            f["severity"].as_str(),
            f["action"].as_str()
        ),
        (
            Some("orphaned-compose"),
            Some("leak"),
            Some("remove-container")
        )
    );
    assert_eq!(f["container"]["compose_project"], project.as_str());
    let reason = f["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "working directory {} no longer exists",
            dir.display()
        )),
        "{reason}"
    );
    assert_eq!(doc["host"]["compose_dirs_checked"], true);
}

#[test]
fn orphaned_compose_when_a_new_project_name_supersedes_the_old() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let parent = tempfile::tempdir().unwrap();
    let current = unique("app").replace('-', "");
    let old = unique("old").replace('-', "");
    let dir = parent.path().join(&current);
    std::fs::create_dir(&dir).unwrap();
    cleanup.compose(&old, &dir);
    cleanup.compose(&current, &dir);
    let port = free_port();
    assert!(compose_up(&dir, Some(&old), port).status.success());
    // Creation times have one-second resolution in the comparison.
    std::thread::sleep(Duration::from_millis(1100));
    let second = compose_up(&dir, None, port);
    assert!(!second.status.success(), "the old project holds the port");
    let doc = scan_port(port);
    let kinds: Vec<(&str, &str)> = findings_on(&doc, port)
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap(),
                f["container"]["compose_project"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("orphaned-compose", old.as_str())),
        "{doc:#}"
    );
    assert!(
        kinds.contains(&("blocked-start", current.as_str())),
        "{doc:#}"
    );
    assert_eq!(kinds.len(), 2, "{doc:#}");
}

/// A user squats the port of a stopped `--restart always` container; its next start fails.
/// It is the squatter's victim: `blocked-start` only (never `dormant-binding`), and a
/// cron-style `prune --include-suspects` leaves it alone.
#[test]
fn a_squatted_restart_always_container_is_a_victim_not_a_suspect() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("squatted");
    let port = free_port();
    run_container(
        &mut cleanup,
        &name,
        &["-p", &format!("{port}:80"), "--restart", "always"],
        &["httpd", "-f", "-p", "80"],
    );
    docker(&["stop", "-t", "1", &name]);
    let script = format!(
        "import socket,time; s=socket.socket(); s.bind(('0.0.0.0',{port})); s.listen(); print('up', flush=True); time.sleep(600)"
    );
    let (_squatter, _) = first_line(as_nobody(None, "/usr/bin/python3").args(["-c", &script]));
    let start = Command::new("docker")
        .args(["start", &name])
        .output()
        .unwrap();
    assert!(
        !start.status.success(),
        "the start should fail on the squatted port"
    );
    let doc = scan_port(port);
    let kinds: Vec<&str> = findings_on(&doc, port)
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"blocked-start"), "{doc:#}");
    assert!(!kinds.contains(&"dormant-binding"), "{doc:#}");
    let (code, doc) = prune(&["--yes", "--include-suspects", "--port", &port.to_string()]);
    assert_eq!(
        doc["actions"],
        serde_json::json!([]),
        "exit {code}: {doc:#}"
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &name]),
        "exited"
    );
}
