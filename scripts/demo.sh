#!/usr/bin/env bash
# Builds everything (the wasm package, the React bindings, the demo app, the fixture server)
# and serves the demo from the fixture on http://127.0.0.1:8080 in dev mode (sign in as any
# user). Ctrl-C stops it. RESOCK_ADDR=127.0.0.1:PORT picks another address.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/tools/node_modules/.bin:$PATH"
ADDR=${RESOCK_ADDR:-127.0.0.1:8080}

scripts/setup.sh
scripts/build-pkg.sh
echo "[demo] building the demo app (vite)"
(cd js && npm run --silent build:demo)
echo "[demo] building the fixture server (release)"
cargo build --release --locked -p resock-fixture
echo "[demo] open http://$ADDR in a browser (two windows, two users, to chat); Ctrl-C stops"
exec target/release/resock-fixture --addr "$ADDR" --dev --static js/demo/dist
