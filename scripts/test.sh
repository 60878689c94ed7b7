#!/usr/bin/env bash
# Runs every test of resock, doing its own set-up first (idempotent):
#   1. native: protocol and core unit + property tests, the fixture's unit and server tests,
#      and the robustness suite (bench/src/bin/resock-abuse.rs) against the release fixture
#   2. lints: rustfmt, clippy (native; and the wasm builds, full and lean, with unwrap/expect/panic/indexing denied in src/)
#   3. browser: wasm-bindgen-test in headless Chromium against the fixture server
#   4. package: the release npm package, with its size figure and budget
#   5. js: the React hooks' unit tests (vitest, a fake Client), the TypeScript consumer
#      type-check, the Playwright tests of the React demo, the packed tarball in fresh Vite,
#      webpack and Next.js apps (js/pack/), and the
#      scale-out end-to-end test (js/scaleout/: the SDK in Chromium through nginx to two fixture
#      instances on one redis-server, a rolling restart, then a Redis reset) and the Kafka one
#      (records from a tansu broker to the SDK's listener through the same set-up)
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export PATH="$HOME/.cargo/bin:$PWD/tools/node_modules/.bin:$PATH"

section() { printf '\n== %s\n' "$*"; }

section "set-up"
scripts/setup.sh

section "1/5 native tests: protocol, core, fixture server (cargo test --workspace)"
cargo test --workspace --locked

echo "[abuse] the robustness suite: each attack against the release fixture, with a well-behaved client measuring"
cargo build --locked --release -p resock-fixture -p resock-bench
target/release/resock-abuse target/release/resock-fixture

section "2/5 lints: rustfmt, clippy on the native workspace and on the wasm build"
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo clippy --locked --target wasm32-unknown-unknown -p resock -- -D warnings
# The lean package's build (no `share`, no `sse`: scripts/build-pkg.sh) as well.
cargo clippy --locked --target wasm32-unknown-unknown -p resock --no-default-features -- -D warnings

section "3/5 browser tests: wasm-bindgen-test in headless Chromium against the fixture"
cargo build --locked -p resock-fixture
# Two fixtures: the main one, and one that sends no welcome (like the seeds' servers).
WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-300} CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  scripts/with-fixtures.sh cargo test --locked --target wasm32-unknown-unknown --features test-hooks --test browser -- --nocapture

section "4/5 the npm package: resock and resock/full (release builds, size budgets)"
scripts/build-pkg.sh

section "5/5 js: React bindings and demo type-check, hooks' unit tests, TypeScript consumer, Playwright, scale-out e2e"
(cd js && npm run --silent typecheck && npm run --silent test:unit && npm run --silent build:demo && npm run --silent typecheck:consumer)
echo "[js] the hooks' unit tests (js/unit/, vitest in happy-dom with a fake Client) passed"
echo "[js] the consumer project type-checks against the built package with tsc --noEmit --strict"
scripts/with-fixture.sh "--dev --static js/demo/dist --heartbeat-ms 5000" \
  node --test --test-concurrency=1 js/tests/
echo "[js] screenshots: artifacts/*.png"
echo "[pack] npm pack of pkg/, installed from the tarball into fresh Vite React TS, webpack 5 and Next.js app-router apps, built, served, checked in Chromium (js/pack/; logs in target/pack-e2e/)"
node --test js/pack/
echo "[scale-out] the SDK in Chromium -> nginx (deploy/nginx.conf) -> two release fixtures on one redis-server:"
echo "[scale-out] 2 000 notifications through six SIGKILLs of an instance, then Redis restarted empty (js/scaleout/; logs in target/scaleout-e2e/)"
echo "[kafka] then a record produced to Kafka (tansu) -> two instances in one group -> nginx -> the SDK's message listener: 300 records once each, in order, with the latency's p50/p99"
node --test --test-concurrency=1 js/scaleout/

section "all tests passed"
