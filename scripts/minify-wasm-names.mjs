#!/usr/bin/env node
// Shortens the names the wasm module and its JS glue use for each other (issue 11, the package
// size budget). wasm-bindgen names every import `__wbg_<name>_<16 hex digits>` in a module
// "./resock_bg.js", and the glue spells each name again; random hex does not compress, so the
// names cost about 2 KB gzip. `wasm-opt --minify-imports-and-exports-and-modules` renames them
// all (imports to module "a") and prints the mapping; this applies the mapping to the glue, to
// the SDK's own snippet (src/web/fast.js calls one export by name) and to the .d.ts of the raw
// module. Hand-written because no maintained tool does this step for wasm-bindgen's output;
// it fails the build when any old name is left, so a glue format change cannot slip through.
//
// Usage: node scripts/minify-wasm-names.mjs <pkg dir> <mapping.json from wasm-opt>
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [pkg, mapFile] = process.argv.slice(2);
// wasm-opt prints JSON with trailing commas.
const map = JSON.parse(readFileSync(mapFile, "utf8").replace(/,(\s*[\]}])/g, "$1"));
const gluePath = join(pkg, "resock.js");
let glue = readFileSync(gluePath, "utf8");
const fail = (msg) => {
  console.error(`[minify-wasm-names] ${msg}`);
  process.exit(1);
};
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

// Imports: the glue's own functions are keys of `import0`; snippet functions come from module
// namespaces (`import1`...). The object handed to the module becomes { a: { ... } }.
const ret = glue.match(/return \{\s*__proto__: null,\s*((?:"[^"]+": import\d+,\s*)+)\};/);
if (!ret) fail("cannot find the import object in the glue (wasm-bindgen's output changed?)");
const moduleVar = Object.fromEntries([...ret[1].matchAll(/"([^"]+)": (import\d+)/g)].map((m) => [m[1], m[2]]));
if (moduleVar["./resock_bg.js"] !== "import0") fail("the glue's own imports are not import0");
const extra = [];
for (const [module, name, short] of map.imports) {
  if (module === "./resock_bg.js") {
    const re = new RegExp(`\\b${escape(name)}(?=: function)`, "g");
    if (!re.test(glue)) fail(`import ${name} not found in the glue`);
    glue = glue.replace(re, short);
  } else {
    const v = moduleVar[module];
    if (!v) fail(`no namespace for module ${module}`);
    extra.push(`${short}: ${v}.${name}`);
  }
}
glue = glue.replace(ret[0], `return { a: { ...import0, ${extra.join(", ")} } };`);

// Exports: every use in the glue is `wasm.<name>`.
const renames = new Map(map.exports);
glue = glue.replace(/\bwasm\.([A-Za-z_$][\w$]*)/g, (all, name) => (renames.has(name) ? `wasm.${renames.get(name)}` : all));
for (const [name] of map.exports) {
  if (new RegExp(`\\bwasm\\.${escape(name)}\\b`).test(glue)) fail(`export ${name} still used by its old name`);
}
for (const [, name] of map.imports) {
  if (name.startsWith("__wbg_") && glue.includes(name)) fail(`import ${name} still named in the glue`);
}
writeFileSync(gluePath, glue);

// The SDK's snippet calls `exports.__resock_message` (src/web/socket.rs).
function* files(dir) {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) yield* files(p);
    else yield p;
  }
}
let calls = 0;
for (const f of files(join(pkg, "snippets"))) {
  let s = readFileSync(f, "utf8");
  s = s.replace(/\bexports\.([A-Za-z_$][\w$]*)/g, (all, name) => {
    if (!renames.has(name)) return all;
    calls++;
    return `exports.${renames.get(name)}`;
  });
  writeFileSync(f, s);
}
if (calls === 0) fail("the snippet's call of __resock_message was not found");

// The raw module's declarations (resock_bg.wasm.d.ts) name the exports.
const dts = join(pkg, "resock_bg.wasm.d.ts");
let d = readFileSync(dts, "utf8");
d = d.replace(/\b(export const |export function )([A-Za-z_$][\w$]*)/g, (all, kw, name) => (renames.has(name) ? `${kw}${renames.get(name)}` : all));
writeFileSync(dts, d);
console.log(`[minify-wasm-names] ${map.imports.length} imports and ${map.exports.length} exports renamed`);
