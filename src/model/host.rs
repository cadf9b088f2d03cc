//! What the host said: sockets, the processes holding them, and what is known of them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::LocalEngine;

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
    /// Its session (the PID of the session's leader; its own for a daemon that called
    /// `setsid`).
    #[serde(default)]
    pub session: Option<u32>,
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
