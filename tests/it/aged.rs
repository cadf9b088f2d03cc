//! The defaults on an aged host. Users run `prune` with its default flags on containers
//! that have been up for hours, and the default view reads a running container that has
//! been up quietly for two minutes from the engine's list alone (it is "settled"); tests
//! that act on containers seconds old, with `--min-age 0s`, never meet that path.
//!
//! One fixture builds every finding kind that acts, in four sets, and waits once until
//! every container is past the settle window; then, in order (each step acts on what the
//! ones before it left):
//!
//! 1. `views`: the premise (the settled ones are read from the list) and every fact the
//!    planners and rules read, the same in the default, `--all` and `--port` views;
//! 2. `recipes`: the cron and systemd recipes' exact command lines act on none of it and
//!    say how old each holder is (never "0s" nor "unknown");
//! 3. `dry_runs`: `prune`, `prune --include-suspects` and `prune --older-than 1m` plan
//!    every leak (and suspect) of the sets;
//! 4. `why_next`: every kind's `next:` suggestion, pasted as printed (with `--yes`, no
//!    configuration), frees its port;
//! 5. `older_than`: `prune --yes --older-than 1m` removes the leaks of its set and keeps
//!    the ones a configuration protects;
//! 6. `default_prune`: `prune --yes` removes those, and leaves the suspects;
//! 7. `include_suspects`: `prune --yes --include-suspects` removes the suspects.
//!
//! A default prune acts on every leak of the engine, so `.ci/test` runs this group alone
//! against the default engine (`PORTREAP_AGED_PHASE=1`), beside the modern engine's
//! set-up, which hides most of the wait; in the ordinary run it has nothing to test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// Past the default view's settle window: the engine words an uptime of 120 s and more
/// as "Up 2 minutes", which the view reads as settled.
const AGED: Duration = Duration::from_secs(125);

fn in_phase() -> bool {
    if std::env::var("PORTREAP_AGED_PHASE").as_deref() != Ok("1") {
        eprintln!("skipping: runs in the aged phase of .ci/test (its default prunes act on every leak of the engine)");
        return false;
    }
    assert!(require_engine(), "the aged phase needs the engine");
    assert!(
        test_engine().is_none(),
        "the aged phase runs against the default engine"
    );
    true
}

/// What holds a scenario's port.
enum Holder {
    Container(String),
    Proxy(ChildGuard),
}

/// One finding reproduced: its kind, its port, what holds or wants the port.
struct Case {
    kind: &'static str,
    port: u16,
    holder: Holder,
    /// Settled: running, no health check, so the default view reads it from the list.
    settled: bool,
}

impl Case {
    fn container(&self) -> Option<&str> {
        match &self.holder {
            Holder::Container(name) => Some(name),
            Holder::Proxy(_) => None,
        }
    }

    fn label(&self) -> String {
        match &self.holder {
            Holder::Container(name) => format!("{} {name} on {}", self.kind, self.port),
            Holder::Proxy(p) => format!("{} pid {} on {}", self.kind, p.0.id(), self.port),
        }
    }

    /// Whether the holder is gone and the port free (a dormant container held nothing).
    fn freed(&self) -> bool {
        let gone = match &self.holder {
            Holder::Container(name) => !exists(name),
            Holder::Proxy(p) => !alive(p.0.id()),
        };
        gone && port_free(self.port)
    }

    fn assert_untouched(&self) {
        match &self.holder {
            Holder::Container(name) => assert!(exists(name), "{} was acted on", self.label()),
            Holder::Proxy(p) => assert!(alive(p.0.id()), "{} was acted on", self.label()),
        }
    }
}

/// Whether process `pid` runs (a killed child of this test stays a zombie until reaped).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        !matches!(state, Some(Some('Z' | 'X')))
    })
}

