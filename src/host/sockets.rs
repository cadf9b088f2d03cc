//! The kernel's side: listening and bound sockets and every use of an asked port, from
//! `sock_diag` dumps (see [`super::diag`]).

use std::collections::HashSet;

use anyhow::Context;

use super::{diag, Owners};
use crate::model::{Proto, Socket};
use crate::portspec::{PortRange, PortSpec};

/// The port ranges of `spec` that select `proto`.
pub(super) fn ranges_of(spec: &PortSpec, proto: Proto) -> Vec<PortRange> {
    spec.0
        .iter()
        .filter(|sel| sel.proto.is_none_or(|p| p == proto))
        .map(|sel| sel.range)
        .collect()
}

/// The `proto` sockets in `states` of both address families, those on `ranges` if given
/// (the kernel filters, as for `ss 'sport = :PORT'`; a list too long for its filter, or
/// a filter it refuses, is picked here instead).
pub(super) fn dump_ports(
    proto: Proto,
    states: diag::States,
    ranges: Option<&[PortRange]>,
) -> std::io::Result<Vec<diag::Entry>> {
    let filter = ranges.filter(|r| r.len() <= diag::MAX_FILTERED_RANGES);
    let keep = |e: &diag::Entry| {
        ranges.is_none_or(|r| r.iter().any(|range| range.contains(e.socket.port)))
    };
    // TCP: both families in one walk of the kernel's tables when it takes the older
    // request, else (or when it refuses the filter) one family at a time.
    if proto == Proto::Tcp {
        if let Ok(found) = diag::dump_tcp_states(states, filter) {
            return Ok(once_each(found.into_iter().filter(keep).collect()));
        }
    }
    let mut out = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        let dump = |filter| diag::dump_states(family as u8, proto, states, filter);
        let answer = dump(filter).or_else(|e| match filter {
            Some(_) => dump(None),
            None => Err(e),
        });
        match answer {
            Ok(found) => out.extend(found.into_iter().filter(keep)),
            // A kernel without IPv6 has no IPv6 sockets to list.
            Err(e)
                if family == libc::AF_INET6
                    && matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EAFNOSUPPORT)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(once_each(out))
}

/// A dump is not atomic: a table that changes while the kernel walks it in batches may
/// name a socket twice. A socket's inode names it alone (TIME_WAIT has none: those are
/// kept as they come).
pub(super) fn once_each(mut found: Vec<diag::Entry>) -> Vec<diag::Entry> {
    let mut seen = HashSet::new();
    found.retain(|e| e.socket.inode == 0 || seen.insert(e.socket.inode));
    found
}

/// Every listening TCP and bound UDP socket, IPv4 and IPv6; with [`Owners::OnPorts`] only
/// those on the ports.
pub(super) fn list_sockets(owners: Owners<'_>) -> anyhow::Result<Vec<Socket>> {
    let mut sockets = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp] {
        let ranges = owners.ports().map(|spec| ranges_of(spec, proto));
        if ranges.as_ref().is_some_and(Vec::is_empty) {
            continue;
        }
        let found = dump_ports(proto, diag::States::Listening, ranges.as_deref())
            .context("cannot list sockets through netlink (sock_diag)")?;
        sockets.extend(found.into_iter().map(|e| e.socket));
    }
    Ok(sockets)
}

/// The TCP sockets on the ports of `spec` in every state but LISTEN, both families.
pub(super) fn list_port_uses(spec: &PortSpec) -> anyhow::Result<Vec<crate::model::PortUse>> {
    use crate::model::{PortUse, TcpState};
    let ranges = ranges_of(spec, Proto::Tcp);
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let found = dump_ports(Proto::Tcp, diag::States::Others, Some(&ranges))
        .context("cannot list the ports' connections through netlink (sock_diag)")?;
    Ok(found
        .into_iter()
        .map(|e| {
            // The bind table's sockets (Linux 6.8+, asked by TCPF_BOUND_INACTIVE) come
            // back in state CLOSE: a closed socket that is not bound is in no table.
            let state = match TcpState::from_kernel(e.state) {
                TcpState::Close => TcpState::BoundInactive,
                state => state,
            };
            PortUse {
                ip: e.socket.ip,
                port: e.socket.port,
                state,
                peer: e.peer,
                expires_ms: (state == TcpState::TimeWait).then_some(u64::from(e.expires_ms)),
                inode: e.socket.inode,
                uid: e.socket.uid,
                pids: Vec::new(),
            }
        })
        .collect())
}
