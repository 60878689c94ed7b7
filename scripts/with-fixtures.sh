#!/usr/bin/env bash
# Runs a command with the two fixtures the browser tests (tests/browser.rs) need, each under
# scripts/fixture-supervisor.mjs: the main one (RESOCK_FIXTURE_URL, RESOCK_SUPERVISOR_URL) and one
# that sends no welcome, like the seeds' servers (RESOCK_SEED_FIXTURE_URL, ...). The test crate
# reads the URLs at compile time, so any usual way of running it works, e.g.
#   scripts/with-fixtures.sh wasm-pack test --headless --chrome -- --features test-hooks --test browser
# Needs target/debug/resock-fixture (cargo build -p resock-fixture).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x target/debug/resock-fixture ] || cargo build --locked -p resock-fixture
exec scripts/with-fixture.sh --prefix RESOCK_SEED "--dev --no-welcome --heartbeat-ms 300 --pong-timeout-ms 300" \
  scripts/with-fixture.sh "--dev --heartbeat-ms 500 --pong-timeout-ms 500 --max-connections-per-user 64" \
  "$@"
