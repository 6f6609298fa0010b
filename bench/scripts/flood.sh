#!/usr/bin/env bash
# A random-name flood through the forward path (issue 18): names that all miss the cache, sent at
# fixed rates to clusterdns. Meanwhile our loadgen asks cluster names; its qps during each flood
# is compared with its qps without one, in the same run. loadgen nearly fills the client core on
# its own, so the flood is sent by `loadgen --flood` (a batch a millisecond, a few percent of a
# core) unless FLOODER=dnsperf (10-40% of the core, taken from loadgen's qps). The share of the
# server's core the flood takes, measured before loadgen starts, says what it costs the server.
# Reports the server's RSS and peak (VmHWM), the share of a core the server and the clients
# used, and how many flood names reached the upstream.
#
#   bench/scripts/flood.sh [SERVICES] [FLOOD_QPS...]     # default 5000 2000 5000 20000
#   NO_BUILD=1 ...                                        # with the release binaries built
#   UPSTREAM=answering ...                                # see below
#   SECONDS_FLOOD=30 ...                                  # each flood's length (default 30)
#   SERVER_FLAGS="--max-concurrent 100000" ...            # more flags for the server
#   FLOODER=dnsperf ...                                   # dnsperf sends the flood, not loadgen
#
# UPSTREAM=silent (default): the upstream takes every query and answers none, so each forwarded
# query waits until it times out and the bounds hold: `max_concurrent` (1000 for --upstream)
# and --max-forward-pending. Past them a query is answered REFUSED at once.
# UPSTREAM=answering: loadgen --respond answers every query at once (its own bytes with QR set),
# so every flood name is forwarded and cached: the cache's size is the bound on memory.
#
# Server on CPU 0; the clients (loadgen, the flood) and the upstream on CPU 1. Loopback only. Not run in CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SERVICES=${1:-5000}
shift || true
RATES=("${@:-2000 5000 20000}")
read -r -a RATES <<<"${RATES[*]}"
SECONDS_FLOOD=${SECONDS_FLOOD:-30}
UPSTREAM=${UPSTREAM:-silent}
FLOODER=${FLOODER:-loadgen}
command -v dnsperf >/dev/null || [ "$FLOODER" = loadgen ] ||
  { echo "flood.sh: apt-get install dnsperf" >&2; exit 1; }
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
UPSTREAM_PORT=5599
case "$UPSTREAM" in
silent)
  # Takes every query, answers none, counts the distinct names.
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
  ;;
answering) taskset -c 1 "$BIN/loadgen" --respond "127.0.0.1:$UPSTREAM_PORT" & ;;
*) echo "flood.sh: UPSTREAM is silent or answering, not $UPSTREAM" >&2; exit 1 ;;
esac
UPSTREAM_PID=$!
PORT=5500
taskset -c 0 "$BIN/clusterdns" --manifests "$WORK/cluster.yaml" --listen "127.0.0.1:$PORT" \
  --threads 1 --upstream "127.0.0.1:$UPSTREAM_PORT" --health 127.0.0.1:5501 --ready 127.0.0.1:5502 \
  --metrics 127.0.0.1:5503 ${SERVER_FLAGS:-} >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 600); do
  dig +short +time=1 +tries=1 -p "$PORT" @127.0.0.1 kubernetes.default.svc.cluster.local >/dev/null 2>&1 && break
  sleep 0.1
done
rss() { awk -v f="$1:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$SERVER/status"; }
# CPU seconds (user + system) a process has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# Ten seconds of cluster names; prints loadgen's qps and the share of a core the server and
# loadgen each used meanwhile (a server below 100% was not the bottleneck).
load() {
  local before after
  before=$(cpu "$SERVER")
  taskset -c 1 /usr/bin/time -f "loadgen CPU: %P of a core" "$BIN/loadgen" --server "127.0.0.1:$PORT" \
    --queries "$WORK/service-mix.txt" --duration 10 2>&1 | grep -E "qps|lost|CPU" | head -4
  after=$(cpu "$SERVER")
  echo "server CPU: $(echo "($after - $before) * 10" | bc -l | xargs printf '%.0f')% of a core"
}
echo "upstream: $UPSTREAM; $SERVICES Services; RSS before: $(rss VmRSS) MiB"
echo "== cluster names alone (loadgen, 10 s)"
load
for RATE in "${RATES[@]}"; do
  echo "== flood: $FLOODER at $RATE qps of random names for $SECONDS_FLOOD s; server CPU for it alone from 2 s to 7 s, then cluster names from loadgen"
  if [ "$FLOODER" = dnsperf ]; then
    # -q: enough queries outstanding that the rate holds while the forwarded ones wait.
    taskset -c 1 /usr/bin/time -f "flood CPU: %P of a core" dnsperf -s 127.0.0.1 -p "$PORT" \
      -d "$WORK/flood.txt" -Q "$RATE" -l "$SECONDS_FLOOD" -q 65000 -t 3 >"$WORK/flood.log" 2>&1 &
  else
    taskset -c 1 /usr/bin/time -f "flood CPU: %P of a core" "$BIN/loadgen" --server "127.0.0.1:$PORT" \
      --queries "$WORK/flood.txt" --flood "$RATE" --duration "$SECONDS_FLOOD" >"$WORK/flood.log" 2>&1 &
  fi
  FLOOD=$!
  # What the flood alone costs the server: what is left of its core is left for cluster names.
  sleep 2
  before=$(cpu "$SERVER")
  sleep 5
  echo "server CPU for the flood alone: $(echo "($(cpu "$SERVER") - $before) * 20" | bc -l | xargs printf '%.1f')% of a core"
  load
  echo "RSS during the flood: $(rss VmRSS) MiB"
  wait $FLOOD
  grep -E "Queries sent|Queries completed|Queries lost|Response codes|flood|CPU" "$WORK/flood.log"
  echo "RSS after: $(rss VmRSS) MiB, peak (VmHWM) so far $(rss VmHWM) MiB"
  sleep 3
done
curl -s "http://127.0.0.1:5503/metrics" 2>/dev/null | grep -E "^coredns_(forward_max_concurrent_rejects_total|cache_entries)" || true
kill "$UPSTREAM_PID"; wait "$UPSTREAM_PID" 2>/dev/null || true
[ "$UPSTREAM" = silent ] &&
  echo "distinct flood names that reached the upstream: $(cat "$WORK/upstream.count" 2>/dev/null || echo '?')"
exit 0
