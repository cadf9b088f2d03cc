//! Listing and inspecting an engine's containers, concurrently and under one bound.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use futures_util::stream::{self, StreamExt};

use super::cache::{Entries, Entry};
use super::convert::{convert, from_listing, short, status_health, summary_proto};
use super::error::{bounded, Error};
use super::raw;
use super::transport::Target;
use crate::model::{labels, Container, ContainerState, Health};
use crate::portspec::PortSpec;

/// How many inspect calls run at once: enough to hide latency, few enough not to flood a
/// busy engine.
const INSPECT_CONCURRENCY: usize = 16;

/// One listed container after its inspect: the container (`None` if it vanished meanwhile;
/// only what the list said if the inspect failed), and why it could not be read in full.
/// A container known only from the list makes the answer partial: its requested
/// bindings, addresses and exit facts are missing, so forwarders are not judged.
type Answer = (Option<Container>, Option<String>);

/// An engine's containers as listed and inspected.
pub(super) struct Listed {
    /// Every container's answer.
    pub(super) answers: Vec<Answer>,
    /// The engine's root directory, if a container's files revealed it.
    pub(super) root: Option<String>,
    /// What to remember of the listed containers (see [`cache`](super::cache)).
    pub(super) remembered: Entries,
}

/// Which containers get their full inspect; the others keep what the list call says of
/// them ([`Container::inspected`] is then false). Each inspect is a round trip that costs
/// a busy engine CPU; with hundreds of containers they dominate a scan.
#[derive(Clone, Copy, Debug)]
pub enum Inspect<'a> {
    /// Every container (`scan --all`, `free`, `baseline`).
    All,
    /// Those that can bear on these ports (`why`, `scan --port`): see `inspect_for_ports`.
    ForPorts(&'a PortSpec),
    /// Every container the default view can judge: all but the running ones whose list
    /// record proves that no rule applies to them (see `settled`), and the stopped ones
    /// remembered to bind no port.
    Judged,
}

/// Lists every container and inspects them (those `inspect` asks for, given what is
/// remembered of them, `known`) concurrently, bounded: no per-container round trip waits
/// for another.
pub(super) async fn list_and_inspect(
    docker: &Docker,
    target: &Target,
    timeout: Duration,
    inspect: Inspect<'_>,
    known: &Entries,
) -> Result<Listed, Error> {
    let options = ListContainersOptionsBuilder::new().all(true).build();
    // The tolerant retry is part of the same call: it gets what is left of the bound.
    let asked = tokio::time::Instant::now();
    let left = move || timeout.saturating_sub(asked.elapsed());
    let (summaries, odd_states) =
        match bounded(timeout, docker.list_containers(Some(options))).await {
            Ok(list) => (list, HashMap::new()),
            Err(Error::Unfit(_)) => raw::list(target, left()).await?,
            Err(e) => return Err(e),
        };
    let remembered: Vec<Option<&Entry>> = summaries.iter().map(|s| recall(known, s)).collect();
    let wanted = match inspect {
        Inspect::All => vec![true; summaries.len()],
        Inspect::ForPorts(ports) => inspect_for_ports(&summaries, &remembered, ports),
        Inspect::Judged => inspect_judged(&summaries, &remembered),
    };
    let mut keep: Entries = summaries
        .iter()
        .zip(&remembered)
        .filter_map(|(s, e)| Some((s.id.clone()?, (*e)?.clone())))
        .collect();
    let (summaries, listed_only): (Vec<_>, Vec<_>) = summaries
        .into_iter()
        .zip(wanted)
        .partition(|(_, wanted)| *wanted);
    let listed_only = listed_only
        .into_iter()
        .filter_map(|(summary, _)| {
            let requested = recall(&keep, &summary).map(|e| e.requested.clone());
            from_listing(&summary, &odd_states).map(|c| Container {
                requested: requested.unwrap_or_default(),
                ..c
            })
        })
        .map(|c| Inspected {
            answer: (Some(c), None),
            root: None,
            learned: None,
        });
    let inspected: Vec<Inspected> = stream::iter(summaries.into_iter().map(|(summary, _)| summary))
        .map(|summary| inspect_one(docker, target, timeout, summary, &odd_states))
        .buffer_unordered(INSPECT_CONCURRENCY)
        .chain(stream::iter(listed_only))
        .collect()
        .await;
    let root = inspected.iter().find_map(|i| i.root.clone());
    keep.extend(inspected.iter().filter_map(|i| i.learned.clone()));
    Ok(Listed {
        answers: inspected.into_iter().map(|i| i.answer).collect(),
        root,
        remembered: keep,
    })
}

