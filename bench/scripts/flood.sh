#!/usr/bin/env bash
# A random-name flood through the forward path (issue 18): names that all miss the cache, sent at
# fixed rates to clusterdns, while our loadgen asks cluster names. loadgen nearly fills the client
# core on its own, so the flood is sent by `loadgen --flood` (a batch a millisecond, a few
# percent of a core) unless FLOODER=dnsperf (10-40% of the core, taken from loadgen's qps).
#
# For each rate, ROUNDS rounds alternate a control and a flood, LOAD_S seconds of cluster names
# each. The control is the same flood (from loadgen --flood) sent straight to the upstream
# instead of to clusterdns: the client core does the same work (the flood's sender, and the
# answering upstream answering it) while clusterdns does none of it. The median cluster qps
# during the floods over the median during the controls is what the flood cost clusterdns.
# Then one flood of SECONDS_FLOOD seconds without loadgen gives the server's CPU for the flood
# alone and its RSS. Reports the CPU of the server's listener and forwarding threads, loadgen's
# CPU, the server's RSS and peak (VmHWM), and how many flood names reached the upstream.
#
#   bench/scripts/flood.sh [SERVICES] [FLOOD_QPS...]     # default 5000 2000 5000 20000
#   NO_BUILD=1 ...                                        # with the dist binaries built
#   UPSTREAM=answering ...                                # see below
#   SECONDS_FLOOD=30 ...                                  # the long flood's length (default 30)
#   SERVER_FLAGS="--max-concurrent 100000" ...            # more flags for the server
#   FLOODER=dnsperf ...                                   # dnsperf sends the flood, not loadgen
#   ROUNDS=3 LOAD_S=5 ...                                 # control/flood rounds per rate, their length
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
ROUNDS=${ROUNDS:-3}
LOAD_S=${LOAD_S:-5}
UPSTREAM=${UPSTREAM:-silent}
FLOODER=${FLOODER:-loadgen}
command -v dnsperf >/dev/null || [ "$FLOODER" = loadgen ] ||
  { echo "flood.sh: apt-get install dnsperf" >&2; exit 1; }
