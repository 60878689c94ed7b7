#!/usr/bin/env bash
# Builds the npm package into pkg/: the release wasm (Rust nightly with std rebuilt to abort on
# panic without formatting a message, see below), wasm-bindgen, wasm-opt from npm's binaryen,
# short names between the wasm and its glue (scripts/minify-wasm-names.mjs), its JS glue finished
# by scripts/finish-pkg.mjs (clear misuse errors, tidy types) and minified with the SDK's own JS
# (src/web/fast.js) bundled in and a source map, pkg-template's package.json and README, LICENSE,
# and the React bindings from js/ when they exist. Prints the size figure and fails when the
# .wasm and its JS glue together are over the budget (BUDGET below, in B gzip).
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=${RESOCK_SIZE_BUDGET:-29500}            # pkg/: `import ... from "resock"` (issue 11: at most 30 000)
BUDGET_FULL=${RESOCK_SIZE_BUDGET_FULL:-37500}  # pkg/full/: `resock/full` (with `share` and `sseUrl`)
export PATH="$HOME/.cargo/bin:$PWD/tools/node_modules/.bin:$PATH"   # wasm-opt 132 and esbuild; never Debian's binaryen

# The package's wasm is built with a nightly Rust: `-Zbuild-std` rebuilds std for the wasm with
# `-Cpanic=immediate-abort`, so a panic that std can reach (a bounds check, a capacity overflow)
# is a plain `unreachable` and core::fmt with std's panic handler leaves the wasm (-4.0 KB gzip,
# docs/SIZE.md). The SDK itself has no panics (clippy denies them), so nothing a user sees
# changes. `-Zlocation-detail=none` drops the source paths (`src/core/outbox.rs`, std's files)
# kept for `#[track_caller]` locations that nothing prints any more (-295 B gzip). Native tests
# and clippy stay on stable. scripts/setup.sh installs both pieces.
# `-Ctarget-feature=-reference-types`: JS values cross by index into the glue's own array instead
# of wasm-bindgen's externref table, whose shims (one per export taking a JS value) and table
# code cost more in the wasm than the array costs in the glue (-495 B gzip, docs/SIZE.md).
NIGHTLY=${RESOCK_NIGHTLY:-nightly}
die() { echo "[pkg] $*" >&2; exit 1; }
rustup run "$NIGHTLY" rustc --version >/dev/null 2>&1 ||
  die "the package build needs the Rust $NIGHTLY toolchain: run scripts/setup.sh browser (or: rustup toolchain install $NIGHTLY --profile minimal --component rust-src)"
sysroot=$(rustup run "$NIGHTLY" rustc --print sysroot)
[ -f "$sysroot/lib/rustlib/src/rust/library/Cargo.lock" ] ||
  die "the package build needs rust-src for $NIGHTLY (to rebuild std): run scripts/setup.sh browser (or: rustup component add rust-src --toolchain $NIGHTLY)"

