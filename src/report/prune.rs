//! Output of `prune`: the plan, one line per action as it completes, a summary, and the
//! JSON report (schema version 1).

use serde::Serialize;

use crate::act::{Outcome, Report};
use crate::analyze::findings::PortRef;
use crate::model::Snapshot;
use crate::plan::{Held, Plan, PlannedAction, Target};

/// What a port still held after its holder is gone means, and what to do: only a
/// container's port can be the engine's to release; a process's is another process's.
fn still_held(action: &PlannedAction) -> &'static str {
    match action.target {
        Target::Container { .. } => "the port is still held after its holder went; if no process holds it, the engine still reserves it: restart the engine (e.g. systemctl restart docker) to release it",
        Target::Process { .. } => "the port is still held after the process went: another process holds it too (`portreap why PORT` names it)",
    }
}

fn ports(ports: &[PortRef]) -> String {
    if ports.is_empty() {
        return "no port".into();
    }
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn kinds(action: &PlannedAction) -> String {
    action
        .kinds
        .iter()
        .map(|k| k.id())
        .collect::<Vec<_>>()
        .join(", ")
}

fn held_name(snapshot: &Snapshot, held: &Held) -> String {
    held.container
        .and_then(|i| snapshot.containers.get(i))
        .map_or_else(|| "holder".to_owned(), |c| format!("container {}", c.name))
}

/// The plan, for people; `nothing` is said when there is no action.
pub fn plan_text(snapshot: &Snapshot, plan: &Plan, nothing: &str) -> String {
    let mut out = String::new();
    if plan.actions.is_empty() {
        out.push_str(nothing);
        out.push('\n');
    } else {
        out.push_str(&format!(
            "Plan ({} action{}):\n",
            plan.actions.len(),
            if plan.actions.len() == 1 { "" } else { "s" }
        ));
        for a in &plan.actions {
            let why = if a.kinds.is_empty() {
                String::new()
            } else {
                format!(" [{}]", kinds(a))
            };
            let line = format!("  {}{why} on {}", a.describe(), ports(&a.ports));
            out.push_str(&format!("{}\n", super::safe::line(&line)));
        }
    }
    for k in &plan.kept {
        let line = format!(
            "  keep {} on {}: {}",
            held_name(snapshot, k),
            ports(&k.ports),
            k.reason
        );
        out.push_str(&format!("{}\n", super::safe::line(&line)));
    }
    for r in &plan.refused {
        let line = format!("  leave {}: {}", ports(&r.ports), r.reason);
        out.push_str(&format!("{}\n", super::safe::line(&line)));
    }
    out
}

/// One line as an action completes.
pub fn progress_line(report: &Report) -> String {
    super::safe::line(&raw_progress_line(report)).into_owned()
}

fn raw_progress_line(report: &Report) -> String {
    let what = report.action.describe();
    match &report.outcome {
        Outcome::Planned => format!("planned  {what}"),
        Outcome::Done => match report.port_free_after {
            Some(true) => format!("done     {what}: {} free", ports(&report.action.ports)),
            None => format!(
                "done     {what}; {} not probed: its engine is not proven to run on this host",
                ports(&report.action.ports)
            ),
            Some(false) => format!(
                "done     {what}, but {} still held: {}",
                ports(&report.still_held),
                still_held(&report.action)
            ),
        },
        Outcome::Skipped(why) => format!("skipped  {what}: {why}"),
        Outcome::Failed(why) => format!("failed   {what}: {why}"),
    }
}

/// One action as a JSON line, for log collectors (`--log-format json`).
pub fn log_line(report: &Report) -> String {
    let a = &report.action;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    serde_json::json!({
        "ts": ts,
        "event": "action",
        "action": a.action().as_str(),
        "target": a.describe(),
        "kinds": a.kinds.iter().map(|k| k.id()).collect::<Vec<_>>(),
        "ports": a.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "outcome": report.outcome.as_str(),
        "detail": report.outcome.detail(),
        "port_free_after": report.port_free_after,
    })
    .to_string()
}

/// `3 done, 1 skipped, 0 failed.`
pub fn summary(reports: &[Report]) -> String {
    let count = |f: fn(&Outcome) -> bool| reports.iter().filter(|r| f(&r.outcome)).count();
    let still = reports
        .iter()
        .filter(|r| r.port_free_after == Some(false))
        .count();
    let mut line = format!(
        "{} done, {} skipped, {} failed",
        count(|o| *o == Outcome::Done),
        count(|o| matches!(o, Outcome::Skipped(_))),
        count(|o| matches!(o, Outcome::Failed(_)))
    );
    if still > 0 {
        line.push_str(&format!("; {still} with a port still held"));
    }
    line.push('.');
    line
}

#[derive(Serialize)]
struct PortDoc {
    proto: &'static str,
    ip: String,
    port: u16,
}

fn port_docs(ports: &[PortRef]) -> Vec<PortDoc> {
    ports
        .iter()
        .map(|p| PortDoc {
            proto: p.proto.as_str(),
            ip: p.ip.to_string(),
            port: p.port,
        })
        .collect()
}

#[derive(Serialize)]
struct ContainerDoc<'a> {
    id: &'a str,
    name: &'a str,
    compose_project: Option<&'a str>,
}

