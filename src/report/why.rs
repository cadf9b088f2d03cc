//! `why`: for each port, who holds it, on which addresses, whether it is a leak, and the
//! one command that frees it; and who else wants it.

use std::net::IpAddr;

use serde::Serialize;

use super::table::prune_command;
use crate::analyze::findings::{Action, Kind};
use crate::analyze::origin;
use crate::analyze::why::{holders, wanters, Asked, Holder, Index, Wanter};
use crate::analyze::{Analysis, Owner, PortEntry, Via};
use crate::model::{Container, ContainerState, Process, Proto, Snapshot};
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
/// The CLI of the engine that knows `c`, naming that engine (see [`super::command`]).
fn cli_for(snapshot: &Snapshot, c: &Container) -> String {
    let engine = snapshot.engine_of(c);
    let cli = if engine.is_podman() {
        super::Cli::Podman
    } else {
        super::Cli::Docker
    };
    super::command(engine, cli)
}

fn compose_prefix(snapshot: &Snapshot, c: &Container) -> Option<String> {
    let project = c.compose_project()?;
    let engine = snapshot.engine_of(c);
    let tool = match c.labels.get("com.docker.compose.version") {
        Some(v) if v.starts_with("1.") => super::command(engine, super::Cli::ComposeV1),
        _ => format!("{} compose", super::command(engine, super::Cli::Docker)),
    };
    let dir = c.labels.get(crate::model::labels::WORKING_DIR);
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

fn explain_holder(snapshot: &Snapshot, asked: Asked, h: &Holder<'_>) -> Explanation {
    let first = h.entries[0];
    let port = format!("{}/{}", asked.port, asked.proto);
    let mut lines = Vec::new();
    let mut next = Vec::new();
    let findings = &h.findings;
    let headline = match &first.owner {
        Owner::Container { via, .. } => {
            // Owner::Container indexes come from this snapshot's container list.
            let c = first
                .container(snapshot)
                .expect("container owner has a container");
            lines.extend(container_lines(snapshot, c));
            let how = match via {
                Via::DockerProxy => format!("through docker-proxy pid {}", pids_of(&h.entries)),
                Via::Conmon => format!("through Podman's conmon pid {}", pids_of(&h.entries)),
                Via::Forwarder => format!(
                    "through the engine's forwarder {} pid {}",
                    first.process.as_deref().unwrap_or("?"),
                    pids_of(&h.entries)
                ),
                Via::Engine => format!(
                    "held by the engine itself (dockerd pid {})",
                    pids_of(&h.entries)
                ),
                Via::HostNetwork => format!(
                    "by its own process {} pid {} (host network)",
                    first.process.as_deref().unwrap_or("?"),
                    pids_of(&h.entries)
                ),
                Via::Binding => {
                    "the engine reports this binding; the owning process is not readable".into()
                }
                Via::Reservation | Via::Requested => "but no socket exists".into(),
            };
            lines.push(format!("on {}, {how}", addresses(&h.entries)));
            if findings.is_empty() {
                next.push(format!("{} free {port}", super::portreap(snapshot)));
                let cli = cli_for(snapshot, c);
                match compose_hint(snapshot, c, "stop") {
                    Some(hint) => next.push(hint),
                    None => next.push(format!("{cli} stop {}", crate::shell::quote(&c.name))),
                }
            }
            if *via == Via::Reservation {
                format!(
                    "{port} is reserved by the engine for container {}, but no socket exists",
                    c.name
                )
            } else {
                format!("{port} is held by container {}", c.name)
            }
        }
        Owner::Proxy { .. } => {
            lines.push(format!("on {}", addresses(&h.entries)));
            format!(
                "{port} is held by docker-proxy pid {}, which forwards to no container",
                pids_of(&h.entries)
            )
        }
        Owner::Conmon {
            container_id,
            container_name,
        } => {
            lines.push(format!("on {}", addresses(&h.entries)));
            let name = container_name.as_deref().unwrap_or(container_id);
            format!(
                "{port} is held by conmon pid {} for Podman container {name}, which does not run",
                pids_of(&h.entries)
            )
        }
        Owner::Forwarder { product } => {
            lines.push(format!("on {}", addresses(&h.entries)));
            next.push(format!(
                "stop the container in {product} (its forwarder serves every container and is never signalled)"
            ));
            format!(
                "{port} is held by {product}'s port forwarder {} (pid {})",
                first.process.as_deref().unwrap_or("?"),
                pids_of(&h.entries)
            )
        }
        Owner::Engine => {
            lines.push(format!("on {}", addresses(&h.entries)));
            next.push(
                "restart the engine (e.g. systemctl restart docker): only it can release the port"
                    .into(),
            );
            format!(
                "{port} is held by the engine (dockerd pid {}) for no container",
                pids_of(&h.entries)
            )
        }
        Owner::NotJudged { reason } => {
            lines.push(format!("on {}", addresses(&h.entries)));
            lines.push(format!("not judged: {reason}"));
            format!(
                "{port} is held by {} pid {}, a forwarder portreap does not judge from the engines asked",
                first.process.as_deref().unwrap_or("?"),
                pids_of(&h.entries)
            )
        }
        Owner::Process => {
            let process = first.holder(snapshot);
            let name = first.process.as_deref().unwrap_or("?");
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
                lines.push(format!("command: {}", p.cmdline.join(" ")));
                lines.extend(origin_lines(snapshot, p.pid));
            }
            if let Some(note) = &first.note {
                lines.push(format!("an ordinary process: it {note}"));
            }
            lines.push(format!("on {}", addresses(&h.entries)));
            next.push(format!(
                "{} free {port} --kill-processes",
                super::portreap(snapshot)
            ));
            next.push(format!("kill {}", pids_of(&h.entries).replace(", ", " ")));
            format!(
                "{port} is held by process {name} (pid {}, user {user})",
                pids_of(&h.entries)
            )
        }
        Owner::Unknown { reason } => {
            lines.push(format!("on {}", addresses(&h.entries)));
            format!("{port} is held by a process portreap cannot see: {reason}")
        }
    };
    if findings.is_empty() {
        lines.push(match first.owner {
            Owner::Container { .. } => "not a leak: a live container publishes it".into(),
            Owner::Process => "not a leak: an ordinary process".into(),
            _ => "no finding".into(),
        });
    }
    for f in findings {
        lines.push(format!(
            "{} ({}): {}",
            f.severity.as_str(),
            f.kind,
            f.reason
        ));
        if f.action != Action::None {
            next.push(prune_command(snapshot, f));
            if let Some(c) = f.container.and_then(|i| snapshot.containers.get(i)) {
                let cli = cli_for(snapshot, c);
                let by_compose = if f.kind == Kind::OrphanService {
                    remove_orphans_hint(snapshot, c)
                } else {
                    compose_hint(snapshot, c, "rm -fs")
                };
                next.push(match by_compose {
                    Some(hint) => hint,
                    None => format!("{cli} rm -f {}", crate::shell::quote(&c.name)),
                });
            } else if !f.pids.is_empty() {
                next.push(format!(
                    "kill {}",
                    f.pids
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
        } else if f.kind == Kind::EngineReservation {
            next.push(
                "restart the container or the engine: only the engine releases a reservation"
                    .into(),
            );
        }
    }
    Explanation {
        headline,
        lines,
        next,
    }
}

/// Why a wanter wants the port, and the command that settles it, if one does.
fn wanter_lines(snapshot: &Snapshot, w: &Wanter<'_>) -> (String, Option<String>) {
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

/// Appends `text` wrapped for 100 columns; commands are never wrapped (they are copied).
fn push_wrapped(out: &mut String, first: &str, rest: &str, text: &str) {
    for (i, line) in super::table::wrap(&super::safe::line(text), 96 - rest.len())
        .into_iter()
        .enumerate()
    {
        out.push_str(if i == 0 { first } else { rest });
        out.push_str(&line);
        out.push('\n');
    }
}

/// Renders the explanation of every asked port.
pub fn text(snapshot: &Snapshot, analysis: &Analysis, asked: &[Asked]) -> String {
    let index = Index::new(snapshot, analysis);
    let mut out = String::new();
    let engine = &snapshot.engine;
    if !engine.reachable || engine.error.is_some() {
        out.push_str(&format!(
            "note: {}\n\n",
            super::table::engine_line(snapshot)
        ));
    }
    for (i, a) in asked.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let port = format!("{}/{}", a.port, a.proto);
        let found = holders(&index, *a);
        let wanted = wanters(&index, *a);
        let uses = uses_on(snapshot, *a);
        if found.is_empty() && uses.is_empty() {
            out.push_str(&format!("{port} is free.\n"));
            if let Some(note) = privileged(snapshot, *a) {
                push_wrapped(&mut out, "  ", "    ", &note);
            }
            let restarts = wanted.iter().any(|w| {
                snapshot.containers[w.container]
                    .restart_policy
                    .as_ref()
                    .is_some_and(crate::model::RestartPolicy::restarts)
            });
            if !restarts {
                out.push_str("  nothing will take it when the engine restarts.\n");
            }
        }
        let mut explained: Vec<Explanation> = found
            .iter()
            .map(|h| explain_holder(snapshot, *a, h))
            .collect();
        if found.is_empty() {
            explained.extend(super::bind::explain(snapshot, &port, &uses));
        }
        for Explanation {
            headline,
            lines,
            next,
        } in explained
        {
            out.push_str(&format!("{}\n", super::safe::line(&headline)));
            for line in lines {
                push_wrapped(&mut out, "  ", "    ", &line);
            }
            for (n, step) in next.iter().enumerate() {
                let label = if n == 0 { "next:" } else { "  or:" };
                out.push_str(&format!("  {label} {}\n", super::safe::line(step)));
            }
        }
        for w in &wanted {
            let (why, next) = wanter_lines(snapshot, w);
            let name = &snapshot.containers[w.container].name;
            let line = format!("also wanted by container {name}: {why}");
            push_wrapped(&mut out, "  ", "    ", &line);
            if let Some(next) = &next {
                out.push_str(&format!("  next: {}\n", super::safe::line(next)));
            }
        }
    }
    out
}

#[derive(Serialize)]
struct WantedDoc<'a> {
    id: &'a str,
    name: &'a str,
    state: &'a str,
    reason: String,
}

#[derive(Serialize)]
struct WhyDoc<'a> {
    proto: &'static str,
    port: u16,
    /// A plain bind(2) on every address would succeed now.
    free: bool,
    /// A bind with SO_REUSEADDR would succeed now; null when only TIME_WAIT connections
    /// are left, which let it through only if their own socket set SO_REUSEADDR too
    /// (the kernel does not say).
    free_with_reuseaddr: Option<bool>,
    /// The port's sockets that do not listen but block a plain bind.
    sockets: Vec<super::bind::UseDoc>,
    wanted_by: Vec<WantedDoc<'a>>,
    next: Vec<String>,
}

/// The TCP port's non-listening sockets (none for UDP, whose bound sockets are holders).
fn uses_on(snapshot: &Snapshot, asked: Asked) -> super::bind::Uses<'_> {
    match asked.proto {
        Proto::Tcp => super::bind::Uses::on(snapshot, asked.port),
        Proto::Udp => super::bind::Uses::default(),
    }
}