/// What is remembered of a listed container, if it is the same container (its creation
/// time agrees).
fn recall<'a>(known: &'a Entries, s: &ContainerSummary) -> Option<&'a Entry> {
    let entry = known.get(s.id.as_deref()?)?;
    (Some(entry.created) == s.created).then_some(entry)
}

/// One container's answer, the engine's root directory if its paths tell it, and what
/// to remember of it.
struct Inspected {
    answer: Answer,
    root: Option<String>,
    learned: Option<(String, Entry)>,
}

/// One listed container, inspected. bollard's models refuse states they do not know: the
/// raw inspect then keeps the state as the engine said it.
async fn inspect_one(
    docker: &Docker,
    target: &Target,
    timeout: Duration,
    summary: ContainerSummary,
    odd_states: &HashMap<String, String>,
) -> Inspected {
    let nothing = |answer| Inspected {
        answer,
        root: None,
        learned: None,
    };
    let Some(id) = summary.id.clone() else {
        return nothing((None, None));
    };
    let asked = tokio::time::Instant::now();
    let inspected = match bounded(timeout, docker.inspect_container(&id, None)).await {
        Ok(detail) => Ok((detail, None)),
        Err(Error::Unfit(_)) => {
            raw::inspect(target, &id, timeout.saturating_sub(asked.elapsed())).await
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
            let learned = container.as_ref().zip(summary.created).map(|(c, created)| {
                let publish_all = detail
                    .host_config
                    .as_ref()
                    .and_then(|h| h.publish_all_ports);
                let entry = Entry {
                    created,
                    requested: c.requested.clone(),
                    publish_all: publish_all.unwrap_or(false),
                };
                (c.id.clone(), entry)
            });
            Inspected {
                answer: (container, None),
                root,
                learned,
            }
        }
        // Removed between list and inspect: it holds nothing any more.
        Err(e) if e.status() == Some(404) => nothing((None, None)),
        // Keep what the list call said rather than lose the container, but say the
        // answer is partial.
        Err(e) => nothing((
            from_listing(&summary, odd_states),
            Some(format!("cannot inspect container {}: {e}", short(&id))),
        )),
    }
}

/// Which listed containers can bear on `ports`, and so need their full inspect; the list
/// call's record is exact for the others as far as those ports go. Inspected are:
/// containers not running (their requested bindings, which make them wanters, and their
/// exit and restart facts are only in the inspect), but for the stopped ones remembered
/// to ask for none of the ports; containers on the host's network or another
/// container's; running containers publishing one of the ports (the holders); and their
/// compose neighbours.
fn inspect_for_ports(
    summaries: &[ContainerSummary],
    remembered: &[Option<&Entry>],
    ports: &PortSpec,
) -> Vec<bool> {
    let wanted: Vec<bool> = summaries
        .iter()
        .zip(remembered)
        .map(|(s, known)| {
            let publishes = s.ports.iter().flatten().any(|p| {
                summary_proto(p)
                    .zip(p.public_port)
                    .is_some_and(|(proto, port)| ports.matches(proto, port))
            });
            // Remembered to ask for none of the ports: a start cannot touch them.
            let spared = is_stopped(s) && known.is_some_and(|e| !e.may_want(ports));
            let wants = !is_running(s) && !spared;
            wants || shared_network(s) || publishes
        })
        .collect();
    with_compose_neighbours(summaries, wanted)
}

/// Which listed containers the default view must inspect: every one whose list record
/// does not prove that no rule applies. Kept from the list are running containers, on a
/// network of their own, up for two minutes at least and not unhealthy (see `settled`),
/// and stopped ones remembered to bind no host port (every rule about a stopped
/// container is about its ports), outside any directory two compose projects were
/// started from (a superseded project is judged on its members' creation times). Every
/// rule reads only what the list record holds for those: the live bindings, addresses,
/// labels and health.
fn inspect_judged(summaries: &[ContainerSummary], remembered: &[Option<&Entry>]) -> Vec<bool> {
    let mut projects: HashMap<String, HashSet<&str>> = HashMap::new();
    for s in summaries {
        if let (Some(dir), Some(project)) = (working_dir(s), label(s, labels::PROJECT)) {
            projects.entry(dir).or_default().insert(project);
        }
    }
    summaries
        .iter()
        .zip(remembered)
        .map(|(s, known)| {
            let rivals = working_dir(s).is_some_and(|dir| projects[&dir].len() > 1);
            let settled = s.status.as_deref().is_some_and(settled);
            let quiet = (is_running(s) && settled && !shared_network(s))
                || (is_stopped(s) && known.is_some_and(|e| !e.binds()));
            !quiet || rivals
        })
        .collect()
}