#[derive(Serialize)]
struct ActionDoc<'a> {
    kind: Option<&'static str>,
    kinds: Vec<&'static str>,
    action: &'static str,
    pids: Vec<u32>,
    container: Option<ContainerDoc<'a>>,
    ports: Vec<PortDoc>,
    outcome: &'static str,
    detail: Option<String>,
    port_free_after: Option<bool>,
    ports_still_held: Vec<PortDoc>,
}

#[derive(Serialize)]
struct HeldDoc<'a> {
    kinds: Vec<&'static str>,
    container: Option<ContainerDoc<'a>>,
    ports: Vec<PortDoc>,
    reason: &'a str,
}

#[derive(Serialize)]
struct PruneDoc<'a> {
    schema_version: u32,
    dry_run: bool,
    actions: Vec<ActionDoc<'a>>,
    kept: Vec<HeldDoc<'a>>,
    refused: Vec<HeldDoc<'a>>,
    /// `free` only: whether each named port is free after acting.
    #[serde(skip_serializing_if = "Option::is_none")]
    ports_free: Option<Vec<PortFreeDoc>>,
}

#[derive(Serialize)]
struct PortFreeDoc {
    proto: &'static str,
    port: u16,
    free: bool,
}

fn held_doc<'a>(snapshot: &'a Snapshot, h: &'a Held) -> HeldDoc<'a> {
    HeldDoc {
        kinds: h.kinds.iter().map(|k| k.id()).collect(),
        container: h
            .container
            .and_then(|i| snapshot.containers.get(i))
            .map(|c| ContainerDoc {
                id: &c.id,
                name: &c.name,
                compose_project: c.compose_project(),
            }),
        ports: port_docs(&h.ports),
        reason: &h.reason,
    }
}

/// How a JSON report is laid out: indented for people, or on one line (a run's record
/// appended to a JSON Lines log by cron or a timer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Indented, for a terminal or a report file.
    Pretty,
    /// One line, ended by a newline.
    OneLine,
}

