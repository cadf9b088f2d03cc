//! Host facts: listening sockets from the kernel (`sock_diag` netlink, see [`diag`]) and
//! the processes that hold them, from `/proc`.
//!
//! PIDs are resolved here, not by a socket library's own `/proc` walk (`netstat2`'s panics
//! when `/proc` is unreadable and hides permission errors): portreap must say when an owner
//! could not be read, and why.

pub mod compose;
mod compose_files;
pub mod diag;
pub mod engines;
mod fds;
pub mod lineage;
mod process;
pub mod procfs;
mod sockets;

use fds::{walk_fds, FdWalk};
use process::{host_pid_ns, list_pids, read_comm, read_ns, read_small, user_names};
pub use process::{read_process, same_file};
use sockets::{list_port_uses, list_sockets};

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::Path;

use crate::model::{known, HolderContext, HostFacts, Process, Proto, Socket};
use crate::portspec::PortSpec;

/// Whose descriptors to read, and for which sockets, to find sockets' owners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owners<'a> {
    /// Every process: every socket gets its owner (`scan --all`, `free`, `prune`).
    All,
    /// Only processes that can hold a port for a container (forwarders, the engine,
    /// processes in a container's cgroup); the others are kept for [`resolve_more`]. Reading
    /// descriptor links dominates a scan, and busy hosts have thousands that are not
    /// Docker's.
    Forwarders,
    /// The sockets on these ports only (`why PORT`, `scan --port`): the forwarders naming
    /// one of the ports are read first, every other process for the sockets and
    /// connections still without an owner. A socket found in a forwarder's table is not
    /// looked for elsewhere (another process sharing a docker-proxy's socket goes
    /// unnamed); a plain process's socket gets every holder.
    OnPorts(&'a PortSpec),
    /// The sockets on these ports, with every holder of each from every process (`free`,
    /// which signals them all).
    EveryHolderOn(&'a PortSpec),
}

impl<'a> Owners<'a> {
    /// The ports the answer is confined to, if any.
    pub fn ports(self) -> Option<&'a PortSpec> {
        match self {
            Owners::OnPorts(spec) | Owners::EveryHolderOn(spec) => Some(spec),
            Owners::All | Owners::Forwarders => None,
        }
    }
}

