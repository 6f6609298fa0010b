#!/usr/bin/env bash
# The node-local cache on a working set larger than the old default cache: clusterdns in
# node-local mode (a pure forwarding cache) with the cache its memory limit gives it, with the old
# fixed default of 10,000 answers, and dnsdist with a packet cache of the same size, all in front
# of one Knot DNS serving NAMES names (TTL 3600). The query file asks every name once, in a
# shuffled order, and loadgen goes round it again and again: a cache smaller than the working set
# keeps evicting what is asked next.
#
# Every server is pinned to SERVER_CPU (one thread; dnsdist's threads all share that core), knotd
# and loadgen to CLIENT_CPU. Each server is warmed (WARM_S of load, every name asked at least once),
# then rounds of DURATION s alternate between the servers. Reports qps, p99, and the server's CPU
# time per answer (utime+stime from /proc/PID/stat), and knotd's CPU per answer, which shows the
# misses, and at the end each server's peak and current RSS. Not run in CI.
#
#   bench/scripts/nodelocal-cache.sh
#   NAMES=100000 ROUNDS=3 DURATION=3 bench/scripts/nodelocal-cache.sh
#
# Environment (defaults in brackets): NAMES [100000], ROUNDS [3], DURATION [3], WARM_S [10],
# LIMIT_MIB [100] (the memory limit whose cache size is measured: deploy/node-local's),
# SERVER_CPU [0], CLIENT_CPU [1], PORT [5340] (knotd; the servers take the next ports),
# BUILD [1] (0 skips the dist build of clusterdns and loadgen).
#
# Needs knotd, dnsdist and taskset: `apt-get install -y knot dnsdist` (stop the services they
# start).
set -euo pipefail

NAMES=${NAMES:-100000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-3}
WARM_S=${WARM_S:-10}
LIMIT_MIB=${LIMIT_MIB:-100}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-5340}
BUILD=${BUILD:-1}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
if [ "$BUILD" = 1 ]; then
  cargo build --profile dist -q -p clusterdns -p clusterdns-bench --bin clusterdns --bin loadgen
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/dist
KNOTD=$(command -v knotd || echo /usr/sbin/knotd)
for tool in "$KNOTD" dnsdist taskset python3; do
  command -v "$tool" >/dev/null || {
    echo "nodelocal-cache.sh: $tool not found: apt-get install -y knot dnsdist" >&2
    exit 1
  }
done
# What `clusterdns` gives itself under a LIMIT_MIB limit: three quarters of what is left past
# 48 MiB, at 256 bytes an answer, at least 10,000 (server/src/forward/config.rs,
# cache_capacity_for).
SIZED=$(((LIMIT_MIB - 48) * 1024 * 1024 / 4 * 3 / 256))
[ "$SIZED" -ge 10000 ] || SIZED=10000

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clusterdns-nodelocal-cache.XXXXXX")
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/knot/db"
{
  echo '$ORIGIN bench.test.'
  echo '$TTL 3600'
  echo '@ IN SOA ns.bench.test. hostmaster.bench.test. 1 7200 3600 1209600 3600'
  echo '@ NS ns'
  echo 'ns A 192.0.2.53'
  awk -v n="$NAMES" 'BEGIN { for (i = 0; i < n; i++) printf "h%d A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256 }'
} >"$WORK/knot/bench.test.zone"
python3 -c "
import random
names = [f'h{i}.bench.test A' for i in range($NAMES)]
random.Random(7).shuffle(names)
print('\n'.join(names))" >"$WORK/names.txt"
# shellcheck source=knot-bench-test.sh
source "$ROOT/bench/scripts/knot-bench-test.sh"
knot_bench_test_conf "$WORK/knot" "$PORT"
taskset -c "$CLIENT_CPU" "$KNOTD" -c "$WORK/knot/knot.conf" 2>"$WORK/knot.log" &
KNOT_PID=$!
PIDS+=("$KNOT_PID")
for _ in $(seq 1 100); do
  dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" h0.bench.test A 2>/dev/null | grep -q . && break
  sleep 0.1
