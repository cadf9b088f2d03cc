//! The facts portreap gathers, as plain data: what the host and the engine said, nothing
//! inferred. Analysis works on a [`Snapshot`] only, so it can be built by hand in tests or
//! loaded from a recording (`portreap debug snapshot`).

use std::collections::{BTreeMap, BTreeSet};
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
    /// For an IPv6 wildcard: whether it takes IPv6 only (`IPV6_V6ONLY`); a `::` socket
    /// without it is dual-stack and takes IPv4 connections too.
    #[serde(default)]
    pub v6only: Option<bool>,
}

impl Socket {
    /// Whether connections to `ip` reach this socket: its own address, or IPv4's
    /// wildcard for a dual-stack `::` socket (rootless Podman's forwarder binds one
    /// `[::]` socket for a `0.0.0.0` binding).
    pub fn serves(&self, ip: IpAddr) -> bool {
        self.ip == ip || (self.dual_stack() && ip == IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    /// Whether it is an IPv6 wildcard without `IPV6_V6ONLY`, which takes IPv4 too.
    pub fn dual_stack(&self) -> bool {
        self.ip.is_unspecified() && self.ip.is_ipv6() && self.v6only == Some(false)
    }
}

/// A TCP socket's state, as the kernel numbers them (`include/net/tcp_states.h`; libc
/// names none of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TcpState {
    /// A connection that is up.
    Established,
    /// Connecting.
    SynSent,
    /// Being accepted.
    SynRecv,
    /// Closing, our side first.
    FinWait1,
    /// Closing, our side first, acknowledged.
    FinWait2,
    /// Closed by our side first; the port stays taken until it expires (60 s on Linux).
    TimeWait,
    /// Closed.
    Close,
    /// Closed by the peer; waiting for the process to close.
    CloseWait,
    /// Closing after the peer did.
    LastAck,
    /// Listening.
    Listen,
    /// Both sides closing at once.
    Closing,
    /// Being accepted (request sockets).
    NewSynRecv,
    /// Bound with bind(2), never listened on nor connected (Linux 6.8+ reports them).
    BoundInactive,
    /// A state this build does not know.
    Other,
}

impl TcpState {
    /// The states in the kernel's order (`TCP_ESTABLISHED` is 1), with their JSON names.
    const KERNEL: [(TcpState, &'static str); 13] = [
        (TcpState::Established, "established"),
        (TcpState::SynSent, "syn-sent"),
        (TcpState::SynRecv, "syn-recv"),
        (TcpState::FinWait1, "fin-wait1"),
        (TcpState::FinWait2, "fin-wait2"),
        (TcpState::TimeWait, "time-wait"),
        (TcpState::Close, "close"),
        (TcpState::CloseWait, "close-wait"),
        (TcpState::LastAck, "last-ack"),
        (TcpState::Listen, "listen"),
        (TcpState::Closing, "closing"),
        (TcpState::NewSynRecv, "new-syn-recv"),
        (TcpState::BoundInactive, "bound-inactive"),
    ];

    /// The state the kernel numbers `n`.
    pub fn from_kernel(n: u8) -> TcpState {
        Self::KERNEL
            .get(usize::from(n).wrapping_sub(1))
            .map_or(TcpState::Other, |(state, _)| *state)
    }

    /// Stable name (as in JSON).
    pub fn as_str(self) -> &'static str {
        Self::KERNEL
            .iter()
            .find(|(state, _)| *state == self)
            .map_or("other", |(_, name)| name)
    }
}

/// A TCP socket on an asked port that does not listen but stands in bind(2)'s way: a
/// connection in TIME_WAIT, one still open (accepted from an earlier listener, or
/// outgoing from that local port), or a socket bound and never used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortUse {
    /// Local address.
    pub ip: IpAddr,
    /// Local port.
    pub port: u16,
    /// Its state.
    pub state: TcpState,
    /// The other end, for a connection.
    pub peer: Option<std::net::SocketAddr>,
    /// For TIME_WAIT: milliseconds until the kernel lets the port go.
    pub expires_ms: Option<u64>,
    /// Kernel inode (0 for TIME_WAIT: no process holds it).
    pub inode: u32,
    /// Owning user id.
    pub uid: u32,
    /// Processes holding it.
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
    /// The program the kernel runs (`/proc/PID/exe`); `None` when it cannot be read (a
    /// kernel thread, or another user's process without root).
    #[serde(default)]
    pub exe: Option<Executable>,
    /// The PID namespace it lives in (the inode of `/proc/PID/ns/pid`).
    #[serde(default)]
    pub pid_ns: Option<u64>,
    /// The mount namespace it lives in (the inode of `/proc/PID/ns/mnt`): a conmon shares
    /// its engine's, which no process name or argument can forge.
    #[serde(default)]
    pub mnt_ns: Option<u64>,
}

