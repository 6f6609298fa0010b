#!/usr/bin/env bash
# A random-name flood through the forward path (issue 18): names that all miss the cache, sent by
# dnsperf at a fixed rate to clusterdns, whose upstream (on loopback) takes every query and
# answers none, so every forwarded query waits until it times out and the bound on waiting
# queries (--max-forward-pending) is what holds. Meanwhile our loadgen asks cluster names; its
# qps during the flood is compared with its qps without it, in the same run. Reports the
# server's RSS and peak (VmHWM) and how many names reached the upstream.
#
#   bench/scripts/flood.sh [SERVICES] [FLOOD_QPS] [SECONDS]     # default 5000 20000 30
#   NO_BUILD=1 bench/scripts/flood.sh ...                        # with the release binaries built
#
# Server on CPU 0; loadgen, dnsperf and the upstream on CPU 1. Loopback only. Not run in CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SERVICES=${1:-5000}
RATE=${2:-20000}
SECONDS_FLOOD=${3:-30}
command -v dnsperf >/dev/null || { echo "flood.sh: apt-get install dnsperf" >&2; exit 1; }
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p clusterdns -p clusterdns-bench --bins
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
WORK=$(mktemp -d /tmp/clusterdns-flood.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
"$BIN/gen-cluster" --services "$SERVICES" --endpoints $((SERVICES * 10)) --seed 1 --out "$WORK" >/dev/null
python3 - "$WORK/flood.txt" <<'PY'
import random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    for i in range(1_000_000):
        f.write(f"r{i}-{random.randrange(1 << 30):x}.flood.example A\n")
PY
# The upstream: takes every query, answers none, counts the distinct names.
UPSTREAM_PORT=5599
taskset -c 1 python3 - "$UPSTREAM_PORT" "$WORK/upstream.count" <<'PY' &
import socket, sys, signal
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
names = set()
def done(*_):
    open(sys.argv[2], "w").write(str(len(names)))
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    data, _ = s.recvfrom(1500)
    if b"flood" in data:
        names.add(data[12:].split(b"\0", 1)[0])
PY
UPSTREAM_PID=$!
PORT=5500
taskset -c 0 "$BIN/clusterdns" --manifests "$WORK/cluster.yaml" --listen "127.0.0.1:$PORT" \
  --threads 1 --upstream "127.0.0.1:$UPSTREAM_PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do
  dig +short +time=1 +tries=1 -p "$PORT" @127.0.0.1 kubernetes.default.svc.cluster.local >/dev/null 2>&1 && break
  sleep 0.1
done
rss() { awk -v f="$1:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$SERVER/status"; }
echo "RSS before: $(rss VmRSS) MiB"
load() { taskset -c 1 "$BIN/loadgen" --server "127.0.0.1:$PORT" --queries "$WORK/service-mix.txt" --duration 10 | grep -E "qps|lost" | head -3; }
echo "== cluster names alone (loadgen, 10 s)"
load
echo "== flood: dnsperf at $RATE qps of random names for $SECONDS_FLOOD s; cluster names from loadgen after 5 s"
# -q: enough queries outstanding that the rate holds while the forwarded ones wait.
taskset -c 1 dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/flood.txt" -Q "$RATE" -l "$SECONDS_FLOOD" \
  -q 65000 -t 3 >"$WORK/dnsperf.log" 2>&1 &
FLOOD=$!
sleep 5
load
echo "RSS during the flood: $(rss VmRSS) MiB"
wait $FLOOD
grep -E "Queries sent|Queries completed|Queries lost|Response codes" "$WORK/dnsperf.log"
echo "RSS after: $(rss VmRSS) MiB, peak (VmHWM) $(rss VmHWM) MiB"
kill "$UPSTREAM_PID"; wait "$UPSTREAM_PID" 2>/dev/null || true
echo "distinct flood names that reached the upstream: $(cat "$WORK/upstream.count" 2>/dev/null || echo '?')"
