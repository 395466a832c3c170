#!/usr/bin/env bash
# Instructions per record of each stage's own task in one `wabaflow bench stage` pass, counted by
# callgrind (docs/benchmarks.md, "Counting instructions"). CPU seconds on this host move by up to 2×
# from one pass to the next; instruction counts do not, so a change of a few percent shows.
#
#   scripts/callgrind-stage.sh                     the release build of this checkout
#   scripts/callgrind-stage.sh path/to/wabaflow    another build (e.g. the commit before), to compare
#   SCALE=0.2 scripts/callgrind-stage.sh           more records (default 0.1: 6 000 a stage)
#   KEEP=/tmp/cg.out scripts/callgrind-stage.sh    keep the profile, for callgrind_annotate --tree=calling
#
# Only each runner's task is counted (from `Runners::stage`'s future down: reading records, the
# stage, encoding, enqueueing, settling); librdkafka's own threads, the copy baseline and the
# simulators are not. Services are started afresh and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/wabaflow-target}
export WABAFLOW_KAFKA__FETCH_WAIT_MAX_MS=${WABAFLOW_KAFKA__FETCH_WAIT_MAX_MS:-3}
export WABAFLOW_KAFKA__PARTITIONS=${WABAFLOW_KAFKA__PARTITIONS:-4}
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install -y valgrind" >&2; exit 1; }

exe=${1:-}
if [[ -z $exe ]]; then
  cargo build --release --bin wabaflow
  exe=$CARGO_TARGET_DIR/release/wabaflow
fi
out=$(mktemp -d)
trap 'scripts/services.sh down >/dev/null 2>&1 || true; [[ -z ${KEEP:-} ]] || cp "$out/callgrind.out" "$KEEP"; rm -rf "$out"' EXIT
scripts/services.sh down >/dev/null 2>&1 || true
scripts/services.sh up >/dev/null

# Symbols stay mangled: each stage's instance of the runner's future keeps a name of its own.
valgrind --tool=callgrind --collect-atstart=no --demangle=no \
  '--toggle-collect=_ZN8wabaflow4node7Runners5stage28_$u7b$$u7b$closure$u7d$$u7d$*' \
  --callgrind-out-file="$out/callgrind.out" \
  "$exe" bench stage --rounds 1 --scale "${SCALE:-0.1}" >"$out/bench.log" 2>&1 \
  || { cat "$out/bench.log" >&2; exit 1; }
records=$(grep -oE '^ +[0-9]+ customer texts per pass' "$out/bench.log" | grep -oE '[0-9]+' | head -1)
callgrind_annotate --inclusive=yes --tree=calling "$out/callgrind.out" 2>/dev/null \
  | python3 -c '
import re, sys
records = int(sys.argv[1])
# A block of the calling tree: "<Ir> (..)  *  ???:<function>" then its callees, "<Ir> (..)  >   ???:<callee>".
instance, totals, stage = None, {}, {}
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \([^)]*\)\s+([*>])\s+\S*?:(\S+)", line)
    if not m:
        continue
    ir, kind, function = int(m.group(1).replace(",", "")), m.group(2), m.group(3)
    if kind == "*":
        instance = function if "Runners5stage28" in function else None
        if instance:
            totals[instance] = ir
    elif instance:
        # The instance drops its StageRunner<wabaflow_stages::…::SomeStage>: that names the stage.
        name = re.search(r"StageRunner\$LT\$wabaflow_stages\.\.\w+\.\.(\w+)\$GT\$", function)
        if name:
            stage[instance] = name.group(1)
for instance, ir in sorted(totals.items(), key=lambda item: -item[1]):
    if ir >= records * 1000 and instance in stage:
        print(f"{stage[instance]}: {ir / records:,.0f} instructions a record in its runner task ({ir:,} over {records} records)")
' "$records"
grep -E 'ratio' "$out/bench.log" | sed 's/^ */  (CPU under valgrind, not comparable) /'
