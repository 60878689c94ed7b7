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
// wasm-bindgen's init and initSync, shorter (bytes of the size budget), for the same inputs:
// `init()` fetches resock_bg.wasm beside this file; `init({module_or_path})` or `init(x)` takes
// a URL, a string, a Request, a Response (or a promise of one), bytes or a WebAssembly.Module; a
// failed load can be retried; a Response with the wrong MIME type is read whole, with a warning.
// `initSync({module})` or `initSync(x)` takes bytes or a Module. Both return the exports.
{
  const from = js.indexOf("async function __wbg_load(module, imports) {");
  const end = "export { initSync, __wbg_init as default };";
  const to = js.indexOf(end);
  if (from < 0 || to < from || js.indexOf(end, to + 1) >= 0) fail("expected wasm-bindgen's __wbg_load ... export { initSync, __wbg_init as default }");
  js =
    js.slice(0, from) +
    `// resock (scripts/finish-pkg.mjs): wasm-bindgen's init and initSync, shorter, for the same inputs.
const __resock_arg = (a, key) => (a && Object.getPrototypeOf(a) === Object.prototype ? a[key] : a);
function initSync(module) {
    if (wasm === undefined) {
        module = __resock_arg(module, "module");
        if (!(module instanceof WebAssembly.Module)) module = new WebAssembly.Module(module);
        __wbg_finalize_init(new WebAssembly.Instance(module, __wbg_get_imports()));
    }
    return wasm;
}
let __resock_loading;
async function __wbg_init(module_or_path) {
    return wasm ?? (__resock_loading ??= __resock_load(__resock_arg(module_or_path, "module_or_path")).catch((e) => {
        __resock_loading = undefined;
        throw e;
    }));
}
async function __resock_load(m) {
    const imports = __wbg_get_imports();
    m = await (m ?? new URL("resock_bg.wasm", import.meta.url));
    if (typeof m == "string" || m instanceof URL || (typeof Request == "function" && m instanceof Request)) m = await fetch(m);
    if (typeof Response == "function" && m instanceof Response) {
        if (!m.ok) throw new Error(\`failed to fetch Wasm: \${m.status} \${m.statusText} fetching '\${m.url}'\`);
        if (WebAssembly.instantiateStreaming)
            try {
                return __wbg_finalize_init((await WebAssembly.instantiateStreaming(m, imports)).instance);
            } catch (e) {
                if (!/^(basic|cors|default)$/.test(m.type) || m.headers.get("Content-Type") == "application/wasm") throw e;
                console.warn("resock: serve .wasm as application/wasm (a slower load now):", e);
            }
        m = await m.arrayBuffer();
    }
    const r = await WebAssembly.instantiate(m, imports);
    return __wbg_finalize_init(r.instance || r);
}
` +
    js.slice(to);
}
// The raw exports that fast.js calls (`exports.__resock_message`, `exports.__resock_drop`) are
// not API: their JS wrappers, and their export from the module, go.
for (const name of ["__resock_drop", "__resock_message"]) {
  const re = new RegExp(`\\n(/\\*\\*(?:(?!\\*/)[\\s\\S])*\\*/\\n)?export function ${name}\\([^)]*\\) \\{\\n[^\\n]*\\n\\}\\n`, "g");
  const n = (js.match(re) || []).length;
  if (n !== 1) fail(`expected one JS wrapper of ${name}, found ${n}`);
  js = js.replace(re, "\n");
}
// wasm-bindgen's string passing: every call passes `realloc`, so its branch for none goes; and
// TextEncoder's `encodeInto` needs no polyfill where this wasm runs at all (its bulk-memory and
// nontrapping-float-to-int need Safari 15, Chrome 75, Firefox 64, Node 12: encodeInto is older).
{
  const calls = js.match(/passStringToWasm0\([^)]*\)/g) || [];
  if (calls.some((c) => c.split(",").length !== 3)) fail("a passStringToWasm0 call without realloc");
}
js = replaceOnce(
  js,
  `    if (realloc === undefined) {
        const buf = cachedTextEncoder.encode(arg);
        const ptr = malloc(buf.length, 1) >>> 0;
        getUint8ArrayMemory0().subarray(ptr, ptr + buf.length).set(buf);
        WASM_VECTOR_LEN = buf.length;
        return ptr;
    }
`,
  "",
  "passStringToWasm0's branch without realloc",
);
js = replaceOnce(
  js,
  `if (!('encodeInto' in cachedTextEncoder)) {
    cachedTextEncoder.encodeInto = function (arg, view) {
        const buf = cachedTextEncoder.encode(arg);
        view.set(buf);
        return {
            read: arg.length,
            written: buf.length
        };
    };
}
`,
  "",
  "the encodeInto polyfill",
);
// `isKnownMessage` is fast.js's `resock_is_known` (src/bindings.rs says why): imported from the
// snippet beside the others and exported.
{
  const re = /^import \{ ([^}]*) \} from '(\.\/snippets\/[^']*\/src\/web\/fast\.js)';$/m;
  const m = js.match(re);
  if (!m) fail("no import from the snippet fast.js");
  js = js.replace(re, `import { ${m[1]}, resock_is_known } from '${m[2]}';`) + "\nexport { resock_is_known as isKnownMessage };\n";
}
// wasm-bindgen's own `Symbol.dispose` (the unguarded free): set again below, to the guarded one.
js = replaceOnce(js, "if (Symbol.dispose) Client.prototype[Symbol.dispose] = Client.prototype.free;\n", "", "Client's Symbol.dispose");
js = replaceOnce(js, "let wasmModule, wasmInstance, wasm;", "let wasm;", "wasm's declaration");
js = replaceOnce(js, "    wasmInstance = instance;\n", "", "wasmInstance");
js = replaceOnce(js, "    wasmModule = module;\n", "", "wasmModule");
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
