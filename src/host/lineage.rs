//! Process identities a CI job is told by: every process of the host (PID and start
//! time, which a reused PID does not share), a process's chain of ancestors, and whether a
//! recorded process still runs. Read from `/proc`, which no process can forge.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::process::{boot_time, clock_ticks};
use super::procfs;

/// One process, as a job record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Known {
    /// Its PID.
    pub pid: u32,
    /// Its start, in clock ticks since boot.
    pub start_ticks: u64,
    /// Its start, in seconds since the epoch (when the boot time is known).
    pub started: Option<i64>,
    /// Its name (`comm`), for people only: it proves nothing.
    pub name: String,
}

fn stat(proc_root: &Path, pid: u32) -> Option<procfs::Stat> {
    let raw = std::fs::read(proc_root.join(pid.to_string()).join("stat")).ok()?;
    procfs::parse_stat(&raw)
}

fn known(pid: u32, stat: &procfs::Stat) -> Known {
    Known {
        pid,
        start_ticks: stat.start_ticks,
        started: boot_time().map(|boot| boot + (stat.start_ticks / clock_ticks()) as i64),
        name: stat.name.clone(),
    }
}

/// Every process of the host now, by PID and start time. A process that exits while the
/// table is read is simply not in it.
pub fn every_process(proc_root: &Path) -> BTreeSet<(u32, u64)> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return BTreeSet::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(proc_root, pid)?.start_ticks)))
        .collect()
}

/// `pid` and its ancestors, nearest first, up to but not including PID 1 (which every
/// process shares). At most 64 steps.
pub fn chain(proc_root: &Path, pid: u32) -> Vec<Known> {
    let mut out = Vec::new();
    let mut next = pid;
    while next > 1 && out.len() < 64 {
        let Some(s) = stat(proc_root, next) else {
            break;
        };
        out.push(known(next, &s));
        next = s.ppid;
    }
    out
}

/// Whether the process recorded as `p` still runs (same PID, same start; a zombie has
/// ended).
pub fn alive(proc_root: &Path, p: &Known) -> bool {
    stat(proc_root, p.pid).is_some_and(|s| s.start_ticks == p.start_ticks && s.state != 'Z')
}
