//! Podman's `conmon` forwarders, on a real rootful Podman: Debian's 4.3, its Docker-
//! compatible API on /run/podman/podman.sock, started by `.ci/setup`; or the engine
//! `PORTREAP_TEST_PODMAN` names (`.ci/test`'s phase 4 sets it to Podman 5 in a chroot,
//! driven by this host's podman as a remote client).

use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// The Podman engine under test.
fn sock() -> String {
    std::env::var("PORTREAP_TEST_PODMAN")
        .unwrap_or_else(|_| "unix:///run/podman/podman.sock".into())
}

fn conf() -> String {
    format!(
        "{}/docker/podman-containers.conf",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The podman CLI, on the engine under test: the local one for the host's, else a remote
/// client of the tested socket.
fn podman_cli() -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", conf());
    if let Ok(url) = std::env::var("PORTREAP_TEST_PODMAN") {
        cmd.args(["--url", &url]);
    }
    cmd
}

fn podman(args: &[&str]) -> String {
    let out = podman_cli().args(args).output().expect("run podman");
    assert!(
        out.status.success(),
        "podman {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn require_podman() -> bool {
    let up = std::path::Path::new(sock().trim_start_matches("unix://")).exists()
        && podman_cli()
            .args(["image", "exists", &format!("localhost/{}", image())])
            .status()
            .is_ok_and(|s| s.success());
    if !up && std::env::var("PORTREAP_REQUIRE_PODMAN").as_deref() == Ok("1") {
        panic!("PORTREAP_REQUIRE_PODMAN=1 but the podman service or test image is missing; run `bash .ci/setup`");
    }
    if !up {
        eprintln!("skipping: no podman service (set PORTREAP_REQUIRE_PODMAN=1 to make this fatal)");
    }
    up
}

/// Removes the podman container on drop, resuming its conmon first if a test stopped it.
struct PodmanContainer(String);

impl Drop for PodmanContainer {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-CONT", "-f", &format!("conmon.* -n {} ", self.0)])
            .status();
        let _ = podman_cli().args(["rm", "-f", "-t", "0", &self.0]).output();
    }
}

fn run(name: &str, port: u16, detach_only_create: bool) -> PodmanContainer {
    let guard = PodmanContainer(name.to_owned());
    let verb = if detach_only_create { "create" } else { "run" };
    let mut args = vec![verb];
    if !detach_only_create {
        args.push("-d");
    }
    let publish = format!("{port}:80");
    let img = format!("localhost/{}", image());
    args.extend([
        "--name", name, "-p", &publish, &img, "httpd", "-f", "-p", "80",
    ]);
    podman(&args);
    guard
}

fn scan(host: &str, port: u16) -> serde_json::Value {
    json(&[
        "scan",
        "--json",
        "--host",
        host,
        "--port",
        &port.to_string(),
    ])
}

#[test]
fn a_running_podman_container_is_found_through_conmon() {
    if !require_podman() {
        return;
    }
    let name = unique("pod");
    let port = free_port();
    let _c = run(&name, port, false);
    let doc = eventually(Duration::from_secs(10), || {
        let doc = scan(&sock(), port);
        (!entries(&doc, "tcp", port).is_empty()).then_some(doc)
    })
    .expect("conmon never listened");
    assert_eq!(doc["engine"]["reachable"], true);
    let found = entries(&doc, "tcp", port);
    assert_eq!(found.len(), 1, "{doc:#}");
    assert_eq!(found[0]["process"], "conmon");
    assert_eq!(found[0]["owner"]["kind"], "container");
    assert_eq!(found[0]["owner"]["via"], "conmon");
    assert_eq!(found[0]["container"]["name"], name.as_str());
    assert_eq!(
        doc["findings"],
        serde_json::json!([]),
        "a running container: {doc:#}"
    );

    // Asked about Docker instead, the conmon is Podman's business: named, never judged.
    if require_engine() {
        let doc = json(&["scan", "--json", "--port", &port.to_string()]);
        let found = entries(&doc, "tcp", port);
        assert_eq!(found[0]["owner"]["kind"], "not-judged", "{doc:#}");
        let detail = found[0]["owner"]["detail"].as_str().unwrap();
        assert!(
            detail.contains("the Podman engine pid") && detail.contains(&sock()),
            "{detail}"
        );
        assert_eq!(doc["findings"], serde_json::json!([]));
    }
}

#[test]
fn a_created_podman_container_reserves_nothing() {
    if !require_podman() {
        return;
    }
    let name = unique("podcreated");
    let port = free_port();
    let _c = run(&name, port, true);
    let doc = scan(&sock(), port);
    assert_eq!(doc["ports"], serde_json::json!([]), "{doc:#}");
    assert_eq!(doc["findings"], serde_json::json!([]));
}

#[test]
fn a_conmon_that_outlived_its_container_is_an_orphaned_proxy_and_is_pruned() {
    if !require_podman() {
        return;
    }
    let name = unique("podorphan");
    let port = free_port();
    let _c = run(&name, port, false);
    let conmon = eventually(Duration::from_secs(10), || {
        let doc = scan(&sock(), port);
        entries(&doc, "tcp", port)
            .first()
            .map(|e| e["pids"][0].as_u64().unwrap())
    })
    .expect("conmon never listened");
    // Freeze conmon, then stop the container: its process dies, Podman marks it stopping,
    // and the frozen conmon keeps holding the published port.
    assert!(Command::new("kill")
        .args(["-STOP", &conmon.to_string()])
        .status()
        .unwrap()
        .success());
    let _ = podman_cli().args(["stop", "-t", "1", &name]).output();
    // Podman may take a moment to record the stop while its conmon is frozen.
    let mut doc = serde_json::Value::Null;
    let _ = eventually(Duration::from_secs(10), || {
        doc = scan(&sock(), port);
        (!findings_on(&doc, port).is_empty()).then_some(())
    });
    let f = findings_on(&doc, port);
    assert_eq!(f.len(), 1, "{doc:#}");
    assert_eq!(f[0]["kind"], "orphaned-proxy");
    assert_eq!(f[0]["action"], "kill-process");
    assert_eq!(f[0]["pids"], serde_json::json!([conmon]));
    let reason = f[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "conmon pid {conmon} holds 0.0.0.0:{port} for Podman container {name}, which is"
        )),
        "{reason}"
    );

    let (code, doc) = prune(&["--yes", "--host", &sock(), "--port", &port.to_string()]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["actions"][0]["outcome"], "done");
    assert_eq!(doc["actions"][0]["port_free_after"], true);
}

