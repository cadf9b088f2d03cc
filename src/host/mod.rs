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
pub mod procfs;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context;

use crate::model::{known, Executable, HolderContext, HostFacts, Process, Proto, Socket};
use crate::portspec::{PortRange, PortSpec};

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
            let (walk, skipped, engines) = split(proc_root, owners, pids);
            (walk_fds(proc_root, &walk, None), skipped, engines)
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
        Err(e) => facts.proc_error = Some(e),
    }
    Ok(facts)
}

/// Which processes the first walk reads, which it leaves for [`resolve_more`], and the
/// engines found on the way. Reading descriptor links dominates: busy hosts have
/// thousands that are not Docker's, so the views that need not see every owner read the
/// processes that can hold a port for a container first.
fn split(
    proc_root: &Path,
    owners: Owners<'_>,
    pids: Vec<u32>,
) -> (Vec<u32>, Vec<u32>, Vec<crate::model::LocalEngine>) {
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
            // The sieve reads every name anyway: every engine is found with it.
            let engines = engines::discover(proc_root, &comms);
            let (walk, skipped): (Vec<_>, Vec<_>) = comms
                .iter()
                .partition(|(pid, comm)| may_forward(proc_root, *pid, comm.as_deref()));
            (pids_of(walk), pids_of(skipped), engines)
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
    for p in &candidates {
        engines::add(facts, proc_root, p);
    }
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

/// The host's PID namespace: init's, else (not root) portreap's own.
fn host_pid_ns(proc_root: &Path) -> Option<u64> {
    read_ns(&proc_root.join("1"), "pid").or_else(|| read_ns(&proc_root.join("self"), "pid"))
}

/// The inode of a namespace link, `/proc/PID/ns/KIND` -> `KIND:[4026531836]`.
fn read_ns(dir: &Path, kind: &str) -> Option<u64> {
    let link = fs::read_link(dir.join("ns").join(kind)).ok()?;
    let text = link.to_str()?;
    text.strip_prefix(kind)?
        .strip_prefix(":[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The executable of the process in `dir`: the link names it, and following the link
/// reaches the file itself even when it was deleted or lives in another mount namespace.
fn read_exe(dir: &Path) -> Option<Executable> {
    use std::os::unix::fs::PermissionsExt;
    let link = dir.join("exe");
    let target = fs::read_link(&link).ok()?;
    let target = target.to_string_lossy();
    let (path, deleted) = match target.strip_suffix(" (deleted)") {
        Some(path) => (path.to_owned(), true),
        None => (target.into_owned(), false),
    };
    let meta = fs::metadata(&link).ok()?;
    Some(Executable {
        path,
        deleted,
        owner: meta.uid(),
        shared_write: meta.permissions().mode() & 0o022 != 0,
    })
}

fn list_pids(proc_root: &Path) -> Result<Vec<u32>, String> {
    let entries =
        fs::read_dir(proc_root).map_err(|e| format!("cannot read {}: {e}", proc_root.display()))?;
    Ok(entries
        .flatten()
        .filter_map(|e| {
            std::str::from_utf8(e.file_name().as_bytes())
                .ok()?
                .parse()
                .ok()
        })
        .collect())
}

/// Whether the process may hold a port for a container: by name (see
/// [`known::may_forward`]) or by living in a container's cgroup (a `--network host`
/// container). Cheap: no descriptor walk. Only a sieve for which tables to read: the
/// analysis proves identity.
fn may_forward(proc_root: &Path, pid: u32, comm: Option<&str>) -> bool {
    if comm.is_some_and(known::may_forward) {
        return true;
    }
    read_small(&proc_root.join(format!("{pid}/cgroup")))
        .and_then(|raw| procfs::parse_cgroup_container_id(&String::from_utf8_lossy(&raw)))
        .is_some()
}

/// The kernel's name of a process (`comm`), if it still runs. Read once for all
/// processes by the sieves: one open, one read (the kernel gives the at most 16 bytes
/// whole), one close.
fn read_comm(proc_root: &Path, pid: u32) -> Option<String> {
    use rustix::fs::{open, Mode, OFlags};
    let path = proc_root.join(format!("{pid}/comm"));
    let fd = open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut raw = [0u8; 64];
    let n = rustix::io::read(&fd, &mut raw).ok()?;
    let raw = raw[..n].strip_suffix(b"\n").unwrap_or(&raw[..n]);
    Some(String::from_utf8_lossy(raw).into_owned())
}

/// A small `/proc` file whole. The sieves read one or two of these per process, so the
/// system calls count: std's `fs::read` asks the file's size first (and `/proc` reports
/// none) and reads twice; this opens, reads until the end and closes.
fn read_small(path: &Path) -> Option<Vec<u8>> {
    use rustix::fs::{open, Mode, OFlags};
    let fd = open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match rustix::io::read(&fd, &mut chunk) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
}

/// The port ranges of `spec` that select `proto`.
fn ranges_of(spec: &PortSpec, proto: Proto) -> Vec<PortRange> {
    spec.0
        .iter()
        .filter(|sel| sel.proto.is_none_or(|p| p == proto))
        .map(|sel| sel.range)
        .collect()
}

/// The `proto` sockets in `states` of both address families, those on `ranges` if given
/// (the kernel filters, as for `ss 'sport = :PORT'`; a list too long for its filter, or
/// a filter it refuses, is picked here instead).
fn dump_ports(
    proto: Proto,
    states: diag::States,
    ranges: Option<&[PortRange]>,
) -> std::io::Result<Vec<diag::Entry>> {
    let filter = ranges.filter(|r| r.len() <= diag::MAX_FILTERED_RANGES);
    let keep = |e: &diag::Entry| {
        ranges.is_none_or(|r| r.iter().any(|range| range.contains(e.socket.port)))
    };
    // TCP: both families in one walk of the kernel's tables when it takes the older
    // request, else (or when it refuses the filter) one family at a time.
    if proto == Proto::Tcp {
        if let Ok(found) = diag::dump_tcp_states(states, filter) {
            return Ok(once_each(found.into_iter().filter(keep).collect()));
        }
    }
    let mut out = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        let dump = |filter| diag::dump_states(family as u8, proto, states, filter);
        let answer = dump(filter).or_else(|e| match filter {
            Some(_) => dump(None),
            None => Err(e),
        });
        match answer {
            Ok(found) => out.extend(found.into_iter().filter(keep)),
            // A kernel without IPv6 has no IPv6 sockets to list.
            Err(e)
                if family == libc::AF_INET6
                    && matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EAFNOSUPPORT)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(once_each(out))
}

/// A dump is not atomic: a table that changes while the kernel walks it in batches may
/// name a socket twice. A socket's inode names it alone (TIME_WAIT has none: those are
/// kept as they come).
fn once_each(mut found: Vec<diag::Entry>) -> Vec<diag::Entry> {
    let mut seen = HashSet::new();
    found.retain(|e| e.socket.inode == 0 || seen.insert(e.socket.inode));
    found
}

/// Every listening TCP and bound UDP socket, IPv4 and IPv6; with [`Owners::OnPorts`] only
/// those on the ports.
fn list_sockets(owners: Owners<'_>) -> anyhow::Result<Vec<Socket>> {
    let mut sockets = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp] {
        let ranges = owners.ports().map(|spec| ranges_of(spec, proto));
        if ranges.as_ref().is_some_and(Vec::is_empty) {
            continue;
        }
        let found = dump_ports(proto, diag::States::Listening, ranges.as_deref())
            .context("cannot list sockets through netlink (sock_diag)")?;
        sockets.extend(found.into_iter().map(|e| e.socket));
    }
    Ok(sockets)
}

/// The TCP sockets on the ports of `spec` in every state but LISTEN, both families.
fn list_port_uses(spec: &PortSpec) -> anyhow::Result<Vec<crate::model::PortUse>> {
    use crate::model::{PortUse, TcpState};
    let ranges = ranges_of(spec, Proto::Tcp);
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let found = dump_ports(Proto::Tcp, diag::States::Others, Some(&ranges))
        .context("cannot list the ports' connections through netlink (sock_diag)")?;
    Ok(found
        .into_iter()
        .map(|e| {
            // The bind table's sockets (Linux 6.8+, asked by TCPF_BOUND_INACTIVE) come
            // back in state CLOSE: a closed socket that is not bound is in no table.
            let state = match TcpState::from_kernel(e.state) {
                TcpState::Close => TcpState::BoundInactive,
                state => state,
            };
            PortUse {
                ip: e.socket.ip,
                port: e.socket.port,
                state,
                peer: e.peer,
                expires_ms: (state == TcpState::TimeWait).then_some(u64::from(e.expires_ms)),
                inode: e.socket.inode,
                uid: e.socket.uid,
                pids: Vec::new(),
            }
        })
        .collect())
}

#[derive(Default)]
struct FdWalk {
    owners: HashMap<u32, Vec<u32>>,
    unreadable: usize,
}

/// What one process's descriptor table told.
enum Table {
    /// The wanted socket inodes it holds (possibly none).
    Holds(Vec<u32>),
    /// It exited while we walked: nothing to attribute.
    Gone,
    /// Its table or links cannot be read (no permission): its sockets are unknown.
    Unreadable,
}

/// Maps socket inodes (the `wanted` ones, or all) to the PIDs (among `pids`) holding them. A process whose
/// descriptor table cannot be read is counted, so a socket without owner can be explained.
///
/// Every descriptor of every process is read: stopping at the first holder would miss the
/// others of a shared socket (a forked server's workers, systemd socket activation), and
/// `free --kill-processes` must see them all. Speed comes instead from one `readlinkat`
/// per descriptor relative to the table's directory (no path walk from `/` each time) and
/// from spreading the processes over the cores.
fn walk_fds(proc_root: &Path, pids: &[u32], wanted: Option<&HashSet<u32>>) -> FdWalk {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Ok(proc_dir) = rustix::fs::open(
        proc_root,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return FdWalk {
            unreadable: pids.len(),
            ..FdWalk::default()
        };
    };
    // Small chunks, taken in turn: a few processes (the busy servers) hold most
    // descriptors, so a fixed split would leave one thread with all the work.
    const CHUNK: usize = 4;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 4)
        .min(pids.len().div_ceil(CHUNK * 4).max(1));
    let next = AtomicUsize::new(0);
    let work = || {
        let mut walk = FdWalk::default();
        let mut dirents = Vec::with_capacity(16 * 1024);
        loop {
            let first = next.fetch_add(CHUNK, Ordering::Relaxed);
            let Some(chunk) = pids.get(first..pids.len().min(first + CHUNK)) else {
                break;
            };
            for &pid in chunk {
                match read_table(&proc_dir, pid, wanted, &mut dirents) {
                    Table::Holds(inodes) => {
                        for inode in inodes {
                            walk.owners.entry(inode).or_default().push(pid);
                        }
                    }
                    Table::Gone => {}
                    Table::Unreadable => walk.unreadable += 1,
                }
            }
        }
        walk
    };
    let mut walk = if threads == 1 {
        work()
    } else {
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            let mut walk = work();
            for helper in helpers {
                let part = match helper.join() {
                    Ok(part) => part,
                    Err(panic) => std::panic::resume_unwind(panic),
                };
                walk.unreadable += part.unreadable;
                for (inode, holders) in part.owners {
                    walk.owners.entry(inode).or_default().extend(holders);
                }
            }
            walk
        })
    };
    for pids in walk.owners.values_mut() {
        pids.sort_unstable();
        pids.dedup();
    }
    walk
}

