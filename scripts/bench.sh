#!/usr/bin/env bash
# wabaflow's benchmarks on a release build, against the real services on loopback
# (docs/benchmarks.md). Every number is printed next to a baseline measured in the same run.
#
#   scripts/bench.sh                      all six: ingest stage e2e sender clickhouse memory
#   scripts/bench.sh ingest e2e           some of them
#   scripts/bench.sh --scale 0.2          a lighter run
#   scripts/bench.sh --rounds 1           one run of each (default 3, the median reported)
#   scripts/bench.sh --json out.json      also write the numbers as JSON (each run's, the medians;
#                                         a relative path is the checkout's)
#
# tansu keeps every record in memory and slows down as it fills, so every run of each benchmark
# starts on a freshly started broker (and fresh Redis and ClickHouse); the services are stopped at
# the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/wabaflow-target}
# The single-node profile for tansu, which holds every fetch for its full wait and reads every
# partition a fetch names: a short wait over few partitions halves each hop's latency at about the
# idle cost of the defaults (10 ms over 12 partitions; docs/benchmarks-log.md, 2 December). Set either
# variable to measure other settings.
export WABAFLOW_KAFKA__FETCH_WAIT_MAX_MS=${WABAFLOW_KAFKA__FETCH_WAIT_MAX_MS:-3}
export WABAFLOW_KAFKA__PARTITIONS=${WABAFLOW_KAFKA__PARTITIONS:-4}

benches=()
options=()
while (($#)); do
  case $1 in
    --scale|--rounds|--json) options+=("$1" "$2"); shift 2 ;;
    --*) options+=("$1"); shift ;;
    *) benches+=("$1"); shift ;;
  esac
done
((${#benches[@]})) || benches=(ingest stage e2e sender clickhouse memory)

cargo build --release --bin wabaflow
trap 'scripts/services.sh down >/dev/null 2>&1 || true' EXIT
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); $(date -u +%FT%TZ); commit $(git rev-parse --short HEAD 2>/dev/null || echo none)"
"$CARGO_TARGET_DIR/release/wabaflow" bench "${benches[@]}" "${options[@]}" \
  --before-each 'scripts/services.sh down >/dev/null 2>&1 || true; scripts/services.sh up >/dev/null'