fn exists(name: &str) -> bool {
    Command::new("docker")
        .args(["inspect", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The four sets, and what keeps them alive until the group ends.
struct Fixture {
    /// One of every acting kind, freed by the `next:` `why` prints.
    why: Vec<Case>,
    /// Leaks for `--older-than 1m`.
    older: Vec<Case>,
    /// Leaks for the default prune.
    default: Vec<Case>,
    /// Suspects for `--include-suspects`.
    suspects: Vec<Case>,
    cleanup: Cleanup,
    _dirs: Vec<tempfile::TempDir>,
}

impl Fixture {
    fn all(&self) -> impl Iterator<Item = &Case> {
        self.why
            .iter()
            .chain(&self.older)
            .chain(&self.default)
            .chain(&self.suspects)
    }

    fn leaks(&self) -> impl Iterator<Item = &Case> {
        self.all().filter(|c| leak(c.kind))
    }
}

fn leak(kind: &str) -> bool {
    matches!(
        kind,
        "orphaned-proxy" | "dead-container" | "orphaned-compose"
    )
}

/// Builds the sets. Proxies target addresses no container has.
fn build() -> Fixture {
    let mut f = Fixture {
        why: Vec::new(),
        older: Vec::new(),
        default: Vec::new(),
        suspects: Vec::new(),
        cleanup: Cleanup::default(),
        _dirs: Vec::new(),
    };
    let leaks = |f: &mut Fixture, target: &str| -> Vec<Case> {
        vec![
            proxy(target),
            dead(&mut f.cleanup),
            compose_gone(&mut f.cleanup),
        ]
    };
    let mut why = leaks(&mut f, "172.17.255.201");
    why.extend(suspects(&mut f));
    f.why = why;
    f.older = leaks(&mut f, "172.17.255.202");
    f.default = leaks(&mut f, "172.17.255.203");
    f.suspects = suspects(&mut f);
    f
}

fn suspects(f: &mut Fixture) -> Vec<Case> {
    let (orphan, dir) = orphan_service(&mut f.cleanup);
    f._dirs.push(dir);
    vec![
        orphan,
        paused(&mut f.cleanup),
        unhealthy(&mut f.cleanup),
        restarting(&mut f.cleanup),
        dormant(&mut f.cleanup),
    ]
}

fn proxy(target: &str) -> Case {
    let port = free_port();
    Case {
        kind: "orphaned-proxy",
        port,
        holder: Holder::Proxy(stale_proxy("tcp", "0.0.0.0", port, target)),
        settled: false,
    }
}

fn container_case(kind: &'static str, name: String, port: u16, settled: bool) -> Case {
    Case {
        kind,
        port,
        holder: Holder::Container(name),
        settled,
    }
}

/// A container the engine marks `dead`: its removal failed part way on an immutable file.
/// The file is made mutable again at once, so a prune can remove it (the state stays).
fn dead(cleanup: &mut Cleanup) -> Case {
    let name = unique("ageddead");
    let port = free_port();
    let id = httpd(cleanup, &name, port);
    let root = docker(&["info", "--format", "{{.DockerRootDir}}"]);
    let file = format!("{root}/containers/{id}/hostname");
    let chattr = |flag: &str| {
        let ok = Command::new("chattr").args([flag, &file]).status();
        assert!(ok.is_ok_and(|s| s.success()), "chattr {flag} {file}");
    };
    chattr("+i");
    let rm = Command::new("docker").args(["rm", "-f", &name]).output();
    chattr("-i");
    assert!(!rm.unwrap().status.success(), "the removal should fail");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &name]),
        "dead"
    );
    container_case("dead-container", name, port, false)
}

/// A compose v2 project whose directory was deleted after `up`.
fn compose_gone(cleanup: &mut Cleanup) -> Case {
    let parent = tempfile::tempdir().unwrap();
    let project = unique("agedgone").replace('-', "");
    let dir = parent.path().join(&project);
    std::fs::create_dir(&dir).unwrap();
    cleanup.compose(&project, &dir);
    let port = free_port();
    assert_success(&compose_up(&dir, None, port));
    drop(parent);
    let name = Compose::V2.container(&project, "web");
    container_case("orphaned-compose", name, port, true)
}

/// A compose v2 project whose file no longer defines its published service (deleted);
/// a service without ports stays.
fn orphan_service(cleanup: &mut Cleanup) -> (Case, tempfile::TempDir) {
    const KEEP: &str = "  keep:\n    image: IMAGE\n    command: sleep 3600\n";
    let keep = KEEP.replace("IMAGE", &image());
    let parent = tempfile::tempdir().unwrap();
    let project = unique("agedorphan").replace('-', "");
    let dir = parent.path().join(&project);
    std::fs::create_dir(&dir).unwrap();
    cleanup.compose(&project, &dir);
    let port = free_port();
    let file = dir.join(Compose::V2.file());
    let web = compose_service("web", port, "");
    std::fs::write(&file, format!("services:\n{web}{keep}")).unwrap();
    assert_success(&compose_run(Compose::V2, &dir, None, &["up", "-d"]));
    std::fs::write(&file, format!("services:\n{keep}")).unwrap();
    let name = Compose::V2.container(&project, "web");
    (container_case("orphan-service", name, port, true), parent)
}

