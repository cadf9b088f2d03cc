//! End-to-end attribution on the real Docker engine: each test creates one kind of holder
//! and checks that `scan --json` names it exactly.

use std::time::Duration;

use crate::common::*;
use serde_json::Value;

fn assert_container(entry: &Value, name: &str, via: &str) {
    assert_eq!(entry["owner"]["kind"], "container", "{entry:#}");
    assert_eq!(entry["owner"]["via"], via, "{entry:#}");
    assert_eq!(entry["container"]["name"], name, "{entry:#}");
    assert_eq!(entry["bound"], true, "{entry:#}");
}

/// Drops the digits of every `reason` and `status` text in `doc`: they may say "exited 0s
/// ago" or "up 3s" in one run and "1s ago" or "up 4s" in the next.
fn strip_clock(doc: &mut Value) {
    match doc {
        Value::Array(items) => items.iter_mut().for_each(strip_clock),
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(text) if key == "reason" || key == "status" => {
                        text.retain(|c| !c.is_ascii_digit())
                    }
                    _ => strip_clock(value),
                }
            }
        }
        _ => {}
    }
}

fn addresses(entries: &[&Value]) -> Vec<String> {
    let mut ips: Vec<String> = entries
        .iter()
        .map(|e| e["ip"].as_str().unwrap().to_owned())
        .collect();
    ips.sort();
    ips
}

#[test]
fn tcp_and_udp_proxies_on_both_families_belong_to_the_container() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("bridge");
    let (tcp, udp) = (free_port(), free_port());
    let id = run_container(
        &mut cleanup,
        &name,
        &["-p", &format!("{tcp}:80"), "-p", &format!("{udp}:81/udp")],
        &["httpd", "-f", "-p", "80"],
    );
    let doc = json(&["scan", "--json", "--port", &format!("{tcp}/tcp,{udp}/udp")]);
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["engine"]["reachable"], true);
    for (proto, port) in [("tcp", tcp), ("udp", udp)] {
        let found = entries(&doc, proto, port);
        assert_eq!(
            addresses(&found),
            ["0.0.0.0", "::"],
            "{proto}/{port}: {doc:#}"
        );
        for entry in found {
            assert_container(entry, &name, "docker-proxy");
            assert_eq!(entry["container"]["id"], id.as_str());
            assert_eq!(entry["container"]["state"], "running");
            assert_eq!(entry["process"], "docker-proxy");
            assert_eq!(entry["pids"].as_array().unwrap().len(), 1);
        }
    }
    assert_eq!(doc["ports"].as_array().unwrap().len(), 4, "{doc:#}");
}

#[test]
fn user_network_loopback_binding_and_port_range() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("usernet");
    let net = unique("net");
    cleanup.network(&net);
    docker(&["network", "create", &net]);
    let lo = free_port();
    let range = free_ports(3);
    run_container(
        &mut cleanup,
        &name,
        &[
            "--network",
            &net,
            "-p",
            &format!("127.0.0.1:{lo}:80"),
            "-p",
            &format!("{}-{}:90-92", range, range + 2),
        ],
        &["httpd", "-f", "-p", "80"],
    );
    let doc = scan_port(lo);
    let found = entries(&doc, "tcp", lo);
    assert_eq!(addresses(&found), ["127.0.0.1"], "{doc:#}");
    assert_container(found[0], &name, "docker-proxy");

    let doc = json(&[
        "scan",
        "--json",
        "--port",
        &format!("{}-{}", range, range + 2),
    ]);
    for port in range..range + 3 {
        let found = entries(&doc, "tcp", port);
        assert_eq!(addresses(&found), ["0.0.0.0", "::"], "{port}: {doc:#}");
        found
            .iter()
            .for_each(|e| assert_container(e, &name, "docker-proxy"));
    }
}

#[test]
fn host_network_container_is_found_through_its_cgroup() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("hostnet");
    let port = free_port();
    run_container(
        &mut cleanup,
        &name,
        &["--network", "host"],
        &["httpd", "-f", "-p", &port.to_string()],
    );
    // httpd binds after the container starts: wait for its socket.
    let doc = eventually(Duration::from_secs(10), || {
        let doc = scan_port(port);
        (!entries(&doc, "tcp", port).is_empty()).then_some(doc)
    })
    .expect("host-network httpd never listened");
    let found = entries(&doc, "tcp", port);
    assert_eq!(found.len(), 1, "{doc:#}");
    assert_container(found[0], &name, "host-network");
    assert_eq!(found[0]["process"], "httpd");
    assert!(findings_on(&doc, port).is_empty(), "{doc:#}");
}

