//! Attribution on hand-built snapshots, one per kind of holder.

use super::*;
use crate::model::{HostFacts, RequestedBinding};

const ID_WEB: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ID_HOSTNET: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn container(id: &str, name: &str, state: ContainerState, addr: Option<&str>) -> Container {
    Container {
        id: id.into(),
        name: name.into(),
        image: "img".into(),
        state,
        health: None,
        failing_streak: 0,
        failing_since: None,
        pid: None,
        exit_code: None,
        error: None,
        created: None,
        started_at: None,
        finished_at: None,
        restart_policy: None,
        restart_count: 0,
        network_mode: Some("bridge".into()),
        addresses: addr.into_iter().map(ip).collect(),
        labels: Default::default(),
        requested: Vec::new(),
        live: Vec::new(),
    }
}

fn publish(c: &mut Container, proto: Proto, host_ip: &str, host_port: u16, container_port: u16) {
    c.live.push(LiveBinding {
        proto,
        container_port,
        host_ip: ip(host_ip),
        host_port,
    });
    c.requested.push(RequestedBinding {
        proto,
        container_port,
        host_ip: None,
        host_ports: None,
    });
}

struct Host(HostFacts);

impl Host {
    fn new() -> Self {
        Host(HostFacts::default())
    }

    fn process(mut self, pid: u32, name: &str, cmdline: &str, container: Option<&str>) -> Self {
        self.0.processes.insert(
            pid,
            Process {
                pid,
                ppid: 1,
                uid: Some(0),
                name: name.into(),
                cmdline: cmdline.split(' ').map(str::to_owned).collect(),
                start_ticks: Some(100),
                container_id: container.map(str::to_owned),
            },
        );
        self
    }

    fn proxy(
        self,
        pid: u32,
        proto: Proto,
        host_ip: &str,
        port: u16,
        cip: &str,
        cport: u16,
    ) -> Self {
        let line = format!(
            "/usr/sbin/docker-proxy -proto {proto} -host-ip {host_ip} -host-port {port} -container-ip {cip} -container-port {cport}"
        );
        self.process(pid, "docker-proxy", &line, None)
            .socket(proto, host_ip, port, &[pid])
    }

    fn socket(mut self, proto: Proto, addr: &str, port: u16, pids: &[u32]) -> Self {
        let inode = self.0.sockets.len() as u32 + 1000;
        self.0.sockets.push(Socket {
            proto,
            ip: ip(addr),
            port,
            inode,
            uid: 0,
            pids: pids.to_vec(),
        });
        self
    }
}

fn snapshot(host: Host, containers: Vec<Container>) -> Snapshot {
    Snapshot {
        host: host.0,
        containers,
        ..Snapshot::default()
    }
}

fn owner_of(analysis: &Analysis, proto: Proto, addr: &str, port: u16) -> Owner {
    analysis
        .ports
        .iter()
        .find(|p| p.proto == proto && p.ip == ip(addr) && p.port == port)
        .unwrap_or_else(|| panic!("no entry for {proto} {addr}:{port}"))
        .owner
        .clone()
}

#[test]
fn both_proxies_of_a_binding_belong_to_the_one_container() {
    let mut web = container(ID_WEB, "web", ContainerState::Running, Some("172.17.0.2"));
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
    let mut other = container(ID_WEB, "other", ContainerState::Running, Some("172.17.0.2"));
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
    let mut hostnet = container(ID_HOSTNET, "hostnet", ContainerState::Running, None);
    hostnet.network_mode = Some("host".into());
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
    let mut web = container(ID_WEB, "web", ContainerState::Running, Some("172.17.0.2"));
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
    let mut old = container(ID_WEB, "old", ContainerState::Exited, None);
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
    let mut web = container(ID_WEB, "web", ContainerState::Running, Some("172.17.0.2"));
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
    match owner_of(&a, Proto::Tcp, "0.0.0.0", 5432) {
        Owner::Unknown { reason } => {
            assert!(reason.contains("7 processes are not readable"), "{reason}")
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn a_stopped_container_does_not_claim_a_socket_on_its_old_port() {
    let mut old = container(ID_WEB, "old", ContainerState::Exited, None);
    publish(&mut old, Proto::Tcp, "0.0.0.0", 8080, 80);
    let host = Host::new()
        .process(40, "python3", "python3 -m http.server 8080", None)
        .socket(Proto::Tcp, "0.0.0.0", 8080, &[40]);
    let a = analyze(&snapshot(host, vec![old]));
    assert_eq!(owner_of(&a, Proto::Tcp, "0.0.0.0", 8080), Owner::Process);
}
