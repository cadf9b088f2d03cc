//! Host facts: listening sockets from the kernel (netlink, through `netstat2`) and the
//! processes that hold them, from `/proc`.
//!
//! PIDs are resolved here rather than by `netstat2`, because its `/proc` walk panics when
//! `/proc` is unreadable and hides permission errors; portreap must say when an owner could
//! not be read, and why.

pub mod compose;
pub mod procfs;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context as _;
use netstat2::{AddressFamilyFlags, ProtocolFlags, ProtocolSocketInfo, TcpState};

use crate::model::{HostFacts, Process, Proto, Socket};

/// Reads the host's listening TCP and bound UDP sockets (IPv4 and IPv6) and their owners.
pub fn collect(proc_root: &Path) -> anyhow::Result<HostFacts> {
    let mut sockets = list_sockets()?;
    let mut by_inode: HashMap<u32, Vec<usize>> = HashMap::with_capacity(sockets.len());
    for (i, s) in sockets.iter().enumerate() {
        by_inode.entry(s.inode).or_default().push(i);
    }
    let walk = walk_fds(proc_root, &by_inode);
    let mut processes = BTreeMap::new();
    for (inode, pids) in walk.owners {
        for &i in &by_inode[&inode] {
            sockets[i].pids = pids.clone();
        }
        for pid in pids {
            if let std::collections::btree_map::Entry::Vacant(slot) = processes.entry(pid) {
                if let Some(process) = read_process(proc_root, pid) {
                    slot.insert(process);
                }
            }
        }
    }
    let users = user_names(&processes);
    Ok(HostFacts {
        users,
        sockets,
        processes,
        unreadable_processes: walk.unreadable,
        proc_error: walk.proc_error,
    })
}

fn list_sockets() -> anyhow::Result<Vec<Socket>> {
    let iter = netstat2::iterate_sockets_info_without_pids(
        AddressFamilyFlags::IPV4 | AddressFamilyFlags::IPV6,
        ProtocolFlags::TCP | ProtocolFlags::UDP,
    )
    .context("cannot list sockets through netlink (sock_diag)")?;
    let mut sockets = Vec::new();
    for info in iter {
        let info = info.context("cannot read a socket from netlink (sock_diag)")?;
        let (proto, ip, port) = match &info.protocol_socket_info {
            ProtocolSocketInfo::Tcp(tcp) if tcp.state == TcpState::Listen => {
                (Proto::Tcp, tcp.local_addr, tcp.local_port)
            }
            ProtocolSocketInfo::Tcp(_) => continue,
            ProtocolSocketInfo::Udp(udp) => (Proto::Udp, udp.local_addr, udp.local_port),
        };
        if port == 0 {
            continue;
        }
        sockets.push(Socket {
            proto,
            ip,
            port,
            inode: info.inode,
            uid: info.uid,
            pids: Vec::new(),
        });
    }
    Ok(sockets)
}

struct FdWalk {
    owners: HashMap<u32, Vec<u32>>,
    unreadable: usize,
    proc_error: Option<String>,
}

/// Maps the wanted socket inodes to the PIDs holding them. A process whose descriptor
/// table cannot be read is counted, so a socket without owner can be explained.
fn walk_fds(proc_root: &Path, wanted: &HashMap<u32, Vec<usize>>) -> FdWalk {
    let mut walk = FdWalk {
        owners: HashMap::new(),
        unreadable: 0,
        proc_error: None,
    };
    let entries = match fs::read_dir(proc_root) {
        Ok(entries) => entries,
        Err(e) => {
            walk.proc_error = Some(format!("cannot read {}: {e}", proc_root.display()));
            return walk;
        }
    };
    let mut link_path = proc_root.to_path_buf();
    for entry in entries.flatten() {
        let Some(pid) = std::str::from_utf8(entry.file_name().as_bytes())
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let fd_dir = entry.path().join("fd");
        let fds = match fs::read_dir(&fd_dir) {
            Ok(fds) => fds,
            // The process exited while we walked: nothing to attribute.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => {
                walk.unreadable += 1;
                continue;
            }
        };
        // Listing a descriptor table can be allowed while reading its links is not (a
        // container without SYS_PTRACE): that process's sockets are unknown too.
        let mut denied = false;
        for fd in fds.flatten() {
            link_path.clone_from(&fd_dir);
            link_path.push(fd.file_name());
            let target = match fs::read_link(&link_path) {
                Ok(target) => target,
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    denied = true;
                    break;
                }
                Err(_) => continue,
            };
            let Some(inode) = procfs::parse_socket_link(target.as_os_str().as_bytes()) else {
                continue;
            };
            if wanted.contains_key(&inode) {
                let pids = walk.owners.entry(inode).or_default();
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
        if denied {
            walk.unreadable += 1;
        }
    }
    for pids in walk.owners.values_mut() {
        pids.sort_unstable();
    }
    walk
}

/// Names the owners of `processes` from `/etc/passwd` (no NSS: a scan must not hang on a
/// directory service; unknown uids are simply shown as numbers).
fn user_names(processes: &BTreeMap<u32, Process>) -> BTreeMap<u32, String> {
    let wanted: std::collections::BTreeSet<u32> =
        processes.values().filter_map(|p| p.uid).collect();
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    procfs::parse_passwd(&passwd)
        .into_iter()
        .filter(|(uid, _)| wanted.contains(uid))
        .collect()
}

/// Reads what portreap needs to know about one process; `None` if it exited meanwhile.
pub fn read_process(proc_root: &Path, pid: u32) -> Option<Process> {
    let dir = proc_root.join(pid.to_string());
    let stat = procfs::parse_stat(&fs::read(dir.join("stat")).ok()?)?;
    let cmdline = fs::read(dir.join("cmdline"))
        .map(|raw| procfs::parse_cmdline(&raw))
        .unwrap_or_default();
    let container_id = fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|raw| procfs::parse_cgroup_container_id(&raw));
    Some(Process {
        pid,
        ppid: stat.ppid,
        uid: fs::metadata(&dir).ok().map(|m| m.uid()),
        name: stat.name,
        cmdline,
        start_ticks: Some(stat.start_ticks),
        container_id,
    })
}