fn paused(cleanup: &mut Cleanup) -> Case {
    let name = unique("agedpaused");
    let port = free_port();
    httpd(cleanup, &name, port);
    docker(&["pause", &name]);
    container_case("paused-container", name, port, false)
}

fn unhealthy(cleanup: &mut Cleanup) -> Case {
    let name = unique("agedunhealthy");
    let port = free_port();
    let publish = format!("{port}:80");
    let check = ["--health-cmd", "false", "--health-interval", "1s"];
    let args = [&["-p", &publish][..], &check, &["--health-retries", "1"]].concat();
    run_container(cleanup, &name, &args, &["httpd", "-f", "-p", "80"]);
    container_case("unhealthy-container", name, port, false)
}

fn restarting(cleanup: &mut Cleanup) -> Case {
    let name = unique("agedrestarting");
    let port = free_port();
    let publish = format!("{port}:80");
    run_container(
        cleanup,
        &name,
        &["-p", &publish, "--restart", "always"],
        &["sh", "-c", "sleep 0.2; exit 3"],
    );
    container_case("restarting-container", name, port, false)
}

fn dormant(cleanup: &mut Cleanup) -> Case {
    let name = unique("ageddormant");
    let port = free_port();
    let publish = format!("{port}:80");
    run_container(
        cleanup,
        &name,
        &["-p", &publish, "--restart", "always"],
        &["httpd", "-f", "-p", "80"],
    );
    docker(&["stop", "-t", "1", &name]);
    container_case("dormant-binding", name, port, false)
}

/// The whole group: the fixture, the wait, then the steps in order. A step that fails
/// does not stop the ones after it (each has its own set); the test fails at the end
/// naming every step that failed.
#[test]
fn the_defaults_act_on_an_aged_host() {
    if !in_phase() {
        return;
    }
    let f = build();
    let ready = Instant::now() + AGED;
    // Every finding is there before the wait (a crash loop and a failing check take a
    // few seconds to show), so a broken scenario fails at once.
    let found = |doc: &Value| {
        f.all()
            .all(|case| kinds_on(doc, case.port).contains(&case.kind))
    };
    let doc = eventually(Duration::from_secs(30), || {
        Some(json(&["scan", "--json"])).filter(found)
    });
    if doc.is_none() {
        let doc = json(&["scan", "--json"]);
        f.all().for_each(|case| assert_finding(&doc, case));
    }
    std::thread::sleep(ready.saturating_duration_since(Instant::now()));
    type Step = fn(&Fixture);
    let steps: [(&str, Step); 7] = [
        ("views", views),
        ("recipes", recipes),
        ("dry_runs", dry_runs),
        ("why_next", why_next_pasted),
        ("older_than", older_than),
        ("default_prune", default_prune),
        ("include_suspects", include_suspects),
    ];
    let mut failed = Vec::new();
    for (name, step) in steps {
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| step(&f)));
        eprintln!("aged step {name}: {:.1} s", started.elapsed().as_secs_f64());
        if outcome.is_err() {
            failed.push(name);
        }
    }
    drop(f);
    assert!(failed.is_empty(), "aged steps failed: {failed:?}");
}

fn kinds_on(doc: &Value, port: u16) -> Vec<&str> {
    findings_on(doc, port)
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect()
}

fn assert_finding(doc: &Value, case: &Case) {
    let kinds = kinds_on(doc, case.port);
    assert!(
        kinds.contains(&case.kind),
        "{}: found {kinds:?}",
        case.label()
    );
}

/// The container of `name` in a scan document (its ports' and findings' records).
fn container_in<'a>(doc: &'a Value, name: &str) -> &'a Value {
    ["ports", "findings"]
        .iter()
        .filter_map(|list| doc[*list].as_array())
        .flatten()
        .map(|entry| &entry["container"])
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the scan: {doc:#}"))
}

