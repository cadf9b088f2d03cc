//! What bind(2) trips on besides a listener: connections in TIME_WAIT, connections still
//! open from an earlier listener, sockets bound and never used. `why` explains them, and
//! its verdict `free` means a plain bind would succeed now.

use std::collections::BTreeMap;

use serde::Serialize;

use super::why::Explanation;
use crate::model::{PortUse, Snapshot, TcpState};

/// The asked port's other sockets, grouped: by the processes that hold them, and the
/// TIME_WAIT ones nobody holds.
#[derive(Default)]
pub struct Uses<'a> {
    /// Held sockets by their (sorted) holders; no holder means the holder is not visible.
    pub held: BTreeMap<Vec<u32>, Vec<&'a PortUse>>,
    /// Connections in TIME_WAIT.
    pub time_wait: Vec<&'a PortUse>,
}

impl<'a> Uses<'a> {
    /// The TCP sockets on `port` that are not listening.
    pub fn on(snapshot: &'a Snapshot, port: u16) -> Uses<'a> {
        let mut held: BTreeMap<Vec<u32>, Vec<&PortUse>> = BTreeMap::new();
        let mut time_wait = Vec::new();
        for u in snapshot.host.port_uses.iter().filter(|u| u.port == port) {
            match u.state {
                TcpState::TimeWait => time_wait.push(u),
                // Closed sockets hold nothing.
                TcpState::Close => {}
                _ => {
                    let mut pids = u.pids.clone();
                    pids.sort_unstable();
                    held.entry(pids).or_default().push(u);
                }
            }
        }
        Uses { held, time_wait }
    }

    /// Nothing but a listener (or nothing at all) is on the port.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.time_wait.is_empty()
    }

    /// Only TIME_WAIT: a server setting SO_REUSEADDR can bind now.
    pub fn time_wait_only(&self) -> bool {
        self.held.is_empty() && !self.time_wait.is_empty()
    }

    /// When the last TIME_WAIT connection lets the port go, in milliseconds.
    pub fn last_expiry_ms(&self) -> Option<u64> {
        self.time_wait.iter().filter_map(|u| u.expires_ms).max()
    }
}

