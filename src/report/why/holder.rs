//! One holder of a port in sentences: who it is, on which addresses, its findings, and the
//! commands that free the port.

use std::net::IpAddr;

use crate::analyze::findings::{Action, Kind};
use crate::analyze::origin;
use crate::analyze::why::{Asked, Holder, Wanter};
use crate::analyze::{Owner, PortEntry, Via};
use crate::model::{Container, ContainerState, Process, Snapshot};
use crate::report::table::prune_command;
use crate::time::human;

fn address_phrase(ip: IpAddr, dual_stack: bool) -> String {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => "0.0.0.0 (every IPv4 address)".into(),
        IpAddr::V6(v6) if v6.is_unspecified() && dual_stack => {
            ":: (every IPv6 address, and IPv4 too: dual-stack)".into()
        }
        IpAddr::V6(v6) if v6.is_unspecified() => ":: (every IPv6 address)".into(),
        ip if ip.is_loopback() => format!("{ip} (loopback: this host only)"),
        ip => format!("{ip} (this address only)"),
    }
}

fn addresses(entries: &[&PortEntry]) -> String {
    let mut ips: Vec<IpAddr> = entries.iter().map(|e| e.ip).collect();
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    ips.dedup();
    // An IPv6 wildcard without IPV6_V6ONLY takes IPv4 connections too.
    let dual = |ip: IpAddr| entries.iter().any(|e| e.ip == ip && e.dual_stack);
    let phrases: Vec<String> = ips
        .into_iter()
        .map(|ip| address_phrase(ip, dual(ip)))
        .collect();
    phrases.join(" and ")
}

fn pids_of(entries: &[&PortEntry]) -> String {
    let mut pids: Vec<u32> = entries
        .iter()
        .flat_map(|e| e.pids.iter().copied())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn uptime(snapshot: &Snapshot, c: &Container) -> Option<String> {
    Some(human(snapshot.taken_at? - c.started_at.as_ref()?.unix()))
}

fn container_lines(snapshot: &Snapshot, c: &Container) -> Vec<String> {
    let mut identity = format!("image {}", c.image);
    if let Some(project) = c.compose_project() {
        identity.push_str(&format!(", compose project {project}"));
        match c.compose_service() {
            Some(service) if c.compose_oneoff() => {
                identity.push_str(&format!(", a one-off (compose run) of service {service}"));
            }
            Some(service) => identity.push_str(&format!(", service {service}")),
            None => {}
        }
    }
    let mut state = c.state.to_string();
    if let Some(health) = &c.health {
        state.push_str(&format!(", {health}"));
    }
    if matches!(c.state, ContainerState::Running | ContainerState::Paused) {
        if let Some(up) = uptime(snapshot, c) {
            state.push_str(&format!(", up {up}"));
        }
    }
    vec![identity, state]
}

/// The compose command a person would use to stop this container's service. None for a
/// one-off: `compose stop` and `rm` never touch what `compose run` made.
fn compose_hint(snapshot: &Snapshot, c: &Container, verb: &str) -> Option<String> {
    let service = c.compose_service()?;
    if c.compose_oneoff() {
        return None;
    }
    let q = crate::shell::quote;
    Some(format!(
        "{} {verb} {}",
        compose_prefix(snapshot, c)?,
        q(service)
    ))
}

/// `cd DIR && docker compose -p PROJECT`, for a container whose directory is there.
/// The CLI of the engine that knows `c`, naming that engine (see [`crate::report::command`]).
fn cli_for(snapshot: &Snapshot, c: &Container) -> String {
    let engine = snapshot.engine_of(c);
    let cli = if engine.is_podman() {
        crate::report::Cli::Podman
    } else {
        crate::report::Cli::Docker
    };
    crate::report::command(engine, cli)
}

fn compose_prefix(snapshot: &Snapshot, c: &Container) -> Option<String> {
    let project = c.compose_project()?;
    let engine = snapshot.engine_of(c);
    let tool = match c.labels.get("com.docker.compose.version") {
        Some(v) if v.starts_with("1.") => {
            crate::report::command(engine, crate::report::Cli::ComposeV1)
        }
        _ => format!(
            "{} compose",
            crate::report::command(engine, crate::report::Cli::Docker)
        ),
    };
    let dir = c.compose_working_dir();
    // Compose needs its directory; where that is gone, only docker itself can help.
    if dir.is_some_and(|d| snapshot.fs.exists.get(d) == Some(&false)) {
        return None;
    }
    let q = crate::shell::quote;
    let cd = dir.map(|d| format!("cd {} && ", q(d))).unwrap_or_default();
    Some(format!("{cd}{tool} -p {}", q(project)))
}

/// What compose itself offers for an orphan: `up` with the project's own files, removing
/// the containers of services they no longer define.
fn remove_orphans_hint(snapshot: &Snapshot, c: &Container) -> Option<String> {
    let (_, files) = c.compose_paths()?;
    let q = crate::shell::quote;
    let files: String = files.iter().map(|f| format!(" -f {}", q(f))).collect();
    Some(format!(
        "{}{files} up -d --remove-orphans",
        compose_prefix(snapshot, c)?
    ))
}

/// Explains one holder: lines, and the next steps.
/// Where an ordinary holder runs and who started it (see [`origin::origin`]).
fn origin_lines(snapshot: &Snapshot, pid: u32) -> Vec<String> {
    let Some(o) = origin::origin(&snapshot.host, pid) else {
        return Vec::new();
    };
    let mut lines = vec![match &o.context.cwd {
        Some(cwd) => format!("directory: {cwd}"),
        None => "directory: not readable".into(),
    }];
    let through = if o.through.is_empty() {
        String::new()
    } else {
        let shells: Vec<String> = o
            .through
            .iter()
            .map(|p| format!("{} (pid {})", p.name, p.pid))
            .collect();
        format!(" through {}", shells.join(", "))
    };
    if let Some(starter) = o.started_by {
        lines.push(format!(
            "started by: {} (pid {}){through}",
            command_of(starter),
            starter.pid
        ));
    }
    if o.parent_gone {
        lines.push(format!(
            "parent: gone, adopted by pid 1{through}: whatever started it has exited"
        ));
    }
    if o.session_ended {
        lines.push(format!(
            "session: its leader (pid {}, a shell or terminal, usually) has exited",
            o.context.session
        ));
    }
    lines.push(match &o.context.tty {
        Some(tty) => format!("terminal: {tty}"),
        None => "terminal: none".into(),
    });
    lines
}

/// An ancestor as a person knows it: its command line, cut short (the holder's own is
/// shown whole above), or for PID 1 its name.
fn command_of(p: &Process) -> String {
    const MAX: usize = 60;
    let whole = p.cmdline.join(" ");
    if p.pid == 1 || whole.is_empty() {
        return p.name.clone();
    }
    match whole.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &whole[..cut]),
        None => whole,
    }
}

