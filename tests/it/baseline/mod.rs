//! The CI mode: save a baseline at job start, prune what the job left at its end. The
//! prunes here are narrowed by label, because other tests create containers meanwhile.

use crate::common::*;

mod jobs;
mod records;

/// Baseline tests register CI jobs on the host, and a job running beside another is
/// doubted by it (as on a shared runner): they take turns.
pub(super) fn one_job_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_job_that_forgets_compose_down_is_cleaned_and_the_runners_service_survives() {
    if !require_engine() {
        return;
    }
    let _turn = one_job_at_a_time();
    let mut cleanup = Cleanup::default();
    let tag = unique("job");
    let label = format!("portreap.test={tag}");
    // The runner's long-lived service, there before the job.
    let service = unique("runnersvc");
    let sport = free_port();
    run_container(
        &mut cleanup,
        &service,
        &["--label", &label, "-p", &format!("{sport}:80")],
        &["httpd", "-f", "-p", "80"],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("baseline.json");
    // The job's workspace is the temporary directory (other tests may run jobs beside
    // this one: what it makes must be proven its own).
    let out = portreap()
        .args(["baseline", "save", file.to_str().unwrap()])
        .env("CI_PROJECT_DIR", dir.path())
        .output()
        .unwrap();
    assert_success(&out);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["schema_version"], 2);
    let job = format!("portreap.job={}", saved["job"]["id"].as_str().unwrap());

    // The job: a compose project it never takes down (labelled, healthy), and a container
    // recreated under the service's name pattern would be new too.
    let project = unique("jobproj").replace('-', "");
    let proj_dir = dir.path().join(&project);
    std::fs::create_dir(&proj_dir).unwrap();
    cleanup.compose(&project, &proj_dir);
    let jport = free_port();
    let up = compose_up_labelled(&proj_dir, Some(&project), jport, Some(&label));
    assert_success(&up);
    let extra = unique("jobextra");
    let xport = free_port();
    run_container(
        &mut cleanup,
        &extra,
        &[
            "--label",
            &label,
            "--label",
            &job,
            "-p",
            &format!("{xport}:80"),
        ],
        &["httpd", "-f", "-p", "80"],
    );

    // The job's end: prune what is new since the baseline, among this test's containers.
    let prune_since = || {
        let out = portreap()
            .args([
                "prune",
                "--json",
                "--yes",
                "--grace",
                "1s",
                "--min-age",
                "0s",
                "--since-baseline",
            ])
            .args([file.to_str().unwrap(), "--label", &label])
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), doc)
    };
    let (code, doc) = prune_since();
    assert_eq!(code, Some(0), "{doc:#}");
    let mut removed: Vec<String> = doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(
                (a["action"].as_str(), a["outcome"].as_str()),
                (Some("remove-container"), Some("done")),
                "{a:#}"
            );
            assert_eq!(a["port_free_after"], true);
            a["container"]["name"].as_str().unwrap().to_owned()
        })
        .collect();
    removed.sort();
    let mut expected = vec![format!("{project}-web-1"), extra.clone()];
    expected.sort();
    assert_eq!(removed, expected, "healthy, but the job made them");
    assert_eq!(doc["kept"][0]["container"]["name"], service.as_str());
    assert_eq!(
        doc["kept"][0]["reason"],
        "in the baseline: not created by this job"
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &service]),
        "running"
    );

    // A second run finds nothing new.
    let (code, doc) = prune_since();
    assert_eq!(
        (code, doc["actions"].as_array().unwrap().len()),
        (Some(0), 0)
    );
}

#[test]
fn a_bad_baseline_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "not json").unwrap();
    for file in [bad.to_str().unwrap(), "/nonexistent/baseline.json"] {
        let out = portreap()
            .args(["prune", "--since-baseline", file])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
    }
    let out = portreap()
        .args(["prune", "--since-baseline", "x", "--include-suspects"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
