//! Compose as users run it (v2, and v1 for its labels) on the real engine: orphan
//! services after a rename or a deletion, the services compose defines without naming
//! them in a label (overrides, profiles, includes, anchors), one-offs, and every next step
//! portreap suggests, pasted, freeing the port.

use std::path::PathBuf;

use crate::common::*;
use serde_json::Value;

/// A compose project in a directory of its own, taken down at the end.
struct Project {
    compose: Compose,
    name: String,
    dir: PathBuf,
    _parent: tempfile::TempDir,
    _cleanup: Cleanup,
}

impl Project {
    fn new(compose: Compose, tag: &str) -> Project {
        let parent = tempfile::tempdir().unwrap();
        let name = unique(tag).replace('-', "");
        let dir = parent.path().join(&name);
        std::fs::create_dir(&dir).unwrap();
        let mut cleanup = Cleanup::default();
        cleanup.compose(&name, &dir);
        Project {
            compose,
            name,
            dir,
            _parent: parent,
            _cleanup: cleanup,
        }
    }

    /// Writes the main compose file: `services` (YAML under `services:`) and `top`
    /// (other top-level keys).
    fn write(&self, top: &str, services: &str) {
        self.write_file(
            self.compose.file(),
            &format!("{}{top}services:\n{services}", self.compose.header()),
        );
    }

    fn write_file(&self, name: &str, text: &str) {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        compose_run(self.compose, &self.dir, None, args)
    }

