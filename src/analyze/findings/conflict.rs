//! Reading an engine's start error: was the host port taken, and which one.

use std::net::{IpAddr, SocketAddr};

use crate::model::Proto;

/// The part of a start error that matters: the engine wraps it in "driver failed
/// programming external connectivity on endpoint NAME (ID): ...".
pub fn conflict_core(error: &str) -> &str {
    [
        "Bind for ",
        "Error starting userland proxy: ",
        "failed to bind host port for ",
        "listen ",
    ]
    .iter()
    .find_map(|marker| error.find(marker).map(|i| &error[i..]))
    .unwrap_or(error)
}

/// Whether a start error says the host port was taken, and which port.
pub fn port_conflict(error: &str) -> Option<(Option<Proto>, Option<IpAddr>, u16)> {
    let lower = error.to_ascii_lowercase();
    if !(lower.contains("port is already allocated") || lower.contains("address already in use")) {
        return None;
    }
    // "Bind for 0.0.0.0:3000 failed: port is already allocated"
    // "listen tcp4 0.0.0.0:3000: bind: address already in use"
    // "listen udp6 [::]:53: bind: address already in use"
    // Engines 28+, which bind the host port themselves:
    // "failed to bind host port for 0.0.0.0:3000:172.17.0.2:80/tcp: address already in use"
    if let Some(mapping) = lower
        .find("failed to bind host port for ")
        .map(|i| &error[i + "failed to bind host port for ".len()..])
    {
        return host_side(mapping);
    }
    let proto = if lower.contains("listen udp") {
        Some(Proto::Udp)
    } else if lower.contains("listen tcp") {
        Some(Proto::Tcp)
    } else {
        None
    };
    for word in error.split(|c: char| c.is_whitespace()) {
        let word = word.trim_end_matches(':');
        if let Ok(addr) = word.parse::<SocketAddr>() {
            return Some((proto, Some(addr.ip()), addr.port()));
        }
        // Engines 28+ print an IPv6 host address unbracketed: "Bind for :::3000 failed".
        if let Some((ip, port)) = word.rsplit_once(':') {
            if let (Ok(ip), Ok(port)) = (ip.parse::<IpAddr>(), port.parse::<u16>()) {
                return Some((proto, Some(ip), port));
            }
        }
    }
    None
}

/// The host side of an engine's port mapping `HOSTIP:PORT:CONTAINERIP:PORT/PROTO`, the
/// host address bracketed when IPv6 (`[::]:53:...`).
fn host_side(mapping: &str) -> Option<(Option<Proto>, Option<IpAddr>, u16)> {
    let mapping = mapping.split_whitespace().next()?.trim_end_matches(':');
    let proto = match mapping.rsplit_once('/').map(|(_, p)| p) {
        Some("tcp") => Some(Proto::Tcp),
        Some("udp") => Some(Proto::Udp),
        _ => None,
    };
    let (ip, rest) = match mapping.strip_prefix('[') {
        Some(v6) => {
            let (ip, rest) = v6.split_once(']')?;
            (ip, rest.strip_prefix(':')?)
        }
        None => mapping.split_once(':')?,
    };
    let port = rest.split(':').next()?.parse().ok()?;
    Some((proto, Some(ip.parse().ok()?), port))
}
