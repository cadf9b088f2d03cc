//! Phase two of the suite: the engine restarted with `--userland-proxy=false`, where
//! `dockerd` itself holds one reserving socket per binding and no docker-proxy exists.
//! `.ci/test` restarts the engine and runs this file with
//! `PORTREAP_ENGINE_MODE=no-userland-proxy`; in the ordinary run it has nothing to test.

use crate::common::*;

fn in_phase() -> bool {
    if std::env::var("PORTREAP_ENGINE_MODE").as_deref() != Ok("no-userland-proxy") {
        eprintln!("skipping: runs in the --userland-proxy=false phase of .ci/test");
        return false;
    }
    assert!(
        require_engine(),
        "the no-userland-proxy phase needs the engine"
    );
    // The default engine, by its pidfile: a second engine runs beside it.
    let pid = std::fs::read_to_string("/var/run/docker.pid").expect("the engine's pidfile");
    let args = std::fs::read(format!("/proc/{}/cmdline", pid.trim()))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .expect("a dockerd process");
    assert!(
        args.contains("--userland-proxy=false"),
        "dockerd runs as `{args}`"
    );
    true
}

#[test]
fn engine_held_sockets_belong_to_their_container() {
    if !in_phase() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("noproxy");
    let (tcp, udp) = (free_port(), free_port());
    run_container(
        &mut cleanup,
        &name,
        &["-p", &format!("{tcp}:80"), "-p", &format!("{udp}:81/udp")],
        &["httpd", "-f", "-p", "80"],
    );
    let doc = json(&["scan", "--json", "--port", &format!("{tcp}/tcp,{udp}/udp")]);
    for (proto, port) in [("tcp", tcp), ("udp", udp)] {
        let found = entries(&doc, proto, port);
        // One socket, on 0.0.0.0, held by dockerd; the engine's `::` binding is backed by it.
        assert_eq!(found.len(), 1, "{proto}/{port}: {doc:#}");
        let entry = found[0];
        assert_eq!(entry["ip"], "0.0.0.0");
        assert_eq!(entry["bound"], true);
        assert_eq!(entry["process"], "dockerd");
        assert_eq!(entry["owner"]["kind"], "container");
        assert_eq!(entry["owner"]["via"], "engine");
        assert_eq!(entry["container"]["name"], name.as_str());
        assert_eq!(entry["findings"], serde_json::json!([]));
    }
    assert_eq!(
        doc["findings"],
        serde_json::json!([]),
        "a healthy holder: {doc:#}"
    );
}

#[test]
fn a_paused_containers_finding_applies_but_never_targets_dockerd() {
    if !in_phase() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("noproxypause");
    let port = free_port();
    httpd(&mut cleanup, &name, port);
    docker(&["pause", &name]);
    let doc = scan_port(port);
    let found = findings_on(&doc, port);
    assert_eq!(found.len(), 1, "{doc:#}");
    let f = found[0];
    assert_eq!(f["kind"], "paused-container");
    assert_eq!(f["action"], "remove-container");
    assert_eq!(f["container"]["name"], name.as_str());
    assert_eq!(
        f["pids"],
        serde_json::json!([]),
        "dockerd is never a target"
    );
    let entry = entries(&doc, "tcp", port);
    assert_eq!(entry[0]["process"], "dockerd");
    assert_eq!(
        entry[0]["findings"],
        serde_json::json!(["paused-container"])
    );
}
