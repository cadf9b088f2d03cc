//! Attribution on hand-built snapshots, one per kind of holder.

use super::*;
use crate::model::{EngineKind, Executable, HostFacts, LocalEngine, RequestedBinding};

const ID_WEB: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ID_HOSTNET: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn container(id: &str, name: &str, state: ContainerState, addr: Option<&str>) -> Container {
    Container {
        image: "img".into(),
        network_mode: Some("bridge".into()),
        addresses: addr.into_iter().map(ip).collect(),
        ..Container::new(id, name, state)
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

    /// A process of root running the program `name` as installed by root; `dockerd` and
    /// `podman` are also engines.
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
                started: None,
                exe: Some(Executable {
                    path: format!("/usr/sbin/{name}"),
                    deleted: false,
                    owner: 0,
                    shared_write: false,
                }),
                pid_ns: Some(HOST_PID_NS),
                mnt_ns: Some(HOST_MNT_NS),
            },
        );
        let kind = match name {
            "dockerd" => Some(EngineKind::Docker),
            "podman" => Some(EngineKind::Podman),
            _ => None,
        };
        if let Some(kind) = kind {
            self.0.engines.push(LocalEngine {
                pid,
                kind,
                uid: 0,
                sockets: vec![format!("unix:///run/engine-{pid}.sock")],
                own_mount_ns: false,
                mnt_ns: Some(HOST_MNT_NS),
                data_root: None,
            });
        }
        self
    }

    /// Changes what the kernel says of process `pid`.
    fn edit(mut self, pid: u32, f: impl FnOnce(&mut Process)) -> Self {
        f(self.0.processes.get_mut(&pid).expect("process to edit"));
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
            v6only: None,
        });
        self
    }
}

const HOST_PID_NS: u64 = 4026531836;
const HOST_MNT_NS: u64 = 4026531841;

/// The engine's own process, when a test has none.
const ENGINE_PID: u32 = 2;

