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

/// The lock every run that may act on the system engine shares: root's, and that of the
/// users its socket lets in (the docker group, root's equals in all but name). Mode 0660
/// in the socket's group, so nobody else can open it and hold it for ever.
pub const SHARED: &str = "/run/portreap.lock";

/// Sockets whose group says who may act on the system engine.
const SYSTEM_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/podman/podman.sock"];

/// Takes the lock that keeps two prunes apart: [`SHARED`] for root and for the users who
/// may open it, otherwise a lock of the user's own (their rootless engines are theirs).
pub fn acquire_default(wait: Duration) -> Result<Lock, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let lock = acquire(PathBuf::from(SHARED), wait)?;
        share(&lock._file);
        return Ok(lock);
    }
    match open_shared() {
        Some(file) => take(file, PathBuf::from(SHARED), wait),
        None => acquire(own_path(), wait),
    }
}

/// Lets the system engine's group in, and nobody else; a lock file left 0644 by an older
/// portreap (anyone could flock it) is mended on the way.
fn share(file: &File) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let group = SYSTEM_SOCKETS.iter().find_map(|path| {
        let meta = std::fs::symlink_metadata(path).ok()?;
        (meta.file_type().is_socket() && meta.uid() == 0).then_some(meta.gid())
    });
    let _ = std::os::unix::fs::fchown(file, None, Some(group.unwrap_or(0)));
    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o660));
}

/// [`SHARED`] for a user who may open it: a regular file of root's nobody else may write.
fn open_shared() -> Option<File> {
    use std::os::unix::fs::MetadataExt;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(SHARED)
        .ok()?;
    let meta = file.metadata().ok()?;
    (meta.is_file() && meta.uid() == 0 && meta.mode() & 0o002 == 0).then_some(file)
}

/// A user's own lock: their runtime directory, else the temp directory.
fn own_path() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("portreap.lock"),
        None => std::env::temp_dir().join(format!("portreap-{euid}.lock")),
    }
}

/// Takes the lock, waiting at most `wait`. The error names the holder's PID.
fn acquire(path: PathBuf, wait: Duration) -> Result<Lock, String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
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
    take(file, path, wait)
}

/// Waits at most `wait` for `file`'s lock. The error names the holder's PID.
fn take(mut file: File, path: PathBuf, wait: Duration) -> Result<Lock, String> {
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
