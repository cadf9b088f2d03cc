//! Whether the compose directories and files that containers' labels name still exist.

use std::path::{Path, PathBuf};

use crate::model::{ComposeDefinition, Container, EngineStatus, FsFacts, PathState};

/// Checks every compose path named by `containers` under `host_root` (`/` normally; the
/// host's root mounted into portreap's container otherwise).
///
/// The paths are the engine host's, so they are judged only when portreap provably shares
/// that filesystem: the root was given explicitly; or the engine's own per-container
/// directory (`<DockerRootDir>/containers/<id>`) is visible here; or portreap is not in a
/// container and the engine is local. Otherwise it says why it did not look.
pub fn compose_facts(containers: &[Container], engine: &EngineStatus, host_root: &Path) -> FsFacts {
    let mut facts = FsFacts::default();
    if !containers.iter().any(|c| c.compose_paths().is_some()) {
        return facts;
    }
    let explicit = host_root != Path::new("/");
    if explicit && !host_root.is_dir() {
        facts.note = Some(format!(
            "--host-root {} is not a directory; compose directories were not checked",
            host_root.display()
        ));
        return facts;
    }
    let engine_dir_visible = engine.root_dir.as_deref().is_some_and(|root| {
        containers
            .iter()
            .any(|c| under(host_root, &format!("{root}/containers/{}", c.id)).is_dir())
    });
    let local_engine = engine.endpoint.starts_with("unix://") && !in_container();
    if !(explicit || engine_dir_visible || local_engine) {
        facts.note = Some(
            "the engine's filesystem is not visible from here (portreap runs in a container, or the engine is remote); compose directories were not checked: mount the host root and pass --host-root".into(),
        );
        return facts;
    }
    facts.visible = true;
    check_paths(containers, host_root, &mut facts);
    read_definitions(containers, host_root, &mut facts);
    facts
}

fn check_paths(containers: &[Container], host_root: &Path, facts: &mut FsFacts) {
    for container in containers {
        let Some((dir, files)) = container.compose_paths() else {
            continue;
        };
        for path in std::iter::once(dir).chain(files) {
            if facts.exists.contains_key(&path) || facts.unjudged.contains_key(&path) {
                continue;
            }
            match path_state(host_root, &path) {
                PathState::Exists => {
                    facts.exists.insert(path, true);
                }
                PathState::Gone => {
                    facts.exists.insert(path, false);
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
fn read_definitions(containers: &[Container], host_root: &Path, facts: &mut FsFacts) {
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
        facts.definitions.insert(key, definition(host_root, &files));
    }
}

/// What the compose `files` define, as the model records it.
pub fn definition(host_root: &Path, files: &[String]) -> ComposeDefinition {
    match super::compose_files::read(host_root, files) {
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
}
