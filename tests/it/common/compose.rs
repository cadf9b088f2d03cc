//! Compose projects: both implementations, and projects brought up for a test.

use super::*;

/// Which compose runs a test's project: v2 (`docker compose`, what users run) unless a
/// test is about v1's labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compose {
    /// The Go plugin, `docker compose`: `proj-svc-1`, absolute `config_files`.
    V2,
    /// Debian's Python `docker-compose` 1.29: `proj_svc_1`, relative `config_files`.
    V1,
}

impl Compose {
    /// The command, not yet given arguments.
    pub fn command(self) -> Command {
        match self {
            Compose::V2 => {
                let mut cmd = Command::new("docker");
                cmd.arg("compose");
                cmd
            }
            Compose::V1 => Command::new("docker-compose"),
        }
    }

    /// The file name each looks for by default.
    pub fn file(self) -> &'static str {
        match self {
            Compose::V2 => "compose.yaml",
            Compose::V1 => "docker-compose.yml",
        }
    }

    /// What a compose file starts with for it: v1 needs a format version, v2 warns
    /// about one.
    pub fn header(self) -> &'static str {
        match self {
            Compose::V2 => "",
            Compose::V1 => "version: '3.8'\n",
        }
    }

    /// A service's first container, as each names it.
    pub fn container(self, project: &str, service: &str) -> String {
        match self {
            Compose::V2 => format!("{project}-{service}-1"),
            Compose::V1 => format!("{project}_{service}_1"),
        }
    }
}

/// One service of the test image serving HTTP on `port`, as compose YAML under `services:`.
pub fn compose_service(name: &str, port: u16, extra: &str) -> String {
    format!(
        "  {name}:\n    image: {}\n    command: httpd -f -p 80\n{extra}    ports:\n      - \"{port}:80\"\n",
        image()
    )
}

/// Runs `compose` with `args` in `dir` (as project `project`, if given).
pub fn compose_run(
    compose: Compose,
    dir: &std::path::Path,
    project: Option<&str>,
    args: &[&str],
) -> Output {
    let mut cmd = compose.command();
    if let Some(p) = project {
        cmd.args(["-p", p]);
    }
    cmd.args(args)
        .current_dir(dir)
        .output()
        .expect("run compose")
}

/// Writes a one-service compose file (`web`, the test image, publishing `port`) into `dir`
/// and runs `docker compose up -d` there, as project `project` or the directory's default
/// name.
pub fn compose_up(dir: &std::path::Path, project: Option<&str>, port: u16) -> Output {
    compose_up_with(Compose::V2, dir, project, port, None)
}

/// [`compose_up`], the service's container labelled `KEY=VALUE` when `label` is given.
pub fn compose_up_labelled(
    dir: &std::path::Path,
    project: Option<&str>,
    port: u16,
    label: Option<&str>,
) -> Output {
    compose_up_with(Compose::V2, dir, project, port, label)
}

/// [`compose_up_labelled`] by the compose given.
pub fn compose_up_with(
    compose: Compose,
    dir: &std::path::Path,
    project: Option<&str>,
    port: u16,
    label: Option<&str>,
) -> Output {
    let labels = label.map_or(String::new(), |l| format!("    labels:\n      - \"{l}\"\n"));
    std::fs::write(
        dir.join(compose.file()),
        format!(
            "{}services:\n{}",
            compose.header(),
            compose_service("web", port, &labels)
        ),
    )
    .unwrap();
    compose_run(compose, dir, project, &["up", "-d"])
}

/// [`compose_up`], which must succeed.
pub fn compose_up_ok(dir: &std::path::Path, project: Option<&str>, port: u16) {
    let up = compose_up(dir, project, port);
    assert!(
        up.status.success(),
        "docker compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
}
