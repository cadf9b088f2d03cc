//! What an engine said of its containers: state, health, restart policy, bindings, labels.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::Proto;
use crate::portspec::{PortRange, PortSpec};

/// A moment an engine reported, parsed once where it enters (seconds since the epoch) and
/// kept as the engine wrote it (RFC 3339, to the nanosecond) for output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timestamp {
    unix: i64,
    text: String,
}

impl Timestamp {
    /// `None` for anything but an RFC 3339 time with a real date.
    pub fn parse(text: &str) -> Option<Self> {
        Some(Timestamp {
            unix: crate::time::parse_rfc3339(text)?,
            text: text.to_owned(),
        })
    }

    /// A moment an engine gave in whole seconds since the epoch (the list call's
    /// `Created`), written as RFC 3339 in UTC; `None` for one outside years 0-9999.
    pub fn from_unix(unix: i64) -> Option<Self> {
        Some(Timestamp {
            unix,
            text: crate::time::format_rfc3339(unix)?,
        })
    }

    /// Seconds since the Unix epoch.
    pub fn unix(&self) -> i64 {
        self.unix
    }

    /// As the engine wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

/// A container's health check status, as the engine reports it; a status it may add
/// later is kept as said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Within its start period.
    Starting,
    /// Passing.
    Healthy,
    /// Failing past its retries.
    Unhealthy,
    /// Anything else the engine said.
    Other(String),
}

impl Health {
    /// From the engine's word; `None` for no check (`none`, empty).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "" | "none" => return None,
            "starting" => Health::Starting,
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            other => Health::Other(other.to_owned()),
        })
    }

    /// The engine's word for it.
    pub fn as_str(&self) -> &str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Other(s) => s,
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container's restart policy; a name the engine may add later is kept as said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    /// `no`: never restarted.
    No,
    /// `always`: restarted, also when the engine starts.
    Always,
    /// `unless-stopped`.
    UnlessStopped,
    /// `on-failure`.
    OnFailure,
    /// Anything else the engine said.
    Other(String),
}

impl RestartPolicy {
    /// From the engine's name; `None` when it names none.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "" => return None,
            "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure,
            other => RestartPolicy::Other(other.to_owned()),
        })
    }

    /// The engine's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Other(s) => s,
        }
    }

    /// Whether the engine may start the container again by itself.
    pub fn restarts(&self) -> bool {
        *self != RestartPolicy::No
    }
}

/// Serialised as the engine's word, read back through `parse`.
macro_rules! as_engine_word {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                <$t>::parse(&text).ok_or_else(|| serde::de::Error::custom("empty"))
            }
        }
    };
}

as_engine_word!(Health);

as_engine_word!(RestartPolicy);

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

impl RequestedBinding {
    /// Whether a start can bind (or fail on) one of `ports`: its range reaches one, or
    /// the engine picks the port.
    pub fn may_take(&self, ports: &PortSpec) -> bool {
        self.host_ports
            .is_none_or(|range| ports.overlaps(self.proto, range))
    }
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
    /// `True` on containers `compose run` made.
    pub const ONEOFF: &str = "com.docker.compose.oneoff";
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
    /// Health check status, if it has a check.
    pub health: Option<Health>,
    /// Consecutive failed health checks.
    #[serde(default)]
    pub failing_streak: i64,
    /// Start of the oldest failed check of the current streak that the engine's health log
    /// still holds (RFC 3339).
    #[serde(default)]
    pub failing_since: Option<Timestamp>,
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
    pub created: Option<Timestamp>,
    /// Last start (RFC 3339).
    pub started_at: Option<Timestamp>,
    /// Last stop (RFC 3339).
    pub finished_at: Option<Timestamp>,
    /// Restart policy.
    pub restart_policy: Option<RestartPolicy>,
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
    /// Which queried engine knows it: 0 is [`Snapshot::engine`](super::Snapshot::engine), `n` is
    /// `Snapshot::engines[n - 1]`.
    #[serde(default)]
    pub engine: usize,
    /// Whether the engine's full record (its inspect) was read. Without it only what the
    /// list call says is known: no requested bindings, times, restart policy or exit.
    #[serde(default = "yes")]
    pub inspected: bool,
}

fn yes() -> bool {
    true
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
            inspected: true,
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

    /// The directory compose was started from, if started by compose.
    pub fn compose_working_dir(&self) -> Option<&str> {
        self.labels.get(labels::WORKING_DIR).map(String::as_str)
    }

    /// Compose working directory and config files (relative names resolved against the
    /// working directory, as compose v1 records them), if compose labels are present.
    pub fn compose_paths(&self) -> Option<(String, Vec<String>)> {
        let dir = self.compose_working_dir()?.to_owned();
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

    /// The key of its project's compose files in [`FsFacts::definitions`](super::FsFacts::definitions).
    pub fn compose_files_key(&self) -> Option<String> {
        let (_, files) = self.compose_paths()?;
        (!files.is_empty()).then(|| files.join(","))
    }

    /// Whether compose made it with `run` (a one-off), not `up`.
    pub fn compose_oneoff(&self) -> bool {
        self.labels
            .get(labels::ONEOFF)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Whether the container shares the host's network namespace.
    pub fn is_host_network(&self) -> bool {
        self.network_mode.as_deref() == Some("host")
    }
}