/// A snapshot whose one engine asked is proven local: the test's first engine process,
/// else a nominal one.
fn snapshot(host: Host, containers: Vec<Container>) -> Snapshot {
    let process = host.0.engines.first().map_or(ENGINE_PID, |e| e.pid);
    let mut host = host.0;
    host.pid_ns = Some(HOST_PID_NS);
    Snapshot {
        host,
        containers,
        engine: crate::model::EngineStatus {
            reachable: true,
            kind: Some(crate::model::EngineKind::Docker),
            process: Some(process),
            uid: Some(0),
            ..Default::default()
        },
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
    let mut old = container(ID_WEB, "old", ContainerState::Exited, None);
    publish(&mut old, Proto::Tcp, "0.0.0.0", 8080, 80);
    let host = Host::new()
        .process(40, "python3", "python3 -m http.server 8080", None)
        .socket(Proto::Tcp, "0.0.0.0", 8080, &[40]);
    let a = analyze(&snapshot(host, vec![old]));
    assert_eq!(owner_of(&a, Proto::Tcp, "0.0.0.0", 8080), Owner::Process);
}

// ---- findings ----------------------------------------------------------------------

use crate::model::FsFacts;
use findings::{Action, Kind};

fn kinds(a: &Analysis) -> Vec<Kind> {
    a.findings.iter().map(|f| f.kind).collect()
}

fn running_web(port: u16) -> Container {
    let mut web = container(ID_WEB, "web", ContainerState::Running, Some("172.17.0.2"));
    publish(&mut web, Proto::Tcp, "0.0.0.0", port, 80);
    publish(&mut web, Proto::Tcp, "::", port, 80);
    web
}

fn proxied(port: u16) -> Host {
    Host::new()
        .proxy(10, Proto::Tcp, "0.0.0.0", port, "172.17.0.2", 80)
        .proxy(11, Proto::Tcp, "::", port, "172.17.0.2", 80)
}

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
    let cases = [
        (
            ContainerState::Paused,
            None,
            None,
            Some(Kind::PausedContainer),
        ),
        (
            ContainerState::Running,
            Some("unhealthy"),
            None,
            Some(Kind::UnhealthyContainer),
        ),
        (ContainerState::Running, Some("starting"), None, None),
        (
            ContainerState::Restarting,
            None,
            None,
            Some(Kind::RestartingContainer),
        ),
        (ContainerState::Dead, None, None, Some(Kind::DeadContainer)),
        (
            ContainerState::Exited,
            None,
            Some("always"),
            Some(Kind::DormantBinding),
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
            c.requested = vec![RequestedBinding {
                proto: Proto::Tcp,
                container_port: 80,
                host_ip: None,
                host_ports: Some(crate::portspec::PortRange {
                    start: 3000,
                    end: 3000,
                }),
            }];
        }
        let host = if matches!(state, ContainerState::Running | ContainerState::Paused) {
            proxied(3000)
        } else {
            Host::new()
        };
        let a = analyze(&snapshot(host, vec![c]));
        assert_eq!(
            kinds(&a),
            expected.into_iter().collect::<Vec<_>>(),
            "{state:?} {health:?} {policy:?}"
        );
        if let Some(kind) = expected {
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
    let mut c = container(ID_WEB, "worker", ContainerState::Paused, Some("172.17.0.2"));
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
    let mut blocked = container(ID_HOSTNET, "blocked", ContainerState::Created, None);
    blocked.requested.push(RequestedBinding {
        proto: Proto::Tcp,
        container_port: 80,
        host_ip: None,
        host_ports: Some(crate::portspec::PortRange {
            start: 3000,
            end: 3000,
        }),
    });
    blocked.error = Some("driver failed programming external connectivity on endpoint blocked (abc): Bind for 0.0.0.0:3000 failed: port is already allocated".into());
    let a = analyze(&snapshot(proxied(3000), vec![holder, blocked]));
    assert_eq!(kinds(&a), vec![Kind::BlockedStart]);
    let f = &a.findings[0];
    assert_eq!(f.action, Action::None);
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

fn compose_labels(c: &mut Container, project: &str, dir: &str, files: &str) {
    c.labels
        .insert("com.docker.compose.project".into(), project.into());
    c.labels
        .insert("com.docker.compose.service".into(), "web".into());
    c.labels
        .insert("com.docker.compose.project.working_dir".into(), dir.into());
    c.labels.insert(
        "com.docker.compose.project.config_files".into(),
        files.into(),
    );
}

fn fs(visible: bool, paths: &[(&str, bool)]) -> FsFacts {
    FsFacts {
        visible,
        note: None,
        exists: paths.iter().map(|(p, e)| (p.to_string(), *e)).collect(),
        ..Default::default()
    }
}

#[test]
fn orphaned_compose_needs_visible_evidence() {
    let mut web = running_web(3000);
    compose_labels(
        &mut web,
        "shop",
        "/src/shop",
        "docker-compose.yml,docker-compose.override.yml",
    );
    let mut snap = snapshot(proxied(3000), vec![web.clone()]);

    // Directory gone.
    snap.fs = fs(true, &[("/src/shop", false)]);
    let a = analyze(&snap);
    assert_eq!(kinds(&a), vec![Kind::OrphanedCompose]);
    assert!(a.findings[0]
        .reason
        .contains("working directory /src/shop no longer exists"));

    // Directory there but every (relative, v1) compose file gone.
    snap.fs = fs(
        true,
        &[
            ("/src/shop", true),
            ("/src/shop/docker-compose.yml", false),
            ("/src/shop/docker-compose.override.yml", false),
        ],
    );
    assert_eq!(kinds(&analyze(&snap)), vec![Kind::OrphanedCompose]);

    // One file left: not orphaned.
    snap.fs = fs(
        true,
        &[
            ("/src/shop", true),
            ("/src/shop/docker-compose.yml", true),
            ("/src/shop/docker-compose.override.yml", false),
        ],
    );
    assert_eq!(kinds(&analyze(&snap)), vec![]);

    // Filesystem not visible (portreap in a container): never guess.
    snap.fs = fs(false, &[]);
    assert_eq!(kinds(&analyze(&snap)), vec![]);

    // Absolute (v2) file paths are taken as they are.
    let mut v2 = running_web(3000);
    compose_labels(&mut v2, "shop", "/src/shop", "/src/shop/compose.yaml");
    snap.containers = vec![v2];
    snap.fs = fs(
        true,
        &[("/src/shop", true), ("/src/shop/compose.yaml", false)],
    );
    assert_eq!(kinds(&analyze(&snap)), vec![Kind::OrphanedCompose]);
}

#[test]
fn a_superseded_project_in_the_same_directory_is_orphaned_only_on_a_port_clash() {
    let mut old = running_web(3000);
    old.name = "oldname_web_1".into();
    old.created = crate::model::Timestamp::parse("2026-11-25T10:00:00Z");
    compose_labels(&mut old, "oldname", "/src/app", "docker-compose.yml");
    let mut new = container(ID_HOSTNET, "app_web_1", ContainerState::Created, None);
    new.created = crate::model::Timestamp::parse("2026-11-25T11:00:00Z");
    new.requested.push(RequestedBinding {
        proto: Proto::Tcp,
        container_port: 80,
        host_ip: None,
        host_ports: Some(crate::portspec::PortRange {
            start: 3000,
            end: 3000,
        }),
    });
    compose_labels(&mut new, "app", "/src/app", "docker-compose.yml");
    let mut snap = snapshot(proxied(3000), vec![old.clone(), new.clone()]);
    snap.fs = fs(
        true,
        &[("/src/app", true), ("/src/app/docker-compose.yml", true)],
    );
    let a = analyze(&snap);
    assert_eq!(kinds(&a), vec![Kind::OrphanedCompose]);
    assert_eq!(a.findings[0].container, Some(0));
    assert!(a.findings[0]
        .reason
        .contains("superseded by compose project app"));

    // A deliberate second instance on other ports is left alone.
    new.requested[0].host_ports = Some(crate::portspec::PortRange {
        start: 3001,
        end: 3001,
    });
    snap.containers = vec![old.clone(), new.clone()];
    assert_eq!(kinds(&analyze(&snap)), vec![]);

    // The older project matching the directory name is the current one: nothing stale.
    new.requested[0].host_ports = Some(crate::portspec::PortRange {
        start: 3000,
        end: 3000,
    });
    let mut renamed_old = old;
    compose_labels(&mut renamed_old, "app", "/src/app", "docker-compose.yml");
    compose_labels(&mut new, "feature", "/src/app", "docker-compose.yml");
    snap.containers = vec![renamed_old, new];
    assert_eq!(kinds(&analyze(&snap)), vec![]);
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
    assert!(a.findings[0]
        .reason
        .contains("only an engine restart releases it"));
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
    let mut web = container(id, "web", ContainerState::Running, Some("10.88.0.4"));
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
    assert!(matches!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 3801),
        Owner::NotJudged { .. }
    ));
    assert_eq!(kinds(&a), vec![]);

    // Docker queried: the conmon is named but never judged.
    let mut snap = snapshot(host(), vec![]);
    snap.engine.kind = Some(crate::model::EngineKind::Docker);
    let a = analyze(&snap);
    assert!(matches!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 3801),
        Owner::NotJudged { .. }
    ));
    assert_eq!(kinds(&a), vec![]);

    // A Podman engine of another user (rootless) cannot judge root's conmon.
    let mut snap = snapshot(host(), vec![]);
    snap.engine.kind = Some(crate::model::EngineKind::Podman);
    snap.engine.uid = Some(1000);
    let a = analyze(&snap);
    assert!(matches!(
        owner_of(&a, Proto::Tcp, "0.0.0.0", 3801),
        Owner::NotJudged { .. }
    ));
    assert_eq!(kinds(&a), vec![]);
}