/// The facts the planners, guards and rules read of a container, as a view shows them
/// (the creation time to the second: the list gives no more).
fn facts(c: &Value) -> Value {
    let mut facts = c.clone();
    let created = c["created"].as_str().map(|t| t.get(..19).unwrap_or(t));
    facts["created"] = serde_json::json!(created);
    for only_inspected in ["started_at", "restart_policy", "inspected"] {
        facts.as_object_mut().unwrap().remove(only_inspected);
    }
    facts
}

/// The premise, and the facts: a settled container is read from the list in the default
/// view, and every fact the planners and rules read is there, the same as the full
/// record's (`--all`) and the restricted view's (`--port`).
fn views(f: &Fixture) {
    let default = json(&["scan", "--json"]);
    let all = json(&["scan", "--all", "--json"]);
    for case in f.all() {
        assert_finding(&default, case);
        let Some(name) = case.container() else {
            continue;
        };
        let listed = container_in(&default, name);
        let full = container_in(&all, name);
        assert_eq!(full["inspected"], true, "{}", case.label());
        if case.settled {
            assert_eq!(
                listed["inspected"],
                false,
                "{}: not settled, so this is not the aged path",
                case.label()
            );
        }
        // The engine's own word for the creation time, to the second.
        let created = docker(&["inspect", "-f", "{{.Created}}", name]);
        assert_eq!(
            facts(listed)["created"],
            created.get(..19).unwrap_or(&created),
            "{}: {listed:#}",
            case.label()
        );
        let port = json(&["scan", "--json", "--port", &case.port.to_string()]);
        let restricted = container_in(&port, name);
        // A crash loop's state changes between two scans; its other facts do not.
        let stable = |c: &Value| {
            let mut facts = facts(c);
            if case.kind == "restarting-container" {
                facts.as_object_mut().unwrap().remove("state");
            }
            facts
        };
        assert_eq!(stable(listed), stable(full), "{}", case.label());
        assert_eq!(stable(restricted), stable(full), "{}", case.label());
    }
}

/// Runs a shell line as a person pasting it would: this portreap first on PATH, no
/// configuration of theirs, no terminal. Returns what it printed.
fn shell(line: &str, config: Option<&str>) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("portreap");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let home = tempfile::tempdir().unwrap();
    if let Some(text) = config {
        std::fs::create_dir(home.path().join("portreap")).unwrap();
        std::fs::write(home.path().join("portreap/config.toml"), text).unwrap();
    }
    Command::new("sh")
        .args(["-c", line])
        .env("PATH", path)
        .env_remove("DOCKER_HOST")
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_CACHE_HOME", cache_home())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sh")
}

/// `shell`, parsed as a prune document (checked against the schema).
fn prune_doc(line: &str, config: Option<&str>) -> Value {
    let out = shell(line, config);
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "{line} exited {code:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_schema("prune", &out.stdout);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// The entries of a prune document's `list` ("actions", "kept") on the case's port.
fn on_port<'a>(doc: &'a Value, list: &str, case: &Case) -> Vec<&'a Value> {
    doc[list]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == case.port)
        })
        .collect()
}

/// The recipes' command lines, as shipped, with the binary under test in their binary's
/// place and their logs in a temporary directory.
fn recipe_lines(logs: &std::path::Path) -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docker");
    let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
    let cron = read("portreap.cron");
    let cron = cron
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap();
    let command: Vec<&str> = cron.split_whitespace().skip(6).collect();
    let cron = command
        .join(" ")
        .replace("/var/log/", &format!("{}/", logs.display()));
    let service = read("portreap.service");
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let bin = assert_cmd::cargo::cargo_bin("portreap");
    [cron.as_str(), exec]
        .iter()
        .map(|l| l.replace("/usr/local/bin/portreap", bin.to_str().unwrap()))
        .collect()
}

