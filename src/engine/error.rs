//! A failed engine call, typed, and the sentence that tells a user what to do about it.

use std::error::Error as _;
use std::future::Future;
use std::io;
use std::time::Duration;

use bollard::errors::Error as BollardError;

use super::transport;

/// A failed engine call, typed so that the caller can tell a refusal from a timeout; its
/// `Display` is the sentence a user can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No answer within the bound.
    TimedOut(Duration),
    /// The engine answered with an HTTP error status (404: no such container; 409: a
    /// conflict, such as removing a running container without force).
    Api {
        /// The HTTP status.
        status: u16,
        /// What the engine said.
        message: String,
    },
    /// The answer did not fit the API's models (an unknown enum value).
    Unfit(String),
    /// The engine could not be reached or spoke no answer (refused, permission denied, no
    /// socket, a broken connection, an answer over the size cap).
    Unreachable(String),
    /// The endpoint itself cannot be used (a bad URL, TLS files missing).
    Endpoint(super::endpoint::Error),
}

impl From<super::endpoint::Error> for Error {
    fn from(e: super::endpoint::Error) -> Self {
        Error::Endpoint(e)
    }
}

impl Error {
    /// The HTTP status the engine answered, if it answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the engine refused the call for the container's state (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::TimedOut(bound) => f.write_str(&timed_out(*bound)),
            Error::Api { status, message } => write!(f, "the engine answered {status}: {message}"),
            Error::Unfit(m) | Error::Unreachable(m) => f.write_str(m),
            Error::Endpoint(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

/// Runs an engine call under a deadline.
pub(super) async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, BollardError>>,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(|e| call_error(e, timeout)),
        Err(_) => Err(Error::TimedOut(timeout)),
    }
}

pub(super) fn call_error(e: BollardError, timeout: Duration) -> Error {
    match e {
        BollardError::RequestTimeoutError => Error::TimedOut(timeout),
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => Error::Api {
            status: status_code,
            message,
        },
        BollardError::JsonDataError { .. } | BollardError::JsonSerdeError { .. } => {
            Error::Unfit(describe(&e, timeout))
        }
        e => Error::Unreachable(describe(&e, timeout)),
    }
}

fn timed_out(timeout: Duration) -> String {
    format!(
        "the engine did not answer within {:.1}s (raise --timeout if it is just slow)",
        timeout.as_secs_f64()
    )
}

/// A message that says what went wrong in terms a user can act on.
pub(super) fn describe(err: &BollardError, timeout: Duration) -> String {
    if let BollardError::RequestTimeoutError = err {
        return timed_out(timeout);
    }
    if let BollardError::DockerResponseServerError {
        status_code,
        message,
    } = err
    {
        return format!("the engine answered {status_code}: {message}");
    }
    if transport::too_large(err) {
        return transport::TooLarge.to_string();
    }
    // bollard's IOError is transparent: its source() skips the io::Error itself.
    let mut source: Option<&(dyn std::error::Error + 'static)> = match err {
        BollardError::IOError { err } => Some(err),
        _ => err.source(),
    };
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::ConnectionRefused => {
                    "connection refused: nothing listens there (is dockerd running?)".into()
                }
                io::ErrorKind::PermissionDenied => {
                    "permission denied (run as root or join the docker group)".into()
                }
                io::ErrorKind::NotFound => "the socket does not exist".into(),
                io::ErrorKind::TimedOut => timed_out(timeout),
                _ => io.to_string(),
            };
        }
        source = e.source();
    }
    err.to_string()
}
