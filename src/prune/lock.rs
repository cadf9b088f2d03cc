//! One prune at a time: two prunes (cron and a person) must never act on one target twice.
//! The lock is taken before the facts are gathered, so the second prune plans from what
//! the first left behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Held while alive; the kernel releases it when the process exits, however it exits.
pub struct Lock {
    _file: File,
    /// Where the lock lives.
    pub path: PathBuf,
}

/// Where the lock lives: `/run` for root, the user's runtime directory otherwise.
pub fn default_path() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return PathBuf::from("/run/portreap.lock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("portreap.lock"),
        None => std::env::temp_dir().join(format!("portreap-{euid}.lock")),
    }
}

/// Takes the lock, waiting at most `wait`. The error names the holder's PID.
pub fn acquire(path: PathBuf, wait: Duration) -> Result<Lock, String> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        // Never follow a planted link (the fallback lives in a shared temp directory).
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| format!("cannot open lock file {}: {e}", path.display()))?;
    // Another user could have created the file first (the fallback lives in a shared temp
    // directory) and hold its lock for ever: only our own or root's is taken.
    let owner = std::os::unix::fs::MetadataExt::uid(
        &file
            .metadata()
            .map_err(|e| format!("cannot read lock file {}: {e}", path.display()))?,
    );
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if owner != euid && owner != 0 {
        return Err(format!(
            "lock file {} belongs to uid {owner}, not to you: remove it, or set XDG_RUNTIME_DIR to a directory of your own",
            path.display()
        ));
    }
    let start = Instant::now();
    loop {
        // SAFETY: a valid descriptor; LOCK_NB makes this return at once.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            // Record who holds it, for the message the next prune prints.
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = write!(file, "{}", std::process::id());
            let _ = file.flush();
            return Ok(Lock { _file: file, path });
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(format!("cannot lock {}: {err}", path.display()));
        }
        if start.elapsed() >= wait {
            let mut holder = String::new();
            let _ = file.rewind();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            return Err(format!(
                "another portreap prune{who} holds {}; gave up after {:.0}s (raise --wait)",
                path.display(),
                wait.as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
