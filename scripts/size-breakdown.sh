#!/usr/bin/env bash
# What the package's wasm is made of (issue 11): the release wasm of the last package build
# (target/wasm32-unknown-unknown/release/resock-lean.wasm, the default `resock`, or with --full
# resock-full.wasm, `resock/full`; both kept by scripts/build-pkg.sh) through
# wasm-bindgen and wasm-opt as the package build does, but keeping the function names (-g), then
# twiggy (crates.io; installed here once) grouped by where the code comes from. Sizes are raw
# bytes of that named build, without its name section; the package's own wasm is the same code
# with short import/export names. Prints a Markdown table (docs/SIZE.md holds one).
# Usage: scripts/size-breakdown.sh [--full] [--top N]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/tools/node_modules/.bin:$PATH"
build=lean
top=25
while [ $# -gt 0 ]; do
  case $1 in
    --full) build=full; shift ;;
    --top) top=$2; shift 2 ;;
    *) echo "usage: scripts/size-breakdown.sh [--full] [--top N]" >&2; exit 2 ;;
  esac
done
wasm=target/wasm32-unknown-unknown/release/resock-$build.wasm
[ -f "$wasm" ] || { echo "no $wasm: run scripts/build-pkg.sh first" >&2; exit 1; }
command -v twiggy >/dev/null || { echo "[size] cargo install twiggy (once, about 2 minutes)" >&2; cargo install twiggy >&2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
wasm-bindgen "$wasm" --out-dir "$dir" --out-name resock --target web
wasm-opt -O --flatten --rereloop -O --converge -g "$dir/resock_bg.wasm" -o "$dir/named.wasm" \
  --enable-reference-types --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-multivalue --enable-mutable-globals
twiggy top -n 100000 --format csv "$dir/named.wasm" > "$dir/top.csv"
python3 - "$dir/top.csv" "$top" <<'PY'
import csv, re, sys
rows = list(csv.DictReader(open(sys.argv[1])))
top = int(sys.argv[2])
def clean(n):
    # v0 names (nightly) carry each crate's hash: resock[7613dc3d7a1b34aa]::web -> resock::web
    return re.sub(r"\[[0-9a-f]{6,}\]", "", n)
def group(n):
    n = clean(n)
    if "names\" subsection" in n or n == '"function names" subsection':
        return None
    if n.startswith("data segment"):
        return "string constants and tables (data segments)"
    if ("shim" in n and ("client_" in n or "isKnownMessage" in n or "__resock_message" in n)) or "resock::bindings" in n:
        return "the JS API exports (bindings.rs; `new Client` has options.rs inlined)"
    if "resock::web::driver" in n:
        return "web/driver.rs: dispatch (the whole core machine inlined), perform, emit"
    if "resock::core" in n:
        return "src/core functions not inlined into dispatch"
    if "resock::web" in n:
        return "other web/ files (socket, parse, credentials, lifecycle, options)"
    if "js_sys::futures" in n or "wasm_bindgen_futures" in n:
        return "js-sys futures (its JSPI task, kept by an export wasm-bindgen always makes)"
    if "shim" in n or n.startswith("__wbindgen") or n.startswith("__externref") or "wasm_bindgen" in n:
        return "wasm-bindgen runtime (externref table, closures, throw)"
    if "resock::allocator" in n or "__rust_alloc" in n or "__rust_realloc" in n or "__rust_dealloc" in n:
        return "allocator (src/allocator.rs)"
    if "fmt" in n or "panic" in n or "Debug" in n or "Display" in n:
        return "core::fmt and std's panic machinery"
    if "drop_in_place" in n or "alloc::" in n or "alloc[" in n or "RawVec" in n:
        return "alloc: Vec/String/Rc growth and drops"
    if "js_sys" in n or "web_sys" in n or "gloo" in n:
        return "js-sys / web-sys"
    if n.startswith(("elem", "table", "type[", "import", "export", "global", "code section", "custom section")) or "section" in n:
        return "wasm tables, types, imports, exports"
    return "other (iterators, memcmp, small generics)"
groups, total = {}, 0
for r in rows:
    g = group(r["Name"])
    if g is None:
        continue
    b = int(r["ShallowSize"])
    groups[g] = groups.get(g, 0) + b
    total += b
print(f"| where it comes from | bytes | share |\n|---|---|---|")
for g, b in sorted(groups.items(), key=lambda x: -x[1]):
    print(f"| {g} | {b:,} | {100 * b / total:.1f}% |")
print(f"| **total** (without names) | **{total:,}** | |\n")
print(f"The {top} largest items:\n\n| bytes | item |\n|---|---|")
items = sorted(((int(r["ShallowSize"]), clean(r["Name"])) for r in rows if group(r["Name"]) is not None), reverse=True)
for b, n in items[:top]:
    print(f"| {b:,} | `{n.replace('|', '/')}` |")
PY
