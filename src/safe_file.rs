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
