//! The facts stage: everything portreap reads from the host, the engines and the
//! filesystem, gathered into one [`Snapshot`] that the pure stages (`analyze`, `prune`'s
//! planner, `report`) work from. Nothing here judges; it reads, and proves which engine
//! process serves which endpoint.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use anyhow::Context as _;

use crate::analyze::findings::port_conflict;
use crate::config::Global;
use crate::engine::cache::Cache;
use crate::engine::{EngineFacts, Inspect};
use crate::host::Owners;
use crate::model::{Container, EngineStatus, HostFacts, LocalEngine, Proto, Snapshot};
use crate::portspec::PortSpec;

/// Reads the host and asks the engines at the same time (the engine round trips and the
/// `/proc` walk are independent), then proves which local process serves each engine
/// and reads what the answers make worth reading. `--snapshot` replays a recorded one.
pub fn gather(global: &Global, owners: Owners<'_>) -> anyhow::Result<Snapshot> {
    let ask = Ask {
        owners,
        inspect: inspect_for(owners),
        identify: false,
    };
    gather_with(global, ask, |cache| cache)
}

/// [`gather`] for a verb that acts: what it reads is decided by nothing remembered (see
/// [`Cache::refresh_only`]), so a cache file cannot hide a container from its plan; and
/// every container its plan may act on is read in full (see [`inspect_to_act`]).
/// `identify` also asks each engine its own id (a baseline's cleanup checks it).
pub fn gather_to_act(
    global: &Global,
    owners: Owners<'_>,
    identify: bool,
) -> anyhow::Result<Snapshot> {
    let ask = Ask {
        owners,
        inspect: inspect_to_act(owners),
        identify,
    };
    gather_with(global, ask, Cache::refresh_only)
}

/// Everything, with each engine's own id: what a CI baseline records.
pub fn gather_baseline(global: &Global) -> anyhow::Result<Snapshot> {
    let ask = Ask {
        owners: Owners::All,
        inspect: Inspect::All,
        identify: true,
    };
    gather_with(global, ask, |cache| cache)
}

/// What a gather reads: whose sockets, which containers in full, and whether the
/// engines' own ids.
#[derive(Clone, Copy)]
struct Ask<'a> {
    owners: Owners<'a>,
    inspect: Inspect<'a>,
    identify: bool,
}

fn open_cache(global: &Global) -> Cache {
    global
        .cache_dir
        .clone()
        .map_or_else(Cache::disabled, Cache::open)
}

/// `gather`, with the user's cache as `cache` makes it (see [`Cache::refresh_only`]).
fn gather_with(
    global: &Global,
    ask: Ask<'_>,
    cache: impl FnOnce(Cache) -> Cache,
) -> anyhow::Result<Snapshot> {
    let owners = ask.owners;
    if let Some(path) = &global.snapshot {
        let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        return serde_json::from_slice(&raw)
            .with_context(|| format!("{} is not a portreap snapshot", path.display()));
    }
    // Every engine is asked at once with the host walk, so the engines to ask must be
    // known first: a quick look at the process table's names, only when all are asked.
    // The clock before anything is read: every age measured against it is at most what
    // was seen (a slow engine's answers must not make young containers look old).
    let taken_at = crate::time::now();
    let found = if global.all_engines {
        crate::host::engines::discover_all(&global.proc_root)
    } else {
        Vec::new()
    };
    let (mut host, engines) = read_and_ask(global, ask, &found, cache)?;
    if global.all_engines {
        crate::host::engines::merge(&mut host, found);
        host.engines_searched = true;
    }
    let (first, others, containers) = prove_engines(global, &mut host, engines);
    read_container_processes(global, &mut host, &containers);
    if matches!(owners, Owners::Forwarders) {
        name_holders_of_asked_ports(global, &mut host, &containers);
    }
    let roots: Vec<_> = std::iter::once(&first)
        .chain(&others)
        .map(|e| {
            (
                e,
                crate::host::compose::Roots::new(&global.host_root, &global.proc_root, e),
            )
        })
        .collect();
    let judged = bearing_on(&containers, owners.ports());
    let fs = crate::host::compose::compose_facts(&judged, &roots);
    Ok(Snapshot {
        taken_at,
        host,
        fs,
        engine: first,
        engines: others,
        containers,
    })
}

