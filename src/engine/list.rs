//! Listing and inspecting an engine's containers, concurrently and under one bound.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use futures_util::stream::{self, StreamExt};

use super::convert::{convert, from_listing, short, summary_proto};
use super::endpoint::Endpoint;
use super::error::{bounded, Error};
use super::raw;
use crate::model::{Container, ContainerState};
use crate::portspec::PortSpec;

/// How many inspect calls run at once: enough to hide latency, few enough not to flood a
/// busy engine.
const INSPECT_CONCURRENCY: usize = 16;

/// One listed container after its inspect: the container (`None` if it vanished meanwhile;
/// only what the list said if the inspect failed), and why it could not be read in full.
/// A container known only from the list makes the answer partial: its requested
/// bindings, addresses and exit facts are missing, so forwarders are not judged.
type Answer = (Option<Container>, Option<String>);

/// The inspected containers and the engine's root directory if a container's files
/// revealed it.
type Inspected = (Vec<Answer>, Option<String>);

/// Lists every container and inspects them (those `ports` needs, or all) concurrently,
/// bounded: no per-container round trip waits for another.
pub(super) async fn list_and_inspect(
    docker: &Docker,
    endpoint: &Endpoint,
    timeout: Duration,
    ports: Option<&PortSpec>,
) -> Result<Inspected, Error> {
    let options = ListContainersOptionsBuilder::new().all(true).build();
    // The tolerant retry is part of the same call: it gets what is left of the bound.
    let asked = tokio::time::Instant::now();
    let left = move || timeout.saturating_sub(asked.elapsed());
    let (summaries, odd_states) =
        match bounded(timeout, docker.list_containers(Some(options))).await {
            Ok(list) => (list, HashMap::new()),
            Err(Error::Unfit(_)) => raw::list(endpoint, left()).await?,
            Err(e) => return Err(e),
        };
    let wanted = match ports {
        Some(ports) => inspect_for_ports(&summaries, ports),
        None => vec![true; summaries.len()],
    };
    let (summaries, listed_only): (Vec<_>, Vec<_>) = summaries
        .into_iter()
        .zip(wanted)
        .partition(|(_, wanted)| *wanted);
    let listed_only = listed_only
        .into_iter()
        .filter_map(|(summary, _)| from_listing(&summary, &odd_states))
        .map(|c| ((Some(c), None), None));
    let inspected: Vec<(Answer, Option<String>)> =
        stream::iter(summaries.into_iter().map(|(summary, _)| summary))
            .map(|summary| {
                let odd_states = &odd_states;
                async move {
                    let Some(id) = summary.id.clone() else {
                        return ((None, None), None);
                    };
                    let asked = tokio::time::Instant::now();
                    let inspected =
                        match bounded(timeout, docker.inspect_container(&id, None)).await {
                            Ok(detail) => Ok((detail, None)),
                            Err(Error::Unfit(_)) => {
                                raw::inspect(endpoint, &id, timeout.saturating_sub(asked.elapsed()))
                                    .await
                            }
                            Err(e) => Err(e),
                        };
                    match inspected {
                        Ok((detail, odd)) => {
                            let root = detail
                                .hostname_path
                                .as_deref()
                                .and_then(|p| root_dir_from(p, &id));
                            let container = convert(&detail).map(|mut c| {
                                // A state the models do not know, kept as the engine said it.
                                if let Some(state) = odd.or_else(|| odd_states.get(&id).cloned()) {
                                    c.state = ContainerState::Other(state);
                                }
                                c
                            });
                            ((container, None), root)
                        }
                        // Removed between list and inspect: it holds nothing any more.
                        Err(e) if e.status() == Some(404) => ((None, None), None),
                        // Keep what the list call said rather than lose the container,
                        // but say the answer is partial.
                        Err(e) => (
                            (
                                from_listing(&summary, odd_states),
                                Some(format!("cannot inspect container {}: {e}", short(&id))),
                            ),
                            None,
                        ),
                    }
                }
            })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .chain(stream::iter(listed_only))
            .collect()
            .await;
    let root = inspected.iter().find_map(|(_, root)| root.clone());
    Ok((inspected.into_iter().map(|(c, _)| c).collect(), root))
}

/// Which listed containers can bear on `ports`, and so need their full inspect; the list
/// call's record is exact for the others as far as those ports go. Inspected are:
/// containers not running (their requested bindings, which make them wanters, and their
/// exit and restart facts are only in the inspect); containers on the host's network or
/// another container's (their processes hold host ports directly); running containers
/// publishing one of the ports (the holders); and the compose containers started from the
/// same directory as any of those (a superseded project is judged against its
/// successor's creation times and requested ports).
fn inspect_for_ports(summaries: &[ContainerSummary], ports: &PortSpec) -> Vec<bool> {
    let mut wanted: Vec<bool> = summaries
        .iter()
        .map(|s| {
            let running = s.state.is_some_and(|state| state.to_string() == "running");
            let shared_network = s
                .host_config
                .as_ref()
                .and_then(|h| h.network_mode.as_deref())
                .is_some_and(|mode| mode == "host" || mode.starts_with("container:"));
            let publishes = s.ports.iter().flatten().any(|p| {
                summary_proto(p)
                    .zip(p.public_port)
                    .is_some_and(|(proto, port)| ports.matches(proto, port))
            });
            !running || shared_network || publishes
        })
        .collect();
    let working_dir = |s: &ContainerSummary| {
        s.labels
            .as_ref()
            .and_then(|l| l.get(crate::model::labels::WORKING_DIR))
            .cloned()
    };
    let dirs: std::collections::HashSet<String> = summaries
        .iter()
        .zip(&wanted)
        .filter(|(_, wanted)| **wanted)
        .filter_map(|(s, _)| working_dir(s))
        .collect();
    for (s, wanted) in summaries.iter().zip(wanted.iter_mut()) {
        if working_dir(s).is_some_and(|dir| dirs.contains(&dir)) {
            *wanted = true;
        }
    }
    wanted
}

/// Docker keeps a started container's files in `<DockerRootDir>/containers/<id>/`; its
/// `HostnamePath` names one of them. Other layouts (Podman's) reveal nothing.
fn root_dir_from(hostname_path: &str, id: &str) -> Option<String> {
    let root = hostname_path
        .strip_suffix("/hostname")?
        .strip_suffix(id)?
        .strip_suffix("/containers/")?;
    (root.starts_with('/') && !id.is_empty()).then(|| root.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn root_dir_comes_from_a_started_containers_files() {
        let id = "a5f169ec5ea40e53aa4b049c29904c1d17d166e00291dfef830f0fa3373992fc";
        assert_eq!(
            root_dir_from(&format!("/var/lib/docker/containers/{id}/hostname"), id).as_deref(),
            Some("/var/lib/docker")
        );
        assert_eq!(
            root_dir_from(&format!("/data/docker/containers/{id}/hostname"), id).as_deref(),
            Some("/data/docker")
        );
        // Podman's layout, another container's path, a created container's empty path.
        let podman = format!("/run/containers/storage/overlay-containers/{id}/userdata/hostname");
        assert_eq!(root_dir_from(&podman, id), None);
        assert_eq!(
            root_dir_from("/var/lib/docker/containers/other/hostname", id),
            None
        );
        assert_eq!(root_dir_from("", id), None);
        assert_eq!(root_dir_from("/containers//hostname", ""), None);
    }
}
