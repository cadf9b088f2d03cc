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
    let text = link.to_str()?;
    text.strip_prefix(kind)?
        .strip_prefix(":[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The executable of the process in `dir`: the link names it, and following the link
/// reaches the file itself even when it was deleted or lives in another mount namespace.
pub(super) fn read_exe(dir: &Path) -> Option<Executable> {
    use std::os::unix::fs::PermissionsExt;
    let link = dir.join("exe");
    let target = fs::read_link(&link).ok()?;
    let target = target.to_string_lossy();
    let (path, deleted) = match target.strip_suffix(" (deleted)") {
        Some(path) => (path.to_owned(), true),
        None => (target.into_owned(), false),
    };
    let meta = fs::metadata(&link).ok()?;
    Some(Executable {
        path,
        deleted,
        owner: meta.uid(),
        shared_write: meta.permissions().mode() & 0o022 != 0,
    })
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
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match rustix::io::read(&fd, &mut chunk) {
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
    let dir = proc_root.join(pid.to_string());
    let stat = procfs::parse_stat(&fs::read(dir.join("stat")).ok()?)?;
    let cmdline = fs::read(dir.join("cmdline"))
        .map(|raw| procfs::parse_cmdline(&raw))
        .unwrap_or_default();
    let container_id = fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|raw| procfs::parse_cgroup_container_id(&raw));
    Some(Process {
        started: boot_time().map(|boot| boot + (stat.start_ticks / clock_ticks()) as i64),
        pid,
        ppid: stat.ppid,
        uid: fs::metadata(&dir).ok().map(|m| m.uid()),
        name: stat.name,
        cmdline,
        start_ticks: Some(stat.start_ticks),
        container_id,
        exe: read_exe(&dir),
        pid_ns: read_ns(&dir, "pid"),
        mnt_ns: read_ns(&dir, "mnt"),
    })
}
