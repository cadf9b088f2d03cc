//! Engines found in the process table, and the proof that an endpoint is served by one.
//!
//! A socket path says nothing about who answers on it: any user can create a socket under
//! `/run/user/UID` or point `DOCKER_HOST` anywhere. What the kernel says cannot be
//! forged: which process holds a listening socket (its descriptor table), the peer
//! credentials of a unix socket, a process's executable and user.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::FdWalk;
use crate::model::{known, EngineKind, EngineStatus, LocalEngine, Process};

/// Every engine process among `comms` (PID and `comm`), with the API sockets it listens
/// on; the descriptor tables `walked` already read are not read again. A process is taken
/// for an engine only if its executable is the engine's program installed by root (see
/// [`crate::model::Executable::is_trusted`]).
pub(super) fn discover(
    proc_root: &Path,
    comms: &[(u32, Option<String>)],
    walked: &FdWalk,
) -> Vec<LocalEngine> {
    let named = comms
        .iter()
        .filter(|(_, comm)| comm.as_deref().is_some_and(known::may_be_engine))
        .filter_map(|(pid, _)| super::read_process(proc_root, *pid));
    read_engines(proc_root, named, walked)
}

/// The engines among `processes`, the namespace tables read once for all of them.
fn read_engines<P: std::borrow::Borrow<Process>>(
    proc_root: &Path,
    processes: impl IntoIterator<Item = P>,
    walked: &FdWalk,
) -> Vec<LocalEngine> {
    let own_mnt = super::read_ns(&proc_root.join("self"), "mnt");
    let mut tables = UnixTables::default();
    processes
        .into_iter()
        .filter_map(|p| read_engine(proc_root, p.borrow(), own_mnt, &mut tables, walked))
        .collect()
}

/// The listening unix sockets of each network namespace's `/proc/PID/net/unix`, read
/// once: engines mostly share one namespace, and with hundreds of containers the table
/// holds a thousand lines that the kernel formats anew for every read.
#[derive(Default)]
struct UnixTables(HashMap<u64, Vec<(u32, String)>>);

impl UnixTables {
    /// The listeners of the table of the network namespace `dir` (`/proc/PID`) is in.
    fn of(&mut self, dir: &Path) -> Vec<(u32, String)> {
        let read = || {
            fs::read_to_string(dir.join("net/unix"))
                .map(|table| super::procfs::parse_unix_listeners(&table))
                .unwrap_or_default()
        };
        match super::read_ns(dir, "net") {
            Some(ns) => self.0.entry(ns).or_insert_with(read).clone(),
            None => read(),
        }
    }
}

/// Adds the processes `found` that are engines not known yet to the engines found.
pub fn add(facts: &mut crate::model::HostFacts, proc_root: &Path, found: &[Process]) {
    let new = found.iter().filter(|p| facts.engine(p.pid).is_none());
    let engines = read_engines(proc_root, new, &FdWalk::default());
    merge(facts, engines);
}

/// Looks at every process for engines, unless that was done already.
pub fn search_all(facts: &mut crate::model::HostFacts, proc_root: &Path) {
    if !facts.engines_searched {
        merge(facts, discover_all(proc_root));
        facts.engines_searched = true;
    }
}

/// Adds the engines `found` that are not known yet.
pub fn merge(facts: &mut crate::model::HostFacts, found: Vec<LocalEngine>) {
    for engine in found {
        if facts.engine(engine.pid).is_none() {
            facts.engines.push(engine);
        }
    }
    facts.engines.sort_by_key(|e| e.pid);
}

/// Every engine process on the host, with the API sockets it listens on; a process is
/// taken for an engine only if its executable is the engine's program installed by root.
pub fn discover_all(proc_root: &Path) -> Vec<LocalEngine> {
    let comms: Vec<(u32, Option<String>)> = super::list_pids(proc_root)
        .unwrap_or_default()
        .into_iter()
        .map(|pid| (pid, super::read_comm(proc_root, pid)))
        .collect();
    discover(proc_root, &comms, &FdWalk::default())
}

