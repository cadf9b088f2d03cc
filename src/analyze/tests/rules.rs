//! The finding rules, one kind at a time.

use super::*;

#[test]
fn a_healthy_published_container_has_no_finding() {
    let mut web = running_web(3000);
    web.health = crate::model::Health::parse("healthy");
    web.restart_policy = crate::model::RestartPolicy::parse("always");
    web.restart_count = 10;
    web.started_at = crate::model::Timestamp::parse("2026-11-25T10:00:00Z");
    let mut snap = snapshot(proxied(3000), vec![web]);
    snap.taken_at = Some(1_795_614_697);
    let a = analyze(&snap);
    assert_eq!(kinds(&a), vec![]);
    assert!(a.ports.iter().all(|p| p.findings.is_empty()));
}

#[test]
fn both_proxies_of_a_dead_binding_make_one_orphaned_proxy_finding() {
    let host = Host::new()
        .proxy(10, Proto::Udp, "0.0.0.0", 5353, "172.17.0.250", 53)
        .proxy(11, Proto::Udp, "::", 5353, "172.17.0.250", 53);
    let a = analyze(&snapshot(host, vec![]));
    assert_eq!(kinds(&a), vec![Kind::OrphanedProxy]);
    let f = &a.findings[0];
    assert_eq!(f.pids, vec![10, 11]);
    assert_eq!(f.ports.len(), 2);
    assert_eq!(f.action, Action::KillProcess);
    assert_eq!(
        f.evidence,
        Evidence::ProxyTarget {
            to: Some("172.17.0.250:53".parse().unwrap()),
            now_at: None
        }
    );
    assert!(
        f.reason.contains(
            "docker-proxy pid 10, 11 forwards 0.0.0.0:5353 and [::]:5353 to 172.17.0.250:53"
        ),
        "{}",
        f.reason
    );
    assert!(a
        .ports
        .iter()
        .all(|p| p.findings == vec![Kind::OrphanedProxy]));
}

#[test]
fn proxies_are_not_judged_without_the_engines_whole_answer() {
    let host = || Host::new().proxy(10, Proto::Tcp, "0.0.0.0", 3000, "172.17.0.2", 80);
    let mut snap = snapshot(host(), vec![]);
    snap.engine.reachable = false;
    let a = analyze(&snap);
    assert_eq!(
        kinds(&a),
        vec![],
        "engine unreachable: the proxy may well be in use"
    );
    assert!(matches!(a.ports[0].owner, Owner::NotJudged { .. }));
    let mut snap = snapshot(host(), vec![]);
    snap.engine.error = Some("cannot inspect container 0123456789ab: timeout".into());
    assert_eq!(kinds(&analyze(&snap)), vec![]);
    let host = Host::new().process(5, "dockerd", "dockerd", None).socket(
        Proto::Tcp,
        "0.0.0.0",
        3999,
        &[5],
    );
    let mut snap = snapshot(host, vec![]);
    snap.engine.reachable = false;
    assert_eq!(kinds(&analyze(&snap)), vec![]);
}

#[test]
fn never_act_list_turns_a_kill_into_none() {
    // A docker-proxy that is PID 1 (say, inside a container sharing the host network).
    let mut host = Host::new().proxy(1, Proto::Tcp, "0.0.0.0", 3105, "172.17.0.250", 80);
    host.0.processes.get_mut(&1).unwrap().pid = 1;
    let a = analyze(&snapshot(host, vec![]));
    assert_eq!(a.findings[0].action, Action::None);
    assert!(a.findings[0]
        .reason
        .contains("pid 1 (docker-proxy) is never signalled"));
    for name in [
        "dockerd",
        "containerd",
        "containerd-shim-runc-v2",
        "rootlesskit",
        "vpnkit",
        "com.docker.backend",
    ] {
        let p = Process {
            pid: 77,
            name: name.into(),
            ..Process::default()
        };
        assert!(findings::never_act(&p).is_some(), "{name}");
    }
    let p = Process {
        pid: 77,
        name: "docker-proxy".into(),
        ..Process::default()
    };
    assert!(findings::never_act(&p).is_none());
}

