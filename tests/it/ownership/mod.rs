//! Proof of ownership on real engines: a forwarder is judged only by the engine that
//! started it, a process is a forwarder only if the kernel's facts say so, and a path
//! that cannot be read is never taken for gone.
//!
//! The second engine is the `dockerd` that `.ci/setup` starts beside the default one (own
//! data and exec roots, bridge `prt-br2`) in a mount namespace of its own, its socket on a
//! private tmpfs, as an engine in a chroot or another namespace runs; Podman is the one of
//! the Podman tests.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

/// Where the second engine writes its PID; its socket is on a tmpfs of its own mount
/// namespace, reached through `/proc/PID/root`.
const SECOND_PIDFILE: &str = "/run/portreap-second.pid";
const PODMAN_SOCK: &str = "unix:///run/podman/podman.sock";

fn second_sock() -> String {
    let pid = std::fs::read_to_string(SECOND_PIDFILE).unwrap_or_default();
    format!("/proc/{}/root/run/portreap-second/docker.sock", pid.trim())
}

fn second_url() -> String {
    format!("unix://{}", second_sock())
}

/// Runs `docker` against the second engine and returns stdout; panics on failure.
fn second(args: &[&str]) -> String {
    let url = second_url();
    let mut all = vec!["-H", url.as_str()];
    all.extend_from_slice(args);
    docker(&all)
}

/// Whether the second engine answers; with `PORTREAP_REQUIRE_DOCKER=1` it must.
fn require_second() -> bool {
    if !require_engine() {
        return false;
    }
    let up = Command::new("docker")
        .args(["-H", &second_url(), "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !up && std::env::var("PORTREAP_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!(
            "PORTREAP_REQUIRE_DOCKER=1 but the second engine at {} does not answer; run `bash .ci/setup`",
            second_sock()
        );
    }
    up
}

/// Containers of the second engine, removed however the test ends.
#[derive(Default)]
struct SecondCleanup(Vec<String>);

impl Drop for SecondCleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("docker")
                .args(["-H", &second_url(), "rm", "-f", name])
                .output();
        }
    }
}

