#!/usr/bin/env python3
"""portreap against the tools people use today, side by side on one machine.

Builds the load itself (listening TCP sockets spread over processes; containers publishing
ports, one paused, a third exited), runs portreap and the reference commands in
alternation (the order rotates every round, so drift and caches hit every command alike),
and prints medians, ratios and peak memory. Cleans up what it made, however it ends.
Everything it creates is named prt-bench-<pid>-*; prune is confined to those containers by
a label.

Needs root, the engine running (bash .ci/setup), GNU time for peak memory (apt-get
install time) and a release build (made here). killport 2.0.2 is the reference for
`why` on a container-held port; its row is skipped with a note when it is absent
(`cargo install killport --version 2.0.2 --root DIR`, then `--killport DIR/bin/killport`).

    python3 docker/bench.py compare [--sockets 5000] [--procs 50] [--containers 30]
                                    [--setup fixed,random]
    python3 docker/bench.py growth         # 1k/5k/20k sockets x 10/100/300 containers
    python3 docker/bench.py prune [--leaks 100] [--leak-kinds exited,paused,paused-grace]
    python3 docker/bench.py all
Options: --runs N (rounds per measurement), --bin PATH (portreap binary).
"""

import argparse
import concurrent.futures
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time

PREFIX = f"prt-bench-{os.getpid()}"
LABEL = f"portreap.bench={os.getpid()}"
IMAGE = os.environ.get("PORTREAP_TEST_IMAGE", "portreap-test-busybox:1")
FIRST_LISTEN_PORT = 10000
FIRST_CONTAINER_PORT = 31000

# Listens on `n` ports from `first`, or with `first` 0 on `n` ports the kernel picks from
# the ephemeral range (where the engine also picks a `-p 0:80` container's host port).
LISTENER = """
import resource, socket, sys, time
n, first = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
held = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", first + i if first else 0))
    s.listen(1)
    held.append(s)
print("ready", flush=True)
time.sleep(86400)
"""


def say(text):
    print(text, file=sys.stderr, flush=True)


def docker(*args, check=True):
    return subprocess.run(
        ["docker", *args], check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ).stdout


def parallel(fn, items, workers=8):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, items))