#[test]
fn container_state_rules() {
    type Expected = Option<(Kind, fn(&Evidence) -> bool)>;
    let cases: [(ContainerState, Option<&str>, Option<&str>, Expected); 9] = [
        (
            ContainerState::Paused,
            None,
            None,
            Some((Kind::PausedContainer, |e| {
                // Both proxies listen: the ports hang, none is a bare reservation.
                matches!(e, Evidence::Paused { open, reserved } if open.len() == 2 && reserved.is_empty())
            })),
        ),
        (
            ContainerState::Running,
            Some("unhealthy"),
            None,
            Some((Kind::UnhealthyContainer, |e| {
                *e == Evidence::Unhealthy { failing_streak: 0 }
            })),
        ),
        (ContainerState::Running, Some("starting"), None, None),
        (
            ContainerState::Restarting,
            None,
            None,
            Some((Kind::RestartingContainer, |e| {
                matches!(e, Evidence::Restarting { now: true, .. })
            })),
        ),
        (
            ContainerState::Dead,
            None,
            None,
            Some((Kind::DeadContainer, |e| *e == Evidence::Dead)),
        ),
        (
            ContainerState::Exited,
            None,
            Some("always"),
            Some((Kind::DormantBinding, |e| *e == Evidence::Dormant)),
        ),
        (ContainerState::Exited, None, Some("unless-stopped"), None),
        (ContainerState::Exited, None, None, None),
        (ContainerState::Created, None, None, None),
    ];
    for (state, health, policy, expected) in cases {
        let mut c = running_web(3000);
        c.state = state.clone();
        c.health = health.and_then(crate::model::Health::parse);
        c.restart_policy = policy.and_then(crate::model::RestartPolicy::parse);
        if !matches!(state, ContainerState::Running | ContainerState::Paused) {
            c.live.clear();
            c.addresses.clear();
            c.requested = vec![asks_for(3000)];
        }
        let host = if matches!(state, ContainerState::Running | ContainerState::Paused) {
            proxied(3000)
        } else {
            Host::new()
        };
        let a = analyze(&snapshot(host, vec![c]));
        assert_eq!(
            kinds(&a),
            expected.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            "{state:?} {health:?} {policy:?}"
        );
        if let Some((kind, evidence)) = expected {
            assert!(evidence(&a.findings[0].evidence), "{:?}", a.findings[0]);
            assert_ne!(kind.severity(), findings::Severity::Info);
            assert_eq!(a.findings[0].action, Action::RemoveContainer);
            // The finding shows on the container's port, held or not.
            assert!(
                a.ports
                    .iter()
                    .any(|p| p.port == 3000 && p.findings.contains(&kind)),
                "{:?}",
                a.ports
            );
        }
    }
}

#[test]
fn a_container_without_ports_is_not_a_port_leak() {
    let mut c = bare_container(ID_WEB, "worker", ContainerState::Paused, Some("172.17.0.2"));
    c.restart_policy = crate::model::RestartPolicy::parse("always");
    let a = analyze(&snapshot(Host::new(), vec![c.clone()]));
    assert_eq!(kinds(&a), vec![]);
    c.state = ContainerState::Dead;
    assert_eq!(kinds(&analyze(&snapshot(Host::new(), vec![c]))), vec![]);
}

#[test]
fn a_crash_loop_caught_while_briefly_up_is_restarting() {
    let mut c = running_web(3000);
    c.restart_policy = crate::model::RestartPolicy::parse("always");
    c.restart_count = 4;
    c.started_at = crate::model::Timestamp::parse("2026-11-25T13:51:30Z");
    let mut snap = snapshot(proxied(3000), vec![c.clone()]);
    snap.taken_at = Some(1_795_614_697); // 13:51:37
    assert_eq!(kinds(&analyze(&snap)), vec![Kind::RestartingContainer]);
    // Up for an hour after four restarts long ago: not a loop.
    c.started_at = crate::model::Timestamp::parse("2026-11-25T12:51:30Z");
    snap.containers = vec![c];
    assert_eq!(kinds(&analyze(&snap)), vec![]);
}

#[test]
fn blocked_start_names_the_current_holder() {
    let mut holder = running_web(3000);
    holder.name = "holder".into();
    let mut blocked = bare_container(ID_HOSTNET, "blocked", ContainerState::Created, None);
    blocked.requested.push(asks_for(3000));
    blocked.error = Some("driver failed programming external connectivity on endpoint blocked (abc): Bind for 0.0.0.0:3000 failed: port is already allocated".into());
    let a = analyze(&snapshot(proxied(3000), vec![holder, blocked]));
    assert_eq!(kinds(&a), vec![Kind::BlockedStart]);
    let f = &a.findings[0];
    assert_eq!(f.action, Action::None);
    assert_eq!(
        f.evidence,
        Evidence::BlockedStart {
            port: 3000,
            now: findings::PortNow::Held
        }
    );
    assert!(f.reason.contains("could not start: \"Bind for 0.0.0.0:3000 failed: port is already allocated\"; port 3000 is now held by container holder"), "{}", f.reason);
    // The holder's own entries carry no finding; the blocked container gets a row.
    for p in &a.ports {
        match p.owner {
            Owner::Container { index: 0, .. } => assert!(p.findings.is_empty()),
            Owner::Container { index: 1, via } => {
                assert_eq!(via, Via::Requested);
                assert_eq!(p.findings, vec![Kind::BlockedStart]);
            }
            _ => panic!("{p:?}"),
        }
    }
}

