//! The wire under bollard for unix sockets and plain TCP: one connection per request whose
//! reads stop at [`MAX_ANSWER`] bytes. bollard collects every answer whole into memory
//! with no bound, so an endpoint answering gigabytes (a hostile socket, a broken proxy)
//! would cost gigabytes and, being fast, never meet `--timeout`. A fresh connection per
//! request makes the cap a per-answer one; a unix or loopback connect costs microseconds.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bollard::{BollardRequest, Docker};
use hyper::body::Incoming;
use hyper::Response;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::raw::MAX_ANSWER;

/// Where the connections go.
#[derive(Clone, Debug)]
pub enum Target {
    /// A unix socket at this path.
    Unix(PathBuf),
    /// Plain HTTP to `host:port`.
    Tcp(String),
}

/// An answer that reached the cap. Found again in error chains to name the cap.
#[derive(Debug)]
pub struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the engine's answer is larger than {} MiB; not read",
            MAX_ANSWER / (1024 * 1024)
        )
    }
}

impl std::error::Error for TooLarge {}

/// True when `err` or anything it was caused by is [`TooLarge`].
pub fn too_large(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.is::<TooLarge>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.get_ref().is_some_and(|inner| inner.is::<TooLarge>()) {
                return true;
            }
        }
        cause = e.source();
    }
    false
}

impl Target {
    /// The `Host` header its requests carry.
    fn host(&self) -> String {
        match self {
            Target::Unix(_) => "docker".to_owned(),
            Target::Tcp(addr) => addr.clone(),
        }
    }
}

/// A bollard client over `target`; `secs` is bollard's own whole-second backstop.
pub fn docker(target: Target, secs: u64) -> Result<Docker, bollard::errors::Error> {
    let host = target.host();
    let transport = move |request: BollardRequest| {
        let target = target.clone();
        let host = host.clone();
        Box::pin(send(target, host, request)) as Pin<Box<dyn Future<Output = _> + Send>>
    };
    Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        secs,
        bollard::API_DEFAULT_VERSION,
    )
}

/// The headers of the engine's answer to `GET /_ping`. They name the engine and its
/// versions (`Server: Docker/20.10.24 (linux)`, `Api-Version: 1.41`), which bollard's
/// `ping` does not expose; `/version` tells the same at a far higher price (Docker 20.10
/// runs its runtimes to answer it, about 7 ms; Podman 4 about 250 ms).
pub async fn ping_headers(target: &Target) -> Result<hyper::HeaderMap, bollard::errors::Error> {
    let request = hyper::Request::get("/_ping")
        .body(String::new())
        .map_err(bollard_error)?;
    let response = send(target.clone(), target.host(), request).await?;
    if !response.status().is_success() {
        return Err(bollard::errors::Error::DockerResponseServerError {
            status_code: response.status().as_u16(),
            message: "/_ping".into(),
        });
    }
    Ok(response.into_parts().0.headers)
}

async fn send<B>(
    target: Target,
    host: String,
    request: hyper::Request<B>,
) -> Result<Response<Incoming>, bollard::errors::Error>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = request.into_parts();
    // The low-level client sends the URI as given and adds no Host; engines want both
    // the origin form and a Host header, as bollard's own transports send them.
    if let Some(origin) = parts.uri.path_and_query().cloned() {
        parts.uri = origin.as_str().parse().map_err(bollard_error)?;
    }
    let host = host.parse().map_err(bollard_error)?;
    parts.headers.insert(hyper::header::HOST, host);
    let io: Capped<Box<dyn Stream>> = Capped::new(match &target {
        Target::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        Target::Tcp(addr) => Box::new(tokio::net::TcpStream::connect(&*with_port(addr)).await?),
    });
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|err| bollard::errors::Error::HyperResponseError { err })?;
    // Drives the connection until the answer is read; its error, if any, reaches the
    // body reader too, so it is not lost here.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(hyper::Request::from_parts(parts, body))
        .await
        .map_err(|err| bollard::errors::Error::HyperResponseError { err })?;
    Ok(response)
}

/// `host:port`, with the Docker CLI's plain-HTTP port when `addr` names none.
fn with_port(addr: &str) -> std::borrow::Cow<'_, str> {
    let port_given = match addr.rsplit_once(':') {
        Some((host, port)) => !port.contains(']') && (!host.contains(':') || host.ends_with(']')),
        None => false,
    };
    if port_given {
        addr.into()
    } else {
        format!("{addr}:2375").into()
    }
}

fn bollard_error(err: impl std::fmt::Display) -> bollard::errors::Error {
    bollard::errors::Error::IOError {
        err: io::Error::other(err.to_string()),
    }
}

/// A byte stream of either transport.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A stream whose reads fail once `left` bytes have been read.
struct Capped<S> {
    inner: S,
    left: u64,
}

impl<S> Capped<S> {
    fn new(inner: S) -> Self {
        Capped {
            inner,
            left: MAX_ANSWER,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(io::Error::other(TooLarge)));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.left = self.left.saturating_sub(read);
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn a_tcp_address_without_a_port_gets_dockers() {
        assert_eq!(with_port("box"), "box:2375");
        assert_eq!(with_port("box:1234"), "box:1234");
        assert_eq!(with_port("[::1]"), "[::1]:2375");
        assert_eq!(with_port("[::1]:1234"), "[::1]:1234");
    }

    #[test]
    fn reads_stop_at_the_cap_and_say_so() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let endless = tokio::io::repeat(b'x');
            let mut capped = Capped::new(endless);
            let mut sink = Vec::new();
            let err = capped.read_to_end(&mut sink).await.unwrap_err();
            assert_eq!(sink.len() as u64, MAX_ANSWER);
            assert!(too_large(&err), "{err}");
            assert!(err.to_string().contains("64 MiB"), "{err}");
        });
    }
}