/// The cron and systemd recipes act on nothing younger than 30 minutes, and say the age
/// they read: two minutes and more, never "0s" nor "unknown".
fn recipes(f: &Fixture) {
    let logs = tempfile::tempdir().unwrap();
    for line in recipe_lines(logs.path()) {
        let doc = if line.contains(">>") {
            // Two runs of the cron job: its log gets a JSON document a line.
            assert_success(&shell(&line, None));
            assert_success(&shell(&line, None));
            let jsonl = std::fs::read_to_string(logs.path().join("portreap.jsonl")).unwrap();
            let runs: Vec<Value> = jsonl
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
            assert_eq!(runs.len(), 2, "{jsonl}");
            runs[1].clone()
        } else {
            prune_doc(&line, None)
        };
        for case in f.leaks() {
            assert!(
                on_port(&doc, "actions", case).is_empty(),
                "{line}: acted on {}",
                case.label()
            );
            let kept = on_port(&doc, "kept", case);
            let reason = kept
                .first()
                .and_then(|k| k["reason"].as_str())
                .unwrap_or_else(|| panic!("{line}: {} not kept: {doc:#}", case.label()));
            assert!(
                reason.contains(" min ago, not older than --older-than 1800s"),
                "{line}: {}: {reason}",
                case.label()
            );
            case.assert_untouched();
        }
    }
}

/// Every leak (and with `--include-suspects`, every suspect) of the sets is planned, none
/// kept.
fn dry_runs(f: &Fixture) {
    for (args, suspects) in [
        ("prune --dry-run --json", false),
        ("prune --include-suspects --dry-run --json", true),
        ("prune --older-than 1m --dry-run --json", false),
    ] {
        let doc = prune_doc(&format!("portreap {args}"), None);
        assert_eq!(doc["dry_run"], true);
        for case in f.all() {
            let planned = on_port(&doc, "actions", case);
            let kept = on_port(&doc, "kept", case);
            if leak(case.kind) || suspects {
                assert!(
                    planned.len() == 1 && kept.is_empty(),
                    "{args}: {} not planned: {kept:?}",
                    case.label()
                );
                assert_eq!(planned[0]["outcome"], "planned");
            } else {
                assert!(planned.is_empty(), "{args}: planned {}", case.label());
            }
        }
    }
}

/// The `next:` line `why PORT` prints for each kind, pasted with `--yes` (no terminal to
/// confirm on), frees the port.
fn why_next_pasted(f: &Fixture) {
    for case in &f.why {
        let out = shell(&format!("portreap why {}", case.port), None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let next = text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("next: "))
            .unwrap_or_else(|| panic!("{}: no next step: {text}", case.label()));
        assert!(
            next.starts_with("portreap prune --kind "),
            "{}: {next}",
            case.label()
        );
        let line = format!("{next} --yes");
        let out = shell(&line, None);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{line}: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            eventually(Duration::from_secs(10), || case.freed().then_some(())).is_some(),
            "{line} left {} in place: {said}",
            case.label()
        );
    }
}

/// Asserts every case of `set` was acted on and its port proven free.
fn assert_done(doc: &Value, set: &[Case], line: &str) {
    for case in set {
        let done = on_port(doc, "actions", case);
        assert!(
            done.len() == 1 && done[0]["outcome"] == "done",
            "{line}: {}: {done:?} {doc:#}",
            case.label()
        );
        assert_eq!(done[0]["port_free_after"], true, "{}", case.label());
        assert!(case.freed(), "{line}: {} still there", case.label());
    }
}

/// The cron policy's limit shortened to a minute acts on the aged leaks, but not on the
/// ones the configuration protects (the default set's ports).
fn older_than(f: &Fixture) {
    let ports: Vec<String> = f.default.iter().map(|c| c.port.to_string()).collect();
    let config = format!("[prune]\nprotect_ports = \"{}\"\n", ports.join(","));
    let line = "portreap prune --yes --older-than 1m --json";
    let doc = prune_doc(line, Some(&config));
    assert_done(&doc, &f.older, line);
    for case in &f.default {
        let kept = on_port(&doc, "kept", case);
        assert_eq!(kept.len(), 1, "{}: {doc:#}", case.label());
        case.assert_untouched();
    }
}

/// `prune --yes` as shipped: the leaks go, the suspects stay.
fn default_prune(f: &Fixture) {
    let line = "portreap prune --yes --json";
    let doc = prune_doc(line, None);
    assert_done(&doc, &f.default, line);
    for case in &f.suspects {
        assert!(
            on_port(&doc, "actions", case).is_empty(),
            "{}",
            case.label()
        );
        case.assert_untouched();
    }
}

/// `prune --yes --include-suspects`: the suspects go too.
fn include_suspects(f: &Fixture) {
    let line = "portreap prune --yes --include-suspects --json";
    let doc = prune_doc(line, None);
    assert_done(&doc, &f.suspects, line);
}