/// A squatter on a `--restart always` container's port makes its restart fail: the
/// container is the squatter's victim, never dormant nor crash-looping (both would have a
/// cron `prune --include-suspects` remove it), whatever its policy.
#[test]
fn a_container_whose_port_was_taken_is_a_victim_not_a_suspect() {
    let squatter = || {
        Host::new()
            .process(90, "python3", "python3 squat.py", None)
            .socket(Proto::Tcp, "0.0.0.0", 3000, &[90])
    };
    for state in [ContainerState::Exited, ContainerState::Restarting] {
        let mut victim = bare_container(ID_HOSTNET, "victim", state.clone(), None);
        victim.requested.push(asks_for(3000));
        victim.restart_policy = crate::model::RestartPolicy::parse("always");
        victim.restart_count = 5;
        victim.error = Some(
            "driver failed programming external connectivity on endpoint victim (abc): Error starting userland proxy: listen tcp4 0.0.0.0:3000: bind: address already in use"
                .into(),
        );
        let a = analyze(&snapshot(squatter(), vec![victim.clone()]));
        assert!(
            a.findings.iter().all(|f| f.action == Action::None),
            "{state}: {:?}",
            kinds(&a)
        );
        if state == ContainerState::Exited {
            assert_eq!(kinds(&a), vec![Kind::BlockedStart]);
        }
        // Without the error, the same container is a suspect.
        victim.error = None;
        let a = analyze(&snapshot(squatter(), vec![victim]));
        assert!(
            kinds(&a)
                .iter()
                .any(|k| matches!(k, Kind::DormantBinding | Kind::RestartingContainer)),
            "{state}: {:?}",
            kinds(&a)
        );
    }
}

#[test]
fn start_errors_are_parsed() {
    use findings::port_conflict;
    assert_eq!(
        port_conflict(
            "Error starting userland proxy: listen tcp4 0.0.0.0:3105: bind: address already in use"
        ),
        Some((Some(Proto::Tcp), Some(ip("0.0.0.0")), 3105))
    );
    assert_eq!(
        port_conflict("Bind for [::]:53 failed: port is already allocated"),
        Some((None, Some(ip("::")), 53))
    );
    assert_eq!(
        port_conflict("listen udp6 [::]:53: bind: address already in use").map(|c| c.0),
        Some(Some(Proto::Udp))
    );
    // Docker 28.5, recorded: an IPv6 host address without brackets.
    assert_eq!(
        port_conflict("driver failed programming external connectivity on endpoint prt-28569-blockedbyreserve-2 (1a138d9d5b65): Bind for :::37912 failed: port is already allocated"),
        Some((None, Some(ip("::")), 37912))
    );
    // Docker 28.5, recorded: the engine binds the host port itself.
    assert_eq!(
        port_conflict("failed to set up container networking: driver failed programming external connectivity on endpoint prt-28231-behindproxy-11 (1f53b992a872): failed to bind host port for 0.0.0.0:21297:10.230.0.2:80/tcp: address already in use"),
        Some((Some(Proto::Tcp), Some(ip("0.0.0.0")), 21297))
    );
    assert_eq!(
        port_conflict(
            "failed to bind host port for [::]:5353:[fd00::2]:53/udp: address already in use"
        ),
        Some((Some(Proto::Udp), Some(ip("::")), 5353))
    );
    assert_eq!(
        port_conflict("failed to bind host port for garbage: address already in use"),
        None
    );
    assert_eq!(
        port_conflict("OCI runtime create failed: no such file"),
        None
    );
    assert_eq!(port_conflict(""), None);
}

#[test]
fn engine_held_socket_without_container_is_a_reservation_but_api_ports_are_not() {
    let host = Host::new()
        .process(
            5,
            "dockerd",
            "/usr/sbin/dockerd -H unix:///var/run/docker.sock -H tcp://0.0.0.0:2385",
            None,
        )
        .socket(Proto::Tcp, "0.0.0.0", 3999, &[5])
        .socket(Proto::Tcp, "0.0.0.0", 2385, &[5])
        .socket(Proto::Tcp, "0.0.0.0", 2377, &[5]);
    let a = analyze(&snapshot(host, vec![]));
    assert_eq!(kinds(&a), vec![Kind::EngineReservation]);
    assert_eq!(a.findings[0].ports[0].port, 3999);
    assert_eq!(a.findings[0].action, Action::None);
    assert_eq!(a.findings[0].evidence, Evidence::EngineSocket);
}

#[test]
fn an_engine_held_socket_of_a_paused_container_gets_the_containers_finding() {
    let mut web = running_web(3000);
    web.state = ContainerState::Paused;
    let host = Host::new()
        .process(
            5,
            "dockerd",
            "/usr/sbin/dockerd --userland-proxy=false",
            None,
        )
        .socket(Proto::Tcp, "0.0.0.0", 3000, &[5]);
    let a = analyze(&snapshot(host, vec![web]));
    assert_eq!(kinds(&a), vec![Kind::PausedContainer]);
    assert_eq!(a.findings[0].action, Action::RemoveContainer);
    assert!(a.findings[0].pids.is_empty(), "dockerd is never a target");
}
