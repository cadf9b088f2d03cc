//! Processes that lie about who they are, engines that may not judge each other's
//! forwarders, and forwarders never acted on.

use super::*;
use crate::analyze::ownership::{NoneLocal, NotAsked, Unjudged};

#[test]
fn conmon_is_judged_only_against_a_podman_engine() {
    let id = ID_WEB;
    let host = || {
        Host::new()
            .process(2, "podman", "podman system service --time=0", None)
            .process(
                60,
                "conmon",
                &format!("/usr/bin/conmon --api-version 1 -c {id} -u {id} -n web"),
                None,
            )
            .socket(Proto::Tcp, "0.0.0.0", 3801, &[60])
    };
    let mut web = bare_container(id, "web", ContainerState::Running, Some("10.88.0.4"));
    publish(&mut web, Proto::Tcp, "0.0.0.0", 3801, 80);

    // Podman, container running: attributed, no finding.
    let mut snap = snapshot(host(), vec![web.clone()]);
    snap.engine.kind = Some(crate::model::EngineKind::Podman);
    let a = analyze(&snap);
    assert_eq!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 3801),
        Owner::Container {
            index: 0,
            via: Via::Conmon
        }
    );
    assert_eq!(kinds(&a), vec![]);

    // Podman, container stopping: the conmon outlived it.
    web.state = ContainerState::Stopping;
    let mut snap = snapshot(host(), vec![web.clone()]);
    snap.engine.kind = Some(crate::model::EngineKind::Podman);
    let a = analyze(&snap);
    assert_eq!(kinds(&a), vec![Kind::OrphanedProxy]);
    assert_eq!(a.findings[0].pids, vec![60]);
    assert_eq!(
        a.findings[0].evidence,
        Evidence::ConmonTarget {
            container_id: ID_WEB.into(),
            state: Some(ContainerState::Stopping)
        }
    );
    assert!(a.findings[0]
        .reason
        .contains("conmon pid 60 holds 0.0.0.0:3801 for Podman container web, which is stopping"));
    assert!(
        a.ports.iter().all(|p| !matches!(
            p.owner,
            Owner::Container {
                via: Via::Reservation,
                ..
            }
        )),
        "a Podman container that does not run reserves nothing: {:?}",
        a.ports
    );

    // A conmon of another Podman engine of the same user (one in a chroot, its own mount
    // namespace): this engine's stopping container does not make it orphaned.
    let mut snap = snapshot(
        host().edit(60, |p| p.mnt_ns = Some(HOST_MNT_NS + 7)),
        vec![web.clone()],
    );
    snap.engine.kind = Some(crate::model::EngineKind::Podman);
    let a = analyze(&snap);
    assert_eq!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 3801),
        Owner::NotJudged {
            reason: Unjudged::ConmonElsewhere { pid: 60, uid: 0 }
        }
    );
    assert_eq!(kinds(&a), vec![]);

    // Docker queried: the conmon is named but never judged.
    let mut snap = snapshot(host(), vec![]);
    snap.engine.kind = Some(crate::model::EngineKind::Docker);
    let a = analyze(&snap);
    assert!(matches!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 3801),
        Owner::NotJudged {
            reason: Unjudged::ConmonEngineNotAsked { pid: 60, uid: 0, engine }
        } if engine.kind == crate::model::EngineKind::Podman
    ));
    assert_eq!(kinds(&a), vec![]);

    // A Podman engine of another user (rootless) cannot judge root's conmon.
    let mut snap = snapshot(host(), vec![]);
    snap.engine.kind = Some(crate::model::EngineKind::Podman);
    snap.engine.uid = Some(1000);
    let a = analyze(&snap);
    assert!(matches!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 3801),
        Owner::NotJudged {
            reason: Unjudged::ConmonEngineNotAsked {
                pid: 60,
                uid: 0,
                ..
            }
        }
    ));
    assert_eq!(kinds(&a), vec![]);
}

#[test]
fn desktop_forwarders_are_attributed_and_never_acted_on() {
    // Docker Desktop for Linux: com.docker.backend holds the published port on the host.
    let mut web = bare_container(ID_WEB, "web", ContainerState::Paused, Some("192.168.65.3"));
    publish(&mut web, Proto::Tcp, "0.0.0.0", 3000, 80);
    let host = Host::new()
        .process(
            70,
            "com.docker.back",
            "/opt/docker-desktop/bin/com.docker.backend",
            None,
        )
        .socket(Proto::Tcp, "0.0.0.0", 3000, &[70])
        .socket(Proto::Tcp, "0.0.0.0", 4000, &[70])
        .process(
            71,
            "rootlesskit",
            "rootlesskit --port-driver=builtin dockerd-rootless.sh",
            None,
        )
        .socket(Proto::Tcp, "0.0.0.0", 5000, &[71]);
    let a = analyze(&snapshot(host, vec![web]));
    assert_eq!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 3000),
        Owner::Container {
            index: 0,
            via: Via::Forwarder
        }
    );
    assert_eq!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 4000),
        Owner::Forwarder {
            product: "Docker Desktop"
        }
    );
    assert_eq!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 5000),
        Owner::Forwarder {
            product: "rootless Docker"
        }
    );
    // The paused container's finding targets the container, never the forwarder.
    assert_eq!(kinds(&a), vec![Kind::PausedContainer]);
    assert!(a.findings[0].pids.is_empty());
    let p = &Host::new()
        .process(
            70,
            "com.docker.back",
            "/opt/docker-desktop/bin/com.docker.backend",
            None,
        )
        .0
        .processes[&70];
    assert!(findings::never_act(p)
        .unwrap()
        .contains("forwards ports for Docker Desktop"));
}

