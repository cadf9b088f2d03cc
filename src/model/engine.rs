//! The engines: which was asked, how it was chosen, how it answered, and the engine
//! processes found on the host.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which engine software a local engine process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EngineKind {
    /// `dockerd`.
    Docker,
    /// `podman system service`.
    Podman,
}

impl EngineKind {
    /// The name people know it by.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Docker => "Docker",
            EngineKind::Podman => "Podman",
        }
    }
}

/// Where the engine endpoint asked came from, the way docker CLI users name it. Serialised
/// as that name (`--host`, `DOCKER_HOST`, `context NAME`, `default`, `--all-engines: ...`):
/// the JSON contract's `engine.source`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum EngineSource {
    /// `--host`.
    HostFlag,
    /// The `DOCKER_HOST` variable.
    DockerHost,
    /// A docker context, by `--context`, `DOCKER_CONTEXT` or the config's `currentContext`.
    Context(String),
    /// Nothing chose one: the default socket.
    #[default]
    Default,
    /// Found by `--all-engines`; the text says how (an engine process, a socket's owner).
    Discovered(String),
}

impl EngineSource {
    /// The context named, unless it is `default` (which is the default socket, and needs
    /// no `--context` to reach).
    pub fn named_context(&self) -> Option<&str> {
        match self {
            EngineSource::Context(name) if name != "default" => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for EngineSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineSource::HostFlag => f.write_str("--host"),
            EngineSource::DockerHost => f.write_str("DOCKER_HOST"),
            EngineSource::Context(name) => write!(f, "context {name}"),
            EngineSource::Default => f.write_str("default"),
            EngineSource::Discovered(how) => write!(f, "--all-engines: {how}"),
        }
    }
}

impl std::str::FromStr for EngineSource {
    type Err = UnknownSource;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "--host" => EngineSource::HostFlag,
            "DOCKER_HOST" => EngineSource::DockerHost,
            "default" => EngineSource::Default,
            _ => {
                if let Some(name) = text.strip_prefix("context ") {
                    EngineSource::Context(name.to_owned())
                } else if let Some(how) = text.strip_prefix("--all-engines: ") {
                    EngineSource::Discovered(how.to_owned())
                } else {
                    return Err(UnknownSource(text.to_owned()));
                }
            }
        })
    }
}

/// A recorded `engine.source` that names no way of choosing an engine.
#[derive(Debug)]
pub struct UnknownSource(String);

impl fmt::Display for UnknownSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown engine source {:?}", self.0)
    }
}

impl std::error::Error for UnknownSource {}

impl Serialize for EngineSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EngineSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An engine process found in the process table, whether or not it was asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalEngine {
    /// Its PID.
    pub pid: u32,
    /// Docker or Podman.
    pub kind: EngineKind,
    /// The user it runs as.
    pub uid: u32,
    /// The API sockets it listens on, as `unix://` URLs reachable from here (through
    /// `/proc/PID/root` when it runs in another mount namespace).
    pub sockets: Vec<String>,
    /// Whether it runs in another mount namespace than portreap.
    #[serde(default)]
    pub own_mount_ns: bool,
    /// Its mount namespace (see [`Process::mnt_ns`](super::Process::mnt_ns)), when readable.
    #[serde(default)]
    pub mnt_ns: Option<u64>,
    /// Docker's data root, when its command line or the default names it.
    #[serde(default)]
    pub data_root: Option<String>,
}

/// What portreap knows about the engine it asked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStatus {
    /// Endpoint tried, as a URL (`unix:///var/run/docker.sock`, `tcp://host:2375`).
    pub endpoint: String,
    /// Where the endpoint came from.
    pub source: EngineSource,
    /// Whether the engine answered.
    pub reachable: bool,
    /// Which engine answered (serialised `Docker` or `Podman`).
    #[serde(default)]
    pub kind: Option<EngineKind>,
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
    /// The local engine process proven to serve this endpoint (it holds the listening
    /// socket); `None` when none is: then the engine may be remote, and local forwarders
    /// are not judged by its answer.
    #[serde(default)]
    pub process: Option<u32>,
    /// The user the process serving the endpoint runs as, when known (from the kernel's
    /// peer credentials of a unix socket, or the proven engine).
    #[serde(default)]
    pub uid: Option<u32>,
    /// Why no local engine process is proven to serve the endpoint.
    #[serde(default)]
    pub locality: Option<String>,
    /// The engine's own identity (Docker's `ID` from `/info`, kept across its restarts),
    /// when asked for (baselines record it). Podman's compatible API answers a new id on
    /// every call, so none is kept for it.
    #[serde(default)]
    pub id: Option<String>,
}

impl EngineStatus {
    /// Whether the engine that answered is Podman (its forwarders are `conmon` processes).
    pub fn is_podman(&self) -> bool {
        self.kind == Some(EngineKind::Podman)
    }
}
