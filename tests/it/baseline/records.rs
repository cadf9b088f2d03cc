//! A baseline proves itself before a cleanup acts from it: the file (owner, mode, type,
//! size, links, its directory, its schema), the engine it was saved against, and the
//! config file's protections and age guards, which hold here as in every prune.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;

/// Saves a baseline of this host in `dir` (the job's workspace too).
fn save(dir: &Path) -> PathBuf {
    let file = dir.join("baseline.json");
    let out = portreap()
        .args(["baseline", "save", file.to_str().unwrap()])
        .env("CI_PROJECT_DIR", dir)
        .output()
        .unwrap();
    assert_success(&out);
    file
}

/// The cleanup from `file`, confined to `port`, with `extra` arguments.
fn since(file: &Path, port: u16, extra: &[&str]) -> Output {
    portreap()
        .args(["prune", "--since-baseline", file.to_str().unwrap()])
        .args(["--json", "--grace", "1s", "--port", &port.to_string()])
        .args(extra)
        .output()
        .unwrap()
}

fn assert_refused(out: &Output, why: &str) {
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert_eq!(said.lines().count(), 1, "one line: {said}");
    assert!(said.contains(why), "{why}: {said}");
    assert!(out.stdout.is_empty(), "nothing planned");
}

fn copy(from: &Path, to: &Path, mode: u32) -> PathBuf {
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).unwrap();
    to.to_owned()
}

#[test]
fn a_baseline_that_does_not_prove_itself_is_refused_and_nothing_is_done() {
    if !require_engine() {
        return;
    }
    let _turn = super::one_job_at_a_time();
    let mut cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    let good = save(dir.path());
    // What the job left: the cleanup would remove it, from a baseline it can believe.
    let (name, port) = (unique("proof"), free_port());
    httpd(&mut cleanup, &name, port);
    let d = dir.path();
    let chown = |p: &Path| std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    let other = copy(&good, &d.join("other.json"), 0o600);
    chown(&other);
    let big = d.join("big.json");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(16 * 1024 * 1024 + 1).unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = d.join("link.json");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    let fifo = d.join("fifo.json");
    assert_success(
        &std::process::Command::new("mkfifo")
            .arg(&fifo)
            .output()
            .unwrap(),
    );
    let future = d.join("future.json");
    let text = std::fs::read_to_string(&good).unwrap();
    std::fs::write(
        &future,
        text.replacen("\"schema_version\": 2", "\"schema_version\": 99", 1),
    )
    .unwrap();
    std::fs::set_permissions(&future, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A shared directory anyone may write, without the sticky bit; and one of another user.
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let swapped = copy(&good, &shared.path().join("baseline.json"), 0o600);
    let theirs = tempfile::tempdir().unwrap();
    let in_theirs = copy(&good, &theirs.path().join("baseline.json"), 0o600);
    chown(theirs.path());
    // Root's own directory, inside one of another user's: they could swap it whole.
    let above = tempfile::tempdir().unwrap();
    std::fs::create_dir(above.path().join("root")).unwrap();
    let below = copy(&good, &above.path().join("root/baseline.json"), 0o600);
    chown(above.path());
    let cases: [(PathBuf, &str); 11] = [
        (other, "belongs to uid 65534"),
        (
            copy(&good, &d.join("group.json"), 0o620),
            "other users may write it",
        ),
        (
            copy(&good, &d.join("world.json"), 0o606),
            "other users may write it",
        ),
        (link, "a symbolic link is in its path"),
        (fifo, "it is not a regular file"),
        ("/dev/zero".into(), "it is not a regular file"),
        (big, "it is larger than 16384 KiB"),
        (future, "schema_version 99, and this portreap reads 2"),
        (swapped, "lets other users replace it"),
        (in_theirs, "belongs to uid 65534, who could replace it"),
        (below, "belongs to uid 65534, who could replace it"),
    ];
    for (file, why) in &cases {
        assert_refused(&since(file, port, &["--yes", "--min-age", "0s"]), why);
        assert_eq!(
            docker(&["inspect", "-f", "{{.State.Status}}", &name]),
            "running"
        );
    }
    // The believable one acts.
    let out = since(&good, port, &["--yes", "--min-age", "0s"]);
    assert_success(&out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["actions"][0]["container"]["name"],
        name.as_str(),
        "{doc:#}"
    );
    assert_eq!(doc["actions"][0]["outcome"], "done");
}

/// Saved against one engine, a cleanup asking another is refused, both named; with
/// `--all-engines` the other engines' containers are only kept.
#[test]
fn a_baseline_is_used_only_against_the_engine_it_was_saved_against() {
    if !require_engine() {
        return;
    }
    let _turn = super::one_job_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let file = save(dir.path());
    let second =
        std::fs::read_to_string("/run/portreap-second.pid").expect("the second engine (.ci/setup)");
    let second = format!(
        "unix:///proc/{}/root/run/portreap-second/docker.sock",
        second.trim()
    );
    let podman = "unix:///run/podman/podman.sock".to_owned();
    for other in [&second, &podman] {
        let out = since(&file, 1, &["--dry-run", "--host", other]);
        assert_refused(&out, "the baseline was saved against ");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("this prune asks ") && said.contains(other.as_str()),
            "{said}"
        );
    }
    // Another engine's new container, seen with --all-engines: kept, never acted on.
    let (name, port) = (unique("otherengine"), free_port());
    let run = std::process::Command::new("docker")
        .args([
            "-H",
            &second,
            "run",
            "-d",
            "--name",
            &name,
            "-p",
            &format!("{port}:80"),
        ])
        .args([image().as_str(), "httpd", "-f", "-p", "80"])
        .output()
        .unwrap();
    assert_success(&run);
    struct Gone(String, String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::process::Command::new("docker")
                .args(["-H", &self.0, "rm", "-f", &self.1])
                .output();
        }
    }
    let _gone = Gone(second.clone(), name.clone());
    let out = since(
        &file,
        port,
        &["--dry-run", "--all-engines", "--min-age", "0s"],
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(doc["actions"], serde_json::json!([]), "{doc:#}");
    assert_eq!(
        doc["kept"][0]["reason"], "its engine is not one the baseline was saved against",
        "{doc:#}"
    );
}

