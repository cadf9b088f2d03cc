//! The facts portreap gathers, as plain data: what the host and the engine said, nothing
//! inferred. Analysis works on a [`Snapshot`] only, so it can be built by hand in tests or
//! loaded from a recording (`portreap debug snapshot`).

mod container;
mod engine;
mod host;
pub mod known;

pub use container::*;
pub use engine::*;
pub use host::*;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Whether the compose files and directories that containers' labels name exist.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsFacts {
    /// Whether the host's filesystem is visible to portreap at all; when not, compose
    /// projects are not judged.
    pub visible: bool,
    /// Why it is not visible, or where it was looked at.
    pub note: Option<String>,
    /// Absolute host paths (as in the labels) and whether each exists.
    pub exists: BTreeMap<String, bool>,
    /// Paths that could not be judged (permission denied, a stale NFS handle, ...), and
    /// why: never taken for gone.
    #[serde(default)]
    pub unjudged: BTreeMap<String, String>,
    /// What each project's compose files define, by [`Container::compose_files_key`]:
    /// read only for projects with a container that publishes ports.
    #[serde(default)]
    pub definitions: BTreeMap<String, ComposeDefinition>,
}

/// What a compose project's files define, as far as portreap could read them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ComposeDefinition {
    /// Read: the services they define (every file, override and include), and the
    /// project name they set, if any.
    Read {
        /// Service names.
        services: BTreeSet<String>,
        /// The top-level `name:`.
        name: Option<String>,
        /// Every file read, includes too.
        files: Vec<String>,
    },
    /// They could not be read or understood: no service of the project is judged.
    NotJudged {
        /// Why.
        reason: String,
    },
}

/// What looking at a path told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathState {
    /// It is there.
    Exists,
    /// It is not (ENOENT, or a component is not a directory).
    Gone,
    /// It could not be told; the reason says why.
    Unknown(String),
}

/// All the facts one scan works from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the facts began to be gathered, in seconds since the Unix epoch: every age
    /// measured against it is at most what was seen.
    #[serde(default)]
    pub taken_at: Option<i64>,
    /// Host sockets and their processes.
    pub host: HostFacts,
    /// Compose paths on the host filesystem.
    #[serde(default)]
    pub fs: FsFacts,
    /// The engine asked.
    pub engine: EngineStatus,
    /// Every container the engines know, in any state.
    pub containers: Vec<Container>,
    /// Further engines queried (`--all-engines`), after [`Snapshot::engine`].
    #[serde(default)]
    pub engines: Vec<EngineStatus>,
}

impl Snapshot {
    /// The engine that knows this container.
    pub fn engine_of(&self, c: &Container) -> &EngineStatus {
        match c.engine {
            0 => &self.engine,
            n => self.engines.get(n - 1).unwrap_or(&self.engine),
        }
    }

    /// Every engine queried, the first one first.
    pub fn all_engines(&self) -> impl Iterator<Item = &EngineStatus> {
        std::iter::once(&self.engine).chain(&self.engines)
    }

    /// Whether every engine queried answered in full: only then can a forwarder be
    /// judged to have no container.
    pub fn engines_complete(&self) -> bool {
        self.all_engines().all(|e| e.reachable && e.error.is_none())
    }

    /// Whether a Podman engine was queried (and so `conmon` can be judged).
    pub fn podman_queried(&self) -> bool {
        self.all_engines().any(EngineStatus::is_podman)
    }

    /// `container web` or, when several engines were queried, `container web (Podman)`.
    pub fn container_label(&self, c: &Container) -> String {
        if self.engines.is_empty() {
            format!("container {}", c.name)
        } else {
            let kind = self.engine_of(c).kind.map_or("engine", EngineKind::as_str);
            format!("container {} ({kind})", c.name)
        }
    }
}