/// One holder explained: a headline, the facts under it, and the commands that free it
/// (each runs when pasted). Rendered as text by `why`, its steps listed by `why --json`.
pub struct Explanation {
    /// What holds the port, in a sentence.
    pub headline: String,
    /// The facts behind it.
    pub lines: Vec<String>,
    /// Ways to free the port, best first.
    pub next: Vec<String>,
}

pub(super) fn explain_holder(snapshot: &Snapshot, asked: Asked, h: &Holder<'_>) -> Explanation {
    let first = h.entries[0];
    let port = format!("{}/{}", asked.port, asked.proto);
    let mut e = Explanation {
        headline: String::new(),
        lines: Vec::new(),
        next: Vec::new(),
    };
    let on = format!("on {}", addresses(&h.entries));
    let pids = pids_of(&h.entries);
    let process = first.process.as_deref().unwrap_or("?");
    e.headline = match &first.owner {
        Owner::Container { via, .. } => container_holds(snapshot, &port, h, *via, &mut e),
        Owner::Process => process_holds(snapshot, &port, h, &mut e),
        Owner::Proxy { .. } => {
            e.lines.push(on);
            format!("{port} is held by docker-proxy pid {pids}, which forwards to no container")
        }
        Owner::Conmon {
            container_id,
            container_name,
        } => {
            e.lines.push(on);
            let name = container_name.as_deref().unwrap_or(container_id);
            format!(
                "{port} is held by conmon pid {pids} for Podman container {name}, which does not run"
            )
        }
        Owner::Forwarder { product } => {
            e.lines.push(on);
            e.next.push(format!(
                "stop the container in {product} (its forwarder serves every container and is never signalled)"
            ));
            format!("{port} is held by {product}'s port forwarder {process} (pid {pids})")
        }
        Owner::Engine => {
            e.lines.push(on);
            e.next.push(
                "restart the engine (e.g. systemctl restart docker): only it can release the port"
                    .into(),
            );
            format!("{port} is held by the engine (dockerd pid {pids}) for no container")
        }
        Owner::NotJudged { reason } => {
            e.lines.push(on);
            e.lines.push(format!("not judged: {reason}"));
            format!(
                "{port} is held by {process} pid {pids}, a forwarder portreap does not judge from the engines asked"
            )
        }
        Owner::Unknown { reason } => {
            e.lines.push(on);
            format!("{port} is held by a process portreap cannot see: {reason}")
        }
    };
    if h.findings.is_empty() {
        e.lines.push(match first.owner {
            Owner::Container { .. } => "not a leak: a live container publishes it".into(),
            Owner::Process => "not a leak: an ordinary process".into(),
            _ => "no finding".into(),
        });
    }
    for f in &h.findings {
        finding_steps(snapshot, f, &mut e);
    }
    e
}