/// The engine facts of a process, if it is an engine.
fn read_engine(
    proc_root: &Path,
    p: &Process,
    own_mnt: Option<u64>,
    tables: &mut UnixTables,
    walked: &FdWalk,
) -> Option<LocalEngine> {
    let kind = engine_kind(p)?;
    let uid = p.uid?;
    let dir = proc_root.join(p.pid.to_string());
    let mnt = p.mnt_ns;
    let own_mount_ns = mnt.is_some() && mnt != own_mnt;
    let exec_root = flag_value(&p.cmdline, &["--exec-root"]);
    let sockets = listening_unix(proc_root, p.pid, tables, walked)
        .into_iter()
        .filter(|path| kind == EngineKind::Podman || is_api_socket(path, exec_root.as_deref(), uid))
        .map(|path| {
            if !own_mount_ns {
                return path;
            }
            // The engine's root as this namespace names it (`/` for a rootless engine,
            // the directory of a chroot): when the socket is the same file there, that is
            // the path a person can paste; else only /proc/PID/root reaches it.
            let inside = format!("{}{path}", dir.join("root").display());
            let seen = fs::read_link(dir.join("root")).ok().map(|root| {
                let root = root.display().to_string();
                format!("{}{path}", root.trim_end_matches('/'))
            });
            match seen {
                Some(seen)
                    if super::same_file(Path::new(&seen), Path::new(&inside)) == Some(true) =>
                {
                    seen
                }
                _ => inside,
            }
        })
        // Never trust a socket file someone else could have put there.
        .filter(|path| fs::metadata(path).is_ok_and(|m| m.uid() == 0 || m.uid() == uid))
        .map(|path| format!("unix://{path}"))
        .collect();
    let data_root = match kind {
        EngineKind::Docker => flag_value(&p.cmdline, &["--data-root", "-g", "--graph"])
            .or_else(|| (uid == 0).then(|| "/var/lib/docker".to_owned())),
        EngineKind::Podman => None,
    };
    Some(LocalEngine {
        pid: p.pid,
        kind,
        uid,
        sockets,
        own_mount_ns,
        mnt_ns: mnt,
        data_root,
    })
}

/// Which engine the process runs, proven by its executable: `dockerd`, or `podman`
/// serving its API (`podman system service`).
pub fn engine_kind(p: &Process) -> Option<EngineKind> {
    let exe = p.exe.as_ref()?;
    if exe.is_trusted(known::DOCKERD) {
        return Some(EngineKind::Docker);
    }
    let serves = p
        .cmdline
        .windows(2)
        .any(|w| w[0] == "system" && w[1] == "service");
    (exe.is_trusted(known::PODMAN) && serves).then_some(EngineKind::Podman)
}

/// The value of the first of `flags` on a Go-style command line (`--f v` or `--f=v`).
fn flag_value(cmdline: &[String], flags: &[&str]) -> Option<String> {
    let mut args = cmdline.iter().skip(1);
    while let Some(arg) = args.next() {
        for flag in flags {
            if arg == flag {
                return args.next().cloned();
            }
            if let Some(v) = arg.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                return Some(v.to_owned());
            }
        }
    }
    None
}

