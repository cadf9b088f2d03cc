//! The recipes shipped in docker/ are executed, not just shown: the systemd units verify,
//! the commands they run work (as dry runs here, so they never act on other tests'
//! resources), and the DaemonSet asks for what the tool needs.

use std::process::Command;

use crate::common::*;

const DOCKER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docker");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{DOCKER_DIR}/{name}")).unwrap()
}

/// Runs a recipe's portreap command line with the binary under test, as a dry run.
fn run_dry(line: &str) -> (i32, serde_json::Value) {
    let args: Vec<&str> = line
        .split_whitespace()
        .skip_while(|w| !w.ends_with("portreap"))
        .skip(1)
        .take_while(|w| !w.starts_with(">>") && !w.starts_with("2>>"))
        .map(|w| if w == "--yes" { "--dry-run" } else { w })
        .collect();
    assert!(args.contains(&"--json"), "recipes report JSON: {line}");
    let out = portreap().args(&args).output().unwrap();
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), doc)
}

#[test]
fn systemd_units_verify_and_their_command_runs() {
    let service = read("portreap.service");
    let execs: Vec<&str> = service
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    assert_eq!(execs.len(), 2, "prune, then metrics");
    if require_engine() {
        let (code, doc) = run_dry(execs[0]);
        assert!(code == 0 || code == 1, "dry run exit {code}");
        assert_eq!(doc["dry_run"], true);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("portreap.prom");
        let args: Vec<&str> = execs[1]
            .split_whitespace()
            .skip(1)
            .map(|w| {
                if w.ends_with("portreap.prom") {
                    file.to_str().unwrap()
                } else {
                    w
                }
            })
            .collect();
        let out = portreap().args(&args).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        promtool_check(&file);
    }
    // systemd-analyze checks the units, with the binary under test in place.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping unit verification: no systemd-analyze");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("portreap");
    std::fs::write(
        dir.path().join("portreap.service"),
        service.replace("/usr/local/bin/portreap", bin.to_str().unwrap()),
    )
    .unwrap();
    std::fs::write(dir.path().join("portreap.timer"), read("portreap.timer")).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "portreap.service", "portreap.timer"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&out.stderr).into_owned();
    // Only complaints about our units count (the host's own units are not ours to fix).
    let ours: Vec<&str> = complaints
        .lines()
        .filter(|l| l.contains("portreap"))
        .collect();
    assert!(ours.is_empty() && out.status.success(), "{complaints}");
}

#[test]
fn the_cron_line_is_valid_and_its_command_runs() {
    let cron = read("portreap.cron");
    let line = cron
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields[..6],
        ["*/30", "*", "*", "*", "*", "root"],
        "five time fields and a user"
    );
    if require_engine() {
        let (code, doc) = run_dry(line);
        assert!(code == 0 || code == 1);
        assert_eq!(doc["schema_version"], 1);
    }
}

#[test]
fn the_daemonset_sees_the_host() {
    // Debian's Python with python3-yaml (.ci/setup installs both).
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            &format!("{DOCKER_DIR}/daemonset.yaml"),
        ])
        .output()
        .unwrap();
    assert_success(&out);
    let ds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(ds["kind"], "DaemonSet");
    assert_eq!(spec["hostPID"], true);
    assert_eq!(spec["hostNetwork"], true);
    let c = &spec["containers"][0];
    assert_eq!(c["securityContext"]["capabilities"]["add"][0], "SYS_PTRACE");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--host-root", "/host"]),
        "{args:?}"
    );
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, ["/var/run/docker.sock", "/host", "/textfile"]);
    assert!(
        args.windows(2).any(|w| w == ["--every", "60s"]),
        "a long-running pod: {args:?}"
    );
    // The same arguments work against the binary, once: an engine that does not answer
    // is a metric (engine_up 0), not a failure.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portreap.prom");
    let mut local: Vec<&str> = args
        .iter()
        .map(|a| match *a {
            "/host" => "/",
            "/textfile/portreap.prom" => file.to_str().unwrap(),
            a => a,
        })
        .collect();
    let every = local.iter().position(|a| *a == "--every").unwrap();
    local.drain(every..every + 2);
    local.splice(0..0, ["--host", "unix:///nonexistent.sock"]);
    let out = portreap().args(&local).output().unwrap();
    assert_success(&out);
    let text = promtool_check(&file);
    assert!(
        text.contains(
            "portreap_engine_up{endpoint=\"unix:///nonexistent.sock\",kind=\"unknown\"} 0"
        ),
        "{text}"
    );
}

/// Runs Prometheus's own linter on a metrics file (`promtool check metrics`, Debian's
/// `prometheus` package): exit 0 and no complaint. Returns the file's text.
fn promtool_check(file: &std::path::Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "node_exporter runs as its own user");
    text
}

#[test]
fn the_metrics_count_what_scan_finds() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("metricspaused");
    let port = free_port();
    httpd(&mut cleanup, &name, port);
    docker(&["pause", &name]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portreap.prom");
    let out = portreap()
        .args(["metrics", "--output", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = promtool_check(&file);
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    // Other tests run beside this one: at least this container's finding and ports.
    assert!(value("portreap_findings{kind=\"paused-container\",severity=\"suspect\"}") >= 1.0);
    assert!(value("portreap_ports{owner=\"container\",scope=\"docker\"}") >= 2.0);
    assert!(value("portreap_scan_duration_seconds") > 0.0);
    let up = text
        .lines()
        .find(|l| l.starts_with("portreap_engine_up{"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(up.ends_with(" 1"), "{up}");
    // No temporary file is left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
