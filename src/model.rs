//! The facts portreap gathers, as plain data: what the host and the engine said, nothing
//! inferred. Analysis works on a [`Snapshot`] only, so it can be built by hand in tests or
//! loaded from a recording (`portreap debug snapshot`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::portspec::PortRange;

/// Transport protocol of a socket or binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP (listening sockets only).
    Tcp,
    /// UDP (every bound socket: UDP has no listening state).
    Udp,
}

impl Proto {
    /// Lower-case name, as Docker and users write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A listening TCP socket or a bound UDP socket in the host's network namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Socket {
    /// Protocol.
    pub proto: Proto,
    /// Local address (`0.0.0.0` / `::` for wildcards).
    pub ip: IpAddr,
    /// Local port.
    pub port: u16,
    /// Kernel inode, the key that ties the socket to file descriptors in `/proc`.
    pub inode: u32,
    /// Owning user id, as the kernel reports it.
    pub uid: u32,
    /// Processes holding a descriptor of the socket (several after `fork`).
    pub pids: Vec<u32>,
}

/// What `/proc` tells about a process that holds a socket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Owner of the process.
    pub uid: Option<u32>,
    /// Kernel command name (`comm`, at most 15 bytes).
    pub name: String,
    /// Command line, one element per argument (lossily decoded if not UTF-8).
    pub cmdline: Vec<String>,
    /// Start time in clock ticks since boot: with the PID, the identity of a process.
    pub start_ticks: Option<u64>,
    /// The container whose cgroup the process lives in, if any.
    pub container_id: Option<String>,
    /// Start time in seconds since the Unix epoch (from the start ticks and boot time).
    #[serde(default)]
    pub started: Option<i64>,
}

/// Everything read from the host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// Listening TCP and bound UDP sockets, IPv4 and IPv6.
    pub sockets: Vec<Socket>,
    /// The processes that own sockets, by PID.
    pub processes: BTreeMap<u32, Process>,
    /// How many processes' descriptor tables could not be read (permission denied): when
    /// non-zero, a socket without PIDs may belong to one of them.
    pub unreadable_processes: usize,
    /// Set when `/proc` itself could not be read: no socket has a known owner then.
    pub proc_error: Option<String>,
    /// User names of the processes' owners, from the host's passwd file.
    #[serde(default)]
    pub users: BTreeMap<u32, String>,
    /// Processes whose descriptors were not read (see `host::Owners::Forwarders`).
    #[serde(skip)]
    pub skipped_pids: Vec<u32>,
}

/// Lifecycle state of a container, as the engine names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Created, never started (or its start failed).
    Created,
    /// Running.
    Running,
    /// Frozen by `docker pause`.
    Paused,
    /// Between two runs of a restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Stopped.
    Exited,
    /// Failed removal or similar; only removal helps.
    Dead,
    /// Being stopped.
    Stopping,
    /// A state this version does not know, kept verbatim.
    #[serde(untagged)]
    Other(String),
}

impl ContainerState {
    /// Whether a container in this state may have a process (and so hold a port itself).
    /// Exited, created and dead ones have none; the engine removes only those without
    /// force.
    pub fn has_process(&self) -> bool {
        !matches!(
            self,
            ContainerState::Exited | ContainerState::Created | ContainerState::Dead
        )
    }

    /// Name as the engine spells it.
    pub fn as_str(&self) -> &str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Stopping => "stopping",
            ContainerState::Other(s) => s,
        }
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port binding the engine reports as live (`NetworkSettings.Ports`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LiveBinding {
    /// Protocol.
    pub proto: Proto,
    /// Port inside the container.
    pub container_port: u16,
    /// Host address the engine bound (`0.0.0.0`, `::` or a specific address).
    pub host_ip: IpAddr,
    /// Host port.
    pub host_port: u16,
}

/// A port binding a container asked for (`HostConfig.PortBindings`); it survives stop.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestedBinding {
    /// Protocol.
    pub proto: Proto,
    /// Port inside the container.
    pub container_port: u16,
    /// Requested host address; `None` means every address.
    pub host_ip: Option<IpAddr>,
    /// Requested host port or range; `None` means any free port.
    pub host_ports: Option<PortRange>,
}

/// Compose labels worth knowing about.
pub mod labels {
    /// Compose project name.
    pub const PROJECT: &str = "com.docker.compose.project";
    /// Compose service name.
    pub const SERVICE: &str = "com.docker.compose.service";
    /// Directory `docker compose` ran in.
    pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
    /// Compose files (relative in compose v1, absolute in v2), comma-separated.
    pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
}

