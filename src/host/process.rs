//! One process as `/proc` tells it (stat, command line, executable, namespaces), and the
//! small readers the sieves use for every process.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::procfs;
use crate::model::{Executable, Process};

/// The host's PID namespace: init's, else (not root) portreap's own.
pub(super) fn host_pid_ns(proc_root: &Path) -> Option<u64> {
    read_ns(&proc_root.join("1"), "pid").or_else(|| read_ns(&proc_root.join("self"), "pid"))
}

/// The inode of a namespace link, `/proc/PID/ns/KIND` -> `KIND:[4026531836]`.
pub(super) fn read_ns(dir: &Path, kind: &str) -> Option<u64> {
    let link = fs::read_link(dir.join("ns").join(kind)).ok()?;
    parse_ns_link(kind, link.as_os_str().as_bytes())
}

fn parse_ns_link(kind: &str, link: &[u8]) -> Option<u64> {
    std::str::from_utf8(link)
        .ok()?
        .strip_prefix(kind)?
        .strip_prefix(":[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// One process's `/proc/PID` directory, held open while its files are read: each read is
/// relative to it (no lookup of `/proc/PID` again), and all of them read the same
/// process: once it exits they fail, never reading a process that reused its PID.
struct ProcDir(rustix::fd::OwnedFd);

impl ProcDir {
    fn open(proc_root: &Path, pid: u32) -> Option<Self> {
        use rustix::fs::{open, Mode, OFlags};
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        open(proc_root.join(pid.to_string()), flags, Mode::empty())
            .ok()
            .map(Self)
    }

    /// A small file of the directory, whole (see [`read_small`]).
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        use rustix::fs::{openat, Mode, OFlags};
        let fd = openat(
            &self.0,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        read_all(&fd)
    }

    fn link(&self, name: &str) -> Option<Vec<u8>> {
        rustix::fs::readlinkat(&self.0, name, Vec::new())
            .ok()
            .map(std::ffi::CString::into_bytes)
    }

    fn ns(&self, kind: &str) -> Option<u64> {
        parse_ns_link(kind, &self.link(&format!("ns/{kind}"))?)
    }

    /// The owner of the directory: the process's user.
    fn owner(&self) -> Option<u32> {
        rustix::fs::fstat(&self.0).ok().map(|st| st.st_uid)
    }

    /// The executable: the link names it, and following the link reaches the file itself
    /// even when it was deleted or lives in another mount namespace.
    fn exe(&self) -> Option<Executable> {
        let target = String::from_utf8_lossy(&self.link("exe")?).into_owned();
        let (path, deleted) = match target.strip_suffix(" (deleted)") {
            Some(path) => (path.to_owned(), true),
            None => (target, false),
        };
        let meta = rustix::fs::statat(&self.0, "exe", rustix::fs::AtFlags::empty()).ok()?;
        Some(Executable {
            path,
            deleted,
            owner: meta.st_uid,
            shared_write: meta.st_mode & 0o022 != 0,
        })
    }
}

/// Every PID `/proc` lists now.
pub(super) fn list_pids(proc_root: &Path) -> std::io::Result<Vec<u32>> {
    Ok(fs::read_dir(proc_root)?
        .flatten()
        .filter_map(|e| {
            std::str::from_utf8(e.file_name().as_bytes())
                .ok()?
                .parse()
                .ok()
        })
        .collect())
}

/// The kernel's name of a process (`comm`), if it still runs. Read once for all
/// processes by the sieves: one open, one read (the kernel gives the at most 16 bytes
/// whole), one close.
pub(super) fn read_comm(proc_root: &Path, pid: u32) -> Option<String> {
    use rustix::fs::{open, Mode, OFlags};
    let path = proc_root.join(format!("{pid}/comm"));
    let fd = open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut raw = [0u8; 64];
    let n = rustix::io::read(&fd, &mut raw).ok()?;
    let raw = raw[..n].strip_suffix(b"\n").unwrap_or(&raw[..n]);
    Some(String::from_utf8_lossy(raw).into_owned())
}

/// A small `/proc` file whole. The sieves read one or two of these per process, so the
/// system calls count: std's `fs::read` asks the file's size first (and `/proc` reports
/// none) and reads twice; this opens, reads until the end and closes.
pub(super) fn read_small(path: &Path) -> Option<Vec<u8>> {
    use rustix::fs::{open, Mode, OFlags};
    let fd = open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    read_all(&fd)
}

fn read_all(fd: &rustix::fd::OwnedFd) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match rustix::io::read(fd, &mut chunk) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
}

/// Names the owners of `processes` from `/etc/passwd` (no NSS: a scan must not hang on a
/// directory service; unknown uids are simply shown as numbers).
pub(super) fn user_names(processes: &BTreeMap<u32, Process>) -> BTreeMap<u32, String> {
    let wanted: std::collections::BTreeSet<u32> =
        processes.values().filter_map(|p| p.uid).collect();
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    procfs::parse_passwd(&passwd)
        .into_iter()
        .filter(|(uid, _)| wanted.contains(uid))
        .collect()
}

/// Seconds since the epoch at boot (`btime` in `/proc/stat`), read once.
pub(super) fn boot_time() -> Option<i64> {
    static BOOT: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| {
        fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()
    })
}

/// Clock ticks per second, the unit of a process's start time.
pub(super) fn clock_ticks() -> u64 {
    Some(rustix::param::clock_ticks_per_second())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Whether two paths name the same file (device and inode); `None` when either cannot
/// be read.
pub fn same_file(a: &Path, b: &Path) -> Option<bool> {
    let (a, b) = (fs::metadata(a).ok()?, fs::metadata(b).ok()?);
    Some(a.dev() == b.dev() && a.ino() == b.ino())
}

/// Reads what portreap needs to know about one process; `None` if it exited meanwhile.
pub fn read_process(proc_root: &Path, pid: u32) -> Option<Process> {
    let dir = ProcDir::open(proc_root, pid)?;
    let stat = procfs::parse_stat(&dir.read("stat")?)?;
    let cmdline = dir
        .read("cmdline")
        .map(|raw| procfs::parse_cmdline(&raw))
        .unwrap_or_default();
    let container_id = dir
        .read("cgroup")
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|raw| procfs::parse_cgroup_container_id(&raw));
    Some(Process {
        started: boot_time().map(|boot| boot + (stat.start_ticks / clock_ticks()) as i64),
        pid,
        ppid: stat.ppid,
        uid: dir.owner(),
        name: stat.name,
        cmdline,
        start_ticks: Some(stat.start_ticks),
        container_id,
        exe: dir.exe(),
        pid_ns: dir.ns("pid"),
        mnt_ns: dir.ns("mnt"),
        session: Some(stat.session),
    })
}
