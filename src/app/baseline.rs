//! `baseline save FILE`: what a CI job's host holds before the job, for
//! `prune --since-baseline`.

use std::path::Path;

use anyhow::Context as _;

use super::Exit;
use crate::config::{Global, UsageError};
use crate::facts::gather;
use crate::report;

/// Records every container and socket-holding process, refusing an engine's partial
/// answer (a container missing from the baseline would later look like the job's).
pub(super) fn save(global: &Global, file: &Path) -> anyhow::Result<Exit> {
    if let Some(why) = crate::safe_file::refuse(file) {
        return Err(UsageError(why).into());
    }
    let snapshot = gather(global, crate::host::Owners::All)?;
    if !snapshot.engines_complete() {
        crate::messages::stderr_line(&format!(
            "portreap: a baseline needs the engine's whole answer ({})",
            report::table::engine_line(&snapshot)
        ));
        return Ok(Exit::EngineUnreachable);
    }
    let baseline = crate::plan::baseline::record(&snapshot);
    let mut text = serde_json::to_string_pretty(&baseline)?;
    text.push('\n');
    crate::safe_file::write(file, text.as_bytes())
        .with_context(|| format!("cannot write the baseline to {}", file.display()))?;
    crate::messages::note(&format!(
        "baseline: {} containers, {} processes holding sockets, saved to {}",
        baseline.containers.len(),
        baseline.processes.len(),
        file.display()
    ));
    Ok(Exit::Ok)
}
