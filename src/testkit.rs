//! Hand-built facts for the unit tests of the pure stages and of the executor: one scene
//! of a host with leaks of every common kind, and the pieces it is made of.

use std::net::IpAddr;

use crate::model::{
    Container, ContainerState, EngineKind, EngineStatus, Executable, HostFacts, LiveBinding,
    LocalEngine, Process, Proto, RequestedBinding, Snapshot, Socket,
};
use crate::plan::{Filters, Plan};

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn container(id: &str, name: &str, state: ContainerState, port: u16) -> Container {
    Container {
        image: "img".into(),
        network_mode: Some("bridge".into()),
        addresses: vec![ip("172.17.0.9")],
        live: vec![LiveBinding {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: ip("0.0.0.0"),
            host_port: port,
        }],
        ..Container::new(id, name, state)
    }
}

/// A binding asked for host port `port` (TCP, any address) to the container's port 80, as
/// a container that does not run has it.
pub(crate) fn asks_for(port: u16) -> RequestedBinding {
    RequestedBinding {
        proto: Proto::Tcp,
        container_port: 80,
        host_ip: None,
        host_ports: Some(crate::portspec::PortRange {
            start: port,
            end: port,
        }),
    }
}

pub(crate) fn proxy_process(pid: u32, port: u16) -> Process {
    Process {
        pid,
        ppid: 1,
        uid: Some(0),
        name: "docker-proxy".into(),
        cmdline: format!("/usr/sbin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port {port} -container-ip 172.17.255.1 -container-port 80")
            .split(' ')
            .map(str::to_owned)
            .collect(),
        start_ticks: Some(4242),
        container_id: None,
        started: None,
        exe: Some(crate::model::Executable {
            path: "/usr/sbin/docker-proxy".into(),
            deleted: false,
            owner: 0,
            shared_write: false,
        }),
        pid_ns: None,
        mnt_ns: None,
        session: None,
    }
}

/// A host with: an orphaned proxy (pid 50, port 5432), a paused container `admin`
/// (port 8080), a dead one `old` (8081), and a paused one labelled keep (8082).
pub(crate) fn scene() -> Snapshot {
    let mut host = HostFacts::default();
    host.processes.insert(50, proxy_process(50, 5432));
    host.sockets.push(Socket {
        proto: Proto::Tcp,
        ip: ip("0.0.0.0"),
        port: 5432,
        inode: 1,
        uid: 0,
        pids: vec![50],
        v6only: None,
    });
    let admin = container("a1", "admin", ContainerState::Paused, 8080);
    let mut old = container("d1", "old", ContainerState::Dead, 8081);
    old.live.clear();
    old.requested.push(asks_for(8081));
    let mut kept = container("k1", "precious", ContainerState::Paused, 8082);
    kept.labels.insert("portreap.keep".into(), "true".into());
    kept.labels.insert("team".into(), "db".into());
    Snapshot {
        host,
        containers: vec![admin, old, kept],
        engine: EngineStatus {
            reachable: true,
            kind: Some(crate::model::EngineKind::Docker),
            process: Some(2),
            uid: Some(0),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub(crate) fn suspects() -> Filters {
    Filters {
        include_suspects: true,
        ..Filters::default()
    }
}

/// What a plan will do, one line per action.
pub(crate) fn names(p: &Plan) -> Vec<String> {
    p.actions.iter().map(|a| a.describe()).collect()
}

/// A container on the default bridge at `addr`, publishing nothing yet.
pub(crate) fn bare_container(
    id: &str,
    name: &str,
    state: ContainerState,
    addr: Option<&str>,
) -> Container {
    Container {
        image: "img".into(),
        network_mode: Some("bridge".into()),
        addresses: addr.into_iter().map(ip).collect(),
        ..Container::new(id, name, state)
    }
}

/// Publishes `host_ip:host_port` to `container_port`, as asked and as live.
pub(crate) fn publish(
    c: &mut Container,
    proto: Proto,
    host_ip: &str,
    host_port: u16,
    container_port: u16,
) {
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

/// A host built process by process and socket by socket.
pub(crate) struct Host(pub(crate) HostFacts);

impl Host {
    /// No process, no socket.
    pub(crate) fn new() -> Self {
        Host(HostFacts::default())
    }

    /// A process of root running the program `name` as installed by root; `dockerd` and
    /// `podman` are also engines.
    pub(crate) fn process(
        mut self,
        pid: u32,
        name: &str,
        cmdline: &str,
        container: Option<&str>,
    ) -> Self {
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
                session: None,
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
    pub(crate) fn edit(mut self, pid: u32, f: impl FnOnce(&mut Process)) -> Self {
        f(self.0.processes.get_mut(&pid).expect("process to edit"));
        self
    }

    /// A docker-proxy of `pid` forwarding `host_ip:port` to `cip:cport`, with its socket.
    pub(crate) fn proxy(
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

    /// A listening socket held by `pids`.
    pub(crate) fn socket(mut self, proto: Proto, addr: &str, port: u16, pids: &[u32]) -> Self {
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

pub(crate) const HOST_PID_NS: u64 = 4026531836;
pub(crate) const HOST_MNT_NS: u64 = 4026531841;

/// The engine's own process, when a test has none.
pub(crate) const ENGINE_PID: u32 = 2;

/// A snapshot whose one engine asked is proven local: the test's first engine process,
/// else a nominal one.
pub(crate) fn snapshot(host: Host, containers: Vec<Container>) -> Snapshot {
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
