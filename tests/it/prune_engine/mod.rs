//! `prune` on the real engine. Every prune here is scoped (by label, project or port) to
//! what its test created, because tests share the host with whatever else runs there.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

fn exists(name: &str) -> bool {
    Command::new("docker")
        .args(["inspect", name])
        .output()
        .unwrap()
        .status
        .success()
}

fn state(name: &str) -> String {
    docker(&["inspect", "-f", "{{.State.Status}}", name])
}

fn label(tag: &str) -> String {
    format!("portreap.test={tag}")
}

/// A container of this test: `--label portreap.test=<tag>`.
fn labelled(cleanup: &mut Cleanup, name: &str, tag: &str, args: &[&str]) -> u16 {
    let port = free_port();
    let mut all = vec![
        "--label".to_owned(),
        label(tag),
        "-p".to_owned(),
        format!("{port}:80"),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run_container(cleanup, name, &all, &["httpd", "-f", "-p", "80"]);
    port
}

/// A paused container of this test (a `paused-container` suspect), and its label tag.
fn paused(cleanup: &mut Cleanup, what: &str) -> (String, String) {
    let (tag, name) = (unique(what), unique(what));
    labelled(cleanup, &name, &tag, &[]);
    docker(&["pause", &name]);
    (tag, name)
}

/// The action on the container named `name`.
fn action_for<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["container"]["name"] == name)
        .unwrap_or_else(|| panic!("{name} not planned: {doc:#}"))
}

/// An action's outcome and its detail ("" when none).
fn outcome(action: &Value) -> (String, String) {
    (
        action["outcome"].as_str().unwrap().to_owned(),
        action["detail"].as_str().unwrap_or("").to_owned(),
    )
}

fn only_action(doc: &Value) -> &Value {
    let actions = doc["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{doc:#}");
    &actions[0]
}

fn assert_done_and_free(action: &Value) {
    assert_eq!(action["outcome"], "done", "{action:#}");
    assert_eq!(action["port_free_after"], true, "{action:#}");
}