fn second_httpd(cleanup: &mut SecondCleanup, name: &str, port: u16) {
    cleanup.0.push(name.to_owned());
    let publish = format!("{port}:80");
    second(&[
        "run",
        "-d",
        "--name",
        name,
        "-p",
        &publish,
        &image(),
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
}

fn spec(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The one bound entry of `port`'s IPv4 wildcard socket.
fn v4_entry(doc: &Value, port: u16) -> Value {
    entries(doc, "tcp", port)
        .into_iter()
        .find(|e| e["ip"] == "0.0.0.0" && e["bound"] == true)
        .unwrap_or_else(|| panic!("no 0.0.0.0:{port} socket: {doc:#}"))
        .clone()
}

/// Whether every socket of `ports` has an owner. A socket bound between portreap's
/// descriptor walk and its socket dump is `unknown` for that one scan; polling past it
/// keeps the assertions about judging, not about that race.
fn owned(doc: &Value, ports: &[u16]) -> bool {
    ports.iter().all(|&port| {
        let es = entries(doc, "tcp", port);
        !es.is_empty() && es.iter().all(|e| e["owner"]["kind"] != "unknown")
    })
}

/// The IPv4 sockets of `ports` are another engine's, or not judged from here: no finding.
fn assert_not_judged(doc: &Value, ports: &[u16]) {
    for &port in ports {
        assert_eq!(
            v4_entry(doc, port)["owner"]["kind"],
            "not-judged",
            "{doc:#}"
        );
        assert!(findings_on(doc, port).is_empty(), "{doc:#}");
    }
}

fn state_of(name: &str) -> String {
    docker(&["inspect", "--format", "{{.State.Status}}", name])
}

/// The pids a plan or report acts on, by action.
fn planned(doc: &Value) -> Vec<(String, Value)> {
    doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["action"].as_str().unwrap().to_owned(), a["pids"].clone()))
        .collect()
}

#[test]
fn each_engine_judges_only_its_own_proxies() {
    if !require_second() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let mut theirs = SecondCleanup::default();
    let base = free_ports(3);
    let (pa, pb, ps) = (base, base + 1, base + 2);
    let a = unique("own-a");
    httpd(&mut cleanup, &a, pa);
    let b = unique("own-b");
    second_httpd(&mut theirs, &b, pb);
    // A real docker-proxy no engine started: the classic leak, whoever is asked.
    let stale = stale_proxy("tcp", "0.0.0.0", ps, "172.17.255.77");
    let stale_pid = stale.0.id();
    let ports = spec(&[pa, pb, ps]);
    wait_listening(ps);

    // From the default engine: the second's proxies are another engine's, never a leak.
    let doc = json(&["scan", "--json", "--port", &ports]);
    assert_eq!(v4_entry(&doc, pa)["container"]["name"], a.as_str());
    let theirs_entry = v4_entry(&doc, pb);
    assert_eq!(theirs_entry["owner"]["kind"], "not-judged", "{doc:#}");
    let detail = theirs_entry["owner"]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("at {}, which was not asked", second_url())),
        "{detail}"
    );
    assert!(findings_on(&doc, pb).is_empty(), "{doc:#}");
    assert!(findings_on(&doc, pa).is_empty(), "{doc:#}");
    let stale_findings = findings_on(&doc, ps);
    assert_eq!(stale_findings.len(), 1, "{doc:#}");
    assert_eq!(stale_findings[0]["kind"], "orphaned-proxy");

    // From the second engine: the same, the other way round.
    let url = second_url();
    let doc = json(&["--host", &url, "scan", "--json", "--port", &ports]);
    assert_eq!(v4_entry(&doc, pb)["container"]["name"], b.as_str());
    assert_eq!(v4_entry(&doc, pa)["owner"]["kind"], "not-judged", "{doc:#}");
    assert!(findings_on(&doc, pa).is_empty(), "{doc:#}");
    assert_eq!(findings_on(&doc, ps)[0]["kind"], "orphaned-proxy");

    // Neither plans anything but the stale proxy.
    for host in [None, Some(url.as_str())] {
        let mut args = vec!["--dry-run", "--port", &ports];
        if let Some(h) = host {
            args.splice(0..0, ["--host", h]);
        }
        let (code, plan) = prune(&args);
        assert_eq!(code, 1, "a dry run with work: {plan:#}");
        assert_eq!(
            planned(&plan),
            [("kill-process".to_owned(), serde_json::json!([stale_pid]))],
            "{host:?}: {plan:#}"
        );
    }

    // `why` names the engine, and its suggestion works when pasted.
    let out = portreap().args(["why", &pb.to_string()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let words: Vec<&str> = text.split_whitespace().collect();
    let suggested = words
        .windows(2)
        .find(|w| w[0] == "--host")
        .map(|w| w[1])
        .unwrap_or_else(|| panic!("no --host suggestion: {text}"));
    assert_eq!(suggested, url);
    let out = portreap()
        .args(["--host", suggested, "why", &pb.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("is held by container {b}")),
        "{text}"
    );

    // free from the default engine refuses the other engine's port, naming it.
    let out = portreap()
        .args(["free", &pb.to_string(), "--yes", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["actions"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    assert!(
        report["refused"].to_string().contains("not judged"),
        "{report:#}"
    );

    // Every engine: both attributed, each to its own engine, the second found in the
    // process table and reached through its own mount namespace.
    let doc = json(&["--all-engines", "scan", "--json", "--port", &ports]);
    let found = doc["host"]["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["sockets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == url.as_str())
        })
        .unwrap_or_else(|| panic!("the second engine is not found: {doc:#}"))
        .clone();
    assert_eq!(found["own_mount_ns"], true, "{found:#}");
    assert_eq!(found["asked"], true, "{found:#}");
    assert_eq!(v4_entry(&doc, pa)["container"]["name"], a.as_str());
    let entry = v4_entry(&doc, pb);
    assert_eq!(entry["container"]["name"], b.as_str(), "{doc:#}");
    assert_eq!(entry["container"]["engine"], url.as_str());
    assert!(findings_on(&doc, pb).is_empty(), "{doc:#}");

    // Acting: only the stale proxy goes; the second engine's container keeps its port.
    let (code, report) = prune(&["--yes", "--port", &ports]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(planned(&report).len(), 1, "{report:#}");
    assert_eq!(report["actions"][0]["port_free_after"], true);
    assert_eq!(
        second(&["inspect", "--format", "{{.State.Status}}", &b]),
        "running"
    );
    let doc = json(&["--host", &url, "scan", "--json", "--port", &pb.to_string()]);
    assert_eq!(v4_entry(&doc, pb)["container"]["name"], b.as_str());
    drop(stale);
}

#[test]
fn a_tcp_endpoint_that_another_program_forwards_judges_no_local_forwarder() {
    if !require_second() {
        return;
    }
    let mut theirs = SecondCleanup::default();
    let base = free_ports(3);
    let (pb, ps, relay) = (base, base + 1, base + 2);
    let b = unique("own-tcp");
    second_httpd(&mut theirs, &b, pb);
    let stale = stale_proxy("tcp", "0.0.0.0", ps, "172.17.255.78");
    let socat = ChildGuard(
        Command::new("socat")
            .args([
                &format!("TCP-LISTEN:{relay},bind=127.0.0.1,fork,reuseaddr"),
                &format!("UNIX-CONNECT:{}", second_sock()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat"),
    );
    let url = format!("tcp://127.0.0.1:{relay}");
    let ports = spec(&[pb, ps]);
    let doc = eventually(Duration::from_secs(10), || {
        let doc = json(&["--host", &url, "scan", "--json", "--port", &ports]);
        (doc["engine"]["reachable"] == true && owned(&doc, &[pb, ps])).then_some(doc)
    })
    .expect("the relayed engine answers");
    assert_eq!(doc["engine"]["process"], Value::Null, "{doc:#}");
    assert!(
        doc["engine"]["locality"]
            .as_str()
            .unwrap()
            .contains("another program forwards it"),
        "{doc:#}"
    );
    assert_not_judged(&doc, &[pb, ps]);
    let (code, report) = prune(&["--host", &url, "--yes", "--port", &ports]);
    assert_eq!(code, 0, "{report:#}");
    assert!(planned(&report).is_empty(), "{report:#}");
    let doc = scan_port(ps);
    assert_eq!(
        findings_on(&doc, ps)[0]["kind"],
        "orphaned-proxy",
        "still there"
    );
    drop((socat, stale));
}

#[test]
fn podmans_socket_alone_plans_nothing_for_dockers_proxies() {
    if !require_engine() {
        return;
    }
    let podman_up = Command::new("curl")
        .args([
            "-sf",
            "--unix-socket",
            "/run/podman/podman.sock",
            "http://d/_ping",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !podman_up {
        assert!(
            std::env::var("PORTREAP_REQUIRE_PODMAN").as_deref() != Ok("1"),
            "PORTREAP_REQUIRE_PODMAN=1 but Podman's service does not answer"
        );
        return;
    }
    let mut cleanup = Cleanup::default();
    let base = free_ports(2);
    let (pa, ps) = (base, base + 1);
    let a = unique("own-pod");
    httpd(&mut cleanup, &a, pa);
    let stale = stale_proxy("tcp", "0.0.0.0", ps, "172.17.255.79");
    let ports = spec(&[pa, ps]);
    wait_listening(ps);
    let doc = eventually(Duration::from_secs(10), || {
        let doc = json(&["--host", PODMAN_SOCK, "scan", "--json", "--port", &ports]);
        owned(&doc, &[pa, ps]).then_some(doc)
    })
    .expect("every socket owned");
    assert_eq!(doc["engine"]["kind"], "Podman", "{doc:#}");
    assert_not_judged(&doc, &[pa, ps]);
    let (_, plan) = prune(&["--host", PODMAN_SOCK, "--dry-run", "--port", &ports]);
    assert!(planned(&plan).is_empty(), "{plan:#}");
    let out = portreap()
        .args([
            "--host",
            PODMAN_SOCK,
            "free",
            &pa.to_string(),
            "--yes",
            "--json",
        ])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(planned(&report).is_empty(), "{report:#}");
    assert_eq!(state_of(&a), "running");
    drop(stale);
}

#[test]
fn an_unreadable_compose_directory_is_never_judged_gone() {
    if !require_engine() || !is_root() {
        return;
    }
    let docker_gid = docker_gid();
    let mut cleanup = Cleanup::default();
    // Another user's 0700 home: root's here.
    let home = tempfile::Builder::new()
        .prefix("prt-home-")
        .tempdir()
        .unwrap();
    std::os::unix::fs::chown(home.path(), Some(0), Some(0)).unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let dir = home.path().join("shop");
    std::fs::create_dir(&dir).unwrap();
    let project = unique("own-cmp").replace('-', "");
    cleanup.compose(&project, &dir);
    let port = free_port();
    compose_up_ok(&dir, Some(&project), port);
    let as_user = |args: &[&str]| -> (Option<i32>, Value) {
        let out = as_nobody(
            Some(docker_gid.trim()),
            assert_cmd::cargo::cargo_bin("portreap"),
        )
        .args(args)
        .env("HOME", "/nonexistent")
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
        let doc = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), doc)
    };
    let p = port.to_string();
    // The root named explicitly: where portreap itself runs in a container (as on the
    // project's machines) it otherwise judges compose paths only if it can see the
    // engine's own files, which this user cannot.
    let (code, doc) = as_user(&[
        "--host-root",
        "/proc/self/root",
        "scan",
        "--json",
        "--port",
        &p,
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(
        doc["engine"]["reachable"], true,
        "the docker group: {doc:#}"
    );
    assert_eq!(doc["host"]["compose_dirs_checked"], true, "{doc:#}");
    let unjudged = doc["host"]["compose_unjudged"].to_string();
    assert!(unjudged.contains(dir.to_str().unwrap()), "{doc:#}");
    assert!(unjudged.contains("Permission denied"), "{doc:#}");
    assert!(
        !findings_on(&doc, port)
            .iter()
            .any(|f| f["kind"] == "orphaned-compose"),
        "{doc:#}"
    );
    let (_, plan) = as_user(&[
        "--host-root",
        "/proc/self/root",
        "prune",
        "--dry-run",
        "--json",
        "--min-age",
        "0s",
        "--kind",
        "orphaned-compose",
        "--port",
        &p,
    ]);
    assert!(planned(&plan).is_empty(), "{plan:#}");
    // Root reads it: it exists. Gone, it is judged gone.
    let doc = scan_port(port);
    assert!(findings_on(&doc, port).is_empty(), "{doc:#}");
    std::fs::remove_dir_all(&dir).unwrap();
    let doc = wait_for_finding(port, "orphaned-compose");
    assert!(!findings_on(&doc, port).is_empty());
}

/// Asked about another engine with `--host`, every suggestion names that engine: pasted
/// into a shell whose DOCKER_HOST says nothing, it acts there and nowhere else.
#[test]
fn suggestions_for_another_engine_name_it_when_pasted() {
    if !require_second() {
        return;
    }
    let mut cleanup = SecondCleanup::default();
    let name = unique("elsewhere");
    let port = free_port();
    second_httpd(&mut cleanup, &name, port);
    let url = second_url();
    let doc = json(&["--host", &url, "why", &port.to_string(), "--json"]);
    let next: Vec<&str> = doc["why"][0]["next"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        next.iter()
            .any(|n| n.starts_with("portreap --host ") && n.contains(&format!("free {port}/tcp"))),
        "{next:?}"
    );
    let stop = next
        .iter()
        .find(|n| n.starts_with("docker -H ") && n.contains(" stop "))
        .unwrap_or_else(|| panic!("{next:?}"));
    pasted(stop);
    assert_eq!(
        second(&["inspect", "--format", "{{.State.Running}}", &name]),
        "false",
        "{stop} stopped the container on the engine asked"
    );
}

fn wait_listening(port: u16) -> Value {
    let mut last = Value::Null;
    eventually(Duration::from_secs(10), || {
        last = scan_port(port);
        entries(&last, "tcp", port)
            .iter()
            .any(|e| e["bound"] == true && !e["pids"].as_array().unwrap().is_empty())
            .then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("nothing listens on {port}: {last:#}"))
}

mod forged;
mod handed;
