//! The Docker Engine API, through bollard. The only module that imports bollard: its
//! models are converted into portreap's own types here, at the boundary.

pub mod cache;
mod client;
mod convert;
pub mod endpoint;
mod error;
mod identity;
mod list;
mod raw;
mod tls;
mod transport;

pub use client::Client;
pub use convert::convert;
pub use error::Error;
pub use list::Inspect;

use std::time::Duration;

use client::connect_to;
use endpoint::Endpoint;
use error::bounded;
use list::list_and_inspect;

use crate::model::{Container, EngineStatus};

/// The engine's side of a snapshot.
pub struct EngineFacts {
    /// Whether and how the engine answered.
    pub status: EngineStatus,
    /// Every container, in any state.
    pub containers: Vec<Container>,
    /// What to remember of its containers (see [`cache`]); `None` when it did not list
    /// them.
    pub remembered: Option<cache::Entries>,
}

impl EngineFacts {
    /// An engine that gave no usable answer, and why.
    fn unanswered(mut status: EngineStatus, reason: String) -> Self {
        status.error = Some(reason);
        EngineFacts {
            status,
            containers: Vec::new(),
            remembered: None,
        }
    }
}

/// Asks the engines (the resolved one, and with `--all-engines` the other local ones) at
/// once. Never fails: an engine that cannot be reached is a fact to report, not an error.
/// Every call is bounded by `timeout`. The answers come back in the order asked, each
/// container tagged with its engine's position.
///
/// `inspect` says which containers are read in full; the others keep what the list call
/// says of them. What `cache` remembers of an engine's containers can spare inspects.
/// `identify` asks each engine its own id too (see [`EngineStatus::id`]).
pub fn collect_all(
    endpoints: Vec<Result<Endpoint, endpoint::Error>>,
    timeout: Duration,
    (inspect, identify): (Inspect<'_>, bool),
    cache: &cache::Cache,
) -> Vec<EngineFacts> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return endpoints
                .into_iter()
                .map(|_| {
                    EngineFacts::unanswered(
                        EngineStatus::default(),
                        format!("cannot start the async runtime: {e}"),
                    )
                })
                .collect()
        }
    };
    runtime.block_on(async {
        let asks = endpoints
            .into_iter()
            .enumerate()
            .map(|(i, endpoint)| async move {
                let mut facts = match endpoint {
                    Ok(endpoint) => {
                        let status = EngineStatus {
                            endpoint: endpoint.url.clone(),
                            source: endpoint.source.clone(),
                            ..EngineStatus::default()
                        };
                        let known = cache.engine(&endpoint.url);
                        let ask = (inspect, identify);
                        collect_async(&endpoint, timeout, ask, status, &known).await
                    }
                    Err(e) => {
                        let status = EngineStatus {
                            source: e.source(),
                            ..EngineStatus::default()
                        };
                        EngineFacts::unanswered(status, e.to_string())
                    }
                };
                for c in &mut facts.containers {
                    c.engine = i;
                }
                facts
            });
        futures_util::future::join_all(asks).await
    })
}

async fn collect_async(
    endpoint: &Endpoint,
    timeout: Duration,
    (inspect, identify): (Inspect<'_>, bool),
    mut status: EngineStatus,
    known: &cache::Entries,
) -> EngineFacts {
    let (docker, target) = match connect_to(endpoint, timeout) {
        Ok(connected) => connected,
        Err(e) => return EngineFacts::unanswered(status, e.to_string()),
    };
    // Who the engine is and its containers are asked at once: nothing in the list depends
    // on the answer, and each round trip costs a busy engine CPU that the host walk needs.
    let info = async {
        match identify {
            true => bounded(timeout, docker.info()).await.ok(),
            false => None,
        }
    };
    let (identity, listed, info) = futures_util::future::join3(
        identity::identify(&docker, &target, timeout),
        list_and_inspect(&docker, &target, timeout, inspect, known),
        info,
    )
    .await;
    let identity = match identity {
        Ok(identity) => identity,
        Err(e) => return EngineFacts::unanswered(status, e.to_string()),
    };
    status.reachable = true;
    // Podman's compatible API makes up a new id for every answer: it identifies nothing.
    status.id = info
        .as_ref()
        .and_then(|i| i.id.clone())
        .filter(|id| !id.is_empty() && identity.kind == crate::model::EngineKind::Docker);
    status.kind = Some(identity.kind);
    status.version = identity.version;
    status.api_version = identity.api_version;
    let list::Listed {
        answers: inspected,
        root: root_hint,
        remembered,
    } = match listed {
        Ok(listed) => listed,
        Err(reason) => {
            return EngineFacts::unanswered(status, format!("cannot list containers: {reason}"))
        }
    };
    let mut containers = Vec::with_capacity(inspected.len());
    let mut problems = Vec::new();
    for (container, problem) in inspected {
        containers.extend(container);
        problems.extend(problem);
    }
    containers.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    // The root directory only decides whether compose paths can be judged from here. A
    // started container's inspect already names it; `/info` is the slowest call an
    // engine answers (it runs its runtimes to ask their versions), so it is asked only
    // when compose containers exist and none of them told.
    status.root_dir = match root_hint {
        Some(root) => Some(root),
        None if info.is_some() => info.and_then(|i| i.docker_root_dir),
        None if containers.iter().any(|c| c.compose_paths().is_some()) => {
            bounded(timeout, docker.info())
                .await
                .ok()
                .and_then(|i| i.docker_root_dir)
        }
        None => None,
    };
    if !problems.is_empty() {
        status.error = Some(problems.join("; "));
    }
    EngineFacts {
        status,
        containers,
        remembered: Some(remembered),
    }
}