/// Reads one process's descriptor table for the wanted socket inodes. `dirents` is a
/// reusable buffer for the directory entries.
fn read_table(
    proc_dir: &rustix::fd::OwnedFd,
    pid: u32,
    wanted: Option<&HashSet<u32>>,
    dirents: &mut Vec<u8>,
) -> Table {
    use rustix::io::Errno;
    let fd_dir = match rustix::fs::openat(
        proc_dir,
        format!("{pid}/fd"),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::SRCH) => return Table::Gone,
        Err(_) => return Table::Unreadable,
    };
    let mut held = Vec::new();
    // "socket:[4294967295]" is 19 bytes; longer targets are paths, never sockets.
    let mut link = [0u8; 32];
    'read: loop {
        dirents.clear();
        let mut entries = rustix::fs::RawDir::new(&fd_dir, dirents.spare_capacity_mut());
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(entry) => entry,
                // The buffer cannot hold even one entry: never with 16 KiB, but grow
                // rather than lose the table.
                Err(Errno::INVAL) => {
                    let more = dirents.capacity() * 2;
                    dirents.reserve(more);
                    continue 'read;
                }
                Err(Errno::NOENT | Errno::SRCH) => return Table::Gone,
                Err(_) => return Table::Unreadable,
            };
            let name = entry.file_name();
            if name.to_bytes().first() == Some(&b'.') {
                continue;
            }
            let len = match rustix::fs::readlinkat_raw(&fd_dir, name, &mut link[..]) {
                Ok(len) => len,
                // Listing a descriptor table can be allowed while reading its links is
                // not (a container without SYS_PTRACE): that process's sockets are
                // unknown too.
                Err(Errno::ACCESS | Errno::PERM) => return Table::Unreadable,
                // Closed since the listing.
                Err(_) => continue,
            };
            if let Some(inode) = procfs::parse_socket_link(&link[..len]) {
                if wanted.is_none_or(|w| w.contains(&inode)) {
                    held.push(inode);
                }
            }
        }
        // A descriptor duplicated (dup, or inherited twice) names its socket twice.
        held.sort_unstable();
        held.dedup();
        return Table::Holds(held);
    }
}