# One build of the wasm and its glue into $2 (a folder of pkg/) with the Cargo feature flags $1;
# $3 names it (lean, full).
build_one() {
  local features=$1 out=$2
  echo "[pkg] $out: cargo +$NIGHTLY build --release --target wasm32-unknown-unknown $features -Zbuild-std=std,panic_abort, -Cpanic=immediate-abort -Zlocation-detail=none -Ctarget-feature=-reference-types ($(rustup run "$NIGHTLY" rustc --version))"
  # shellcheck disable=SC2086 # $features is one or no flag
  RUSTUP_TOOLCHAIN=$NIGHTLY RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Ctarget-feature=-reference-types" \
    cargo build --locked --release --target wasm32-unknown-unknown -p resock -Zbuild-std=std,panic_abort $features
  local wasm=${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/resock.wasm
  [ -f "$wasm" ] || die "cargo produced no $wasm"
  # Kept per build for scripts/size-breakdown.sh (the next build overwrites $wasm).
  cp "$wasm" "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/resock-$3.wasm"
  # Behaviour, not luck: std's panic messages are gone only when the flags took.
  if grep -q -a -e "capacity overflow" -e "already borrowed" "$wasm"; then
    die "$wasm still has std's panic messages: -Cpanic=immediate-abort did not apply (has this nightly renamed it? see docs/SIZE.md)"
  fi
  mkdir -p "$out"
  echo "[pkg] $out: wasm-bindgen --target web, wasm-opt -O --flatten --rereloop -O --converge --low-memory-unused --zero-filled-memory"
  wasm-bindgen "$wasm" --out-dir "$out" --out-name resock --target web
  # --low-memory-unused, --zero-filled-memory: true of a Rust wasm (data from 1 MiB, memory starts zeroed); -260 B gzip.
  # --flatten --rereloop between two -O rounds: the control flow rebuilt by binaryen's relooper; -230 B gzip (docs/SIZE.md)
  wasm-opt "$out/resock_bg.wasm" -O --flatten --rereloop -O --converge --low-memory-unused --zero-filled-memory -o "$out/resock_bg.opt.wasm" \
    --enable-reference-types --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-multivalue --enable-mutable-globals
  mv "$out/resock_bg.opt.wasm" "$out/resock_bg.wasm"

  # Short names between the wasm and its glue (scripts/minify-wasm-names.mjs says why), and
  # without the `producers` and `target_features` sections (toolchain names and versions, read by
  # no browser: -220 B gzip; wasm-opt has read the features above).
  local names
  names=$(mktemp)
  wasm-opt "$out/resock_bg.wasm" --minify-imports-and-exports-and-modules --strip-producers --strip-target-features -o "$out/resock_bg.min.wasm" \
    --enable-reference-types --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-multivalue --enable-mutable-globals >"$names"
  mv "$out/resock_bg.min.wasm" "$out/resock_bg.wasm"
  node scripts/minify-wasm-names.mjs "$out" "$names"
  rm -f "$names"

  node scripts/finish-pkg.mjs "$out"
  echo "[pkg] $out: minifying the JS glue (esbuild) with the SDK's own JS (src/web/*.js) bundled in, and its source map (resock.js.map, the unminified sources inside)"
  mv "$out/resock.js" "$out/resock.unminified.js"
  esbuild "$out/resock.unminified.js" --bundle --minify --format=esm --log-level=warning --sourcemap --sources-content=true --outfile="$out/resock.js"
  rm -rf "$out/resock.unminified.js" "$out/snippets" "$out/.gitignore"
  grep -q 'sourceMappingURL=resock.js.map' "$out/resock.js" || die "$out/resock.js has no source map"
  if [ -f js/build-react.mjs ]; then
    echo "[pkg] $out: the React bindings (js/)"
    node js/build-react.mjs "$out"
  fi
}

# Checks the size of the wasm and glue in $1 against the budget $2 (B gzip).
size_of() {
  local out=$1 budget=$2 wasm_gz glue_gz total
  wasm_gz=$(gzip -9 -c "$out/resock_bg.wasm" | wc -c)
  glue_gz=$(gzip -9 -c "$out/resock.js" | wc -c)
  total=$((wasm_gz + glue_gz))
  printf '[pkg] size of %s: resock_bg.wasm %d B raw, %d B gzip; JS glue %d B gzip; total %d B gzip (budget %d B)\n' \
    "$out" "$(wc -c < "$out/resock_bg.wasm")" "$wasm_gz" "$glue_gz" "$total" "$budget"
  [ "$total" -le "$budget" ] || { echo "[pkg] $out is over its size budget" >&2; return 1; }
}

rm -rf pkg
# `resock`: everything but cross-tab sharing and the SSE fallback; `resock/full`: with them.
build_one --no-default-features pkg lean
build_one "" pkg/full full
cp pkg-template/package.json pkg-template/README.md LICENSE pkg/
ok=1
size_of pkg "$BUDGET" || ok=0
size_of pkg/full "$BUDGET_FULL" || ok=0
[ "$ok" = 1 ] || exit 1
