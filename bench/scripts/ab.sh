#!/usr/bin/env bash
# A/B of two clusterdns binaries on the same synthetic cluster: both serve it at once, pinned to
# CPU 0, and loadgen (pinned to CPU 1) loads each in turn for interleaved rounds; prints qps and
# the server CPU time per answered query (from /proc/PID/stat) for every run.
#
#   bench/scripts/ab.sh OLD_BINARY NEW_BINARY [SERVICES] [ROUNDS]
#
# Uses target/dist/gen-cluster and loadgen (cargo build --profile dist -p clusterdns-bench --bins).
# Loopback only; every run is bounded (3 s of load), and the servers are stopped at the end.
set -euo pipefail
OLD=$1; NEW=$2; SERVICES=${3:-50000}; ROUNDS=${4:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/dist
DIR=$(mktemp -d); PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$DIR"' EXIT
"$BIN/gen-cluster" --services "$SERVICES" --queries 100000 --out "$DIR" >/dev/null
start() { # binary port
  taskset -c 0 "$1" --manifests "$DIR/cluster.yaml" --listen "127.0.0.1:$2" --threads 1 \
    --health "127.0.0.1:$(($2 + 100))" --ready "127.0.0.1:$(($2 + 200))" \
    --metrics "127.0.0.1:$(($2 + 300))" --upstream 127.0.0.1:9 >/dev/null 2>&1 &
  PIDS+=($!)
}
start "$OLD" 5501; start "$NEW" 5502
for port in 5501 5502; do
  for _ in $(seq 1 300); do
    dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" dns-version.cluster.local TXT 2>/dev/null \
      | grep -q 1.1.0 && break
    sleep 0.2
  done
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq 1 "$ROUNDS"); do
  for file in service-mix search-storm; do
    for i in 0 1; do
      pid=${PIDS[$i]}; port=$((5501 + i)); name=$([ "$i" = 0 ] && echo old || echo new)
      before=$(ticks "$pid")
      report=$(taskset -c 1 "$BIN/loadgen" --server "127.0.0.1:$port" --queries "$DIR/$file.txt" --duration 3 --json)
      after=$(ticks "$pid")
      python3 -c "import json,sys; r=json.loads(sys.argv[1]); t=int(sys.argv[2]); c=max(r['completed'],1); print(f'round $round $file $name: {r[\"qps\"]:.0f} qps, {t*1e6/100/c:.2f} us CPU/answer')" "$report" "$((after - before))"
    done
  done
done
