#!/usr/bin/env bash
# clusterdns side by side with Knot DNS, NSD and Unbound (ARCHITECTURE.md, "Measuring"): builds the dist
# binaries once, installs the servers and dnsperf with apt-get when missing (and stops the
# services the packages start: they are not ours to measure), then runs the `compare` binary,
# which generates each cluster size, starts every server pinned to CPU 0, checks their answers against
# clusterdns's, runs interleaved rounds of loadgen and dnsperf pinned to CPU 1, and prints
# Markdown tables. Every argument goes to `compare` (see `compare --help`):
#
#   bench/scripts/compare.sh                                  # 1k,10k,50k; 3 rounds of 3 s
#   bench/scripts/compare.sh --sizes 1k --rounds 1 --duration 1 --quiet-secs 0   # a smoke run
#   bench/scripts/compare.sh --threads                        # also clusterdns with 2 workers
#
# Needs root (apt-get), two cores, loopback only. Not run in CI.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
command -v cargo >/dev/null || { echo "compare.sh: cargo not found" >&2; exit 1; }
missing=()
for pair in knotd:knot nsd:nsd unbound:unbound dnsperf:dnsperf taskset:util-linux; do
  PATH=$PATH:/usr/sbin:/sbin command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" || { apt-get update -q && apt-get install -y -q "${missing[@]}"; }
  for service in knot nsd unbound; do
    systemctl disable --now "$service" >/dev/null 2>&1 || service "$service" stop >/dev/null 2>&1 || true
  done
fi
cargo build --profile dist -q -p clusterdns -p clusterdns-bench --bins
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
exec "$TARGET_DIR/dist/compare" "$@"
