#!/usr/bin/env bash
# Forwarding cache: clusterdns (--mode node-local, a pure forwarding cache) against Unbound
# configured as a forwarding cache, both in front of the same Knot DNS upstream. Each server has
# one thread pinned to SERVER_CPU; dnsperf and knotd share CLIENT_CPU. Two paths, each measured in
# interleaved rounds (clusterdns, unbound, clusterdns, unbound, ...):
#
#   hit   N names already in both caches (a warm-up pass asks each name once first); the zone's
#         TTL (3600 s) and both caches' limits keep them there for the whole run.
#   miss  names under a TTL-0 wildcard, so neither server may cache them: every query goes
#         upstream. 100,000 distinct names, so that no in-flight coalescing helps either server.
#
# Reports qps, average latency and its deviation, lost queries, the server's CPU time per
# answered query (utime+stime from /proc/PID/stat over the round), and knotd's, which shows
# whether queries went upstream, and the share of NOERROR answers (the rest are SERVFAIL when knotd,
# sharing a core with dnsperf, drops queries; below 99%, or any other rcode, stops the run). dnsperf
# may be the bottleneck: when the server's core is not saturated, compare CPU per query, and
# 1e6 / (CPU µs per query) estimates the queries one core could answer. Not run in CI.
#
#   bench/scripts/cache-bench.sh                  # 10,000 names, 10 s rounds, 2 rounds per server
#   DURATION=3 ROUNDS=1 bench/scripts/cache-bench.sh
#
# Environment (defaults in brackets):
#   NAMES [10000]        names in the upstream zone (the hit path's query file)
#   DURATION [10]        seconds of each dnsperf round
#   ROUNDS [2]           rounds per server and path
#   CLIENTS [8]          dnsperf -c
#   OUTSTANDING [500]    dnsperf -q
#   MAX_QPS [2000000]    dnsperf -Q
#   SERVER_CPU [0]       core of the server under test
#   CLUSTERDNS [target/dist/clusterdns]  the binary to measure
#   CLIENT_CPU [1]       core of dnsperf and knotd
#   PORT [5320]          knotd on PORT, clusterdns on PORT+1, unbound on PORT+2 (127.0.0.1)
#   QUIET_S [30]         seconds without rustc or another dnsperf before measuring
#   QUIET_MAX_S [1800]   give up waiting for quiet after this long (and measure anyway)
#   BUILD [1]            0 skips `cargo build --profile dist -p clusterdns`
#   KEEP [0]             1 keeps the work directory (configs, logs, raw dnsperf output)
#
# Needs knotd, unbound, dnsperf and taskset: `apt-get install -y knot unbound dnsperf`; stop the
# services the packages start (`systemctl disable --now unbound knot` where systemd runs).
set -euo pipefail

NAMES=${NAMES:-10000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-500}
MAX_QPS=${MAX_QPS:-2000000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-5320}
QUIET_S=${QUIET_S:-30}
QUIET_MAX_S=${QUIET_MAX_S:-1800}
BUILD=${BUILD:-1}
KEEP=${KEEP:-0}
MISS_NAMES=100000

KNOT_PORT=$PORT
CDNS_PORT=$((PORT + 1))
UNBOUND_PORT=$((PORT + 2))

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

KNOTD=$(command -v knotd || echo /usr/sbin/knotd)
UNBOUND=$(command -v unbound || echo /usr/sbin/unbound)
for tool in "$KNOTD" "$UNBOUND" dnsperf taskset; do
  command -v "$tool" >/dev/null || {
    echo "cache-bench.sh: $tool not found: apt-get install -y knot unbound dnsperf" >&2
    exit 1
  }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clusterdns-cache-bench.XXXXXX")
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$BUILD" = 1 ]; then
  echo "== build (dist profile)"
  cargo build --profile dist -q -p clusterdns
fi
CLUSTERDNS=${CLUSTERDNS:-${CARGO_TARGET_DIR:-$ROOT/target}/dist/clusterdns}

