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

/// The portreap binary, ready to run.
pub fn portreap() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("portreap").expect("binary built");
    match test_engine() {
        Some(url) => cmd.env("DOCKER_HOST", url),
        None => cmd.env_remove("DOCKER_HOST"),
    };
    cmd.env_remove("DOCKER_CONTEXT")
        .env_remove("NO_COLOR")
        .timeout(Duration::from_secs(60));
    cmd
}

/// Runs `line` as a person pasting it into a shell would: `sh -c`, with this portreap
/// first on PATH and prune's age guard off (the containers are seconds old), and
/// asserts it succeeded.
pub fn pasted(line: &str) -> Output {
    let (mut sh, _config) = paste(line);
    let out = sh.output().expect("sh");
    assert!(
        out.status.success(),
        "{line}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The shell [`pasted`] runs `line` in, not started yet, with the configuration directory
/// it reads (keep it until the shell is done).
pub fn paste(line: &str) -> (Command, tempfile::TempDir) {
    let bin = assert_cmd::cargo::cargo_bin("portreap");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config = tempfile::tempdir().unwrap();
    std::fs::create_dir(config.path().join("portreap")).unwrap();
    std::fs::write(
        config.path().join("portreap/config.toml"),
        "[prune]\nmin_age = \"0s\"\n",
    )
    .unwrap();
    let mut sh = Command::new("sh");
    match test_engine() {
        Some(url) => sh.env("DOCKER_HOST", url),
        None => sh.env_remove("DOCKER_HOST"),
    };
    sh.args(["-c", line])
        .env("PATH", path)
        .env("XDG_CONFIG_HOME", config.path())
        .stdin(Stdio::null());
    (sh, config)
}

/// The next steps `why PORT` suggests, in order.
pub fn why_next(port: u16) -> Vec<String> {
    let doc = json(&["why", &port.to_string(), "--json"]);
    doc["why"][0]["next"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs portreap with `args`, asserts exit 0, parses stdout as JSON.
pub fn json(args: &[&str]) -> Value {
    let out: Output = portreap().args(args).output().expect("run portreap");
    assert!(
        out.status.success(),
        "portreap {args:?} exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    match args.first() {
        Some(&"scan" | &"why") => assert_schema("scan", &out.stdout),
        Some(&"prune" | &"free") => assert_schema("prune", &out.stdout),
        _ => {}
    }
    doc
}

/// Checks a document against the JSON Schema the repository ships (`src/schema/NAME.json`)
/// with an independent validator, Debian's python3-jsonschema (Draft 2020-12), so the
/// published contract is proven on every real output the tests parse.
pub fn assert_schema(name: &str, doc: &[u8]) {
    use std::io::Write;
    const CHECK: &str = "import json,sys,jsonschema\n\
        schema=json.load(open(sys.argv[1]))\n\
        jsonschema.Draft202012Validator.check_schema(schema)\n\
        v=jsonschema.Draft202012Validator(schema)\n\
        errs=list(v.iter_errors(json.load(sys.stdin)))\n\
        for e in errs[:10]: print('/'.join(map(str,e.absolute_path)) or '(top)', ':', e.message[:300])\n\
        sys.exit(1 if errs else 0)";
    let schema = format!("{}/src/schema/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", CHECK, &schema])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with python3-jsonschema)");
    // A validator that dies early must not turn into a broken-pipe panic here.
    let _ = child.stdin.take().unwrap().write_all(doc);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the document does not match src/schema/{name}.json:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(doc)
            .chars()
            .take(4000)
            .collect::<String>()
    );
}

/// `scan --json --port <port>`.
pub fn scan_port(port: u16) -> Value {
    json(&["scan", "--json", "--port", &port.to_string()])
}

/// The port entries of a scan document matching `proto` and `port`.
pub fn entries<'a>(doc: &'a Value, proto: &str, port: u16) -> Vec<&'a Value> {
    doc["ports"]
        .as_array()
        .expect("ports array")
        .iter()
        .filter(|p| p["proto"] == proto && p["port"] == port)
        .collect()
}

/// Polls `f` until it returns `Some`, for at most `limit`.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The findings of a scan document that concern `port`.
pub fn findings_on(doc: &Value, port: u16) -> Vec<&Value> {
    doc["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .filter(|f| {
            f["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == port)
        })
        .collect()
}

/// The finding of `kind` on `port` in a scan document; panics with `context` (what the
/// test did) and the document when there is none.
pub fn finding_of<'a>(doc: &'a Value, port: u16, kind: &str, context: &str) -> &'a Value {
    findings_on(doc, port)
        .into_iter()
        .find(|f| f["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} on port {port}; {context}\n{doc:#}"))
}