#[test]
fn suspects_are_pruned_and_ports_freed_leaving_neighbours_alone() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("suspects");
    let paused = unique("paused");
    let p1 = labelled(&mut cleanup, &paused, &tag, &[]);
    docker(&["pause", &paused]);
    let unhealthy = unique("unhealthy");
    let p2 = labelled(
        &mut cleanup,
        &unhealthy,
        &tag,
        &[
            "--health-cmd",
            "false",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
    );
    let dormant = unique("dormant");
    let p3 = labelled(&mut cleanup, &dormant, &tag, &["--restart", "always"]);
    docker(&["stop", "-t", "1", &dormant]);
    // Neighbours: a healthy container of the same test, and a paused one of another owner.
    let healthy = unique("healthy");
    let p4 = labelled(&mut cleanup, &healthy, &tag, &[]);
    let foreign = unique("foreign");
    labelled(&mut cleanup, &foreign, &unique("other"), &[]);
    docker(&["pause", &foreign]);
    wait_for_finding(p2, "unhealthy-container");

    // Leaks only by default: nothing here is a leak.
    let (code, doc) = prune(&["--yes", "--label", &label(&tag)]);
    assert_eq!(
        (code, doc["actions"].as_array().unwrap().len()),
        (0, 0),
        "{doc:#}"
    );

    let (code, doc) = prune(&["--yes", "--include-suspects", "--label", &label(&tag)]);
    assert_eq!(code, 0, "{doc:#}");
    let actions = doc["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3, "{doc:#}");
    for (name, port, kind) in [
        (&paused, p1, "paused-container"),
        (&unhealthy, p2, "unhealthy-container"),
        (&dormant, p3, "dormant-binding"),
    ] {
        let a = action_for(&doc, name);
        assert_eq!(a["kind"], kind);
        assert_eq!(a["action"], "remove-container");
        assert_done_and_free(a);
        assert!(a["ports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["port"] == port));
        assert!(!exists(name), "{name} still exists");
    }
    assert_eq!(state(&healthy), "running");
    assert_eq!(state(&foreign), "paused", "a leak this test did not create");
    assert!(findings_on(&scan_port(p4), p4).is_empty());

    // Idempotent: nothing left to do.
    let (code, doc) = prune(&["--yes", "--include-suspects", "--label", &label(&tag)]);
    assert_eq!(
        (code, doc["actions"].as_array().unwrap().len()),
        (0, 0),
        "{doc:#}"
    );
}

#[test]
fn without_grace_a_paused_container_is_force_removed() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, name) = paused(&mut cleanup, "nograce");
    let (code, doc) = prune_with_grace(
        "0s",
        &["--yes", "--include-suspects", "--label", &label(&tag)],
    );
    assert_eq!(code, 0, "{doc:#}");
    let a = only_action(&doc);
    assert_eq!(a["kind"], "paused-container");
    assert_done_and_free(a);
    assert!(!exists(&name));
}

#[test]
fn a_crash_looping_container_is_pruned() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("loop");
    let name = unique("loop");
    let port = free_port();
    run_container(
        &mut cleanup,
        &name,
        &[
            "--label",
            &label(&tag),
            "-p",
            &format!("{port}:80"),
            "--restart",
            "always",
        ],
        &["sh", "-c", "sleep 0.2; exit 3"],
    );
    wait_for_finding(port, "restarting-container");
    // The loop flickers between restarting, running and exited (then it reads as a
    // dormant binding): any suspect finding on it will do, retried while it flickers.
    let doc = eventually(Duration::from_secs(20), || {
        let (code, doc) = prune(&["--yes", "--include-suspects", "--label", &label(&tag)]);
        (code == 0 && !doc["actions"].as_array().unwrap().is_empty()).then_some(doc)
    })
    .expect("the crash loop was never pruned");
    let a = only_action(&doc);
    assert!(
        matches!(
            a["kind"].as_str(),
            Some("restarting-container" | "dormant-binding")
        ),
        "{a:#}"
    );
    assert_done_and_free(a);
    assert!(!exists(&name));
}

#[test]
fn leaks_are_pruned_by_default_orphaned_proxy_and_dead_container() {
    if !require_engine() {
        return;
    }
    // Orphaned proxy: killed, port free.
    let port = free_port();
    let proxy = stale_proxy("tcp", "0.0.0.0", port, "172.17.255.240");
    eventually(Duration::from_secs(10), || {
        (!entries(&scan_port(port), "tcp", port).is_empty()).then_some(())
    })
    .expect("proxy never listened");
    let (code, doc) = prune(&["--yes", "--port", &port.to_string()]);
    assert_eq!(code, 0, "{doc:#}");
    let a = only_action(&doc);
    assert_eq!(
        (a["kind"].as_str(), a["action"].as_str()),
        (Some("orphaned-proxy"), Some("kill-process"))
    );
    assert_eq!(a["pids"], serde_json::json!([proxy.0.id()]));
    assert_done_and_free(a);

    // Dead container: its failed removal is undone, then prune removes it.
    let mut cleanup = Cleanup::default();
    let name = unique("dead");
    let dport = free_port();
    let id = httpd(&mut cleanup, &name, dport);
    let root = docker(&["info", "--format", "{{.DockerRootDir}}"]);
    let file = engine_fs(&format!("{root}/containers/{id}/hostname"));
    assert!(Command::new("chattr")
        .args(["+i", &file])
        .status()
        .unwrap()
        .success());
    let rm = Command::new("docker")
        .args(["rm", "-f", &name])
        .output()
        .unwrap();
    let _ = Command::new("chattr").args(["-i", &file]).status();
    assert!(!rm.status.success());
    wait_for_finding(dport, "dead-container");
    let (code, doc) = prune(&["--yes", "--port", &dport.to_string()]);
    assert_eq!(code, 0, "{doc:#}");
    let a = only_action(&doc);
    assert_eq!(a["kind"], "dead-container");
    assert_done_and_free(a);
    assert!(!exists(&name));
}

#[test]
fn an_orphaned_compose_project_is_pruned_by_project() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let parent = tempfile::tempdir().unwrap();
    let project = unique("orphan").replace('-', "");
    let dir = parent.path().join(&project);
    std::fs::create_dir(&dir).unwrap();
    cleanup.compose(&project, &dir);
    let port = free_port();
    compose_up_ok(&dir, None, port);
    // A live project is not touched.
    let (code, doc) = prune(&["--yes", "--project", &project]);
    assert_eq!((code, doc["actions"].as_array().unwrap().len()), (0, 0));

    std::fs::remove_dir_all(&dir).unwrap();
    let (code, doc) = prune(&["--yes", "--project", &project]);
    assert_eq!(code, 0, "{doc:#}");
    let a = only_action(&doc);
    assert_eq!(a["kind"], "orphaned-compose");
    assert_eq!(a["container"]["compose_project"], project.as_str());
    assert_done_and_free(a);
}

