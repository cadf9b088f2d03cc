//! What portreap remembers between runs: the host ports each container asked for.
//!
//! A stopped container's requested bindings are only in its inspect, one round trip and
//! a fraction of a millisecond of the engine's CPU each; with a hundred stopped containers
//! those inspects cost `why` more than everything else it does. Yet they never change:
//! the engine's API sets a container's port bindings when it is created and offers no way
//! to change them (`docker update` and `podman update` change resources and the restart
//! policy only), and container ids are random and never reused. So a container's
//! bindings, once read, stay true for as long as it exists, and a stopped container
//! whose remembered bindings cannot touch the asked ports need not be inspected.
//!
//! Only that decision uses the cache, and only in the views that report: whatever
//! portreap says about a container that can bear on the answer is read from the engine,
//! and `prune` and `free` consult no cache at all (they only refresh it, see
//! [`Cache::refresh_only`]), so no file can change what they plan. Entries are kept per
//! endpoint, checked against the list call's creation time, and forgotten with their
//! container. The file is read only when the user running portreap owns it and nobody
//! else can write it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::RequestedBinding;
use crate::portspec::PortSpec;

/// Bumped when the meaning of an entry changes: an older file is then ignored.
const VERSION: u32 = 1;

/// The file's name in the cache directory.
const FILE: &str = "bindings.json";

/// What one container asked for, as its inspect said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The list call's creation time (seconds): an entry whose container's differs is
    /// not used.
    pub created: i64,
    /// `HostConfig.PortBindings`.
    pub requested: Vec<RequestedBinding>,
    /// `HostConfig.PublishAllPorts` (`-P`): the engine picks free ports at each start.
    pub publish_all: bool,
}

impl Entry {
    /// Whether a start of this container can bind or fail on one of `ports`: a binding
    /// on one of them, or on a port the engine picks.
    pub fn may_want(&self, ports: &PortSpec) -> bool {
        self.publish_all || self.requested.iter().any(|r| r.may_take(ports))
    }

    /// Whether a start of this container binds any host port at all.
    pub fn binds(&self) -> bool {
        self.publish_all || !self.requested.is_empty()
    }
}

/// The entries of one engine, by container id.
pub type Entries = BTreeMap<String, Entry>;

#[derive(Default, Serialize, Deserialize)]
struct File {
    version: u32,
    /// Entries by endpoint URL.
    engines: BTreeMap<String, Entries>,
}

/// The remembered bindings, loaded once and written back when they changed.
pub struct Cache {
    /// Where the file lives; `None` when nothing is remembered (`--no-cache`, no home).
    dir: Option<PathBuf>,
    file: File,
    changed: bool,
    /// Whether [`Cache::engine`] hands out what is remembered.
    consulted: bool,
}

impl Cache {
    /// A cache that remembers nothing.
    pub fn disabled() -> Self {
        Cache {
            dir: None,
            file: File::default(),
            changed: false,
            consulted: false,
        }
    }

    /// The cache in `dir`, with what its file holds if the file can be trusted.
    pub fn open(dir: PathBuf) -> Self {
        let file = read(&dir.join(FILE)).unwrap_or_default();
        Cache {
            dir: Some(dir),
            file,
            changed: false,
            consulted: true,
        }
    }

    /// This cache, written back as usual but never consulted: what a verb that acts
    /// reads must not depend on a file (the user's own, yet anything they ran could have
    /// written it).
    pub fn refresh_only(self) -> Self {
        Cache {
            consulted: false,
            ..self
        }
    }

    /// The directory the user's cache lives in: `$XDG_CACHE_HOME/portreap`, else
    /// `$HOME/.cache/portreap`; `None` without either (a relative one is ignored, as the
    /// XDG specification says).
    pub fn default_dir(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
        let absolute = |v: String| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
        env("XDG_CACHE_HOME")
            .and_then(absolute)
            .or_else(|| env("HOME").and_then(absolute).map(|h| h.join(".cache")))
            .map(|d| d.join("portreap"))
    }

    /// What is remembered of the containers of the engine at `endpoint`.
    pub fn engine(&self, endpoint: &str) -> Entries {
        if !self.consulted {
            return Entries::new();
        }
        self.file.engines.get(endpoint).cloned().unwrap_or_default()
    }

