//! `metrics`: the scan as OpenMetrics text for node_exporter's textfile collector.

use anyhow::Context as _;

use super::output::write_stdout;
use super::Exit;
use crate::analyze::analyze;
use crate::config::{Global, UsageError};
use crate::facts::gather;
use crate::report;

/// `metrics`: once to stdout or a file, or for ever with `--every`. An unreachable engine
/// is a metric, not a failure; a file that cannot be written is.
pub(super) fn metrics(global: &Global, args: &crate::cli::MetricsArgs) -> anyhow::Result<Exit> {
    if let Some(why) = args.output.as_deref().and_then(crate::safe_file::refuse) {
        return Err(UsageError(why).into());
    }
    loop {
        let start = std::time::Instant::now();
        let owners = if args.all {
            crate::host::Owners::All
        } else {
            crate::host::Owners::Forwarders
        };
        let snapshot = gather(global, owners)?;
        let analysis = analyze(&snapshot);
        let run = report::metrics::Run {
            elapsed: start.elapsed(),
            all: args.all,
        };
        let text = report::metrics::render(&snapshot, &analysis, &run);
        match &args.output {
            Some(path) => crate::safe_file::write_public(path, text.as_bytes())
                .with_context(|| format!("cannot write the metrics to {}", path.display()))?,
            None => write_stdout(&text)?,
        }
        match args.every {
            Some(every) => std::thread::sleep(every.saturating_sub(start.elapsed())),
            None => return Ok(Exit::Ok),
        }
    }
}