/// The host walk on a thread of its own while the engines answer on this one (as `ask`
/// says), with what the user's cache remembers as `cache` lets them see it.
fn read_and_ask(
    global: &Global,
    ask: Ask<'_>,
    found: &[LocalEngine],
    cache: impl FnOnce(Cache) -> Cache,
) -> anyhow::Result<(HostFacts, Vec<EngineFacts>)> {
    let (host, engines) = std::thread::scope(|scope| {
        let host = scope.spawn(|| {
            let start = std::time::Instant::now();
            let host = crate::host::collect(&global.proc_root, ask.owners);
            if let Ok(h) = &host {
                crate::messages::detail(&format!(
                    "host: {} sockets, {} owning processes, {} unreadable, in {:.1} ms",
                    h.sockets.len(),
                    h.processes.len(),
                    h.unreadable_processes,
                    ms(start)
                ));
            }
            host
        });
        let start = std::time::Instant::now();
        // Read while the host walk goes on.
        let mut cache = cache(open_cache(global));
        let mut engines = crate::engine::collect_all(
            global.endpoints(found),
            global.timeout,
            (ask.inspect, ask.identify),
            &cache,
        );
        remember(&mut cache, &mut engines);
        for e in &engines {
            let from = if e.status.endpoint.is_empty() {
                "nowhere"
            } else {
                &e.status.endpoint
            };
            let inspected = e.containers.iter().filter(|c| c.inspected).count();
            crate::messages::detail(&format!(
                "engine: {} containers ({inspected} inspected) from {from} in {:.1} ms",
                e.containers.len(),
                ms(start)
            ));
        }
        (host.join(), engines)
    });
    match host {
        Ok(host) => Ok((host?, engines)),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Writes back what the engines that listed their containers told of them (taken from
/// their facts: nothing else reads it), while the host walk goes on.
fn remember(cache: &mut Cache, engines: &mut [EngineFacts]) {
    for e in engines {
        if let Some(entries) = e.remembered.take() {
            cache.update(&e.status.endpoint, entries);
        }
    }
    cache.save();
}

/// Which containers the engine is asked to read in full: every one when every owner is,
/// those that can bear on the ports, or those the forwarders' view judges.
fn inspect_for(owners: Owners<'_>) -> Inspect<'_> {
    match owners {
        Owners::All => Inspect::All,
        Owners::OnPorts(spec) | Owners::EveryHolderOn(spec) => Inspect::ForPorts(spec),
        Owners::Forwarders => Inspect::Judged,
    }
}

/// Which containers a verb that acts reads in full: every one for `prune`, whose guards
/// and re-checks need facts only the inspect gives (the creation time to the second, the
/// image as the user named it, the restart policy); the default view leaves settled
/// running containers to their list record, and a decision must never rest on a fact
/// the view did not read. `free` and a baseline cleanup already read every holder of
/// their ports, or every container.
fn inspect_to_act(owners: Owners<'_>) -> Inspect<'_> {
    match owners {
        Owners::Forwarders => Inspect::All,
        other => inspect_for(other),
    }
}

/// Proves the local process behind every engine asked, and pools their containers (each
/// knows its engine by position): the first engine's status, the others', the containers.
fn prove_engines(
    global: &Global,
    host: &mut HostFacts,
    engines: Vec<EngineFacts>,
) -> (EngineStatus, Vec<EngineStatus>, Vec<Container>) {
    let mut engines = engines.into_iter();
    let first = engines.next().unwrap_or_else(|| EngineFacts {
        status: EngineStatus::default(),
        containers: Vec::new(),
        remembered: None,
    });
    let mut first_status = first.status;
    crate::host::engines::prove(&mut first_status, host, &global.proc_root);
    let mut containers = first.containers;
    let mut others = Vec::new();
    for mut e in engines {
        crate::host::engines::prove(&mut e.status, host, &global.proc_root);
        containers.extend(e.containers);
        others.push(e.status);
    }
    (first_status, others, containers)
}

/// A host-network container's processes are told from impostors by its main process, so
/// those main processes are read too.
fn read_container_processes(global: &Global, host: &mut HostFacts, containers: &[Container]) {
    let main_pids: Vec<u32> = containers
        .iter()
        .filter(|c| c.is_host_network())
        .filter_map(|c| c.pid)
        .collect();
    crate::host::read_processes(host, &global.proc_root, &main_pids);
}

/// The forwarders' view skips plain processes. Their sockets matter there only where the
/// analysis reads their owner: on a port some container asks for or failed to start on
/// (the holder is what blocks it), and on exactly the address of a live binding (an
/// unowned socket there would be taken for the engine's). Those are walked for; a plain
/// socket beside a live binding, on another address of its port, is neither shown nor
/// judged, and reading every process to name it would cost the full walk.
fn name_holders_of_asked_ports(global: &Global, host: &mut HostFacts, containers: &[Container]) {
    let mut asked: HashSet<(Proto, u16)> = HashSet::new();
    let mut live: HashMap<(Proto, u16), Vec<IpAddr>> = HashMap::new();
    for c in containers {
        for b in &c.live {
            live.entry((b.proto, b.host_port))
                .or_default()
                .push(b.host_ip);
        }
        for r in &c.requested {
            let ports = r
                .host_ports
                .into_iter()
                .flat_map(|range| range.start..=range.end);
            asked.extend(ports.map(|p| (r.proto, p)));
        }
        // A start error that does not say the protocol blocks on either.
        if let Some((named, _, port)) = c.error.as_deref().and_then(port_conflict) {
            let protos = [Proto::Tcp, Proto::Udp].into_iter();
            asked.extend(
                protos
                    .filter(|p| named.is_none_or(|n| n == *p))
                    .map(|p| (p, port)),
            );
        }
    }
    crate::host::resolve_more(host, &global.proc_root, |s| {
        asked.contains(&(s.proto, s.port))
            || live
                .get(&(s.proto, s.port))
                .is_some_and(|ips| ips.iter().any(|ip| s.serves(*ip)))
    });
}

/// The containers whose compose paths the answer needs judged: every one, or for a view
/// confined to `ports`, those whose bindings can touch them (a binding on a port the
/// engine picks can touch any) and the compose containers started from the same
/// directory (a superseded project is judged against its successor). Another project's
/// paths would cost reads and fill the answer with notes about files it never needed.
fn bearing_on<'a>(containers: &'a [Container], ports: Option<&PortSpec>) -> Vec<&'a Container> {
    let Some(ports) = ports else {
        return containers.iter().collect();
    };
    let touches = |c: &Container| {
        c.requested.iter().any(|r| r.may_take(ports))
            || c.live.iter().any(|b| ports.matches(b.proto, b.host_port))
    };
    let dirs: HashSet<&str> = containers
        .iter()
        .filter(|c| touches(c))
        .filter_map(Container::compose_working_dir)
        .collect();
    containers
        .iter()
        .filter(|c| {
            touches(c)
                || c.compose_working_dir()
                    .is_some_and(|dir| dirs.contains(dir))
        })
        .collect()
}

fn ms(start: std::time::Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}