[ -n "${NO_BUILD:-}" ] || cargo build --profile dist -q -p clusterdns -p clusterdns-bench --bins
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/dist
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
# The control's names: sent to the upstream directly (the silent one counts only `flood` names).
sed 's/\.flood\.example/.control.example/' "$WORK/flood.txt" >"$WORK/control.txt"
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
# CPU seconds the server's threads whose name starts with $1 have used so far (clusterdns-udp:
# the listeners, which answer cluster names; clusterdns-fwd: the upstream exchanges).
threads_cpu() {
  local total=0 t
  for t in /proc/$SERVER/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in "$1"*) total=$((total + $(awk '{ print $14 + $15 }' "$t/stat"))) ;; esac
  done
  echo "$total $(getconf CLK_TCK)" | awk '{ printf "%.2f", $1 / $2 }'
}
# LOAD_S seconds of cluster names; prints loadgen's qps and the share of a core the server (its
# listener and forwarding threads) and loadgen each used meanwhile.
load() {
  local before after udp fwd
  before=$(cpu "$SERVER")
  udp=$(threads_cpu clusterdns-udp)
  fwd=$(threads_cpu clusterdns-fwd)
  taskset -c 1 /usr/bin/time -f "loadgen CPU: %P of a core" "$BIN/loadgen" --server "127.0.0.1:$PORT" \
    --queries "$WORK/service-mix.txt" --duration "$LOAD_S" 2>&1 | grep -E "qps|CPU" | head -3 |
    sed -E 's/^ +//' | tr '\n' ' '
  after=$(cpu "$SERVER")
  percent() { echo "($1) * 100 / $LOAD_S" | bc -l | xargs printf '%.0f'; }
  echo "server CPU $(percent "$after - $before")%" \
    "(listeners $(percent "$(threads_cpu clusterdns-udp) - $udp")%," \
    "forwarding $(percent "$(threads_cpu clusterdns-fwd) - $fwd")%)"
}
# Starts a flood of $2 queries a second from file $3 at address $1 for $4 seconds, in the
# background (FLOOD is its pid); the report goes to $WORK/flood.log.
start_flood() {
  if [ "$FLOODER" = dnsperf ] && [ "$1" = "127.0.0.1:$PORT" ]; then
    # -q: enough queries outstanding that the rate holds while the forwarded ones wait.
    taskset -c 1 /usr/bin/time -f "flood CPU: %P of a core" dnsperf -s 127.0.0.1 -p "$PORT" \
      -d "$3" -Q "$2" -l "$4" -q 65000 -t 3 >"$WORK/flood.log" 2>&1 &
  else
    taskset -c 1 /usr/bin/time -f "flood CPU: %P of a core" "$BIN/loadgen" --server "$1" \
      --queries "$3" --flood "$2" --duration "$4" >"$WORK/flood.log" 2>&1 &
  fi
  FLOOD=$!
}
# One round: a flood at $2 from $WORK/$3 at $RATE qps, and cluster names during it; prints the
# load's line (labelled $1) on stderr and its qps on stdout.
segment() {
  local line
  start_flood "$2" "$RATE" "$WORK/$3" $((LOAD_S + 3))
  sleep 2
  line=$(load)
  echo "$1: $line" >&2
  wait "$FLOOD"
  echo "$line" | awk '{ for (i = 1; i < NF; i++) if ($i == "qps") print $(i + 1) }'
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "upstream: $UPSTREAM; $SERVICES Services; flood from $FLOODER; RSS before: $(rss VmRSS) MiB"
echo "== cluster names alone ($LOAD_S s)"
load
for RATE in "${RATES[@]}"; do
  echo "== $RATE qps: $ROUNDS rounds of cluster names ($LOAD_S s) during the control, then during the flood"
  controls="" floods=""
  for round in $(seq "$ROUNDS"); do
    controls="$controls $(segment "round $round control" "127.0.0.1:$UPSTREAM_PORT" control.txt)"
    floods="$floods $(segment "round $round flood  " "127.0.0.1:$PORT" flood.txt)"
    # Forwarded queries still waiting time out within 2 s: let them go before the next control.
    sleep 3
  done
  c=$(echo "$controls" | median)
  f=$(echo "$floods" | median)
  echo "cluster qps at $RATE qps of flood: median $f against $c in the control: ratio $(echo "$f / $c" | bc -l | xargs printf '%.2f')"
  echo "-- one flood of $SECONDS_FLOOD s at $RATE qps: the server's CPU for it alone from 2 s to 7 s, its RSS"
  start_flood "127.0.0.1:$PORT" "$RATE" "$WORK/flood.txt" "$SECONDS_FLOOD"
  sleep 2
  before=$(cpu "$SERVER")
  udp=$(threads_cpu clusterdns-udp)
  fwd=$(threads_cpu clusterdns-fwd)
  sleep 5
  echo "server CPU for the flood alone: $(echo "($(cpu "$SERVER") - $before) * 20" | bc -l | xargs printf '%.1f')%" \
    "(listeners $(echo "($(threads_cpu clusterdns-udp) - $udp) * 20" | bc -l | xargs printf '%.1f')%," \
    "forwarding $(echo "($(threads_cpu clusterdns-fwd) - $fwd) * 20" | bc -l | xargs printf '%.1f')%)"
  echo "RSS during the flood: $(rss VmRSS) MiB"
  wait "$FLOOD"
  grep -E "Queries sent|Queries completed|Queries lost|Response codes|flood|CPU" "$WORK/flood.log"
  echo "RSS after: $(rss VmRSS) MiB, peak (VmHWM) so far $(rss VmHWM) MiB"
  sleep 3
done
curl -s "http://127.0.0.1:5503/metrics" 2>/dev/null | grep -E "^coredns_(forward_max_concurrent_rejects_total|cache_entries)" || true
kill "$UPSTREAM_PID"; wait "$UPSTREAM_PID" 2>/dev/null || true
[ "$UPSTREAM" = silent ] &&
  echo "distinct flood names that reached the upstream: $(cat "$WORK/upstream.count" 2>/dev/null || echo '?')"
exit 0