/// A named change to a process's facts.
type Change = (&'static str, fn(&mut Process));

#[test]
fn a_process_that_only_calls_itself_docker_proxy_is_an_ordinary_process() {
    // An unprivileged user's program, named docker-proxy, claiming the victim's target.
    let spoof = |host: Host, f: fn(&mut Process)| {
        host.proxy(40, Proto::Tcp, "0.0.0.0", 4000, "172.17.0.2", 80)
            .edit(40, |p| p.ppid = 900)
            .edit(40, f)
    };
    let cases: [Change; 4] = [
        ("its own program", |p| {
            p.uid = Some(1000);
            p.exe.as_mut().unwrap().path = "/home/eve/docker-proxy".into();
            p.exe.as_mut().unwrap().owner = 1000;
        }),
        ("the real binary, run as a user", |p| p.uid = Some(1000)),
        ("a script (python named by prctl)", |p| {
            p.uid = Some(1000);
            p.exe.as_mut().unwrap().path = "/usr/bin/python3.11".into();
        }),
        ("an unreadable executable", |p| p.exe = None),
    ];
    for (what, f) in cases {
        let (web, host) = victim();
        let a = analyze(&snapshot(spoof(host, f), vec![web]));
        let entry = a.ports.iter().find(|p| p.port == 4000).unwrap();
        assert_eq!(entry.owner, Owner::Process, "{what}");
        let note = entry.note.as_deref().unwrap_or_default();
        assert!(
            note.starts_with("calls itself docker-proxy, but "),
            "{what}: {note}"
        );
        assert!(kinds(&a).is_empty(), "{what}: {:?}", a.findings);
        // The victim keeps its own port and nothing else.
        assert_eq!(
            owner_of(&a, Proto::Tcp, "0.0.0.0", 3000),
            Owner::Container {
                index: 0,
                via: Via::DockerProxy
            },
            "{what}"
        );
    }
}

#[test]
fn a_user_process_named_dockerd_is_not_the_engine() {
    let host = Host::new()
        .process(41, "dockerd", "dockerd", None)
        .edit(41, |p| {
            p.uid = Some(1000);
            p.exe.as_mut().unwrap().owner = 1000;
        })
        .socket(Proto::Tcp, "0.0.0.0", 3999, &[41]);
    let mut host = host;
    host.0.engines.clear();
    let a = analyze(&snapshot(host, vec![]));
    assert_eq!(owner_of(&a, Proto::Tcp, "0.0.0.0", 3999), Owner::Process);
    assert!(kinds(&a).is_empty(), "{:?}", a.findings);
}

#[test]
fn a_cgroup_path_alone_does_not_make_a_host_network_process() {
    let mut hostnet = bare_container(ID_HOSTNET, "hostnet", ContainerState::Running, None);
    hostnet.network_mode = Some("host".into());
    hostnet.pid = Some(20);
    let host = Host::new()
        .process(20, "sh", "sh", Some(ID_HOSTNET))
        .edit(20, |p| p.pid_ns = Some(77))
        // A user's process placed in a cgroup named after the container.
        .process(21, "httpd", "httpd -p 3021", Some(ID_HOSTNET))
        .edit(21, |p| p.uid = Some(1000))
        .socket(Proto::Tcp, "0.0.0.0", 3021, &[21])
        // The container's own worker: its PID namespace.
        .process(22, "httpd", "httpd -p 3022", Some(ID_HOSTNET))
        .edit(22, |p| p.pid_ns = Some(77))
        .socket(Proto::Tcp, "0.0.0.0", 3022, &[22])
        // With --pid=host the namespace tells nothing; descent from the main process does.
        .process(23, "httpd", "httpd -p 3023", Some(ID_HOSTNET))
        .edit(23, |p| p.ppid = 20)
        .socket(Proto::Tcp, "0.0.0.0", 3023, &[23]);
    let a = analyze(&snapshot(host, vec![hostnet.clone()]));
    assert_eq!(owner_of(&a, Proto::Tcp, "0.0.0.0", 3021), Owner::Process);
    let inside = Owner::Container {
        index: 0,
        via: Via::HostNetwork,
    };
    assert_eq!(owner_of(&a, Proto::Tcp, "0.0.0.0", 3022), inside);
    assert_eq!(owner_of(&a, Proto::Tcp, "0.0.0.0", 3023), inside);
    // Not a host-network container: its cgroup's processes hold no host port for it.
    hostnet.network_mode = Some("bridge".into());
    let host = Host::new()
        .process(20, "httpd", "httpd -p 3020", Some(ID_HOSTNET))
        .socket(Proto::Tcp, "0.0.0.0", 3020, &[20]);
    let a = analyze(&snapshot(host, vec![hostnet]));
    assert_eq!(owner_of(&a, Proto::Tcp, "0.0.0.0", 3020), Owner::Process);
}

#[test]
fn another_engines_proxies_are_never_judged_by_this_one() {
    // Engine 5 asked, engine 9 (a second dockerd) not: 9's proxy and its engine-held
    // socket forward to an address engine 5 does not know.
    let (web, host) = victim();
    let host = host
        .process(
            9,
            "dockerd",
            "/usr/sbin/dockerd --host unix:///run/second.sock",
            None,
        )
        .proxy(90, Proto::Tcp, "0.0.0.0", 5000, "10.229.0.2", 80)
        .edit(90, |p| p.ppid = 9)
        .socket(Proto::Tcp, "0.0.0.0", 5001, &[9]);
    let snap = snapshot(host, vec![web]);
    let a = analyze(&snap);
    for port in [5000, 5001] {
        match owner_of(&a, Proto::Tcp, "0.0.0.0", port) {
            Owner::NotJudged { reason } => {
                let engine = NotAsked {
                    kind: crate::model::EngineKind::Docker,
                    pid: 9,
                    socket: Some("unix:///run/engine-9.sock".into()),
                };
                assert_eq!(reason, Unjudged::EngineNotAsked(engine));
                assert!(
                    reason.to_string().contains("the Docker engine pid 9 at unix:///run/engine-9.sock, which was not asked: add --all-engines or --host unix:///run/engine-9.sock"),
                    "{reason}"
                );
            }
            other => panic!("{port}: {other:?}"),
        }
    }
    assert!(kinds(&a).is_empty(), "{:?}", a.findings);

    // Both asked: each proxy is judged against its own engine's containers only. Engine
    // 9's container has the very target engine 5's proxy names: it is no owner of it.
    let mut snap = snap;
    snap.engines.push(crate::model::EngineStatus {
        reachable: true,
        kind: Some(crate::model::EngineKind::Docker),
        process: Some(9),
        uid: Some(0),
        ..Default::default()
    });
    let mut other = bare_container(
        ID_HOSTNET,
        "other",
        ContainerState::Running,
        Some("10.229.0.2"),
    );
    publish(&mut other, Proto::Tcp, "0.0.0.0", 5000, 80);
    other.engine = 1;
    let mut twin = other.clone();
    twin.id = "c".repeat(64);
    twin.name = "twin".into();
    twin.addresses = vec![ip("172.17.0.2")];
    twin.live = snap.containers[0].live.clone();
    snap.containers.push(other);
    snap.containers.push(twin);
    // The victim is removed from engine 5's list: its proxy is now an orphan of engine 5,
    // even though engine 9 has a container with the same address and binding.
    snap.containers.remove(0);
    let a = analyze(&snap);
    assert_eq!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 5000),
        Owner::Container {
            index: 0,
            via: Via::DockerProxy
        }
    );
    assert!(matches!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 3000),
        Owner::Proxy { .. }
    ));
    let orphans: Vec<&Finding> = a
        .findings
        .iter()
        .filter(|f| f.kind == Kind::OrphanedProxy)
        .collect();
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    assert_eq!(orphans[0].pids, vec![10]);
}

