#!/usr/bin/env bash
# Installs what a fresh machine lacks for resock's build and tests, idempotently
# (Rust targets and tools, Chromium, npm packages, redis-server and nginx).
# Every step checks first and prints what it does; a second run does nothing.
# Usage: scripts/setup.sh [native|browser|kafka|all]   (default: all; the demo needs browser)
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130   # must match the `=0.2.130` pin in Cargo.toml
what=${1:-all}

step() { printf '[setup] %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  # apt-get install with one repair-and-retry: once the install ended with a dpkg error about a
  # missing archive, and `apt-get install -f` plus a second run fixed it.
  local pkgs=("$@")
  if [ ! -f /tmp/.resock-apt-updated ]; then
    step "apt-get update"
    as_root apt-get update -qq && touch /tmp/.resock-apt-updated
  fi
  step "apt-get install ${pkgs[*]}"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/tmp/resock-apt.log 2>&1; then
    step "apt-get install failed once; repairing and retrying (log: /tmp/resock-apt.log)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -f -qq >>/tmp/resock-apt.log 2>&1 || true
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"
  fi
}

native() {
  command -v cargo >/dev/null || { echo "cargo is missing: this machine should have rustup's toolchain" >&2; exit 1; }
  if ! command -v curl >/dev/null; then apt_install curl; fi
  # Redis for the engine's tests, and Redis and nginx for the scale-out browser test
  # (js/scaleout/) and `scripts/bench.sh` (each run starts its own on free loopback ports and
  # stops them by PID); neither is started here.
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# tansu, a Kafka-protocol broker, for the event-source tests and `demo.sh --kafka` (once: 10-18
# minutes on 2 cores).
kafka() {
  if ! command -v tansu >/dev/null && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
    step "cargo install tansu --features dynostore (a Kafka-protocol broker; 10-18 minutes, once)"
    cargo install tansu --features dynostore
  fi
}

browser() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
  # The npm package's wasm is built with nightly Rust and std rebuilt from source
  # (scripts/build-pkg.sh says why); everything else stays on stable.
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    step "rustup toolchain install nightly --profile minimal (for the package build)"
    rustup toolchain install nightly --profile minimal
  fi
  if [ ! -f "$(rustup run nightly rustc --print sysroot)/lib/rustlib/src/rust/library/Cargo.lock" ]; then
    step "rustup component add rust-src --toolchain nightly (std's sources, for -Zbuild-std)"
    rustup component add rust-src --toolchain nightly
  fi
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    step "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 3 minutes)"
    # no --locked: the registry mirror lacks one locked dependency version
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
  fi
  if ! command -v wasm-pack >/dev/null; then
    step "cargo install wasm-pack (about 2 minutes)"
    cargo install wasm-pack --locked
  fi
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    apt_install chromium chromium-driver
  fi
  # wasm-opt from npm's binaryen (never Debian's binaryen 108: its -Oz output fails to load)
  npm_ci tools
  npm_ci js
}

# npm ci in a folder when its node_modules is missing or older than its lock file.
npm_ci() {
  local dir=$1
  [ -f "$dir/package-lock.json" ] || return 0
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    step "npm ci in $dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

case "$what" in
  native) native ;;
  browser) native; browser ;;
  kafka) native; kafka ;;
  all) native; browser; kafka ;;
  *) echo "usage: scripts/setup.sh [native|browser|kafka|all]" >&2; exit 2 ;;
esac
step "done"
