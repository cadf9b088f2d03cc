//! The host's registry of CI jobs, beside the lock: every `baseline save` registers its
//! job there, so that jobs sharing a runner host can tell their leftovers apart (see
//! [`crate::plan::baseline::Jobs`]). One file per job, `<id>.json`, written like every
//! output (a temporary file renamed into place, mode 0600) into a directory only its
//! owner may write: `/run/portreap/jobs` for root, `$XDG_RUNTIME_DIR/portreap/jobs` for a
//! user (else `$TMPDIR/portreap-UID/jobs`). A job is known to be over when none of its own processes (those that are no
//! other job's) runs any more: the next registration forgets it, so a job killed mid-way
//! never holds the others back.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::host::lineage::{self, Known};
use crate::plan::baseline::{Job, Jobs, OtherJob};

/// How long a registration that never ended is kept: a week.
const MAX_REGISTRATION_SECONDS: i64 = 7 * 24 * 3600;

/// The most a registration may hold.
const MAX_ENTRY: u64 = 256 * 1024;

/// The CI variables that name a job, in the order they are shown.
const CI_IDS: [&str; 10] = [
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_JOB",
    "RUNNER_NAME",
    "CI_JOB_ID",
    "CI_PIPELINE_ID",
    "CI_RUNNER_ID",
    "BUILD_TAG",
    "BUILDKITE_JOB_ID",
    "CIRCLE_WORKFLOW_JOB_ID",
];

/// The variables that name a job's workspace, most specific first.
const WORKSPACES: [&str; 3] = ["GITHUB_WORKSPACE", "CI_PROJECT_DIR", "WORKSPACE"];

/// The registry's directory for the user running portreap: root's under `/run`, a user's
/// in their runtime directory, else in the temporary directory (made theirs, mode 0700:
/// a directory someone else made there is refused).
fn dir() -> PathBuf {
    let euid = rustix::process::geteuid();
    if euid.is_root() {
        return PathBuf::from("/run/portreap/jobs");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("portreap/jobs"),
        None => std::env::temp_dir().join(format!("portreap-{}/jobs", euid.as_raw())),
    }
}

/// The registry's directory, made if missing, and proven: reached without a link, a
/// directory of the user running portreap that nobody else may write.
fn open_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = dir();
    let parent_mode = if rustix::process::geteuid().is_root() {
        0o755
    } else {
        0o700
    };
    if let Some(parent) = dir.parent() {
        let _ = std::fs::DirBuilder::new().mode(parent_mode).create(parent);
    }
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let euid = rustix::process::geteuid().as_raw();
    let proven = [dir.parent(), Some(dir.as_path())]
        .into_iter()
        .flatten()
        .try_for_each(|d| own_directory(d, euid));
    proven.map(|()| dir)
}

/// Whether `dir` is a directory of `euid` nobody else may write, reached without a link.
fn own_directory(dir: &Path, euid: u32) -> Result<(), String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat2(CWD, dir, flags, Mode::empty(), resolve)
        .map_err(|e| format!("{}: {}", dir.display(), std::io::Error::from(e)))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| std::io::Error::from(e).to_string())?;
    if stat.st_uid != euid || stat.st_mode & 0o022 != 0 {
        return Err(format!(
            "{} is not a directory of uid {euid} that only it may write",
            dir.display()
        ));
    }
    Ok(())
}

/// A random id for a job: 16 bytes of the kernel's randomness, in hex.
fn random_id() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The job running portreap now: a new id, its workspace, its CI ids, and the chain of
/// processes it runs in (from portreap's parent up).
pub fn this_job(proc_root: &Path, now: Option<i64>) -> Result<Job, String> {
    let cwd = std::env::current_dir().ok();
    let workspace = WORKSPACES
        .iter()
        .find_map(|v| std::env::var_os(v).filter(|w| !w.is_empty()))
        .map(PathBuf::from)
        .or_else(|| cwd.clone())
        .map(|w| match (w.is_absolute(), &cwd) {
            (false, Some(cwd)) => cwd.join(w),
            _ => w,
        })
        .map(|w| w.to_string_lossy().into_owned());
    let ci = CI_IDS
        .iter()
        .filter_map(|v| Some(((*v).to_owned(), std::env::var(v).ok()?)))
        .filter(|(_, value)| !value.is_empty())
        .collect();
    let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);
    Ok(Job {
        id: random_id()?,
        workspace,
        ci,
        chain: lineage::chain(proc_root, parent),
        registered: now,
        uid: Some(job_user()),
        ended: None,
        over_before: BTreeSet::new(),
    })
}

