//! The real side effects behind [`Ops`]: the engine, `/proc`, pidfd signals, bind probes.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

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

fn pidfd_open(pid: u32) -> Result<Option<PidFd>, String> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ESRCH) => Ok(None),
            _ => Err(format!("cannot pin pid {pid}: {err}")),
        };
    }
    // SAFETY: the syscall returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    Ok(Some(PidFd { fd }))
}

impl Pinned for PidFd {
    fn signal(&self, signal: Signal) -> Result<(), String> {
        let sig = match signal {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        };
        // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            // Already exited: the signal had nothing left to do.
            if err.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(err.to_string());
        }
        Ok(())
    }

    async fn wait_exit(&self, limit: Duration) -> Exited {
        // A pidfd becomes readable when its process exits. Poll in short slices so the
        // single-threaded runtime keeps serving the other actions.
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        loop {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, zero timeout.
            let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
            if rc > 0 {
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

    fn pin(&self, pid: u32) -> Result<Option<PidFd>, String> {
        pidfd_open(pid)
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
