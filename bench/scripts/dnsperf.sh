#!/usr/bin/env bash
# Runs clusterdns under dnsperf on a synthetic cluster (ARCHITECTURE.md, "Measuring"): the server pinned to one
# core with one worker, dnsperf pinned to another, first the service mix, then the ndots:5
# search storm. Prints dnsperf's summary and the server's CPU time per answered query.
#
#   bench/scripts/dnsperf.sh                      # 10,000 Services, 10 s per run
#   DURATION=3 bench/scripts/dnsperf.sh           # a short check
#
# Environment (defaults in brackets):
#   DURATION [10]        seconds of each dnsperf run (dnsperf -l)
#   SERVICES [10000]     Services in the generated cluster
#   ENDPOINTS [10×...]   total endpoints (gen-cluster --endpoints; default 10 per Service with endpoints)
#   SEED [1]             generator seed
#   PORT [5300]          port the server listens on (127.0.0.1)
#   SERVER_CPU [0]       core the server is pinned to
#   CLIENT_CPU [1]       core dnsperf is pinned to
#   CLIENTS [8]          dnsperf -c (simulated clients, one UDP socket each)
#   OUTSTANDING [500]    dnsperf -q (queries in flight at most)
#   MAX_QPS [2000000]    dnsperf -Q (rate limit; high enough to find the server's ceiling)
#   KEEP [0]             1 keeps the generated files and the server log
set -euo pipefail

DURATION=${DURATION:-10}
SERVICES=${SERVICES:-10000}
ENDPOINTS=${ENDPOINTS:-}
SEED=${SEED:-1}
PORT=${PORT:-5300}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-500}
MAX_QPS=${MAX_QPS:-2000000}
KEEP=${KEEP:-0}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

for tool in cargo dnsperf dig taskset; do
  command -v "$tool" >/dev/null || { echo "dnsperf.sh: $tool not found (Debian: dnsperf, dnsutils, util-linux)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clusterdns-dnsperf.XXXXXX")
SERVER_PID=
cleanup() {
  local status=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then
    echo "kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build (dist profile)"
cargo build --profile dist -q -p clusterdns -p clusterdns-bench
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SERVER=$TARGET_DIR/dist/clusterdns
GEN=$TARGET_DIR/dist/gen-cluster

echo "== generate"
gen_args=(--services "$SERVICES" --seed "$SEED" --out "$WORK")
[ -n "$ENDPOINTS" ] && gen_args+=(--endpoints "$ENDPOINTS")
"$GEN" "${gen_args[@]}"

echo "== start clusterdns (cpu $SERVER_CPU, 1 worker, 127.0.0.1:$PORT)"
taskset -c "$SERVER_CPU" "$SERVER" --manifests "$WORK/cluster.yaml" \
  --listen "127.0.0.1:$PORT" --threads 1 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

# Ready once the zone is synced: dns-version.<zone> TXT answers 1.1.0 (SERVFAIL before).
started=$SECONDS
until [ "$(dig @127.0.0.1 -p "$PORT" +short +tries=1 +time=1 dns-version.cluster.local TXT 2>/dev/null)" = '"1.1.0"' ]; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "dnsperf.sh: clusterdns exited; its log:" >&2
    cat "$WORK/server.log" >&2
    exit 1
  fi
  if [ $((SECONDS - started)) -ge 120 ]; then
    echo "dnsperf.sh: clusterdns not answering after 120 s; its log:" >&2
    tail -n 20 "$WORK/server.log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "ready after $((SECONDS - started)) s"

CLK_TCK=$(getconf CLK_TCK)

# utime + stime of the server, in clock ticks (fields 14 and 15 of /proc/<pid>/stat, counted
# after the command name, which is in parentheses and may hold spaces).
cpu_ticks() {
  local stat rest
  stat=$(cat "/proc/$SERVER_PID/stat")
  rest=${stat##*) }
  # After "pid (comm) ", field 3 (state) is the first word: utime is word 12, stime word 13.
  set -- $rest
  echo $(( ${12} + ${13} ))
}

# One bounded dnsperf run over a data file; prints the summary and the server CPU per query.
run() {
  local label=$1 data=$2 out before after completed
  echo
  echo "== $label: $(wc -l <"$data") distinct queries, ${DURATION} s, -c $CLIENTS -q $OUTSTANDING (dnsperf on cpu $CLIENT_CPU)"
  out="$WORK/$label.dnsperf"
  before=$(cpu_ticks)
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$data" -l "$DURATION" \
    -c "$CLIENTS" -Q "$MAX_QPS" -q "$OUTSTANDING" >"$out" 2>&1 || {
    echo "dnsperf.sh: dnsperf failed:" >&2
    cat "$out" >&2
    exit 1
  }
  after=$(cpu_ticks)
  grep -E 'Queries (sent|completed|lost)|Response codes|Run time|Queries per second|Average Latency|Latency StdDev' "$out" || cat "$out"
  completed=$(awk '/Queries completed:/ { print $3; exit }' "$out")
  if [ -n "$completed" ] && [ "$completed" -gt 0 ]; then
    awk -v ticks=$((after - before)) -v hz="$CLK_TCK" -v n="$completed" 'BEGIN {
      cpu = ticks / hz
      printf "  Server CPU time:      %.2f s (%d ticks at %d Hz)\n", cpu, ticks, hz
      printf "  Server CPU per query: %.3f us\n", cpu * 1e6 / n
    }'
  fi
}

run service-mix "$WORK/service-mix.txt"
run search-storm "$WORK/search-storm.txt"
