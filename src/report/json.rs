//! The JSON document, version 1 (see the README for the contract). These structs are the
//! contract, kept apart from the internal model so refactoring never renames a field.

use serde::Serialize;

use crate::analyze::findings::Finding;
use crate::analyze::{Analysis, Owner, PortEntry};
use crate::model::{Container, Snapshot};

/// Bumped only when a field is renamed or removed; adding fields is free.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct ScanDoc<'a> {
    schema_version: u32,
    engine: EngineDoc<'a>,
    /// Further engines asked (`--all-engines`); empty otherwise.
    engines: Vec<EngineDoc<'a>>,
    host: HostDoc<'a>,
    ports: LazyPorts<'a>,
    findings: Vec<FindingDoc<'a>>,
    /// `why --json` only: one entry per asked port.
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<serde_json::Value>,
}

/// The port list, serialised one entry at a time: a busy host has tens of thousands, and
/// their documents need not all exist at once.
struct LazyPorts<'a> {
    snapshot: &'a Snapshot,
    shown: Vec<&'a PortEntry>,
}

impl Serialize for LazyPorts<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.shown.iter().map(|p| port_doc(self.snapshot, p)))
    }
}

fn port_doc<'a>(snapshot: &'a Snapshot, p: &'a PortEntry) -> PortDoc<'a> {
    PortDoc {
        proto: p.proto.as_str(),
        ip: p.ip.to_string(),
        port: p.port,
        bound: p.bound,
        pids: &p.pids,
        process: p.process.as_deref(),
        cmdline: p.holder(snapshot).map(|h| h.cmdline.as_slice()),
        uid: p.holder(snapshot).and_then(|h| h.uid),
        owner: owner_doc(p),
        origin: p
            .holder(snapshot)
            .and_then(|h| crate::analyze::origin::origin(&snapshot.host, h.pid))
            .map(origin_doc),
        container: p.container(snapshot).map(|c| container_doc(snapshot, c)),
        findings: p.findings.iter().map(|k| k.id()).collect(),
    }
}

#[derive(Serialize)]
struct EngineDoc<'a> {
    endpoint: &'a str,
    source: &'a crate::model::EngineSource,
    reachable: bool,
    kind: Option<&'a str>,
    version: Option<&'a str>,
    api_version: Option<&'a str>,
    error: Option<&'a str>,
    /// The local engine process proven to serve the endpoint; `null` when none is (then
    /// `locality` says why, and this host's forwarders are not judged by this engine).
    process: Option<u32>,
    /// The user serving the endpoint, when known.
    uid: Option<u32>,
    locality: Option<&'a str>,
}

/// An engine process found in the process table.
#[derive(Serialize)]
struct LocalEngineDoc<'a> {
    pid: u32,
    kind: &'static str,
    uid: u32,
    sockets: &'a [String],
    own_mount_ns: bool,
    data_root: Option<&'a str>,
    /// Whether one of the engines asked is this one.
    asked: bool,
}

/// A compose path that could not be checked, and why.
#[derive(Serialize)]
struct UnjudgedDoc<'a> {
    path: &'a str,
    error: &'a str,
}

#[derive(Serialize)]
struct HostDoc<'a> {
    /// Processes whose descriptors could not be read; owners may be missing when > 0.
    unreadable_processes: usize,
    error: Option<&'a str>,
    /// Whether compose directories were checked (`orphaned-compose` can only be found
    /// then), and why not.
    compose_dirs_checked: bool,
    compose_note: Option<&'a str>,
    /// Compose paths that could not be checked: their projects are not judged.
    compose_unjudged: Vec<UnjudgedDoc<'a>>,
    /// Every engine process found on the host, asked or not.
    engines: Vec<LocalEngineDoc<'a>>,
}

#[derive(Serialize)]
struct PortDoc<'a> {
    proto: &'static str,
    ip: String,
    port: u16,
    bound: bool,
    pids: &'a [u32],
    process: Option<&'a str>,
    /// Command line of the process named by `process`.
    cmdline: Option<&'a [String]>,
    /// Owner of that process.
    uid: Option<u32>,
    owner: OwnerDoc,
    /// Where an ordinary holder runs and who started it; only on the asked ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<OriginDoc<'a>>,
    container: Option<ContainerDoc<'a>>,
    findings: Vec<&'static str>,
}

#[derive(Serialize)]
struct OriginDoc<'a> {
    /// Working directory; null when it cannot be read.
    cwd: Option<&'a str>,
    /// Controlling terminal (`pts/3`); null for none.
    tty: Option<&'a str>,
    session: u32,
    session_alive: bool,
    /// The nearest ancestor that is not a shell; null when the parent is gone.
    started_by: Option<AncestorDoc<'a>>,
    /// The shells between, nearest first.
    through: Vec<AncestorDoc<'a>>,
    /// Whatever started it has exited (it was re-parented to PID 1).
    parent_gone: bool,
}

#[derive(Serialize)]
struct AncestorDoc<'a> {
    pid: u32,
    name: &'a str,
    cmdline: &'a [String],
}

