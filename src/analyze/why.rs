//! What `why` asks of an analysis, per port: who holds it (grouped by holder, with the
//! findings that concern each) and which containers want it without holding it. Pure;
//! `report::why` turns it into sentences and documents.

use std::collections::HashMap;

use super::findings::{Finding, Kind, PortRef};
use super::{Analysis, Owner, PortEntry, Via};
use crate::model::{ContainerState, Proto, Snapshot};

/// One port to explain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Asked {
    /// Protocol.
    pub proto: Proto,
    /// Port.
    pub port: u16,
}

/// The entries (sockets, reservations) on a port, grouped by holder, with the findings
/// that concern them.
pub struct Holder<'a> {
    /// The holder's sockets and reservations on the port.
    pub entries: Vec<&'a PortEntry>,
    /// The findings on those entries, in catalogue order.
    pub findings: Vec<&'a Finding>,
}

/// What `why` looks up for each asked port, indexed once per answer: a container that
/// publishes or asks for tens of thousands of ports must not make each port a walk over
/// all of them (`why 1-65535` stays linear in sockets, bindings and findings).
pub struct Index<'a> {
    analysis: &'a Analysis,
    /// The port entries by protocol and port.
    entries: HashMap<(Proto, u16), Vec<&'a PortEntry>>,
    /// The findings by each address and port they concern.
    findings: HashMap<PortRef, Vec<&'a Finding>>,
    /// Containers that could hold no port (not running) but ask for this one.
    wanting: HashMap<(Proto, u16), Vec<usize>>,
    /// The findings of each container by protocol and port, whatever the address.
    of_container: HashMap<(usize, Proto, u16), Vec<&'a Finding>>,
}

impl<'a> Index<'a> {
    /// Indexes one answer.
    pub fn new(snapshot: &'a Snapshot, analysis: &'a Analysis) -> Self {
        let mut entries: HashMap<(Proto, u16), Vec<&PortEntry>> = HashMap::new();
        for e in &analysis.ports {
            entries.entry((e.proto, e.port)).or_default().push(e);
        }
        let mut findings: HashMap<PortRef, Vec<&Finding>> = HashMap::new();
        let mut of_container: HashMap<(usize, Proto, u16), Vec<&Finding>> = HashMap::new();
        for f in &analysis.findings {
            for p in &f.ports {
                let list = findings.entry(*p).or_default();
                if !list.iter().any(|g| std::ptr::eq(*g, f)) {
                    list.push(f);
                }
                if let Some(c) = f.container {
                    let list = of_container.entry((c, p.proto, p.port)).or_default();
                    if !list.iter().any(|g| std::ptr::eq(*g, f)) {
                        list.push(f);
                    }
                }
            }
        }
        let mut wanting: HashMap<(Proto, u16), Vec<usize>> = HashMap::new();
        for (index, c) in snapshot.containers.iter().enumerate() {
            // A crash loop holds its ports only while up: between restarts it still
            // takes them back, so it wants them like a stopped container does.
            let looping = analysis
                .findings
                .iter()
                .any(|f| f.container == Some(index) && f.kind == Kind::RestartingContainer);
            if matches!(c.state, ContainerState::Running | ContainerState::Paused) && !looping {
                continue;
            }
            for r in &c.requested {
                for port in r
                    .host_ports
                    .iter()
                    .flat_map(|range| range.start..=range.end)
                {
                    let list = wanting.entry((r.proto, port)).or_default();
                    if list.last() != Some(&index) {
                        list.push(index);
                    }
                }
            }
        }
        Index {
            analysis,
            entries,
            findings,
            wanting,
            of_container,
        }
    }

    /// The entries on the asked port.
    pub fn on(&self, asked: Asked) -> &[&'a PortEntry] {
        self.entries
            .get(&(asked.proto, asked.port))
            .map_or(&[], Vec::as_slice)
    }
}

