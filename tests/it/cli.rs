//! The binary without an engine: usage errors, unreachable and hung engines, plain host
//! processes, unprivileged runs.

use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn bad_port_specs_are_one_line_usage_errors() {
    for spec in ["0", "70000", "65536", "9-3", "abc", "80/sctp", ""] {
        let out = portreap().args(["scan", "--port", spec]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "--port {spec:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "--port {spec:?}: {stderr}");
        assert!(stderr.starts_with("portreap: "), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn other_bad_input_is_a_usage_error() {
    for args in [
        &["scan", "--timeout", "0"][..],
        &["scan", "--timeout", "fast"],
        &["scan", "--host", "ssh://box"],
        &["scan", "--host", "/var/run/docker.sock"],
        &["scan", "--bogus"],
        &["frobnicate"],
    ] {
        let out = portreap().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}

/// `metrics`' own bad input: one line, exit 2, naming what is wrong, before any scan.
#[test]
fn metrics_refuses_a_loop_without_a_file_and_a_linked_file() {
    let out = portreap()
        .args(["metrics", "--every", "5s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--output <FILE>"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let link = dir.path().join("portreap.prom");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = portreap()
        .args(["metrics", "--output", link.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("is a symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

#[test]
fn help_and_version_succeed() {
    portreap().arg("--help").assert().success();
    portreap().args(["scan", "--help"]).assert().success();
    let out = portreap().arg("--version").output().unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("portreap "));
}

#[test]
fn unreachable_engine_still_lists_host_sockets() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let doc = json(&[
        "scan",
        "--json",
        "--host",
        "unix:///nonexistent.sock",
        "--port",
        &port.to_string(),
    ]);
    assert_eq!(doc["engine"]["reachable"], false);
    assert_eq!(doc["engine"]["endpoint"], "unix:///nonexistent.sock");
    assert_eq!(doc["engine"]["source"], "--host");
    let error = doc["engine"]["error"].as_str().unwrap();
    assert!(
        error.contains("/nonexistent.sock does not exist"),
        "{error}"
    );
    let found = entries(&doc, "tcp", port);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["owner"]["kind"], "process");

    // The table run says so on stderr and still exits 0.
    let out = portreap()
        .args(["--host", "unix:///nonexistent.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("engine not reachable at unix:///nonexistent.sock"),
        "{stderr}"
    );
}

#[test]
fn docker_host_and_unknown_context_are_honoured() {
    let out = portreap()
        .args(["scan", "--json", "--port", "1"])
        .env("DOCKER_HOST", "unix:///nonexistent-env.sock")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["engine"]["endpoint"], "unix:///nonexistent-env.sock");
    assert_eq!(doc["engine"]["source"], "DOCKER_HOST");

    let config = tempfile::tempdir().unwrap();
    let out = portreap()
        .args(["scan", "--json", "--port", "1"])
        .env("DOCKER_CONFIG", config.path())
        .env("DOCKER_CONTEXT", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["engine"]["reachable"], false);
    let error = doc["engine"]["error"].as_str().unwrap();
    assert!(
        error.contains("docker context 'nowhere' not found"),
        "{error}"
    );
}

#[test]
fn a_hung_engine_times_out_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hung.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Accept and hold connections without ever answering.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let start = Instant::now();
    let doc = json(&[
        "scan",
        "--json",
        "--timeout",
        "700ms",
        "--host",
        &format!("unix://{}", path.display()),
        "--port",
        "1",
    ]);
    let took = start.elapsed();
    assert_eq!(doc["engine"]["reachable"], false);
    let error = doc["engine"]["error"].as_str().unwrap();
    assert!(error.contains("did not answer within 0.7s"), "{error}");
    // Generous: this checks that portreap stops waiting, not how fast it is.
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn plain_processes_are_named_with_pid_tcp_and_udp() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = tcp.local_addr().unwrap().port();
    let udp = UdpSocket::bind("[::1]:0").unwrap();
    let uport = udp.local_addr().unwrap().port();
    let doc = json(&[
        "scan",
        "--json",
        "--host",
        "unix:///nonexistent.sock",
        "--port",
        &format!("{tport}/tcp,{uport}/udp"),
    ]);
    let me = std::process::id();
    for (proto, port, ip) in [("tcp", tport, "127.0.0.1"), ("udp", uport, "::1")] {
        let found = entries(&doc, proto, port);
        assert_eq!(found.len(), 1, "{doc:#}");
        assert_eq!(found[0]["ip"], ip);
        assert_eq!(found[0]["owner"]["kind"], "process");
        assert_eq!(found[0]["container"], serde_json::Value::Null);
        assert!(
            found[0]["pids"].as_array().unwrap().contains(&me.into()),
            "{doc:#}"
        );
    }
}

#[test]
fn unprivileged_run_marks_owners_it_cannot_read() {
    if !is_root() {
        eprintln!("skipping: needs root to drop to another user");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bin = assert_cmd::cargo::cargo_bin("portreap");
    let out = as_nobody(None, &bin)
        .args(["scan", "--json", "--port", &port.to_string()])
        .env_remove("DOCKER_HOST")
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = entries(&doc, "tcp", port);
    assert_eq!(found.len(), 1, "{doc:#}");
    assert_eq!(found[0]["owner"]["kind"], "unknown");
    let detail = found[0]["owner"]["detail"].as_str().unwrap();
    assert!(detail.contains("not readable"), "{detail}");
    assert!(doc["host"]["unreadable_processes"].as_u64().unwrap() > 0);
    // Without access to the engine's socket: said so, and still exit 0 for scan.
    if std::path::Path::new("/var/run/docker.sock").exists() {
        let error = doc["engine"]["error"].as_str().unwrap_or("");
        assert!(error.contains("permission denied"), "{doc:#}");
    }
}

#[test]
fn prune_refuses_without_the_engine() {
    let out = portreap()
        .args(["prune", "--yes", "--host", "unix:///nonexistent.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("acting needs the engine"), "{stderr}");
    assert!(out.stdout.is_empty(), "no plan without the engine");
}

#[test]
fn prune_usage_errors() {
    for args in [
        &["prune", "--kind", "blocked-start"][..],
        &["prune", "--kind", "bogus"],
        &["prune", "--label", "=x"],
        &["prune", "--grace", "soon"],
        &["prune", "--dry-run", "--yes"],
        &["prune", "--port", "0"],
    ] {
        let out = portreap().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8(out.stderr).unwrap().lines().count(),
            1,
            "{args:?}"
        );
    }
}

#[test]
fn global_options_go_before_or_after_the_subcommand() {
    for args in [
        &[
            "--host",
            "unix:///nonexistent.sock",
            "scan",
            "--json",
            "--port",
            "1",
        ][..],
        &[
            "scan",
            "--host",
            "unix:///nonexistent.sock",
            "--json",
            "--port",
            "1",
        ],
        &[
            "--timeout",
            "1s",
            "why",
            "1",
            "--host",
            "unix:///nonexistent.sock",
        ],
    ] {
        let out = portreap().args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Scan options before another subcommand are a mistake, said in one line.
    let out = portreap().args(["--json", "prune"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
    // --host and --context exclude each other.
    let out = portreap()
        .args(["--host", "unix:///x", "--context", "y", "scan"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = portreap().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        for sub in ["scan", "why", "free", "prune"] {
            assert!(text.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let out = portreap().arg("man").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(".TH portreap 1") && text.contains("prune"),
        "{text}"
    );
    let out = portreap().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn quiet_and_verbose_only_change_stderr() {
    let args = [
        "scan",
        "--json",
        "--port",
        "1",
        "--host",
        "unix:///nonexistent.sock",
    ];
    let plain = portreap().args(args).output().unwrap();
    let verbose = portreap().arg("-v").args(args).output().unwrap();
    let quiet = portreap()
        .arg("-q")
        .args(["scan", "--host", "unix:///nonexistent.sock"])
        .output()
        .unwrap();
    let json = |o: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(json(&plain)["ports"], json(&verbose)["ports"]);
    let v = String::from_utf8(verbose.stderr).unwrap();
    assert!(
        v.contains("portreap: host: ") && v.contains("portreap: engine: "),
        "{v}"
    );
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let normal = portreap()
        .args(["scan", "--host", "unix:///nonexistent.sock"])
        .output()
        .unwrap();
    assert!(String::from_utf8(normal.stderr)
        .unwrap()
        .contains("engine not reachable"));
}

#[test]
fn an_unreadable_proc_is_reported_not_a_panic() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let doc = json(&[
        "scan",
        "--json",
        "--proc-root",
        "/nonexistent-proc",
        "--host",
        "unix:///nonexistent.sock",
        "--port",
        &port.to_string(),
    ]);
    let error = doc["host"]["error"].as_str().unwrap();
    assert!(error.contains("cannot read /nonexistent-proc"), "{error}");
    let found = entries(&doc, "tcp", port);
    assert_eq!(found[0]["owner"]["kind"], "unknown");
    assert!(found[0]["owner"]["detail"]
        .as_str()
        .unwrap()
        .contains("owner not readable"));
}

#[test]
fn non_utf8_command_lines_are_shown_faithfully() {
    use std::os::unix::ffi::OsStrExt;
    let (_child, port) = python_listener(
        std::path::Path::new("python3"),
        &[std::ffi::OsStr::from_bytes(b"caf\xe9-\xff")],
    );
    let doc = json(&[
        "scan",
        "--json",
        "--host",
        "unix:///nonexistent.sock",
        "--port",
        &port,
    ]);
    let cmdline = doc["ports"][0]["cmdline"].as_array().unwrap();
    assert_eq!(cmdline.last().unwrap(), "caf\u{fffd}-\u{fffd}", "{doc:#}");
    let out = portreap()
        .args(["why", &port, "--host", "unix:///nonexistent.sock"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("caf\u{fffd}-\u{fffd}"));
}

#[test]
fn closed_stderr_and_broken_stdout_are_not_failures() {
    let bin = assert_cmd::cargo::cargo_bin("portreap");
    let bin = bin.display();
    // stderr closed: the engine line cannot be written, the scan still succeeds.
    let status = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("{bin} scan --all --host unix:///nonexistent.sock >/dev/null 2>&-"),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    // stdout closed early by the reader (`| head -c0`): a broken pipe is success.
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("set -o pipefail; {bin} scan --all --json --host unix:///nonexistent.sock | head -c0"),
        ])
        .output()
        .unwrap();
    assert_success(&out);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn a_panic_is_one_line_and_a_failure() {
    let out = portreap()
        .args(["debug", "panic"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("portreap: internal error: ") && stderr.contains("please report"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn the_config_file_sets_defaults_flags_win_and_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[prune]\ninclude_suspects = true\nolder_than = \"2h\"\nprotect_ports = \"5432\"\n",
    )
    .unwrap();
    let out = portreap()
        .args(["config", "--config", good.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("prune.include_suspects   true"), "{text}");
    assert!(text.contains(&format!("({})", good.display())), "{text}");
    assert!(
        text.contains("prune.min_age            30s") && text.contains("(default)"),
        "{text}"
    );
    // The XDG default location is read when present.
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("portreap")).unwrap();
    std::fs::copy(&good, xdg.join("portreap/config.toml")).unwrap();
    let out = portreap()
        .arg("config")
        .env("XDG_CONFIG_HOME", &xdg)
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("prune.older_than         7200s"));

    for (text, expect) in [
        (
            "[prune]\ninclude_suspects = true\nbogus = 1\n",
            ":3: unknown field `bogus`",
        ),
        (
            "[prune]\nkinds = [\"nope\"]\n",
            ":2: kinds: unknown kind 'nope'",
        ),
        (
            "[prune]\n\nolder_than = \"soon\"\n",
            ":3: older_than: 'soon' is not a duration",
        ),
        // The value's own line, even where the key's name appears on an earlier one.
        (
            "[prune]\n# keep_labels = [\"ok\"]\nkeep_labels = [\n  \"team=db\",\n  \"=x\",\n]\n",
            ":5: keep_labels: '=x' is not a label",
        ),
        (
            "[prune]\nmin_age = \"0s\"\nolder_than = \"1d\"\nmin_age_note = 1\nprotect_ports = \"http\"\n",
            ":4: unknown field `min_age_note`",
        ),
        (
            "[prune]\nprotect_ports = \"80\"\nkinds = [\"dead-container\", \"engine-reservation\"]\n",
            ":3: kinds: engine-reservation is informational",
        ),
        ("[prune\n", ":1:"),
    ] {
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        let out = portreap()
            .args(["config", "--config", bad.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("{}{expect}", bad.display())),
            "{stderr}"
        );
    }
    let out = portreap()
        .args(["config", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