/// Scans `port` until a finding of `kind` shows up on it (states like unhealthy and
/// restarting take a moment), or panics with the last document.
pub fn wait_for_finding(port: u16, kind: &str) -> Value {
    let mut last = Value::Null;
    eventually(Duration::from_secs(30), || {
        last = scan_port(port);
        findings_on(&last, port)
            .iter()
            .any(|f| f["kind"] == kind)
            .then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("no {kind} on port {port} within 30s: {last:#}"))
}

/// A process the test started; killed and reaped on drop.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real `docker-proxy` by hand, as a stale one left by a crashed engine: it
/// listens on `host_ip:host_port` and forwards to a target no container has. It reports
/// its start on file descriptor 3 and exits at once without it, hence the redirection.
pub fn stale_proxy(proto: &str, host_ip: &str, host_port: u16, target_ip: &str) -> ChildGuard {
    let binary = [
        "/usr/sbin/docker-proxy",
        "/usr/bin/docker-proxy",
        "/usr/libexec/docker/docker-proxy",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("docker-proxy binary (Debian's docker.io)");
    let script = format!(
        "exec {binary} -proto {proto} -host-ip {host_ip} -host-port {host_port} -container-ip {target_ip} -container-port 80 3>/dev/null"
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start docker-proxy");
    ChildGuard(child)
}

/// Which compose runs a test's project: v2 (`docker compose`, what users run) unless a
/// test is about v1's labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compose {
    /// The Go plugin, `docker compose`: `proj-svc-1`, absolute `config_files`.
    V2,
    /// Debian's Python `docker-compose` 1.29: `proj_svc_1`, relative `config_files`.
    V1,
}

impl Compose {
    /// The command, not yet given arguments.
    pub fn command(self) -> Command {
        match self {
            Compose::V2 => {
                let mut cmd = Command::new("docker");
                cmd.arg("compose");
                cmd
            }
            Compose::V1 => Command::new("docker-compose"),
        }
    }

    /// The file name each looks for by default.
    pub fn file(self) -> &'static str {
        match self {
            Compose::V2 => "compose.yaml",
            Compose::V1 => "docker-compose.yml",
        }
    }

    /// What a compose file starts with for it: v1 needs a format version, v2 warns
    /// about one.
    pub fn header(self) -> &'static str {
        match self {
            Compose::V2 => "",
            Compose::V1 => "version: '3.8'\n",
        }
    }

    /// A service's first container, as each names it.
    pub fn container(self, project: &str, service: &str) -> String {
        match self {
            Compose::V2 => format!("{project}-{service}-1"),
            Compose::V1 => format!("{project}_{service}_1"),
        }
    }
}

/// One service of the test image serving HTTP on `port`, as compose YAML under `services:`.
pub fn compose_service(name: &str, port: u16, extra: &str) -> String {
    format!(
        "  {name}:\n    image: {}\n    command: httpd -f -p 80\n{extra}    ports:\n      - \"{port}:80\"\n",
        image()
    )
}

/// Runs `compose` with `args` in `dir` (as project `project`, if given).
pub fn compose_run(
    compose: Compose,
    dir: &std::path::Path,
    project: Option<&str>,
    args: &[&str],
) -> Output {
    let mut cmd = compose.command();
    if let Some(p) = project {
        cmd.args(["-p", p]);
    }
    cmd.args(args)
        .current_dir(dir)
        .output()
        .expect("run compose")
}

/// Writes a one-service compose file (`web`, the test image, publishing `port`) into `dir`
/// and runs `docker compose up -d` there, as project `project` or the directory's default
/// name.
pub fn compose_up(dir: &std::path::Path, project: Option<&str>, port: u16) -> Output {
    compose_up_with(Compose::V2, dir, project, port, None)
}

/// [`compose_up`], the service's container labelled `KEY=VALUE` when `label` is given.
pub fn compose_up_labelled(
    dir: &std::path::Path,
    project: Option<&str>,
    port: u16,
    label: Option<&str>,
) -> Output {
    compose_up_with(Compose::V2, dir, project, port, label)
}

/// [`compose_up_labelled`] by the compose given.
pub fn compose_up_with(
    compose: Compose,
    dir: &std::path::Path,
    project: Option<&str>,
    port: u16,
    label: Option<&str>,
) -> Output {
    let labels = label.map_or(String::new(), |l| format!("    labels:\n      - \"{l}\"\n"));
    std::fs::write(
        dir.join(compose.file()),
        format!(
            "{}services:\n{}",
            compose.header(),
            compose_service("web", port, &labels)
        ),
    )
    .unwrap();
    compose_run(compose, dir, project, &["up", "-d"])
}

