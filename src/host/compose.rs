//! Whether the compose directories and files that containers' labels name still exist.

use std::path::{Path, PathBuf};

use crate::model::{ComposeDefinition, Container, EngineStatus, FsFacts, PathState};

/// Where compose paths are looked up: the host's root (`/`, or `--host-root`), and for a
/// local engine in a mount namespace of its own (an engine in a chroot), that engine's
/// root too: the compose client that wrote the labels ran in one of them. A path is gone
/// only when it is gone from both.
#[derive(Clone, Debug)]
pub struct Roots {
    /// The host's root as portreap sees it.
    pub host: PathBuf,
    /// The proven local engine's root (`/proc/PID/root`) when it differs from `host`.
    pub engine: Option<PathBuf>,
}

impl Roots {
    /// The roots for the engine `engine`, whose process (if proven local) is read under
    /// `proc_root`.
    pub fn new(host_root: &Path, proc_root: &Path, engine: &EngineStatus) -> Roots {
        let engine_root = engine
            .process
            .map(|pid| proc_root.join(pid.to_string()).join("root"))
            // An engine sharing portreap's mount namespace needs no second look, and an
            // engine root portreap cannot read adds nothing.
            .filter(|root| super::same_file(root, host_root) == Some(false));
        Roots {
            host: host_root.to_path_buf(),
            engine: engine_root,
        }
    }

    /// Whether `path` exists under either root (see [`path_state`]).
    pub fn state(&self, path: &str) -> PathState {
        match (path_state(&self.host, path), &self.engine) {
            (PathState::Gone, Some(engine)) => path_state(engine, path),
            (state, _) => state,
        }
    }

    /// What the compose `files` define, read under the root that holds them.
    pub fn definition(&self, files: &[String]) -> ComposeDefinition {
        definition(self.holding(files), files)
    }

    /// The root that holds every one of `files` (the host's unless only the engine's does).
    fn holding(&self, files: &[String]) -> &Path {
        match &self.engine {
            Some(engine)
                if !files
                    .iter()
                    .all(|f| path_state(&self.host, f) == PathState::Exists) =>
            {
                engine
            }
            _ => &self.host,
        }
    }
}

/// Checks every compose path named by `containers`, each container's under the roots of
/// the engine that knows it (`engines`, in the snapshot's order).
///
/// The paths are the engine host's, so they are judged only when portreap provably shares
/// that filesystem: the root was given explicitly; or the engine's own per-container
/// directory (`<DockerRootDir>/containers/<id>`) is visible here; or portreap is not in a
/// container and the engine is local. Otherwise it says why it did not look. A path two
/// engines judge differently is kept the safe way: existing beats gone.
pub fn compose_facts(containers: &[&Container], engines: &[(&EngineStatus, Roots)]) -> FsFacts {
    let mut facts = FsFacts::default();
    let mut notes = Vec::new();
    for (index, (engine, roots)) in engines.iter().enumerate() {
        let own: Vec<&Container> = containers
            .iter()
            .copied()
            .filter(|c| c.engine == index && c.compose_paths().is_some())
            .collect();
        if own.is_empty() {
            continue;
        }
        match visibility(&own, engine, roots) {
            Ok(()) => {
                facts.visible = true;
                check_paths(&own, roots, &mut facts);
                read_definitions(&own, roots, &mut facts);
            }
            Err(note) if engines.len() == 1 => notes.push(note.to_string()),
            Err(note) => notes.push(format!("{}: {note}", engine.endpoint)),
        }
    }
    if !notes.is_empty() {
        facts.note = Some(notes.join("; "));
    }
    facts
}

/// Whether the filesystem `engine`'s containers (`own`) name is the one under `roots`,
/// or why it is not judged.
fn visibility(own: &[&Container], engine: &EngineStatus, roots: &Roots) -> Result<(), Hidden> {
    let host_root = roots.host.as_path();
    let explicit = host_root != Path::new("/");
    if explicit && !host_root.is_dir() {
        return Err(Hidden::BadHostRoot(host_root.to_owned()));
    }
    let engine_dir_visible = engine.root_dir.as_deref().is_some_and(|root| {
        [Some(host_root), roots.engine.as_deref()]
            .into_iter()
            .flatten()
            .any(|base| {
                own.iter()
                    .any(|c| container_dir_visible(base, root, engine, &c.id))
            })
    });
    let local_engine = engine.endpoint.starts_with("unix://") && !in_container();
    if explicit || engine_dir_visible || local_engine {
        Ok(())
    } else {
        Err(Hidden::EngineFilesystem)
    }
}

/// Why compose paths are not judged for an engine.
#[derive(Debug)]
enum Hidden {
    /// `--host-root` names no directory.
    BadHostRoot(std::path::PathBuf),
    /// Nothing shows that the engine's filesystem is the one seen from here.
    EngineFilesystem,
}