class Load:
    """Listening sockets in processes, and containers publishing ports."""

    def __init__(self, random_ports=False):
        self.listeners = []
        self.containers = 0
        # Random: containers publish `-p 0:80` and listeners take ephemeral ports, so both
        # share one range; fixed: each has its own block of ports.
        self.random_ports = random_ports
        self.created_at = 0.0

    def listen(self, sockets, procs):
        self.stop_listeners()
        per = -(-sockets // procs)
        for i in range(procs):
            first = 0 if self.random_ports else FIRST_LISTEN_PORT + i * per
            p = subprocess.Popen(
                [sys.executable, "-c", LISTENER, str(per), str(first)],
                stdout=subprocess.PIPE,
                text=True,
            )
            self.listeners.append(p)
        for p in self.listeners:
            if p.stdout.readline().strip() != "ready":
                raise SystemExit("bench: a listener failed to start (ports taken?)")

    def stop_listeners(self):
        for p in self.listeners:
            p.kill()
            p.wait()
        self.listeners = []

    def grow_containers(self, total):
        """Adds containers up to `total`: one paused, a third exited, the rest running."""
        new = range(self.containers + 1, total + 1)

        def run(i):
            host_port = 0 if self.random_ports else FIRST_CONTAINER_PORT + i
            docker("run", "-d", "--name", f"{PREFIX}-{i}", "-l", LABEL,
                   "-p", f"{host_port}:80", IMAGE, "httpd", "-f", "-p", "80")

        parallel(run, new)
        if self.containers == 0 and total > 0:
            docker("pause", f"{PREFIX}-1")
        stop = [f"{PREFIX}-{i}" for i in new if i % 3 == 0]
        if stop:
            docker("stop", "-t", "0", *stop)
        if new:
            self.created_at = time.monotonic()
        self.containers = total

    def settle(self, wait):
        """Waits until the newest container has run for two minutes: hosts' containers
        mostly have, and the default view reads a settled running container from the
        list call alone (a fresh one could be caught between two crashes)."""
        left = self.created_at + 125 - time.monotonic()
        if wait and left > 0:
            say(f"bench: waiting {left:.0f} s for the containers to settle (--no-settle skips)")
            time.sleep(left)

    def listener_port(self):
        """A port one of the listeners holds."""
        out = subprocess.run(["ss", "-ltnpH", "src", "127.0.0.1"], stdout=subprocess.PIPE,
                             text=True, check=True).stdout
        pid = str(self.listeners[len(self.listeners) // 2].pid)
        for line in out.splitlines():
            if f"pid={pid}," in line:
                return int(line.split()[3].rsplit(":", 1)[1])
        raise SystemExit("bench: no listener socket found")

    def container_port(self):
        """The host port a running container of the load publishes."""
        for i in range(self.containers, 0, -1):
            if i % 3 and i != 1:
                out = docker("port", f"{PREFIX}-{i}", "80/tcp").split()
                return int(out[0].rsplit(":", 1)[1])
        raise SystemExit("bench: no running container publishes a port")

    def cleanup(self):
        self.stop_listeners()
        ids = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).split()
        if ids:
            docker("rm", "-f", *ids, check=False)
        self.containers = 0


def run_once(cmd, ok=(0, 1), said=False):
    """Wall time (s) of one run; fails loudly, with what the command said, if it exits
    with a code outside `ok` (scans exit 1 when they find leaks). With `said`, also the
    lines of its stderr."""
    start = time.perf_counter()
    # A scan's output is thrown away (reading it would time this script); a prune's is
    # kept for the failure message.
    out = subprocess.DEVNULL if ok == (0, 1) else subprocess.PIPE
    p = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if p.returncode not in ok:
        lines = ((p.stdout or b"") + p.stderr).decode(errors="replace").strip().splitlines()
        raise SystemExit(f"bench: {' '.join(cmd)} exited {p.returncode}:\n" + "\n".join(lines[-15:]))
    if said:
        return elapsed, p.stderr.decode(errors="replace").splitlines()
    return elapsed


def peak_rss(cmd):
    """Peak resident memory (KiB) of one run, as GNU time reports it (a child of Python
    would count Python's own pages from before its exec)."""
    if not os.path.exists("/usr/bin/time"):
        return None
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    return int(p.stderr.strip().splitlines()[-1])


def measure(commands, runs, warmup=2):
    """Runs `commands` (name -> argv) in rotating order; median ms and peak RSS per name."""
    names = list(commands)
    for _ in range(warmup):
        for name in names:
            run_once(commands[name])
    times = {n: [] for n in names}
    for r in range(runs):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            times[name].append(run_once(commands[name]) * 1000)
    return {n: (statistics.median(times[n]), peak_rss(commands[n])) for n in names}


def mib(kib):
    return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"


def reference_and_portreap(args, plain, held):
    """The commands compared: `plain` is a port a plain process listens on, `held` one a
    running container publishes."""
    bin_path = args.bin
    commands = {
        "ss -ltnpH": ["ss", "-ltnpH"],
        "portreap scan --json": [bin_path, "scan", "--json"],
        "docker ps -a": ["docker", "ps", "-a"],
        "portreap scan --all --json": [bin_path, "scan", "--all", "--json"],
        f"ss -ltnpH 'sport = :{plain}'": ["ss", "-ltnpH", f"sport = :{plain}"],
        f"portreap why {plain}": [bin_path, "why", str(plain)],
        f"ss -ltnpH 'sport = :{held}'": ["ss", "-ltnpH", f"sport = :{held}"],
    }
    if args.killport:
        commands[f"killport --dry-run {held}"] = [args.killport, "--dry-run", str(held)]
    commands[f"portreap why {held}"] = [bin_path, "why", str(held)]
    # Without the bindings remembered from earlier runs (a host's first run, a job on a
    # fresh runner): every stopped container is inspected.
    commands[f"portreap why {held} --no-cache"] = [bin_path, "why", str(held), "--no-cache"]
    return commands


def targets(names, med, plain, held):
    """name -> (ratio, what it is measured against, goal): the issue's targets."""
    ss, ps = med["ss -ltnpH"], med["docker ps -a"]
    out = {
        "portreap scan --json": (med["portreap scan --json"] / ss, "`ss -ltnpH`", 0.35),
        "portreap scan --all --json": (med["portreap scan --all --json"] / (ss + ps),
                                       "`ss -ltnpH` + `docker ps -a`", 0.6),
    }
    for port in (plain, held):
        ref = f"ss -ltnpH 'sport = :{port}'"
        out[f"portreap why {port}"] = (med[f"portreap why {port}"] / med[ref], f"`{ref}`", 0.3)
    killport = f"killport --dry-run {held}"
    if killport in med:
        out[f"portreap why {held} "] = (med[f"portreap why {held}"] / med[killport], f"`{killport}`", 1.2)
    return out


def compare(load, args):
    for setup in args.setup.split(","):
        load.random_ports = setup == "random"
        what = ("containers publishing `-p 0:80`, listeners on ephemeral ports" if load.random_ports
                else "containers and listeners on ports of their own")
        say(f"bench: {args.sockets} sockets in {args.procs} processes, {args.containers} containers ({setup})")
        load.listen(args.sockets, args.procs)
        load.grow_containers(args.containers)
        load.settle(not args.no_settle)
        plain, held = load.listener_port(), load.container_port()
        results = measure(reference_and_portreap(args, plain, held), args.runs)
        med = {n: ms for n, (ms, _) in results.items()}
        goals = targets(list(results), med, plain, held)
        print(f"\n{args.sockets} sockets / {args.procs} processes / {args.containers} containers, "
              f"{what}; median of {args.runs} alternating runs\n")
        print("| command | median | peak RSS | ratio | target |")
        print("|---|---:|---:|---|---|")
        for name, (ms, kib) in results.items():
            rows = [k for k in goals if k.strip() == name] or [None]
            for i, key in enumerate(rows):
                ratio, ref, goal = goals[key] if key else (None, "", None)
                ratio_text = f"{ratio:.2f}x {ref}" if ratio is not None else ""
                goal_text = f"<= {goal}x {'met' if ratio <= goal else 'NOT met'}" if goal else ""
                if name.startswith("portreap") and i == 0:
                    goal_text += ("; " if goal_text else "") + rss_verdict(kib)
                shown = (f"{ms:.1f} ms", mib(kib)) if i == 0 else ("", "")
                print(f"| `{name}` | {shown[0]} | {shown[1]} | {ratio_text} | {goal_text} |")
        if not args.killport:
            print("\n(killport not found: its row is left out; see --killport)")
        load.cleanup()


# Peak memory budget of every portreap run measured (the tests assert no absolute bound).
RSS_BUDGET_KIB = 20 * 1024


def rss_verdict(kib):
    return f"RSS <= {mib(RSS_BUDGET_KIB)} {'met' if kib <= RSS_BUDGET_KIB else 'NOT met'}"


def growth(load, args):
    columns = ["ss -ltnpH", "scan --json", "docker ps -a", "scan --all --json",
               "ss -ltnpH 'sport = :P'", "why P", "ss -ltnpH 'sport = :C'"]
    if args.killport:
        columns.append("killport --dry-run C")
    columns += ["why C", "why C --no-cache"]
    print(f"\nGrowth: median of {args.runs} alternating runs, ms (peak RSS of portreap)\n")
    print("| sockets | containers | " + " | ".join(f"`{c}`" for c in columns) + " |")
    print("|---:|---:|" + "---:|" * len(columns), flush=True)
    peak = 0
    for containers in (10, 100, 300, 500):
        load.grow_containers(containers)
        load.settle(not args.no_settle)
        for sockets in (1000, 5000, 20000):
            say(f"bench: growth point {sockets} sockets, {containers} containers")
            load.listen(sockets, args.procs)
            plain, held = load.listener_port(), load.container_port()
            results = measure(reference_and_portreap(args, plain, held), args.runs, warmup=1)
            cells = []
            for name, (ms, kib) in results.items():
                if name.startswith("portreap"):
                    peak = max(peak, kib)
                cells.append(f"{ms:.1f} ({mib(kib)})" if name.startswith("portreap") else f"{ms:.1f}")
            print(f"| {sockets} | {containers} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nportreap's peak RSS over the table: {mib(peak)} ({rss_verdict(peak)})")


def median_ci(values, level=0.9, resamples=4000):
    """A bootstrap confidence interval of the median: with single runs drifting by a third,
    the median of a dozen ratios alone says too little about where the true ratio lies."""
    rng = random.Random(7)  # the same interval for the same figures, run after run
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    cut = int(resamples * (1 - level) / 2)
    return medians[cut], medians[-cut - 1]


def prune(load, args):
    """Removing leaked containers: portreap prune against the docker commands doing the same
    work on the same set."""
    n = args.leaks

    def make(kind):
        names = [f"{PREFIX}-leak-{i}" for i in range(n)]

        def run(i):
            docker("run", "-d", "--name", names[i], "-l", LABEL, "--restart", "always",
                   "-p", f"{FIRST_CONTAINER_PORT - 1 - i}:80", IMAGE, "httpd", "-f", "-p", "80")

        parallel(run, range(n))
        if kind == "exited":
            docker("stop", "-t", "0", *names)
        else:
            docker("pause", *names)
        # Creating 100 containers leaves the disk writing back for a while; measured
        # straight away, the removals of either tool would time that instead.
        subprocess.run(["sync"], check=True)
        time.sleep(2)
        return names

    def reference(kind, names):
        if kind == "paused-grace":
            # The same graceful work by hand: unpause, stop with the grace, remove.
            return ["sh", "-c", 'docker unpause "$@" >/dev/null && docker stop -t 1 "$@" >/dev/null'
                    ' && docker rm "$@" >/dev/null', "sh", *names]
        return ["docker", "rm", "-f", *names]

    cases = {
        # Exited --restart always containers (dormant-binding): a pure removal for both.
        "exited": ("dormant-binding", [], "`docker rm -f`"),
        # Paused containers with no grace: both kill at once and remove.
        "paused": ("paused-container", ["--grace", "0s"], "`docker rm -f`"),
        # With a grace, prune unpauses, stops (busybox ignores SIGTERM as PID 1, so the
        # whole grace is waited) and removes: compared with the docker commands doing that.
        "paused-grace": ("paused-container", ["--grace", "1s"],
                               "`docker unpause`, `stop -t 1`, `rm`"),
    }

    def fixed_costs(finding, ref_med):
        # What portreap does besides the removals (reading the host, listing and inspecting
        # every container, planning: a dry run on the same containers) against what the
        # reference does besides them (the CLI starting and asking once). Neither touches
        # the disk, so unlike the removals these figures hold still between runs.
        names = make("exited")
        proof = [run_once([args.bin, "prune", "--dry-run", "--min-age", "0s", "--kind", finding,
                           "--label", LABEL], ok=(1,)) for _ in range(15)]
        cli = [run_once(["docker", "rm", "-f", f"{PREFIX}-absent"], ok=(0, 1)) for _ in range(15)]
        docker("rm", "-f", *names)
        proof_s, cli_s = statistics.median(proof), statistics.median(cli)
        return (f"\nBesides the removals (medians of 15, on {n} exited containers): portreap's proof "
                f"(`prune --dry-run`) {proof_s * 1e3:.0f} ms; the docker CLI's start-up and one call "
                f"(`docker rm -f` of an absent name) {cli_s * 1e3:.0f} ms. Had the removals taken "
                f"the same time for both, the ratio would be {(ref_med - cli_s + proof_s) / ref_med:.2f}x.")

    fixed = None
    wanted = args.leak_kinds.split(",")
    print(f"\nPrune throughput: {n} leaked containers, median of {args.prune_rounds} alternating rounds\n")
    # Single runs drift by a third (the removals wait on the disk), so besides the ratio of
    # the medians the table gives the median of each round's own ratio: both tools ran
    # back to back there, on the same disk weather.
    print("| leak | reference | reference time | `portreap prune` | of which acting | ratio | acting ratio "
          "| paired ratio [90% CI] (range) |")
    print("|---|---|---:|---:|---:|---|---|---|")
    for kind, (finding, extra, ref_name) in cases.items():
        if kind not in wanted:
            continue
        ref_times, prune_times, act_times = [], [], []
        for r in range(args.prune_rounds):
            for tool in (("ref", "prune") if r % 2 == 0 else ("prune", "ref")):
                say(f"bench: {n} {kind} containers, {tool}")
                names = make(kind.split("-")[0])
                if tool == "ref":
                    ref_times.append(run_once(reference(kind, names), ok=(0,)))
                else:
                    # Every removal must succeed: exit 0 only. -v says how long acting took.
                    t, said = run_once([args.bin, "-v", "prune", "--yes", "--min-age", "0s", "--kind",
                                        finding, "--label", LABEL, *extra], ok=(0,), said=True)
                    prune_times.append(t)
                    acted = [line for line in said if "acted:" in line]
                    act_times.append(float(acted[-1].split(" in ")[1].split()[0]) / 1000)
                left = docker("ps", "-aq", "--filter", f"name={PREFIX}-leak-").split()
                if left:
                    raise SystemExit(f"bench: {tool} left {len(left)} {kind} containers")
        ref_med, prune_med = statistics.median(ref_times), statistics.median(prune_times)
        act_med = statistics.median(act_times)
        paired = [p / r for p, r in zip(prune_times, ref_times)]
        low, high = median_ci(paired)
        shown = f"{finding}, {' '.join(extra) or 'no options'}"
        print(f"| {kind} ({shown}) | {ref_name} | {ref_med:.2f} s | {prune_med:.2f} s | "
              f"{act_med:.2f} s | {prune_med / ref_med:.2f}x | {act_med / ref_med:.2f}x | "
              f"{statistics.median(paired):.2f}x [{low:.2f}-{high:.2f}] ({min(paired):.2f}-{max(paired):.2f}) |",
              flush=True)
        if kind == "exited":
            fixed = fixed_costs(finding, ref_med)
    if fixed:
        print(fixed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="compare", choices=["compare", "growth", "prune", "all"])
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--procs", type=int, default=50)
    parser.add_argument("--containers", type=int, default=30)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--leaks", type=int, default=100)
    parser.add_argument("--prune-rounds", type=int, default=3)
    parser.add_argument("--leak-kinds", default="exited,paused,paused-grace",
                        help="which prune cases to run (exited, paused, paused-grace)")
    parser.add_argument("--setup", default="fixed,random",
                        help="compare's set-ups: fixed (ports of their own), random (-p 0:80 among "
                             "ephemeral listeners)")
    parser.add_argument("--no-settle", action="store_true",
                        help="measure at once instead of waiting for the containers to run two minutes")
    parser.add_argument("--bin", default="target/release/portreap")
    parser.add_argument("--killport", default=shutil.which("killport") or "",
                        help="killport 2.0.2's binary (default: from PATH)")
    args = parser.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    if args.bin == "target/release/portreap":
        subprocess.run(["cargo", "build", "--release", "--locked", "-q"], check=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load = Load()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        print(f"machine: {os.cpu_count()} cores, {os.uname().release}; "
              f"{docker('version', '--format', 'Docker {{.Server.Version}}').strip()}")
        if args.mode in ("compare", "all"):
            compare(load, args)
        if args.mode in ("prune", "all"):
            prune(load, args)
        if args.mode in ("growth", "all"):
            growth(load, args)
    finally:
        load.cleanup()


if __name__ == "__main__":
    main()