/// For a user who may not bind below `net.ipv4.ip_unprivileged_port_start`: a free port
/// there still fails (EACCES, not EADDRINUSE).
fn privileged(snapshot: &Snapshot, asked: Asked) -> Option<String> {
    let start = snapshot.host.unprivileged_port_start?;
    let uid = snapshot.host.read_as?;
    (uid != 0 && asked.port < start).then(|| {
        format!(
            "binding it needs root or CAP_NET_BIND_SERVICE: ports below {start} are privileged here (net.ipv4.ip_unprivileged_port_start), so it fails with EACCES, not EADDRINUSE"
        )
    })
}

/// The `why` part of `why --json`: per port, whether it is free, who wants it, next steps.
pub fn json_section(
    snapshot: &Snapshot,
    analysis: &Analysis,
    asked: &[Asked],
) -> serde_json::Value {
    let index = Index::new(snapshot, analysis);
    let docs: Vec<WhyDoc<'_>> = asked
        .iter()
        .map(|a| {
            let found = holders(&index, *a);
            let uses = uses_on(snapshot, *a);
            let port = format!("{}/{}", a.port, a.proto);
            let mut next: Vec<String> = found
                .iter()
                .flat_map(|h| explain_holder(snapshot, *a, h).next)
                .collect();
            if found.is_empty() {
                next.extend(
                    super::bind::explain(snapshot, &port, &uses)
                        .into_iter()
                        .flat_map(|e| e.next),
                );
            }
            WhyDoc {
                proto: a.proto.as_str(),
                port: a.port,
                free: found.is_empty() && uses.is_empty(),
                free_with_reuseaddr: match (
                    found.is_empty(),
                    uses.is_empty(),
                    uses.time_wait_only(),
                ) {
                    (true, true, _) => Some(true),
                    (true, false, true) => None,
                    _ => Some(false),
                },
                sockets: super::bind::docs(&uses),
                wanted_by: wanters(&index, *a)
                    .iter()
                    .map(|w| {
                        let c = &snapshot.containers[w.container];
                        WantedDoc {
                            id: &c.id,
                            name: &c.name,
                            state: c.state.as_str(),
                            reason: wanter_lines(snapshot, w).0,
                        }
                    })
                    .collect(),
                next,
            }
        })
        .collect();
    // Serialising plain structs of strings, numbers and booleans cannot fail.
    serde_json::to_value(docs).expect("JSON of plain data")
}