/// Reads the host's listening TCP and bound UDP sockets (IPv4 and IPv6) and the owners
/// that `owners` asks for.
pub fn collect(proc_root: &Path, owners: Owners<'_>) -> anyhow::Result<HostFacts> {
    // The kernel's socket list and the descriptor walk are independent: the walk records
    // every socket a process holds, and the two are joined afterwards.
    let (sockets, walked) = std::thread::scope(|scope| {
        let sockets = scope.spawn(|| {
            let uses = owners.ports().map(list_port_uses).transpose()?;
            Ok::<_, anyhow::Error>((list_sockets(owners)?, uses))
        });
        let walked = list_pids(proc_root).map(|pids| {
            let (walk, skipped, candidates) = split(proc_root, owners, pids);
            let walk = walk_fds(proc_root, &walk, None);
            let engines = engines::discover(proc_root, &candidates, &walk);
            (walk, skipped, engines)
        });
        match sockets.join() {
            Ok(sockets) => (sockets, walked),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    let (sockets, uses) = sockets?;
    let mut facts = HostFacts {
        sockets,
        port_uses_read: uses.is_some(),
        unprivileged_port_start: fs::read_to_string(
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
        )
        .ok()
        .and_then(|t| t.trim().parse().ok()),
        port_uses: uses.unwrap_or_default(),
        scope: owners.ports().cloned(),
        ..HostFacts::default()
    };
    match walked {
        Ok((walk, skipped, engines)) => {
            attach_uses(&mut facts, proc_root, &walk);
            facts.skipped_pids = skipped;
            facts.pid_ns = host_pid_ns(proc_root);
            facts.read_as = Some(rustix::process::geteuid().as_raw());
            facts.engines_searched = matches!(owners, Owners::Forwarders);
            facts.engines = engines;
            attach(&mut facts, proc_root, walk, |s| {
                owners
                    .ports()
                    .is_none_or(|spec| spec.matches(s.proto, s.port))
            });
            if owners.ports().is_some() {
                // Every socket and connection on the ports is owned by the processes
                // that hold it: those the first walk did not find are looked for in
                // every other process.
                resolve_more(&mut facts, proc_root, |_| true);
                read_contexts(&mut facts, proc_root);
            }
        }
        Err(e) => facts.proc_error = Some(format!("cannot read {}: {e}", proc_root.display())),
    }
    Ok(facts)
}

/// The processes the first walk reads, those left for [`resolve_more`], and the engine
/// candidates (PID and name) to read with the walk.
type Split = (Vec<u32>, Vec<u32>, Vec<(u32, Option<String>)>);

/// Which processes the first walk reads, and which it leaves for [`resolve_more`].
/// Reading descriptor links dominates: busy hosts have thousands that are not Docker's,
/// so the views that need not see every owner read the processes that can hold a port
/// for a container first.
fn split(proc_root: &Path, owners: Owners<'_>, pids: Vec<u32>) -> Split {
    let comms = || -> Vec<(u32, Option<String>)> {
        pids.iter()
            .map(|&pid| (pid, read_comm(proc_root, pid)))
            .collect()
    };
    fn pids_of(list: Vec<&(u32, Option<String>)>) -> Vec<u32> {
        list.into_iter().map(|(pid, _)| *pid).collect()
    }
    match owners {
        // Engines are then found from the sockets' holders (see `attach`) and from the
        // endpoints asked (see `engines::prove`).
        Owners::All | Owners::EveryHolderOn(_) => (pids, Vec::new(), Vec::new()),
        // A container's port is most often held by a forwarder: those are read first
        // (docker-proxies only when their arguments name an asked port), the rest only
        // for the sockets still without an owner. The engine (with its hundreds of
        // descriptors) and a host-network container's process are found in that second
        // walk when they hold one. Only an order: a name or arguments that lie cost a
        // second walk, never an owner.
        Owners::OnPorts(spec) => {
            let comms = comms();
            let (walk, skipped): (Vec<_>, Vec<_>) =
                comms.iter().partition(|(pid, comm)| match comm.as_deref() {
                    Some(known::DOCKER_PROXY) => proxy_names_port(proc_root, *pid, spec),
                    Some(c) => known::may_forward(c) && !known::may_be_engine(c),
                    None => false,
                });
            (pids_of(walk), pids_of(skipped), Vec::new())
        }
        Owners::Forwarders => {
            let comms = comms();
            let own_net = read_ns(&proc_root.join("self"), "net");
            let (walk, skipped): (Vec<_>, Vec<_>) = comms
                .iter()
                .partition(|(pid, comm)| may_forward(proc_root, *pid, comm.as_deref(), own_net));
            let (walk, skipped) = (pids_of(walk), pids_of(skipped));
            // The sieve reads every name anyway: every engine is found with it, and the
            // tables of those the walk reads (dockerd's holds a descriptor or more per
            // container) are read once.
            let candidates = comms
                .into_iter()
                .filter(|(_, comm)| comm.as_deref().is_some_and(known::may_be_engine))
                .collect();
            (walk, skipped, candidates)
        }
    }
}

/// Whether a docker-proxy's command line names one of the ports of `spec` (as the value
/// of `-host-port`, or anywhere: this only orders the walk).
fn proxy_names_port(proc_root: &Path, pid: u32, spec: &PortSpec) -> bool {
    let Some(raw) = read_small(&proc_root.join(format!("{pid}/cmdline"))) else {
        return false;
    };
    raw.split(|&b| b == 0 || b == b'=')
        .filter_map(|arg| std::str::from_utf8(arg).ok()?.parse::<u16>().ok())
        .any(|port| spec.matches(Proto::Tcp, port) || spec.matches(Proto::Udp, port))
}

/// Finds the owners of the sockets `wanted` selects (and of the asked ports' other
/// sockets) among the processes the first walk skipped (a plain process on a port a
/// container asks for must be named, not guessed). Does nothing when nothing wanted
/// lacks an owner.
pub fn resolve_more(facts: &mut HostFacts, proc_root: &Path, wanted: impl Fn(&Socket) -> bool) {
    let select = |s: &Socket| s.pids.is_empty() && wanted(s);
    let sockets = facts.sockets.iter().filter(|s| select(s)).map(|s| s.inode);
    let uses = facts
        .port_uses
        .iter()
        .filter(|u| u.inode != 0 && u.pids.is_empty())
        .map(|u| u.inode);
    let inodes: HashSet<u32> = sockets.chain(uses).collect();
    if inodes.is_empty() || facts.skipped_pids.is_empty() {
        return;
    }
    let skipped = std::mem::take(&mut facts.skipped_pids);
    let walk = walk_fds(proc_root, &skipped, Some(&inodes));
    attach_uses(facts, proc_root, &walk);
    attach(facts, proc_root, walk, select);
}

/// Records the owners a walk found for the sockets `select` picks, and reads those owners'
/// processes (only theirs: most holders of sockets hold no listening one).
fn attach(facts: &mut HostFacts, proc_root: &Path, walk: FdWalk, select: impl Fn(&Socket) -> bool) {
    facts.unreadable_processes += walk.unreadable;
    let mut owners: BTreeSet<u32> = BTreeSet::new();
    for socket in facts.sockets.iter_mut() {
        if !select(socket) {
            continue;
        }
        if let Some(pids) = walk.owners.get(&socket.inode) {
            socket.pids.clone_from(pids);
            owners.extend(pids.iter().copied());
        }
    }
    let owners: Vec<u32> = owners.into_iter().collect();
    read_processes(facts, proc_root, &owners);
    // A forwarder is judged by the engine that started it, a host-network process by the
    // container it runs in: both are told by the parent chain.
    let lineage: Vec<u32> = owners
        .into_iter()
        .filter(|pid| {
            facts
                .processes
                .get(pid)
                .is_some_and(|p| known::may_forward(&p.name) || p.container_id.is_some())
        })
        .collect();
    read_ancestors(facts, proc_root, &lineage);
    if !facts.engines_searched {
        find_engines_read(facts, proc_root);
    }
    facts.users = user_names(&facts.processes);
}

/// The holders of the asked ports' other TCP sockets (a pre-fork server's accepted
/// connections, a socket bound and never listened on); TIME_WAIT has none.
fn attach_uses(facts: &mut HostFacts, proc_root: &Path, walk: &FdWalk) {
    let mut holders = BTreeSet::new();
    for u in facts.port_uses.iter_mut().filter(|u| u.inode != 0) {
        if let Some(pids) = walk.owners.get(&u.inode) {
            u.pids.clone_from(pids);
            holders.extend(pids.iter().copied());
        }
    }
    let holders: Vec<u32> = holders.into_iter().collect();
    read_processes(facts, proc_root, &holders);
}

/// For the ordinary processes holding the asked ports (no forwarder, engine or container
/// process): their working directory, session and terminal, and their ancestors, so a
/// person can tell a forgotten `npm run dev` from a service.
fn read_contexts(facts: &mut HostFacts, proc_root: &Path) {
    let held = facts.sockets.iter().map(|s| &s.pids);
    let used = facts.port_uses.iter().map(|u| &u.pids);
    let holders: BTreeSet<u32> = held.chain(used).flatten().copied().collect();
    let plain: Vec<u32> = holders
        .into_iter()
        .filter(|pid| {
            facts.processes.get(pid).is_some_and(|p| {
                p.container_id.is_none()
                    && !known::may_forward(&p.name)
                    && facts.engine(p.pid).is_none()
            })
        })
        .collect();
    for &pid in &plain {
        if let Some(context) = read_context(proc_root, pid) {
            facts.contexts.insert(pid, context);
        }
    }
    read_ancestors(facts, proc_root, &plain);
}

fn read_context(proc_root: &Path, pid: u32) -> Option<HolderContext> {
    let dir = proc_root.join(pid.to_string());
    let stat = procfs::parse_stat(&fs::read(dir.join("stat")).ok()?)?;
    // The kernel keeps a session's id allocated while any member lives, so a missing
    // directory is the leader gone, never a reused PID.
    let session_alive = stat.session != 0 && proc_root.join(stat.session.to_string()).exists();
    Some(HolderContext {
        cwd: fs::read_link(dir.join("cwd"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned()),
        session: stat.session,
        session_alive,
        tty: procfs::tty_name(stat.tty_nr),
    })
}

/// Where not every process was looked at for engines: the engines among the processes
/// read (those a forwarder descends from), and every engine when a conmon's Podman must
/// be named (conmon detaches from the engine that started it).
fn find_engines_read(facts: &mut HostFacts, proc_root: &Path) {
    let candidates: Vec<Process> = facts
        .processes
        .values()
        .filter(|p| known::may_be_engine(&p.name))
        .cloned()
        .collect();
    engines::add(facts, proc_root, &candidates);
    let conmon = facts.processes.values().any(|p| p.name == known::CONMON);
    let podman = facts
        .engines
        .iter()
        .any(|e| e.kind == crate::model::EngineKind::Podman);
    if conmon && !podman {
        engines::search_all(facts, proc_root);
    }
}

/// Reads the processes `pids` (those not read yet) without their ancestors.
pub fn read_processes(facts: &mut HostFacts, proc_root: &Path, pids: &[u32]) {
    for &pid in pids {
        if let std::collections::btree_map::Entry::Vacant(slot) = facts.processes.entry(pid) {
            if let Some(process) = read_process(proc_root, pid) {
                slot.insert(process);
            }
        }
    }
}

/// Reads the ancestors of every process holding a socket: a baseline's cleanup tells a
/// job's own processes from another's by them.
pub fn read_holders_lineage(facts: &mut HostFacts, proc_root: &Path) {
    let holders: BTreeSet<u32> = facts
        .sockets
        .iter()
        .flat_map(|s| s.pids.iter().copied())
        .collect();
    let holders: Vec<u32> = holders.into_iter().collect();
    read_ancestors(facts, proc_root, &holders);
}

/// Reads `pids` and every ancestor of theirs up to PID 1 into the process table.
fn read_ancestors(facts: &mut HostFacts, proc_root: &Path, pids: &[u32]) {
    for &start in pids {
        let mut pid = start;
        // A PID table is a tree rooted at 1; the bound only guards against a process
        // re-parented while it is read.
        for _ in 0..64 {
            let process = match facts.processes.get(&pid) {
                Some(p) => p,
                None => match read_process(proc_root, pid) {
                    Some(p) => facts.processes.entry(pid).or_insert(p),
                    None => break,
                },
            };
            if process.pid <= 1 || process.ppid == 0 {
                break;
            }
            pid = process.ppid;
        }
    }
}

/// Whether the process may hold a port for a container: by name (see
/// [`known::may_forward`]) or by living in a container's cgroup and in the network
/// namespace whose sockets were dumped, `own_net` (a `--network host` container; a bridged
/// container's processes hold sockets of their own namespace, which the dump does not
/// list, so their tables are not read first). Cheap: no descriptor walk. Only a sieve for
/// which tables to read: the analysis proves identity, and a process left out is still
/// read for the sockets on ports a container asks for.
fn may_forward(proc_root: &Path, pid: u32, comm: Option<&str>, own_net: Option<u64>) -> bool {
    if comm.is_some_and(known::may_forward) {
        return true;
    }
    let in_container = read_small(&proc_root.join(format!("{pid}/cgroup")))
        .and_then(|raw| procfs::parse_cgroup_container_id(&String::from_utf8_lossy(&raw)))
        .is_some();
    in_container && {
        let net = read_ns(&proc_root.join(pid.to_string()), "net");
        own_net.is_none() || net.is_none() || net == own_net
    }
}
