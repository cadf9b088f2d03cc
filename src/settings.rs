//! The config file for unattended runs (TOML): defaults for `prune` that flags override.
//! `--config FILE`, else `$XDG_CONFIG_HOME/portreap/config.toml` (default
//! `~/.config/portreap/config.toml`) when it exists.
//!
//! ```toml
//! [prune]
//! include_suspects = true
//! kinds = ["orphaned-proxy", "dead-container"]
//! older_than = "30m"
//! min_age = "1m"
//! protect_projects = ["db"]
//! protect_images = ["postgres:16"]
//! protect_ports = "5432,6379"
//! keep_labels = ["team=data"]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::UsageError;

/// The file's contents.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Defaults for `prune`.
    #[serde(default)]
    pub prune: PruneFile,
}

/// `[prune]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneFile {
    /// Act on suspects too.
    pub include_suspects: Option<bool>,
    /// Only these kinds.
    pub kinds: Option<Vec<Spanned<String>>>,
    /// Only holders older than this.
    pub older_than: Option<Spanned<String>>,
    /// The grace age.
    pub min_age: Option<Spanned<String>>,
    /// Compose projects never acted on.
    #[serde(default)]
    pub protect_projects: Vec<String>,
    /// Images never acted on.
    #[serde(default)]
    pub protect_images: Vec<String>,
    /// Ports never acted on.
    pub protect_ports: Option<Spanned<String>>,
    /// Labels (`KEY` or `KEY=VALUE`) that protect a container, besides `portreap.keep`.
    #[serde(default)]
    pub keep_labels: Vec<Spanned<String>>,
}

/// A loaded file and where it came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// Its path.
    pub path: PathBuf,
    /// Its text, for error positions.
    pub text: String,
    /// Its contents.
    pub file: File,
}

impl Loaded {
    /// `value` (the setting `key`) read by `parse`; a refusal is `FILE:LINE: key: why`,
    /// at the value's own line.
    pub fn parse<T, E: std::fmt::Display>(
        &self,
        key: &str,
        value: &Spanned<String>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, UsageError> {
        parse(value.get_ref()).map_err(|e| {
            let line = line_of(&self.text, value.span().start);
            UsageError(format!("{}:{line}: {key}: {e}", self.path.display()))
        })
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(base.join("portreap").join("config.toml"))
}

/// The most a config file may hold; real ones are a few hundred bytes.
const MAX_CONFIG: u64 = 1024 * 1024;

/// Why a config file is not read.
#[derive(Debug)]
enum Unfit {
    Io(std::io::Error),
    NotRegular,
    Foreign { owner: u32, euid: u32 },
    WorldWritable,
    TooLarge,
}

impl From<std::io::Error> for Unfit {
    fn from(e: std::io::Error) -> Self {
        Unfit::Io(e)
    }
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::Io(e) => e.fmt(f),
            Unfit::NotRegular => f.write_str("not a regular file"),
            Unfit::Foreign { owner, euid } => write!(
                f,
                "it belongs to uid {owner}, neither you (uid {euid}) nor root"
            ),
            Unfit::WorldWritable => f.write_str("anyone may write it"),
            Unfit::TooLarge => write!(f, "larger than {} KiB", MAX_CONFIG / 1024),
        }
    }
}

/// Reads a config file that must be a regular file, of at most [`MAX_CONFIG`] bytes, owned
/// by the user running portreap or by root: under `sudo -E` the default path is in the
/// invoking user's home, and a file someone else could write must not steer root's prune.
fn read_bounded(path: &Path) -> Result<String, Unfit> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(Unfit::NotRegular);
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(Unfit::Foreign {
            owner: meta.uid(),
            euid,
        });
    }
    if meta.mode() & 0o002 != 0 {
        return Err(Unfit::WorldWritable);
    }
    if meta.len() > MAX_CONFIG {
        return Err(Unfit::TooLarge);
    }
    let mut text = String::new();
    file.take(MAX_CONFIG + 1).read_to_string(&mut text)?;
    Ok(text)
}

/// Loads the config: the explicit one must exist; the default one may not.
pub fn load(explicit: Option<&Path>) -> Result<Option<Loaded>, UsageError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match default_path() {
            Some(p) if p.exists() => p,
            _ => return Ok(None),
        },
    };
    let text = read_bounded(&path)
        .map_err(|e| UsageError(format!("--config: cannot read {}: {e}", path.display())))?;
    let file: File = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |span| line_of(&text, span.start));
        let message = e.message().replace('\n', " ");
        UsageError(format!("{}:{line}: {}", path.display(), message.trim()))
    })?;
    Ok(Some(Loaded { path, text, file }))
}