    fn up(&self, args: &[&str]) {
        let mut all = vec!["up", "-d"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "{:?} up: {}",
            self.compose,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn container(&self, service: &str) -> String {
        self.compose.container(&self.name, service)
    }
}

fn scan(port: u16) -> Value {
    json(&["scan", "--json", "--port", &port.to_string()])
}

/// `(kind, severity, container name)` of each finding on `port`.
fn kinds(doc: &Value, port: u16) -> Vec<(String, String, String)> {
    let mut found: Vec<_> = findings_on(doc, port)
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or_default().to_owned(),
                f["severity"].as_str().unwrap_or_default().to_owned(),
                f["container"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

fn triple(kind: &str, severity: &str, name: &str) -> (String, String, String) {
    (kind.into(), severity.into(), name.into())
}

fn running(name: &str) -> bool {
    docker(&["inspect", "--format", "{{.State.Running}}", name]) == "true"
}

/// The suggestion that starts with `start` once the tested engine's own option is left
/// out (suggestions name a non-default engine: `docker -H URL rm -f ...`), or a failure
/// listing them all. The suggestion is returned whole, to be pasted as it is.
fn suggestion<'a>(next: &'a [String], start: &str) -> &'a str {
    next.iter()
        .find(|s| without_engine(s).starts_with(start))
        .unwrap_or_else(|| panic!("no suggestion starting {start:?} in {next:#?}"))
}

/// A `keep` service with no port: it must survive whatever is done to the orphan.
const KEEP: &str = "  keep:\n    image: portreap-test-busybox:1\n    command: sleep 3600\n";

/// Renames `web` to `frontend` on the same port: compose warns about the orphan, the new
/// service cannot start, and portreap calls it what compose does.
fn renamed(compose: Compose) -> (Project, u16) {
    let project = Project::new(compose, "ren");
    let port = free_port();
    project.write("", &format!("{}{KEEP}", compose_service("web", port, "")));
    project.up(&[]);
    project.write(
        "",
        &format!("{}{KEEP}", compose_service("frontend", port, "")),
    );
    let again = project.run(&["up", "-d"]);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "the orphan holds the port: {said}");
    assert!(said.contains("orphan containers"), "{said}");
    let doc = scan(port);
    assert_eq!(
        kinds(&doc, port),
        [
            triple("blocked-start", "info", &project.container("frontend")),
            triple("orphan-service", "leak", &project.container("web")),
        ],
        "{doc:#}"
    );
    (project, port)
}

#[test]
fn a_renamed_service_is_an_orphan_and_compose_s_own_remedy_frees_it() {
    if !require_engine() {
        return;
    }
    for compose in [Compose::V2, Compose::V1] {
        let (project, port) = renamed(compose);
        let keep = container_id(&project.container("keep"));
        let next = why_next(port);
        let up = suggestion(&next, "cd ");
        assert!(up.ends_with("up -d --remove-orphans"), "{up}");
        pasted(up);
        // The orphan is gone, the renamed service took its port, `keep` was not touched.
        assert!(docker_ids(&[
            "ps",
            "-aq",
            "--filter",
            &format!("name=^{}$", project.container("web"))
        ])
        .is_empty());
        assert!(running(&project.container("frontend")), "{compose:?}");
        assert_eq!(container_id(&project.container("keep")), keep);
        assert!(kinds(&scan(port), port).is_empty(), "{compose:?}");
    }
}

#[test]
fn a_renamed_service_is_pruned_by_the_suggested_command_and_nothing_else_is() {
    if !require_engine() {
        return;
    }
    let (project, port) = renamed(Compose::V2);
    let next = why_next(port);
    let prune = suggestion(&next, "portreap prune --kind orphan-service");
    assert!(
        prune.contains(&format!("--project {}", project.name)),
        "{prune}"
    );
    // A leak: prune acts on it by default, as the suggested command does with --yes.
    pasted(&format!("{prune} --yes"));
    assert!(port_free(port), "{prune} left {port} held");
    assert!(running(&project.container("keep")));
    // Compose then starts the renamed service.
    project.up(&[]);
    assert!(running(&project.container("frontend")));
}

#[test]
fn a_deleted_service_is_a_suspect_orphan() {
    if !require_engine() {
        return;
    }
    let project = Project::new(Compose::V2, "del");
    let port = free_port();
    project.write("", &format!("{}{KEEP}", compose_service("web", port, "")));
    project.up(&[]);
    project.write("", KEEP);
    let doc = scan(port);
    assert_eq!(
        kinds(&doc, port),
        [triple(
            "orphan-service",
            "suspect",
            &project.container("web")
        )],
        "{doc:#}"
    );
    let reason = findings_on(&doc, port)[0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("no longer define service web"), "{reason}");
    // Not a leak: a plain prune leaves it, the suggested one (by kind) removes it.
    let plain = portreap()
        .args([
            "prune",
            "--yes",
            "--min-age",
            "0s",
            "--project",
            &project.name,
        ])
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(0));
    assert!(running(&project.container("web")));
    let next = why_next(port);
    pasted(&format!(
        "{} --yes",
        suggestion(&next, "portreap prune --kind orphan-service")
    ));
    assert!(port_free(port));
    assert!(running(&project.container("keep")));
}

#[test]
fn services_compose_defines_without_a_label_naming_them_are_never_orphans() {
    if !require_engine() {
        return;
    }
    let project = Project::new(Compose::V2, "def");
    let base = free_ports(5);
    let [web, extra, debug, included, anchored] = [0, 1, 2, 3, 4].map(|i| base + i);
    project.write(
        "x-httpd: &httpd\n  image: portreap-test-busybox:1\n  command: httpd -f -p 80\ninclude:\n  - lib/included.yaml\n",
        &format!(
            "{}{}  anchored:\n    <<: *httpd\n    ports:\n      - \"{anchored}:80\"\n",
            compose_service("web", web, ""),
            compose_service("debug", debug, "    profiles: [debug]\n"),
        ),
    );
    project.write_file(
        "compose.override.yaml",
        &format!("services:\n{}", compose_service("extra", extra, "")),
    );
    project.write_file(
        "lib/included.yaml",
        &format!("services:\n{}", compose_service("included", included, "")),
    );
    let with_profile = project.run(&["--profile", "debug", "up", "-d"]);
    assert!(with_profile.status.success(), "{with_profile:?}");
    // The profile is no longer active in the next `up`; its service is still defined.
    project.up(&[]);
    let ports = [web, extra, debug, included, anchored];
    let spec: Vec<String> = ports.iter().map(u16::to_string).collect();
    let doc = json(&["scan", "--json", "--port", &spec.join(",")]);
    for port in ports {
        assert!(
            !entries(&doc, "tcp", port).is_empty(),
            "{port} not held: {doc:#}"
        );
        assert!(kinds(&doc, port).is_empty(), "{port}: {doc:#}");
    }
    // Other tests' projects, judged or not, run beside this one: only this one's count.
    let ours: Vec<&serde_json::Value> = doc["host"]["compose_unjudged"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| {
            u["path"]
                .as_str()
                .is_some_and(|p| std::path::Path::new(p).starts_with(&project.dir))
        })
        .collect();
    assert!(ours.is_empty(), "{doc:#}");
}

