//! `why`: for each port, who holds it, on which addresses, whether it is a leak, and the
//! one command that frees it; and who else wants it.

mod holder;
mod json;

use crate::analyze::why::{holders, wanters, Asked, Index};
use crate::analyze::{Analysis, Owner};
use crate::model::{Proto, Snapshot};
pub use holder::Explanation;
use holder::{explain_holder, wanter_lines};
pub use json::json_section;

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

/// The TCP port's non-listening sockets (none for UDP, whose bound sockets are holders).
pub(super) fn uses_on(snapshot: &Snapshot, asked: Asked) -> super::bind::Uses<'_> {
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
