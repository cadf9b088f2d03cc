//! Harness for tests that run the real binary, and against the real Docker engine.
//!
//! Every Docker resource a test creates is named with a unique prefix and removed when its
//! guard drops, also when the test panics. Engine tests skip only when the engine is
//! missing and `PORTREAP_REQUIRE_DOCKER` is unset; CI sets it, so they cannot skip there.

use std::collections::HashSet;
use std::io::Read;
use std::net::{Ipv6Addr, TcpListener, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The offline image `.ci/setup` imports.
pub fn image() -> String {
    std::env::var("PORTREAP_TEST_IMAGE").unwrap_or_else(|_| "portreap-test-busybox:1".into())
}

/// Runs `docker` and returns stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `docker` and ignores the outcome (cleanup).
pub fn docker_quiet(args: &[&str]) {
    let _ = Command::new("docker").args(args).output();
}

fn engine_available() -> bool {
    static UP: OnceLock<bool> = OnceLock::new();
    *UP.get_or_init(|| {
        Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
            && Command::new("docker")
                .args(["image", "inspect", &image()])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
    })
}

/// Whether engine tests can run. Panics (fails the test) when the engine or the test image
/// is missing and `PORTREAP_REQUIRE_DOCKER=1`.
pub fn require_engine() -> bool {
    if engine_available() {
        return true;
    }
    if std::env::var("PORTREAP_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!(
            "PORTREAP_REQUIRE_DOCKER=1 but no Docker engine answers or image {} is missing; run `bash .ci/setup`",
            image()
        );
    }
    eprintln!("skipping: no Docker engine (set PORTREAP_REQUIRE_DOCKER=1 to make this fatal)");
    false
}

/// A unique name for this test's resources: `prt-<pid>-<tag>-<n>`.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "prt-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The ids a listing command prints, none on failure (cleanup).
pub fn docker_ids(args: &[&str]) -> Vec<String> {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Docker resources to remove when the test ends, however it ends.
#[derive(Default)]
pub struct Cleanup {
    containers: Vec<String>,
    networks: Vec<String>,
    compose: Vec<(String, std::path::PathBuf)>,
}

impl Cleanup {
    /// Removes this container at the end.
    pub fn container(&mut self, name: &str) {
        self.containers.push(name.to_owned());
    }

    /// Removes this network at the end (after the containers).
    pub fn network(&mut self, name: &str) {
        self.networks.push(name.to_owned());
    }

    /// Runs `docker compose down` for this project at the end.
    pub fn compose(&mut self, project: &str, dir: &std::path::Path) {
        self.compose.push((project.to_owned(), dir.to_owned()));
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (project, dir) in &self.compose {
            let _ = Compose::V2
                .command()
                .args(["-p", project, "down", "--remove-orphans", "-t", "1"])
                .current_dir(dir)
                .output();
            // In case the compose directory is already gone: remove by label.
            let label = format!("label=com.docker.compose.project={project}");
            for id in docker_ids(&["ps", "-aq", "--filter", &label]) {
                docker_quiet(&["rm", "-f", &id]);
            }
            for id in docker_ids(&["network", "ls", "-q", "--filter", &label]) {
                docker_quiet(&["network", "rm", &id]);
            }
        }
        for name in &self.containers {
            docker_quiet(&["rm", "-f", name]);
        }
        for name in &self.networks {
            docker_quiet(&["network", "rm", name]);
        }
    }
}

/// Starts a detached container from the test image and registers it for cleanup.
/// `args` go before the image; `cmd` after it.
pub fn run_container(cleanup: &mut Cleanup, name: &str, args: &[&str], cmd: &[&str]) -> String {
    cleanup.container(name);
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    let image = image();
    all.push(&image);
    all.extend_from_slice(cmd);
    docker(&all)
}

/// A container of the test image serving HTTP on a host port the engine picks on
/// 127.0.0.1, and that port. The engine picks from the ephemeral range, where the host's
/// own sockets live too (its proxy then fails to bind): such a start is tried again.
pub fn httpd_on_random_port(cleanup: &mut Cleanup, prefix: &str) -> u16 {
    for _ in 0..10 {
        let name = unique(prefix);
        cleanup.container(&name);
        let image = image();
        let out = Command::new("docker")
            .args(["run", "-d", "--name", &name, "-p", "127.0.0.1::80", &image])
            .args(["httpd", "-f", "-p", "80"])
            .output()
            .expect("run docker");
        let said = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && said.contains("address already in use") {
            continue;
        }
        assert!(out.status.success(), "docker run {name} failed: {said}");
        let port = docker(&["port", &name, "80/tcp"]);
        return port.trim().rsplit(':').next().unwrap().parse().unwrap();
    }
    panic!("no free ephemeral port for a container in 10 tries");
}

/// A container of the test image serving HTTP, publishing `port` (on 0.0.0.0 and ::).
pub fn httpd(cleanup: &mut Cleanup, name: &str, port: u16) -> String {
    run_container(
        cleanup,
        name,
        &["-p", &format!("{port}:80")],
        &["httpd", "-f", "-p", "80"],
    )
}

/// Tries to start a container publishing `port`, which something else holds: the start
/// must fail (the container is left in state `created`, with the error recorded).
pub fn assert_blocked(cleanup: &mut Cleanup, name: &str, port: u16) {
    blocked_run(cleanup, name, port);
}

/// [`assert_blocked`], returning what `docker run` said.
pub fn blocked_run(cleanup: &mut Cleanup, name: &str, port: u16) -> String {
    cleanup.container(name);
    let publish = format!("{port}:80");
    let image = image();
    let run = Command::new("docker")
        .args([
            "run", "-d", "--name", name, "-p", &publish, &image, "httpd", "-f", "-p", "80",
        ])
        .output()
        .expect("run docker");
    assert!(
        !run.status.success(),
        "{name} started on a taken port {port}"
    );
    String::from_utf8_lossy(&run.stderr).into_owned()
}

/// Whether `port` can be bound on every address (TCP, both families) now.
pub fn port_free(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_ok()
        && TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).is_ok()
        && UdpSocket::bind(("0.0.0.0", port)).is_ok()
        && UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port)).is_ok()
}

