//! bollard's models into portreap's own: the boundary no bollard type crosses.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use bollard::models::{
    ContainerInspectResponse, ContainerSummary, EndpointSettings, PortBinding, PortMap, PortSummary,
};

use crate::model::{
    Container, ContainerState, Health, LiveBinding, Proto, RequestedBinding, RestartPolicy,
    Timestamp,
};
use crate::portspec::PortRange;

pub(super) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
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
        inspected: true,
        id,
    })
}

/// The protocol of a port in a list answer; `None` for the ones out of scope (sctp).
pub(super) fn summary_proto(port: &PortSummary) -> Option<Proto> {
    match port.typ.map(|t| t.to_string()).as_deref() {
        Some("udp") => Some(Proto::Udp),
        Some("tcp") | None => Some(Proto::Tcp),
        Some(_) => None,
    }
}

/// A container known from the list call only, with the state the engine gave if the
/// models did not know it (the tolerant list blanked it).
pub(super) fn from_listing(
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

/// A record from the list call alone (a container the view does not inspect, or one whose
/// inspect failed), with every fact the list gives: state, health (from the status words),
/// creation time, image, network mode, addresses, labels and live ports. What only the
/// inspect gives (requested bindings, start and exit facts, restart policy, main process)
/// stays unknown, and [`Container::inspected`] says so.
fn from_summary(summary: &ContainerSummary) -> Option<Container> {
    let id = summary.id.clone()?;
    let mut live: Vec<LiveBinding> = Vec::new();
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
    live.sort_by_key(|b| (b.host_port, b.proto, b.host_ip, b.container_port));
    live.dedup();
    let labels: BTreeMap<String, String> = summary
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    // A legacy link adds `/other/alias` beside the container's own `/name`.
    let names = summary.names.iter().flatten();
    let name = names
        .map(|n| n.trim_start_matches('/'))
        .find(|n| !n.contains('/'))
        .map(str::to_owned)
        .unwrap_or_else(|| short(&id).to_owned());
    let state = parse_state(&summary.state.map(|s| s.to_string()).unwrap_or_default());
    Some(Container {
        image: summary.image.clone().unwrap_or_default(),
        health: summary.status.as_deref().and_then(status_health),
        // Whole seconds; a zero or missing time is not known.
        created: summary
            .created
            .filter(|&t| t > 0)
            .and_then(Timestamp::from_unix),
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
        inspected: false,
        ..Container::new(id, name, state)
    })
}

/// The health a list status names: `(healthy)`, `(unhealthy)`, `(health: starting)`.
pub(super) fn status_health(status: &str) -> Option<Health> {
    let (_, rest) = status.split_once(" (")?;
    match rest.strip_suffix(')')? {
        "healthy" => Some(Health::Healthy),
        "unhealthy" => Some(Health::Unhealthy),
        "health: starting" => Some(Health::Starting),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    /// Every fact a list answer gives reaches the record built from it: the default view
    /// takes settled containers from the list alone, and the age guards, the protections
    /// and the rules read these (the creation time was once dropped, and every settled
    /// container counted as 0 s old).
    #[test]
    fn a_listed_container_keeps_every_fact_the_list_gives() {
        // A real Docker 20.10 list entry of `docker run -p 127.0.0.1:3002:80 -l ...
        // --health-cmd true`, trimmed of the network's ids.
        let summary: ContainerSummary = serde_json::from_value(serde_json::json!({
            "Id": "e639e3505370b530d23c565855cc6f0a3c6c61e29ebb89a1afb9d053c1581b26",
            "Names": ["/t-list"],
            "Image": "portreap-test-busybox:1",
            "Command": "httpd -f -p 80",
            "Created": 1_796_697_677,
            "Ports": [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 3002, "Type": "tcp"}],
            "Labels": {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"},
            "State": "running",
            "Status": "Up 3 hours (healthy)",
            "HostConfig": {"NetworkMode": "default"},
            "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}},
            "Mounts": []
        }))
        .unwrap();
        let c = from_listing(&summary, &HashMap::new()).unwrap();
        assert!(!c.inspected);
        assert_eq!(c.name, "t-list");
        assert_eq!(c.image, "portreap-test-busybox:1");
        assert_eq!(c.state, ContainerState::Running);
        assert_eq!(c.health, Some(Health::Healthy));
        assert_eq!(
            c.created.as_ref().map(Timestamp::as_str),
            Some("2026-12-08T02:41:17Z"),
            "the engine's inspect said 2026-12-08T02:41:17.063467535Z"
        );
        assert_eq!(c.created.as_ref().map(Timestamp::unix), Some(1_796_697_677));
        assert_eq!(c.network_mode.as_deref(), Some("default"));
        assert_eq!(c.addresses, ["172.17.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.compose_project(), Some("shop"));
        assert_eq!(c.compose_service(), Some("web"));
        assert_eq!(
            c.live,
            [LiveBinding {
                proto: Proto::Tcp,
                container_port: 80,
                host_ip: "127.0.0.1".parse().unwrap(),
                host_port: 3002
            }]
        );
        // What only the inspect gives stays unknown, never a value.
        assert_eq!((c.started_at, c.restart_policy, c.pid), (None, None, None));
        // A missing or zero creation time is not known.
        for created in [serde_json::json!(0), serde_json::Value::Null] {
            let mut raw = serde_json::to_value(&summary).unwrap();
            raw["Created"] = created;
            let s: ContainerSummary = serde_json::from_value(raw).unwrap();
            assert_eq!(from_listing(&s, &HashMap::new()).unwrap().created, None);
        }
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
