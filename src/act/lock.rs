//! One prune at a time: two prunes (cron and a person) must never act on one target twice.
//! The lock is taken before the facts are gathered, so the second prune plans from what
//! the first left behind.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};
use rustix::process::geteuid;

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

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum Error {
    /// The lock file could not be opened or read.
    Open(PathBuf, io::Error),
    /// Another user's lock file: they could hold it for ever.
    Foreign {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// flock failed for another reason than another holder.
    Lock(PathBuf, io::Error),
    /// Another portreap held it for all of `wait`.
    Held {
        /// The file.
        path: PathBuf,
        /// The PID the holder wrote, if it did.
        holder: Option<String>,
        /// How long portreap waited.
        wait: Duration,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open(path, e) => write!(f, "cannot open lock file {}: {e}", path.display()),
            Error::Foreign { path, owner } => write!(
                f,
                "lock file {} belongs to uid {owner}, not to you: remove it, or set XDG_RUNTIME_DIR to a directory of your own",
                path.display()
            ),
            Error::Lock(path, e) => write!(f, "cannot lock {}: {e}", path.display()),
            Error::Held { path, holder, wait } => {
                let who = holder
                    .as_ref()
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default();
                write!(
                    f,
                    "another portreap prune{who} holds {}; gave up after {:.0}s (raise --wait)",
                    path.display(),
                    wait.as_secs_f64()
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// Takes the lock that keeps two prunes apart: [`SHARED`] for root and for the users who
/// may open it, otherwise a lock of the user's own (their rootless engines are theirs).
pub fn acquire_default(wait: Duration) -> Result<Lock, Error> {
    if geteuid().is_root() {
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
    let euid = geteuid().as_raw();
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("portreap.lock"),
        None => std::env::temp_dir().join(format!("portreap-{euid}.lock")),
    }
}

/// Takes the lock, waiting at most `wait`. The error names the holder's PID.
fn acquire(path: PathBuf, wait: Duration) -> Result<Lock, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // Never follow a planted link (the fallback lives in a shared temp directory).
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path);
    let file = match file {
        Ok(file) => file,
        Err(e) => return Err(Error::Open(path, e)),
    };
    // Another user could have created the file first (the fallback lives in a shared temp
    // directory) and hold its lock for ever: only our own or root's is taken.
    let owner = match file.metadata() {
        Ok(meta) => std::os::unix::fs::MetadataExt::uid(&meta),
        Err(e) => return Err(Error::Open(path, e)),
    };
    if owner != geteuid().as_raw() && owner != 0 {
        return Err(Error::Foreign { path, owner });
    }
    take(file, path, wait)
}

/// Waits at most `wait` for `file`'s lock. The error names the holder's PID.
fn take(mut file: File, path: PathBuf, wait: Duration) -> Result<Lock, Error> {
    let start = Instant::now();
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                // Record who holds it, for the message the next prune prints.
                let _ = file.set_len(0);
                let _ = file.rewind();
                let _ = write!(file, "{}", std::process::id());
                let _ = file.flush();
                return Ok(Lock { _file: file, path });
            }
            Err(e) if e != rustix::io::Errno::WOULDBLOCK => {
                return Err(Error::Lock(path, e.into()))
            }
            Err(_) => {}
        }
        if start.elapsed() >= wait {
            let mut holder = String::new();
            let _ = file.rewind();
            let _ = file.read_to_string(&mut holder);
            let holder = Some(holder.trim().to_owned()).filter(|h| !h.is_empty());
            return Err(Error::Held { path, holder, wait });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
