//! Each kind of holder attributed to its owner.

use super::*;

#[test]
fn both_proxies_of_a_binding_belong_to_the_one_container() {
    let mut web = bare_container(ID_WEB, "web", ContainerState::Running, Some("172.17.0.2"));
    publish(&mut web, Proto::Tcp, "0.0.0.0", 3000, 80);
    publish(&mut web, Proto::Tcp, "::", 3000, 80);
    publish(&mut web, Proto::Udp, "0.0.0.0", 3001, 81);
    let host = Host::new()
        .proxy(10, Proto::Tcp, "0.0.0.0", 3000, "172.17.0.2", 80)
        .proxy(11, Proto::Tcp, "::", 3000, "172.17.0.2", 80)
        .proxy(12, Proto::Udp, "0.0.0.0", 3001, "172.17.0.2", 81);
    let a = analyze(&snapshot(host, vec![web]));
    let expected = Owner::Container {
        index: 0,
        via: Via::DockerProxy,
    };
    assert_eq!(owner_of(&a, Proto::Tcp, "0.0.0.0", 3000), expected);
    assert_eq!(owner_of(&a, Proto::Tcp, "::", 3000), expected);
    assert_eq!(owner_of(&a, Proto::Udp, "0.0.0.0", 3001), expected);
    assert_eq!(a.ports.len(), 3, "no reservation entries: {:?}", a.ports);
    assert!(a
        .ports
        .iter()
        .all(|p| p.bound && p.process.as_deref() == Some("docker-proxy")));
    // Sorted: IPv4 before IPv6 on the same port.
    assert_eq!(a.ports[0].ip, ip("0.0.0.0"));
    assert_eq!(a.ports[1].ip, ip("::"));
}

#[test]
fn a_proxy_whose_address_was_reused_is_not_attributed() {
    // 172.17.0.2 now belongs to a container that publishes a different port.
    let mut other = bare_container(ID_WEB, "other", ContainerState::Running, Some("172.17.0.2"));
    publish(&mut other, Proto::Tcp, "0.0.0.0", 4000, 80);
    let host = Host::new()
        .proxy(10, Proto::Tcp, "0.0.0.0", 3000, "172.17.0.2", 80)
        .proxy(11, Proto::Tcp, "0.0.0.0", 4000, "172.17.0.2", 80);
    let a = analyze(&snapshot(host, vec![other]));
    match owner_of(&a, Proto::Tcp, "0.0.0.0", 3000) {
        Owner::Proxy { target: Some(t) } => {
            assert_eq!((t.container_ip, t.container_port), (ip("172.17.0.2"), 80))
        }
        o => panic!("expected an unattributed proxy, got {o:?}"),
    }
    assert!(matches!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 4000),
        Owner::Container { index: 0, .. }
    ));
}

#[test]
fn host_network_process_belongs_to_its_container() {
    let mut hostnet = bare_container(ID_HOSTNET, "hostnet", ContainerState::Running, None);
    hostnet.network_mode = Some("host".into());
    hostnet.pid = Some(20);
    let host = Host::new()
        .process(20, "httpd", "httpd -f -p 3020", Some(ID_HOSTNET))
        .socket(Proto::Tcp, "::", 3020, &[20]);
    let a = analyze(&snapshot(host, vec![hostnet]));
    assert_eq!(
        owner_of(&a, Proto::Tcp, "::", 3020),
        Owner::Container {
            index: 0,
            via: Via::HostNetwork
        }
    );
    assert!(a.ports[0].involves_docker());
}

#[test]
fn plain_processes_are_processes_and_not_docker_related() {
    let host = Host::new()
        .process(30, "sshd", "/usr/sbin/sshd -D", None)
        .socket(Proto::Tcp, "0.0.0.0", 22, &[30])
        .socket(Proto::Tcp, "::", 22, &[30]);
    let a = analyze(&snapshot(host, vec![]));
    assert_eq!(owner_of(&a, Proto::Tcp, "0.0.0.0", 22), Owner::Process);
    assert_eq!(a.ports[0].process.as_deref(), Some("sshd"));
    assert!(a.ports.iter().all(|p| !p.involves_docker()));
}

