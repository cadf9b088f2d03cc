//! Prune without a person watching, and with one: the terminal's question, ages, reports
//! for pipelines, log lines for cron, the config file.

use super::*;

/// Runs prune under a pseudo-terminal (`script`) and answers its question.
fn prune_on_a_terminal(args: &str, answer: &str) -> String {
    let bin = assert_cmd::cargo::cargo_bin("portreap");
    on_a_terminal(
        &format!("{} prune --grace 1s --min-age 0s {args}", bin.display()),
        answer,
    )
}

#[test]
fn on_a_terminal_prune_asks_first() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, name) = paused(&mut cleanup, "ask");
    let args = format!("--include-suspects --label {}", label(&tag));
    let screen = prune_on_a_terminal(&args, "n\n");
    assert!(
        screen.contains("Proceed? [y/N]") && screen.contains("not acting"),
        "{screen}"
    );
    assert_eq!(state(&name), "paused");
    let screen = prune_on_a_terminal(&args, "y\n");
    assert!(
        screen.contains(&format!("done     remove container {name}")),
        "{screen}"
    );
    assert!(!exists(&name));
}

#[test]
fn a_container_younger_than_the_grace_age_is_left_alone_unless_asked() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, name) = paused(&mut cleanup, "young");
    // Default guard: 30 s. A container a compose up just started is not touched.
    let out = portreap()
        .args([
            "prune",
            "--json",
            "--yes",
            "--include-suspects",
            "--label",
            &label(&tag),
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["actions"], serde_json::json!([]));
    let reason = doc["kept"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("younger than --min-age 30s"), "{reason}");
    assert_eq!(state(&name), "paused");
    // A shorter guard than its age lets prune act.
    std::thread::sleep(Duration::from_millis(2100));
    let out = portreap()
        .args([
            "prune",
            "--json",
            "--yes",
            "--grace",
            "1s",
            "--include-suspects",
            "--label",
            &label(&tag),
            "--min-age",
            "2s",
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = out.status.code().unwrap();
    assert_eq!(code, 0, "{doc:#}");
    assert_done_and_free(only_action(&doc));
}

#[test]
fn reports_for_pipelines_a_json_file_and_a_markdown_summary() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let tag = unique("report");
    let name = unique("report");
    let port = labelled(&mut cleanup, &name, &tag, &[]);
    docker(&["pause", &name]);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let step_summary = dir.path().join("step-summary.md");
    std::fs::write(&step_summary, "earlier step\n").unwrap();
    // Human output on stdout, the JSON report in a file, the summary appended to
    // GITHUB_STEP_SUMMARY as GitHub Actions expects.
    let out = portreap()
        .args([
            "prune",
            "--yes",
            "--grace",
            "1s",
            "--min-age",
            "0s",
            "--include-suspects",
        ])
        .args([
            "--label",
            &label(&tag),
            "--report",
            report.to_str().unwrap(),
        ])
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("done     remove container {name}"))
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_done_and_free(only_action(&doc));
    let md = std::fs::read_to_string(&step_summary).unwrap();
    assert!(md.starts_with("earlier step\n### portreap prune\n"), "{md}");
    assert!(md.contains(&format!("| remove-container | remove container {name} | paused-container | 0.0.0.0:{port}/tcp, [::]:{port}/tcp | done | yes |")), "{md}");
    assert!(md.contains("1 done, 0 skipped, 0 failed."), "{md}");

    // An explicit file wins over the environment, and is written whole.
    let explicit = dir.path().join("summary.md");
    let out = portreap()
        .args([
            "prune",
            "--dry-run",
            "--label",
            &label(&tag),
            "--summary-markdown",
            explicit.to_str().unwrap(),
        ])
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&explicit).unwrap(),
        "### portreap prune (dry run)\n\nNothing to act on.\n\n"
    );
    assert_eq!(
        std::fs::read_to_string(&step_summary).unwrap(),
        md,
        "the step summary is left alone"
    );
}

#[test]
fn older_than_leaves_fresh_holders_to_their_developer() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, name) = paused(&mut cleanup, "older");
    // The dev host's long-lived healthy service, of the same owner.
    let service = unique("olderservice");
    labelled(&mut cleanup, &service, &tag, &[]);
    let port = free_port();
    let _proxy = stale_proxy("tcp", "127.0.0.1", port, "172.17.255.239");
    let (code, doc) = prune(&[
        "--yes",
        "--include-suspects",
        "--label",
        &label(&tag),
        "--older-than",
        "1h",
    ]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["actions"], serde_json::json!([]));
    assert!(
        doc["kept"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not older than --older-than 3600s"),
        "{doc:#}"
    );
    assert_eq!(state(&name), "paused");
    // The fresh stale proxy is spared by the policy too.
    eventually(Duration::from_secs(10), || {
        (!entries(&scan_port(port), "tcp", port).is_empty()).then_some(())
    })
    .expect("proxy never listened");
    let (_, doc) = prune(&["--yes", "--port", &port.to_string(), "--older-than", "1h"]);
    assert_eq!(doc["actions"], serde_json::json!([]));
    assert!(
        doc["kept"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("docker-proxy pid"),
        "{doc:#}"
    );
    std::thread::sleep(Duration::from_millis(2100));
    let (code, doc) = prune(&[
        "--yes",
        "--include-suspects",
        "--label",
        &label(&tag),
        "--older-than",
        "1s",
    ]);
    assert_eq!(code, 0, "{doc:#}");
    assert_done_and_free(only_action(&doc));
    assert_eq!(
        state(&service),
        "running",
        "a healthy service survives the cron policy"
    );
}

#[test]
fn json_log_lines_for_cron() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, name) = paused(&mut cleanup, "log");
    let out = portreap()
        .args([
            "prune",
            "--yes",
            "--grace",
            "1s",
            "--min-age",
            "0s",
            "--include-suspects",
        ])
        .args(["--label", &label(&tag), "--log-format", "json", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let line = stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{stderr}"));
    let event: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(event["event"], "action");
    assert_eq!(event["outcome"], "done");
    assert_eq!(event["target"], format!("remove container {name}"));
    assert!(event["ts"].as_u64().unwrap() > 1_700_000_000);
    // stdout still carries only the report.
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["actions"][0]["outcome"], "done");
}

#[test]
fn the_config_file_drives_an_unattended_prune() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (tag, _name) = paused(&mut cleanup, "conf");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    // Suspects included and no grace age, by the file; the label protects.
    std::fs::write(
        &config,
        format!(
            "[prune]\ninclude_suspects = true\nmin_age = \"0s\"\nkeep_labels = [\"{}\"]\n",
            label(&tag)
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = portreap()
            .args([
                "prune",
                "--json",
                "--yes",
                "--grace",
                "1s",
                "--label",
                &label(&tag),
                "--config",
                config.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code().unwrap(), doc)
    };
    let (code, doc) = run(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["actions"], serde_json::json!([]));
    assert!(
        doc["kept"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("protected by the config file: label portreap.test"),
        "{doc:#}"
    );
    // Without the protection, the file's include_suspects makes the paused container a target.
    std::fs::write(
        &config,
        "[prune]\ninclude_suspects = true\nmin_age = \"0s\"\n",
    )
    .unwrap();
    let (code, doc) = run(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_done_and_free(only_action(&doc));
}
