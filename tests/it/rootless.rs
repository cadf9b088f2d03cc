//! Rootless engines for real: the Docker and Podman that `.ci/rootless` runs as the
//! unprivileged user `portreap-rl`. Their published ports are held on this host by the
//! user's `rootlesskit` (Docker) and `rootlessport` (Podman, one dual-stack `[::]` socket
//! for a `0.0.0.0` binding); portreap must name the container behind them, as that user
//! and as root, and find and free a leaked one through the engine that owns it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

const USER: &str = "portreap-rl";

#[derive(Clone, Copy, Debug)]
enum Rootless {
    Docker,
    Podman,
}

impl Rootless {
    fn url(self, uid: u32) -> String {
        match self {
            Rootless::Docker => format!("unix:///run/user/{uid}/docker.sock"),
            Rootless::Podman => format!("unix:///run/user/{uid}/podman/podman.sock"),
        }
    }

    fn image(self) -> String {
        match self {
            Rootless::Docker => image(),
            Rootless::Podman => format!("localhost/{}", image()),
        }
    }

    fn forwarder(self) -> &'static str {
        match self {
            Rootless::Docker => "rootlesskit",
            Rootless::Podman => "rootlessport",
        }
    }
}

/// The test user's uid when its engine answers; with `PORTREAP_REQUIRE_ROOTLESS=1` it
/// must (`bash .ci/rootless` starts both).
fn require_rootless(kind: Rootless) -> Option<u32> {
    let uid = Command::new("id")
        .args(["-u", USER])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok());
    let up = uid.filter(|&uid| {
        let url = kind.url(uid);
        Command::new("curl")
            .args(["-sf", "--max-time", "5", "--unix-socket"])
            .arg(url.trim_start_matches("unix://"))
            .arg("http://d/_ping")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if up.is_none() {
        assert!(
            std::env::var("PORTREAP_REQUIRE_ROOTLESS").as_deref() != Ok("1"),
            "PORTREAP_REQUIRE_ROOTLESS=1 but rootless {kind:?} of user {USER} does not answer; run `bash .ci/rootless`"
        );
        eprintln!(
            "skipping: no rootless {kind:?} (set PORTREAP_REQUIRE_ROOTLESS=1 to make this fatal)"
        );
    }
    up
}

/// Removes a compose project's containers from its engine, whatever the test did.
struct Project {
    url: String,
    name: String,
}

impl Drop for Project {
    fn drop(&mut self) {
        let label = format!("label=com.docker.compose.project={}", self.name);
        let ids = Command::new("docker")
            .args(["-H", &self.url, "ps", "-aq", "--filter", &label])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = Command::new("docker")
                .args(["-H", &self.url, "rm", "-f", id])
                .output();
        }
    }
}

