//! CI jobs sharing a runner host: each job is a process tree of its own (a shell that runs
//! what it is sent, as a runner's job does), with its own workspace and CI id. Each job's
//! cleanup removes only what is proven its own; the other's work keeps running, and what
//! could be either's is kept with the other job named.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;
use std::time::Duration;

use crate::common::*;

/// A CI job: a bash of its own that runs each command line it is sent, in its workspace,
/// with `CI_PROJECT_DIR` and `CI_JOB_ID` set, and this portreap first on PATH.
pub struct JobShell {
    child: ChildGuard,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
    /// Its workspace (and, beside it, where its commands' output goes).
    pub dir: tempfile::TempDir,
}

impl JobShell {
    pub fn start(ci_id: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ws")).unwrap();
        let bin = assert_cmd::cargo::cargo_bin("portreap");
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("bash");
        cmd.args([
            "-c",
            "while IFS= read -r line; do eval \"$line\"; echo \"__done $?\"; done",
        ])
        .current_dir(dir.path().join("ws"))
        .env("PATH", path)
        .env("CI_PROJECT_DIR", dir.path().join("ws"))
        .env("CI_JOB_ID", ci_id)
        .env("XDG_CACHE_HOME", cache_home())
        .env_remove("GITHUB_WORKSPACE")
        .env_remove("WORKSPACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
        if let Some(url) = test_engine() {
            cmd.env("DOCKER_HOST", url);
        }
        let mut child = dies_with_test(&mut cmd).spawn().expect("bash");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        JobShell {
            child: ChildGuard(child),
            stdin,
            out,
            dir,
        }
    }

    /// The job's workspace.
    pub fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    /// Its shell's PID.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Runs `line` in the job; its exit code, stdout and stderr.
    pub fn run(&mut self, line: &str) -> (i32, String, String) {
        let (out, err) = (self.dir.path().join("out"), self.dir.path().join("err"));
        // Braced: the line's own redirections stay its own.
        let (o, e) = (out.display(), err.display());
        writeln!(self.stdin, "{{ {line}; }} >{o} 2>{e}").unwrap();
        let mut said = String::new();
        loop {
            said.clear();
            assert!(
                self.out.read_line(&mut said).unwrap() > 0,
                "the job's shell ended"
            );
            if let Some(code) = said.trim().strip_prefix("__done ") {
                let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
                return (code.parse().unwrap(), read(&out), read(&err));
            }
        }
    }

    /// Saves the job's baseline in its directory; returns the job's id.
    pub fn save(&mut self) -> String {
        let (code, out, err) = self.run("portreap baseline save ../baseline.json");
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("registered in"), "{err}");
        let saved: Value =
            serde_json::from_slice(&std::fs::read(self.dir.path().join("baseline.json")).unwrap())
                .unwrap();
        assert_eq!(
            out,
            format!("{}\n", saved["job"]["id"].as_str().unwrap()),
            "the id on stdout"
        );
        out.trim().to_owned()
    }

    /// The job's cleanup, confined to `ports` (other tests run beside this one).
    pub fn prune(&mut self, ports: &[u16]) -> Value {
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let (code, out, err) = self.run(&format!(
            "portreap prune --since-baseline ../baseline.json --yes --json --grace 1s --min-age 0s --kill-processes --port {}",
            ports.join(",")
        ));
        assert!(code == 0 || code == 1, "exit {code}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"))
    }

    /// Starts a listener on `port` in the background of the job; its PID.
    pub fn listen(&mut self, port: u16) -> u32 {
        let script = format!(
            "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(600)"
        );
        let (code, out, _) = self.run(&format!("python3 -c \"{script}\" & echo $!"));
        assert_eq!(code, 0);
        let pid = out.trim().parse().unwrap();
        eventually(Duration::from_secs(10), || (!port_free(port)).then_some(()))
            .expect("the job's listener never listened");
        pid
    }
}

impl Drop for JobShell {
    fn drop(&mut self) {
        // Its background listeners too.
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.pid().to_string()])
            .status();
    }
}

/// The names of the containers a prune document acted on, and its kept reasons by name.
fn acted(doc: &Value) -> Vec<String> {
    let mut names: Vec<String> = doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| match a["container"]["name"].as_str() {
            Some(name) => name.to_owned(),
            None => format!("pid {}", a["pids"][0]),
        })
        .collect();
    names.sort();
    names
}

