//! The rules about one container: each reads the container and the attributed ports and
//! says whether its kind applies, with the evidence in the reason.

use std::net::IpAddr;

use super::{age, conflict_core, describe, holder_phrase, list, port_conflict};
use super::{container_ports, ComposeGone, Evidence, Finding, Kind, PortNow, PortRef};
use crate::analyze::{Owner, PortEntry, Via};
use crate::model::{Container, ContainerState, Health, Proto, RestartPolicy, Snapshot, Timestamp};

/// What every container rule reads: the container, its ports and how to name it.
struct Subject<'a> {
    snapshot: &'a Snapshot,
    ports: &'a [PortEntry],
    index: usize,
    c: &'a Container,
    /// The ports it holds now, or else the ones it asks for.
    refs: Vec<PortRef>,
    /// `web-1 (compose project shop, service web)`.
    who: String,
}

impl Subject<'_> {
    fn finding(&self, kind: Kind, evidence: Evidence, reason: String) -> Finding {
        self.finding_on(kind, evidence, reason, self.refs.clone())
    }

    fn finding_on(
        &self,
        kind: Kind,
        evidence: Evidence,
        reason: String,
        ports: Vec<PortRef>,
    ) -> Finding {
        Finding {
            kind,
            severity: kind.severity(),
            ports,
            container: Some(self.index),
            pids: Vec::new(),
            evidence,
            reason,
            action: kind.default_action(),
        }
    }
}

type Rule = fn(&Subject) -> Option<Finding>;

/// Every container rule, in the order findings are listed.
const RULES: [Rule; 7] = [
    dead,
    orphaned_compose,
    paused,
    unhealthy,
    restarting,
    dormant_binding,
    blocked_start,
];

/// Every finding about container `index`.
pub(super) fn findings(
    snapshot: &Snapshot,
    ports: &[PortEntry],
    index: usize,
    c: &Container,
) -> Vec<Finding> {
    let subject = Subject {
        snapshot,
        ports,
        index,
        c,
        refs: container_ports(c),
        who: describe(snapshot, c),
    };
    RULES.iter().filter_map(|rule| rule(&subject)).collect()
}

fn dead(s: &Subject) -> Option<Finding> {
    (s.c.state == ContainerState::Dead && !s.refs.is_empty()).then(|| {
        s.finding(
            Kind::DeadContainer,
            Evidence::Dead,
            format!(
                "{} is dead (its removal failed part way) and still has bindings {}",
                s.who,
                list(&s.refs)
            ),
        )
    })
}

/// Positive evidence only: a path that could not be judged (unreadable, another mount
/// namespace) is never "gone".
fn orphaned_compose(s: &Subject) -> Option<Finding> {
    let fs = &s.snapshot.fs;
    if s.refs.is_empty() || !fs.visible {
        return None;
    }
    let (dir, files) = s.c.compose_paths()?;
    if std::iter::once(&dir)
        .chain(&files)
        .any(|p| fs.unjudged.contains_key(p))
    {
        return None;
    }
    let missing = |p: &String| fs.exists.get(p) == Some(&false);
    let (evidence, gone) = if missing(&dir) {
        let gone = format!("its working directory {dir} no longer exists");
        (ComposeGone::WorkingDir(dir), gone)
    } else if !files.is_empty() && files.iter().all(missing) {
        let gone = format!(
            "none of its compose files exist any more ({})",
            files.join(", ")
        );
        (ComposeGone::Files(files), gone)
    } else {
        return None;
    };
    Some(s.finding(
        Kind::OrphanedCompose,
        Evidence::ComposeGone(evidence),
        format!(
            "{}: {gone}; nothing can `compose down` it (ports {})",
            s.who,
            list(&s.refs)
        ),
    ))
}

fn paused(s: &Subject) -> Option<Finding> {
    if s.c.state != ContainerState::Paused || s.c.live.is_empty() {
        return None;
    }
    let since = age(s.snapshot, s.c.started_at.as_ref())
        .map(|a| format!(" (up {a})"))
        .unwrap_or_default();
    // Its proxies may have died while it slept: then the engine still reserves the
    // ports, but nothing accepts on them.
    let (reserved, open): (Vec<PortRef>, Vec<PortRef>) = s
        .refs
        .iter()
        .partition(|r| reserved_only(s.ports, s.index, r));
    let mut says = Vec::new();
    if !open.is_empty() {
        says.push(format!(
            "{} accept connections and nothing answers",
            list(&open)
        ));
    }
    if !reserved.is_empty() {
        says.push(format!(
            "the engine still reserves {} for it with no socket open (its proxies are gone): connections are refused and nothing else can publish them",
            list(&reserved)
        ));
    }
    Some(s.finding(
        Kind::PausedContainer,
        Evidence::Paused { open, reserved },
        format!("{} is paused{since}: {}", s.who, says.join("; ")),
    ))
}