/// `why --container NAME`: the container's requested ports and who holds each now.
pub fn container_text(snapshot: &Snapshot, analysis: &Analysis, container: usize) -> String {
    let index = Index::new(snapshot, analysis);
    let c = &snapshot.containers[container];
    let mut out = format!(
        "{}\n",
        super::safe::line(&format!("container {}: {}", c.name, c.state))
    );
    if let Some(e) = &c.error {
        let e = crate::analyze::findings::conflict_core(e);
        push_wrapped(
            &mut out,
            "  ",
            "    ",
            &format!("last start failed: \"{e}\""),
        );
    }
    if c.requested.is_empty() {
        out.push_str("  asks for no host port.\n");
        return out;
    }
    for r in &c.requested {
        let Some(range) = r.host_ports else {
            out.push_str(&format!(
                "  {}/{}: any free host port\n",
                r.container_port, r.proto
            ));
            continue;
        };
        for port in range.start..=range.end {
            let asked = Asked {
                proto: r.proto,
                port,
            };
            let found = holders(&index, asked);
            let now = if found.is_empty() {
                "free now".to_owned()
            } else {
                found
                    .iter()
                    .map(|h| {
                        let mine = matches!(h.entries[0].owner, Owner::Container { index: i, .. } if i == container);
                        if mine {
                            "held by this container".to_owned()
                        } else {
                            explain_holder(snapshot, asked, h).headline
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            out.push_str(&format!(
                "  {port}/{} -> {}: {}\n",
                r.proto,
                r.container_port,
                super::safe::line(&now)
            ));
        }
    }
    out
}