/// A process's executable as the kernel links it. Unlike the name and the command line,
/// which any process sets for itself, these facts cannot be forged by an unprivileged user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Executable {
    /// Path as the kernel names it, without the ` (deleted)` mark.
    pub path: String,
    /// Whether the file was deleted or replaced since the process started it.
    #[serde(default)]
    pub deleted: bool,
    /// Owner of the file.
    pub owner: u32,
    /// Whether anyone but its owner may write the file (group or other write bit).
    pub shared_write: bool,
}

impl Executable {
    /// The file name of the program (`docker-proxy` for `/usr/sbin/docker-proxy`).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// Whether it is the program `name`, installed by root: owned by root and writable
    /// by nobody else, so no unprivileged user can have put it there.
    pub fn is_trusted(&self, name: &str) -> bool {
        self.name() == name && self.owner == 0 && !self.shared_write
    }
}

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
    /// Its mount namespace (see [`Process::mnt_ns`]), when readable.
    #[serde(default)]
    pub mnt_ns: Option<u64>,
    /// Docker's data root, when its command line or the default names it.
    #[serde(default)]
    pub data_root: Option<String>,
}

/// The processes portreap knows by role. A name is only a first sieve, since any process
/// can name itself anything: identity is proven from the executable, the user and the
/// parent (see `analyze::forwarder`).
pub mod known {
    /// Docker's userland proxy.
    pub const DOCKER_PROXY: &str = "docker-proxy";
    /// The Docker engine.
    pub const DOCKERD: &str = "dockerd";
    /// Podman (its API service is `podman system service`).
    pub const PODMAN: &str = "podman";
    /// Podman's container monitor, which holds a rootful container's published ports.
    pub const CONMON: &str = "conmon";

    /// The forwarders of engines that run in a VM or a user namespace, each a process on
    /// this host holding published ports for every container of its engine: the one
    /// table the descriptor walk's sieve, the attribution and the never-act list read.
    pub const DESKTOP_FORWARDERS: [DesktopForwarder; 7] = [
        DesktopForwarder {
            product: "Docker Desktop",
            names: &["com.docker.backend", "com.docker.back"],
            prefixes: &["vpnkit"],
            cmdline: &["docker-desktop"],
            // docker-desktop-user-distro, cut at 15 bytes.
            other_comms: &["docker-desktop-"],
        },
        DesktopForwarder {
            product: "Docker Desktop (WSL)",
            names: &["wslrelay", "wslrelay.exe"],
            prefixes: &[],
            cmdline: &[],
            other_comms: &[],
        },
        DesktopForwarder {
            product: "OrbStack",
            names: &[],
            prefixes: &["OrbStack"],
            cmdline: &["orbstack"],
            other_comms: &[],
        },
        // Colima and Lima forward through an ssh or limactl process of their own.
        DesktopForwarder {
            product: "Colima",
            names: &[],
            prefixes: &[],
            cmdline: &["colima"],
            other_comms: &["ssh", "limactl"],
        },
        DesktopForwarder {
            product: "Lima",
            names: &["limactl"],
            prefixes: &[],
            cmdline: &["/.lima/"],
            other_comms: &["ssh"],
        },
        DesktopForwarder {
            product: "rootless Docker",
            names: &["rootlesskit"],
            prefixes: &[],
            cmdline: &[],
            other_comms: &[],
        },
        DesktopForwarder {
            product: "rootless Podman",
            names: &[],
            prefixes: &["rootlessport"],
            cmdline: &[],
            other_comms: &[],
        },
    ];