    /// Replaces what is remembered of the engine at `endpoint` (its listed containers'
    /// entries: the others are forgotten).
    pub fn update(&mut self, endpoint: &str, entries: Entries) {
        if self.dir.is_none() || self.file.engines.get(endpoint) == Some(&entries) {
            return;
        }
        if entries.is_empty() {
            self.file.engines.remove(endpoint);
        } else {
            self.file.engines.insert(endpoint.to_owned(), entries);
        }
        self.changed = true;
    }

    /// Writes the file if anything changed. A cache that cannot be written costs only
    /// speed, so failures are reported as details, never as errors.
    pub fn save(&self) {
        let Some(dir) = self.dir.as_deref().filter(|_| self.changed) else {
            return;
        };
        if let Err(e) = write(dir, &self.file) {
            crate::messages::detail(&format!(
                "cache: cannot write {}: {e}",
                dir.join(FILE).display()
            ));
        }
    }
}

/// The file's content, if it is a regular file of this user that nobody else can write
/// and holds this version's format.
fn read(path: &Path) -> Option<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !trusted(&meta) {
        crate::messages::detail(&format!(
            "cache: {} is not this user's own file: ignored",
            path.display()
        ));
        return None;
    }
    let parsed: File = serde_json::from_reader(std::io::BufReader::new(file)).ok()?;
    (parsed.version == VERSION).then_some(parsed)
}

/// Owned by the effective user, writable by nobody else: another user's file could hide
/// a container from this one's answers.
fn trusted(meta: &std::fs::Metadata) -> bool {
    meta.uid() == rustix::process::geteuid().as_raw() && meta.mode() & 0o022 == 0
}