fn unhealthy(s: &Subject) -> Option<Finding> {
    let c = s.c;
    if c.state != ContainerState::Running
        || c.health != Some(Health::Unhealthy)
        || c.live.is_empty()
    {
        return None;
    }
    let bound = if c.failing_since_exact {
        ""
    } else {
        "at least "
    };
    let duration = age(s.snapshot, c.failing_since.as_ref())
        .map(|a| format!(" for {bound}{a}"))
        .unwrap_or_default();
    Some(s.finding(
        Kind::UnhealthyContainer,
        Evidence::Unhealthy {
            failing_streak: c.failing_streak,
        },
        format!(
            "{} has been unhealthy{duration} ({} failed checks in a row) while publishing {}",
            s.who,
            c.failing_streak,
            list(&s.refs)
        ),
    ))
}

fn restarting(s: &Subject) -> Option<Finding> {
    let c = s.c;
    let restarts = c
        .restart_policy
        .as_ref()
        .is_some_and(RestartPolicy::restarts);
    let uptime = c
        .started_at
        .as_ref()
        .map(Timestamp::unix)
        .zip(s.snapshot.taken_at)
        .map(|(started, now)| now - started);
    let looping_now = c.state == ContainerState::Restarting;
    // Caught between two crashes: up again, but only briefly, after several restarts.
    let looping_between = c.state == ContainerState::Running
        && restarts
        && c.restart_count >= 3
        && uptime.is_some_and(|u| u < 60);
    if !(looping_now || looping_between) || s.refs.is_empty() {
        return None;
    }
    let state = if looping_now {
        "restarting"
    } else {
        "up again briefly"
    };
    Some(s.finding(
        Kind::RestartingContainer,
        Evidence::Restarting {
            now: looping_now,
            restarts: c.restart_count,
            exit_code: c.exit_code,
        },
        format!(
            "{} is in a restart loop ({state}, {} restarts, last exit code {}): {} flap",
            s.who,
            c.restart_count,
            c.exit_code.map_or("?".to_owned(), |e| e.to_string()),
            list(&s.refs)
        ),
    ))
}

fn dormant_binding(s: &Subject) -> Option<Finding> {
    let c = s.c;
    if c.state != ContainerState::Exited
        || c.restart_policy != Some(RestartPolicy::Always)
        || s.refs.is_empty()
    {
        return None;
    }
    let ago = age(s.snapshot, c.finished_at.as_ref())
        .map(|a| format!(" {a} ago"))
        .unwrap_or_default();
    Some(s.finding(
        Kind::DormantBinding,
        Evidence::Dormant,
        format!(
            "{} exited{ago} with restart policy `always`: it will bind {} again when the engine restarts",
            s.who,
            list(&s.refs)
        ),
    ))
}

/// A container that could not start because its port was taken, with who holds it now.
fn blocked_start(s: &Subject) -> Option<Finding> {
    if !matches!(s.c.state, ContainerState::Created | ContainerState::Exited) {
        return None;
    }
    let error = s.c.error.as_deref()?;
    let (proto, ip, port) = port_conflict(error)?;
    let on_port = |e: &PortEntry| e.port == port && proto.is_none_or(|p| p == e.proto);
    let own = |e: &PortEntry| matches!(e.owner, Owner::Container { index: i, .. } if i == s.index);
    let holders = phrases(s, |e| on_port(e) && e.bound && !own(e));
    // No socket on it, but a container's binding in the engine still takes it: the next
    // start fails the same way.
    let reservers = phrases(s, |e| {
        on_port(e) && !e.bound && matches!(e.owner, Owner::Container { .. }) && !own(e)
    });
    let (held, now) = if holders.is_empty() && !reservers.is_empty() {
        let now = format!(
            "no socket holds port {port} now, but the engine still reserves it for {}",
            reservers.join("; ")
        );
        (PortNow::Reserved, now)
    } else if holders.is_empty() {
        (PortNow::Free, format!("port {port} is free now"))
    } else {
        let now = format!("port {port} is now held by {}", holders.join("; "));
        (PortNow::Held, now)
    };
    let mut blocked: Vec<PortRef> = s.refs.iter().copied().filter(|r| r.port == port).collect();
    if blocked.is_empty() {
        blocked.push(PortRef {
            proto: proto.unwrap_or(Proto::Tcp),
            ip: ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            port,
        });
    }
    let reason = format!(
        "{} could not start: \"{}\"; {now}",
        s.who,
        conflict_core(error)
    );
    let evidence = Evidence::BlockedStart { port, now: held };
    Some(s.finding_on(Kind::BlockedStart, evidence, reason, blocked))
}

/// The sorted, distinct phrases naming the holders of the entries `pick` selects.
fn phrases(s: &Subject, pick: impl Fn(&PortEntry) -> bool) -> Vec<String> {
    let mut out: Vec<String> = s
        .ports
        .iter()
        .filter(|e| pick(e))
        .map(|e| holder_phrase(s.snapshot, e))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether the engine reserves `r` for the container with no socket behind it (a port
/// whose sockets were not read has no such entry: unseen is not unbacked).
fn reserved_only(ports: &[PortEntry], index: usize, r: &PortRef) -> bool {
    ports.iter().any(|e| {
        e.proto == r.proto
            && e.ip == r.ip
            && e.port == r.port
            && matches!(e.owner, Owner::Container { index: i, via: Via::Reservation } if i == index)
    })
}
