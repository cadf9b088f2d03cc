//! The table for people. Rows that differ only by address (the IPv4 and IPv6 sockets of one
//! binding) are merged, so one published port is one line.

use comfy_table::{presets, Cell, Color, ContentArrangement, Table};

use crate::analyze::findings::{Action, Kind, Severity};
use crate::analyze::{Analysis, Owner, PortEntry, Via};
use crate::model::{Container, Snapshot};

/// How to draw.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Draw borders and fit the terminal width (stdout is a terminal).
    pub tty: bool,
    /// Use colours (a terminal, and `NO_COLOR` unset).
    pub color: bool,
}

struct Row {
    port: String,
    addresses: Vec<String>,
    owner: String,
    state: String,
    holder: String,
    attention: bool,
    findings: Vec<Kind>,
    /// The worst of the findings' severities (their evidence's, not their kinds').
    severity: Option<Severity>,
}

fn owner_name(snapshot: &Snapshot, c: &Container) -> String {
    let name = snapshot.container_label(c);
    let name = name.strip_prefix("container ").unwrap_or(&name);
    match (c.compose_project(), c.compose_service()) {
        (Some(project), Some(service)) if c.compose_oneoff() => {
            format!("{name} [{project}/{service}, one-off]")
        }
        (Some(project), Some(service)) => format!("{name} [{project}/{service}]"),
        _ => name.to_owned(),
    }
}

fn container_state(c: &Container) -> String {
    match &c.health {
        Some(h) => format!("{} ({h})", c.state),
        None => c.state.to_string(),
    }
}