/// Names the owners of `processes` from `/etc/passwd` (no NSS: a scan must not hang on a
/// directory service; unknown uids are simply shown as numbers).
fn user_names(processes: &BTreeMap<u32, Process>) -> BTreeMap<u32, String> {
    let wanted: std::collections::BTreeSet<u32> =
        processes.values().filter_map(|p| p.uid).collect();
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    procfs::parse_passwd(&passwd)
        .into_iter()
        .filter(|(uid, _)| wanted.contains(uid))
        .collect()
}

/// Seconds since the epoch at boot (`btime` in `/proc/stat`), read once.
fn boot_time() -> Option<i64> {
    static BOOT: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| {
        fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()
    })
}

/// Clock ticks per second, the unit of a process's start time.
fn clock_ticks() -> u64 {
    Some(rustix::param::clock_ticks_per_second())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Whether two paths name the same file (device and inode); `None` when either cannot
/// be read.
pub fn same_file(a: &Path, b: &Path) -> Option<bool> {
    let (a, b) = (fs::metadata(a).ok()?, fs::metadata(b).ok()?);
    Some(a.dev() == b.dev() && a.ino() == b.ino())
}

/// Reads what portreap needs to know about one process; `None` if it exited meanwhile.
pub fn read_process(proc_root: &Path, pid: u32) -> Option<Process> {
    let dir = proc_root.join(pid.to_string());
    let stat = procfs::parse_stat(&fs::read(dir.join("stat")).ok()?)?;
    let cmdline = fs::read(dir.join("cmdline"))
        .map(|raw| procfs::parse_cmdline(&raw))
        .unwrap_or_default();
    let container_id = fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|raw| procfs::parse_cgroup_container_id(&raw));
    Some(Process {
        started: boot_time().map(|boot| boot + (stat.start_ticks / clock_ticks()) as i64),
        pid,
        ppid: stat.ppid,
        uid: fs::metadata(&dir).ok().map(|m| m.uid()),
        name: stat.name,
        cmdline,
        start_ticks: Some(stat.start_ticks),
        container_id,
        exe: read_exe(&dir),
        pid_ns: read_ns(&dir, "pid"),
        mnt_ns: read_ns(&dir, "mnt"),
    })
}
