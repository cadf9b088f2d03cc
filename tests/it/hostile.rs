//! Hostile text: what other people control (an engine's answers, labels, process names
//! and command lines) never drives the terminal or forges output lines, the commands
//! portreap suggests run exactly what they show when pasted, and JSON stays exact.

use std::process::{Command, Stdio};

use crate::common::*;
use serde_json::{json, Value};

const ID: &str = "4444444444444444444444444444444444444444444444444444444444444444";
/// OSC 52: writes the clipboard of many terminals.
const CLIPBOARD: &str = "\x1b]52;c;cHduZWQ=\x07";
/// A forged plan line, after a newline.
const FORGED: &str = "\n  remove container decoy [paused-container] on 0.0.0.0:1/tcp";
/// Shell metacharacters in a path a label names.
const DIR: &str = "/tmp/prt-hostile;touch /tmp/prt-pwned-by-label;";

fn project() -> String {
    format!("shop{CLIPBOARD}{FORGED}")
}

/// What a fake engine says of itself and of its one container.
struct Strings {
    version: String,
    name: &'static str,
    image: &'static str,
    labels: Value,
}

/// An engine knowing one exited `--restart always` container that asks for `port` (a
/// dormant binding), whose removal fails; it says `strings`.
fn engine_saying(port: u16, strings: Strings) -> (tempfile::TempDir, String) {
    let Strings {
        version,
        name,
        image,
        labels,
    } = strings;
    fake_engine(move |path| {
        let body = match path.split('?').next().unwrap_or("") {
            "/version" => json!({"Version": version, "ApiVersion": "1.41"}),
            "/info" => json!({"DockerRootDir": "/nonexistent"}),
            "/containers/json" => json!([{
                "Id": ID, "Names": [name], "Image": "img", "State": "exited", "Ports": []
            }]),
            p if p == format!("/containers/{ID}/json") => json!({
                "Id": ID, "Name": name, "Created": "2026-01-01T10:00:00Z",
                "State": {"Status": "exited", "Running": false, "Pid": 0, "ExitCode": 0,
                          "StartedAt": "2026-01-01T10:00:01Z", "FinishedAt": "2026-01-01T11:00:00Z"},
                "Config": {"Image": image, "Labels": labels},
                "HostConfig": {"NetworkMode": "bridge",
                               "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0},
                               "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": port.to_string()}]}},
                "NetworkSettings": {"Ports": {}, "Networks": {}}
            }),
            // Removing it fails (a DELETE of the container).
            p if p == format!("/containers/{ID}") => {
                return (
                    500,
                    json!({"message": "device or resource busy"}).to_string(),
                )
            }
            _ => return (404, json!({"message": "no such thing"}).to_string()),
        };
        (200, body.to_string())
    })
}

/// An engine whose every string is hostile (see [`engine_saying`]).
fn engine(port: u16) -> (tempfile::TempDir, String) {
    engine_saying(
        port,
        Strings {
            version: format!("20.10{CLIPBOARD}\x1b[2J"),
            name: "/evil\x1b[2Jname",
            image: "img\x1b]8;;http://evil.example\x1b\\",
            labels: json!({
                "com.docker.compose.project": project(),
                "com.docker.compose.service": "web\u{202e}",
                "com.docker.compose.project.working_dir": DIR,
                "com.docker.compose.project.config_files": format!("{DIR}/compose.yaml"),
                "com.docker.compose.version": "2.40.3"
            }),
        },
    )
}

/// No byte that drives a terminal: ESC, BEL, CR, a C1 control (UTF-8 `c2 80..9f`), or a
/// direction override.
fn assert_inert(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let bad = text.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    });
    assert!(bad.is_none(), "{what} emits {bad:?}: {text}");
}

fn run(args: &[&str]) -> std::process::Output {
    portreap().args(args).output().unwrap()
}

#[test]
fn an_engines_strings_never_reach_the_terminal_raw() {
    let port = free_port();
    let (_dir, host) = engine(port);
    let p = port.to_string();
    let dry_prune = [
        "--host",
        &host,
        "prune",
        "--dry-run",
        "--include-suspects",
        "--min-age",
        "0s",
        "--port",
        &p,
    ];
    for args in [
        vec!["--host", &host, "scan", "--port", &p],
        vec!["--host", &host, "why", &p],
        vec!["--host", &host, "why", "--container", "evil\x1b[2Jname"],
        dry_prune.to_vec(),
        vec!["--host", &host, "-v", "scan", "--json", "--port", &p],
    ] {
        let out = run(&args);
        // JSON is exact for programs (serde escapes what JSON requires); people get the
        // rest.
        if !args.contains(&"--json") {
            assert_inert(&format!("{args:?} stdout"), &out.stdout);
        }
        assert_inert(&format!("{args:?} stderr"), &out.stderr);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !args.contains(&"--json") && !args.contains(&"--container") {
            assert!(
                all.contains("\\e]52;c;cHduZWQ=\\x07"),
                "{args:?}: shown escaped: {all}"
            );
        }
    }

    // The plan names the one action once: the newline in the label forges no line.
    let out = run(&dry_prune);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert_eq!(plan.matches("\n  remove container").count(), 1, "{plan}");
    assert!(plan.contains("\\n  remove container decoy"), "{plan}");

    // JSON keeps the engine's strings exactly.
    let doc = json(&["--host", &host, "scan", "--json", "--port", &p]);
    let c = &doc["findings"][0]["container"];
    assert_eq!(c["compose_project"], Value::String(project()), "{doc:#}");
    assert_eq!(c["name"], "evil\x1b[2Jname");
}