fn pids(entry: &PortEntry) -> String {
    entry
        .pids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn describe(snapshot: &Snapshot, entry: &PortEntry) -> (String, String, String, bool) {
    let process = entry.process.as_deref().unwrap_or("?");
    let held_by = || format!("{process} {}", pids(entry));
    match &entry.owner {
        Owner::Container { via, .. } => {
            // Owner::Container indexes come from this snapshot's container list.
            let c = entry
                .container(snapshot)
                .expect("container owner has a container");
            let holder = match via {
                Via::DockerProxy | Via::Engine | Via::Conmon | Via::Forwarder => held_by(),
                Via::HostNetwork => format!("{} (host network)", held_by()),
                Via::Binding => "engine binding (owner not readable)".into(),
                Via::Reservation => "no socket (engine reservation)".into(),
                Via::Requested => "not held (requested)".into(),
            };
            (
                owner_name(snapshot, c),
                container_state(c),
                holder,
                *via == Via::Reservation,
            )
        }
        Owner::Proxy { target } => {
            let owner = match target {
                Some(t) => format!(
                    "no container (proxy to {})",
                    std::net::SocketAddr::new(t.container_ip, t.container_port)
                ),
                None => "no container (proxy)".into(),
            };
            (owner, "-".into(), held_by(), true)
        }
        Owner::Conmon {
            container_id,
            container_name,
        } => {
            let name = container_name
                .clone()
                .unwrap_or_else(|| container_id.get(..12).unwrap_or(container_id).to_owned());
            (format!("{name} (not running)"), "-".into(), held_by(), true)
        }
        Owner::Forwarder { product } => (
            format!("{product} (forwarder)"),
            "-".into(),
            held_by(),
            false,
        ),
        Owner::Engine => ("no container (engine)".into(), "-".into(), held_by(), false),
        Owner::NotJudged { .. } => (
            "not judged (another engine's)".into(),
            "-".into(),
            held_by(),
            false,
        ),
        Owner::Process => (
            process.to_owned(),
            "-".into(),
            format!("pid {}", pids(entry)),
            false,
        ),
        Owner::Unknown { reason } => ("?".into(), "-".into(), reason.clone(), false),
    }
}

fn rows(snapshot: &Snapshot, entries: &[&PortEntry]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for entry in entries {
        let port = format!("{}/{}", entry.port, entry.proto);
        let (owner, state, holder, attention) = describe(snapshot, entry);
        let address = entry.ip.to_string();
        if let Some(last) = rows.last_mut() {
            if last.port == port && last.owner == owner && last.state == state {
                if !last.addresses.contains(&address) {
                    last.addresses.push(address);
                }
                if last.holder != holder {
                    merge_holder(&mut last.holder, &holder);
                }
                last.attention |= attention;
                for kind in &entry.findings {
                    if !last.findings.contains(kind) {
                        last.findings.push(*kind);
                    }
                }
                last.severity = last.severity.into_iter().chain(entry.severity).min();
                continue;
            }
        }
        rows.push(Row {
            port,
            addresses: vec![address],
            owner,
            state,
            holder,
            attention,
            findings: entry.findings.clone(),
            severity: entry.severity,
        });
    }
    rows
}

fn severity_color(severity: Severity) -> Color {
    match severity {
        Severity::Leak => Color::Red,
        Severity::Suspect => Color::Yellow,
        Severity::Info => Color::Cyan,
    }
}

/// `docker-proxy 10` + `docker-proxy 11` -> `docker-proxy 10,11`.
fn merge_holder(into: &mut String, other: &str) {
    match (into.rsplit_once(' '), other.rsplit_once(' ')) {
        (Some((name_a, _)), Some((name_b, pids_b)))
            if name_a == name_b && !name_a.contains('(') =>
        {
            into.push(',');
            into.push_str(pids_b);
        }
        _ => {
            into.push_str("; ");
            into.push_str(other);
        }
    }
}

/// Renders the scan table, or a sentence when there is nothing to show.
pub fn scan(
    snapshot: &Snapshot,
    analysis: &Analysis,
    keep: impl Fn(&PortEntry) -> bool,
    style: Style,
    empty: &str,
) -> String {
    let entries: Vec<&PortEntry> = analysis.ports.iter().filter(|p| keep(p)).collect();
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str(empty);
        out.push('\n');
    } else {
        let mut table = Table::new();
        if style.tty {
            table
                .load_style(presets::UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic);
        } else {
            table.load_style(presets::NOTHING).force_no_tty();
        }
        if style.color {
            // The caller decided (a terminal, `NO_COLOR` unset); comfy-table would ask
            // stdout again.
            table.enforce_styling();
        }
        table.set_header(["PORT", "ADDRESS", "OWNER", "STATE", "HELD BY", "FINDING"]);
        for row in rows(snapshot, &entries) {
            let mut owner = Cell::new(super::safe::line(&row.owner));
            if style.color && row.attention {
                owner = owner.fg(Color::Yellow);
            }
            let mut finding = Cell::new(
                row.findings
                    .iter()
                    .map(|k| k.id())
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            if let (true, Some(severity)) = (style.color, row.severity) {
                finding = finding.fg(severity_color(severity));
            }
            table.add_row(vec![
                Cell::new(&row.port),
                Cell::new(row.addresses.join(", ")),
                owner,
                Cell::new(super::safe::line(&row.state)),
                Cell::new(super::safe::line(&row.holder)),
                finding,
            ]);
        }
        if !style.tty {
            // Like `docker ps`: columns start at the margin, two spaces between them.
            for column in table.column_iter_mut() {
                column.set_padding((0, 2));
            }
        }
        // The NOTHING preset pads the last column too; trim it for clean pipes.
        for line in table.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.push_str(&findings_section(snapshot, analysis, &entries, style));
    out
}

/// The findings concerning the shown ports, each with its evidence and action, wrapped to
/// stay readable at 100 columns.
fn findings_section(
    snapshot: &Snapshot,
    analysis: &Analysis,
    shown: &[&PortEntry],
    style: Style,
) -> String {
    let relevant: Vec<_> = analysis
        .findings
        .iter()
        .filter(|f| {
            shown.iter().any(|e| {
                f.ports
                    .iter()
                    .any(|p| p.proto == e.proto && p.ip == e.ip && p.port == e.port)
                    && e.findings.contains(&f.kind)
            })
        })
        .collect();
    if relevant.is_empty() {
        return String::new();
    }
    let count = |s: Severity| relevant.iter().filter(|f| f.severity == s).count();
    let mut out = format!(
        "\n{} finding{} ({} leak, {} suspect, {} info):\n",
        relevant.len(),
        if relevant.len() == 1 { "" } else { "s" },
        count(Severity::Leak),
        count(Severity::Suspect),
        count(Severity::Info)
    );
    for f in relevant {
        let severity = f.severity.as_str();
        let label = if style.color {
            let code = match f.severity {
                Severity::Leak => 31,
                Severity::Suspect => 33,
                Severity::Info => 36,
            };
            format!("\x1b[{code}m{severity:<7}\x1b[0m")
        } else {
            format!("{severity:<7}")
        };
        let ports = f
            .ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!("  {label} {} on {ports}\n", f.kind));
        for line in wrap(&super::safe::line(&f.reason), 88) {
            out.push_str(&format!("          {line}\n"));
        }
        let hint = match f.action {
            Action::None => String::new(),
            _ => format!(": {}", prune_command(snapshot, f)),
        };
        out.push_str(&format!(
            "          action: {}{}\n",
            f.action.as_str(),
            super::safe::line(&hint)
        ));
    }
    out
}

/// The prune command that acts on exactly this finding: its kind (which selects suspects
/// too) on its ports, and its compose project when it has one.
pub fn prune_command(snapshot: &Snapshot, f: &crate::analyze::findings::Finding) -> String {
    let mut ports: Vec<String> = f
        .ports
        .iter()
        .map(|p| format!("{}/{}", p.port, p.proto))
        .collect();
    ports.dedup();
    let mut cmd = format!(
        "{} prune --kind {} --port {}",
        super::portreap(snapshot),
        f.kind,
        ports.join(",")
    );
    if let Some(project) = f
        .container
        .and_then(|i| snapshot.containers.get(i))
        .and_then(|c| c.compose_project())
    {
        cmd.push_str(&format!(" --project {}", crate::shell::quote(project)));
    }
    cmd
}

/// Greedy word wrap; a word longer than the width gets a line of its own.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// One line per engine asked, for stderr under the table.
pub fn engine_line(snapshot: &Snapshot) -> String {
    snapshot
        .all_engines()
        .map(|e| {
            let count = snapshot
                .containers
                .iter()
                .filter(|c| std::ptr::eq(snapshot.engine_of(c), e))
                .count();
            super::safe::line(&one_engine_line(e, count)).into_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn one_engine_line(e: &crate::model::EngineStatus, containers: usize) -> String {
    let at = if e.endpoint.is_empty() {
        String::new()
    } else {
        format!(" at {} ({})", e.endpoint, e.source)
    };
    match (e.reachable, &e.error) {
        (true, None) => {
            let remote = match (&e.process, &e.locality) {
                (None, Some(why)) => format!(
                    "; not proven to run on this host ({why}): this host's forwarders are not judged by it"
                ),
                _ => String::new(),
            };
            format!(
                "engine: {} {}{at}, {containers} containers{remote}",
                e.kind.map_or("Docker", crate::model::EngineKind::as_str),
                e.version.as_deref().unwrap_or("?"),
            )
        }
        (true, Some(err)) => format!("engine{at}: partial answer: {err}"),
        (false, err) => format!(
            "engine not reachable{at}: {}; container attribution unavailable",
            err.as_deref().unwrap_or("unknown error")
        ),
    }
}