done

clusterdns() { # port cache-size-flag...
  local port=$1
  shift
  taskset -c "$SERVER_CPU" "$BIN/clusterdns" --mode node-local --threads 1 \
    --listen "127.0.0.1:$port" --upstream "127.0.0.1:$PORT" --cluster-dns "127.0.0.1:$PORT" \
    --cache-ttl 86400 --max-concurrent 4096 "$@" \
    --health 127.0.0.1:0 --ready 127.0.0.1:0 --metrics 127.0.0.1:0 --lameduck 0 \
    2>"$WORK/clusterdns-$port.log" &
  PIDS+=($!)
}
clusterdns $((PORT + 1)) --cache-size "$SIZED"
SIZED_PID=${PIDS[-1]}
clusterdns $((PORT + 2)) --cache-size 10000
OLD_PID=${PIDS[-1]}
cat >"$WORK/dnsdist.conf" <<EOF
setLocal("127.0.0.1:$((PORT + 3))")
newServer({address="127.0.0.1:$PORT"})
-- The same number of answers as clusterdns's sized cache, one shard (one thread serves it).
pc = newPacketCache($SIZED, {maxTTL=86400, numberOfShards=1})
getPool(""):setCache(pc)
setSecurityPollSuffix("")
addACL("127.0.0.0/8")
EOF
taskset -c "$SERVER_CPU" dnsdist --supervised --disable-syslog -C "$WORK/dnsdist.conf" \
  >"$WORK/dnsdist.log" 2>&1 &
DNSDIST_PID=$!
PIDS+=("$DNSDIST_PID")

SERVERS=("clusterdns, $SIZED (${LIMIT_MIB} MiB limit)|$((PORT + 1))|$SIZED_PID"
         "clusterdns, 10000 (old default)|$((PORT + 2))|$OLD_PID"
         "dnsdist 1.7, packet cache $SIZED|$((PORT + 3))|$DNSDIST_PID")
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
load() { # port seconds
  taskset -c "$CLIENT_CPU" "$BIN/loadgen" --server "127.0.0.1:$1" --queries "$WORK/names.txt" \
    --duration "$2" --json
}
sleep 2
for entry in "${SERVERS[@]}"; do
  IFS='|' read -r name port pid <<<"$entry"
  load "$port" "$WARM_S" >/dev/null || { echo "nodelocal-cache.sh: $name did not answer" >&2; exit 1; }
done
echo "| server | round | qps | p99 | lost | server CPU µs/answer | knotd CPU µs/answer |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for round in $(seq 1 "$ROUNDS"); do
  for entry in "${SERVERS[@]}"; do
    IFS='|' read -r name port pid <<<"$entry"
    before=$(ticks "$pid"); knot_before=$(ticks "$KNOT_PID")
    report=$(load "$port" "$DURATION")
    after=$(ticks "$pid"); knot_after=$(ticks "$KNOT_PID")
    python3 -c "
import json, sys
r = json.loads(sys.argv[1]); done = max(r['completed'], 1); hz = int(sys.argv[4])
us = lambda t: int(t) * 1e6 / hz / done
p99 = r.get('p99_us')
p99 = f'{p99 / 1000:.2f} ms' if p99 is not None else '-'
print(f\"| {sys.argv[5]} | $round | {r['qps']:.0f} | {p99} | {r['lost']} | {us(sys.argv[2]):.2f} | {us(sys.argv[3]):.2f} |\")
" "$report" "$((after - before))" "$((knot_after - knot_before))" "$HZ" "$name"
  done
done
echo
echo "| server | peak RSS (VmHWM) | RSS now |"
echo "| --- | ---: | ---: |"
for entry in "${SERVERS[@]}"; do
  IFS='|' read -r name port pid <<<"$entry"
  awk -v name="$name" '/^VmHWM/ { peak = $2 } /^VmRSS/ { now = $2 }
    END { printf "| %s | %.1f MiB | %.1f MiB |\n", name, peak / 1024, now / 1024 }' "/proc/$pid/status"
done