/// A container's holding: its facts, how it holds the port, and (when nothing is wrong)
/// how to free the port anyway. Returns the headline.
fn container_holds(
    snapshot: &Snapshot,
    port: &str,
    h: &Holder<'_>,
    via: Via,
    e: &mut Explanation,
) -> String {
    let first = h.entries[0];
    // Owner::Container indexes come from this snapshot's container list.
    let c = first
        .container(snapshot)
        .expect("container owner has a container");
    e.lines.extend(container_lines(snapshot, c));
    let pids = pids_of(&h.entries);
    let process = first.process.as_deref().unwrap_or("?");
    let how = match via {
        Via::DockerProxy => format!("through docker-proxy pid {pids}"),
        Via::Conmon => format!("through Podman's conmon pid {pids}"),
        Via::Forwarder => format!("through the engine's forwarder {process} pid {pids}"),
        Via::Engine => format!("held by the engine itself (dockerd pid {pids})"),
        Via::HostNetwork => format!("by its own process {process} pid {pids} (host network)"),
        Via::Binding => {
            "the engine reports this binding; the owning process is not readable".into()
        }
        Via::Reservation | Via::Requested => "but no socket exists".into(),
    };
    e.lines.push(format!("on {}, {how}", addresses(&h.entries)));
    if h.findings.is_empty() {
        e.next
            .push(format!("{} free {port}", crate::report::portreap(snapshot)));
        e.next
            .push(compose_hint(snapshot, c, "stop").unwrap_or_else(|| {
                format!(
                    "{} stop {}",
                    cli_for(snapshot, c),
                    crate::shell::quote(&c.name)
                )
            }));
    }
    if via == Via::Reservation {
        format!(
            "{port} is reserved by the engine for container {}, but no socket exists",
            c.name
        )
    } else {
        format!("{port} is held by container {}", c.name)
    }
}

/// A plain process's holding: its command, where it came from, and how to free the
/// port. Returns the headline.
fn process_holds(snapshot: &Snapshot, port: &str, h: &Holder<'_>, e: &mut Explanation) -> String {
    let first = h.entries[0];
    let process = first.holder(snapshot);
    let user = process
        .and_then(|p| p.uid)
        .map(|uid| {
            snapshot
                .host
                .users
                .get(&uid)
                .cloned()
                .unwrap_or_else(|| uid.to_string())
        })
        .unwrap_or_else(|| "?".into());
    if let Some(p) = process {
        e.lines.push(format!("command: {}", p.cmdline.join(" ")));
        e.lines.extend(origin_lines(snapshot, p.pid));
    }
    if let Some(note) = &first.note {
        e.lines.push(format!("an ordinary process: it {note}"));
    }
    e.lines.push(format!("on {}", addresses(&h.entries)));
    let pids = pids_of(&h.entries);
    e.next.push(format!(
        "{} free {port} --kill-processes",
        crate::report::portreap(snapshot)
    ));
    e.next.push(format!("kill {}", pids.replace(", ", " ")));
    let name = first.process.as_deref().unwrap_or("?");
    format!("{port} is held by process {name} (pid {pids}, user {user})")
}

/// A finding on the holder: its line, and the commands that act on it (portreap's prune
/// first, then the engine's or compose's own, or `kill`).
fn finding_steps(snapshot: &Snapshot, f: &crate::analyze::findings::Finding, e: &mut Explanation) {
    e.lines.push(format!(
        "{} ({}): {}",
        f.severity.as_str(),
        f.kind,
        f.reason
    ));
    if f.action == Action::None {
        if f.kind == Kind::EngineReservation {
            e.next.push(
                "restart the container or the engine: only the engine releases a reservation"
                    .into(),
            );
        }
        return;
    }
    e.next.push(prune_command(snapshot, f));
    if let Some(c) = f.container.and_then(|i| snapshot.containers.get(i)) {
        let by_compose = if f.kind == Kind::OrphanService {
            remove_orphans_hint(snapshot, c)
        } else {
            compose_hint(snapshot, c, "rm -fs")
        };
        e.next.push(by_compose.unwrap_or_else(|| {
            format!(
                "{} rm -f {}",
                cli_for(snapshot, c),
                crate::shell::quote(&c.name)
            )
        }));
    } else if !f.pids.is_empty() {
        let pids: Vec<String> = f.pids.iter().map(u32::to_string).collect();
        e.next.push(format!("kill {}", pids.join(" ")));
    }
}

/// Why a wanter wants the port, and the command that settles it, if one does.
pub(super) fn wanter_lines(snapshot: &Snapshot, w: &Wanter<'_>) -> (String, Option<String>) {
    let c = &snapshot.containers[w.container];
    let why = match w.finding {
        Some(f) => format!("{} ({}): {}", f.severity.as_str(), f.kind, f.reason),
        None => format!(
            "{}: would need the port if started{}",
            c.state,
            match c.restart_policy {
                Some(crate::model::RestartPolicy::Always) => {
                    ", and will take it when the engine restarts"
                }
                _ => "",
            }
        ),
    };
    let next = w
        .finding
        .filter(|f| f.action != Action::None)
        .map(|f| prune_command(snapshot, f));
    (why, next)
}