/// Writes the file whole, under a temporary name renamed over the old one: a reader never
/// sees half a file, and two runs at once leave one of their files.
fn write(dir: &Path, content: &File) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if !trusted(&std::fs::metadata(dir)?) {
        return Err(std::io::Error::other(
            "the directory is not this user's own",
        ));
    }
    let temp = dir.join(format!(".{FILE}.{}", std::process::id()));
    // Left by a run that died with this PID: nobody else writes this name.
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    #[derive(Serialize)]
    struct Versioned<'a> {
        version: u32,
        engines: &'a BTreeMap<String, Entries>,
    }
    let versioned = Versioned {
        version: VERSION,
        engines: &content.engines,
    };
    let written = serde_json::to_writer(&mut file, &versioned)
        .map_err(std::io::Error::other)
        .and_then(|()| file.flush())
        .and_then(|()| std::fs::rename(&temp, dir.join(FILE)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Proto;
    use crate::portspec::PortRange;
    use std::os::unix::fs::PermissionsExt;

    fn binding(proto: Proto, ports: Option<(u16, u16)>) -> RequestedBinding {
        RequestedBinding {
            proto,
            container_port: 80,
            host_ip: None,
            host_ports: ports.map(|(start, end)| PortRange { start, end }),
        }
    }

    fn entry(requested: Vec<RequestedBinding>, publish_all: bool) -> Entry {
        Entry {
            created: 1_796_604_245,
            requested,
            publish_all,
        }
    }

    fn spec(text: &str) -> PortSpec {
        text.parse().unwrap()
    }

    #[test]
    fn a_container_may_want_a_port_its_bindings_reach_or_the_engine_picks() {
        let ranged = entry(vec![binding(Proto::Tcp, Some((8000, 8010)))], false);
        assert!(ranged.may_want(&spec("8005")));
        assert!(ranged.may_want(&spec("7000-8000")));
        assert!(ranged.may_want(&spec("8010-9000/tcp")));
        assert!(!ranged.may_want(&spec("8011")));
        assert!(!ranged.may_want(&spec("8005/udp")));
        // `-p 80` (any free port) and `-P`: the next start can take any port.
        assert!(entry(vec![binding(Proto::Udp, None)], false).may_want(&spec("53/udp")));
        assert!(entry(vec![], true).may_want(&spec("3000")));
        assert!(!entry(vec![], false).may_want(&spec("1-65535")));
        assert!(entry(vec![], true).binds());
        assert!(ranged.binds());
        assert!(!entry(vec![], false).binds());
    }

    #[test]
    fn entries_survive_a_round_trip_and_only_changes_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = Cache::open(dir.path().join("portreap"));
        assert!(cache.engine("unix:///var/run/docker.sock").is_empty());
        let entries: Entries = [(
            "a".repeat(64),
            entry(vec![binding(Proto::Tcp, Some((3000, 3000)))], false),
        )]
        .into_iter()
        .collect();
        cache.update("unix:///var/run/docker.sock", entries.clone());
        cache.save();
        let path = dir.path().join("portreap").join(FILE);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("portreap")), 0o700);
        let mut again = Cache::open(dir.path().join("portreap"));
        assert_eq!(again.engine("unix:///var/run/docker.sock"), entries);
        assert!(again.engine("tcp://127.0.0.1:2375").is_empty());
        again.update("unix:///var/run/docker.sock", entries);
        assert!(!again.changed);
        // An engine whose containers are all gone is forgotten.
        again.update("unix:///var/run/docker.sock", Entries::new());
        again.save();
        assert!(Cache::open(dir.path().join("portreap"))
            .file
            .engines
            .is_empty());
    }

    /// A verb that acts consults nothing, yet keeps the file up to date, other engines'
    /// entries included.
    #[test]
    fn a_refresh_only_cache_hands_out_nothing_and_still_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (local, remote) = ("unix:///var/run/docker.sock", "tcp://10.0.0.2:2376");
        let first: Entries = [("a".repeat(64), entry(vec![], true))]
            .into_iter()
            .collect();
        let mut cache = Cache::open(dir.join("portreap"));
        cache.update(local, first.clone());
        cache.update(remote, first.clone());
        cache.save();
        let mut acting = Cache::open(dir.join("portreap")).refresh_only();
        assert!(acting.engine(local).is_empty());
        let second: Entries = [("b".repeat(64), entry(vec![], false))]
            .into_iter()
            .collect();
        acting.update(local, second.clone());
        acting.save();
        let reread = Cache::open(dir.join("portreap"));
        assert_eq!(reread.engine(local), second);
        assert_eq!(reread.engine(remote), first);
    }

    #[test]
    fn a_file_others_can_write_or_of_another_version_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let content = serde_json::json!({
            "version": VERSION,
            "engines": {"unix:///var/run/docker.sock": {"b": {"created": 1, "requested": [], "publish_all": false}}}
        });
        std::fs::write(&path, content.to_string()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            Cache::open(dir.path().into())
                .engine("unix:///var/run/docker.sock")
                .len(),
            1
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(Cache::open(dir.path().into())
            .engine("unix:///var/run/docker.sock")
            .is_empty());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let old = serde_json::json!({"version": VERSION + 1, "engines": content["engines"]});
        std::fs::write(&path, old.to_string()).unwrap();
        assert!(Cache::open(dir.path().into())
            .engine("unix:///var/run/docker.sock")
            .is_empty());
        std::fs::write(&path, "{not json").unwrap();
        assert!(Cache::open(dir.path().into())
            .engine("unix:///var/run/docker.sock")
            .is_empty());
        // A link is not followed.
        let link = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&path, link.path().join(FILE)).unwrap();
        assert!(Cache::open(link.path().into()).file.engines.is_empty());
    }

    #[test]
    fn a_disabled_cache_remembers_nothing() {
        let mut cache = Cache::disabled();
        cache.update(
            "unix:///x",
            [("c".into(), entry(vec![], false))].into_iter().collect(),
        );
        assert!(!cache.changed);
        cache.save();
    }

    #[test]
    fn the_directory_follows_xdg() {
        let env = |pairs: &'static [(&str, &str)]| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            Cache::default_dir(env(&[("XDG_CACHE_HOME", "/c"), ("HOME", "/h")])),
            Some(PathBuf::from("/c/portreap"))
        );
        assert_eq!(
            Cache::default_dir(env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/portreap"))
        );
        assert_eq!(Cache::default_dir(env(&[("HOME", "")])), None);
        assert_eq!(Cache::default_dir(env(&[])), None);
    }
}