    /// A desktop or rootless engine's port forwarder, as [`DESKTOP_FORWARDERS`] lists it.
    #[derive(Debug)]
    pub struct DesktopForwarder {
        /// The product people know it by.
        pub product: &'static str,
        /// Its `comm` or program file name (`argv[0]` without the directory), exactly.
        pub names: &'static [&'static str],
        /// Starts of its `comm` or program file name.
        pub prefixes: &'static [&'static str],
        /// Words of its command line (lower case) that name the product.
        pub cmdline: &'static [&'static str],
        /// Further `comm`s its processes have, told apart by their command line.
        pub other_comms: &'static [&'static str],
    }

    impl DesktopForwarder {
        /// Whether a process of this `comm` may be it: the descriptor walk's sieve.
        pub fn may_be(&self, comm: &str) -> bool {
            self.is_named(comm) || self.other_comms.contains(&comm)
        }

        /// Whether the process with this `comm`, program file name and lower-cased
        /// command line is it.
        pub fn is(&self, comm: &str, program: &str, cmdline: &str) -> bool {
            self.is_named(comm)
                || self.is_named(program)
                || self.cmdline.iter().any(|w| cmdline.contains(w))
        }

        fn is_named(&self, name: &str) -> bool {
            self.names.contains(&name) || self.prefixes.iter().any(|p| name.starts_with(p))
        }
    }

    /// The engines and their runtime, never signalled: `containerd-shim*` by prefix.
    pub const NEVER_SIGNALLED: [&str; 3] = [DOCKERD, "containerd", PODMAN];

    /// Whether a process of this `comm` (at most 15 bytes) may hold a port for a
    /// container: the forwarders and engines portreap knows.
    pub fn may_forward(comm: &str) -> bool {
        [DOCKER_PROXY, DOCKERD, CONMON].contains(&comm)
            || DESKTOP_FORWARDERS.iter().any(|f| f.may_be(comm))
    }

    /// Whether a process of this `comm` may be an engine (then its facts are read).
    pub fn may_be_engine(comm: &str) -> bool {
        comm == DOCKERD || comm == PODMAN
    }
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
    /// Every engine process found in the process table.
    #[serde(default)]
    pub engines: Vec<LocalEngine>,
    /// Whether every process was looked at for engines (else only those the sockets'
    /// holders and the endpoints led to): a second search would find nothing new.
    #[serde(skip)]
    pub engines_searched: bool,
    /// The host's PID namespace (init's), to tell a container's processes from the host's.
    #[serde(default)]
    pub pid_ns: Option<u64>,
    /// The effective uid `/proc` was read as: root's hint for unreadable owners differs.
    #[serde(default)]
    pub read_as: Option<u32>,
    /// On the asked ports only (`why`, `free`, `scan --port`): the TCP sockets in every
    /// other state, which a plain bind(2) trips on too.
    #[serde(default)]
    pub port_uses: Vec<PortUse>,
    /// Whether [`HostFacts::port_uses`] was asked for (else empty says nothing).
    #[serde(default)]
    pub port_uses_read: bool,
    /// `net.ipv4.ip_unprivileged_port_start`: ports below it need root to bind.
    #[serde(default)]
    pub unprivileged_port_start: Option<u16>,
    /// The ports whose sockets were read (`why`, `scan --port`); `None`: every port. A
    /// binding on a port outside them is unseen, not unbacked.
    #[serde(default)]
    pub scope: Option<crate::portspec::PortSpec>,
    /// On the asked ports only: where each ordinary holder process came from, by PID.
    #[serde(default)]
    pub contexts: BTreeMap<u32, HolderContext>,
}

/// What a person needs to decide whether an ordinary process may go: where it runs, who
/// started it, whether it still has a terminal. Read only for plain holders of the asked
/// ports; all of it is the process's own say except the session, which the kernel keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderContext {
    /// Working directory, lossily decoded (shown, never followed); `None` when it cannot
    /// be read (another user's process without root).
    pub cwd: Option<String>,
    /// Session id: the PID of the session's leader.
    pub session: u32,
    /// Whether the session's leader still runs (a closed terminal's shell does not).
    pub session_alive: bool,
    /// Controlling terminal (`pts/3`); `None` for none.
    pub tty: Option<String>,
}

impl HostFacts {
    /// The process and its ancestors that portreap read, nearest first (the process
    /// itself excluded). Stops at PID 1 or at the first ancestor not read.
    pub fn ancestors(&self, pid: u32) -> impl Iterator<Item = &Process> + '_ {
        let mut next = self.processes.get(&pid).map(|p| p.ppid);
        let mut steps = 0;
        std::iter::from_fn(move || {
            let ppid = next.filter(|&p| p != 0)?;
            // A PID table is a tree, but a recording may be hand-edited: never loop.
            steps += 1;
            if steps > 64 {
                return None;
            }
            let parent = self.processes.get(&ppid)?;
            next = (parent.pid != 1).then_some(parent.ppid);
            Some(parent)
        })
    }

    /// Whether the sockets on `proto`/`port` were read (see [`HostFacts::scope`]).
    pub fn covers(&self, proto: Proto, port: u16) -> bool {
        self.scope
            .as_ref()
            .is_none_or(|spec| spec.matches(proto, port))
    }

    /// The engine process with this PID, if it is one.
    pub fn engine(&self, pid: u32) -> Option<&LocalEngine> {
        self.engines.iter().find(|e| e.pid == pid)
    }
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

    /// The key of its project's compose files in [`FsFacts::definitions`].
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

impl EngineStatus {
    /// Whether the engine that answered is Podman (its forwarders are `conmon` processes).
    pub fn is_podman(&self) -> bool {
        self.kind == Some(EngineKind::Podman)
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
            let kind = self.engine_of(c).kind.map_or("engine", EngineKind::as_str);
            format!("container {} ({kind})", c.name)
        }
    }
}

#[cfg(test)]
mod tcp_state_tests {
    use super::TcpState;

    #[test]
    fn kernel_numbers_names_and_json_agree() {
        for n in 1..=13u8 {
            let state = TcpState::from_kernel(n);
            assert_ne!(state, TcpState::Other, "{n}");
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json, state.as_str(), "{n}");
        }
        assert_eq!(TcpState::from_kernel(6), TcpState::TimeWait);
        assert_eq!(TcpState::from_kernel(10), TcpState::Listen);
        assert_eq!(TcpState::from_kernel(0), TcpState::Other);
        assert_eq!(TcpState::from_kernel(99), TcpState::Other);
    }
}