/// `3 established, 1 bound-inactive`.
fn states(uses: &[&PortUse]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for u in uses {
        *counts.entry(phrase(u.state)).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn phrase(state: TcpState) -> &'static str {
    match state {
        TcpState::BoundInactive => "bound but never listened on",
        TcpState::Established => "connected",
        TcpState::CloseWait => "closed by the peer, not yet by the process",
        s => s.as_str(),
    }
}

/// Seconds to suggest waiting for TIME_WAIT to clear: its timer fires a little late
/// (the kernel's timer wheel), so some slack past the expiry.
fn wait_for(expiry_ms: Option<u64>) -> u64 {
    expiry_ms.map_or(65, |ms| ms.div_ceil(1000) + 5)
}

/// `~42s`.
fn seconds(ms: u64) -> String {
    format!("~{}s", ms.div_ceil(1000))
}

/// The headline, lines and next steps for a port no listener holds but `uses` block.
pub fn explain(snapshot: &Snapshot, port: &str, uses: &Uses<'_>) -> Vec<Explanation> {
    let mut out = Vec::new();
    for (pids, sockets) in &uses.held {
        out.push(explain_held(snapshot, port, pids, sockets));
    }
    if !uses.time_wait.is_empty() {
        let n = uses.time_wait.len();
        let expiry = uses
            .last_expiry_ms()
            .map(|ms| format!(", the last expires in {}", seconds(ms)))
            .unwrap_or_default();
        let headline = if uses.held.is_empty() {
            format!("{port} is held by no process, but a plain bind(2) fails until its TIME_WAIT connections expire")
        } else {
            format!("{port} also has connections in TIME_WAIT")
        };
        let lines = vec![
            format!("{n} connection(s) in TIME_WAIT{expiry}"),
            "a server that sets SO_REUSEADDR can bind now if the one that closed them set it too (Node, Go and nginx do); any other must wait".into(),
        ];
        let next = if uses.held.is_empty() {
            let wait = wait_for(uses.last_expiry_ms());
            vec![format!(
                "{} free {port} --until-free {wait}s",
                super::portreap(snapshot)
            )]
        } else {
            Vec::new()
        };
        out.push(Explanation {
            headline,
            lines,
            next,
        });
    }
    out
}

fn explain_held(
    snapshot: &Snapshot,
    port: &str,
    pids: &[u32],
    sockets: &[&PortUse],
) -> Explanation {
    let states = states(sockets);
    if pids.is_empty() {
        return Explanation {
            headline: format!("{port} is held by a process portreap cannot see ({states})"),
            lines: vec!["run as root to see every owner".into()],
            next: Vec::new(),
        };
    }
    let names: Vec<&str> = pids
        .iter()
        .filter_map(|p| snapshot.host.processes.get(p))
        .map(|p| p.name.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let list = pids.iter().map(u32::to_string).collect::<Vec<_>>();
    let headline = format!(
        "{port} is held by process {} (pid {}), which does not listen on it",
        if names.is_empty() {
            "?".to_owned()
        } else {
            names.join(", ")
        },
        list.join(", ")
    );
    let mut lines = vec![format!("sockets: {states}")];
    if let Some(p) = pids.first().and_then(|p| snapshot.host.processes.get(p)) {
        lines.push(format!("command: {}", p.cmdline.join(" ")));
    }
    let next = vec![
        format!("{} free {port} --kill-processes", super::portreap(snapshot)),
        format!("kill {}", list.join(" ")),
    ];
    Explanation {
        headline,
        lines,
        next,
    }
}

/// The port's other sockets in `why --json`, grouped by state and holders.
#[derive(Serialize)]
pub struct UseDoc {
    state: &'static str,
    count: usize,
    pids: Vec<u32>,
    /// TIME_WAIT: when the last of them lets the port go.
    expires_ms: Option<u64>,
}

/// [`UseDoc`]s for `uses`.
pub fn docs(uses: &Uses<'_>) -> Vec<UseDoc> {
    let mut out: Vec<UseDoc> = Vec::new();
    for (pids, sockets) in &uses.held {
        let mut by_state: BTreeMap<&'static str, usize> = BTreeMap::new();
        for s in sockets {
            *by_state.entry(s.state.as_str()).or_default() += 1;
        }
        for (state, count) in by_state {
            out.push(UseDoc {
                state,
                count,
                pids: pids.clone(),
                expires_ms: None,
            });
        }
    }
    if !uses.time_wait.is_empty() {
        out.push(UseDoc {
            state: TcpState::TimeWait.as_str(),
            count: uses.time_wait.len(),
            pids: Vec::new(),
            expires_ms: uses.last_expiry_ms(),
        });
    }
    out
}

/// One line on who holds `port` now, from a fresh read of the host alone.
pub fn held_now(snapshot: &Snapshot, proto: crate::model::Proto, port: u16) -> String {
    let name = |pid: &u32| {
        snapshot.host.processes.get(pid).map_or_else(
            || format!("pid {pid}"),
            |p| format!("{} (pid {pid})", p.name),
        )
    };
    let listeners: Vec<String> = snapshot
        .host
        .sockets
        .iter()
        .filter(|s| s.proto == proto && s.port == port)
        .flat_map(|s| s.pids.iter().map(name).collect::<Vec<_>>())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let at = format!("{port}/{proto}");
    if !listeners.is_empty() {
        return format!("{at}: held by {}", listeners.join(", "));
    }
    let uses = Uses::on(snapshot, port);
    if proto == crate::model::Proto::Tcp && !uses.is_empty() {
        if let Some((pids, sockets)) = uses.held.iter().next() {
            let who: Vec<String> = pids.iter().map(name).collect();
            let who = if who.is_empty() {
                "a process portreap cannot see".to_owned()
            } else {
                who.join(", ")
            };
            return format!(
                "{at}: held by {who}, which does not listen on it ({})",
                states(sockets)
            );
        }
        let expiry = uses
            .last_expiry_ms()
            .map(seconds)
            .unwrap_or_else(|| "?".into());
        return format!(
            "{at}: only {} connection(s) in TIME_WAIT, the last expires in {expiry}: pass --until-free {}s to wait for them",
            uses.time_wait.len(),
            wait_for(uses.last_expiry_ms())
        );
    }
    format!("{at}: held by a socket portreap cannot see (run as root to see every owner)")
}
