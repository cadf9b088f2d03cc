//! `why` and `free` on the real engine.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn why(args: &[&str]) -> String {
    let mut all = vec!["why"];
    all.extend_from_slice(args);
    let out = portreap().args(&all).output().unwrap();
    assert!(
        out.status.success(),
        "why {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether `text` says `needle`, across line wraps and with the tested engine's own
/// option left out of suggestions (see `without_engine`).
fn has(text: &str, needle: &str) {
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        without_engine(&flat(text)).contains(&flat(needle)),
        "missing {needle:?} in:\n{text}"
    );
}

#[test]
fn why_a_healthy_compose_service() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    let project = unique("why").replace('-', "");
    cleanup.compose(&project, dir.path());
    let port = free_port();
    compose_up_ok(dir.path(), Some(&project), port);
    let text = why(&[&port.to_string()]);
    has(
        &text,
        &format!("{port}/tcp is held by container {project}-web-1"),
    );
    has(&text, &format!("compose project {project}, service web"));
    has(&text, "running, up ");
    has(
        &text,
        "0.0.0.0 (every IPv4 address) and :: (every IPv6 address), through docker-proxy pid",
    );
    has(&text, "not a leak");
    has(&text, &format!("next: portreap free {port}/tcp"));
    let stop = format!(
        "cd {} && docker compose -p {project} stop web",
        dir.path().display()
    );
    has(&text, &format!("or: {stop}"));
    // Pasted, it frees the port.
    pasted(&stop);
    assert!(port_free(port), "{stop} left {port} held");
}

#[test]
fn why_a_paused_container_and_its_json() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("whypause");
    let port = free_port();
    httpd(&mut cleanup, &name, port);
    docker(&["pause", &name]);
    let text = why(&[&port.to_string()]);
    has(&text, &format!("{port}/tcp is held by container {name}"));
    has(&text, "suspect (paused-container)");
    has(
        &text,
        &format!("next: portreap prune --kind paused-container --port {port}/tcp"),
    );

    let doc = json(&["why", &port.to_string(), "--json"]);
    assert_eq!(doc["schema_version"], 1);
    assert!(doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["port"] == port));
    assert_eq!(doc["findings"][0]["kind"], "paused-container");
    assert_eq!(doc["why"][0]["free"], false);
    assert_eq!(
        without_engine(doc["why"][0]["next"][0].as_str().unwrap()),
        format!("portreap prune --kind paused-container --port {port}/tcp")
    );
}

#[test]
fn why_an_orphaned_proxy() {
    if !require_engine() {
        return;
    }
    let port = free_port();
    let proxy = stale_proxy("tcp", "0.0.0.0", port, "172.17.255.230");
    let text = eventually(Duration::from_secs(10), || {
        let t = why(&[&port.to_string()]);
        t.contains("docker-proxy").then_some(t)
    })
    .expect("proxy never listened");
    has(
        &text,
        &format!(
            "{port}/tcp is held by docker-proxy pid {}, which forwards to no container",
            proxy.0.id()
        ),
    );
    has(&text, "leak (orphaned-proxy)");
    has(
        &text,
        &format!("next: portreap prune --kind orphaned-proxy --port {port}/tcp"),
    );
    has(&text, &format!("or: kill {}", proxy.0.id()));
}

#[test]
fn why_a_host_process_a_free_port_and_a_udp_port() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let uport = udp.local_addr().unwrap().port();
    let free = free_port();
    let me = std::process::id();
    let text = why(&[
        &port.to_string(),
        &format!("{uport}/udp"),
        &free.to_string(),
    ]);
    has(&text, &format!("{port}/tcp is held by process"));
    has(&text, &format!("(pid {me}, user root)"));
    has(&text, "command: ");
    has(&text, "127.0.0.1 (loopback: this host only)");
    has(&text, "not a leak: an ordinary process");
    has(
        &text,
        &format!("next: portreap free {port}/tcp --kill-processes"),
    );
    has(&text, &format!("{uport}/udp is held by process"));
    has(
        &text,
        &format!("{free}/tcp is free.\n  nothing will take it when the engine restarts."),
    );
}

#[test]
fn why_a_port_a_created_container_failed_to_get_from_both_sides() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (holder, blocked) = (unique("whyholder"), unique("whyblocked"));
    let port = free_port();
    httpd(&mut cleanup, &holder, port);
    assert_blocked(&mut cleanup, &blocked, port);
    let text = why(&[&port.to_string()]);
    has(&text, &format!("{port}/tcp is held by container {holder}"));
    has(
        &text,
        &format!("also wanted by container {blocked}: info (blocked-start)"),
    );
    let text = why(&["--container", &blocked]);
    has(&text, &format!("container {blocked}: created"));
    // The engine names the binding it allocated first: IPv4's on 20.10, either on 28
    // (which prints an IPv6 address unbracketed).
    let said = |ip: &str| {
        format!("last start failed: \"Bind for {ip}:{port} failed: port is already allocated\"")
    };
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&said("0.0.0.0")) || flat.contains(&said("::")),
        "no start error naming {port} in:\n{text}"
    );
    has(
        &text,
        &format!("{port}/tcp -> 80: {port}/tcp is held by container {holder}"),
    );
}

