#!/usr/bin/env bash
# Benchmark: portreap against the tools people use today, side by side in one run.
# Builds the load itself (listening sockets spread over processes, containers publishing
# ports, one paused, some exited), runs each command alternately with hyperfine, prints
# medians and ratios, and cleans up. Needs root, the engine (bash .ci/setup) and hyperfine
# (apt-get install hyperfine).
#
#   bash docker/bench.sh [SOCKETS] [PROCESSES] [CONTAINERS]     (default 5000 50 30)
set -euo pipefail
cd "$(dirname "$0")/.."
sockets=${1:-5000}
procs=${2:-50}
containers=${3:-30}
per=$(( (sockets + procs - 1) / procs ))
image=${PORTREAP_TEST_IMAGE:-portreap-test-busybox:1}
prefix="prt-bench-$$"
base=41000
pids=()

cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  docker ps -aq --filter "name=$prefix" | xargs -r docker rm -f >/dev/null 2>&1 || true
}
trap cleanup EXIT

command -v hyperfine >/dev/null || { echo "bench: needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
cargo build --release --locked -q
bin=target/release/portreap

echo "load: $sockets listening TCP sockets in $procs processes, $containers containers" >&2
for i in $(seq 0 $((procs - 1))); do
  python3 - "$per" $((base + i * per)) <<'PY' &
import resource, socket, sys, time
n, first = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
held = []
for port in range(first, first + n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1)
    held.append(s)
time.sleep(3600)
PY
  pids+=($!)
done
for i in $(seq 1 "$containers"); do
  docker run -d --name "$prefix-$i" -p $((30000 + i)):80 "$image" httpd -f -p 80 >/dev/null
done
docker pause "$prefix-1" >/dev/null
for i in $(seq 2 $((containers / 3))); do docker stop -t 0 "$prefix-$i" >/dev/null; done
while [ "$(ss -ltnH | wc -l)" -lt "$sockets" ]; do sleep 0.5; done
echo "listening sockets now: $(ss -ltnH | wc -l)" >&2

port=$((base + per / 2))
hyperfine -N --warmup 3 --runs "${RUNS:-20}" --export-markdown /dev/stdout \
  "ss -ltnpH" \
  "$bin scan --json" \
  "docker ps -a" \
  "$bin scan --all --json" \
  "ss -ltnpH sport = :$port" \
  "$bin why $port" 2>/dev/null
for cmd in "scan --json" "scan --all --json" "why $port"; do
  rss=$( { /usr/bin/time -f %M "$bin" $cmd >/dev/null; } 2>&1 | tail -1)
  echo "peak RSS, portreap $cmd: $rss KiB"
done
