//! What `free` reports beyond its actions: whether each named port is free now (waiting
//! for TIME_WAIT with `--until-free`), and who holds one that is not.

use super::output::say;
use crate::config::Global;
use crate::model::Proto;
use crate::report;

/// The (protocol, port) pairs a spec names; a port without protocol names both.
pub(super) fn named_ports(spec: &crate::portspec::PortSpec) -> Vec<(Proto, u16)> {
    let mut out = Vec::new();
    for sel in &spec.0 {
        let protos: &[Proto] = match sel.proto {
            Some(Proto::Tcp) => &[Proto::Tcp],
            Some(Proto::Udp) => &[Proto::Udp],
            None => &[Proto::Tcp, Proto::Udp],
        };
        for port in sel.range.start..=sel.range.end {
            for proto in protos {
                if !out.contains(&(*proto, port)) {
                    out.push((*proto, port));
                }
            }
        }
    }
    out
}

/// Free on every address: binds on 0.0.0.0 and on :: both succeed.
fn port_is_free(proto: Proto, port: u16) -> bool {
    ["0.0.0.0", "::"].iter().all(|ip| {
        crate::act::system::probe(&crate::analyze::findings::PortRef {
            proto,
            // Both literals above are valid addresses.
            ip: ip.parse().expect("literal address"),
            port,
        })
    })
}

/// Whether each port is free now, waiting at most `until` for all of them to be.
pub(super) fn wait_until_free(
    ports: &[(Proto, u16)],
    until: Option<std::time::Duration>,
    json: bool,
) -> Vec<(Proto, u16, bool)> {
    let check = || -> Vec<(Proto, u16, bool)> {
        ports
            .iter()
            .map(|&(proto, port)| (proto, port, port_is_free(proto, port)))
            .collect()
    };
    let mut now = check();
    let Some(until) = until else { return now };
    let started = std::time::Instant::now();
    let mut said = false;
    while now.iter().any(|(_, _, free)| !free) && started.elapsed() < until {
        if !said {
            say(
                json,
                &format!(
                    "Waiting up to {}s for the ports to be free...",
                    until.as_secs()
                ),
            );
            said = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        now = check();
    }
    if said {
        crate::messages::detail(&format!("waited {:.1}s", started.elapsed().as_secs_f64()));
    }
    now
}

pub(super) fn report_named_ports(global: &Global, json: bool, free: &[(Proto, u16, bool)]) {
    let held: Vec<(Proto, u16)> = free
        .iter()
        .filter(|(_, _, f)| !f)
        .map(|&(proto, port, _)| (proto, port))
        .collect();
    if free.is_empty() {
        return;
    }
    if held.is_empty() {
        say(json, "All named ports are free.");
        return;
    }
    let names: Vec<String> = held
        .iter()
        .map(|(proto, port)| format!("{port}/{proto}"))
        .collect();
    say(json, &format!("Still held: {}.", names.join(", ")));
    for line in held_by_now(global, &held) {
        say(json, &format!("  {line}"));
    }
}

/// Who holds `ports` now, read afresh: the answer is the kernel's, never a guess that
/// the engine reserves them.
fn held_by_now(global: &Global, ports: &[(Proto, u16)]) -> Vec<String> {
    use crate::portspec::{PortRange, PortSel, PortSpec};
    let spec = PortSpec(
        ports
            .iter()
            .map(|&(proto, port)| PortSel {
                proto: Some(proto),
                range: PortRange {
                    start: port,
                    end: port,
                },
            })
            .collect(),
    );
    let Ok(host) =
        crate::host::collect(&global.proc_root, crate::host::Owners::EveryHolderOn(&spec))
    else {
        return Vec::new();
    };
    let snapshot = crate::model::Snapshot {
        host,
        ..crate::model::Snapshot::default()
    };
    ports
        .iter()
        .map(|&(proto, port)| report::bind::held_now(&snapshot, proto, port))
        .collect()
}