/// `n` consecutive ports free on every address and protocol, never handed out twice in
/// this process (tests run in parallel).
pub fn free_ports(n: u16) -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    // Start somewhere that depends on the PID, so reruns and parallel test binaries spread.
    let span = 20_000u32;
    let mut candidate = 20_000 + (std::process::id().wrapping_mul(7919) % span) as u16;
    for _ in 0..span {
        let range = candidate..candidate + n;
        if range.clone().all(|p| !given.contains(&p) && port_free(p)) {
            given.extend(range);
            return candidate;
        }
        candidate = if candidate + n >= 40_000 {
            20_000
        } else {
            candidate + n
        };
    }
    panic!("no {n} free consecutive ports");
}

/// A single free port.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The engine the tests run against when it is not the default one (`.ci/test`'s modern
/// phase sets it, and DOCKER_HOST for the docker CLI, to the same endpoint): portreap is
/// pointed at it explicitly, and at nothing a developer's shell left in DOCKER_HOST.
pub fn test_engine() -> Option<String> {
    std::env::var("PORTREAP_TEST_ENGINE").ok()
}

/// `path` of the tested engine's filesystem as this host sees it: through the engine
/// process's root, so an engine in a chroot (the modern phase) is reached too.
pub fn engine_fs(path: &str) -> String {
    let doc = json(&["scan", "--json", "--port", "1"]);
    let pid = doc["engine"]["process"]
        .as_u64()
        .unwrap_or_else(|| panic!("the engine's process is not proven: {doc:#}"));
    format!("/proc/{pid}/root{path}")
}

/// A suggestion with the tested engine's own option left out: suggestions name a
/// non-default engine (`docker -H URL rm -f ...`), and tests match them by their verb.
pub fn without_engine(suggestion: &str) -> String {
    match test_engine() {
        Some(url) => suggestion
            .replace(&format!(" -H {url}"), "")
            .replace(&format!(" --host {url}"), ""),
        None => suggestion.to_owned(),
    }
}

mod compose;
mod fake;
mod process;
mod run;

pub use compose::*;
pub use fake::*;
pub use process::*;
pub use run::*;
