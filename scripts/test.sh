#!/usr/bin/env bash
# The README's test command: installs what is missing, starts the real services on loopback,
# runs the whole suite (unit + integration), stops the services. Non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds outside the checkout, so that fresh clones on the same machine reuse earlier work.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/wabaflow-target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

started=$SECONDS
scripts/services.sh up
trap 'scripts/services.sh down' EXIT
echo "[test] services ready after $((SECONDS - started)) s"

cargo build --workspace --all-targets --locked
echo "[test] built after $((SECONDS - started)) s"
cargo test --workspace --locked -- --test-threads=2
echo "[test] all tests passed after $((SECONDS - started)) s"