fn ancestor_doc(p: &crate::model::Process) -> AncestorDoc<'_> {
    AncestorDoc {
        pid: p.pid,
        name: &p.name,
        cmdline: &p.cmdline,
    }
}

fn origin_doc(o: crate::analyze::origin::Origin<'_>) -> OriginDoc<'_> {
    OriginDoc {
        cwd: o.context.cwd.as_deref(),
        tty: o.context.tty.as_deref(),
        session: o.context.session,
        session_alive: o.context.session_alive,
        started_by: o.started_by.map(ancestor_doc),
        through: o.through.iter().map(|p| ancestor_doc(p)).collect(),
        parent_gone: o.parent_gone,
    }
}

#[derive(Serialize)]
struct OwnerDoc {
    kind: &'static str,
    via: Option<&'static str>,
    target: Option<String>,
    detail: Option<String>,
}

#[derive(Serialize)]
struct ContainerDoc<'a> {
    id: &'a str,
    name: &'a str,
    image: &'a str,
    state: &'a str,
    health: Option<&'a str>,
    compose_project: Option<&'a str>,
    compose_service: Option<&'a str>,
    /// Made by `compose run`, not `up`.
    compose_oneoff: bool,
    created: Option<&'a str>,
    started_at: Option<&'a str>,
    restart_policy: Option<&'a str>,
    addresses: Vec<String>,
    /// The endpoint of the engine that knows it.
    engine: &'a str,
    /// Whether its full record was read; when not (a running container with nothing to
    /// judge, in the default view), `started_at` and `restart_policy` are null, and
    /// `created` is the list's, to the second.
    inspected: bool,
}

#[derive(Serialize)]
struct PortRefDoc {
    proto: &'static str,
    ip: String,
    port: u16,
}

#[derive(Serialize)]
struct FindingDoc<'a> {
    kind: &'static str,
    severity: &'static str,
    ports: Vec<PortRefDoc>,
    container: Option<ContainerDoc<'a>>,
    pids: &'a [u32],
    reason: &'a str,
    action: &'static str,
}

fn finding_doc<'a>(snapshot: &'a Snapshot, f: &'a Finding) -> FindingDoc<'a> {
    FindingDoc {
        kind: f.kind.id(),
        severity: f.severity.as_str(),
        ports: f
            .ports
            .iter()
            .map(|p| PortRefDoc {
                proto: p.proto.as_str(),
                ip: p.ip.to_string(),
                port: p.port,
            })
            .collect(),
        container: f
            .container
            .and_then(|i| snapshot.containers.get(i))
            .map(|c| container_doc(snapshot, c)),
        pids: &f.pids,
        reason: &f.reason,
        action: f.action.as_str(),
    }
}

fn container_doc<'a>(snapshot: &'a Snapshot, c: &'a Container) -> ContainerDoc<'a> {
    ContainerDoc {
        id: &c.id,
        name: &c.name,
        image: &c.image,
        state: c.state.as_str(),
        health: c.health.as_ref().map(crate::model::Health::as_str),
        compose_project: c.compose_project(),
        compose_service: c.compose_service(),
        compose_oneoff: c.compose_oneoff(),
        created: c.created.as_ref().map(crate::model::Timestamp::as_str),
        started_at: c.started_at.as_ref().map(crate::model::Timestamp::as_str),
        restart_policy: c
            .restart_policy
            .as_ref()
            .map(crate::model::RestartPolicy::as_str),
        addresses: c.addresses.iter().map(ToString::to_string).collect(),
        engine: &snapshot.engine_of(c).endpoint,
        inspected: c.inspected,
    }
}

fn owner_doc(entry: &PortEntry) -> OwnerDoc {
    let mut doc = OwnerDoc {
        kind: entry.owner.kind(),
        via: None,
        target: None,
        detail: None,
    };
    match &entry.owner {
        Owner::Container { via, .. } => doc.via = Some(via.as_str()),
        Owner::Proxy { target } => {
            doc.target = target
                .as_ref()
                .map(|t| std::net::SocketAddr::new(t.container_ip, t.container_port).to_string())
        }
        Owner::Conmon { container_id, .. } => doc.target = Some(container_id.clone()),
        Owner::Forwarder { product } => doc.detail = Some((*product).to_owned()),
        Owner::Unknown { reason } => doc.detail = Some(reason.clone()),
        Owner::NotJudged { reason } => doc.detail = Some(reason.to_string()),
        Owner::Engine | Owner::Process => doc.detail.clone_from(&entry.note),
    }
    doc
}

/// Renders `scan --json` into a string (for `why --json`, which extends it, and tests).
pub fn scan(snapshot: &Snapshot, analysis: &Analysis, keep: impl Fn(&PortEntry) -> bool) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail.
    write_scan(&mut out, snapshot, analysis, keep).expect("writing JSON into memory");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Writes the scan document with `why`'s section (`why --json`) to `out`.
pub fn write_why(
    out: &mut impl std::io::Write,
    snapshot: &Snapshot,
    analysis: &Analysis,
    keep: impl Fn(&PortEntry) -> bool,
    why: serde_json::Value,
) -> std::io::Result<()> {
    write_doc(out, snapshot, analysis, keep, Some(why))
}