#[test]
fn a_docker_context_pointing_at_a_second_socket() {
    if !require_podman() {
        return;
    }
    // A context made by the docker CLI itself, pointing at Podman's socket.
    let config = tempfile::tempdir().unwrap();
    let out = Command::new("docker")
        .args([
            "context",
            "create",
            "second",
            "--docker",
            &format!("host={}", sock()),
        ])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    assert_success(&out);
    let name = unique("ctx");
    let port = free_port();
    let _c = run(&name, port, false);
    let check = |doc: &serde_json::Value, source: &str| {
        assert_eq!(doc["engine"]["endpoint"], sock(), "{doc:#}");
        assert_eq!(doc["engine"]["source"], source);
        assert_eq!(doc["engine"]["kind"], "Podman");
        assert_eq!(
            entries(doc, "tcp", port)[0]["container"]["name"],
            name.as_str()
        );
    };
    let scan_with = |args: &[&str], envs: &[(&str, &str)]| -> serde_json::Value {
        let mut cmd = portreap();
        cmd.env("DOCKER_CONFIG", config.path());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd
            .args(args)
            .args(["scan", "--json", "--port", &port.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let doc = eventually(Duration::from_secs(10), || {
        let doc = scan_with(&["--context", "second"], &[]);
        (!entries(&doc, "tcp", port).is_empty()).then_some(doc)
    })
    .expect("conmon never listened");
    check(&doc, "context second");
    check(
        &scan_with(&[], &[("DOCKER_CONTEXT", "second")]),
        "context second",
    );
    // `docker context use` sets currentContext in config.json: portreap follows it.
    let out = Command::new("docker")
        .args(["context", "use", "second"])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    check(&scan_with(&[], &[]), "context second");
    // And --host still wins, as for the docker CLI.
    let doc = scan_with(&["--host", "unix:///var/run/docker.sock"], &[]);
    assert_eq!(doc["engine"]["source"], "--host");
}

/// The "two daemons" leak: Podman holds a port, a Docker container cannot start on it;
/// only a scan of both engines can say who is in the way. Freeing the port acts through
/// the engine that owns the holder.
#[test]
fn all_engines_see_the_two_daemons_leak_and_free_acts_through_the_right_engine() {
    if !require_podman() || !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let holder = unique("podholder");
    let blocked = unique("dockblocked");
    let port = free_port();
    let _c = run(&holder, port, false);
    cleanup.container(&blocked);
    eventually(Duration::from_secs(10), || {
        let doc = scan(&sock(), port);
        (!entries(&doc, "tcp", port).is_empty()).then_some(())
    })
    .expect("conmon never listened");
    let run = Command::new("docker")
        .args([
            "run",
            "-d",
            "--name",
            &blocked,
            "-p",
            &format!("{port}:80"),
            &image(),
            "httpd",
            "-f",
            "-p",
            "80",
        ])
        .output()
        .unwrap();
    assert!(!run.status.success(), "Podman holds the port");

    // Docker alone: the holder is a conmon of an engine not asked.
    let doc = json(&["scan", "--json", "--port", &port.to_string()]);
    let f = findings_on(&doc, port);
    assert_eq!(f.len(), 1);
    assert!(
        f[0]["reason"]
            .as_str()
            .unwrap()
            .contains("now held by conmon"),
        "{doc:#}"
    );

    // Every engine: the Podman container is named as the holder.
    let doc = json(&[
        "scan",
        "--json",
        "--all-engines",
        "--port",
        &port.to_string(),
    ]);
    assert!(
        doc["engines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "Podman" && e["endpoint"] == sock()),
        "{doc:#}"
    );
    let held = entries(&doc, "tcp", port)
        .into_iter()
        .find(|e| e["bound"] == true)
        .unwrap()
        .clone();
    assert_eq!(held["container"]["name"], holder.as_str());
    assert_eq!(held["container"]["engine"], sock());
    assert_eq!(held["owner"]["via"], "conmon");
    let f = findings_on(&doc, port);
    assert_eq!(f.len(), 1, "{doc:#}");
    assert_eq!(f[0]["kind"], "blocked-start");
    let reason = f[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("container {blocked} (Docker) could not start")),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("now held by container {holder} (Podman)")),
        "{reason}"
    );

    // free goes to Podman for the Podman container.
    let out = portreap()
        .args([
            "free",
            "--all-engines",
            "--yes",
            "--json",
            "--grace",
            "1s",
            &format!("{port}/tcp"),
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        panic!("free --json said no JSON ({e}): {stderr}")
    });
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    let action = &doc["actions"][0];
    assert_eq!(action["container"]["name"], holder.as_str());
    assert_eq!(action["outcome"], "done");
    let gone = podman_cli()
        .args(["container", "exists", &holder])
        .status()
        .unwrap();
    assert!(!gone.success(), "the Podman container was removed");
}
