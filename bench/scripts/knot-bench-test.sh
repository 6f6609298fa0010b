# Sourced by the cache benchmarks (cache-bench.sh, nodelocal-cache.sh): the config of a Knot DNS
# that serves DIR/bench.test.zone as `bench.test.` on 127.0.0.1@PORT with one worker of each
# kind, no journal and no zone file sync, logging warnings to stderr.
#
#   knot_bench_test_conf DIR PORT    # writes DIR/knot.conf (DIR/db is its database)
knot_bench_test_conf() {
  local dir=$1 port=$2
  mkdir -p "$dir/db"
  cat >"$dir/knot.conf" <<CONF
server:
    rundir: "$dir"
    listen: 127.0.0.1@$port
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$dir/db"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "$dir"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: bench.test.
    file: "bench.test.zone"
CONF
}