/// `wanted`, and the compose containers started from the same directory as any wanted
/// one: a superseded project is judged against its successor's creation times and
/// requested ports.
fn with_compose_neighbours(summaries: &[ContainerSummary], mut wanted: Vec<bool>) -> Vec<bool> {
    let dirs: HashSet<String> = summaries
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

fn is_running(s: &ContainerSummary) -> bool {
    s.state.is_some_and(|state| state.to_string() == "running")
}

/// Created and never started, or exited: nothing of it runs, and only a start changes
/// that (a dead or restarting container is read in full).
fn is_stopped(s: &ContainerSummary) -> bool {
    s.state
        .is_some_and(|state| matches!(state.to_string().as_str(), "created" | "exited"))
}

/// On the host's network or another container's: its processes hold host ports directly,
/// and are told from impostors by its main process (only the inspect names it).
fn shared_network(s: &ContainerSummary) -> bool {
    s.host_config
        .as_ref()
        .and_then(|h| h.network_mode.as_deref())
        .is_some_and(|mode| mode == "host" || mode.starts_with("container:"))
}

fn label<'a>(s: &'a ContainerSummary, key: &str) -> Option<&'a str> {
    s.labels.as_ref()?.get(key).map(String::as_str)
}

fn working_dir(s: &ContainerSummary) -> Option<String> {
    label(s, labels::WORKING_DIR).map(str::to_owned)
}