fn kept_reason(doc: &Value, port: u16) -> &str {
    doc["kept"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| {
            k["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == port)
        })
        .and_then(|k| k["reason"].as_str())
        .unwrap_or_else(|| panic!("nothing kept on {port}: {doc:#}"))
}

fn running(name: &str) -> bool {
    docker(&["inspect", "-f", "{{.State.Status}}", name]) == "running"
}

/// A compose project started in `dir` (a job's workspace), publishing `port`.
fn compose_in(cleanup: &mut Cleanup, dir: &Path, tag: &str, port: u16) -> String {
    let project = unique(tag).replace('-', "");
    let dir = dir.join(&project);
    std::fs::create_dir(&dir).unwrap();
    cleanup.compose(&project, &dir);
    assert_success(&compose_up(&dir, Some(&project), port));
    Compose::V2.container(&project, "web")
}

#[test]
fn two_jobs_at_once_each_clean_only_their_own() {
    if !require_engine() {
        return;
    }
    let _turn = super::one_job_at_a_time();
    let mut cleanup = Cleanup::default();
    let (mut a, mut b) = (JobShell::start("101"), JobShell::start("202"));
    let a_id = a.save();
    b.save();
    // Interleaved: B starts a project in its workspace, a plain container and a
    // listener; then A the same, one of its containers labelled with its id.
    let ports = free_ports(8);
    let [b_proj, b_run, b_listen, a_proj, a_label, a_run, a_listen, _] =
        std::array::from_fn(|i| ports + i as u16);
    let b_project = compose_in(&mut cleanup, &b.ws(), "jobb", b_proj);
    let b_plain = unique("jobbrun");
    httpd(&mut cleanup, &b_plain, b_run);
    let b_pid = b.listen(b_listen);
    let a_project = compose_in(&mut cleanup, &a.ws(), "joba", a_proj);
    let (a_labelled, a_plain) = (unique("jobalabel"), unique("jobarun"));
    let label = format!("portreap.job={a_id}");
    run_container(
        &mut cleanup,
        &a_labelled,
        &["-l", &label, "-p", &format!("{a_label}:80")],
        &["httpd", "-f", "-p", "80"],
    );
    httpd(&mut cleanup, &a_plain, a_run);
    let a_pid = a.listen(a_listen);
    let all = [b_proj, b_run, b_listen, a_proj, a_label, a_run, a_listen];

    // A's cleanup: its project, its labelled container, its listener; nothing of B's,
    // and its plain container is kept: B was running when it was made.
    let doc = a.prune(&all);
    let mut want = vec![
        a_project.clone(),
        a_labelled.clone(),
        format!("pid {a_pid}"),
    ];
    want.sort();
    assert_eq!(acted(&doc), want, "{doc:#}");
    let b_named = "job ";
    for (port, reason) in [
        (
            b_proj,
            "its compose project was started in the workspace of job ",
        ),
        (b_run, "created while job "),
        (a_run, "created while job "),
        (b_listen, "it runs under job "),
    ] {
        let got = kept_reason(&doc, port);
        assert!(
            got.starts_with(reason) && got.contains("(CI_JOB_ID=202)"),
            "{port}: {got}"
        );
        assert!(got.contains(b_named));
    }
    assert!(running(&b_project) && running(&b_plain) && running(&a_plain));
    assert!(!port_free(b_listen), "B's listener was signalled");
    assert!(port_free(a_proj) && port_free(a_listen));

    // B's cleanup, after A's ended: its project and its listener; its plain container and
    // A's leftover were made while A ran, so they are kept, A named.
    let doc = b.prune(&all);
    let mut want = vec![b_project.clone(), format!("pid {b_pid}")];
    want.sort();
    assert_eq!(acted(&doc), want, "{doc:#}");
    for port in [b_run, a_run] {
        let got = kept_reason(&doc, port);
        assert!(got.contains("(CI_JOB_ID=101)"), "{port}: {got}");
    }
    assert!(running(&b_plain) && running(&a_plain));
}

/// A job killed mid-way (its shell gone, never cleaned up) holds no later job back: what
/// the next job makes is its own, and the dead job's leftovers were there before it.
#[test]
fn a_job_killed_mid_way_does_not_block_the_next() {
    if !require_engine() {
        return;
    }
    let _turn = super::one_job_at_a_time();
    let mut cleanup = Cleanup::default();
    let (left, mine) = (free_port(), free_port());
    let mut dead = JobShell::start("301");
    dead.save();
    let leftover = unique("deadjob");
    httpd(&mut cleanup, &leftover, left);
    // Killed (SIGKILL, by its guard), never cleaned up.
    let pid = dead.pid();
    drop(dead);
    eventually(Duration::from_secs(5), || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });

    let mut next = JobShell::start("302");
    next.save();
    let plain = unique("nextjob");
    httpd(&mut cleanup, &plain, mine);
    let doc = next.prune(&[left, mine]);
    assert_eq!(acted(&doc), [plain.as_str()], "{doc:#}");
    assert_eq!(
        kept_reason(&doc, left),
        "in the baseline: not created by this job"
    );
    assert!(running(&leftover));
}