/// The config file's protections and the default age guard keep a job's own container.
#[test]
fn protections_and_the_age_guard_hold_for_a_baseline_cleanup() {
    if !require_engine() {
        return;
    }
    let _turn = super::one_job_at_a_time();
    let mut cleanup = Cleanup::default();
    let dir = tempfile::tempdir().unwrap();
    let file = save(dir.path());
    let (name, port) = (unique("protected"), free_port());
    httpd(&mut cleanup, &name, port);
    let config = tempfile::tempdir().unwrap();
    std::fs::create_dir(config.path().join("portreap")).unwrap();
    std::fs::write(
        config.path().join("portreap/config.toml"),
        format!("[prune]\nprotect_ports = \"{port}\"\nmin_age = \"0s\"\n"),
    )
    .unwrap();
    let out = portreap()
        .args([
            "prune",
            "--since-baseline",
            file.to_str().unwrap(),
            "--yes",
            "--json",
        ])
        .args(["--port", &port.to_string()])
        .env("XDG_CONFIG_HOME", config.path())
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["actions"], serde_json::json!([]), "{doc:#}");
    assert_eq!(
        doc["kept"][0]["reason"],
        format!("protected by the config file: port {port}/tcp")
    );
    // No config: the default --min-age (30 s) keeps a container seconds old.
    let out = since(&file, port, &["--yes"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["actions"], serde_json::json!([]), "{doc:#}");
    let reason = doc["kept"][0]["reason"].as_str().unwrap();
    assert!(
        reason.ends_with("younger than --min-age 30s: it may still be starting"),
        "{reason}"
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &name]),
        "running"
    );
}