#[test]
fn compose_project_and_service_are_named() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let project = unique("compose").replace('-', "");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    cleanup.compose(&project, dir.path());
    compose_up_ok(dir.path(), Some(&project), port);

    let doc = scan_port(port);
    let found = entries(&doc, "tcp", port);
    assert_eq!(addresses(&found), ["0.0.0.0", "::"], "{doc:#}");
    for entry in found {
        assert_eq!(entry["owner"]["via"], "docker-proxy");
        assert_eq!(entry["container"]["compose_project"], project.as_str());
        assert_eq!(entry["container"]["compose_service"], "web");
    }

    // A running service of a live project is legitimate.
    assert!(findings_on(&doc, port).is_empty(), "{doc:#}");
    assert_eq!(doc["host"]["compose_dirs_checked"], true);

    // The table names project and service too.
    let out = portreap()
        .args(["scan", "--port", &port.to_string()])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains(&format!("[{project}/web]")), "{table}");
}

#[test]
fn default_view_shows_docker_ports_and_hides_plain_processes() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("view");
    let (published, plain) = (free_port(), free_port());
    let _listener = std::net::TcpListener::bind(("127.0.0.1", plain)).unwrap();
    httpd(&mut cleanup, &name, published);

    let doc = json(&["scan", "--json"]);
    assert_eq!(entries(&doc, "tcp", published).len(), 2, "{doc:#}");
    assert!(
        entries(&doc, "tcp", plain).is_empty(),
        "plain process in default view"
    );
    let doc = json(&["scan", "--json", "--all"]);
    assert_eq!(entries(&doc, "tcp", published).len(), 2);
    assert_eq!(entries(&doc, "tcp", plain).len(), 1);
    assert!(findings_on(&doc, plain).is_empty() && findings_on(&doc, published).is_empty());

    // Plain table when stdout is not a terminal: no box drawing, one merged row.
    let out = portreap()
        .args(["--port", &published.to_string()])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    let row = table
        .lines()
        .find(|l| l.contains(&format!("{published}/tcp")))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("0.0.0.0, ::") && row.contains(&name) && row.contains("docker-proxy"),
        "{row}"
    );
    assert!(!table.contains('│') && !table.contains('─'), "{table}");
    assert!(!table.contains('\x1b'), "colour codes outside a terminal");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("engine: Docker"), "{stderr}");
}

#[test]
fn recorded_snapshot_replays_to_the_same_answer() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("record");
    let port = free_port();
    httpd(&mut cleanup, &name, port);
    let live = scan_port(port);
    let out = portreap().args(["debug", "snapshot"]).output().unwrap();
    assert!(out.status.success());
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &out.stdout).unwrap();
    let replayed = json(&[
        "scan",
        "--json",
        "--port",
        &port.to_string(),
        "--snapshot",
        file.path().to_str().unwrap(),
    ]);
    assert_eq!(live["ports"], replayed["ports"]);
    assert_eq!(entries(&replayed, "tcp", port).len(), 2);
}

#[test]
fn a_binding_whose_proxies_died_is_a_reservation_without_socket() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("reserve");
    let port = free_port();
    httpd(&mut cleanup, &name, port);
    let doc = scan_port(port);
    let found = entries(&doc, "tcp", port);
    assert_eq!(found.len(), 2, "{doc:#}");
    for entry in &found {
        let cmdline = entry["cmdline"].as_array().unwrap();
        assert!(cmdline.iter().any(|a| a == "-container-ip"), "{entry:#}");
        let pid = entry["pids"][0].as_u64().unwrap().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success());
    }
    // The engine still reports the binding; nothing holds the port.
    let doc = eventually(Duration::from_secs(10), || {
        let doc = scan_port(port);
        entries(&doc, "tcp", port)
            .iter()
            .all(|e| e["bound"] == false)
            .then_some(doc)
    })
    .expect("proxies did not die");
    let found = entries(&doc, "tcp", port);
    assert_eq!(addresses(&found), ["0.0.0.0", "::"], "{doc:#}");
    for entry in found {
        assert_eq!(entry["owner"]["via"], "reservation", "{entry:#}");
        assert_eq!(entry["container"]["name"], name.as_str());
        assert_eq!(entry["pids"], serde_json::json!([]));
        assert_eq!(entry["findings"], serde_json::json!(["engine-reservation"]));
    }
    let found = findings_on(&doc, port);
    assert_eq!(found.len(), 1, "{doc:#}");
    assert_eq!(found[0]["kind"], "engine-reservation");
    assert_eq!(found[0]["severity"], "info");
    assert_eq!(found[0]["action"], "none");
    assert!(found[0]["reason"]
        .as_str()
        .unwrap()
        .contains("no socket backs it"));
}

mod equivalence;
