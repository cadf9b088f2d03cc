//! The whole pipeline on a snapshot recorded from the real engine (`portreap debug
//! snapshot`) holding one instance of every finding kind plus legitimate holders: exactly
//! those findings, on exactly those ports, and nothing on the healthy ones.
//!
//! The recording predates the proofs of ownership; the facts those need (executables,
//! the engine process and its sockets, PID namespaces) were added with what this
//! machine's same binaries show (`/usr/sbin/docker-proxy`, `/usr/sbin/dockerd`).

use std::collections::BTreeSet;

use crate::common::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/snapshot-catalogue.json"
);

fn scan(extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["scan", "--json", "--snapshot", FIXTURE];
    args.extend_from_slice(extra);
    json(&args)
}

#[test]
fn every_kind_is_found_exactly_once_on_its_ports() {
    let doc = scan(&[]);
    let found: BTreeSet<(String, String, String, Vec<u64>)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let mut ports: Vec<u64> = f["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["port"].as_u64().unwrap())
                .collect();
            ports.dedup();
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
                f["container"]["name"].as_str().unwrap_or("-").to_owned(),
                ports,
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String, Vec<u64>)> = [
        ("orphaned-proxy", "leak", "-", 3105),
        ("dead-container", "leak", "s-dead", 3206),
        ("orphaned-compose", "leak", "shop_web_1", 3301),
        ("orphaned-compose", "leak", "oldname_web_1", 3302),
        ("paused-container", "suspect", "s-paused", 3201),
        ("unhealthy-container", "suspect", "s-unhealthy", 3202),
        ("restarting-container", "suspect", "s-restart", 3203),
        ("dormant-binding", "suspect", "s-dormant", 3204),
        ("blocked-start", "info", "s-blocked", 3205),
        ("blocked-start", "info", "app_web_1", 3302),
        ("engine-reservation", "info", "s-reserve", 3207),
    ]
    .into_iter()
    .map(|(k, s, c, p)| (k.to_owned(), s.to_owned(), c.to_owned(), vec![p]))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn legitimate_holders_carry_no_finding() {
    let doc = scan(&["--all"]);
    for port in doc["ports"].as_array().unwrap() {
        let name = port["container"]["name"].as_str().unwrap_or("");
        if matches!(name, "s-holder" | "s-hostnet") || port["owner"]["kind"] == "process" {
            assert_eq!(port["findings"], serde_json::json!([]), "{port:#}");
        }
    }
    // The healthy holder of 3205 is shown next to the container it blocks.
    let holder = entries(&doc, "tcp", 3205);
    assert!(holder
        .iter()
        .any(|p| p["container"]["name"] == "s-holder" && p["bound"] == true));
    assert!(holder
        .iter()
        .any(|p| p["container"]["name"] == "s-blocked" && p["owner"]["via"] == "requested"));
}

#[test]
fn reasons_and_actions_are_actionable() {
    let doc = scan(&[]);
    let by_kind = |kind: &str| -> Vec<serde_json::Value> {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == kind)
            .cloned()
            .collect()
    };
    let proxy = &by_kind("orphaned-proxy")[0];
    assert_eq!(proxy["action"], "kill-process");
    assert_eq!(proxy["pids"].as_array().unwrap().len(), 1);
    assert!(proxy["reason"]
        .as_str()
        .unwrap()
        .contains("to 172.17.0.250:80; no container has that address"));
    let blocked = by_kind("blocked-start");
    assert!(blocked.iter().all(|f| f["action"] == "none"));
    let s_blocked = blocked
        .iter()
        .find(|f| f["container"]["name"] == "s-blocked")
        .unwrap();
    assert!(
        s_blocked["reason"]
            .as_str()
            .unwrap()
            .contains("now held by container s-holder"),
        "{s_blocked:#}"
    );
    let compose = by_kind("orphaned-compose");
    assert!(compose.iter().any(|f| f["reason"]
        .as_str()
        .unwrap()
        .contains("working directory /tmp/cmp/shop no longer exists")));
    assert!(compose.iter().any(|f| f["reason"]
        .as_str()
        .unwrap()
        .contains("superseded by compose project app")));
    let unhealthy = &by_kind("unhealthy-container")[0];
    assert!(
        unhealthy["reason"]
            .as_str()
            .unwrap()
            .contains("has been unhealthy for"),
        "{unhealthy:#}"
    );
    assert_eq!(by_kind("engine-reservation")[0]["action"], "none");
}