impl std::fmt::Display for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hidden::BadHostRoot(root) => write!(
                f,
                "--host-root {} is not a directory; compose directories were not checked",
                root.display()
            ),
            Hidden::EngineFilesystem => f.write_str("the engine's filesystem is not visible from here (portreap runs in a container, or the engine is remote); compose directories were not checked: mount the host root and pass --host-root"),
        }
    }
}

fn check_paths(containers: &[&Container], roots: &Roots, facts: &mut FsFacts) {
    for container in containers {
        let Some((dir, files)) = container.compose_paths() else {
            continue;
        };
        for path in std::iter::once(dir).chain(files) {
            if facts.exists.get(&path) == Some(&true) || facts.unjudged.contains_key(&path) {
                continue;
            }
            match roots.state(&path) {
                PathState::Exists => {
                    facts.exists.insert(path, true);
                }
                PathState::Gone => {
                    facts.exists.entry(path).or_insert(false);
                }
                PathState::Unknown(why) => {
                    facts.unjudged.insert(path, why);
                }
            }
        }
    }
}

/// Reads the compose files of every project with a container that publishes ports, once
/// per set of files, when every one of them is there (a gone file is another finding's).
fn read_definitions(containers: &[&Container], roots: &Roots, facts: &mut FsFacts) {
    for container in containers {
        if container.requested.is_empty() && container.live.is_empty() {
            continue;
        }
        let (Some(key), Some((_, files))) =
            (container.compose_files_key(), container.compose_paths())
        else {
            continue;
        };
        if facts.definitions.contains_key(&key)
            || !files.iter().all(|f| facts.exists.get(f) == Some(&true))
        {
            continue;
        }
        facts.definitions.insert(key, roots.definition(&files));
    }
}

fn definition(root: &Path, files: &[String]) -> ComposeDefinition {
    match super::compose_files::read(root, files) {
        Ok(read) => ComposeDefinition::Read {
            services: read.services,
            name: read.name,
            files: read.files,
        },
        Err(why) => ComposeDefinition::NotJudged {
            reason: why.to_string(),
        },
    }
}

/// Whether `path` (a host path) exists under `root`. Only "no such file" and "not a
/// directory" mean gone: a directory that cannot be read (another user's home, NFS
/// root_squash, a hung FUSE mount answering EIO) may well hold the project.
pub fn path_state(root: &Path, path: &str) -> PathState {
    match std::fs::metadata(under(root, path)) {
        Ok(_) => PathState::Exists,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PathState::Gone,
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => PathState::Gone,
        Err(e) => PathState::Unknown(e.to_string()),
    }
}

/// Whether the engine's own directory of container `id` is under `base`: Docker keeps
/// `<DockerRootDir>/containers/<id>`, Podman `<GraphRoot>/<driver>-containers/<id>`
/// (`overlay-containers`, `vfs-containers`, ...).
fn container_dir_visible(base: &Path, root: &str, engine: &EngineStatus, id: &str) -> bool {
    let root = under(base, root);
    if !engine.is_podman() {
        return root.join("containers").join(id).is_dir();
    }
    std::fs::read_dir(&root).is_ok_and(|dirs| {
        dirs.flatten().any(|d| {
            d.file_name().to_string_lossy().ends_with("-containers") && d.path().join(id).is_dir()
        })
    })
}

/// The host path `path` as seen under `root`.
pub(super) fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Whether this process itself runs in a container, where `/` is not the host's.
fn in_container() -> bool {
    Path::new("/.dockerenv").exists() || Path::new("/run/.containerenv").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("proj")).unwrap();
        std::fs::write(root.join("file"), "").unwrap();
        assert_eq!(path_state(root, "/proj"), PathState::Exists);
        assert_eq!(path_state(root, "/nope"), PathState::Gone);
        assert_eq!(path_state(root, "/file/below"), PathState::Gone);
        // A path too long to look up is no proof of absence.
        let long = format!("/{}", "x".repeat(5000));
        assert!(matches!(path_state(root, &long), PathState::Unknown(_)));
    }

    #[test]
    fn a_path_is_gone_only_when_gone_from_both_roots() {
        let (host, engine) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir_all(host.path().join("here")).unwrap();
        std::fs::create_dir_all(engine.path().join("there")).unwrap();
        std::fs::write(engine.path().join("there/compose.yaml"), "services: {}\n").unwrap();
        let roots = Roots {
            host: host.path().to_path_buf(),
            engine: Some(engine.path().to_path_buf()),
        };
        assert_eq!(roots.state("/here"), PathState::Exists);
        assert_eq!(roots.state("/there"), PathState::Exists);
        assert_eq!(roots.state("/nowhere"), PathState::Gone);
        let files = vec!["/there/compose.yaml".to_owned()];
        assert_eq!(roots.holding(&files), engine.path());
        let alone = Roots {
            engine: None,
            ..roots.clone()
        };
        assert_eq!(alone.state("/there"), PathState::Gone);
    }
}
