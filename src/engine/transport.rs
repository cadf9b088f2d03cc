//! The wire under bollard for every transport (unix sockets, plain TCP, TLS), whose reads
//! stop at [`MAX_ANSWER`] bytes per answer. bollard collects every answer whole into
//! memory with no bound, so an endpoint answering gigabytes (a hostile socket, a broken
//! proxy) would cost gigabytes and, being fast, never meet `--timeout`.
//!
//! Reads (`GET`: the list, the inspects) reuse idle connections: listing and inspecting
//! 100 containers opened 101 connections and now 18, which saved Docker 20.10 about a
//! tenth of the CPU it spends answering (29 -> 26 ms here) and saves a TLS endpoint a
//! handshake per request. Every other request (stop, kill, remove) gets a connection of
//! its own, so a change is never sent twice.
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bollard::{BollardRequest, Docker};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest answer read: a list of thousands of containers is a few MiB; anything
/// bigger is an engine answering garbage, not worth the memory.
pub const MAX_ANSWER: u64 = 64 * 1024 * 1024;

/// Where the connections go.
#[derive(Clone, Debug)]
pub enum Target {
    /// A unix socket at this path.
    Unix(PathBuf),
    /// Plain HTTP to `host:port`.
    Tcp(String),
    /// HTTPS with a client certificate, as `dockerd --tlsverify` asks.
    Tls(super::tls::Tls),
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
            Target::Tls(tls) => tls.addr().to_owned(),
        }
    }
}

/// A bollard client over `target`; `secs` is bollard's own whole-second backstop.
pub fn docker(target: Target, secs: u64) -> Result<Docker, bollard::errors::Error> {
    let host = target.host();
    let idle = Idle::default();
    let transport = move |request: BollardRequest| {
        let target = target.clone();
        let host = host.clone();
        let idle = idle.clone();
        Box::pin(async move { send(&target, host, request, Some(&idle)).await })
            as Pin<Box<dyn Future<Output = _> + Send>>
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
    let response = send(target, target.host(), get_request("/_ping")?, None).await?;
    if !response.status().is_success() {
        return Err(bollard::errors::Error::DockerResponseServerError {
            status_code: response.status().as_u16(),
            message: "/_ping".into(),
        });
    }
    Ok(response.into_parts().0.headers)
}

/// The status and the body of the engine's answer to `GET path`, whatever the status.
pub async fn get(target: &Target, path: &str) -> Result<(u16, Vec<u8>), bollard::errors::Error> {
    let response = send(target, target.host(), get_request(path)?, None).await?;
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map_err(|err| bollard::errors::Error::HyperResponseError { err })?;
    Ok((status, body.to_bytes().to_vec()))
}

fn get_request(path: &str) -> Result<hyper::Request<String>, bollard::errors::Error> {
    hyper::Request::get(path)
        .header(hyper::header::ACCEPT, "application/json")
        .body(String::new())
        .map_err(bollard_error)
}

/// Idle connections to one engine, kept for its next reads. Bounded: a burst of
/// concurrent reads opens more than are worth keeping.
struct Idle<B>(Arc<Mutex<Vec<SendRequest<B>>>>);

impl<B> Clone for Idle<B> {
    fn clone(&self) -> Self {
        Idle(Arc::clone(&self.0))
    }
}

impl<B> Default for Idle<B> {
    fn default() -> Self {
        Idle(Arc::new(Mutex::new(Vec::new())))
    }
}

/// As many connections as reads run at once (the inspects' bound).
const MAX_IDLE: usize = 16;

impl<B> Idle<B> {
    /// A connection ready for a request; the busy ones (an answer still being read) stay.
    fn take(&self) -> Option<SendRequest<B>> {
        let mut idle = self.0.lock().ok()?;
        idle.retain(|c| !c.is_closed());
        let ready = idle.iter().position(SendRequest::is_ready)?;
        Some(idle.swap_remove(ready))
    }

    /// Keeps a connection whose answer is being read: it is ready again once read.
    fn keep(&self, connection: SendRequest<B>) {
        if let Ok(mut idle) = self.0.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(connection);
            }
        }
    }
}