#[test]
fn an_engine_not_proven_local_judges_no_local_forwarder_and_reserves_nothing() {
    let mut web = bare_container(ID_WEB, "web", ContainerState::Running, Some("172.17.0.9"));
    publish(&mut web, Proto::Tcp, "0.0.0.0", 3300, 80);
    // A proxy with no engine parent (the classic leak), and a socket with no visible
    // owner on the remote container's port.
    let host = Host::new()
        .proxy(10, Proto::Tcp, "0.0.0.0", 3105, "172.17.0.250", 80)
        .socket(Proto::Tcp, "0.0.0.0", 3300, &[]);
    let mut snap = snapshot(host, vec![web]);
    snap.engine.endpoint = "tcp://127.0.0.1:2399".into();
    snap.engine.process = None;
    snap.engine.locality = Some("no local engine process holds the listening socket".into());
    let a = analyze(&snap);
    match owner_of(&a, Proto::Tcp, "0.0.0.0", 3105) {
        Owner::NotJudged { reason } => {
            let none_local = NoneLocal(vec![(
                "tcp://127.0.0.1:2399".into(),
                Some("no local engine process holds the listening socket".into()),
            )]);
            assert!(
                matches!(&reason, Unjudged::ProxyWithoutEngine { none_local: n, .. } if *n == none_local),
                "{reason:?}"
            );
            assert!(
                reason.to_string().contains("no engine parent, and no engine asked is proven to run on this host (tcp://127.0.0.1:2399: no local engine process"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 3300),
        Owner::Unknown { .. }
    ));
    assert!(kinds(&a).is_empty(), "{:?}", a.findings);
    // Proven local: the classic leak again.
    snap.engine.process = Some(ENGINE_PID);
    assert_eq!(kinds(&analyze(&snap)), vec![Kind::OrphanedProxy]);
}