echo "== zone and query files ($NAMES names)"
mkdir -p "$WORK/knot/db"
{
  echo '$ORIGIN bench.test.'
  echo '$TTL 3600'
  echo '@ IN SOA ns.bench.test. hostmaster.bench.test. 1 7200 3600 1209600 3600'
  echo '@ NS ns'
  echo 'ns A 192.0.2.53'
  echo '*.miss 0 IN A 192.0.2.1'
  awk -v n="$NAMES" 'BEGIN { for (i = 0; i < n; i++) printf "h%d A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256 }'
} >"$WORK/knot/bench.test.zone"
awk -v n="$NAMES" 'BEGIN { for (i = 0; i < n; i++) printf "h%d.bench.test A\n", i }' >"$WORK/hit.txt"
awk -v n="$MISS_NAMES" 'BEGIN { for (i = 0; i < n; i++) printf "m%d.miss.bench.test A\n", i }' >"$WORK/miss.txt"

# shellcheck source=knot-bench-test.sh
source "$ROOT/bench/scripts/knot-bench-test.sh"
knot_bench_test_conf "$WORK/knot" "$KNOT_PORT"

mkdir -p "$WORK/unbound"
cat >"$WORK/unbound/unbound.conf" <<EOF
server:
    interface: 127.0.0.1
    port: $UNBOUND_PORT
    num-threads: 1
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "$WORK/unbound"
    pidfile: "$WORK/unbound/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    do-ip6: no
    # A forwarding cache only: no DNSSEC validation, no trust anchor, no root hints.
    module-config: "iterator"
    # Unbound answers the special-use name test. itself (NXDOMAIN) unless told not to.
    local-zone: "test." nodefault
    qname-minimisation: no
    # Room for every name, and for the miss path's queries in flight.
    msg-cache-size: 64m
    rrset-cache-size: 128m
    num-queries-per-thread: 4096
    outgoing-range: 8192
    so-rcvbuf: 4m
    so-sndbuf: 4m
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@$KNOT_PORT
EOF

wait_for() { # name port: until the server answers h0.bench.test, 10 s at most
  local name=$1 port=$2 until=$((SECONDS + 10))
  until dnsperf -s 127.0.0.1 -p "$port" -d <(echo "h0.bench.test A") -n 1 -t 1 2>/dev/null |
      grep -q 'Queries completed: *1 '; do
    if [ "$SECONDS" -ge "$until" ]; then
      echo "cache-bench.sh: $name does not answer on port $port; logs in $WORK" >&2
      KEEP=1
      exit 1
    fi
    sleep 0.2
  done
}

echo "== start knotd (cpu $CLIENT_CPU), clusterdns and unbound (cpu $SERVER_CPU, one thread each)"
taskset -c "$CLIENT_CPU" "$KNOTD" -c "$WORK/knot/knot.conf" 2>"$WORK/knot.log" &
KNOT_PID=$!
PIDS+=("$KNOT_PID")
wait_for knotd "$KNOT_PORT"
# node-local mode is clusterdns as a pure forwarding cache (no zone); bench.test is not the
# cluster domain, so --cluster-dns is never asked.
taskset -c "$SERVER_CPU" "$CLUSTERDNS" --mode node-local --threads 1 \
  --listen "127.0.0.1:$CDNS_PORT" --upstream "127.0.0.1:$KNOT_PORT" \
  --cluster-dns "127.0.0.1:$KNOT_PORT" \
  --cache-ttl 86400 --cache-size $((NAMES * 4)) --max-concurrent 4096 \
  --health 127.0.0.1:0 --ready 127.0.0.1:0 --metrics 127.0.0.1:0 --lameduck 0 \
  2>"$WORK/clusterdns.log" &
