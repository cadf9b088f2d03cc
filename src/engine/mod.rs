//! The Docker Engine API, through bollard. The only module that imports bollard: its
//! models are converted into portreap's own types here, at the boundary.

pub mod endpoint;
mod raw;
mod transport;

use std::collections::{BTreeMap, HashMap};
use std::error::Error as _;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerInspectResponse, ContainerSummary, EndpointSettings, PortBinding, PortMap, PortSummary,
};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use futures_util::stream::{self, StreamExt};

use crate::model::{
    Container, ContainerState, EngineKind, EngineStatus, Health, LiveBinding, Proto,
    RequestedBinding, RestartPolicy, Timestamp,
};
use crate::portspec::{PortRange, PortSpec};
use endpoint::{Endpoint, Transport};

/// How many inspect calls run at once: enough to hide latency, few enough not to flood a
/// busy engine.
const INSPECT_CONCURRENCY: usize = 16;

/// The engine's side of a snapshot.
pub struct EngineFacts {
    /// Whether and how the engine answered.
    pub status: EngineStatus,
    /// Every container, in any state.
    pub containers: Vec<Container>,
}

impl EngineFacts {
    /// An engine that gave no usable answer, and why.
    fn unanswered(mut status: EngineStatus, reason: String) -> Self {
        status.error = Some(reason);
        EngineFacts {
            status,
            containers: Vec::new(),
        }
    }
}