#[test]
fn a_suggested_compose_command_runs_what_it_shows() {
    if !require_engine() {
        return;
    }
    // A directory a cloned repository could be checked out as.
    let parent = tempfile::tempdir().unwrap();
    let mark = parent.path().join("PWNED");
    let dir = parent.path().join("shop;touch PWNED;echo $(id)");
    std::fs::create_dir(&dir).unwrap();
    let project = unique("hostile").replace('-', "");
    let mut cleanup = Cleanup::default();
    cleanup.compose(&project, &dir);
    let port = free_port();
    compose_up_ok(&dir, Some(&project), port);
    let out = portreap()
        .args(["why", &port.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find_map(|l| {
            l.trim_start()
                .strip_prefix("or: ")
                .filter(|s| s.starts_with("cd "))
        })
        .unwrap_or_else(|| panic!("no compose suggestion: {text}"))
        .to_owned();
    // A POSIX shell reads the directory as one word.
    let words = Command::new("python3")
        .args([
            "-c",
            "import json,shlex,sys; print(json.dumps(shlex.split(sys.argv[1])))",
            &line,
        ])
        .output()
        .unwrap();
    let words: Vec<String> = serde_json::from_slice(&words.stdout).unwrap();
    assert_eq!(
        words[..2],
        ["cd".to_owned(), dir.display().to_string()],
        "{line}"
    );
    // Pasted, it stops the service and runs nothing the path smuggled in.
    let pasted = Command::new("sh")
        .args(["-c", &line])
        .current_dir(parent.path())
        .output()
        .unwrap();
    assert!(
        pasted.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&pasted.stderr)
    );
    assert!(!mark.exists(), "the suggestion ran a command from the path");
    let state = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.State}}",
    ]);
    assert_eq!(state, "exited", "{line}");
}

