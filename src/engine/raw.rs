//! A tolerant second try for answers bollard's models reject. bollard's enums are strict:
//! one container in a state they do not know (older Podman says `stopped`) fails the whole
//! list. The same request is then made again on portreap's own transport (whichever the
//! endpoint speaks), unknown values are blanked so the models accept the rest, and the
//! original state is kept verbatim.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ContainerSummary};
use serde_json::Value;

use super::error::{bounded, Error};
use super::transport::{self, Target};

const STATES: [&str; 9] = [
    "",
    "created",
    "running",
    "paused",
    "restarting",
    "exited",
    "removing",
    "dead",
    "stopping",
];
const HEALTH: [&str; 5] = ["", "none", "starting", "healthy", "unhealthy"];
const RESTART: [&str; 5] = ["", "no", "always", "unless-stopped", "on-failure"];

/// GETs `path` on portreap's own transport (any of them), under `timeout`.
async fn get(target: &Target, path: &str, timeout: Duration) -> Result<Value, Error> {
    let (status, body) = bounded(timeout, transport::get(target, path)).await?;
    if status != 200 {
        return Err(Error::Api {
            status,
            message: String::from_utf8_lossy(&body).trim().to_owned(),
        });
    }
    serde_json::from_slice(&body).map_err(|e| Error::Unfit(format!("{path}: {e}")))
}

/// Replaces `value[key]` by "" when it is a string outside `known`; returns the original.
fn blank_unknown(value: &mut Value, key: &str, known: &[&str]) -> Option<String> {
    let slot = value.get_mut(key)?;
    let text = slot.as_str()?.to_owned();
    if known.contains(&text.as_str()) {
        return None;
    }
    *slot = Value::String(String::new());
    Some(text)
}

/// Makes a list answer fit the models; returns it with the unknown states by id.
pub fn tolerant_list(
    mut list: Value,
) -> Result<(Vec<ContainerSummary>, HashMap<String, String>), Error> {
    let mut odd = HashMap::new();
    for item in list.as_array_mut().into_iter().flatten() {
        if let Some(state) = blank_unknown(item, "State", &STATES) {
            if let Some(id) = item.get("Id").and_then(Value::as_str) {
                odd.insert(id.to_owned(), state);
            }
        }
    }
    let list =
        serde_json::from_value(list).map_err(|e| Error::Unfit(format!("container list: {e}")))?;
    Ok((list, odd))
}

/// Makes an inspect answer fit the models; returns it with the unknown state, if any.
pub fn tolerant_inspect(
    mut detail: Value,
) -> Result<(ContainerInspectResponse, Option<String>), Error> {
    let state = detail
        .get_mut("State")
        .and_then(|s| blank_unknown(s, "Status", &STATES));
    if let Some(health) = detail.pointer_mut("/State/Health") {
        blank_unknown(health, "Status", &HEALTH);
    }
    if let Some(policy) = detail.pointer_mut("/HostConfig/RestartPolicy") {
        blank_unknown(policy, "Name", &RESTART);
    }
    let detail = serde_json::from_value(detail)
        .map_err(|e| Error::Unfit(format!("container inspect: {e}")))?;
    Ok((detail, state))
}

/// The container list, tolerantly.
pub async fn list(
    target: &Target,
    timeout: Duration,
) -> Result<(Vec<ContainerSummary>, HashMap<String, String>), Error> {
    tolerant_list(get(target, "/containers/json?all=1", timeout).await?)
}

/// One container, tolerantly.
pub async fn inspect(
    target: &Target,
    id: &str,
    timeout: Duration,
) -> Result<(ContainerInspectResponse, Option<String>), Error> {
    tolerant_inspect(get(target, &format!("/containers/{id}/json"), timeout).await?)
}

#[cfg(test)]
mod tests {
    use super::super::transport::MAX_ANSWER;
    use super::*;

    /// An engine on a unix socket that answers every request with a JSON list of
    /// `body_len` spaces, after `delay`.
    fn engine(body_len: usize, delay: Duration) -> (tempfile::TempDir, Target) {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut request = Vec::new();
                let mut buf = [0u8; 512];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                std::thread::sleep(delay);
                let _ = conn.write_all(b"HTTP/1.0 200 OK\r\n\r\n[");
                let chunk = vec![b' '; 1 << 20];
                let mut left = body_len;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if conn.write_all(&chunk[..n]).is_err() {
                        break;
                    }
                    left -= n;
                }
                let _ = conn.write_all(b"]");
            }
        });
        (dir, Target::Unix(path))
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn an_oversized_answer_is_not_read_whole() {
        let (_dir, endpoint) = engine(MAX_ANSWER as usize + 1024, Duration::ZERO);
        let err =
            block_on(get(&endpoint, "/containers/json", Duration::from_secs(20))).unwrap_err();
        assert!(err.to_string().contains("larger than 64 MiB"), "{err}");
        let (_dir, endpoint) = engine(16, Duration::ZERO);
        assert!(block_on(get(&endpoint, "/x", Duration::from_secs(5))).is_ok());
    }

    #[test]
    fn a_slow_answer_is_bounded() {
        let (_dir, endpoint) = engine(16, Duration::from_secs(5));
        let start = std::time::Instant::now();
        let err = block_on(get(&endpoint, "/x", Duration::from_millis(300))).unwrap_err();
        assert_eq!(err, Error::TimedOut(Duration::from_millis(300)));
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn unknown_states_are_blanked_and_kept() {
        let list = serde_json::json!([
            {"Id": "a", "Names": ["/a"], "State": "running", "Ports": []},
            {"Id": "b", "Names": ["/b"], "State": "stopped", "Ports": []},
            {"Id": "c", "Names": ["/c"], "State": "configured"}
        ]);
        let (list, odd) = tolerant_list(list).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(odd.get("b").map(String::as_str), Some("stopped"));
        assert_eq!(odd.get("c").map(String::as_str), Some("configured"));
        assert!(!odd.contains_key("a"));

        let detail = serde_json::json!({
            "Id": "b", "Name": "/b",
            "State": {"Status": "stopped", "Health": {"Status": "weird"}},
            "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}
        });
        let (detail, state) = tolerant_inspect(detail).unwrap();
        assert_eq!(state.as_deref(), Some("stopped"));
        assert_eq!(detail.id.as_deref(), Some("b"));
    }
}