#[test]
fn engine_held_sockets_without_userland_proxy() {
    // dockerd --userland-proxy=false: one 0.0.0.0 socket per port, none for ::.
    let mut web = bare_container(ID_WEB, "web", ContainerState::Running, Some("172.17.0.2"));
    publish(&mut web, Proto::Tcp, "0.0.0.0", 3000, 80);
    publish(&mut web, Proto::Tcp, "::", 3000, 80);
    let host = Host::new()
        .process(
            5,
            "dockerd",
            "/usr/sbin/dockerd --userland-proxy=false",
            None,
        )
        .socket(Proto::Tcp, "0.0.0.0", 3000, &[5])
        .socket(Proto::Tcp, "0.0.0.0", 3999, &[5]);
    let a = analyze(&snapshot(host, vec![web]));
    assert_eq!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 3000),
        Owner::Container {
            index: 0,
            via: Via::Engine
        }
    );
    assert_eq!(owner_of(&a, Proto::Tcp, "0.0.0.0", 3999), Owner::Engine);
    assert!(
        a.ports.iter().all(|p| p.bound),
        "the :: binding is backed by the engine's socket: {:?}",
        a.ports
    );
}

#[test]
fn a_binding_without_a_socket_is_a_reservation() {
    // After dockerd was killed, an exited container still lists its old binding.
    let mut old = bare_container(ID_WEB, "old", ContainerState::Exited, None);
    publish(&mut old, Proto::Tcp, "0.0.0.0", 3105, 80);
    let a = analyze(&snapshot(Host::new(), vec![old]));
    assert_eq!(a.ports.len(), 1);
    assert!(!a.ports[0].bound);
    assert_eq!(
        a.ports[0].owner,
        Owner::Container {
            index: 0,
            via: Via::Reservation
        }
    );
}

#[test]
fn unreadable_owner_falls_back_to_the_engine_binding_or_says_why() {
    let mut web = bare_container(ID_WEB, "web", ContainerState::Running, Some("172.17.0.2"));
    publish(&mut web, Proto::Tcp, "127.0.0.1", 3002, 80);
    let mut host = Host::new()
        .socket(Proto::Tcp, "127.0.0.1", 3002, &[])
        .socket(Proto::Tcp, "0.0.0.0", 5432, &[]);
    host.0.unreadable_processes = 7;
    let a = analyze(&snapshot(host, vec![web]));
    assert_eq!(
        owner_of(&a, Proto::Tcp, "127.0.0.1", 3002),
        Owner::Container {
            index: 0,
            via: Via::Binding
        }
    );
    let reason = |a: &Analysis| match owner_of(a, Proto::Tcp, "0.0.0.0", 5432) {
        Owner::Unknown { reason } => reason,
        o => panic!("{o:?}"),
    };
    let not_root = reason(&a);
    assert!(
        not_root.contains("7 processes are not readable"),
        "{not_root}"
    );
    assert!(not_root.contains("run as root"), "{not_root}");
    // Already root (in a container without SYS_PTRACE): another hint.
    let mut snap = snapshot(Host::new().socket(Proto::Tcp, "0.0.0.0", 5432, &[]), vec![]);
    snap.host.unreadable_processes = 7;
    snap.host.read_as = Some(0);
    let root = reason(&analyze(&snap));
    assert!(root.contains("not readable even as root"), "{root}");
    assert!(!root.contains("run as root"), "{root}");
}

#[test]
fn a_stopped_container_does_not_claim_a_socket_on_its_old_port() {
    let mut old = bare_container(ID_WEB, "old", ContainerState::Exited, None);
    publish(&mut old, Proto::Tcp, "0.0.0.0", 8080, 80);
    let host = Host::new()
        .process(40, "python3", "python3 -m http.server 8080", None)
        .socket(Proto::Tcp, "0.0.0.0", 8080, &[40]);
    let a = analyze(&snapshot(host, vec![old]));
    assert_eq!(owner_of(&a, Proto::Tcp, "0.0.0.0", 8080), Owner::Process);
}

