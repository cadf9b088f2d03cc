//! Which engine to talk to, resolved the way the docker CLI does it, so portreap and
//! `docker` never look at two different engines: `--host`, then `DOCKER_HOST`, then the
//! context (`DOCKER_CONTEXT`, else `currentContext` in `$DOCKER_CONFIG/config.json`), then
//! the default socket.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

pub use crate::model::EngineSource as Source;

/// The socket Docker listens on unless told otherwise.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How to reach an engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A unix socket at this path.
    Unix(PathBuf),
    /// Plain HTTP to `host:port`.
    Tcp(String),
}

/// A resolved engine endpoint and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as configured.
    pub url: String,
    /// How it was chosen.
    pub source: Source,
}

impl Endpoint {
    /// How to reach it.
    pub fn transport(&self) -> Result<Transport, Error> {
        parse_url(&self.url)
    }
}

/// Why no engine endpoint could be resolved or reached: each is one line a user can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A `unix://` URL without a path.
    NoSocketPath(String),
    /// A `tcp://` URL without a host.
    NoHost(String),
    /// A scheme portreap does not speak (`ssh://`).
    UnsupportedScheme(String),
    /// Text that is not a URL at all.
    NotAUrl(String),
    /// A context is selected, but there is no configuration directory to find it in.
    NoConfigDir {
        /// The context.
        context: String,
    },
    /// The context selected does not exist.
    ContextNotFound {
        /// The context.
        context: String,
        /// Where contexts were looked for.
        meta_dir: PathBuf,
    },
    /// The context names no docker endpoint.
    ContextWithoutEndpoint(String),
    /// TLS is asked for, but no directory can hold its files.
    TlsNoDir,
    /// TLS is asked for, but its files are not in the directory.
    TlsFilesMissing(PathBuf),
    /// A TLS file cannot be used.
    TlsMaterial {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, in a few words.
        what: &'static str,
        /// The parser's own words.
        reason: String,
    },
    /// The endpoint's host cannot be checked against a certificate.
    TlsHostName(String),
}

impl Error {
    /// How the endpoint that failed was chosen.
    pub fn source(&self) -> Source {
        match self {
            Error::NoConfigDir { context }
            | Error::ContextNotFound { context, .. }
            | Error::ContextWithoutEndpoint(context) => Source::Context(context.clone()),
            _ => Source::Default,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSocketPath(url) => write!(f, "'{url}' names no socket path"),
            Error::NoHost(url) => write!(f, "'{url}' names no host"),
            Error::UnsupportedScheme(scheme) => write!(
                f,
                "engine URL scheme '{scheme}://' is not supported (use unix:// or tcp://)"
            ),
            Error::NotAUrl(url) => write!(
                f,
                "'{url}' is not an engine URL (expected unix:///path or tcp://host:port)"
            ),
            Error::NoConfigDir { context } => write!(
                f,
                "docker context '{context}' is selected but neither DOCKER_CONFIG nor HOME is set"
            ),
            Error::ContextNotFound { context, meta_dir } => write!(
                f,
                "docker context '{context}' not found in {} (select another with DOCKER_CONTEXT or --host)",
                meta_dir.display()
            ),
            Error::ContextWithoutEndpoint(context) => {
                write!(f, "docker context '{context}' has no docker endpoint")
            }
            Error::TlsNoDir => {
                f.write_str("TLS is asked for but neither DOCKER_CERT_PATH nor HOME is set")
            }
            Error::TlsFilesMissing(dir) => write!(
                f,
                "TLS is asked for but {} lacks ca.pem, cert.pem and key.pem (set DOCKER_CERT_PATH)",
                dir.display()
            ),
            Error::TlsMaterial { path, what, reason } => {
                write!(f, "TLS file {}: {what} ({reason})", path.display())
            }
            Error::TlsHostName(host) => write!(
                f,
                "TLS is asked for but '{host}' is neither a host name nor an IP address"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {})", self.url, self.source)
    }
}

/// Parses an engine URL.
pub fn parse_url(url: &str) -> Result<Transport, Error> {
    if let Some(path) = url.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(Error::NoSocketPath(url.to_owned()));
        }
        return Ok(Transport::Unix(PathBuf::from(path)));
    }
    for scheme in ["tcp://", "http://", "https://"] {
        if let Some(addr) = url.strip_prefix(scheme) {
            let addr = addr.trim_end_matches('/');
            if addr.is_empty() {
                return Err(Error::NoHost(url.to_owned()));
            }
            return Ok(Transport::Tcp(addr.to_owned()));
        }
    }
    match url.split_once("://") {
        Some((scheme, _)) => Err(Error::UnsupportedScheme(scheme.to_owned())),
        None => Err(Error::NotAUrl(url.to_owned())),
    }
}

