#!/usr/bin/env bash
# clusterdns over TCP with pipelined connections against the same server over UDP: the path a
# node-local cache takes to the cluster DNS (it keeps a few TCP connections and sends many
# queries on each). One server with one worker pinned to SERVER_CPU, serving a synthetic cluster
# from manifests; dnsperf on CLIENT_CPU, alternating UDP (8 sockets) and TCP (CONNECTIONS
# connections, each with up to OUTSTANDING/CONNECTIONS queries in flight) for ROUNDS rounds of
# DURATION s. Reports qps and the server's CPU time per answer, and the TCP ÷ UDP ratios of the
# medians. Not run in CI.
#
#   bench/scripts/tcp-vs-udp.sh
#   SERVICES=50000 ROUNDS=5 bench/scripts/tcp-vs-udp.sh
#
# Environment (defaults in brackets): SERVICES [5000], QUERIES [service-mix], ROUNDS [3],
# DURATION [5], CONNECTIONS [16], OUTSTANDING [512], SERVER_CPU [0], CLIENT_CPU [1],
# PORT [5360], BUILD [1] (0 skips the dist build).
set -euo pipefail

SERVICES=${SERVICES:-5000}
QUERIES=${QUERIES:-service-mix}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-16}
OUTSTANDING=${OUTSTANDING:-512}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-5360}
BUILD=${BUILD:-1}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
if [ "$BUILD" = 1 ]; then
  cargo build --profile dist -q -p clusterdns -p clusterdns-bench --bin clusterdns --bin gen-cluster
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/dist
command -v dnsperf >/dev/null || { echo "tcp-vs-udp.sh: apt-get install -y dnsperf" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clusterdns-tcp-vs-udp.XXXXXX")
PID=
cleanup() {
  local status=$?
  if [ -n "$PID" ]; then
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN/gen-cluster" --services "$SERVICES" --queries 100000 --out "$WORK" >/dev/null
taskset -c "$SERVER_CPU" "$BIN/clusterdns" --manifests "$WORK/cluster.yaml" --threads 1 \
  --listen "127.0.0.1:$PORT" --upstream 127.0.0.1:9 --max-tcp-connections 1024 \
  --health 127.0.0.1:0 --ready 127.0.0.1:0 --metrics 127.0.0.1:0 >"$WORK/server.log" 2>&1 &
PID=$!
answering=0
for _ in $(seq 1 300); do
  if dnsperf -s 127.0.0.1 -p "$PORT" -d <(echo "dns-version.cluster.local TXT") -n 1 -t 1 2>/dev/null |
      grep -q 'Queries completed: *1 '; then
    answering=1
    break
  fi
  sleep 0.2
done
[ "$answering" = 1 ] || { echo "tcp-vs-udp.sh: clusterdns does not answer:" >&2; cat "$WORK/server.log" >&2; exit 1; }

ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
run() { # mode: prints "qps cpu_us_per_answer"
  local mode=$1 before after out
  local -a flags=(-c 8 -q "$OUTSTANDING")
  [ "$mode" = tcp ] && flags=(-m tcp -c "$CONNECTIONS" -q "$OUTSTANDING")
  before=$(ticks "$PID")
  out=$(taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/$QUERIES.txt" \
    -l "$DURATION" "${flags[@]}" -Q 2000000 2>&1)
  after=$(ticks "$PID")
  echo "$out" | awk -v ticks=$((after - before)) -v hz="$HZ" '
    /Queries completed:/ { done = $3 }
    /Queries per second:/ { qps = $4 }
    END { if (done == 0) exit 1; printf "%.0f %.2f\n", qps, ticks * 1e6 / hz / done }'
}
echo "| round | UDP qps | UDP CPU µs/answer | TCP qps ($CONNECTIONS connections) | TCP CPU µs/answer |"
echo "| ---: | ---: | ---: | ---: | ---: |"
udp_qps=(); tcp_qps=(); udp_cpu=(); tcp_cpu=()
for round in $(seq 1 "$ROUNDS"); do
  read -r uq uc < <(run udp)
  read -r tq tc < <(run tcp)
  udp_qps+=("$uq"); udp_cpu+=("$uc"); tcp_qps+=("$tq"); tcp_cpu+=("$tc")
  echo "| $round | $uq | $uc | $tq | $tc |"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mu=$(median "${udp_qps[@]}"); mt=$(median "${tcp_qps[@]}")
cu=$(median "${udp_cpu[@]}"); ct=$(median "${tcp_cpu[@]}")
echo
echo "medians: UDP $mu qps at $cu µs/answer, TCP $mt qps at $ct µs/answer;" \
  "TCP ÷ UDP: qps $(awk -v a="$mt" -v b="$mu" 'BEGIN { printf "%.2f", a / b }')," \
  "answers per CPU second $(awk -v a="$cu" -v b="$ct" 'BEGIN { printf "%.2f", a / b }')"