/// The user a job runs as: the sudoer under `sudo` (root's euid, `SUDO_UID` set), else
/// the user running portreap.
fn job_user() -> u32 {
    let euid = rustix::process::geteuid().as_raw();
    crate::safe_file::trusted_owners()
        .into_iter()
        .find(|&u| u != 0 && u != euid)
        .unwrap_or(euid)
}

/// Every registration, but `except`'s. One that does not prove itself (another owner, a
/// link, garbage) is left out.
fn registered(dir: &Path, except: &str) -> Vec<Job> {
    read_registry(dir, except).0
}

/// Every registration but `except`'s, and how many entries did not prove themselves
/// (another owner, a link, garbage, too large), or could not be listed at all.
fn read_registry(dir: &Path, except: &str) -> (Vec<Job>, usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (Vec::new(), 1);
    };
    let paths: Vec<PathBuf> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".json")?;
            (id != except && !id.starts_with('.')).then(|| e.path())
        })
        .collect();
    let jobs: Vec<Job> = paths
        .iter()
        .filter_map(|path| crate::safe_file::read_record(path, MAX_ENTRY).ok())
        .filter_map(|raw| serde_json::from_slice::<Job>(&raw).ok())
        .collect();
    let unread = paths.len() - jobs.len();
    (jobs, unread)
}

/// Whether `chain` holds the process `p` (same PID, same start).
fn holds(chain: &[Known], p: &Known) -> bool {
    chain
        .iter()
        .any(|q| q.pid == p.pid && q.start_ticks == p.start_ticks)
}

/// The processes of `job` that are in no chain of `others` (PID 1 is in none).
fn own_processes<'a>(
    job: &'a Job,
    others: impl Iterator<Item = &'a [Known]> + Clone,
) -> Vec<&'a Known> {
    job.chain
        .iter()
        .filter(|p| !others.clone().any(|chain| holds(chain, p)))
        .collect()
}

/// Whether a registered job is over: its cleanup ended it, or none of its processes
/// outside the chain of `ours` (the job registering now, whose own ancestors may be
/// shared: a runner's service, PID 1) runs any more. Returns when it ended: its cleanup's
/// time, or `now` for a death nobody saw.
fn over(job: &Job, ours: &Job, proc_root: &Path, now: i64) -> Option<i64> {
    if let Some(end) = job.ended {
        return Some(end);
    }
    let own = own_processes(job, std::iter::once(ours.chain.as_slice()));
    let dead = !own.is_empty() && !own.iter().any(|p| lineage::alive(proc_root, p));
    dead.then_some(now)
}

/// The registry's directory, made and proven, with a way to write an entry.
pub struct Registry(PathBuf);

impl Registry {
    /// The registry of the user running portreap.
    pub fn open() -> Result<Self, String> {
        open_dir().map(Registry)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, job: &Job) -> Result<(), String> {
        let mut text = serde_json::to_string_pretty(job).map_err(|e| e.to_string())?;
        text.push('\n');
        crate::safe_file::write(&self.0.join(format!("{}.json", job.id)), text.as_bytes())
            .map_err(|e| format!("cannot register the job in {}: {e}", self.0.display()))
    }

    /// Notes in `job` the registered jobs that are over (nothing made from now on can be
    /// theirs), and forgets those no job still running needs (one that started before
    /// such a job ended may yet meet its leftovers).
    pub fn prepare(&self, job: &mut Job, proc_root: &Path) {
        // Without a clock nothing is judged over or stale: every registration stays.
        let Some(now) = job.registered.or_else(crate::time::now) else {
            return;
        };
        let others = registered(&self.0, &job.id);
        let mut ended = Vec::new();
        let mut running = Vec::new();
        for other in &others {
            match over(other, job, proc_root, now) {
                Some(end) => ended.push((other, end)),
                None => running.push(other),
            }
        }
        for (other, end) in ended {
            job.over_before.insert(other.id.clone());
            // A registration stays while it may claim something: until its cleanup ended
            // it and no job that started before that end still runs (one whose processes
            // only seem gone, a CI whose steps are processes of their own, still claims
            // its workspace and its label), or for a week at most.
            let needed = running
                .iter()
                .any(|r| r.registered.is_none_or(|start| start <= end));
            let stale = other
                .registered
                .is_some_and(|r| now.saturating_sub(r) > MAX_REGISTRATION_SECONDS);
            if stale || (other.ended.is_some() && !needed) {
                let _ = std::fs::remove_file(self.0.join(format!("{}.json", other.id)));
            }
        }
    }

