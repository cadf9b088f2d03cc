//! `baseline save FILE`: what a CI job's host holds before the job, for
//! `prune --since-baseline`.

use std::path::Path;

use anyhow::Context as _;

use super::Exit;
use crate::config::{Global, UsageError};
use crate::facts::gather_baseline;
use crate::report;

/// Records every container and every process, the engines and the job, refusing an
/// engine's partial answer (a container missing from the baseline would later look like
/// the job's), and registers the job on the host.
pub(super) fn save(global: &Global, file: &Path) -> anyhow::Result<Exit> {
    if let Some(why) = crate::safe_file::refuse(file) {
        return Err(UsageError(why).into());
    }
    let snapshot = gather_baseline(global)?;
    if !snapshot.engines_complete() {
        crate::messages::stderr_line(&format!(
            "portreap: a baseline needs the engine's whole answer ({})",
            report::table::engine_line(&snapshot)
        ));
        return Ok(Exit::EngineUnreachable);
    }
    let mut job = crate::act::jobs::this_job(&global.proc_root, snapshot.taken_at)
        .map_err(anyhow::Error::msg)?;
    let registry = crate::act::jobs::Registry::open();
    if let Ok(registry) = &registry {
        registry.prepare(&mut job, &global.proc_root);
    }
    let processes = crate::host::lineage::every_process(&global.proc_root);
    let baseline = crate::plan::baseline::record(&snapshot, processes, job);
    let mut text = serde_json::to_string_pretty(&baseline)?;
    text.push('\n');
    crate::safe_file::write(file, text.as_bytes())
        .with_context(|| format!("cannot write the baseline to {}", file.display()))?;
    // Registered after the file is written: a registration without a baseline would
    // only make other jobs doubt.
    let registered = registry.and_then(|r| r.register(&baseline.job).map(|()| r));
    crate::messages::note(&format!(
        "baseline: {} containers, {} processes, saved to {}",
        baseline.containers.len(),
        baseline.processes.len(),
        file.display()
    ));
    let id = &baseline.job.id;
    match registered {
        Ok(registry) => crate::messages::note(&format!(
            "baseline: {} registered in {}; containers labelled {}={id} are this job's",
            baseline.job.describe(),
            registry.path().display(),
            crate::plan::baseline::JOB_LABEL
        )),
        Err(why) => crate::messages::note(&format!(
            "baseline: the job is not registered ({why}): other jobs on this host cannot tell its containers from theirs"
        )),
    }
    // The job's id alone on stdout, for the job to label what it starts.
    match super::output::write_stdout(&format!("{id}\n")) {
        Err(e) if super::is_broken_pipe(&e) => {}
        other => other?,
    }
    Ok(Exit::Ok)
}
