//! portreap's own image (docker/Dockerfile), run the documented way, scans the host like
//! the binary does.

use std::process::Command;

use crate::common::*;

#[test]
fn the_image_scans_the_host_like_the_binary() {
    if !require_engine() {
        return;
    }
    let build = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docker/build-image.sh"
        ))
        .env("TAG", "test")
        .output()
        .unwrap();
    assert_success(&build);
    let image_tag = String::from_utf8(build.stdout).unwrap().trim().to_owned();
    assert_eq!(image_tag, "portreap:test");

    // Something to find: a published container and a compose project whose directory is
    // gone (the compose check needs the host's root, mounted at /host).
    let mut cleanup = Cleanup::default();
    let name = unique("img");
    let port = free_port();
    httpd(&mut cleanup, &name, port);
    let parent = tempfile::tempdir().unwrap();
    let project = unique("imgproj").replace('-', "");
    let dir = parent.path().join(&project);
    std::fs::create_dir(&dir).unwrap();
    cleanup.compose(&project, &dir);
    let cport = free_port();
    compose_up_ok(&dir, None, cport);
    std::fs::remove_dir_all(&dir).unwrap();

    let spec = format!("{port},{cport}");
    let host = json(&["scan", "--json", "--port", &spec]);
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--pid=host",
            "--network=host",
            "--cap-add",
            "SYS_PTRACE",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "-v",
            "/:/host:ro",
            &image_tag,
            "scan",
            "--host-root",
            "/host",
            "--json",
            "--port",
            &spec,
        ])
        .output()
        .unwrap();
    assert_success(&out);
    let inside: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inside["engine"]["reachable"], true);
    assert_eq!(inside["host"]["compose_dirs_checked"], true);
    assert_eq!(inside["ports"], host["ports"], "in-container scan differs");
    assert_eq!(inside["findings"], host["findings"]);
    assert_eq!(entries(&inside, "tcp", port).len(), 2);
    assert!(
        findings_on(&inside, cport)
            .iter()
            .any(|f| f["kind"] == "orphaned-compose"),
        "{inside:#}"
    );

    // Without the host's root the compose check is skipped, and says so: never a guess.
    // Without SYS_PTRACE the owners are not readable: the ports are still attributed from
    // the engine's bindings, and the report says processes were unreadable.
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--pid=host",
            "--network=host",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            &image_tag,
            "scan",
            "--json",
            "--port",
            &spec,
        ])
        .output()
        .unwrap();
    let blind: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(blind["host"]["compose_dirs_checked"], false);
    assert!(blind["host"]["compose_note"]
        .as_str()
        .unwrap()
        .contains("--host-root"));
    assert!(findings_on(&blind, cport).is_empty(), "{blind:#}");
    assert!(
        blind["host"]["unreadable_processes"].as_u64().unwrap() > 0,
        "{blind:#}"
    );
    for entry in entries(&blind, "tcp", port) {
        assert_eq!(entry["owner"]["via"], "binding", "{entry:#}");
        assert_eq!(entry["container"]["name"], name.as_str());
    }
}
