#!/usr/bin/env bash
# Runs a command with the fixture server up under scripts/fixture-supervisor.mjs, exporting
# RESOCK_FIXTURE_URL and RESOCK_SUPERVISOR_URL to it; stops the fixture afterwards, whatever
# happens. Usage: scripts/with-fixture.sh "<fixture flags>" <command> [args...]
set -euo pipefail
cd "$(dirname "$0")/.."
flags=$1
shift
env_file=$(mktemp)
log=${RESOCK_FIXTURE_LOG:-target/fixture-under-test.log}
mkdir -p "$(dirname "$log")"
# shellcheck disable=SC2086
RESOCK_LOG=${RESOCK_LOG:-quiet} node scripts/fixture-supervisor.mjs --env-file "$env_file" -- target/debug/resock-fixture $flags >"$log" 2>&1 &
sup=$!
cleanup() { kill "$sup" 2>/dev/null || true; wait "$sup" 2>/dev/null || true; rm -f "$env_file"; }
trap cleanup EXIT
for _ in $(seq 1 200); do
  [ -s "$env_file" ] && break
  kill -0 "$sup" 2>/dev/null || { echo "the fixture supervisor died:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$env_file" ] || { echo "the fixture did not start in 20 s" >&2; cat "$log" >&2; exit 1; }
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
echo "[fixture] $RESOCK_FIXTURE_URL (control $RESOCK_SUPERVISOR_URL)"
"$@"