/// Writes the `scan --json` document, newline-terminated, straight to `out`: a host with
/// tens of thousands of sockets would otherwise hold the whole text in memory.
pub fn write_scan(
    out: &mut impl std::io::Write,
    snapshot: &Snapshot,
    analysis: &Analysis,
    keep: impl Fn(&PortEntry) -> bool,
) -> std::io::Result<()> {
    write_doc(out, snapshot, analysis, keep, None)
}

fn write_doc(
    out: &mut impl std::io::Write,
    snapshot: &Snapshot,
    analysis: &Analysis,
    keep: impl Fn(&PortEntry) -> bool,
    why: Option<serde_json::Value>,
) -> std::io::Result<()> {
    let shown: Vec<&PortEntry> = analysis.ports.iter().filter(|p| keep(p)).collect();
    let shown_ports: std::collections::HashSet<_> = shown
        .iter()
        .flat_map(|p| p.served().map(|ip| (p.proto, ip, p.port)))
        .collect();
    let on_shown_port = |f: &Finding| {
        f.ports
            .iter()
            .any(|r| shown_ports.contains(&(r.proto, r.ip, r.port)))
    };
    let doc = ScanDoc {
        schema_version: SCHEMA_VERSION,
        engine: engine_doc(&snapshot.engine),
        engines: snapshot.engines.iter().map(engine_doc).collect(),
        host: host_doc(snapshot),
        ports: LazyPorts { snapshot, shown },
        findings: analysis
            .findings
            .iter()
            // Only the findings on the ports shown (all of them without a port filter).
            .filter(|f| on_shown_port(f))
            .map(|f| finding_doc(snapshot, f))
            .collect(),
        why,
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    out.write_all(b"\n")
}

fn engine_doc(engine: &crate::model::EngineStatus) -> EngineDoc<'_> {
    EngineDoc {
        endpoint: &engine.endpoint,
        source: &engine.source,
        reachable: engine.reachable,
        kind: engine.kind.map(crate::model::EngineKind::as_str),
        version: engine.version.as_deref(),
        api_version: engine.api_version.as_deref(),
        error: engine.error.as_deref(),
        process: engine.process,
        uid: engine.uid,
        locality: engine.locality.as_deref(),
    }
}

/// The host's side: what could not be read or judged, and every engine process found.
fn host_doc(snapshot: &Snapshot) -> HostDoc<'_> {
    HostDoc {
        unreadable_processes: snapshot.host.unreadable_processes,
        error: snapshot.host.proc_error.as_deref(),
        compose_dirs_checked: snapshot.fs.visible,
        compose_note: snapshot.fs.note.as_deref(),
        compose_unjudged: snapshot
            .fs
            .unjudged
            .iter()
            .map(|(path, error)| UnjudgedDoc { path, error })
            .chain(
                snapshot
                    .fs
                    .definitions
                    .iter()
                    .filter_map(|(files, d)| match d {
                        crate::model::ComposeDefinition::NotJudged { reason } => {
                            Some(UnjudgedDoc {
                                path: files,
                                error: reason,
                            })
                        }
                        crate::model::ComposeDefinition::Read { .. } => None,
                    }),
            )
            .collect(),
        engines: snapshot
            .host
            .engines
            .iter()
            .map(|e| LocalEngineDoc {
                pid: e.pid,
                kind: e.kind.as_str(),
                uid: e.uid,
                sockets: &e.sockets,
                own_mount_ns: e.own_mount_ns,
                data_root: e.data_root.as_deref(),
                asked: snapshot.all_engines().any(|s| s.process == Some(e.pid)),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use crate::analyze::findings::{Action, Kind, Severity};

    fn enum_of(schema: &str, def: &str) -> Vec<String> {
        let schema: serde_json::Value = serde_json::from_str(schema).unwrap();
        schema["$defs"][def]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("no enum {def}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    /// The published schemas name exactly the kinds, severities and actions the code has:
    /// a kind added in code and not in the schema would fail every validating user.
    #[test]
    fn the_schemas_enumerate_what_the_code_emits() {
        let scan = include_str!("../schema/scan.json");
        let prune = include_str!("../schema/prune.json");
        let kinds: Vec<String> = Kind::ALL.iter().map(|k| k.id().to_owned()).collect();
        assert_eq!(enum_of(scan, "kind"), kinds);
        assert_eq!(enum_of(prune, "kind"), kinds);
        let severities: Vec<String> = [Severity::Leak, Severity::Suspect, Severity::Info]
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        assert_eq!(enum_of(scan, "severity"), severities);
        let actions: Vec<String> = [
            Action::KillProcess,
            Action::RemoveContainer,
            Action::StopContainer,
            Action::None,
        ]
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
        assert_eq!(enum_of(scan, "action"), actions);
        let schema: serde_json::Value = serde_json::from_str(scan).unwrap();
        assert_eq!(
            schema["properties"]["schema_version"]["const"],
            super::SCHEMA_VERSION
        );
    }
}