/// The environment the resolution reads, abstracted for tests.
pub trait Env {
    /// An environment variable, `None` when unset or empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// Resolves the endpoint (the URL is not checked: a bad one is that engine's answer).
pub fn resolve(
    host_flag: Option<&str>,
    context_flag: Option<&str>,
    env: &dyn Env,
) -> Result<Endpoint, Error> {
    if let Some(url) = host_flag {
        return Ok(Endpoint {
            url: url.to_owned(),
            source: Source::HostFlag,
        });
    }
    let config_dir = env
        .var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|home| Path::new(&home).join(".docker")));
    if let Some(name) = context_flag {
        return context_endpoint(config_dir, name);
    }
    if let Some(url) = env.var("DOCKER_HOST") {
        return Ok(Endpoint {
            url,
            source: Source::DockerHost,
        });
    }
    let context = env.var("DOCKER_CONTEXT").or_else(|| {
        let config = fs::read(config_dir.as_ref()?.join("config.json")).ok()?;
        let config: serde_json::Value = serde_json::from_slice(&config).ok()?;
        config
            .get("currentContext")?
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    });
    match context {
        Some(name) => context_endpoint(config_dir, &name),
        None => Ok(Endpoint {
            url: DEFAULT_HOST.into(),
            source: Source::Default,
        }),
    }
}

/// The endpoint of a named context; `default` is the default socket, as for the CLI.
fn context_endpoint(config_dir: Option<PathBuf>, name: &str) -> Result<Endpoint, Error> {
    let source = Source::Context(name.to_owned());
    if name == "default" {
        return Ok(Endpoint {
            url: DEFAULT_HOST.into(),
            source,
        });
    }
    let dir = config_dir.ok_or_else(|| Error::NoConfigDir {
        context: name.to_owned(),
    })?;
    Ok(Endpoint {
        url: context_host(&dir, name)?,
        source,
    })
}

/// The local engine sockets besides `primary`, for `--all-engines`: the API sockets of
/// every engine process found (`found`, see `host::engines`), then the well-known paths
/// of rootful and rootless Docker and Podman that exist (an engine started on demand by
/// systemd has no process yet). A socket file is trusted only when root owns it, or the
/// user whose runtime directory (`/run/user/UID`) holds it: anyone can create a socket
/// in a directory of their own and answer as an engine.
pub fn local_sockets(
    primary: Option<&Endpoint>,
    found: &[crate::model::LocalEngine],
    env: &dyn Env,
) -> Vec<Endpoint> {
    let mut candidates: Vec<(PathBuf, String)> = found
        .iter()
        .flat_map(|e| {
            e.sockets.iter().filter_map(move |url| {
                let path = url.strip_prefix("unix://")?;
                Some((
                    PathBuf::from(path),
                    format!("{} engine pid {} (uid {})", e.kind.as_str(), e.pid, e.uid),
                ))
            })
        })
        .collect();
    let mut well_known: Vec<PathBuf> = vec![
        "/var/run/docker.sock".into(),
        "/run/podman/podman.sock".into(),
    ];
    if let Some(dir) = env.var("XDG_RUNTIME_DIR") {
        let dir = PathBuf::from(dir);
        well_known.push(dir.join("docker.sock"));
        well_known.push(dir.join("podman/podman.sock"));
    }
    if let Ok(users) = fs::read_dir("/run/user") {
        for user in users.flatten() {
            well_known.push(user.path().join("docker.sock"));
            well_known.push(user.path().join("podman/podman.sock"));
        }
    }
    candidates.extend(well_known.into_iter().filter_map(|path| {
        let owner = trusted_owner(&path)?;
        Some((path, format!("socket of uid {owner}")))
    }));
    // The same socket is often reachable by several paths (a symlinked /var/run, an
    // engine's /proc/PID/root): the file's identity, not its spelling, says it is one.
    // Spelling alone would fold an engine in another mount namespace whose socket has
    // the host default's path into the host's engine.
    let identity = |p: &Path| {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        fs::metadata(p)
            .ok()
            .filter(|m| m.file_type().is_socket())
            .map(|m| (m.dev(), m.ino()))
    };
    let mut seen: Vec<(u64, u64)> = primary
        .and_then(|e| match e.transport() {
            Ok(Transport::Unix(path)) => identity(&path),
            _ => None,
        })
        .into_iter()
        .collect();
    let mut out = Vec::new();
    for (path, what) in candidates {
        let Some(id) = identity(&path) else { continue };
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        out.push(Endpoint {
            url: format!("unix://{}", path.display()),
            source: Source::Discovered(what),
        });
    }
    out
}

