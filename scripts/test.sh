#!/usr/bin/env bash
# The README's test command: installs what is missing, starts the real services on loopback,
# runs the whole suite (unit + integration), stops the services. Non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds outside the checkout, so that fresh clones on the same machine reuse earlier work.
# Cargo may then reuse a test binary built in another checkout, so tests find their files through
# CARGO_MANIFEST_DIR read at run time (cargo sets it), never through env!() baked at build time.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/wabaflow-target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

started=$SECONDS
scripts/services.sh up
trap 'scripts/services.sh down' EXIT  # also on failure before the tests ran
echo "[test] services ready after $((SECONDS - started)) s"

cargo build --workspace --all-targets --locked
echo "[test] built after $((SECONDS - started)) s"
log=$(mktemp)
set +e
cargo test --workspace --locked -- --test-threads=2 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
echo "[test] finished after $((SECONDS - started)) s"
trap - EXIT
scripts/services.sh down
# The closing line: one total over every test binary.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$log"
rm -f "$log"
exit "$status"
