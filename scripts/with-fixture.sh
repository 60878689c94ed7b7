#!/usr/bin/env bash
# Runs a command with the fixture server up under scripts/fixture-supervisor.mjs, exporting
# RESOCK_FIXTURE_URL and RESOCK_SUPERVISOR_URL to it; stops the fixture afterwards, whatever
# happens. Usage: scripts/with-fixture.sh [--prefix P] "<fixture flags>" <command> [args...]
# With --prefix P the variables are P_FIXTURE_URL and P_SUPERVISOR_URL (to run two fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=RESOCK
if [ "${1:-}" = "--prefix" ]; then
  prefix=$2
  shift 2
fi
flags=$1
shift
env_file=$(mktemp)
log=target/fixture-under-test-$prefix.log
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
fixture_url=$(sed -n 's/^RESOCK_FIXTURE_URL=//p' "$env_file")
control_url=$(sed -n 's/^RESOCK_SUPERVISOR_URL=//p' "$env_file")
export "${prefix}_FIXTURE_URL=$fixture_url" "${prefix}_SUPERVISOR_URL=$control_url"
echo "[fixture] ${prefix}_FIXTURE_URL=$fixture_url (control $control_url; flags: $flags)"
"$@"