#[test]
fn compose_files_portreap_cannot_read_are_not_judged_and_said_so() {
    if !require_engine() {
        return;
    }
    let project = Project::new(Compose::V2, "bad");
    let port = free_port();
    project.write("", &compose_service("web", port, ""));
    project.up(&[]);
    // The service deleted, and the file broken: nothing is called an orphan.
    project.write_file(project.compose.file(), "services: [\n");
    let doc = scan(port);
    assert!(kinds(&doc, port).is_empty(), "{doc:#}");
    let unjudged = doc["host"]["compose_unjudged"].as_array().unwrap();
    assert!(
        unjudged.iter().any(|u| u["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid YAML")),
        "{doc:#}"
    );
    // An include portreap cannot evaluate: the same.
    project.write("include:\n  - ${LIB:-lib}/x.yaml\n", KEEP);
    let doc = scan(port);
    assert!(kinds(&doc, port).is_empty(), "{doc:#}");
    // A scan of a port the project does not touch neither reads nor mentions its files.
    let elsewhere = scan(free_port());
    let dir = project.dir.display().to_string();
    assert!(
        !elsewhere["host"]["compose_unjudged"]
            .to_string()
            .contains(&dir),
        "{elsewhere:#}"
    );
}

#[test]
fn a_one_off_is_named_as_one_and_its_suggestion_frees_the_port() {
    if !require_engine() {
        return;
    }
    let project = Project::new(Compose::V2, "run");
    let port = free_port();
    project.write("", &compose_service("api", port, ""));
    let run = project.run(&["run", "-d", "--service-ports", "api"]);
    assert_success(&run);
    let doc = scan(port);
    let holder = entries(&doc, "tcp", port)
        .into_iter()
        .find(|e| e["owner"]["kind"] == "container")
        .unwrap_or_else(|| panic!("no container holds {port}: {doc:#}"));
    let c = &holder["container"];
    assert_eq!(c["compose_oneoff"], true, "{doc:#}");
    assert_eq!(c["compose_service"], "api");
    let name = c["name"].as_str().unwrap().to_owned();
    let text = String::from_utf8(
        portreap()
            .args(["why", &port.to_string()])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("a one-off (compose run) of service api"),
        "{text}"
    );
    // `compose stop` never touches a one-off: the suggestion is docker's own.
    let next = why_next(port);
    assert!(!next.iter().any(|s| s.contains("compose")), "{next:#?}");
    pasted(suggestion(&next, "docker "));
    assert!(port_free(port), "{next:#?} left {port} held by {name}");
}

#[test]
fn a_gone_directory_s_suggestion_frees_the_port() {
    if !require_engine() {
        return;
    }
    for compose in [Compose::V2, Compose::V1] {
        let project = Project::new(compose, "gone");
        let port = free_port();
        project.write("", &compose_service("web", port, ""));
        project.up(&[]);
        std::fs::remove_dir_all(&project.dir).unwrap();
        assert_eq!(
            kinds(&scan(port), port),
            [triple(
                "orphaned-compose",
                "leak",
                &project.container("web")
            )]
        );
        let next = why_next(port);
        // Compose cannot run without its directory: docker's own command it is.
        assert!(!next.iter().any(|s| s.starts_with("cd ")), "{next:#?}");
        pasted(suggestion(&next, "docker rm -f"));
        assert!(port_free(port), "{compose:?}");
        std::fs::create_dir(&project.dir).unwrap();
    }
}
