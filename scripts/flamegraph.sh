#!/usr/bin/env bash
# A flamegraph of one `wabaflow bench` run (docs/benchmarks.md, "Flamegraphs"): perf samples the
# benchmark's process on a release build with frame pointers and line tables, and inferno draws the
# stacks, one tower per thread name (the runtime's workers, librdkafka's threads, the main thread).
#
#   scripts/flamegraph.sh stage                   → target/flamegraph-stage.svg
#   scripts/flamegraph.sh ingest /tmp/edge.svg    another benchmark, another file
#   SCALE=0.2 scripts/flamegraph.sh e2e           a lighter run (default scale 1, one round)
#   FREQ=4999 scripts/flamegraph.sh stage         samples a second (default 999)
#   FILTER=TransformStage scripts/flamegraph.sh stage
#                                                 only the stacks with a frame matching this regex
#   KEEP=/tmp/perf.data scripts/flamegraph.sh …   keep the samples, for `perf report --time`
#
# The frame-pointer build has a target directory of its own, so the release build the benchmarks
# measure is left alone. Services are started afresh and stopped at the end. perf (linux-perf) and
# inferno are installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${1:?usage: scripts/flamegraph.sh BENCH [OUT.svg]   (BENCH: ingest stage e2e sender clickhouse memory)}
out=${2:-target/flamegraph-$bench.svg}
INFERNO_VERSION=0.12.8
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
export PATH="$CARGO_BIN:$PATH"
# The single-node profile scripts/bench.sh runs with.
export WABAFLOW_KAFKA__FETCH_WAIT_MAX_MS=${WABAFLOW_KAFKA__FETCH_WAIT_MAX_MS:-3}
export WABAFLOW_KAFKA__PARTITIONS=${WABAFLOW_KAFKA__PARTITIONS:-4}

if ! command -v perf >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf >/dev/null
fi
command -v inferno-flamegraph >/dev/null || cargo install inferno --version "$INFERNO_VERSION" --locked

target=${CARGO_TARGET_DIR:-$HOME/.cache/wabaflow-target}-frame-pointers
CARGO_TARGET_DIR=$target RUSTFLAGS="-C force-frame-pointers=yes" \
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release --bin wabaflow

work=$(mktemp -d)
trap 'scripts/services.sh down >/dev/null 2>&1 || true; [[ -z ${KEEP:-} ]] || cp "$work/perf.data" "$KEEP"; rm -rf "$work"' EXIT
scripts/services.sh down >/dev/null 2>&1 || true
scripts/services.sh up >/dev/null

perf record -F "${FREQ:-999}" --call-graph fp -o "$work/perf.data" -- \
  "$target/release/wabaflow" bench "$bench" --rounds 1 --scale "${SCALE:-1}"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/stacks.folded"
if [[ -n ${FILTER:-} ]]; then
  grep -E -- "$FILTER" "$work/stacks.folded" >"$work/kept.folded" \
    || { echo "no stack matches FILTER=$FILTER" >&2; exit 1; }
  mv "$work/kept.folded" "$work/stacks.folded"
fi
mkdir -p "$(dirname "$out")"
inferno-flamegraph --title "wabaflow bench $bench" \
  --subtitle "$(git rev-parse --short HEAD 2>/dev/null || echo '?'), scale ${SCALE:-1}, ${FREQ:-999} Hz${FILTER:+, stacks matching $FILTER}" \
  "$work/stacks.folded" >"$out"
echo "flamegraph: $out"
