#!/usr/bin/env bash
# Runs every fuzz target, one after the other (one libFuzzer process at a time, niced), for
# SECONDS each (default 600) or 10,000,000 executions, whichever comes first, and prints one
# summary line per target: executions, wall time, exec/s, coverage (cov/ft of the last status
# line) and crash files. Logs go to $FUZZ_LOG_DIR (default fuzz/logs/). Run from anywhere:
#   fuzz/run-all.sh [SECONDS] [TARGET...]
# Environment: CARGO_TARGET_DIR (passed as --target-dir), FUZZ_RUNS (default 10000000),
# CARGO_LOCK (a file to flock around cargo, e.g. /tmp/cargo.lock on a shared machine).
set -u
seconds=${1:-600}
shift $(( $# > 0 ? 1 : 0 ))
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(query forward_response cache manifest corefile)
fi
logs=${FUZZ_LOG_DIR:-$root/fuzz/logs}
mkdir -p "$logs"
runs=${FUZZ_RUNS:-10000000}
target_dir=()
[ -n "${CARGO_TARGET_DIR:-}" ] && target_dir=(--target-dir "$CARGO_TARGET_DIR")
lock=()
[ -n "${CARGO_LOCK:-}" ] && lock=(flock "$CARGO_LOCK")

# Build first (under the lock), so the timed runs only fuzz.
"${lock[@]}" cargo +nightly fuzz build "${target_dir[@]}" || exit 1

printf '%-18s %12s %8s %9s %7s %7s %s\n' target executions seconds exec/s cov ft crashes
status=0
for target in "${targets[@]}"; do
    log="$logs/$target.log"
    before=$(ls "fuzz/artifacts/$target" 2>/dev/null | wc -l)
    start=$(date +%s)
    nice -n 19 cargo +nightly fuzz run "${target_dir[@]}" "$target" -- \
        -max_total_time="$seconds" -runs="$runs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1
    code=$?
    elapsed=$(( $(date +%s) - start ))
    after=$(ls "fuzz/artifacts/$target" 2>/dev/null | wc -l)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    printf '%-18s %12s %8s %9s %7s %7s %s\n' "$target" "${execs:-?}" "$elapsed" "${rate:-?}" \
        "${cov:-?}" "${ft:-?}" "$((after - before)) (exit $code)"
    [ "$code" -ne 0 ] && status=1
done
exit $status