/// The JSON report; `free`'s names whether each of its ports is free (`ports_free`).
pub fn json(
    snapshot: &Snapshot,
    plan: &Plan,
    reports: &[Report],
    dry_run: bool,
    ports_free: Option<&[(crate::model::Proto, u16, bool)]>,
    layout: Layout,
) -> String {
    let doc = PruneDoc {
        schema_version: super::json::SCHEMA_VERSION,
        dry_run,
        actions: reports
            .iter()
            .map(|r| {
                let a = &r.action;
                ActionDoc {
                    kind: a.kinds.first().map(|k| k.id()),
                    kinds: a.kinds.iter().map(|k| k.id()).collect(),
                    action: a.action().as_str(),
                    pids: match &a.target {
                        Target::Process { pid, .. } => vec![*pid],
                        Target::Container { .. } => Vec::new(),
                    },
                    container: match &a.target {
                        Target::Container {
                            id, name, project, ..
                        } => Some(ContainerDoc {
                            id,
                            name,
                            compose_project: project.as_deref(),
                        }),
                        Target::Process { .. } => None,
                    },
                    ports: port_docs(&a.ports),
                    outcome: r.outcome.as_str(),
                    detail: match (r.outcome.detail(), r.still_held.is_empty()) {
                        (Some(d), _) => Some(d.to_owned()),
                        (None, false) => Some(still_held(a).to_owned()),
                        (None, true) => None,
                    },
                    port_free_after: r.port_free_after,
                    ports_still_held: port_docs(&r.still_held),
                }
            })
            .collect(),
        kept: plan.kept.iter().map(|h| held_doc(snapshot, h)).collect(),
        refused: plan.refused.iter().map(|h| held_doc(snapshot, h)).collect(),
        ports_free: ports_free.map(|ports| {
            ports
                .iter()
                .map(|&(proto, port, free)| PortFreeDoc {
                    proto: proto.as_str(),
                    port,
                    free,
                })
                .collect()
        }),
    };
    // Serialising plain structs of strings, numbers and booleans cannot fail.
    let mut out = match layout {
        Layout::Pretty => serde_json::to_string_pretty(&doc),
        Layout::OneLine => serde_json::to_string(&doc),
    }
    .expect("JSON of plain data");
    out.push('\n');
    out
}

/// Outside text as Markdown that is only text: on one line, every character Markdown
/// could take for structure (headings, links, images, HTML, emphasis, code, table cells)
/// escaped, so a label can neither add rows or headings nor hide the real ones.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in super::safe::line(s).chars() {
        if matches!(
            c,
            '\\' | '|' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '!' | '~' | '(' | ')'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A short Markdown summary for pipeline pages (GitHub's step summary and the like).
pub fn markdown(
    snapshot: &Snapshot,
    plan: &Plan,
    reports: &[Report],
    dry_run: bool,
    verb: &str,
) -> String {
    let mut out = format!(
        "### portreap {verb}{}\n\n",
        if dry_run { " (dry run)" } else { "" }
    );
    if reports.is_empty() {
        out.push_str("Nothing to act on.\n");
    } else {
        out.push_str("| action | target | findings | ports | outcome | ports free after |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for r in reports {
            let a = &r.action;
            let free = match r.port_free_after {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let outcome = match r.outcome.detail() {
                Some(d) => format!("{} ({})", r.outcome.as_str(), md(&d)),
                None => r.outcome.as_str().to_owned(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {outcome} | {free} |\n",
                a.action().as_str(),
                md(&a.describe()),
                if a.kinds.is_empty() {
                    "-".to_owned()
                } else {
                    kinds(a)
                },
                ports(&a.ports),
            ));
        }
        out.push('\n');
        out.push_str(&summary(reports));
        out.push('\n');
    }
    for k in &plan.kept {
        out.push_str(&format!(
            "- kept {}: {}\n",
            md(&held_name(snapshot, k)),
            md(&k.reason)
        ));
    }
    for r in &plan.refused {
        out.push_str(&format!("- left {}: {}\n", ports(&r.ports), md(&r.reason)));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::md;

    #[test]
    fn markdown_from_outside_is_only_text() {
        assert_eq!(md("web|1"), "web\\|1");
        assert_eq!(
            md("x\n## All clear\n[ok](http://e) <b>"),
            "x\\\\n\\#\\# All clear\\\\n\\[ok\\]\\(http://e\\) \\<b\\>"
        );
        assert_eq!(md("`code` *a* _b_"), "\\`code\\` \\*a\\* \\_b\\_");
        assert_eq!(md("plain name-1"), "plain name-1");
    }
}