CDNS_PID=$!
PIDS+=("$CDNS_PID")
taskset -c "$SERVER_CPU" "$UNBOUND" -d -c "$WORK/unbound/unbound.conf" 2>"$WORK/unbound.log" &
UNBOUND_PID=$!
PIDS+=("$UNBOUND_PID")
wait_for clusterdns "$CDNS_PORT"
wait_for unbound "$UNBOUND_PORT"

echo "== warm both caches (every hit-path name once)"
for port in "$CDNS_PORT" "$UNBOUND_PORT"; do
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/hit.txt" -n 1 \
    -c "$CLIENTS" -q 100 >"$WORK/warm-$port.txt" 2>&1
  grep -E 'Queries (completed|lost)' "$WORK/warm-$port.txt" | sed "s/^/  port $port: /"
done

quiet() { # until neither rustc nor another dnsperf has run for QUIET_S seconds
  local since=$SECONDS started=$SECONDS
  while [ $((SECONDS - since)) -lt "$QUIET_S" ]; do
    if pgrep -x rustc >/dev/null || pgrep -x dnsperf >/dev/null; then
      since=$SECONDS
      if [ $((SECONDS - started)) -ge "$QUIET_MAX_S" ]; then
        echo "  still busy after ${QUIET_MAX_S}s; measuring anyway" >&2
        return
      fi
    fi
    sleep 1
  done
}
echo "== wait until no rustc or other dnsperf has run for ${QUIET_S}s"
quiet

cpu_ticks() { # utime + stime of a process, in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
HZ=$(getconf CLK_TCK)

printf '%-5s %-10s %5s %10s %8s %8s %6s %8s %10s %10s\n' path server round qps avg_ms sd_ms lost noerror% cpu_us/q knot_us/q >"$WORK/table.txt"
run() { # path server port pid round
  local path=$1 server=$2 port=$3 pid=$4 round=$5 out before after knot_before knot_after
  out="$WORK/dnsperf-$path-$server-$round.txt"
  before=$(cpu_ticks "$pid")
  knot_before=$(cpu_ticks "$KNOT_PID")
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/$path.txt" \
    -l "$DURATION" -c "$CLIENTS" -q "$OUTSTANDING" -Q "$MAX_QPS" >"$out" 2>&1
  after=$(cpu_ticks "$pid")
  knot_after=$(cpu_ticks "$KNOT_PID")
  if ! grep -Eq 'Response codes: *NOERROR [0-9]+ \((100|99)\.[0-9]+%\)(, SERVFAIL [0-9]+ \([0-9.]+%\))?$' "$out"; then
    echo "cache-bench.sh: $server answered $path queries wrongly: $(grep 'Response codes' "$out")" >&2
    KEEP=1
    exit 1
  fi
  awk -v path="$path" -v server="$server" -v round="$round" -v hz="$HZ" \
    -v ticks=$((after - before)) -v knot=$((knot_after - knot_before)) '
    /Queries completed:/ { completed = $3 }
    /Queries lost:/ { lost = $3 }
    /Queries per second:/ { qps = $4 }
    /Response codes:/ { ok = $5; gsub(/[(%),]/, "", ok) }
    /Average Latency \(s\):/ { avg = $4 * 1000 }
    /Latency StdDev \(s\):/ { sd = $4 * 1000 }
    END {
      per = completed > 0 ? 1e6 / hz / completed : 0
      printf "%-5s %-10s %5d %10.0f %8.3f %8.3f %6d %8.2f %10.2f %10.2f\n", path, server, round, qps, avg, sd, lost, ok, ticks * per, knot * per
    }' "$out" | tee -a "$WORK/table.txt"
}

for path in hit miss; do
  echo "== $path path: ${ROUNDS} rounds of ${DURATION}s per server, interleaved"
  for round in $(seq 1 "$ROUNDS"); do
    run "$path" clusterdns "$CDNS_PORT" "$CDNS_PID" "$round"
    run "$path" unbound "$UNBOUND_PORT" "$UNBOUND_PID" "$round"
  done
done

echo
echo "== summary"
cat "$WORK/table.txt"
