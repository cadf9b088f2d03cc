//! `why PORT...` and `why --container NAME`: one holder explained, with the next step.

use std::io::{self, Write};

use super::output::write_human;
use super::Exit;
use crate::analyze::analyze;
use crate::config::{Global, UsageError};
use crate::facts::gather;
use crate::model::Snapshot;
use crate::report;

/// Explains the asked ports (or the container's), as text or JSON.
pub(super) fn why(global: &Global, args: &crate::cli::WhyArgs) -> anyhow::Result<Exit> {
    let spec = crate::portspec::PortSpec(
        args.ports
            .iter()
            .flat_map(|s| s.0.iter().copied())
            .collect(),
    );
    // A container's ports are known only once the engine answered: every owner then.
    let owners = if args.container.is_some() {
        crate::host::Owners::All
    } else {
        crate::host::Owners::OnPorts(&spec)
    };
    let snapshot = gather(global, owners)?;
    let analysis = analyze(&snapshot);
    if let Some(name) = &args.container {
        let wanted = name.trim_start_matches('/');
        let Some(index) = snapshot
            .containers
            .iter()
            .position(|c| c.name == wanted || (wanted.len() >= 4 && c.id.starts_with(wanted)))
        else {
            let why = if snapshot.engine.reachable {
                format!("no container named '{wanted}'")
            } else {
                format!(
                    "cannot look up container '{wanted}': {}",
                    report::table::engine_line(&snapshot)
                )
            };
            return Err(UsageError(why).into());
        };
        if args.json {
            let c = &snapshot.containers[index];
            let spec = crate::portspec::PortSpec(
                c.requested
                    .iter()
                    .filter_map(|r| {
                        r.host_ports.map(|range| crate::portspec::PortSel {
                            range,
                            proto: Some(r.proto),
                        })
                    })
                    .collect(),
            );
            return why_json(&snapshot, &analysis, &spec);
        }
        write_human(&report::why::container_text(&snapshot, &analysis, index))?;
        return Ok(Exit::Ok);
    }
    if args.json {
        return why_json(&snapshot, &analysis, &spec);
    }
    let asked = crate::analyze::why::asked_ports(&snapshot, &analysis, &spec);
    if asked.is_empty() {
        write_human("Nothing holds or wants those ports.\n")?;
    } else {
        write_human(&report::why::text(&snapshot, &analysis, &asked))?;
    }
    Ok(Exit::Ok)
}

fn why_json(
    snapshot: &Snapshot,
    analysis: &crate::analyze::Analysis,
    spec: &crate::portspec::PortSpec,
) -> anyhow::Result<Exit> {
    let asked = crate::analyze::why::asked_ports(snapshot, analysis, spec);
    let why = report::why::json_section(snapshot, analysis, &asked);
    let mut out = io::BufWriter::new(io::stdout().lock());
    report::json::write_why(
        &mut out,
        snapshot,
        analysis,
        |p| spec.matches(p.proto, p.port),
        why,
    )?;
    out.flush()?;
    Ok(Exit::Ok)
}
