//! An engine whose answers bollard's strict models reject (a container state they do not
//! know, as older Podman reports `stopped`): the listing must survive, with the state kept;
//! and one whose inspect of a listed container fails: the answer is partial, said so.
//! The engine here is a small fake on a unix socket, answering canned, Podman-shaped JSON.

use crate::common::*;
use serde_json::json;

const RUNNING: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const STOPPED: &str = "2222222222222222222222222222222222222222222222222222222222222222";
/// Listed, but its inspect fails (with `broken`).
const BROKEN: &str = "3333333333333333333333333333333333333333333333333333333333333333";

fn answer(path: &str, broken: bool) -> (u16, String) {
    let container = |id: &str, name: &str, state: &str| {
        json!({
            "Id": id, "Name": format!("/{name}"), "Created": "2026-11-25T10:00:00Z",
            "State": {"Status": state, "Running": state == "running", "Pid": 0, "ExitCode": 0,
                      "StartedAt": "2026-11-25T10:00:01Z", "FinishedAt": "0001-01-01T00:00:00Z"},
            "Config": {"Image": "localhost/app:1", "Labels": {}},
            "HostConfig": {"NetworkMode": "bridge", "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
                           "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "3999"}]}},
            "NetworkSettings": {"Ports": {}, "Networks": {}}
        })
    };
    let body = match path.split('?').next().unwrap_or("") {
        "/version" => json!({"Version": "4.0.0", "ApiVersion": "1.41",
                             "Components": [{"Name": "Podman Engine", "Version": "4.0.0"}]}),
        "/info" => json!({"DockerRootDir": "/nonexistent/storage"}),
        "/containers/json" if broken => json!([
            {"Id": RUNNING, "Names": ["/web"], "Image": "localhost/app:1", "State": "running", "Ports": []},
            {"Id": BROKEN, "Names": ["/flaky"], "Image": "localhost/app:1", "State": "exited", "Ports": []}
        ]),
        "/containers/json" => json!([
            {"Id": RUNNING, "Names": ["/web"], "Image": "localhost/app:1", "State": "running", "Ports": []},
            {"Id": STOPPED, "Names": ["/old"], "Image": "localhost/app:1", "State": "stopped", "Ports": []}
        ]),
        p if p == format!("/containers/{BROKEN}/json") => {
            return (500, json!({"message": "layer does not exist"}).to_string())
        }
        p if p == format!("/containers/{RUNNING}/json") => container(RUNNING, "web", "running"),
        p if p == format!("/containers/{STOPPED}/json") => container(STOPPED, "old", "stopped"),
        _ => return (404, json!({"message": "no such thing"}).to_string()),
    };
    (200, body.to_string())
}

#[test]
fn unknown_container_states_do_not_fail_the_listing() {
    let (_dir, host) = fake_engine(|path| answer(path, false));

    let out = portreap()
        .args(["debug", "snapshot", "--host", &host])
        .output()
        .unwrap();
    assert_success(&out);
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["engine"]["reachable"], true, "{snap:#}");
    assert_eq!(snap["engine"]["error"], serde_json::Value::Null, "{snap:#}");
    assert_eq!(snap["engine"]["kind"], "Podman");
    let states: Vec<(&str, &str)> = snap["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("old", "stopped"), ("web", "running")]);

    // scan works on it too, and the stopped container holds nothing.
    let doc = json(&["scan", "--json", "--host", &host, "--port", "3999"]);
    assert_eq!(doc["engine"]["reachable"], true);
    assert!(findings_on(&doc, 3999).is_empty(), "{doc:#}");
}

#[test]
fn a_failed_inspect_makes_the_answer_partial_and_prune_refuses() {
    let (_dir, host) = fake_engine(|path| answer(path, true));

    // The container is kept from the listing, and the answer says it is partial.
    let doc = json(&["scan", "--json", "--all", "--host", &host]);
    let error = doc["engine"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot inspect container 333333333333"),
        "{doc:#}"
    );
    let out = portreap()
        .args(["debug", "snapshot", "--host", &host])
        .output()
        .unwrap();
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        snap["containers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "flaky"),
        "{snap:#}"
    );
    // Acting on a partial answer is refused, before anything is planned.
    for verb in [&["prune", "--dry-run"][..], &["free", "3999", "--dry-run"]] {
        let out = portreap()
            .args(["--host", &host])
            .args(verb)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{verb:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("acting needs the engine's whole answer"),
            "{stderr}"
        );
    }
}

#[test]
fn unknown_container_states_survive_over_tcp_and_tls_too() {
    let (_dir, host) = fake_engine(|path| answer(path, false));
    let socket = std::path::Path::new(host.strip_prefix("unix://").unwrap());
    let certs = tempfile::tempdir().unwrap();
    crate::tls::make_certs(certs.path());
    for tls in [None, Some(certs.path())] {
        let (_socat, url) = crate::tls::front(socket, tls);
        let mut cmd = portreap();
        if let Some(dir) = tls {
            cmd.env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", dir);
        }
        let out = cmd
            .args(["debug", "snapshot", "--host", &url])
            .output()
            .unwrap();
        let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(snap["engine"]["reachable"], true, "{tls:?}: {snap:#}");
        assert_eq!(snap["engine"]["error"], serde_json::Value::Null, "{snap:#}");
        let old = snap["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "old");
        assert_eq!(
            old.map(|c| &c["state"]),
            Some(&json!("stopped")),
            "{snap:#}"
        );
    }
}

/// A slow engine must not age its containers: ages are measured against the clock read
/// before the engine was asked, so a dead container one second old, whose inspect takes
/// three, is still younger than `--min-age 2s` (measured at the end of the facts, it
/// passed for four seconds old).
#[test]
fn a_slow_engine_does_not_make_young_containers_look_old() {
    const DEAD: &str = "4444444444444444444444444444444444444444444444444444444444444444";
    let born = std::sync::Mutex::new(None::<i64>);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let (_dir, host) = fake_engine(move |path| {
        let body = match path.split('?').next().unwrap_or("") {
            "/version" => json!({"Version": "20.10.24", "ApiVersion": "1.41"}),
            "/containers/json" => {
                let created = now() - 1;
                *born.lock().unwrap() = Some(created);
                json!([{"Id": DEAD, "Names": ["/young"], "Image": "app:1", "State": "dead",
                        "Created": created, "Ports": []}])
            }
            p if p == format!("/containers/{DEAD}/json") => {
                std::thread::sleep(std::time::Duration::from_secs(3));
                let created = born.lock().unwrap().unwrap_or_else(now);
                let created = portreap_time(created);
                json!({
                    "Id": DEAD, "Name": "/young", "Created": created,
                    "State": {"Status": "dead", "Running": false, "Pid": 0, "ExitCode": 0,
                              "StartedAt": created, "FinishedAt": created},
                    "Config": {"Image": "app:1", "Labels": {}},
                    "HostConfig": {"NetworkMode": "bridge", "RestartPolicy": {"Name": "no"},
                                   "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "3998"}]}},
                    "NetworkSettings": {"Ports": {}, "Networks": {}}
                })
            }
            _ => return (404, json!({"message": "no such thing"}).to_string()),
        };
        (200, body.to_string())
    });
    let out = portreap()
        .args([
            "prune",
            "--dry-run",
            "--json",
            "--min-age",
            "2s",
            "--host",
            &host,
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["actions"], json!([]), "{doc:#}");
    let reason = doc["kept"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.ends_with("younger than --min-age 2s: it may still be starting"),
        "{doc:#}"
    );
}

/// Seconds since the epoch as the engine writes a time (RFC 3339, UTC).
fn portreap_time(unix: i64) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{unix}"),
            "+%Y-%m-%dT%H:%M:%S.000000000Z",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
