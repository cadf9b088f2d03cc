//! Writing the files users name (reports, summaries, baselines) without following a link
//! someone else planted: portreap often runs as root in shared directories (a CI
//! workspace, `/tmp`), where a symlink at the named path would make it overwrite any file.
//! New contents go to a temporary file created beside the target (`O_CREAT | O_EXCL |
//! O_NOFOLLOW`, mode 0600: reports name processes and containers), which is then renamed
//! over the target: a rename replaces a link, never writes through it.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a named output path is refused before anything is done.
pub fn refuse(path: &Path) -> Option<String> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Some(format!(
            "{} is a symbolic link; portreap writes only to a file of its own (remove the link or name another path)",
            path.display()
        )),
        Ok(m) if !m.file_type().is_file() => Some(format!(
            "{} exists and is not a regular file",
            path.display()
        )),
        _ => None,
    }
}

/// Replaces `path` with `contents`, atomically, never following a link at `path`.
pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_mode(path, contents, 0o600)
}

/// [`write`](fn@write) for a file other users' programs must read (metrics for node_exporter, which
/// runs as its own user): mode 0644.
pub fn write_public(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_mode(path, contents, 0o644)
}

fn write_mode(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "names no file"))?;
    let (temp, mut file) = create_temp(&dir, &name.to_string_lossy(), mode)?;
    // The umask narrows the mode asked at creation; a reader of another user needs it all.
    let written = file
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .and_then(|()| file.write_all(contents))
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

fn create_temp(dir: &Path, name: &str, mode: u32) -> io::Result<(PathBuf, fs::File)> {
    for n in 0..100u32 {
        let temp = dir.join(format!(".{name}.portreap-{}-{n}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name beside the target",
    ))
}

/// Appends to `path` (created 0600 if missing), refusing a link at `path`: for files
/// another program owns, like GitHub's step summary.
pub fn append(path: &Path, contents: &[u8]) -> io::Result<()> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut f| f.write_all(contents))
}

/// Who may own a record portreap acts from: root, the user running portreap, and under
/// `sudo` the user who ran sudo (`SUDO_UID`; only believed when portreap runs as root,
/// where sudo sets it).
pub fn trusted_owners() -> Vec<u32> {
    let euid = rustix::process::geteuid().as_raw();
    let mut owners = vec![0, euid];
    if euid == 0 {
        owners.extend(
            std::env::var("SUDO_UID")
                .ok()
                .and_then(|u| u.parse::<u32>().ok()),
        );
    }
    owners.sort_unstable();
    owners.dedup();
    owners
}

/// Reads a record portreap acts from (a CI baseline, a job's registration), which must
/// prove itself: reached without a symbolic link anywhere in its path, a regular file of
/// at most `max` bytes, owned by a [`trusted_owners`] user and writable by nobody else, in
/// a directory of such a user that others cannot write (or a sticky one, where they
/// cannot replace it). Nothing is read before the checks, all made on the open
/// descriptors; a FIFO or a device never blocks the open. Says why when it does not prove
/// itself.
pub fn read_record(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
    use std::io::Read;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| "it names no file".to_owned())?;
    let owners = trusted_owners();
    // Every directory above it too: one a user may write could swap a whole branch.
    let absolute = std::path::absolute(dir).map_err(|e| e.to_string())?;
    for d in absolute.ancestors() {
        trusted_directory(d, &owners)?;
    }
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dirfd =
        rustix::fs::openat2(CWD, &absolute, dir_flags, Mode::empty(), resolve).map_err(errno)?;
    // Looked at before it is opened for reading: opening a device can have effects.
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let found = rustix::fs::openat2(&dirfd, name, flags, Mode::empty(), resolve).map_err(errno)?;
    let stat = rustix::fs::fstat(&found).map_err(errno)?;
    if stat.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(errno(rustix::io::Errno::LOOP));
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err("it is not a regular file".into());
    }
    if !owners.contains(&stat.st_uid) {
        return Err(format!(
            "it belongs to uid {}, neither root nor the user running portreap",
            stat.st_uid
        ));
    }
    if stat.st_mode & 0o022 != 0 {
        return Err("other users may write it".into());
    }
    let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
    if size > max {
        return Err(format!("it is larger than {} KiB", max / 1024));
    }
    // The very file looked at, opened for reading through its descriptor.
    let fd = rustix::fs::openat(
        &dirfd,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let now = rustix::fs::fstat(&fd).map_err(errno)?;
    if (now.st_dev, now.st_ino) != (stat.st_dev, stat.st_ino) {
        return Err("it was replaced while it was read".into());
    }
    let mut raw = Vec::new();
    fs::File::from(fd)
        .take(max + 1)
        .read_to_end(&mut raw)
        .map_err(|e| e.to_string())?;
    if raw.len() as u64 > max {
        return Err(format!("it grew past {} KiB while read", max / 1024));
    }
    Ok(raw)
}