#[test]
fn a_suggested_prune_quotes_the_project() {
    let port = free_port();
    let (_dir, host) = engine_saying(
        port,
        Strings {
            version: "20.10".into(),
            name: "/web",
            image: "img",
            labels: json!({
                "com.docker.compose.project": "shop$(touch /tmp/prt-pwned-by-project)",
                "com.docker.compose.service": "web"
            }),
        },
    );
    let out = run(&["--host", &host, "why", &port.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--project 'shop$(touch /tmp/prt-pwned-by-project)'"),
        "{text}"
    );
}

#[test]
fn a_process_command_line_with_escapes_is_shown_escaped() {
    let (listener, port) = {
        let child = Command::new("bash")
            .args([
                "-c",
                &format!(
                    "exec -a $'py{}\\e[2J' /usr/bin/python3 -c \"$0\" $'arg\\r\\e[1A'",
                    "\\e]52;c;eA==\\a"
                ),
                "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = ChildGuard(child);
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.0.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        (child, line.trim().to_owned())
    };
    for args in [
        vec!["why", port.as_str()],
        vec!["scan", "--all", "--port", port.as_str()],
    ] {
        let out = portreap()
            .env("DOCKER_HOST", "unix:///nonexistent.sock")
            .args(&args)
            .output()
            .unwrap();
        assert_inert(&format!("{args:?} stdout"), &out.stdout);
        assert_inert(&format!("{args:?} stderr"), &out.stderr);
    }
    let out = portreap()
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .args(["why", &port])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("py\\e]52;c;eA==\\x07\\e[2J"), "{text}");
    drop(listener);
}

#[test]
fn named_output_files_never_follow_a_planted_link() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let link = dir.path().join("report.json");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let link_text = link.to_str().unwrap();
    let port = free_port();
    let (_engine_dir, host) = engine(port);
    for args in [
        vec!["--host", &host, "prune", "--dry-run", "--report", link_text],
        vec![
            "--host",
            &host,
            "prune",
            "--dry-run",
            "--summary-markdown",
            link_text,
        ],
        vec!["--host", &host, "baseline", "save", link_text],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("is a symbolic link"), "{stderr}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
    // GitHub's step summary is appended to, never through a link either.
    let out = portreap()
        .env("GITHUB_STEP_SUMMARY", &link)
        .args(["--host", &host, "prune", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    // A report of its own is written, readable by its owner only.
    let report = dir.path().join("own.json");
    let out = run(&[
        "--host",
        &host,
        "prune",
        "--dry-run",
        "--include-suspects",
        "--min-age",
        "0s",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "a dry run with work");
    let doc: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(doc["actions"].as_array().unwrap().len(), 1, "{doc:#}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&report).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_reader_that_goes_away_costs_neither_the_report_nor_the_exit_status() {
    let port = free_port();
    let (_engine_dir, host) = engine(port);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("portreap"))
        .args([
            "--host",
            &host,
            "prune",
            "--yes",
            "--json",
            "--include-suspects",
            "--min-age",
            "0s",
            "--port",
            &port.to_string(),
            "--report",
            report.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "the removal failed");
    let doc: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(doc["actions"][0]["outcome"], "failed", "{doc:#}");
}

#[test]
fn config_files_must_be_small_regular_and_ours() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let shared = dir.path().join("shared.toml");
    std::fs::write(&shared, "[prune]\ninclude_suspects = true\n").unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(2 * 1024 * 1024))).unwrap();
    let mut cases = vec![
        ("/dev/zero".to_owned(), "not a regular file"),
        (fifo.display().to_string(), "not a regular file"),
        (shared.display().to_string(), "anyone may write it"),
        (big.display().to_string(), "larger than 1024 KiB"),
    ];
    if is_root() {
        let theirs = dir.path().join("theirs.toml");
        std::fs::write(&theirs, "[prune]\n").unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        cases.push((theirs.display().to_string(), "belongs to uid 65534"));
    }
    for (path, why) in cases {
        let out = portreap()
            .args(["--config", &path, "config"])
            .timeout(std::time::Duration::from_secs(10))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{path}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(why), "{path}: {stderr}");
    }
}

#[test]
fn a_lock_file_planted_by_another_user_is_refused_by_name() {
    if !is_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    // Planted by uid 4242 for user nobody's fallback lock.
    let planted = tmp.path().join("portreap-65534.lock");
    std::fs::write(&planted, "").unwrap();
    std::fs::set_permissions(
        &planted,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    std::os::unix::fs::chown(&planted, Some(4242), Some(4242)).unwrap();
    let out = as_nobody(None, assert_cmd::cargo::cargo_bin("portreap"))
        .args(["--host", "unix:///nonexistent.sock", "prune", "--yes"])
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", tmp.path())
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("belongs to uid 4242, not to you"),
        "{stderr}"
    );
}

#[test]
fn the_prompt_on_a_terminal_shows_the_plan_as_it_is() {
    let port = free_port();
    let (_engine_dir, host) = engine(port);
    let bin = assert_cmd::cargo::cargo_bin("portreap");
    let line = format!(
        "{} --host {host} prune --grace 1s --min-age 0s --include-suspects --port {port}",
        bin.display()
    );
    // The terminal ends its lines with CR LF; nothing else may drive it.
    let screen = on_a_terminal(&line, "n\n").replace("\r\n", "\n");
    assert_inert("the prompt screen", screen.as_bytes());
    assert!(screen.contains("Proceed? [y/N]"), "{screen}");
    assert_eq!(
        screen.matches("\n  remove container").count(),
        1,
        "{screen}"
    );
    assert!(screen.contains("\\e]52;c;cHduZWQ=\\x07"), "{screen}");
}

/// A unix-socket engine that answers `/containers/json` with a list that never ends, and
/// everything else as a small engine would.
fn endless_engine() -> (tempfile::TempDir, String) {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("engine.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&request).into_owned();
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
                if !line.contains("/containers/json") {
                    let body = json!({"Version": "20.10.24", "ApiVersion": "1.41"}).to_string();
                    let _ = write!(conn, "{head}{body}");
                    return;
                }
                let item = format!("{{\"Id\":\"{ID}\",\"Names\":[\"/x\"],\"State\":\"exited\"}},");
                let chunk = item.repeat(1024);
                let _ = conn.write_all(format!("{head}[").as_bytes());
                // Until the reader hangs up.
                while conn.write_all(chunk.as_bytes()).is_ok() {}
            });
        }
    });
    (dir, format!("unix://{}", sock.display()))
}

#[test]
fn an_answer_that_never_ends_is_cut_at_the_cap_and_named() {
    let (_dir, host) = endless_engine();
    let out = portreap()
        .args([
            "--host",
            &host,
            "--timeout",
            "60s",
            "scan",
            "--all",
            "--json",
        ])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).expect("a scan document");
    let error = doc["engine"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("larger than 64 MiB"), "{doc:#}");
    let out = portreap()
        .args(["--host", &host, "scan", "--all"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("larger than 64 MiB"), "{stderr}");
}