#[test]
fn a_dual_stack_forwarder_backs_its_containers_ipv4_wildcard_binding() {
    // Rootless Podman: rootlessport binds one `[::]` socket without IPV6_V6ONLY for a
    // `0.0.0.0` binding (recorded from Podman 4.3, `ss` shows it as `*:PORT`).
    let mut web = running_web(3000);
    compose_labels(&mut web, "shop", "/src/shop", "/src/shop/compose.yaml");
    let mut v6only = running_web(3001);
    v6only.id = ID_HOSTNET.into();
    v6only.name = "db".into();
    let mut host = Host::new()
        .process(80, "rootlessport", "rootlessport", None)
        .edit(80, |p| p.uid = Some(1000))
        .socket(Proto::Tcp, "::", 3000, &[80])
        .socket(Proto::Tcp, "::", 3001, &[80]);
    host.0.sockets[0].v6only = Some(false);
    host.0.sockets[1].v6only = Some(true);
    let mut snap = snapshot(host, vec![web, v6only]);
    snap.engine.kind = Some(crate::model::EngineKind::Podman);
    snap.engine.uid = Some(1000);
    snap.fs = fs(true, &[("/src/shop", false)]);
    let a = analyze(&snap);
    assert_eq!(
        owner_of(&a, Proto::Tcp, "::", 3000),
        Owner::Container {
            index: 0,
            via: Via::Forwarder
        }
    );
    let on_3000: Vec<&PortEntry> = a.ports.iter().filter(|e| e.port == 3000).collect();
    assert_eq!(
        on_3000.len(),
        1,
        "no reservation, no requested row: {on_3000:#?}"
    );
    assert_eq!(on_3000[0].findings, vec![Kind::OrphanedCompose]);
    // An IPv6-only socket serves no IPv4 client: the IPv4 binding has no socket.
    assert!(a.ports.iter().any(|e| e.port == 3001
        && e.ip == ip("0.0.0.0")
        && e.owner
            == Owner::Container {
                index: 1,
                via: Via::Reservation
            }));
}

#[test]
fn an_unowned_socket_goes_to_the_first_container_whose_binding_it_serves() {
    // Two running containers publish the same port on different addresses, a third on
    // another protocol: each socket goes to the one binding it serves, none to a stopped
    // container, and the first in the snapshot wins a tie (as a scan of them did).
    let mut local = bare_container(ID_WEB, "local", ContainerState::Running, None);
    publish(&mut local, Proto::Tcp, "127.0.0.1", 3300, 80);
    let mut wide = bare_container(&"b".repeat(64), "wide", ContainerState::Running, None);
    publish(&mut wide, Proto::Tcp, "0.0.0.0", 3300, 80);
    let mut udp = bare_container(&"c".repeat(64), "udp", ContainerState::Running, None);
    publish(&mut udp, Proto::Udp, "0.0.0.0", 3300, 53);
    let mut gone = bare_container(&"d".repeat(64), "gone", ContainerState::Exited, None);
    publish(&mut gone, Proto::Tcp, "0.0.0.0", 3301, 80);
    let mut twin = bare_container(&"e".repeat(64), "twin", ContainerState::Running, None);
    publish(&mut twin, Proto::Tcp, "127.0.0.1", 3300, 80);
    let host = Host::new()
        .socket(Proto::Tcp, "127.0.0.1", 3300, &[])
        .socket(Proto::Tcp, "0.0.0.0", 3300, &[])
        .socket(Proto::Udp, "0.0.0.0", 3300, &[])
        .socket(Proto::Tcp, "0.0.0.0", 3301, &[]);
    let a = analyze(&snapshot(host, vec![local, wide, udp, gone, twin]));
    let container = |index| Owner::Container {
        index,
        via: Via::Binding,
    };
    assert_eq!(owner_of(&a, Proto::Tcp, "127.0.0.1", 3300), container(0));
    assert_eq!(owner_of(&a, Proto::Tcp, "0.0.0.0", 3300), container(1));
    assert_eq!(owner_of(&a, Proto::Udp, "0.0.0.0", 3300), container(2));
    assert!(matches!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 3301),
        Owner::Unknown { .. }
    ));
}
