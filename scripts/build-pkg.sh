#!/usr/bin/env bash
# Builds the npm package into pkg/: the release wasm (wasm-pack, wasm-opt from npm's binaryen),
# short names between the wasm and its glue (scripts/minify-wasm-names.mjs), its JS glue finished
# by scripts/finish-pkg.mjs (clear misuse errors, tidy types) and minified with the SDK's own JS
# (src/web/fast.js) bundled in and a source map, pkg-template's package.json and README, LICENSE,
# and the React bindings from js/ when they exist. Prints the size figure and fails when the
# .wasm and its JS glue together are over the budget (43.5 KB gzip).
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=${RESOCK_SIZE_BUDGET:-43500}
export PATH="$PWD/tools/node_modules/.bin:$PATH"   # wasm-opt 132 and esbuild; never Debian's binaryen

echo "[pkg] wasm-pack build --release --target web"
rm -rf pkg
wasm-pack build --release --target web --out-dir pkg --out-name resock --no-pack 2>&1 | grep -v "^\[INFO\]: License key" || true
[ -f pkg/resock_bg.wasm ] || { echo "[pkg] wasm-pack produced no pkg/resock_bg.wasm" >&2; exit 1; }

# Short names between the wasm and its glue (scripts/minify-wasm-names.mjs says why).
names=$(mktemp)
wasm-opt pkg/resock_bg.wasm --minify-imports-and-exports-and-modules -o pkg/resock_bg.min.wasm \
  --enable-reference-types --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-multivalue --enable-mutable-globals >"$names"
mv pkg/resock_bg.min.wasm pkg/resock_bg.wasm
node scripts/minify-wasm-names.mjs pkg "$names"
rm -f "$names"

node scripts/finish-pkg.mjs pkg
glue_raw=$(gzip -9 -c pkg/resock.js | wc -c)
echo "[pkg] minifying the JS glue (esbuild) with the SDK's own JS (src/web/fast.js) bundled in, and its source map (resock.js.map, the unminified sources inside)"
mv pkg/resock.js pkg/resock.unminified.js
esbuild pkg/resock.unminified.js --bundle --minify --format=esm --log-level=warning --sourcemap --sources-content=true --outfile=pkg/resock.js
rm -rf pkg/resock.unminified.js pkg/snippets
grep -q 'sourceMappingURL=resock.js.map' pkg/resock.js || { echo "[pkg] the glue has no source map" >&2; exit 1; }

cp pkg-template/package.json pkg-template/README.md LICENSE pkg/
if [ -f js/build-react.mjs ]; then
  echo "[pkg] building the React bindings (js/)"
  node js/build-react.mjs pkg
fi
rm -f pkg/.gitignore

wasm_gz=$(gzip -9 -c pkg/resock_bg.wasm | wc -c)
glue_gz=$(gzip -9 -c pkg/resock.js | wc -c)
total=$((wasm_gz + glue_gz))
printf '[pkg] size: resock_bg.wasm %d B raw, %d B gzip; JS glue %d B gzip (%d B before minifying); total %d B gzip (budget %d B)\n' \
  "$(wc -c < pkg/resock_bg.wasm)" "$wasm_gz" "$glue_gz" "$glue_raw" "$total" "$BUDGET"
if [ "$total" -gt "$BUDGET" ]; then
  echo "[pkg] over the size budget" >&2
  exit 1
fi
