//! The scan as Prometheus text (exposition format 0.0.4), for node_exporter's textfile
//! collector and the monitoring a fleet already runs: findings by kind and severity, ports
//! by owner, engines up or down, how long the scan took. Every finding kind is always
//! present (zero when none), so an alert on `portreap_findings{severity="leak"} > 0` never
//! sees a series vanish and come back.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::analyze::findings::Kind;
use crate::analyze::Analysis;
use crate::model::{EngineStatus, Snapshot};

/// What the metrics describe beyond the snapshot itself.
pub struct Run {
    /// Wall time from start to analysis done.
    pub elapsed: Duration,
    /// Whether every socket was looked at (`--all`), else only Docker's.
    pub all: bool,
}

/// Renders the metrics, counting the ports the scan's view shows (Docker's, or every
/// one with `--all`).
pub fn render(snapshot: &Snapshot, analysis: &Analysis, run: &Run) -> String {
    let mut out = String::new();
    findings(&mut out, analysis);
    ports(&mut out, analysis, run);
    engines(&mut out, snapshot);
    single(
        &mut out,
        "portreap_host_unreadable_processes",
        "Processes whose descriptors could not be read; owners may be missing when non-zero.",
        snapshot.host.unreadable_processes,
    );
    single(
        &mut out,
        "portreap_scan_duration_seconds",
        "How long the scan took, facts and analysis.",
        format!("{:.6}", run.elapsed.as_secs_f64()),
    );
    if let Some(at) = snapshot.taken_at {
        single(
            &mut out,
            "portreap_scan_timestamp_seconds",
            "When the scan ran, in seconds since the Unix epoch.",
            at,
        );
    }
    single(
        &mut out,
        &format!(
            "portreap_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        ),
        "The portreap that wrote these metrics.",
        1,
    );
    out
}

fn gauge(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// A gauge with one sample; `series` is its name, with labels if any.
fn single(out: &mut String, series: &str, help: &str, value: impl std::fmt::Display) {
    let name = series.split('{').next().unwrap_or(series);
    gauge(out, name, help);
    let _ = writeln!(out, "{series} {value}");
}

fn findings(out: &mut String, analysis: &Analysis) {
    gauge(
        out,
        "portreap_findings",
        "Findings of the scan, by kind and severity (an orphan service is a leak when it blocks its project).",
    );
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for kind in Kind::ALL {
        counts.insert((kind.id(), kind.severity().as_str()), 0);
    }
    for f in &analysis.findings {
        *counts
            .entry((f.kind.id(), f.severity.as_str()))
            .or_default() += 1;
    }
    for ((kind, severity), n) in counts {
        let _ = writeln!(
            out,
            "portreap_findings{{kind=\"{kind}\",severity=\"{severity}\"}} {n}"
        );
    }
}

fn ports(out: &mut String, analysis: &Analysis, run: &Run) {
    gauge(
        out,
        "portreap_ports",
        "Host sockets and engine reservations by owner kind (scope=docker: those involving an engine; scope=all: every one).",
    );
    let scope = if run.all { "all" } else { "docker" };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in analysis
        .ports
        .iter()
        .filter(|p| run.all || p.involves_docker())
    {
        *counts.entry(p.owner.kind()).or_default() += 1;
    }
    for (owner, n) in counts {
        let _ = writeln!(
            out,
            "portreap_ports{{owner=\"{owner}\",scope=\"{scope}\"}} {n}"
        );
    }
}

fn engines(out: &mut String, snapshot: &Snapshot) {
    let all: Vec<&EngineStatus> = snapshot.all_engines().collect();
    gauge(
        out,
        "portreap_engine_up",
        "Whether the engine answered in full (0: unreachable, or a partial answer).",
    );
    for e in &all {
        let _ = writeln!(
            out,
            "portreap_engine_up{} {}",
            engine_labels(e),
            u8::from(e.reachable && e.error.is_none())
        );
    }
    gauge(
        out,
        "portreap_engine_containers",
        "Containers the engine listed, in every state.",
    );
    for e in &all {
        let n = snapshot
            .containers
            .iter()
            .filter(|c| snapshot.engine_of(c).endpoint == e.endpoint)
            .count();
        let _ = writeln!(out, "portreap_engine_containers{} {n}", engine_labels(e));
    }
}

fn engine_labels(e: &EngineStatus) -> String {
    format!(
        "{{endpoint=\"{}\",kind=\"{}\"}}",
        label(&e.endpoint),
        label(e.kind.map_or("unknown", crate::model::EngineKind::as_str))
    )
}

/// A label value as the exposition format needs it: backslash, double quote and newline
/// escaped (endpoints come from the environment and contexts, and may hold any of them).
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("unix:///run/docker.sock"), "unix:///run/docker.sock");
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_kind_is_present_when_nothing_is_found() {
        let snapshot = Snapshot::default();
        let analysis = crate::analyze::analyze(&snapshot);
        let run = Run {
            elapsed: Duration::from_millis(12),
            all: false,
        };
        let text = render(&snapshot, &analysis, &run);
        for kind in Kind::ALL {
            assert!(
                text.contains(&format!("portreap_findings{{kind=\"{}\",", kind.id())),
                "{text}"
            );
        }
        assert!(
            text.contains("portreap_scan_duration_seconds 0.012000\n"),
            "{text}"
        );
        assert!(
            text.contains("portreap_engine_up{endpoint=\"\",kind=\"unknown\"} 0"),
            "{text}"
        );
    }
}