/// Who holds the asked port: its entries grouped by holder (a container, a proxy, a
/// process...), requested-only bindings left out (those are wanters).
pub fn holders<'a>(index: &Index<'a>, asked: Asked) -> Vec<Holder<'a>> {
    let mut out: Vec<Holder<'a>> = Vec::new();
    for e in index.on(asked).iter().copied().filter(|e| {
        !matches!(
            e.owner,
            Owner::Container {
                via: Via::Requested,
                ..
            }
        )
    }) {
        let same = |h: &Holder<'a>| {
            let first = h.entries[0];
            match (&first.owner, &e.owner) {
                (Owner::Container { index: a, .. }, Owner::Container { index: b, .. }) => a == b,
                (Owner::Proxy { target: a }, Owner::Proxy { target: b }) => a == b,
                (
                    Owner::Conmon {
                        container_id: a, ..
                    },
                    Owner::Conmon {
                        container_id: b, ..
                    },
                ) => a == b,
                (Owner::Engine, Owner::Engine) => true,
                (Owner::NotJudged { reason: a }, Owner::NotJudged { reason: b }) => a == b,
                (Owner::Forwarder { product: a }, Owner::Forwarder { product: b }) => a == b,
                (Owner::Process, Owner::Process) => first.holder_pid == e.holder_pid,
                (Owner::Unknown { .. }, Owner::Unknown { .. }) => true,
                _ => false,
            }
        };
        match out.iter_mut().find(|h| same(h)) {
            Some(h) => h.entries.push(e),
            None => out.push(Holder {
                entries: vec![e],
                findings: Vec::new(),
            }),
        }
    }
    for h in &mut out {
        h.findings = findings_for(index, &h.entries);
    }
    out
}

fn findings_for<'a>(index: &Index<'a>, entries: &[&PortEntry]) -> Vec<&'a Finding> {
    let mut out: Vec<&'a Finding> = Vec::new();
    for e in entries {
        for ip in e.served() {
            let here = PortRef {
                proto: e.proto,
                ip,
                port: e.port,
            };
            for f in index.findings.get(&here).into_iter().flatten() {
                if e.findings.contains(&f.kind) && !out.iter().any(|g| std::ptr::eq(*g, *f)) {
                    out.push(f);
                }
            }
        }
    }
    // In catalogue order, as the analysis sorted them.
    let order = |f: &&Finding| {
        index
            .analysis
            .findings
            .iter()
            .position(|g| std::ptr::eq(g, *f))
    };
    out.sort_by_key(order);
    out
}

/// A container that asks for the port without holding it.
pub struct Wanter<'a> {
    /// Index into the snapshot's containers.
    pub container: usize,
    /// The container's finding on the port that says why it wants it (a blocked start, a
    /// dormant binding, a dead container, a crash loop), if it has one.
    pub finding: Option<&'a Finding>,
}

/// The containers that ask for the asked port and do not hold it now.
pub fn wanters<'a>(index: &Index<'a>, asked: Asked) -> Vec<Wanter<'a>> {
    let mut out = Vec::new();
    let wanting = index.wanting.get(&(asked.proto, asked.port));
    for &i in wanting.into_iter().flatten() {
        let holds = index.on(asked).iter().any(|e| {
            matches!(e.owner, Owner::Container { index, via } if index == i && via != Via::Requested)
        });
        if holds {
            continue;
        }
        let finding = index
            .of_container
            .get(&(i, asked.proto, asked.port))
            .into_iter()
            .flatten()
            .find(|f| {
                matches!(
                    f.kind,
                    Kind::BlockedStart
                        | Kind::DormantBinding
                        | Kind::DeadContainer
                        | Kind::RestartingContainer
                )
            })
            .copied();
        out.push(Wanter {
            container: i,
            finding,
        });
    }
    out
}

/// Which ports a spec asks about: every port something holds or wants, and single ports
/// even when nothing does (so `why 3000` can say it is free).
pub fn asked_ports(
    snapshot: &Snapshot,
    analysis: &Analysis,
    spec: &crate::portspec::PortSpec,
) -> Vec<Asked> {
    let mut out: std::collections::BTreeSet<Asked> = std::collections::BTreeSet::new();
    let mut push = |a: Asked| {
        out.insert(a);
    };
    for e in &analysis.ports {
        if spec.matches(e.proto, e.port) {
            push(Asked {
                proto: e.proto,
                port: e.port,
            });
        }
    }
    for c in &snapshot.containers {
        for r in &c.requested {
            if let Some(range) = r.host_ports {
                if range.start == range.end && spec.matches(r.proto, range.start) {
                    push(Asked {
                        proto: r.proto,
                        port: range.start,
                    });
                }
            }
        }
    }
    for sel in &spec.0 {
        if sel.range.start == sel.range.end {
            // A bare port means TCP unless UDP was named or something holds it on UDP.
            push(Asked {
                proto: sel.proto.unwrap_or(Proto::Tcp),
                port: sel.range.start,
            });
        }
    }
    out.into_iter().collect()
}
