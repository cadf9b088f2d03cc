//! Hand-built facts for the unit tests of the pure stages and of the executor: one scene
//! of a host with leaks of every common kind, and the pieces it is made of.

use std::net::IpAddr;

use crate::model::{
    Container, ContainerState, EngineStatus, HostFacts, LiveBinding, Process, Proto, Snapshot,
    Socket,
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
    old.requested.push(crate::model::RequestedBinding {
        proto: Proto::Tcp,
        container_port: 80,
        host_ip: None,
        host_ports: Some(crate::portspec::PortRange {
            start: 8081,
            end: 8081,
        }),
    });
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