#[test]
fn desktop_forwarders_are_attributed_and_never_acted_on() {
    // Docker Desktop for Linux: com.docker.backend holds the published port on the host.
    let mut web = container(ID_WEB, "web", ContainerState::Paused, Some("192.168.65.3"));
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

/// A victim container publishing 3000 through its real proxies, for the impostor tests.
fn victim() -> (Container, Host) {
    let mut web = container(ID_WEB, "web", ContainerState::Running, Some("172.17.0.2"));
    publish(&mut web, Proto::Tcp, "0.0.0.0", 3000, 80);
    let host = Host::new()
        .process(5, "dockerd", "/usr/sbin/dockerd", None)
        .proxy(10, Proto::Tcp, "0.0.0.0", 3000, "172.17.0.2", 80)
        .edit(10, |p| p.ppid = 5);
    (web, host)
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
    let mut hostnet = container(ID_HOSTNET, "hostnet", ContainerState::Running, None);
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
            Owner::NotJudged { reason } => assert!(
                reason.contains("the Docker engine pid 9 at unix:///run/engine-9.sock, which was not asked: add --all-engines or --host unix:///run/engine-9.sock"),
                "{reason}"
            ),
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
    let mut other = container(
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
    let mut web = container(ID_WEB, "web", ContainerState::Running, Some("172.17.0.9"));
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
        Owner::NotJudged { reason } => assert!(
            reason.contains("no engine parent, and no engine asked is proven to run on this host (tcp://127.0.0.1:2399: no local engine process"),
            "{reason}"
        ),
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

#[test]
fn an_unreadable_compose_directory_is_not_judged_gone() {
    let mut web = running_web(3000);
    compose_labels(&mut web, "shop", "/home/alice/shop", "docker-compose.yml");
    let mut snap = snapshot(Host::new(), vec![web]);
    // The directory cannot be read; its file, behind it, was judged gone by a race.
    snap.fs = fs(true, &[("/home/alice/shop/docker-compose.yml", false)]);
    snap.fs.unjudged.insert(
        "/home/alice/shop".into(),
        "Permission denied (os error 13)".into(),
    );
    assert!(!kinds(&analyze(&snap)).contains(&Kind::OrphanedCompose));
}

fn defined(services: &[&str], name: Option<&str>) -> crate::model::ComposeDefinition {
    crate::model::ComposeDefinition::Read {
        services: services.iter().map(|s| s.to_string()).collect(),
        name: name.map(str::to_owned),
        files: Vec::new(),
    }
}

#[test]
fn a_service_its_files_no_longer_define_is_an_orphan() {
    const FILES: &str = "/src/shop/compose.yaml";
    let mut web = running_web(3000);
    compose_labels(&mut web, "shop", "/src/shop", FILES);
    let mut snap = snapshot(proxied(3000), vec![web.clone()]);
    snap.fs = fs(true, &[("/src/shop", true), (FILES, true)]);
    let with = |snap: &mut Snapshot, d| {
        snap.fs.definitions.insert(FILES.into(), d);
        analyze(snap)
    };
    // Renamed away, nothing blocked: a suspect.
    let a = with(&mut snap, defined(&["frontend"], None));
    assert_eq!(kinds(&a), vec![Kind::OrphanService]);
    assert_eq!(a.findings[0].severity, findings::Severity::Suspect);
    assert!(a.findings[0]
        .reason
        .contains("no longer define service web"));
    // Still defined, defined by another project's name, or not read: quiet.
    assert_eq!(kinds(&with(&mut snap, defined(&["web"], None))), vec![]);
    assert_eq!(kinds(&with(&mut snap, defined(&[], Some("store")))), vec![]);
    let unread = crate::model::ComposeDefinition::NotJudged {
        reason: "not valid YAML".into(),
    };
    assert_eq!(kinds(&with(&mut snap, unread)), vec![]);
    // A one-off of a removed service is compose's to ignore too.
    let mut oneoff = web.clone();
    oneoff
        .labels
        .insert("com.docker.compose.oneoff".into(), "True".into());
    snap.containers = vec![oneoff];
    assert_eq!(
        kinds(&with(&mut snap, defined(&["frontend"], None))),
        vec![]
    );
    // The renamed service's container could not start on the orphan's port: a leak.
    let mut renamed = container(ID_HOSTNET, "shop-frontend-1", ContainerState::Created, None);
    compose_labels(&mut renamed, "shop", "/src/shop", FILES);
    renamed
        .labels
        .insert("com.docker.compose.service".into(), "frontend".into());
    renamed.error = Some("driver failed programming external connectivity on endpoint shop-frontend-1: Bind for 0.0.0.0:3000 failed: port is already allocated".into());
    snap.containers = vec![web, renamed];
    let a = with(&mut snap, defined(&["frontend"], None));
    let orphan = a
        .findings
        .iter()
        .find(|f| f.kind == Kind::OrphanService)
        .expect("an orphan");
    assert_eq!(orphan.severity, findings::Severity::Leak);
    assert!(
        orphan.reason.contains("shop-frontend-1 (service frontend)"),
        "{}",
        orphan.reason
    );
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