/// Whether a running container's list status (`Up 3 hours (healthy)`, as the engine
/// words it: go-units' `HumanDuration`) proves it settled: up for two minutes at least
/// (the restart-loop rule looks at containers up for less than one; the margin covers a
/// clock that differs from the engine's), with no health check or a passing or starting
/// one. Anything else, or any other wording, is read in full.
fn settled(status: &str) -> bool {
    let Some(rest) = status.strip_prefix("Up ") else {
        return false;
    };
    let (uptime, health) = match rest.split_once(" (") {
        Some((uptime, health)) => (uptime, Some(health)),
        None => (rest, None),
    };
    let health_ok = health.is_none()
        || matches!(
            status_health(status),
            Some(Health::Healthy | Health::Starting)
        );
    let long = match uptime.split_once(' ') {
        Some(("About", "an hour")) => true,
        Some((count, unit)) => count.parse::<u32>().is_ok_and(|n| match unit {
            "minutes" => n >= 2,
            "hours" | "days" | "weeks" | "months" | "years" => true,
            _ => false,
        }),
        None => false,
    };
    long && health_ok
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

    /// Docker's and Podman's wordings (go-units' `HumanDuration`).
    #[test]
    fn only_a_status_proving_two_quiet_minutes_is_settled() {
        for status in [
            "Up 2 minutes",
            "Up 59 minutes",
            "Up About an hour",
            "Up 3 hours",
            "Up 2 days",
            "Up 5 weeks",
            "Up 4 months",
            "Up 2 years",
            "Up 3 hours (healthy)",
            "Up 3 hours (health: starting)",
        ] {
            assert!(settled(status), "{status}");
        }
        for status in [
            "Up Less than a second",
            "Up 1 second",
            "Up 45 seconds",
            "Up About a minute",
            "Up 1 minutes",
            "Up 3 hours (unhealthy)",
            "Up 3 hours (Paused)",
            "Up 3 hours (something new)",
            "Up 3 hours (healthy",
            "Restarting (1) 5 seconds ago",
            "Exited (0) 3 hours ago",
            "Created",
            "up 3 hours",
            "Up",
            "",
        ] {
            assert!(!settled(status), "{status}");
        }
        assert_eq!(status_health("Up 3 hours (healthy)"), Some(Health::Healthy));
        assert_eq!(
            status_health("Up 3 seconds (health: starting)"),
            Some(Health::Starting)
        );
        assert_eq!(
            status_health("Up 3 hours (unhealthy)"),
            Some(Health::Unhealthy)
        );
        assert_eq!(status_health("Up 3 hours"), None);
    }

    fn summary(json: serde_json::Value) -> ContainerSummary {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_default_view_reads_all_but_settled_running_containers() {
        let compose = |project: &str, dir: &str| {
            serde_json::json!({
                "com.docker.compose.project": project,
                "com.docker.compose.project.working_dir": dir,
            })
        };
        let list = [
            // Settled: kept from the list.
            summary(serde_json::json!({"State": "running", "Status": "Up 3 hours"})),
            summary(
                serde_json::json!({"State": "running", "Status": "Up 3 hours (healthy)",
                "Labels": compose("shop", "/src/shop")}),
            ),
            // Too young, unhealthy, not running, on the host's network.
            summary(serde_json::json!({"State": "running", "Status": "Up 30 seconds"})),
            summary(serde_json::json!({"State": "running", "Status": "Up 3 hours (unhealthy)"})),
            summary(serde_json::json!({"State": "exited", "Status": "Exited (0) 3 hours ago"})),
            summary(serde_json::json!({"State": "paused", "Status": "Up 3 hours (Paused)"})),
            summary(
                serde_json::json!({"State": "running", "Status": "Up 3 hours",
                "HostConfig": {"NetworkMode": "host"}}),
            ),
            summary(serde_json::json!({"State": "running"})),
            // Two projects from one directory: both read (creation times decide).
            summary(
                serde_json::json!({"State": "running", "Status": "Up 3 hours",
                "Labels": compose("web", "/src/web")}),
            ),
            summary(
                serde_json::json!({"State": "running", "Status": "Up 3 hours",
                "Labels": compose("web-old", "/src/web")}),
            ),
        ];
        assert_eq!(
            inspect_judged(&list, &[None; 10]),
            [false, false, true, true, true, true, true, true, true, true]
        );
    }
    /// Stopped containers whose bindings are remembered are read only when they can bear
    /// on the answer; running, paused, dead and unknown ones as before.
    #[test]
    fn remembered_stopped_containers_are_read_only_when_they_can_bear() {
        use crate::model::{Proto, RequestedBinding};
        use crate::portspec::PortRange;
        let wants = |port: u16| Entry {
            created: 7,
            requested: vec![RequestedBinding {
                proto: Proto::Tcp,
                container_port: 80,
                host_ip: None,
                host_ports: Some(PortRange {
                    start: port,
                    end: port,
                }),
            }],
            publish_all: false,
        };
        let bare = Entry {
            created: 7,
            requested: vec![],
            publish_all: false,
        };
        let list = [
            summary(serde_json::json!({"State": "exited", "Status": "Exited (0) 3 hours ago"})),
            summary(serde_json::json!({"State": "created", "Status": "Created"})),
            summary(serde_json::json!({"State": "exited", "Status": "Exited (0) 3 hours ago"})),
            summary(serde_json::json!({"State": "dead", "Status": "Dead"})),
            summary(serde_json::json!({"State": "exited", "Status": "Exited (0) 3 hours ago"})),
        ];
        let known = [
            Some(&wants(3000)),
            Some(&bare),
            None,
            Some(&bare),
            Some(&wants(4000)),
        ];
        let ports: PortSpec = "3000".parse().unwrap();
        assert_eq!(
            inspect_for_ports(&list, &known, &ports),
            [true, false, true, true, false]
        );
        assert_eq!(
            inspect_judged(&list, &known),
            [true, false, true, true, true]
        );
    }

    #[test]
    fn an_entry_is_recalled_only_for_the_container_it_was_made_for() {
        let entry = Entry {
            created: 7,
            requested: vec![],
            publish_all: false,
        };
        let known: Entries = [("abc".to_owned(), entry)].into_iter().collect();
        let listed = |created: i64| summary(serde_json::json!({"Id": "abc", "Created": created}));
        assert!(recall(&known, &listed(7)).is_some());
        assert!(recall(&known, &listed(8)).is_none());
        assert!(recall(
            &known,
            &summary(serde_json::json!({"Id": "abd", "Created": 7}))
        )
        .is_none());
    }

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