/// The owner of a well-known socket file, if it is one portreap may trust: root's, or in
/// `/run/user/UID/` that user's.
fn trusted_owner(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let owner = fs::metadata(path).ok()?.uid();
    let runtime_uid = path
        .strip_prefix("/run/user")
        .ok()
        .and_then(|rest| rest.components().next())
        .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok());
    match runtime_uid {
        Some(uid) => (owner == uid).then_some(owner),
        None => (owner == 0).then_some(owner),
    }
}

/// Client certificate material for a TLS endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA that signed the engine's certificate.
    pub ca: PathBuf,
    /// Client certificate.
    pub cert: PathBuf,
    /// Client key.
    pub key: PathBuf,
}

fn tls_in(dir: &Path) -> Option<TlsFiles> {
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    (files.ca.is_file() && files.cert.is_file() && files.key.is_file()).then_some(files)
}

/// The TLS material for a TCP endpoint, found like the docker CLI finds it: a context's
/// own (`contexts/tls/<id>/docker/`), else with `DOCKER_TLS_VERIFY` (or an `https://` URL)
/// the `ca.pem`, `cert.pem` and `key.pem` in `DOCKER_CERT_PATH` (default: the config
/// directory). `None` means plain HTTP.
pub fn tls_files(endpoint: &Endpoint, env: &dyn Env) -> Result<Option<TlsFiles>, Error> {
    let config_dir = env
        .var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|home| Path::new(&home).join(".docker")));
    if let (Some(name), Some(dir)) = (endpoint.source.named_context(), &config_dir) {
        if let Some(id) = context_dir_name(dir, name) {
            if let Some(files) = tls_in(&dir.join("contexts/tls").join(id).join("docker")) {
                return Ok(Some(files));
            }
        }
    }
    let verify = env.var("DOCKER_TLS_VERIFY").is_some();
    if !(verify || endpoint.url.starts_with("https://")) {
        return Ok(None);
    }
    let dir = env
        .var("DOCKER_CERT_PATH")
        .map(PathBuf::from)
        .or(config_dir)
        .ok_or(Error::TlsNoDir)?;
    tls_in(&dir).map(Some).ok_or(Error::TlsFilesMissing(dir))
}

/// The directory name (a hash of the name) under which a context's files live.
fn context_dir_name(config_dir: &Path, name: &str) -> Option<std::ffi::OsString> {
    fs::read_dir(config_dir.join("contexts").join("meta"))
        .ok()?
        .flatten()
        .find(|entry| {
            fs::read(entry.path().join("meta.json"))
                .ok()
                .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
                .is_some_and(|meta| meta.get("Name").and_then(|n| n.as_str()) == Some(name))
        })
        .map(|entry| entry.file_name())
}

/// Finds a context's docker endpoint. Contexts live in `contexts/meta/<sha256(name)>/`;
/// reading every `meta.json` and matching `Name` avoids hashing and finds the same file.
fn context_host(config_dir: &Path, name: &str) -> Result<String, Error> {
    let meta_dir = config_dir.join("contexts").join("meta");
    let Some(id) = context_dir_name(config_dir, name) else {
        return Err(Error::ContextNotFound {
            context: name.to_owned(),
            meta_dir,
        });
    };
    fs::read(meta_dir.join(id).join("meta.json"))
        .ok()
        .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
        .and_then(|meta| {
            meta.pointer("/Endpoints/docker/Host")
                .and_then(|h| h.as_str())
                .map(str::to_owned)
        })
        .ok_or_else(|| Error::ContextWithoutEndpoint(name.to_owned()))
}

#[cfg(test)]
mod tests;
