#!/usr/bin/env bash
# Where a clusterdns binary's CPU goes under load: serves a synthetic cluster pinned to CPU 0,
# loads it from CPU 1 with loadgen for 12 s, samples the server with `perf record` for 8 s of
# that, and prints the kernel / clusterdns / libc shares and the busiest functions of its own.
# The kernel's share is the UDP path every server pays (see the empty responder in compare);
# what is left is the DNS work.
#
#   bench/scripts/profile.sh BINARY [service-mix|search-storm] [SERVICES]
#
# Needs perf (Debian's linux-perf; it samples the CPU clock where the machine has no hardware
# counters) and target/dist/gen-cluster and loadgen. Loopback only; the server is stopped at the end.
set -euo pipefail
BINARY=$1; MIX=${2:-service-mix}; SERVICES=${3:-5000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/dist
DIR=$(mktemp -d); PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$DIR"' EXIT
"$BIN/gen-cluster" --services "$SERVICES" --queries 100000 --out "$DIR" >/dev/null
taskset -c 0 "$BINARY" --manifests "$DIR/cluster.yaml" --listen 127.0.0.1:5601 --threads 1 \
  --health 127.0.0.1:5701 --ready 127.0.0.1:5801 --metrics 127.0.0.1:5901 \
  --upstream 127.0.0.1:9 >/dev/null 2>&1 &
PID=$!
for _ in $(seq 1 300); do
  dig +short +time=1 +tries=1 @127.0.0.1 -p 5601 dns-version.cluster.local TXT 2>/dev/null \
    | grep -q 1.1.0 && break
  sleep 0.2
done
taskset -c 1 "$BIN/loadgen" --server 127.0.0.1:5601 --queries "$DIR/$MIX.txt" --duration 12 \
  --json >"$DIR/load.json" &
LOAD=$!
sleep 2
perf record -F 3000 -p "$PID" -o "$DIR/perf.data" -- sleep 8 >/dev/null 2>&1
wait "$LOAD"
python3 -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['qps']:.0f} qps\")" "$DIR/load.json"
report() { perf report -i "$DIR/perf.data" --no-children --stdio "$@" 2>/dev/null | grep -v '^#' | grep -v '^$'; }
report --sort dso | head -4
report --sort sym | grep -F '[.]' | head -12