/// Asks the engines (the resolved one, and with `--all-engines` the other local ones) at
/// once. Never fails: an engine that cannot be reached is a fact to report, not an error.
/// Every call is bounded by `timeout`. The answers come back in the order asked, each
/// container tagged with its engine's position.
///
/// With `ports`, only the containers that can bear on those ports are inspected (see
/// `inspect_for_ports`); the others keep what the list call says of them.
pub fn collect_all(
    endpoints: Vec<Result<Endpoint, String>>,
    timeout: Duration,
    ports: Option<&PortSpec>,
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
                        collect_async(&endpoint, timeout, ports, status).await
                    }
                    Err(reason) => EngineFacts::unanswered(EngineStatus::default(), reason),
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
    ports: Option<&PortSpec>,
    mut status: EngineStatus,
) -> EngineFacts {
    let docker = match connect(endpoint, timeout) {
        Ok(docker) => docker,
        Err(reason) => return EngineFacts::unanswered(status, reason),
    };
    // The version and the containers are asked at once: nothing in the list depends on
    // the version, and each round trip costs a busy engine CPU that the host walk needs.
    let (version, listed) = futures_util::future::join(
        bounded(timeout, docker.version()),
        list_and_inspect(&docker, endpoint, timeout, ports),
    )
    .await;
    let version = match version {
        Ok(v) => v,
        Err(e) => return EngineFacts::unanswered(status, e.to_string()),
    };
    status.reachable = true;
    let podman = version
        .components
        .iter()
        .flatten()
        .any(|c| c.name.contains("Podman"));
    status.kind = Some(if podman {
        EngineKind::Podman
    } else {
        EngineKind::Docker
    });
    status.version = version.version;
    status.api_version = version.api_version;
    let (inspected, root_hint) = match listed {
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
    EngineFacts { status, containers }
}

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
async fn list_and_inspect(
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
            Err(Error::Unfit(_)) => raw::list(endpoint, left()).await.map_err(Error::Unfit)?,
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
                                    .map_err(Error::Unfit)
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

/// A connection for acting on containers (prune, free). Every call is bounded by the
/// engine's progress (see `Client::patient`).
pub struct Client {
    docker: Docker,
    timeout: Duration,
    /// When the engine last answered one of this client's calls.
    answered: std::cell::Cell<tokio::time::Instant>,
}

/// bollard's own per-request limit, for the acting client: a backstop only, the bound is
/// [`Client::patient`]'s.
const BACKSTOP: Duration = Duration::from_secs(24 * 3600);

impl Client {
    /// Connects lazily to `endpoint`; nothing is dialled until the first call.
    pub fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Client, Error> {
        Ok(Client {
            docker: connect(endpoint, timeout)
                .map_err(Error::Unreachable)?
                .with_timeout(BACKSTOP),
            timeout,
            answered: std::cell::Cell::new(tokio::time::Instant::now()),
        })
    }

    /// Runs one call; it fails once neither it nor any other call of this client has had
    /// an answer for `bound`. Dozens of actions are in flight at once and the engine works
    /// through some of them one at a time (Docker tears down each published port in
    /// turn: ~80 ms a container here), so the last one waits behind all the others. An
    /// engine that keeps answering is busy, not hung.
    async fn patient<T>(
        &self,
        bound: Duration,
        call: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, Error> {
        let started = tokio::time::Instant::now();
        let mut call = std::pin::pin!(call);
        loop {
            let deadline = self.answered.get().max(started) + bound;
            match tokio::time::timeout_at(deadline, &mut call).await {
                Ok(result) => {
                    self.answered.set(tokio::time::Instant::now());
                    return result.map_err(|e| call_error(e, bound));
                }
                Err(_) if self.answered.get().max(started) + bound <= deadline => {
                    return Err(Error::TimedOut(bound));
                }
                // Another call was answered meanwhile: wait on from that answer.
                Err(_) => {}
            }
        }
    }

    /// The container as it is now; `None` if it no longer exists.
    pub async fn inspect(&self, id: &str) -> Result<Option<Container>, Error> {
        match self
            .patient(self.timeout, self.docker.inspect_container(id, None))
            .await
        {
            Ok(detail) => Ok(convert(&detail)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Unpauses (a paused container cannot be stopped).
    pub async fn unpause(&self, id: &str) -> Result<(), Error> {
        self.patient(self.timeout, self.docker.unpause_container(id))
            .await
    }

    /// Stops, giving the container `grace` to exit before the engine kills it.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), Error> {
        let options = StopContainerOptions {
            signal: None,
            t: Some(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)),
        };
        // The engine itself waits `grace` before killing, and answers nothing meanwhile.
        self.patient(
            self.timeout + grace,
            self.docker.stop_container(id, Some(options)),
        )
        .await
    }

    /// Removes; volumes are kept. With `force` a container that runs is killed first,
    /// without it the engine refuses one. `Ok(false)`: there was no such container.
    pub async fn remove(&self, id: &str, force: bool) -> Result<bool, Error> {
        let options = RemoveContainerOptions {
            v: false,
            force,
            link: false,
        };
        match self
            .patient(
                self.timeout,
                self.docker.remove_container(id, Some(options)),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Docker, String> {
    let url = endpoint.url.as_str();
    // bollard keeps its timeout in whole seconds and treats 0 as "fail at once"; the real
    // bound is the tokio timeout around each call, this is only a backstop.
    let secs = timeout.as_secs_f64().ceil().max(1.0) as u64;
    let version = bollard::API_DEFAULT_VERSION;
    let result = match endpoint::parse_url(url)? {
        Transport::Unix(path) => {
            if !path.exists() {
                return Err(format!(
                    "socket {} does not exist (is the Docker engine installed and running?)",
                    path.display()
                ));
            }
            transport::docker(transport::Target::Unix(path), secs)
        }
        Transport::Tcp(addr) => match endpoint::tls_files(endpoint, &endpoint::ProcessEnv)? {
            Some(tls) => {
                Docker::connect_with_ssl(&addr, &tls.key, &tls.cert, &tls.ca, secs, version)
            }
            None => transport::docker(transport::Target::Tcp(addr), secs),
        },
    };
    result.map_err(|e| describe(&e, timeout))
}

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
        }
    }
}

impl std::error::Error for Error {}

/// Runs an engine call under a deadline.
async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, BollardError>>,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(|e| call_error(e, timeout)),
        Err(_) => Err(Error::TimedOut(timeout)),
    }
}

fn call_error(e: BollardError, timeout: Duration) -> Error {
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
fn describe(err: &BollardError, timeout: Duration) -> String {
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

/// An inspected container's state. Podman 5's compatible API reports a container whose
/// stop is under way (`podman inspect` says "stopping") as status "running" with
/// `Running: false`: the flag is the truth, and the container may no longer hold ports.
fn inspected_state(status: &str, running: Option<bool>) -> ContainerState {
    match (parse_state(status), running) {
        (ContainerState::Running, Some(false)) => ContainerState::Stopping,
        (state, _) => state,
    }
}

fn parse_state(state: &str) -> ContainerState {
    match state {
        "created" => ContainerState::Created,
        "running" => ContainerState::Running,
        "paused" => ContainerState::Paused,
        "restarting" => ContainerState::Restarting,
        "removing" => ContainerState::Removing,
        "exited" => ContainerState::Exited,
        "dead" => ContainerState::Dead,
        "stopping" => ContainerState::Stopping,
        other => ContainerState::Other(other.to_owned()),
    }
}

/// Splits a port map key like `80/tcp`; other protocols (sctp) are out of scope.
fn parse_port_key(key: &str) -> Option<(u16, Proto)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    Some((port.parse().ok()?, proto))
}

fn parse_host_ports(text: &str) -> Option<PortRange> {
    let text = text.trim();
    if text.is_empty() || text == "0" {
        return None;
    }
    let (start, end) = text.split_once('-').unwrap_or((text, text));
    Some(PortRange {
        start: start.parse().ok()?,
        end: end.parse().ok()?,
    })
}

fn bindings(map: Option<&PortMap>) -> impl Iterator<Item = (u16, Proto, &PortBinding)> {
    map.into_iter().flatten().flat_map(|(key, list)| {
        let parsed = parse_port_key(key);
        list.iter()
            .flatten()
            .filter_map(move |b| parsed.map(|(port, proto)| (port, proto, b)))
    })
}

fn live_bindings(map: Option<&PortMap>) -> Vec<LiveBinding> {
    let mut live: Vec<LiveBinding> = bindings(map)
        .filter_map(|(container_port, proto, b)| {
            let host_port = b.host_port.as_deref()?.parse().ok()?;
            let host_ip = match b.host_ip.as_deref() {
                None | Some("") => IpAddr::from([0, 0, 0, 0]),
                Some(ip) => ip.parse().ok()?,
            };
            Some(LiveBinding {
                proto,
                container_port,
                host_ip,
                host_port,
            })
        })
        .collect();
    live.sort_by_key(|b| (b.host_port, b.proto, b.host_ip, b.container_port));
    live.dedup();
    live
}

fn requested_bindings(map: Option<&PortMap>) -> Vec<RequestedBinding> {
    let mut requested: Vec<RequestedBinding> = bindings(map)
        .map(|(container_port, proto, b)| RequestedBinding {
            proto,
            container_port,
            host_ip: b
                .host_ip
                .as_deref()
                .filter(|ip| !ip.is_empty())
                .and_then(|ip| ip.parse().ok()),
            host_ports: b.host_port.as_deref().and_then(parse_host_ports),
        })
        .collect();
    requested.sort_by_key(|b| (b.host_ports, b.proto, b.container_port));
    requested
}

/// A time the engine reported; its zero time (`0001-01-01...`) means never.
fn moment(s: Option<&String>) -> Option<Timestamp> {
    non_empty(s).and_then(|t| Timestamp::parse(&t))
}

fn non_empty(s: Option<&String>) -> Option<String> {
    s.filter(|s| !s.is_empty() && !s.starts_with("0001-01-01"))
        .cloned()
}

/// The start of the oldest failed check of the current streak that the engine's health
/// log still holds (it keeps the last five), and whether that is the streak's first.
fn failing_since(health: &bollard::models::Health) -> Option<(String, bool)> {
    let streak = usize::try_from(health.failing_streak?)
        .ok()
        .filter(|&n| n > 0)?;
    let log = health.log.as_ref()?;
    let failing = log
        .iter()
        .rev()
        .take(streak)
        .take_while(|r| r.exit_code.is_some_and(|c| c != 0))
        .count();
    let oldest = log.get(log.len().checked_sub(failing)?)?;
    Some((oldest.start.clone()?, failing == streak))
}

fn endpoint_addresses(networks: &HashMap<String, EndpointSettings>) -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = networks
        .values()
        .flat_map(|ep| [ep.ip_address.as_deref(), ep.global_ipv6_address.as_deref()])
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// Converts an inspect answer. `None` when it lacks an id (never seen from a real engine).
pub fn convert(detail: &ContainerInspectResponse) -> Option<Container> {
    let id = detail.id.clone()?;
    let state = detail.state.as_ref();
    let host_config = detail.host_config.as_ref();
    let config = detail.config.as_ref();
    let network = detail.network_settings.as_ref();
    let addresses = network
        .and_then(|n| n.networks.as_ref())
        .map(endpoint_addresses)
        .unwrap_or_default();
    Some(Container {
        name: detail
            .name
            .as_deref()
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| short(&id).to_owned()),
        image: config
            .and_then(|c| c.image.clone())
            .or_else(|| detail.image.clone())
            .unwrap_or_default(),
        state: inspected_state(
            &state
                .and_then(|s| s.status.as_ref())
                .map(|s| s.to_string())
                .unwrap_or_default(),
            state.and_then(|s| s.running),
        ),
        health: state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status.as_ref())
            .and_then(|h| Health::parse(h.as_ref())),
        failing_streak: state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.failing_streak)
            .unwrap_or(0),
        failing_since: state
            .and_then(|s| s.health.as_ref())
            .and_then(failing_since)
            .and_then(|(since, _)| Timestamp::parse(&since)),
        failing_since_exact: state
            .and_then(|s| s.health.as_ref())
            .and_then(failing_since)
            .is_some_and(|(_, exact)| exact),
        pid: state
            .and_then(|s| s.pid)
            .filter(|&p| p > 0)
            .and_then(|p| u32::try_from(p).ok()),
        exit_code: state.and_then(|s| s.exit_code),
        error: non_empty(state.and_then(|s| s.error.as_ref())),
        created: moment(detail.created.as_ref()),
        started_at: moment(state.and_then(|s| s.started_at.as_ref())),
        finished_at: moment(state.and_then(|s| s.finished_at.as_ref())),
        restart_policy: host_config
            .and_then(|h| h.restart_policy.as_ref())
            .and_then(|p| p.name.as_ref())
            .and_then(|n| RestartPolicy::parse(n.as_ref())),
        restart_count: detail.restart_count.unwrap_or(0),
        network_mode: host_config.and_then(|h| h.network_mode.clone()),
        addresses,
        labels: config
            .and_then(|c| c.labels.as_ref())
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        requested: requested_bindings(host_config.and_then(|h| h.port_bindings.as_ref())),
        live: live_bindings(network.and_then(|n| n.ports.as_ref())),
        engine: 0,
        id,
    })
}

