//! `scan` (also portreap without a subcommand): the host's ports and their owners.

use std::io::{self, Write};

use super::output::write_human;
use super::Exit;
use crate::analyze::findings::Severity;
use crate::analyze::{analyze, PortEntry};
use crate::config::{Global, Scan};
use crate::facts::gather;
use crate::report;

/// Scans, renders, and says whether `--check` found a leak.
pub(super) fn scan(global: &Global, options: &Scan) -> anyhow::Result<Exit> {
    // The default view shows Docker's ports only, and needs only their owners.
    let owners = match (&options.ports, options.all) {
        (Some(spec), _) => crate::host::Owners::OnPorts(spec),
        (None, true) => crate::host::Owners::All,
        (None, false) => crate::host::Owners::Forwarders,
    };
    let snapshot = gather(global, owners)?;
    let analysis = analyze(&snapshot);
    let keep = |p: &PortEntry| match &options.ports {
        Some(spec) => spec.matches(p.proto, p.port),
        None => options.all || p.involves_docker(),
    };
    if options.json {
        let mut out = io::BufWriter::new(io::stdout().lock());
        report::json::write_scan(&mut out, &snapshot, &analysis, keep)?;
        out.flush()?;
    } else {
        write_human(&report::table::scan(
            &snapshot,
            &analysis,
            keep,
            options.style,
            match (&options.ports, options.all) {
                (Some(_), _) => "Nothing holds those ports.",
                (None, true) => "No listening sockets.",
                (None, false) => "No port involves Docker (--all lists every socket).",
            },
        ))?;
        crate::messages::note(&report::table::engine_line(&snapshot));
        if let (false, Some(note)) = (snapshot.fs.visible, &snapshot.fs.note) {
            crate::messages::note(&format!("note: {note}"));
        }
        for (path, error) in &snapshot.fs.unjudged {
            crate::messages::note(&format!(
                "note: compose path {path} could not be checked ({error}); its project is not judged"
            ));
        }
    }
    let leak_found = analysis.findings.iter().any(|f| {
        f.severity == Severity::Leak
            && options
                .ports
                .as_ref()
                .is_none_or(|spec| f.ports.iter().any(|p| spec.matches(p.proto, p.port)))
    });
    Ok(if options.check && leak_found {
        Exit::Problem
    } else {
        Exit::Ok
    })
}
