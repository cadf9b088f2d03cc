//! The recipes shipped in docker/ are executed, not just shown: the systemd units verify,
//! the commands they run work (as dry runs here, so they never act on other tests'
//! resources), and the DaemonSet asks for what the tool needs.

mod common;

use std::process::Command;

use common::*;

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
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    if require_engine() {
        let (code, doc) = run_dry(exec);
        assert!(code == 0 || code == 1, "dry run exit {code}");
        assert_eq!(doc["dry_run"], true);
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
    let out = Command::new("python3")
        .args([
            "-c",
            "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            &format!("{DOCKER_DIR}/daemonset.yaml"),
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("No module named 'yaml'"), "{err}");
        eprintln!("skipping: no PyYAML to parse the manifest");
        return;
    }
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
    assert_eq!(mounts, ["/var/run/docker.sock", "/host"]);
    // The same arguments work against the binary.
    let mut local: Vec<&str> = args
        .iter()
        .map(|a| if *a == "/host" { "/" } else { a })
        .collect();
    local.extend(["--host", "unix:///nonexistent.sock"]);
    let out = portreap().args(&local).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
