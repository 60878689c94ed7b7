// Finishes wasm-pack's output in pkg/ (run by scripts/build-pkg.sh before minifying the glue):
// - resock.js: a clear Error, with the fix, for a Client made before init() and for any call on a
//   Client after free() (wasm-bindgen's own are "Cannot read properties of undefined (reading
//   'client_new')" and "null pointer passed to rust"); free() twice is a no-op. `url` and
//   `ticketUrl` resolved against the page, an http(s) socket URL made ws(s) (in JS: the same in
//   Rust cost 600 B gzip of the size budget; the Rust API takes absolute URLs).
// - resock.d.ts: `init` documented under its own name, and wasm-bindgen's internal exports
//   (client_new, closures, malloc...) hidden from InitOutput (only `memory` stays).
// Fails when wasm-bindgen's output no longer has what it patches, rather than ship it unpatched.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2] ?? "pkg";
const fail = (why) => {
  console.error(`finish-pkg: ${why} (wasm-bindgen's output changed: update scripts/finish-pkg.mjs)`);
  process.exit(1);
};
function replaceOnce(text, from, to, what) {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0) fail(`expected exactly one ${what}`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

const jsPath = join(dir, "resock.js");
let js = readFileSync(jsPath, "utf8");
js = replaceOnce(
  js,
  "    constructor(options) {\n",
  "    constructor(options) {\n" +
    '        if (wasm === undefined) throw new Error("resock: await init() before new Client() (<ResockProvider> does it)");\n' +
    "        options = pageUrls(options);\n",
  "Client constructor",
);
js += `
// resock (scripts/finish-pkg.mjs): url, ticketUrl and sseUrl resolved against the page (relative, //host),
// and an http(s) socket URL made ws(s); without a page they go to the checks as given.
function pageUrls(o) {
    const r = (u) => { try { return new URL(u, location.href).href; } catch { return u; } };
    return o && typeof o.url == "string" && typeof location != "undefined"
        ? { ...o, url: r(o.url).replace(/^http/, "ws"), ticketUrl: o.ticketUrl && r(o.ticketUrl), sseUrl: o.sseUrl && r(o.sseUrl) }
        : o;
}
// A clear Error for a method called on a freed Client; free() twice is a no-op.
const P = Client.prototype;
for (const k of Object.getOwnPropertyNames(P)) {
    const f = Object.getOwnPropertyDescriptor(P, k).value;
    if (k != "constructor" && k[0] != "_" && typeof f == "function")
        P[k] = function (...a) {
            if (this.__wbg_ptr) return f.apply(this, a);
            if (k != "free") throw Error("resock: Client." + k + "() after free()");
        };
}
if (Symbol.dispose) P[Symbol.dispose] = P.free;
`;
// wasm-bindgen's long warnings, shorter (bytes of the size budget); skipped when absent.
for (const [from, to] of [
  [
    "`WebAssembly.instantiateStreaming` failed because your server does not serve Wasm with `application/wasm` MIME type. Falling back to `WebAssembly.instantiate` which is slower. Original error:\\n",
    "resock: serve .wasm as application/wasm (a slower load now):",
  ],
  ["using deprecated parameters for `initSync()`; pass a single object instead", "resock: initSync({module}) is the form"],
  ["using deprecated parameters for the initialization function; pass a single object instead", "resock: init({module_or_path}) is the form"],
]) {
  js = js.split(from).join(to);
}
writeFileSync(jsPath, js);

const dtsPath = join(dir, "resock.d.ts");
let dts = readFileSync(dtsPath, "utf8");
const io = dts.indexOf("export interface InitOutput {");
if (io < 0) fail("no InitOutput interface");
const ioEnd = dts.indexOf("\n}\n", io);
if (ioEnd < 0) fail("InitOutput interface not closed");
dts =
  dts.slice(0, io) +
  "/** What `init` resolves with: the module's memory (its other exports are internal). */\nexport interface InitOutput {\n    readonly memory: WebAssembly.Memory;\n}\n" +
  dts.slice(ioEnd + 3);
const initAt = dts.indexOf("export default function __wbg_init");
const initDoc = dts.lastIndexOf("/**", initAt);
if (initAt < 0 || initDoc < 0) fail("no __wbg_init declaration");
const initEnd = dts.indexOf("\n", initAt) + 1 || dts.length;
dts =
  dts.slice(0, initDoc) +
  `/**
 * Loads and instantiates resock's wasm module; call it once, before \`new Client(...)\`
 * (\`<ResockProvider>\` from resock/react calls it for you). Without an argument it fetches
 * \`resock_bg.wasm\` next to this file (\`new URL("resock_bg.wasm", import.meta.url)\`, which Vite,
 * webpack 5 and Next.js bundle as an asset); pass \`{ module_or_path: url }\` to load it from
 * elsewhere. Rejects when the file cannot be fetched or compiled (a 404, offline). Calling it
 * again after it resolved does nothing.
 */
export default function init(module_or_path?: { module_or_path: InitInput | Promise<InitInput> }): Promise<InitOutput>;
` + dts.slice(initEnd);
writeFileSync(dtsPath, dts);
console.log("finish-pkg: guarded the Client against use before init() and after free(); tidied resock.d.ts");
