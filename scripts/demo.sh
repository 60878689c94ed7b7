#!/usr/bin/env bash
# Builds everything and serves the demo from the fixture server on http://127.0.0.1:8080
# (dev mode: /dev/token signs in any user). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
ADDR=${RESOCK_ADDR:-127.0.0.1:8080}

scripts/setup.sh native
echo "[demo] building the fixture server (release)"
cargo build --release --locked -p resock-fixture
mkdir -p target/demo
[ -f target/demo/index.html ] || cp server-fixture/static/index.html target/demo/index.html
echo "[demo] serving on http://$ADDR (Ctrl-C to stop)"
exec target/release/resock-fixture --addr "$ADDR" --dev --static target/demo