fn errno(e: rustix::io::Errno) -> String {
    match e {
        rustix::io::Errno::LOOP => "a symbolic link is in its path: name the real path".into(),
        e => io::Error::from(e).to_string(),
    }
}

/// Whether nobody but `owners` could replace what is in directory `dir`: theirs, and not
/// writable by others unless sticky.
fn trusted_directory(dir: &Path, owners: &[u32]) -> Result<(), String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat2(CWD, dir, flags, Mode::empty(), resolve).map_err(errno)?;
    let stat = rustix::fs::fstat(&fd).map_err(errno)?;
    let sticky = stat.st_mode & libc::S_ISVTX != 0;
    if !owners.contains(&stat.st_uid) {
        return Err(format!(
            "its directory {} belongs to uid {}, who could replace it",
            dir.display(),
            stat.st_uid
        ));
    }
    if stat.st_mode & 0o022 != 0 && !sticky {
        return Err(format!(
            "its directory {} lets other users replace it (writable by others, not sticky)",
            dir.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_new_files_private_and_replaces_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        write(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_record_proves_itself_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("baseline.json");
        write(&good, b"{}").unwrap();
        assert_eq!(read_record(&good, 1024).unwrap(), b"{}");
        // Too large, writable by others, a link, a FIFO, a device, a directory.
        assert!(read_record(&good, 1).unwrap_err().contains("larger than"));
        fs::set_permissions(&good, fs::Permissions::from_mode(0o622)).unwrap();
        assert_eq!(
            read_record(&good, 1024).unwrap_err(),
            "other users may write it"
        );
        fs::set_permissions(&good, fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        assert!(read_record(&link, 1024)
            .unwrap_err()
            .contains("symbolic link"));
        let linked_dir = dir.path().join("linked");
        std::os::unix::fs::symlink(dir.path(), &linked_dir).unwrap();
        let through = linked_dir.join("baseline.json");
        assert!(read_record(&through, 1024)
            .unwrap_err()
            .contains("symbolic link"));
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert_eq!(
            read_record(&fifo, 1024).unwrap_err(),
            "it is not a regular file"
        );
        assert_eq!(
            read_record(Path::new("/dev/zero"), 1024).unwrap_err(),
            "it is not a regular file"
        );
        assert_eq!(
            read_record(dir.path(), 1024).unwrap_err(),
            "it is not a regular file"
        );
        // A directory others may write, unless sticky.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(read_record(&good, 1024)
            .unwrap_err()
            .contains("lets other users replace it"));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(read_record(&good, 1024).unwrap(), b"{}");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn never_writes_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("report.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(refuse(&link).unwrap().contains("is a symbolic link"));
        // Planted after the check: the link is replaced, the victim untouched.
        write(&link, b"report").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let summary = dir.path().join("summary.md");
        std::os::unix::fs::symlink(&victim, &summary).unwrap();
        assert!(append(&summary, b"x").is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(refuse(dir.path()).unwrap().contains("not a regular file"));
        assert_eq!(refuse(&dir.path().join("new.json")), None);
    }
}
