//! What an engine is and which versions it speaks, asked as cheaply as it can be told.

use std::time::Duration;

use bollard::models::SystemVersion;
use bollard::Docker;

use super::error::{bounded, Error};
use super::transport::{self, Target};
use crate::model::EngineKind;

/// The engine's kind and versions.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Identity {
    pub kind: EngineKind,
    pub version: Option<String>,
    pub api_version: Option<String>,
}

/// Asks `/_ping` (its headers name the engine), and `/version` when the headers do not
/// name it (a proxy in front of the engine may rewrite `Server`). Both answer the same for
/// Docker and Podman.
pub(super) async fn identify(
    docker: &Docker,
    target: &Target,
    timeout: Duration,
) -> Result<Identity, Error> {
    let asked = tokio::time::Instant::now();
    match bounded(timeout, transport::ping_headers(target)).await {
        Ok(headers) => {
            if let Some(identity) = from_ping(&headers) {
                return Ok(identity);
            }
        }
        // Something answered, but not /_ping: /version may still tell.
        Err(e) if e.status().is_some() => {}
        Err(e) => return Err(e),
    }
    let left = timeout.saturating_sub(asked.elapsed());
    bounded(left, docker.version())
        .await
        .map(|v| from_version(&v))
}

/// From `Server: Docker/20.10.24+dfsg1 (linux)` or `Server: Libpod/4.3.1 (linux)` and
/// `Api-Version: 1.41`; `None` when the server is not named so.
fn from_ping(headers: &hyper::HeaderMap) -> Option<Identity> {
    let header = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    let (product, rest) = header("server")?.split_once('/')?;
    let kind = match product {
        "Docker" => EngineKind::Docker,
        "Libpod" => EngineKind::Podman,
        _ => return None,
    };
    let version = rest.split_whitespace().next()?;
    Some(Identity {
        kind,
        version: Some(version.to_owned()),
        api_version: header("api-version")
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
    })
}

fn from_version(version: &SystemVersion) -> Identity {
    let podman = version
        .components
        .iter()
        .flatten()
        .any(|c| c.name.contains("Podman"));
    Identity {
        kind: if podman {
            EngineKind::Podman
        } else {
            EngineKind::Docker
        },
        version: version.version.clone(),
        api_version: version.api_version.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> hyper::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    hyper::header::HeaderName::from_static(k),
                    v.parse().unwrap(),
                )
            })
            .collect()
    }

    /// Recorded from Docker 20.10 and Podman 4.3 on this project's machine: the same
    /// kind and versions as their `/version` answers.
    #[test]
    fn ping_headers_name_docker_and_podman() {
        let docker = headers(&[
            ("api-version", "1.41"),
            ("docker-experimental", "false"),
            ("ostype", "linux"),
            ("server", "Docker/20.10.24+dfsg1 (linux)"),
        ]);
        assert_eq!(
            from_ping(&docker),
            Some(Identity {
                kind: EngineKind::Docker,
                version: Some("20.10.24+dfsg1".into()),
                api_version: Some("1.41".into()),
            })
        );
        let podman = headers(&[
            ("api-version", "1.41"),
            ("libpod-api-version", "4.3.1"),
            ("server", "Libpod/4.3.1 (linux)"),
        ]);
        assert_eq!(
            from_ping(&podman),
            Some(Identity {
                kind: EngineKind::Podman,
                version: Some("4.3.1".into()),
                api_version: Some("1.41".into()),
            })
        );
    }

    #[test]
    fn a_server_not_named_asks_version_instead() {
        assert_eq!(from_ping(&headers(&[("api-version", "1.41")])), None);
        assert_eq!(from_ping(&headers(&[("server", "nginx/1.25")])), None);
        assert_eq!(from_ping(&headers(&[("server", "Docker")])), None);
        assert_eq!(from_ping(&headers(&[("server", "Docker/")])), None);
    }

    #[test]
    fn version_names_podman_by_its_component() {
        let podman: SystemVersion = serde_json::from_str(
            r#"{"Version":"4.3.1","ApiVersion":"1.41","Components":[{"Name":"Podman Engine","Version":"4.3.1"}]}"#,
        )
        .unwrap();
        assert_eq!(from_version(&podman).kind, EngineKind::Podman);
        let docker: SystemVersion =
            serde_json::from_str(r#"{"Version":"28.5.1","ApiVersion":"1.51"}"#).unwrap();
        let identity = from_version(&docker);
        assert_eq!(identity.kind, EngineKind::Docker);
        assert_eq!(identity.version.as_deref(), Some("28.5.1"));
    }
}