/// One container, in any state, as the engine reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Image as the user named it.
    pub image: String,
    /// Lifecycle state.
    pub state: ContainerState,
    /// Health check status (`healthy`, `unhealthy`, `starting`), if it has a check.
    pub health: Option<String>,
    /// Consecutive failed health checks.
    #[serde(default)]
    pub failing_streak: i64,
    /// Start of the oldest failed check of the current streak that the engine's health log
    /// still holds (RFC 3339).
    #[serde(default)]
    pub failing_since: Option<String>,
    /// Whether `failing_since` is the start of the streak, not just a lower bound.
    #[serde(default)]
    pub failing_since_exact: bool,
    /// Main process PID on the host while running.
    pub pid: Option<u32>,
    /// Exit code of the last run.
    pub exit_code: Option<i64>,
    /// Error of the last start (`State.Error`), e.g. "port is already allocated".
    pub error: Option<String>,
    /// Creation time (RFC 3339).
    pub created: Option<String>,
    /// Last start (RFC 3339).
    pub started_at: Option<String>,
    /// Last stop (RFC 3339).
    pub finished_at: Option<String>,
    /// Restart policy name (`no`, `always`, `unless-stopped`, `on-failure`).
    pub restart_policy: Option<String>,
    /// Restarts so far.
    pub restart_count: i64,
    /// Network mode (`default`, `bridge`, `host`, a network name, `container:ID`).
    pub network_mode: Option<String>,
    /// Addresses on every network the container is attached to.
    pub addresses: Vec<IpAddr>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// What it asked for.
    pub requested: Vec<RequestedBinding>,
    /// What the engine has bound now.
    pub live: Vec<LiveBinding>,
    /// Which queried engine knows it: 0 is [`Snapshot::engine`], `n` is
    /// `Snapshot::engines[n - 1]`.
    #[serde(default)]
    pub engine: usize,
}

impl Container {
    /// A container known only by id, name and state; every other fact empty.
    pub fn new(id: impl Into<String>, name: impl Into<String>, state: ContainerState) -> Self {
        Container {
            id: id.into(),
            name: name.into(),
            image: String::new(),
            state,
            health: None,
            failing_streak: 0,
            failing_since: None,
            failing_since_exact: false,
            pid: None,
            exit_code: None,
            error: None,
            created: None,
            started_at: None,
            finished_at: None,
            restart_policy: None,
            restart_count: 0,
            network_mode: None,
            addresses: Vec::new(),
            labels: BTreeMap::new(),
            requested: Vec::new(),
            live: Vec::new(),
            engine: 0,
        }
    }

    /// Compose project, if started by compose.
    pub fn compose_project(&self) -> Option<&str> {
        self.labels.get(labels::PROJECT).map(String::as_str)
    }

    /// Compose service, if started by compose.
    pub fn compose_service(&self) -> Option<&str> {
        self.labels.get(labels::SERVICE).map(String::as_str)
    }

    /// Compose working directory and config files (relative names resolved against the
    /// working directory, as compose v1 records them), if compose labels are present.
    pub fn compose_paths(&self) -> Option<(String, Vec<String>)> {
        let dir = self.labels.get(labels::WORKING_DIR)?.clone();
        let files = self
            .labels
            .get(labels::CONFIG_FILES)
            .map(|files| {
                files
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(|f| {
                        if f.starts_with('/') {
                            f.to_owned()
                        } else {
                            format!("{}/{f}", dir.trim_end_matches('/'))
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some((dir, files))
    }

    /// Whether the container shares the host's network namespace.
    pub fn is_host_network(&self) -> bool {
        self.network_mode.as_deref() == Some("host")
    }
}

/// What portreap knows about the engine it asked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStatus {
    /// Endpoint tried, as a URL (`unix:///var/run/docker.sock`, `tcp://host:2375`).
    pub endpoint: String,
    /// Where the endpoint came from (`--host`, `DOCKER_HOST`, `context NAME`, `default`).
    pub source: String,
    /// Whether the engine answered.
    pub reachable: bool,
    /// Which engine answered: `Docker` or `Podman`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Engine version, when it answered.
    pub version: Option<String>,
    /// API version, when it answered.
    pub api_version: Option<String>,
    /// The engine's data directory (`DockerRootDir`), used to tell whether portreap sees
    /// the engine's filesystem.
    #[serde(default)]
    pub root_dir: Option<String>,
    /// Why it could not be reached, or what went wrong part way.
    pub error: Option<String>,
}

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
}

impl EngineStatus {
    /// Whether the engine that answered is Podman (its forwarders are `conmon` processes).
    pub fn is_podman(&self) -> bool {
        self.kind.as_deref() == Some("Podman")
    }
}

/// All the facts one scan works from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the facts were gathered, in seconds since the Unix epoch.
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
            let kind = self.engine_of(c).kind.as_deref().unwrap_or("engine");
            format!("container {} ({kind})", c.name)
        }
    }
}