    /// Registers `job` (after [`Registry::prepare`]).
    pub fn register(&self, job: &Job) -> Result<(), String> {
        self.write(job)
    }

    /// Marks `job` ended at `now`: its cleanup is done. The entry stays while a job that
    /// started before it ended still runs.
    pub fn end(&self, job: &Job, now: Option<i64>) {
        // Without a clock its end is not known: it keeps claiming, which is the safe side.
        let Some(end) = now.or_else(crate::time::now) else {
            return;
        };
        let mut ended = job.clone();
        ended.ended = Some(end);
        ended.over_before.clear();
        let _ = self.write(&ended);
    }
}

/// What the cleanup of `ours` knows of the jobs: its own processes (those of its chain
/// then and now that are no other job's) and the other jobs registered, with theirs.
/// `engines`: the positions of the engines the baseline knows.
pub fn jobs(ours: &Job, proc_root: &Path, engines: BTreeSet<usize>) -> Jobs {
    let (claims, mut unknown) = match open_dir() {
        Ok(dir) => match read_registry(&dir, &ours.id) {
            (jobs, 0) => (jobs, None),
            (jobs, n) => (
                jobs,
                Some(format!(
                    "{n} entries of the registry of jobs in {} could not be read",
                    dir.display()
                )),
            ),
        },
        Err(why) => (
            Vec::new(),
            Some(format!("the registry of jobs is not available ({why})")),
        ),
    };
    // A user's registry holds that user's jobs only, in a place its environment chooses:
    // other jobs on the host may register elsewhere.
    if unknown.is_none() && !rustix::process::geteuid().is_root() {
        unknown = Some(
            "portreap does not run as root, so the jobs of the host's other registries cannot be seen"
                .into(),
        );
    }
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    let now = lineage::chain(proc_root, pid);
    // How many registrations (this job counting once) hold each process in their chain:
    // a process is a job's own when only that job's chain holds it.
    let mut holders: HashMap<(u32, u64), usize> = HashMap::new();
    let mine: BTreeSet<(u32, u64)> = ours
        .chain
        .iter()
        .chain(&now)
        .map(|p| (p.pid, p.start_ticks))
        .collect();
    let chains = claims.iter().map(|j| {
        j.chain
            .iter()
            .map(|p| (p.pid, p.start_ticks))
            .collect::<BTreeSet<_>>()
    });
    for id in chains.chain(std::iter::once(mine)).flatten() {
        *holders.entry(id).or_default() += 1;
    }
    let alone = |p: &&Known| holders.get(&(p.pid, p.start_ticks)) == Some(&1);
    // This job's own processes are the nearest of its chains only (the shell that saved
    // the baseline, the one running the cleanup): a process further up (sshd, a terminal,
    // a runner's service shared by every job) has children that are nobody's job.
    let own = ours
        .chain
        .iter()
        .take(1)
        .chain(now.iter().skip(1).take(1))
        .filter(alone)
        .map(|p| (p.pid, p.start_ticks))
        .collect();
    // A registration with no process of its own runs in this job's own process tree (the
    // same shell saved twice): it cannot be told from this job, nor doubted.
    let others = claims
        .iter()
        .filter(|o| !ours.over_before.contains(&o.id))
        .filter_map(|o| {
            let theirs: Vec<&Known> = o.chain.iter().filter(alone).collect();
            // An empty chain (unreadable at its save) proves nothing: doubted from its
            // registration on.
            (o.chain.is_empty() || !theirs.is_empty()).then(|| OtherJob {
                start: theirs.iter().filter_map(|p| p.started).min(),
                own: theirs.iter().map(|p| (p.pid, p.start_ticks)).collect(),
                job: o.clone(),
            })
        })
        .collect();
    Jobs {
        workspace: ours.workspace.clone(),
        id: ours.id.clone(),
        uid: ours.uid,
        own,
        others,
        claims,
        unknown,
        engines,
    }
}

/// Ends `job`'s registration: its cleanup is done.
pub fn unregister(job: &Job, now: Option<i64>) {
    if let Ok(registry) = Registry::open() {
        registry.end(job, now);
    }
}
