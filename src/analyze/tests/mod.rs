//! The analysis on hand-built snapshots: who owns each socket ([`attribution`]), the
//! finding rules ([`rules`], [`compose`]), and what must never be trusted or judged
//! across engines ([`trust`]). The snapshots are built with [`crate::testkit`].

use super::*;
use crate::model::{ContainerState, FsFacts, Proto};
use crate::testkit::{
    asks_for, bare_container, ip, publish, snapshot, Host, ENGINE_PID, HOST_MNT_NS,
};
use findings::{Action, Evidence, Kind};

mod attribution;
mod compose;
mod rules;
mod trust;

const ID_WEB: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ID_HOSTNET: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn owner_of(analysis: &Analysis, proto: Proto, addr: &str, port: u16) -> Owner {
    analysis
        .ports
        .iter()
        .find(|p| p.proto == proto && p.ip == ip(addr) && p.port == port)
        .unwrap_or_else(|| panic!("no entry for {proto} {addr}:{port}"))
        .owner
        .clone()
}

fn kinds(a: &Analysis) -> Vec<Kind> {
    a.findings.iter().map(|f| f.kind).collect()
}

fn running_web(port: u16) -> Container {
    let mut web = bare_container(ID_WEB, "web", ContainerState::Running, Some("172.17.0.2"));
    publish(&mut web, Proto::Tcp, "0.0.0.0", port, 80);
    publish(&mut web, Proto::Tcp, "::", port, 80);
    web
}

fn proxied(port: u16) -> Host {
    Host::new()
        .proxy(10, Proto::Tcp, "0.0.0.0", port, "172.17.0.2", 80)
        .proxy(11, Proto::Tcp, "::", port, "172.17.0.2", 80)
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

fn defined(services: &[&str], name: Option<&str>) -> crate::model::ComposeDefinition {
    crate::model::ComposeDefinition::Read {
        services: services.iter().map(|s| s.to_string()).collect(),
        name: name.map(str::to_owned),
        files: Vec::new(),
    }
}

/// A victim container publishing 3000 through its real proxies, for the impostor tests.
fn victim() -> (Container, Host) {
    let mut web = bare_container(ID_WEB, "web", ContainerState::Running, Some("172.17.0.2"));
    publish(&mut web, Proto::Tcp, "0.0.0.0", 3000, 80);
    let host = Host::new()
        .process(5, "dockerd", "/usr/sbin/dockerd", None)
        .proxy(10, Proto::Tcp, "0.0.0.0", 3000, "172.17.0.2", 80)
        .edit(10, |p| p.ppid = 5);
    (web, host)
}