/// dockerd also listens inside its exec root (metrics, libnetwork's key socket, plugins):
/// those are not its API.
fn is_api_socket(path: &str, exec_root: Option<&str>, uid: u32) -> bool {
    let rootless_default = format!("/run/user/{uid}/docker");
    let roots = [
        exec_root.unwrap_or("/var/run/docker"),
        "/var/run/docker",
        "/run/docker",
        &rootless_default,
    ];
    !roots.iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The paths of the listening unix sockets process `pid` holds, as bound (in the
/// process's own mount namespace).
fn listening_unix(
    proc_root: &Path,
    pid: u32,
    tables: &mut UnixTables,
    walked: &FdWalk,
) -> Vec<String> {
    let held = match walked.held.get(&pid) {
        Some(held) => held.iter().copied().collect(),
        None => held_socket_inodes(proc_root, pid),
    };
    if held.is_empty() {
        return Vec::new();
    }
    // /proc/PID/net is the network namespace of the process's main thread, which a Go
    // engine may have moved into a container's (Podman 5 does, while it sets up networks):
    // its API socket is then listed in this namespace's table, where it was made.
    let dirs = [proc_root.join(pid.to_string()), proc_root.join("self")];
    let mut out: Vec<String> = dirs
        .iter()
        .flat_map(|dir| tables.of(dir))
        .filter(|(inode, _)| held.contains(inode))
        .map(|(_, path)| path)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every socket process `pid` holds, read by the same walk as the sockets' owners.
fn held_socket_inodes(proc_root: &Path, pid: u32) -> HashSet<u32> {
    super::walk_fds(proc_root, &[pid], None)
        .owners
        .into_keys()
        .collect()
}

/// Proves which local engine process serves `status`'s endpoint, and records it (or why
/// none is proven) in the status; the engine process joins the engines found. Only for an
/// engine that answered.
pub fn prove(status: &mut EngineStatus, facts: &mut crate::model::HostFacts, proc_root: &Path) {
    if !status.reachable {
        return;
    }
    let url = status.endpoint.clone();
    let proof = if let Some(path) = url.strip_prefix("unix://") {
        prove_unix(path, facts, proc_root)
    } else if let Some(addr) = ["tcp://", "http://", "https://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
    {
        search_all(facts, proc_root);
        prove_tcp(addr.trim_end_matches('/'), &facts.engines, proc_root)
    } else {
        Err((None, format!("{url} is not a local socket")))
    };
    match proof {
        Ok((pid, uid)) => {
            status.process = Some(pid);
            status.uid = Some(uid);
            status.locality = None;
        }
        Err((uid, why)) => {
            status.process = None;
            status.uid = uid;
            status.locality = Some(why);
        }
    }
}

/// Why an endpoint is not proven local, with the uid of its server when known.
type Unproven = (Option<u32>, String);

/// The PID and user of the engine process proven to serve a unix socket.
fn prove_unix(
    path: &str,
    facts: &mut crate::model::HostFacts,
    proc_root: &Path,
) -> Result<(u32, u32), Unproven> {
    let peer = peer_credentials(Path::new(path));
    if let Some((pid, uid)) = peer {
        let process = super::read_process(proc_root, pid);
        if let Some(p) = &process {
            add(facts, proc_root, std::slice::from_ref(p));
        }
        if let Some(engine) = facts.engine(pid) {
            return Ok((engine.pid, engine.uid));
        }
        // Without the right to read other processes' executables (not root, or no
        // SYS_PTRACE in a container) root's engine cannot be proven by its program; but
        // only root can run a process as root, and root's choice of engine is trusted.
        let unreadable = process
            .is_some_and(|p| p.exe.is_none() && p.uid == Some(0) && known::may_be_engine(&p.name));
        if uid == 0 && unreadable {
            return Ok((pid, uid));
        }
    }
    // Socket activation: the listener is systemd's, the engine holds it inherited. The
    // same file reached through the engine's own view of its sockets proves it.
    search_all(facts, proc_root);
    let wanted = fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    if let Some(engine) = facts.engines.iter().find(|e| {
        e.sockets.iter().any(|s| {
            let p = s.trim_start_matches("unix://");
            fs::metadata(p).ok().map(|m| (m.dev(), m.ino())) == wanted && wanted.is_some()
        })
    }) {
        return Ok((engine.pid, engine.uid));
    }
    Err(match peer {
        Some((pid, uid)) => {
            let name = super::read_comm(proc_root, pid).unwrap_or_else(|| "?".into());
            (
                Some(uid),
                format!("its socket is served by pid {pid} ({name}), which is no engine portreap can prove"),
            )
        }
        None => (
            None,
            "no local engine process is proven to hold its socket".into(),
        ),
    })
}

/// The PID and uid of the process that listens on a unix socket, from the kernel
/// (`SO_PEERCRED`). A non-blocking connect: a listener with a full backlog is no proof.
fn peer_credentials(path: &Path) -> Option<(u32, u32)> {
    use socket2::{Domain, SockAddr, Socket, Type};
    use std::os::fd::AsRawFd;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).ok()?;
    socket.set_nonblocking(true).ok()?;
    socket.connect(&SockAddr::unix(path).ok()?).ok()?;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // Not rustix's `socket_peercred`: its `UCred` holds a non-zero `Pid`, and the kernel
    // reports pid 0 for a peer outside portreap's PID namespace (portreap run in a
    // container, asking the host's engine).
    // SAFETY: a valid socket, a ucred-sized buffer and its length.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0).then_some((cred.pid as u32, cred.uid))
}

/// The PID and user of the engine process proven to hold a TCP endpoint's listener.
fn prove_tcp(
    addr: &str,
    engines: &[LocalEngine],
    proc_root: &Path,
) -> Result<(u32, u32), Unproven> {
    let not_local = || {
        (
            None,
            format!("tcp://{addr} is not a loopback or local address"),
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(not_local)?;
    let port: u16 = port.parse().map_err(|_| not_local())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ips: Vec<std::net::IpAddr> = if host == "localhost" {
        vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()]
    } else {
        vec![host.parse().map_err(|_| not_local())?]
    };
    if !ips.iter().all(|ip| ip.is_loopback()) {
        return Err(not_local());
    }
    let spec = crate::portspec::PortSpec(vec![crate::portspec::PortSel {
        range: crate::portspec::PortRange {
            start: port,
            end: port,
        },
        proto: Some(crate::model::Proto::Tcp),
    }]);
    let sockets = super::list_sockets(super::Owners::OnPorts(&spec)).unwrap_or_default();
    let inodes: HashSet<u32> = sockets
        .iter()
        .filter(|s| ips.contains(&s.ip) || s.ip.is_unspecified())
        .map(|s| s.inode)
        .collect();
    engines
        .iter()
        .find(|e| !held_socket_inodes(proc_root, e.pid).is_disjoint(&inodes))
        .map(|e| (e.pid, e.uid))
        .ok_or_else(|| {
            (
                None,
                format!("no local engine process holds the listening socket of tcp://{addr} (another program forwards it)"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn api_sockets_are_outside_the_exec_root() {
        assert!(is_api_socket("/var/run/docker.sock", None, 0));
        assert!(is_api_socket(
            "/run/second/docker.sock",
            Some("/run/second/exec"),
            0
        ));
        assert!(!is_api_socket("/var/run/docker/metrics.sock", None, 0));
        assert!(!is_api_socket(
            "/run/docker/libnetwork/4c12a0218b44.sock",
            None,
            0
        ));
        assert!(!is_api_socket(
            "/run/second/exec/metrics.sock",
            Some("/run/second/exec"),
            0
        ));
        assert!(is_api_socket("/run/user/1000/docker.sock", None, 1000));
        assert!(!is_api_socket(
            "/run/user/1000/docker/metrics.sock",
            None,
            1000
        ));
    }

    #[test]
    fn flags_in_either_syntax() {
        let line = args("dockerd --host unix:///run/x.sock --data-root=/srv/d --exec-root /run/x");
        assert_eq!(
            flag_value(&line, &["--data-root"]).as_deref(),
            Some("/srv/d")
        );
        assert_eq!(
            flag_value(&line, &["--exec-root"]).as_deref(),
            Some("/run/x")
        );
        assert_eq!(flag_value(&line, &["--pidfile"]), None);
        // A flag's name as another flag's prefix is not that flag.
        assert_eq!(
            flag_value(&args("dockerd --data-rootless x"), &["--data-root"]),
            None
        );
    }

    fn exe(path: &str, owner: u32, shared_write: bool) -> Option<crate::model::Executable> {
        Some(crate::model::Executable {
            path: path.into(),
            deleted: false,
            owner,
            shared_write,
        })
    }

    #[test]
    fn engines_are_proven_by_their_executable() {
        let mut p = Process {
            pid: 7,
            name: "dockerd".into(),
            cmdline: args("dockerd"),
            exe: exe("/usr/sbin/dockerd", 0, false),
            ..Process::default()
        };
        assert_eq!(engine_kind(&p), Some(EngineKind::Docker));
        p.exe = exe("/home/eve/dockerd", 1000, false);
        assert_eq!(engine_kind(&p), None, "a user's own program named dockerd");
        p.exe = exe("/tmp/dockerd", 0, true);
        assert_eq!(engine_kind(&p), None, "a file anyone may rewrite");
        p.exe = exe("/usr/bin/python3.11", 0, false);
        assert_eq!(engine_kind(&p), None, "a script that calls itself dockerd");
        p.exe = None;
        assert_eq!(engine_kind(&p), None, "unreadable is not proven");
        let podman = Process {
            cmdline: args("podman system service --time=0 unix:///run/podman/podman.sock"),
            exe: exe("/usr/bin/podman", 0, false),
            ..Process::default()
        };
        assert_eq!(engine_kind(&podman), Some(EngineKind::Podman));
        let run = Process {
            cmdline: args("podman run -d web"),
            ..podman
        };
        assert_eq!(engine_kind(&run), None, "a podman client is not an engine");
    }
}