#[test]
fn healthy_holders_are_never_planned() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let hostnet = unique("hostnet");
    let hport = free_port();
    run_container(
        &mut cleanup,
        &hostnet,
        &["--network", "host"],
        &["httpd", "-f", "-p", &hport.to_string()],
    );
    let running = unique("running");
    let rport = free_port();
    httpd(&mut cleanup, &running, rport);
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let lport = listener.local_addr().unwrap().port();
    let spec = format!("{hport},{rport},{lport}");
    let (code, doc) = prune(&["--yes", "--include-suspects", "--port", &spec]);
    assert_eq!(code, 0);
    assert_eq!(doc["actions"], serde_json::json!([]), "{doc:#}");
    assert_eq!(state(&hostnet), "running");
    assert_eq!(state(&running), "running");
    assert!(std::net::TcpStream::connect(("127.0.0.1", lport)).is_ok());
}

#[test]
fn dry_run_and_no_terminal_change_nothing_and_keep_label_is_honoured() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("dry");
    let paused = unique("dry");
    labelled(&mut cleanup, &paused, &tag, &[]);
    docker(&["pause", &paused]);
    let kept = unique("kept");
    labelled(
        &mut cleanup,
        &kept,
        &tag,
        &["--label", "portreap.keep=true"],
    );
    docker(&["pause", &kept]);

    let (code, doc) = prune(&["--dry-run", "--include-suspects", "--label", &label(&tag)]);
    assert_eq!(code, 1, "a dry run that found work");
    assert_eq!(doc["dry_run"], true);
    let a = only_action(&doc);
    assert_eq!(
        (a["outcome"].as_str(), a["container"]["name"].as_str()),
        (Some("planned"), Some(paused.as_str()))
    );
    assert_eq!(doc["kept"][0]["container"]["name"], kept.as_str());
    assert_eq!(doc["kept"][0]["reason"], "label portreap.keep=true");
    assert_eq!(state(&paused), "paused");

    // No --yes and no terminal: the plan, and nothing done.
    let out = portreap()
        .args([
            "prune",
            "--min-age",
            "0s",
            "--include-suspects",
            "--label",
            &label(&tag),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pass --yes to act"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("remove container {paused}")));
    assert_eq!(state(&paused), "paused");

    let (code, doc) = prune(&["--yes", "--include-suspects", "--label", &label(&tag)]);
    assert_eq!(code, 0, "{doc:#}");
    assert_done_and_free(only_action(&doc));
    assert_eq!(state(&kept), "paused", "kept container untouched");
}

/// The cache of port bindings only spares `why` inspects; `prune` reads every container
/// afresh. Proven here with a forged cache: the dormant container said to bind nothing,
/// and its running neighbour said to ask for the dormant one's port.
/// The plan is the same as with no cache at all, and pruning on it removes the dormant
/// container only.
#[test]
fn a_forged_cache_changes_no_plan() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("forgedcache");
    let dormant = unique("forgeddormant");
    let port = labelled(&mut cleanup, &dormant, &tag, &["--restart", "always"]);
    docker(&["stop", "-t", "1", &dormant]);
    let neighbour = unique("forgedneighbour");
    labelled(&mut cleanup, &neighbour, &tag, &[]);
    let home = tempfile::tempdir().unwrap();
    // A dry run that found work exits 1, a prune that did it all 0.
    let prune_here = |code: i32, extra: &[&str]| -> Vec<(String, String, String, Vec<u64>)> {
        let out = portreap()
            .env("XDG_CACHE_HOME", home.path())
            .args(["prune", "--json", "--grace", "1s", "--min-age", "0s"])
            .args(["--include-suspects", "--label", &label(&tag)])
            .args(extra)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {said}");
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let mut plan: Vec<_> = doc["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let ports = a["ports"].as_array().unwrap();
                let ports = ports.iter().map(|p| p["port"].as_u64().unwrap()).collect();
                (
                    text(&a["container"]["name"]),
                    text(&a["kind"]),
                    text(&a["action"]),
                    ports,
                )
            })
            .collect();
        plan.sort();
        plan
    };
    let expected = vec![(
        dormant.clone(),
        "dormant-binding".to_owned(),
        "remove-container".to_owned(),
        vec![u64::from(port)],
    )];
    assert_eq!(prune_here(1, &["--dry-run"]), expected);
    let file = home.path().join("portreap/bindings.json");
    let mut cache: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let (dormant_id, neighbour_id) = (container_id(&dormant), container_id(&neighbour));
    let entries = remembered_by_engine(&mut cache, &dormant_id);
    entries[&dormant_id]["requested"] = serde_json::json!([]);
    let wanted = entries[&neighbour_id]["requested"][0].clone();
    let mut claims = wanted;
    claims["host_ports"] = serde_json::json!({"start": port, "end": port});
    entries[&neighbour_id]["requested"] = serde_json::json!([claims]);
    std::fs::write(&file, cache.to_string()).unwrap();
    assert_eq!(
        prune_here(1, &["--dry-run"]),
        expected,
        "a forged cache must decide nothing"
    );
    assert_eq!(prune_here(1, &["--dry-run", "--no-cache"]), expected);
    assert_eq!(prune_here(0, &["--yes"]), expected);
    assert!(!exists(&dormant));
    assert_eq!(state(&neighbour), "running");
}

/// Through an endpoint no local engine process is proven to serve (a TCP relay in front
/// of the real engine: to portreap it may be another host), a container's ports are its
/// host's, not this one's to probe: the prune acts, and says it did not probe them.
#[test]
fn a_remote_engines_container_is_pruned_without_claiming_its_ports_free_here() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, name) = paused(&mut cleanup, "remote");
    let engine = test_engine().unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
    let socket = std::path::Path::new(engine.strip_prefix("unix://").unwrap());
    let (_relay, url) = crate::tls::front(socket, None);
    let out = portreap()
        .args([
            "prune",
            "--json",
            "--grace",
            "1s",
            "--min-age",
            "0s",
            "--yes",
        ])
        .args([
            "--include-suspects",
            "--label",
            &label(&tag),
            "--host",
            &url,
        ])
        .output()
        .unwrap();
    assert_success(&out);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = only_action(&doc);
    assert_eq!(a["outcome"], "done", "{doc:#}");
    assert_eq!(a["port_free_after"], Value::Null, "{doc:#}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("not probed: its engine is not proven to run on this host"),
        "{said}"
    );
    assert!(!exists(&name));
}

mod races;
mod unattended;