/// Brings up a one-service project on the rootless engine in a directory of its own.
fn compose_up(kind: Rootless, url: &str, port: u16) -> (Project, tempfile::TempDir) {
    let project = Project {
        url: url.to_owned(),
        name: unique("rl"),
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        format!(
            "services:\n  web:\n    image: {}\n    command: [\"httpd\", \"-f\", \"-p\", \"80\"]\n    ports: [\"{port}:80\"]\n",
            kind.image()
        ),
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["-H", url, "compose", "-p", &project.name, "up", "-d"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_success(&out);
    (project, dir)
}

/// This portreap, copied where the test user may run it, with prune's age guard off in a
/// configuration it may read (the containers are seconds old).
struct UserBin {
    dir: tempfile::TempDir,
}

impl UserBin {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            assert_cmd::cargo::cargo_bin("portreap"),
            dir.path().join("portreap"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("config/portreap")).unwrap();
        std::fs::write(
            dir.path().join("config/portreap/config.toml"),
            "[prune]\nmin_age = \"0s\"\n",
        )
        .unwrap();
        for path in ["", "config", "config/portreap"] {
            let path = dir.path().join(path);
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        UserBin { dir }
    }

    /// `sh -c line` as the test user, in its own session's environment, this portreap
    /// first on PATH; `docker_host` as DOCKER_HOST when given.
    fn sh(&self, uid: u32, docker_host: Option<&str>, line: &str) -> Output {
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", self.dir.path().display());
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", USER, "--", "env", "-i"])
            .arg(format!("PATH={path}"))
            .arg(format!("HOME=/home/{USER}"))
            .arg(format!("XDG_RUNTIME_DIR=/run/user/{uid}"))
            .arg(format!(
                "XDG_CONFIG_HOME={}",
                self.dir.path().join("config").display()
            ));
        if let Some(host) = docker_host {
            cmd.arg(format!("DOCKER_HOST={host}"));
        }
        let out = cmd.args(["sh", "-c", line]).output().expect("runuser");
        assert!(
            out.status.success(),
            "{line}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn json(&self, uid: u32, docker_host: Option<&str>, line: &str) -> Value {
        let out = self.sh(uid, docker_host, line);
        assert_schema("scan", &out.stdout);
        serde_json::from_slice(&out.stdout).expect("JSON")
    }
}

/// Every socket of `port` is the container `name`'s, through the engine's forwarder `by`,
/// with no finding.
fn assert_held_by(doc: &Value, port: u16, name: &str, by: &str, url: &str) {
    let es = entries(doc, "tcp", port);
    assert!(!es.is_empty(), "{doc:#}");
    for e in es {
        assert_eq!(
            (
                e["owner"]["kind"].as_str(),
                e["owner"]["via"].as_str(),
                e["container"]["name"].as_str(),
                e["container"]["engine"].as_str(),
                e["process"].as_str(),
            ),
            (
                Some("container"),
                Some("forwarder"),
                Some(name),
                Some(url),
                Some(by)
            ),
            "{doc:#}"
        );
    }
    assert!(findings_on(doc, port).is_empty(), "{doc:#}");
}

/// Root's view, every engine asked, once every socket of `port` is owned.
fn root_scan(port: u16) -> Value {
    eventually(Duration::from_secs(20), || {
        let doc = json(&[
            "--all-engines",
            "scan",
            "--json",
            "--port",
            &port.to_string(),
        ]);
        let es = entries(&doc, "tcp", port);
        (!es.is_empty() && es.iter().all(|e| e["owner"]["kind"] == "container")).then_some(doc)
    })
    .unwrap_or_else(|| panic!("{port} never attributed"))
}

/// The leak both views find once the project's directory is gone, and the first next
/// step root's `why` suggests for it.
fn orphaned(port: u16, dir: tempfile::TempDir) -> String {
    let path = dir.path().to_path_buf();
    drop(dir);
    assert!(!Path::new(&path).exists());
    let doc = json(&["--all-engines", "why", &port.to_string(), "--json"]);
    assert!(
        findings_on(&doc, port)
            .iter()
            .any(|f| f["kind"] == "orphaned-compose"),
        "{doc:#}"
    );
    doc["why"][0]["next"][0].as_str().unwrap().to_owned()
}

/// A one-service compose project up on the rootless engine `kind`, on a free port.
struct Up {
    uid: u32,
    url: String,
    port: u16,
    /// The service's container.
    name: String,
    dir: tempfile::TempDir,
    _project: Project,
}

fn up(kind: Rootless) -> Option<Up> {
    let uid = require_rootless(kind)?;
    let url = kind.url(uid);
    let port = free_port();
    let (project, dir) = compose_up(kind, &url, port);
    Some(Up {
        uid,
        name: format!("{}-web-1", project.name),
        url,
        port,
        dir,
        _project: project,
    })
}

impl Up {
    /// Every socket of the port is the container's, through `kind`'s forwarder, in root's
    /// every-engine view and in the user's own (`portreap ARGS scan`, DOCKER_HOST
    /// `docker_host`); root's view is returned.
    fn assert_named(
        &self,
        kind: Rootless,
        user: &UserBin,
        docker_host: Option<&str>,
        args: &str,
    ) -> Value {
        let (port, name, url) = (self.port, &self.name, &self.url);
        let root = root_scan(port);
        assert_held_by(&root, port, name, kind.forwarder(), url);
        let line = format!("portreap {args}scan --json --port {port}");
        let doc = user.json(self.uid, docker_host, &line);
        assert_held_by(&doc, port, name, kind.forwarder(), url);
        root
    }
}

#[test]
fn rootless_docker_a_leak_behind_rootlesskit_is_named_as_its_user_and_freed_by_root() {
    let kind = Rootless::Docker;
    let Some(up) = up(kind) else {
        return;
    };
    let user = UserBin::new();
    up.assert_named(kind, &user, Some(&up.url), "");
    let (port, name, url) = (up.port, &up.name, &up.url);

    let prune = orphaned(port, up.dir);
    assert!(prune.starts_with("portreap --all-engines prune"), "{prune}");
    let out = pasted(&format!("{prune} --yes"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("remove container {name}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(port_free(port), "{port} still held");
    let ps = docker(&["-H", url, "ps", "-aq", "--filter", &format!("name={name}")]);
    assert_eq!(ps.trim(), "", "{name} still there");
}

#[test]
fn rootless_podman_a_leak_behind_rootlessport_is_named_as_root_and_freed_by_its_user() {
    let kind = Rootless::Podman;
    let Some(up) = up(kind) else {
        return;
    };
    let user = UserBin::new();
    let doc = up.assert_named(kind, &user, None, &format!("--host {} ", up.url));
    let (uid, port, url) = (up.uid, up.port, up.url.clone());
    // One dual-stack socket serves the IPv4 binding: no reservation, no second row.
    assert_eq!(entries(&doc, "tcp", port).len(), 1, "{doc:#}");

    drop(orphaned(port, up.dir));
    let doc = user.json(
        uid,
        None,
        &format!("portreap --host {url} why {port} --json"),
    );
    let next = doc["why"][0]["next"][0].as_str().unwrap().to_owned();
    assert!(
        next.starts_with(&format!("portreap --host {url} prune")),
        "{next}"
    );
    let out = user.sh(uid, None, &format!("{next} --yes"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 done, 0 skipped, 0 failed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(port_free(port), "{port} still held");
}