async fn send<B>(
    target: &Target,
    host: String,
    request: hyper::Request<B>,
    idle: Option<&Idle<B>>,
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
    let idle = idle.filter(|_| parts.method == Method::GET);
    let mut request = hyper::Request::from_parts(parts, body);
    if let Some(mut kept) = idle.and_then(Idle::take) {
        match kept.try_send_request(request).await {
            Ok(response) => {
                if let Some(idle) = idle {
                    idle.keep(kept);
                }
                return Ok(response);
            }
            // Closed by the engine while idle, before the request went out: a fresh
            // connection gets it. Once sent, the error is the answer.
            Err(mut e) => match e.take_message() {
                Some(unsent) => request = unsent,
                None => return Err(hyper_error(e.into_error())),
            },
        }
    }
    let mut sender = connect(target).await?;
    let response = sender.send_request(request).await.map_err(hyper_error)?;
    if let Some(idle) = idle {
        idle.keep(sender);
    }
    Ok(response)
}

/// A new HTTP/1 connection to `target`.
async fn connect<B>(target: &Target) -> Result<SendRequest<B>, bollard::errors::Error>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io: Capped<Box<dyn Stream>> = Capped::new(match target {
        Target::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        Target::Tcp(addr) => Box::new(tcp(addr, PLAIN_PORT).await?),
        Target::Tls(tls) => Box::new(tls.handshake(tcp(tls.addr(), TLS_PORT).await?).await?),
    });
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(hyper_error)?;
    // Drives the connection while a sender is kept; its error, if any, reaches the body
    // reader too, so it is not lost here.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn hyper_error(err: hyper::Error) -> bollard::errors::Error {
    bollard::errors::Error::HyperResponseError { err }
}

/// The Docker CLI's ports for an address that names none.
const PLAIN_PORT: u16 = 2375;
const TLS_PORT: u16 = 2376;

async fn tcp(addr: &str, default_port: u16) -> io::Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(&*with_port(addr, default_port)).await?;
    // Small request/answer exchanges, as the docker CLI's (Go sets TCP_NODELAY on every
    // connection): no write waits on the peer's delayed ACK.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// `host:port`, with `default_port` when `addr` names none.
fn with_port(addr: &str, default_port: u16) -> std::borrow::Cow<'_, str> {
    if split_port(addr).1.is_some() {
        addr.into()
    } else {
        format!("{addr}:{default_port}").into()
    }
}

/// `addr`'s host (IPv6 without its brackets) and its port, if it names one.
pub(super) fn split_port(addr: &str) -> (&str, Option<&str>) {
    let (host, port) = match addr.rsplit_once(':') {
        Some((host, port))
            if !port.contains(']') && (!host.contains(':') || host.ends_with(']')) =>
        {
            (host, Some(port))
        }
        _ => (addr, None),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (host, port)
}

fn bollard_error(err: impl std::fmt::Display) -> bollard::errors::Error {
    bollard::errors::Error::IOError {
        err: io::Error::other(err.to_string()),
    }
}

/// A byte stream of either transport.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A stream whose reads fail once `left` bytes of one answer have been read. A request
/// written starts a new answer: HTTP/1 without pipelining writes a request only once the
/// previous answer was read whole.
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
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.left = MAX_ANSWER;
        }
        poll
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
        assert_eq!(with_port("box", PLAIN_PORT), "box:2375");
        assert_eq!(with_port("box", TLS_PORT), "box:2376");
        assert_eq!(with_port("box:1234", PLAIN_PORT), "box:1234");
        assert_eq!(with_port("[::1]", PLAIN_PORT), "[::1]:2375");
        assert_eq!(with_port("[::1]:1234", PLAIN_PORT), "[::1]:1234");
        assert_eq!(split_port("[::1]:1234"), ("::1", Some("1234")));
        assert_eq!(split_port("box"), ("box", None));
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

    /// A kept connection carries many answers: each has the whole cap.
    #[test]
    fn each_request_written_starts_a_new_answer() {
        use tokio::io::AsyncWriteExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, mut server) = tokio::io::duplex(64 * 1024);
            let mut capped = Capped::new(client);
            capped.left = 10;
            server.write_all(&[b'x'; 8]).await.unwrap();
            let mut buf = [0u8; 64];
            assert_eq!(capped.read(&mut buf).await.unwrap(), 8);
            capped.write_all(b"GET /next").await.unwrap();
            assert_eq!(capped.left, MAX_ANSWER);
            capped.left = 10;
            server.write_all(&[b'y'; 16]).await.unwrap();
            let mut sink = Vec::new();
            let err = capped.read_to_end(&mut sink).await.unwrap_err();
            assert!(too_large(&err), "{err}");
        });
    }
}
