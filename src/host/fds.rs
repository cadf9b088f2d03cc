//! The descriptor walk: which processes hold which socket inodes, read from
//! `/proc/PID/fd`. It dominates a scan on a busy host, so it reads only what is asked.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::procfs;

/// What a walk found.
#[derive(Default)]
pub(super) struct FdWalk {
    /// Socket inode to the PIDs holding it.
    pub(super) owners: HashMap<u32, Vec<u32>>,
    /// The sockets each process whose table was read holds, when every socket was asked
    /// for (an engine's are its API sockets: they are not read twice).
    pub(super) held: HashMap<u32, Vec<u32>>,
    /// Processes whose descriptor table could not be read.
    pub(super) unreadable: usize,
}

/// What one process's descriptor table told.
pub(super) enum Table {
    /// The wanted socket inodes it holds (possibly none).
    Holds(Vec<u32>),
    /// It exited while we walked: nothing to attribute.
    Gone,
    /// Its table or links cannot be read (no permission): its sockets are unknown.
    Unreadable,
}

/// Maps socket inodes (the `wanted` ones, or all) to the PIDs (among `pids`) holding them. A process whose
/// descriptor table cannot be read is counted, so a socket without owner can be explained.
///
/// Every descriptor of every process is read: stopping at the first holder would miss the
/// others of a shared socket (a forked server's workers, systemd socket activation), and
/// `free --kill-processes` must see them all. Speed comes instead from one `readlinkat`
/// per descriptor relative to the table's directory (no path walk from `/` each time) and
/// from spreading the processes over the cores.
pub(super) fn walk_fds(proc_root: &Path, pids: &[u32], wanted: Option<&HashSet<u32>>) -> FdWalk {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Ok(proc_dir) = rustix::fs::open(
        proc_root,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return FdWalk {
            unreadable: pids.len(),
            ..FdWalk::default()
        };
    };
    // Small chunks, taken in turn: a few processes (the busy servers) hold most
    // descriptors, so a fixed split would leave one thread with all the work.
    const CHUNK: usize = 4;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 4)
        .min(pids.len().div_ceil(CHUNK * 4).max(1));
    let next = AtomicUsize::new(0);
    let work = || {
        let mut walk = FdWalk::default();
        let mut dirents = Vec::with_capacity(16 * 1024);
        loop {
            let first = next.fetch_add(CHUNK, Ordering::Relaxed);
            let Some(chunk) = pids.get(first..pids.len().min(first + CHUNK)) else {
                break;
            };
            for &pid in chunk {
                match read_table(&proc_dir, pid, wanted, &mut dirents) {
                    Table::Holds(inodes) => {
                        for &inode in &inodes {
                            walk.owners.entry(inode).or_default().push(pid);
                        }
                        if wanted.is_none() {
                            walk.held.insert(pid, inodes);
                        }
                    }
                    Table::Gone => {}
                    Table::Unreadable => walk.unreadable += 1,
                }
            }
        }
        walk
    };
    let mut walk = if threads == 1 {
        work()
    } else {
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            let mut walk = work();
            for helper in helpers {
                let part = match helper.join() {
                    Ok(part) => part,
                    Err(panic) => std::panic::resume_unwind(panic),
                };
                walk.unreadable += part.unreadable;
                walk.held.extend(part.held);
                for (inode, holders) in part.owners {
                    walk.owners.entry(inode).or_default().extend(holders);
                }
            }
            walk
        })
    };
    for pids in walk.owners.values_mut() {
        pids.sort_unstable();
        pids.dedup();
    }
    walk
}

/// Reads one process's descriptor table for the wanted socket inodes. `dirents` is a
/// reusable buffer for the directory entries.
pub(super) fn read_table(
    proc_dir: &rustix::fd::OwnedFd,
    pid: u32,
    wanted: Option<&HashSet<u32>>,
    dirents: &mut Vec<u8>,
) -> Table {
    use rustix::io::Errno;
    let fd_dir = match rustix::fs::openat(
        proc_dir,
        format!("{pid}/fd"),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::SRCH) => return Table::Gone,
        Err(_) => return Table::Unreadable,
    };
    let mut held = Vec::new();
    // "socket:[4294967295]" is 19 bytes; longer targets are paths, never sockets.
    let mut link = [0u8; 32];
    'read: loop {
        dirents.clear();
        let mut entries = rustix::fs::RawDir::new(&fd_dir, dirents.spare_capacity_mut());
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(entry) => entry,
                // The buffer cannot hold even one entry: never with 16 KiB, but grow
                // rather than lose the table.
                Err(Errno::INVAL) => {
                    let more = dirents.capacity() * 2;
                    dirents.reserve(more);
                    continue 'read;
                }
                Err(Errno::NOENT | Errno::SRCH) => return Table::Gone,
                Err(_) => return Table::Unreadable,
            };
            let name = entry.file_name();
            if name.to_bytes().first() == Some(&b'.') {
                continue;
            }
            let len = match rustix::fs::readlinkat_raw(&fd_dir, name, &mut link[..]) {
                Ok(len) => len,
                // Listing a descriptor table can be allowed while reading its links is
                // not (a container without SYS_PTRACE): that process's sockets are
                // unknown too.
                Err(Errno::ACCESS | Errno::PERM) => return Table::Unreadable,
                // Closed since the listing.
                Err(_) => continue,
            };
            if let Some(inode) = procfs::parse_socket_link(&link[..len]) {
                if wanted.is_none_or(|w| w.contains(&inode)) {
                    held.push(inode);
                }
            }
        }
        // A descriptor duplicated (dup, or inherited twice) names its socket twice.
        held.sort_unstable();
        held.dedup();
        return Table::Holds(held);
    }
}
