//! Running the portreap binary: its JSON, checked against the schema; pasted
//! suggestions; prunes, delayed or not.

use super::*;

/// The portreap binary, ready to run.
pub fn portreap() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("portreap").expect("binary built");
    match test_engine() {
        Some(url) => cmd.env("DOCKER_HOST", url),
        None => cmd.env_remove("DOCKER_HOST"),
    };
    cmd.env_remove("DOCKER_CONTEXT")
        .env_remove("NO_COLOR")
        .env("XDG_CACHE_HOME", cache_home())
        .timeout(Duration::from_secs(60));
    cmd
}

/// The cache directory every run of the suite shares (kept between runs, as a user's
/// is, but inside the build's directory, never the user's own).
pub fn cache_home() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-cache")
}

/// The entries of the engine that remembers container `id`, in a parsed cache file
/// (`bindings.json`, see the cache module).
pub fn remembered_by_engine<'a>(cache: &'a mut Value, id: &str) -> &'a mut Value {
    cache["engines"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .find(|e| e.get(id).is_some())
        .unwrap_or_else(|| panic!("container {id} not remembered"))
}

/// A container's full id.
pub fn container_id(name: &str) -> String {
    docker(&["inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_owned()
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
        .env("XDG_CACHE_HOME", cache_home())
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

/// Asserts that a run exited 0, showing what it said on stderr if not.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// Starts a prune that pauses 3 s between plan and action; returns once it has planned.
/// Its stderr keeps being drained, so it never writes into a closed pipe.
pub fn delayed_prune(args: &[&str]) -> std::process::Child {
    delayed_prune_for("3s", args)
}

/// [`delayed_prune`] with a pause of `delay` (long enough for what the test does meanwhile).
pub fn delayed_prune_for(delay: &str, args: &[&str]) -> std::process::Child {
    let mut all = vec![
        "prune",
        "--json",
        "--yes",
        "--grace",
        "1s",
        "--min-age",
        "0s",
        "--debug-act-delay",
        delay,
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