/// The protocol of a port in a list answer; `None` for the ones out of scope (sctp).
fn summary_proto(port: &PortSummary) -> Option<Proto> {
    match port.typ.map(|t| t.to_string()).as_deref() {
        Some("udp") => Some(Proto::Udp),
        Some("tcp") | None => Some(Proto::Tcp),
        Some(_) => None,
    }
}

/// A container known from the list call only, with the state the engine gave if the
/// models did not know it (the tolerant list blanked it).
fn from_listing(
    summary: &ContainerSummary,
    odd_states: &HashMap<String, String>,
) -> Option<Container> {
    from_summary(summary).map(|mut c| {
        if let Some(state) = summary.id.as_ref().and_then(|id| odd_states.get(id)) {
            c.state = ContainerState::Other(state.clone());
        }
        c
    })
}

/// A degraded record from the list call, used when inspect failed: the state and live
/// ports are still worth showing.
fn from_summary(summary: &ContainerSummary) -> Option<Container> {
    let id = summary.id.clone()?;
    let mut live = Vec::new();
    for p in summary.ports.iter().flatten() {
        let (Some(host_port), Some(ip)) = (p.public_port, p.ip.as_deref()) else {
            continue;
        };
        let Some(proto) = summary_proto(p) else {
            continue;
        };
        if let Ok(host_ip) = ip.parse() {
            live.push(LiveBinding {
                proto,
                container_port: p.private_port,
                host_ip,
                host_port,
            });
        }
    }
    let labels: BTreeMap<String, String> = summary
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let name = summary
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| short(&id).to_owned());
    let state = parse_state(&summary.state.map(|s| s.to_string()).unwrap_or_default());
    Some(Container {
        image: summary.image.clone().unwrap_or_default(),
        network_mode: summary
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.clone()),
        addresses: summary
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .map(endpoint_addresses)
            .unwrap_or_default(),
        labels,
        live,
        ..Container::new(id, name, state)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call that the engine answers after `after`.
    async fn answered_after<T>(after: Duration, value: T) -> Result<T, BollardError> {
        tokio::time::sleep(after).await;
        Ok(value)
    }

    #[test]
    fn a_busy_engine_is_waited_for_a_silent_one_is_not() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            // Never dialled: the calls below are stand-ins.
            let endpoint = Endpoint {
                url: "tcp://127.0.0.1:9".into(),
                source: "test".into(),
            };
            let bound = Duration::from_secs(5);
            let client = Client::connect(&endpoint, bound).unwrap();
            // Other calls are answered every 2 s while one waits 15 s for its answer.
            let others = async {
                for _ in 0..10 {
                    let tick = answered_after(Duration::from_secs(2), ());
                    client.patient(bound, tick).await.unwrap();
                }
            };
            let slow = client.patient(bound, answered_after(Duration::from_secs(15), 7));
            let ((), slow) = futures_util::future::join(others, slow).await;
            assert_eq!(slow.unwrap(), 7);

            // Nothing else answers: the same wait fails after the bound.
            let start = tokio::time::Instant::now();
            let silent = client
                .patient(bound, answered_after(Duration::from_secs(15), 7))
                .await;
            let err = silent.unwrap_err();
            assert_eq!(err, Error::TimedOut(bound));
            assert!(err.to_string().contains("did not answer within 5.0s"));
            assert_eq!(start.elapsed(), bound);
        });
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

    #[test]
    fn recorded_inspect_converts() {
        // Trimmed from a real Docker 20.10 inspect of `docker run -p 127.0.0.1:3002:80
        // -p 3010-3011:90-91 --network tnet`.
        let raw = include_str!("../../tests/data/inspect-t2.json");
        let detail: ContainerInspectResponse = serde_json::from_str(raw).unwrap();
        let c = convert(&detail).unwrap();
        assert_eq!(c.name, "t2");
        assert_eq!(c.state, ContainerState::Running);
        assert_eq!(c.addresses, vec!["172.18.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.restart_policy, Some(RestartPolicy::No));
        assert_eq!(c.network_mode.as_deref(), Some("tnet"));
        assert_eq!(c.live.len(), 5);
        assert!(c.live.contains(&LiveBinding {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 3002
        }));
        assert!(c.live.contains(&LiveBinding {
            proto: Proto::Tcp,
            container_port: 91,
            host_ip: "::".parse().unwrap(),
            host_port: 3011
        }));
        assert_eq!(c.requested.len(), 3);
        assert_eq!(c.requested[0].host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(c.requested[1].host_ip, None);
        assert_eq!(
            c.started_at.as_ref().map(Timestamp::as_str),
            Some("2026-11-25T13:51:37.889192638Z")
        );
        assert_eq!(c.finished_at, None, "zero time means never");
    }

    #[test]
    fn port_keys_and_host_port_ranges() {
        assert_eq!(parse_port_key("80/tcp"), Some((80, Proto::Tcp)));
        assert_eq!(parse_port_key("53/udp"), Some((53, Proto::Udp)));
        assert_eq!(parse_port_key("9/sctp"), None);
        assert_eq!(parse_host_ports(""), None);
        assert_eq!(
            parse_host_ports("8000-8100"),
            Some(PortRange {
                start: 8000,
                end: 8100
            })
        );
        assert_eq!(
            parse_host_ports("3000"),
            Some(PortRange {
                start: 3000,
                end: 3000
            })
        );
    }

    #[test]
    fn unknown_states_are_kept_not_fatal() {
        assert_eq!(parse_state("exited"), ContainerState::Exited);
        assert_eq!(
            inspected_state("running", Some(false)),
            ContainerState::Stopping
        );
        assert_eq!(
            inspected_state("running", Some(true)),
            ContainerState::Running
        );
        assert_eq!(
            inspected_state("paused", Some(true)),
            ContainerState::Paused
        );
        assert_eq!(
            parse_state("stopped"),
            ContainerState::Other("stopped".into())
        );
    }
}
