#!/usr/bin/env bash
# wabaflow's benchmarks on a release build, against the real services on loopback
# (docs/benchmarks.md). Every number is printed next to a baseline measured in the same run.
#
#   scripts/bench.sh                      all six: ingest stage e2e sender clickhouse memory
#   scripts/bench.sh ingest e2e           some of them
#   scripts/bench.sh --scale 0.2          a lighter run
#
# tansu keeps everything in memory, so the broker is restarted first for a clean, equal start;
# the services are stopped at the end unless KEEP_SERVICES=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/wabaflow-target}

scripts/services.sh down >/dev/null 2>&1 || true
scripts/services.sh up
if [[ ${KEEP_SERVICES:-0} != 1 ]]; then
  trap 'scripts/services.sh down' EXIT
fi

cargo build --release --bin wabaflow
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); $(date -u +%FT%TZ)"
"$CARGO_TARGET_DIR/release/wabaflow" bench "$@"