/// A process that existed before the baseline and binds only after it (a daemon handed a
/// socket later) is never signalled, with `--kill-processes` or not.
#[test]
fn a_process_older_than_the_baseline_is_never_signalled() {
    if !require_engine() {
        return;
    }
    let _turn = super::one_job_at_a_time();
    let port = free_port();
    let mut job = JobShell::start("401");
    // Started before the baseline, binds three seconds later.
    let script = format!(
        "import socket,time; time.sleep(3); s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(600)"
    );
    let (code, out, _) = job.run(&format!("python3 -c \"{script}\" & echo $!"));
    assert_eq!(code, 0);
    let pid: u32 = out.trim().parse().unwrap();
    job.save();
    eventually(Duration::from_secs(10), || (!port_free(port)).then_some(()))
        .expect("never listened");
    let doc = job.prune(&[port]);
    assert_eq!(doc["actions"], serde_json::json!([]), "{doc:#}");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!port_free(port));
}

/// The README's shared-runner recipes, three jobs at once: each of GitHub's, GitLab's and
/// Jenkins' lines run as written (the binary under test in portreap's place, the test
/// image for `my-image`, ports of the test's own, and the cleanup confined to them, with
/// the age guard off: the containers are seconds old), each job with its CI's workspace
/// variable and a compose project started there.
#[test]
fn the_shared_runner_recipes_clean_each_job_alone() {
    if !require_engine() {
        return;
    }
    let _turn = super::one_job_at_a_time();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("**CI runners that share a host**")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the recipes in the README");
    let recipes: Vec<Vec<&str>> = block
        .split("\n\n")
        .map(|r| r.lines().filter(|l| !l.starts_with('#')).collect())
        .collect();
    assert_eq!(recipes.len(), 3, "GitHub, GitLab, Jenkins: {block}");
    let mut cleanup = Cleanup::default();
    let bin = assert_cmd::cargo::cargo_bin("portreap");
    let ports = free_ports(6);
    let all: Vec<String> = (ports..ports + 6).map(|p| p.to_string()).collect();
    let mut jobs: Vec<(JobShell, Vec<String>, u16, String)> = Vec::new();
    for (i, (lines, var)) in recipes
        .iter()
        .zip(["GITHUB_WORKSPACE", "CI_PROJECT_DIR", "WORKSPACE"])
        .enumerate()
    {
        let (run_port, compose_port) = (ports + 2 * i as u16, ports + 2 * i as u16 + 1);
        let mut job = JobShell::start(&format!("90{i}"));
        let ws = job.ws();
        let tmp = job.dir.path().display().to_string();
        // Jenkins makes the workspace's `@tmp` directory beside it.
        std::fs::create_dir(format!("{}@tmp", ws.display())).unwrap();
        job.run(&format!(
            "unset CI_PROJECT_DIR CI_JOB_ID; export {var}={} RUNNER_TEMP={tmp} GITHUB_ENV={tmp}/env CI_BUILDS_DIR={tmp} CI_JOB_ID=90{i}",
            ws.display()
        ));
        let lines: Vec<String> = lines
            .iter()
            .map(|l| {
                let l = l.split("   # ").next().unwrap();
                l.replace("portreap ", &format!("{} ", bin.display()))
                    .replace("my-image", &format!("{} httpd -f -p 80", image()))
                    .replace("8080:80", &format!("{run_port}:80"))
            })
            .collect();
        let (code, _, err) = job.run(&lines[0]);
        assert_eq!(code, 0, "{}: {err}", lines[0]);
        let project = compose_in(&mut cleanup, &ws, "recipe", compose_port);
        jobs.push((job, lines, run_port, project));
    }
    for (job, lines, run_port, _) in &mut jobs {
        // GitHub's steps read what an earlier one wrote to GITHUB_ENV.
        let line = format!(
            "[ -f \"$GITHUB_ENV\" ] && set -a && . \"$GITHUB_ENV\"; set +a; {}",
            lines[1]
        );
        let (code, out, err) = job.run(&line);
        assert_eq!(code, 0, "{line}: {err}");
        cleanup.container(out.trim());
        assert!(!port_free(*run_port));
    }
    for (job, lines, run_port, project) in &mut jobs {
        let line = format!("{} --json --min-age 0s --port {}", lines[2], all.join(","));
        let (code, out, err) = job.run(&line);
        assert_eq!(code, 0, "{line}: {err}");
        let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        let names = acted(&doc);
        assert_eq!(
            names.len(),
            2,
            "its project and its labelled container: {doc:#}"
        );
        assert!(names.contains(project), "{doc:#}");
        assert!(port_free(*run_port), "{doc:#}");
    }
}
