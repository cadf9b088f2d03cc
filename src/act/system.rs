//! The real side effects behind [`Ops`]: the engine, `/proc`, pidfd signals, bind probes.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::execute::{Exited, Ops, Pinned, Signal};
use crate::analyze::findings::PortRef;
use crate::engine::{Client, Error as EngineError};
use crate::model::{Container, Process, Proto};

/// The live system.
pub struct System {
    /// Connections to the engines queried, in the snapshot's order.
    pub engines: Vec<Client>,
    /// The host's /proc.
    pub proc_root: PathBuf,
    /// Where compose paths are looked up, for each engine (its containers' labels name
    /// paths of the host its compose client ran on).
    pub roots: Vec<crate::host::compose::Roots>,
}

/// A process pinned through a pidfd (Linux 5.3+): signals go to that process only.
pub struct PidFd {
    fd: OwnedFd,
}

fn pin_pid(pid: u32) -> io::Result<Option<PidFd>> {
    let out_of_range = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("pid {pid} out of range"),
        )
    };
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(out_of_range)?;
    match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => Ok(Some(PidFd { fd })),
        Err(Errno::SRCH) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Pinned for PidFd {
    fn signal(&self, signal: Signal) -> io::Result<()> {
        let sig = match signal {
            Signal::Term => rustix::process::Signal::TERM,
            Signal::Kill => rustix::process::Signal::KILL,
        };
        match pidfd_send_signal(&self.fd, sig) {
            // Already exited: the signal had nothing left to do.
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn wait_exit(&self, limit: Duration) -> Exited {
        // A pidfd becomes readable when its process exits. Poll in short slices so the
        // single-threaded runtime keeps serving the other actions.
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        loop {
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            if poll(&mut fds, Some(&now)).is_ok_and(|ready| ready > 0) {
                return Exited::Yes;
            }
            if waited >= limit {
                return Exited::No;
            }
            tokio::time::sleep(step).await;
            waited += step;
        }
    }
}

impl System {
    fn client(&self, engine: usize) -> Result<&Client, EngineError> {
        self.engines
            .get(engine)
            .ok_or_else(|| EngineError::Unreachable(format!("no connection to engine {engine}")))
    }
}

impl Ops for System {
    type Pin = PidFd;

    async fn inspect(&self, engine: usize, id: &str) -> Result<Option<Container>, EngineError> {
        self.client(engine)?.inspect(id).await
    }

    async fn unpause(&self, engine: usize, id: &str) -> Result<(), EngineError> {
        self.client(engine)?.unpause(id).await
    }

    async fn stop(&self, engine: usize, id: &str, grace: Duration) -> Result<(), EngineError> {
        self.client(engine)?.stop(id, grace).await
    }

    async fn remove(&self, engine: usize, id: &str, force: bool) -> Result<bool, EngineError> {
        self.client(engine)?.remove(id, force).await
    }

    fn pin(&self, pid: u32) -> io::Result<Option<PidFd>> {
        pin_pid(pid)
    }

    fn process(&self, pid: u32) -> Option<Process> {
        crate::host::read_process(&self.proc_root, pid)
    }

    fn path_state(&self, engine: usize, path: &str) -> crate::model::PathState {
        match self.roots.get(engine) {
            Some(roots) => roots.state(path),
            None => crate::model::PathState::Unknown(format!("no engine {engine}")),
        }
    }

    fn compose_definition(
        &self,
        engine: usize,
        files: &[String],
    ) -> crate::model::ComposeDefinition {
        match self.roots.get(engine) {
            Some(roots) => roots.definition(files),
            None => crate::model::ComposeDefinition::NotJudged {
                reason: format!("no engine {engine}"),
            },
        }
    }

    fn port_free(&self, port: &PortRef) -> bool {
        probe(port)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Whether the exact address and protocol can be bound now.
///
/// `[::]` is probed IPv6-only, so an IPv4 holder of the same port does not make it look
/// held. TCP sets SO_REUSEADDR, so connections lingering in TIME_WAIT after the listener
/// closed do not either; UDP must not, or it would bind beside a live holder.
pub fn probe(port: &PortRef) -> bool {
    let addr = SocketAddr::new(port.ip, port.port);
    let domain = Domain::for_address(addr);
    let (kind, protocol) = match port.proto {
        Proto::Tcp => (Type::STREAM, Protocol::TCP),
        Proto::Udp => (Type::DGRAM, Protocol::UDP),
    };
    let Ok(socket) = Socket::new(domain, kind, Some(protocol)) else {
        return false;
    };
    if addr.is_ipv6() && socket.set_only_v6(true).is_err() {
        return false;
    }
    if port.proto == Proto::Tcp && socket.set_reuse_address(true).is_err() {
        return false;
    }
    socket.bind(&SockAddr::from(addr)).is_ok()
}