#[test]
fn why_ipv6_only_and_loopback_only_bindings() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("whyaddr");
    let (v6, lo) = (free_port(), free_port());
    run_container(
        &mut cleanup,
        &name,
        &[
            "-p",
            &format!("[::1]:{v6}:80"),
            "-p",
            &format!("127.0.0.1:{lo}:80"),
        ],
        &["httpd", "-f", "-p", "80"],
    );
    let text = why(&[&v6.to_string(), &lo.to_string()]);
    has(&text, &format!("{v6}/tcp is held by container {name}\n"));
    has(
        &text,
        "on ::1 (loopback: this host only), through docker-proxy",
    );
    has(
        &text,
        "on 127.0.0.1 (loopback: this host only), through docker-proxy",
    );
    assert!(!text.contains("every IPv4"), "{text}");
}

#[test]
fn why_without_the_engine_answers_from_host_facts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let text = why(&[&port.to_string(), "--host", "unix:///nonexistent.sock"]);
    has(
        &text,
        "note: engine not reachable at unix:///nonexistent.sock",
    );
    has(&text, "container attribution unavailable");
    has(&text, &format!("{port}/tcp is held by process"));
}

fn free_cmd(args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["free", "--json", "--grace", "1s"];
    all.extend_from_slice(args);
    let out = portreap().args(&all).output().unwrap();
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), doc)
}

#[test]
fn free_a_healthy_container() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("freeme");
    let port = free_port();
    httpd(&mut cleanup, &name, port);
    // No terminal, no --yes: nothing happens.
    let (code, doc) = free_cmd(&[&port.to_string()]);
    assert_eq!(code, 1);
    assert_eq!(doc["actions"][0]["outcome"], "planned");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &name]),
        "running"
    );

    let (code, doc) = free_cmd(&[&port.to_string(), "--yes"]);
    assert_eq!(code, 0, "{doc:#}");
    let a = &doc["actions"][0];
    assert_eq!(
        (a["action"].as_str(), a["outcome"].as_str()),
        (Some("remove-container"), Some("done"))
    );
    assert_eq!(
        a["kind"],
        serde_json::Value::Null,
        "a healthy container has no finding"
    );
    assert_eq!(a["port_free_after"], true);
    assert!(
        doc["ports_free"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["free"] == true),
        "{doc:#}"
    );
    assert!(!Command::new("docker")
        .args(["inspect", &name])
        .output()
        .unwrap()
        .status
        .success());
}

#[test]
fn free_a_host_process_only_with_kill_processes() {
    // free acts only with the engine's whole answer, even on plain processes.
    if !require_engine() {
        return;
    }
    let (child, port) = python_listener(std::path::Path::new("python3"), &[]);

    let (code, doc) = free_cmd(&[&port, "--yes"]);
    assert_eq!(code, 1, "still held: {doc:#}");
    assert_eq!(doc["actions"], serde_json::json!([]));
    assert!(doc["refused"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("pass --kill-processes"));
    assert!(doc["ports_free"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["free"] == false));

    let (code, doc) = free_cmd(&[&port, "--yes", "--kill-processes"]);
    assert_eq!(code, 0, "{doc:#}");
    let a = &doc["actions"][0];
    assert_eq!(
        (a["action"].as_str(), a["outcome"].as_str()),
        (Some("kill-process"), Some("done"))
    );
    assert_eq!(a["pids"], serde_json::json!([child.0.id()]));
    let mut child = child;
    assert!(
        child.0.try_wait().unwrap().is_some(),
        "the process was ended"
    );
}

#[test]
fn free_refuses_a_never_act_process() {
    if !require_engine() {
        return;
    }
    // A program whose process name is on the never-act list (vpnkit, Docker Desktop's
    // forwarder), holding a port.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("vpnkit");
    std::fs::copy("/usr/bin/python3", &fake).unwrap();
    let (mut child, port) = python_listener(&fake, &[]);
    let (code, doc) = free_cmd(&[&port, "--yes", "--kill-processes"]);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(doc["actions"], serde_json::json!([]));
    let reason = doc["refused"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("Docker Desktop's port forwarder") && reason.contains("is never signalled"),
        "{reason}"
    );
    // why says what it is and what to do instead.
    let out = portreap().args(["why", &port]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("is held by Docker Desktop's port forwarder vpnkit"),
        "{text}"
    );
    assert!(child.0.try_wait().unwrap().is_none(), "vpnkit must survive");
}
