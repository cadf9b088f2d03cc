//! A fake engine on a unix socket, answering canned JSON.

use super::*;

/// A fake engine on a unix socket in a fresh directory, answering each request path with
/// `answer`'s status and JSON body; serves until the test process ends. Returns the
/// directory (keep it alive) and the endpoint URL.
pub fn fake_engine(
    answer: impl Fn(&str) -> (u16, String) + Send + 'static,
) -> (tempfile::TempDir, String) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("engine.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request);
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, body) = answer(&path);
            let reason = match status {
                200 => "OK",
                404 => "Not Found",
                _ => "Internal Server Error",
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let url = format!("unix://{}", sock.display());
    (dir, url)
}