#[test]
fn check_exits_1_on_leaks_only() {
    portreap()
        .args(["scan", "--check", "--snapshot", FIXTURE])
        .assert()
        .code(1);
    // Port 3201 carries a suspect only; 3208 is a healthy host-network container.
    portreap()
        .args(["scan", "--check", "--port", "3201", "--snapshot", FIXTURE])
        .assert()
        .code(0);
    portreap()
        .args(["scan", "--check", "--port", "3208", "--snapshot", FIXTURE])
        .assert()
        .code(0);
    portreap()
        .args(["scan", "--check", "--port", "3105", "--snapshot", FIXTURE])
        .assert()
        .code(1);
    // Without --check, leaks do not change the exit status.
    portreap()
        .args(["scan", "--snapshot", FIXTURE])
        .assert()
        .code(0);
}

#[test]
fn table_lists_findings_with_reason_and_action() {
    let out = portreap()
        .args(["scan", "--port", "3105,3205", "--snapshot", FIXTURE])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("2 findings (1 leak, 0 suspect, 1 info)"),
        "{text}"
    );
    assert!(
        text.contains("leak    orphaned-proxy on 0.0.0.0:3105/tcp"),
        "{text}"
    );
    assert!(
        text.contains("action: kill-process: portreap prune --kind orphaned-proxy --port 3105/tcp"),
        "{text}"
    );
    assert!(text.contains("action: none"), "{text}");
    // The findings section (after the table) is wrapped for 100 columns.
    let section = text.split("\n\n").nth(1).expect("a findings section");
    assert!(
        section.lines().all(|l| l.chars().count() <= 100),
        "{section}"
    );
}

/// The catalogue with one change to its facts, written where `scan --snapshot` reads it.
fn variant(change: impl FnOnce(&mut serde_json::Value)) -> (tempfile::NamedTempFile, String) {
    let mut snap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(FIXTURE).unwrap()).unwrap();
    change(&mut snap);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), snap.to_string()).unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    (file, path)
}

fn kinds_of(path: &str) -> BTreeSet<String> {
    json(&["scan", "--json", "--snapshot", path])["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_engine_not_proven_local_judges_no_forwarder_of_this_host() {
    // The same answer, from an endpoint another program relays.
    let (_file, path) = variant(|s| {
        s["engine"]["endpoint"] = "tcp://127.0.0.1:2399".into();
        s["engine"]["process"] = serde_json::Value::Null;
        s["engine"]["locality"] = "no local engine process holds the listening socket".into();
    });
    let kinds = kinds_of(&path);
    assert!(!kinds.contains("orphaned-proxy"), "{kinds:?}");
    assert!(!kinds.contains("engine-reservation"), "{kinds:?}");
    // The containers' own states are still the engine's to tell.
    assert!(kinds.contains("paused-container"), "{kinds:?}");
    let doc = json(&["scan", "--json", "--snapshot", &path, "--port", "3201"]);
    let held: Vec<_> = entries(&doc, "tcp", 3201)
        .into_iter()
        .filter(|e| e["bound"] == true)
        .collect();
    assert_eq!(held.len(), 2, "{doc:#}");
    assert!(
        held.iter().all(|e| e["owner"]["kind"] == "not-judged"),
        "{doc:#}"
    );
}

#[test]
fn a_recorded_proxy_that_runs_another_program_is_a_plain_process() {
    // pid 23289 is the orphaned proxy of 3105; make its executable a user's own file.
    let (_file, path) = variant(|s| {
        let p = &mut s["host"]["processes"]["23289"];
        p["uid"] = 1000.into();
        p["exe"]["path"] = "/home/eve/docker-proxy".into();
        p["exe"]["owner"] = 1000.into();
    });
    assert!(!kinds_of(&path).contains("orphaned-proxy"));
    let doc = json(&["scan", "--json", "--snapshot", &path, "--port", "3105"]);
    let entry = entries(&doc, "tcp", 3105)[0];
    assert_eq!(entry["owner"]["kind"], "process", "{doc:#}");
    assert!(
        entry["owner"]["detail"]
            .as_str()
            .unwrap()
            .contains("calls itself docker-proxy, but it runs /home/eve/docker-proxy"),
        "{doc:#}"
    );
}