/// [`compose_up`], which must succeed.
pub fn compose_up_ok(dir: &std::path::Path, project: Option<&str>, port: u16) {
    let up = compose_up(dir, project, port);
    assert!(
        up.status.success(),
        "docker compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
}

/// Starts `program` (a python3 or a copy of it) listening on a free loopback TCP port, and
/// returns it with the port. `extra` is passed after the script.
pub fn python_listener(
    program: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> (ChildGuard, String) {
    let (child, line) = first_line(
        Command::new(program)
            .args([
                std::ffi::OsStr::new("-c"),
                std::ffi::OsStr::new("import socket,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)"),
            ])
            .args(extra),
    );
    (child, line.trim().to_owned())
}

/// Makes the program `cmd` starts die with the test's thread: a test binary killed
/// mid-run drops no guard, and a helper holding thousands of ports for minutes would
/// make the next run's tests fail to bind.
pub fn dies_with_test(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only prctl(2) runs, which is async-signal-safe and
    // touches no memory of the parent. The death signal fires when the spawning thread
    // ends, which is the test's, whose guards kill the helper by then anyway.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Starts `cmd` with its stdout piped and returns it (killed on drop, and with the test's
/// thread) with the first line it prints: the port or PID a helper program announces once
/// it is ready.
pub fn first_line(cmd: &mut Command) -> (ChildGuard, String) {
    let mut child = dies_with_test(cmd)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    (ChildGuard(child), line)
}

/// Runs `portreap prune ARGS --json --grace 1s` and returns (exit code, report).
pub fn prune(args: &[&str]) -> (i32, serde_json::Value) {
    prune_with_grace("1s", args)
}

/// Runs `portreap prune ARGS --json --grace GRACE` and returns (exit code, report).
pub fn prune_with_grace(grace: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["prune", "--json", "--grace", grace, "--min-age", "0s"];
    all.extend_from_slice(args);
    let out = portreap().args(&all).output().unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "prune {args:?}: stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_schema("prune", &out.stdout);
    (out.status.code().unwrap(), doc)
}

/// Starts a prune that pauses between plan and action; returns once it has planned. Its
/// stderr keeps being drained, so it never writes into a closed pipe.
pub fn delayed_prune(args: &[&str]) -> std::process::Child {
    let mut all = vec![
        "prune",
        "--json",
        "--yes",
        "--grace",
        "1s",
        "--min-age",
        "0s",
        "--debug-act-delay",
        "3s",
    ];
    all.extend_from_slice(args);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("portreap"))
        .args(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (planned, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 256];
        let mut told = false;
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
            if !told && String::from_utf8_lossy(&seen).contains("before acting") {
                told = planned.send(()).is_ok();
            }
        }
    });
    wait.recv_timeout(Duration::from_secs(30))
        .expect("prune never reached the point before acting");
    child
}

/// A fake engine on a unix socket in a fresh directory, answering each request path with
/// `answer`'s status and JSON body; serves until the test process ends. Returns the
/// directory (keep it alive) and the endpoint URL.
pub fn fake_engine(
    answer: impl Fn(&str) -> (u16, String) + Send + 'static,
) -> (tempfile::TempDir, String) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("engine.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request);
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, body) = answer(&path);
            let reason = match status {
                200 => "OK",
                404 => "Not Found",
                _ => "Internal Server Error",
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let url = format!("unix://{}", sock.display());
    (dir, url)
}

/// Whether the tests run as root (who may plant files for other users, join groups).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The gid of the `docker` group, which may open the system engine's socket.
pub fn docker_gid() -> String {
    let out = Command::new("getent")
        .args(["group", "docker"])
        .output()
        .expect("getent");
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .nth(2)
        .map(str::to_owned)
        .expect("a docker group")
}

/// A command that runs `program` as user `nobody` (uid and gid 65534), in the
/// supplementary `groups` given (a numeric gid, or none), through util-linux's `setpriv`.
pub fn as_nobody(groups: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534"]);
    match groups {
        Some(gids) => cmd.arg(format!("--groups={gids}")),
        None => cmd.arg("--clear-groups"),
    };
    cmd.arg("--").arg(program);
    cmd
}

/// Runs the shell command `line` on a pseudo-terminal (util-linux's `script`), types
/// `answer` once it had time to ask, and returns what the terminal showed.
pub fn on_a_terminal(line: &str, answer: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    // Give it time to plan and ask, then answer.
    std::thread::sleep(Duration::from_secs(2));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
