#!/usr/bin/env node
// The SDK's dispatch benchmark (issue 11; run by `scripts/bench.sh --dispatch`): serves the
// page and the package on 127.0.0.1, runs a loopback WebSocket server that sends each workload's
// frames as fast as the client reads them, and opens the page in headless Chromium. Chromium is
// started with the page's URL and no DevTools connection at all (no CDP, no Playwright): nothing
// reports WebSocket frames to a driver, which halves throughput (docs/BENCHMARKS.md). The page
// posts its results back; this prints the table and writes the JSON to --out.
// Then, each page in a fresh Chromium (still no DevTools): time to first open (open.html: cold,
// warm, with preload links, socket.io-client against a socket.io server this starts on
// 127.0.0.1), JS heap and wasm memory after N messages (memory.html), reconnect time after a
// cut (reconnect.html); and bundle bytes (resock's package vs socket.io-client, centrifuge and
// phoenix bundled by esbuild, gzip -9).
//
// Usage: node bench/browser/dispatch.mjs [--n 100000] [--rounds 5] [--pkg pkg] [--base PKG_DIR] [--out FILE] [--svg FILE]
//        [--net raw,resock,partysocket|none] [--inpage raw,resock|none] [--send raw,resock|none]
//        [--send-n 10000 (0: no send runs)] [--open-rounds 5 (0: none)] [--mem-rounds 3 (0: none)]
//        [--reconnect-rounds 2 (5 cuts per variant each; 0: none)] [--chromium /usr/bin/chromium]
// RESOCK_BENCH_CHROMIUM_FLAGS adds Chromium flags (e.g. "--js-flags=--prof,--logfile=/tmp/v8.log"
// for a V8 profile of the page, read with `node --prof-process`).
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Server as SocketIOServer } from "socket.io";
import { WebSocketServer } from "ws";
import { WORKLOADS, frame, welcome } from "./workloads.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const N = Number(args.n ?? 100000);
const ROUNDS = Number(args.rounds ?? 5);
const PKG = resolve(root, args.pkg ?? "pkg");
const OUT = args.out ? resolve(args.out) : null;
const BASE = args.base ? resolve(root, args.base) : null;
const CHROMIUM = args.chromium ?? "/usr/bin/chromium";
const TOTAL_TIMEOUT_MS = Number(args["timeout-s"] ?? 3600) * 1000;
const OPEN_ROUNDS = Number(args["open-rounds"] ?? 5);
const MEM_ROUNDS = Number(args["mem-rounds"] ?? 3);
const RECONNECT_ROUNDS = Number(args["reconnect-rounds"] ?? 2);
const RECONNECT_SAMPLES = 5; // per page (reconnect.html)

// partysocket, bundled for the page by esbuild (tools/, installed by scripts/setup.sh).
const esbuild = resolve(root, "tools/node_modules/.bin/esbuild");
const partysocket = execFileSync(esbuild, [join(here, "node_modules/partysocket/dist/index.js"), "--bundle", "--format=esm", "--minify"], {
  encoding: "utf8",
  maxBuffer: 1 << 24,
});
// socket.io-client for the time-to-first-open page, bundled the same way.
const socketioClient = execFileSync(esbuild, ["--bundle", "--format=esm", "--minify", "--log-level=error"], {
  input: 'export { io } from "socket.io-client";',
  cwd: here,
  encoding: "utf8",
  maxBuffer: 1 << 24,
});

// Bundle bytes (issue 11): each comparison client bundled the same way, a one-line entry that
// exports its client (esbuild --bundle --minify --format=esm, node_modules of bench/browser),
// then gzip -9; resock is its package as shipped (.wasm + JS glue, each gzip -9, summed, as
// scripts/build-pkg.sh counts it).
const gzip9 = (buf) => execFileSync("gzip", ["-9", "-c"], { input: buf, maxBuffer: 1 << 26 }).length;
const BUNDLED = [
  { name: "socket.io-client", entry: 'export { io } from "socket.io-client";' },
  { name: "centrifuge", entry: 'export { Centrifuge } from "centrifuge";' },
  { name: "phoenix", entry: 'export { Socket } from "phoenix";' },
];
const version = (name) => JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"), "utf8")).version;
function bundleSizes() {
  const rows = [];
  const wasm = readFileSync(join(PKG, "resock_bg.wasm"));
  const glue = readFileSync(join(PKG, "resock.js"));
  rows.push({ mode: "bundle", variant: "resock", version: "current", raw_bytes: wasm.length + glue.length, gzip_bytes: gzip9(wasm) + gzip9(glue), ok: true });
  for (const b of BUNDLED) {
    const out = execFileSync(esbuild, ["--bundle", "--minify", "--format=esm", "--log-level=error"], { input: b.entry, cwd: here, maxBuffer: 1 << 26 });
    rows.push({ mode: "bundle", variant: b.name, version: version(b.name), entry: b.entry, raw_bytes: out.length, gzip_bytes: gzip9(out), ok: true });
  }
  return rows;
}
const bundles = bundleSizes();
for (const r of bundles) console.log(`[dispatch] ${JSON.stringify(r)}`);

// Every frame of every workload, encoded once: the server spends little per frame.
const encoded = new Map();
function framesOf(kind, bytes) {
  const key = `${kind}/${bytes}`;
  if (!encoded.has(key)) {
    encoded.set(key, Array.from({ length: N }, (_, i) => Buffer.from(frame(kind, bytes, i + 1))));
  }
  return encoded.get(key);
}
for (const w of WORKLOADS) framesOf(w.kind, w.bytes);
const welcomeFrame = Buffer.from(welcome());

const TYPES = { ".html": "text/html", ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm" };
// The page of the current Chromium posts its result; `runPage` waits for it.
let finish = () => {};

const server = createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (req.method === "POST") {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      res.end("ok");
      if (url.pathname === "/log") console.log(`[dispatch] ${body}`);
      if (url.pathname === "/result") finish(JSON.parse(body));
    });
    return;
  }
  let file;
  if (url.pathname === "/" || url.pathname === "/dispatch.html") file = join(here, "dispatch.html");
  else if (url.pathname === "/page.mjs" || url.pathname === "/workloads.mjs") file = join(here, url.pathname);
  else if (url.pathname === "/open.html" || url.pathname === "/memory.html" || url.pathname === "/reconnect.html") file = join(here, url.pathname);
  else if (url.pathname.startsWith("/pkg/")) file = join(PKG, url.pathname.slice(5).replace(/\.\./g, ""));
  else if (url.pathname.startsWith("/pkgc/")) file = join(PKG, url.pathname.slice(6).replace(/\.\./g, ""));
  else if (BASE && url.pathname.startsWith("/pkg-base/")) file = join(BASE, url.pathname.slice(10).replace(/\.\./g, ""));
  if (url.pathname === "/socketio.js") {
    res.writeHead(200, { "content-type": "text/javascript", "cache-control": "no-store" });
    res.end(socketioClient);
    return;
  }
  if (url.pathname === "/open.html" && url.searchParams.get("preload") === "1") {
    const pkg = url.searchParams.get("pkg") ?? "/pkg";
    const links = `<link rel="modulepreload" href="${pkg}/resock.js"><link rel="preload" href="${pkg}/resock_bg.wasm" as="fetch" type="application/wasm" crossorigin>`;
    res.writeHead(200, { "content-type": "text/html", "cache-control": "no-store" });
    res.end(readFileSync(file, "utf8").replace("</title>", `</title>\n${links}`));
    return;
  }
  if (url.pathname === "/partysocket.js") {
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end(partysocket);
    return;
  }
  try {
    const body = readFileSync(file);
    // /pkgc/: the package as a cacheable resource (the warm and preload figures); all else no-store.
    const cache = url.pathname.startsWith("/pkgc/") ? "public, max-age=3600" : "no-store";
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": cache });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});

// The loopback WebSocket server: welcome, then the N frames, in batches; it waits while the
// socket's write buffer is over 4 MB, so memory stays bounded and the client sets the pace.
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
server.on("upgrade", (req, socket, head) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/sink") return wss.handleUpgrade(req, socket, head, (ws) => sink(ws, Number(url.searchParams.get("n"))));
  if (url.pathname === "/cut") return wss.handleUpgrade(req, socket, head, (ws) => cut(ws, url.searchParams.get("id")));
  if (url.pathname !== "/blast") return socket.destroy();
  const list = framesOf(url.searchParams.get("kind"), Number(url.searchParams.get("bytes")));
  wss.handleUpgrade(req, socket, head, (ws) => blast(ws, list.slice(0, Number(url.searchParams.get("n") ?? list.length))));
});

// The send benchmark's server: answers each frame's id with an ack, as the fixture does, and
// says sink_done after the n-th frame.
function sink(ws, n) {
  let count = 0;
  ws.on("error", () => {});
  ws.on("message", (data) => {
    const id = /"id":"([^"]*)"/.exec(data.toString())?.[1];
    if (id !== undefined) ws.send(`{"type":"ack","id":"${id}","payload":{}}`);
    if (++count === n) ws.send(`{"type":"sink_done","payload":{}}`);
  });
}

// Reconnect after a cut (reconnect.html): the first connection of an id gets a welcome and, 300 ms
// later, its TCP socket destroyed (no close frame); the next one of the same id gets a welcome and
// stays. cutGap: from the cut to the next upgrade request of that id, on this process's clock.
const cutAt = new Map();
const cutGap = new Map();
function cut(ws, id) {
  ws.on("error", () => {});
  ws.send(welcomeFrame, { binary: false });
  if (!cutAt.has(id)) {
    cutAt.set(id, null);
    setTimeout(() => {
      cutAt.set(id, performance.now());
      ws._socket.destroy();
    }, 300);
  } else if (cutAt.get(id) !== null && !cutGap.has(id)) cutGap.set(id, performance.now() - cutAt.get(id));
}

async function blast(ws, list) {
  const raw = ws._socket;
  ws.on("error", () => {});
  ws.send(welcomeFrame, { binary: false });
  for (let i = 0; i < list.length && ws.readyState === ws.OPEN; ) {
    const end = Math.min(list.length, i + 256);
    for (; i < end; i++) ws.send(list[i], { binary: false });
    while (raw.writableLength > 4 << 20 && ws.readyState === ws.OPEN) await new Promise((r) => raw.once("drain", r));
  }
}

server.listen(0, "127.0.0.1", async () => {
  const { port } = server.address();
  const query = new URLSearchParams({ n: String(N), rounds: String(ROUNDS) });
  if (args.net) query.set("net", args.net);
  if (args.inpage) query.set("inpage", args.inpage);
  if (BASE) query.set("base", "/pkg-base");
  if (args["send-n"]) query.set("send_n", args["send-n"]);
  if (args.send) query.set("send", args.send);
  const pageUrl = `http://127.0.0.1:${port}/dispatch.html?${query}`;
  console.log(`[dispatch] N = ${N}, ${ROUNDS} rounds; ${pageUrl}`);
  const result = await runPage(pageUrl, TOTAL_TIMEOUT_MS);
  if (result.error) {
    console.error(`[dispatch] the page failed: ${result.error}`);
    process.exit(1);
  }
  // Time to first open: a fresh Chromium (new profile, nothing cached) per sample, from the
  // page's start (navigation) to `open`: raw WebSocket, and resock (fetching and compiling its
  // wasm first), interleaved.
  for (let round = 1; round <= OPEN_ROUNDS; round++) {
    for (const variant of round % 2 ? ["raw", "resock"] : ["resock", "raw"]) {
      const r = await runPage(`http://127.0.0.1:${port}/open.html?variant=${variant}`, 60000);
      const row = { mode: "open", round, workload: "time to first open (cold)", variant, ms: r.ms, ok: !r.error, bad: r.error ? 1 : 0 };
      console.log(`[dispatch] ${JSON.stringify(row)}`);
      result.results.push(row);
    }
  }
  // Time to first open, more: warm (the same page loaded a second time in the same browser and
  // profile, the package cacheable), with preload links for the glue and the wasm (cold, fresh
  // profile), and socket.io-client against its own socket.io server (default transports: HTTP
  // long-polling handshake first; and websocket only).
  const sioHttp = createServer();
  const sio = new SocketIOServer(sioHttp, { cors: { origin: "*" } });
  await new Promise((r) => sioHttp.listen(0, "127.0.0.1", r));
  const sioPort = sioHttp.address().port;
  const OPEN_MORE = [
    ["raw", "raw warm (second load)", "variant=raw&warm=1"],
    ["resock", "resock warm (second load, package cacheable)", "variant=resock&pkg=/pkgc&warm=1"],
    ["resock", "resock cold, modulepreload + preload of the wasm", "variant=resock&pkg=/pkgc&preload=1"],
    ["socketio", "socket.io-client cold (polling, then upgrade)", `variant=socketio&sio=${sioPort}`],
    ["socketio-ws", "socket.io-client cold (transports: websocket)", `variant=socketio-ws&sio=${sioPort}`],
  ];
  for (let round = 1; round <= OPEN_ROUNDS; round++) {
    for (const [variant, workload, query] of rotateList(OPEN_MORE, round)) {
      const r = await runPage(`http://127.0.0.1:${port}/open.html?${query}`, 60000);
      const row = { mode: "open", round, workload, variant, ms: r.ms, first_ms: r.first_ms, ok: !r.error, bad: r.error ? 1 : 0, error: r.error };
      console.log(`[dispatch] ${JSON.stringify(row)}`);
      result.results.push(row);
    }
  }
  sio.close();
  sioHttp.close();
  // JS heap and wasm memory after N messages: a fresh Chromium per sample, raw and resock interleaved.
  const MEM_FLAGS = ["--enable-precise-memory-info"];
  for (let round = 1; round <= MEM_ROUNDS; round++) {
    for (const variant of round % 2 ? ["raw", "resock"] : ["resock", "raw"]) {
      const r = await runPage(`http://127.0.0.1:${port}/memory.html?variant=${variant}&n=${N}`, 180000, MEM_FLAGS);
      const row = { mode: "memory", round, workload: `room 100 B, N = ${N}`, variant, ...r, ok: !r.error && r.ok, bad: r.error ? 1 : r.bad };
      console.log(`[dispatch] ${JSON.stringify(row)}`);
      result.results.push(row);
    }
  }
  // Reconnect after a cut: a fresh Chromium per page of RECONNECT_SAMPLES cuts, variants interleaved.
  for (let round = 1; round <= RECONNECT_ROUNDS; round++) {
    for (const variant of rotateList(["raw", "resock", "resock-fast"], round)) {
      const tag = `${variant}-${round}`;
      const r = await runPage(`http://127.0.0.1:${port}/reconnect.html?variant=${variant}&tag=${tag}&samples=${RECONNECT_SAMPLES}`, 180000);
      for (const s of r.samples ?? [{ error: r.error }]) {
        const row = { mode: "reconnect", round, workload: "reconnect after a cut", variant, ...s, server_ms: cutGap.get(s.id) ?? null, ok: !s.error, bad: s.error ? 1 : 0 };
        console.log(`[dispatch] ${JSON.stringify(row)}`);
        result.results.push(row);
      }
    }
  }
  result.results.push(...bundles);
  server.close();
  wss.close();
  if (OUT) {
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, JSON.stringify(result, null, 1));
  }
  report(result);
  process.exit(result.results.every((r) => r.ok) ? 0 : 1);
});

/// Opens `url` in a fresh headless Chromium (its own profile, no DevTools connection) and waits
/// for the page's POST /result.
async function runPage(url, timeoutMs, flags = []) {
  const profile = mkdtempSync(join(tmpdir(), "resock-bench-chromium-"));
  const posted = new Promise((r) => (finish = r));
  const chromium = spawn(
    CHROMIUM,
    [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-extensions",
      "--disable-background-networking",
      "--js-flags=--expose-gc", // the page collects garbage between runs (page.mjs settle)
      `--user-data-dir=${profile}`,
      ...flags,
      ...(process.env.RESOCK_BENCH_CHROMIUM_FLAGS ?? "").split(" ").filter(Boolean),
      url,
    ],
    { stdio: "ignore" },
  );
  let timer;
  const timedOut = new Promise((r) => (timer = setTimeout(() => r({ error: `no result within ${timeoutMs / 1000} s` }), timeoutMs)));
  const result = await Promise.race([posted, timedOut]);
  clearTimeout(timer);
  chromium.kill("SIGTERM");
  await new Promise((r) => (chromium.exitCode !== null ? r() : chromium.once("exit", r)));
  try {
    rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  } catch {
    // a Chromium helper may still hold a file: the temporary profile stays behind
  }
  return result;
}

function rotateList(list, k) {
  return list.map((_, i) => list[(i + k) % list.length]);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function report({ results, rounds, n, userAgent }) {
  const runs = (mode, w, v) => results.filter((r) => r.mode === mode && r.workload === w && r.variant === v);
  const med = (mode, w, v, key) => {
    const xs = runs(mode, w, v).map((r) => r[key]);
    return xs.length ? median(xs) : NaN;
  };
  // Ratios to raw are taken round by round (both measured back to back), then the median.
  const ratio = (mode, w, v, key) => {
    const xs = runs(mode, w, v)
      .map((r) => {
        const raw = runs(mode, w, "raw").find((x) => x.round === r.round);
        return raw ? r[key] / raw[key] : NaN;
      })
      .filter(Number.isFinite);
    return xs.length ? median(xs) : NaN;
  };
  const variants = (mode) => {
    const order = ["raw", "resock", "resock-base", "partysocket"];
    return order.filter((v) => results.some((r) => r.mode === mode && r.variant === v));
  };
  const k = (x) => (Number.isFinite(x) ? `${(x / 1000).toFixed(1)}k` : "-");
  const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : "-");
  const browser = userAgent.match(/Chrome\/[\d.]+/)?.[0] ?? userAgent;
  if (results.some((r) => r.mode !== "open")) {
    console.log(`\nDispatch, N = ${n} messages per run, median of ${rounds} interleaved rounds, ${browser}`);
  }
  const net = variants("net");
  if (net.length) {
    const others = net.filter((v) => v !== "raw");
    console.log(`\nFrom a loopback server (messages/s in the handler; ratio to raw per round, median):\n`);
    console.log(`| workload | ${net.map((v) => `${v} msg/s`).join(" | ")} | ${others.map((v) => `${v}/raw`).join(" | ")} |`);
    console.log(`|---|${net.map(() => "---|").join("")}${others.map(() => "---|").join("")}`);
    for (const w of WORKLOADS) {
      const cells = [...net.map((v) => k(med("net", w.name, v, "msgs_per_s"))), ...others.map((v) => f2(ratio("net", w.name, v, "msgs_per_s")))];
      console.log(`| ${w.name} | ${cells.join(" | ")} |`);
    }
  }
  const inpage = variants("inpage");
  if (inpage.length) {
    const others = inpage.filter((v) => v !== "raw");
    console.log(`\nHanded in-page, no network (µs per message; ratio to raw per round, median):\n`);
    console.log(`| workload | ${inpage.map((v) => `${v} µs`).join(" | ")} | ${others.map((v) => `${v}/raw`).join(" | ")} |`);
    console.log(`|---|${inpage.map(() => "---|").join("")}${others.map(() => "---|").join("")}`);
    for (const w of WORKLOADS) {
      const cells = [...inpage.map((v) => f2(med("inpage", w.name, v, "us_per_msg"))), ...others.map((v) => f2(ratio("inpage", w.name, v, "us_per_msg")))];
      console.log(`| ${w.name} | ${cells.join(" | ")} |`);
    }
  }
  const send = variants("send");
  if (send.length) {
    const others = send.filter((v) => v !== "raw");
    const w = results.find((r) => r.mode === "send").workload;
    console.log(`\nSend throughput, ${w}, one loop of sends, pacing off (sends/s until the server has all; µs per send call):\n`);
    console.log(`| | ${send.join(" | ")} | ${others.map((v) => `${v}/raw`).join(" | ")} |`);
    console.log(`|---|${send.map(() => "---|").join("")}${others.map(() => "---|").join("")}`);
    console.log(`| sends/s | ${send.map((v) => k(med("send", w, v, "sends_per_s"))).join(" | ")} | ${others.map((v) => f2(ratio("send", w, v, "sends_per_s"))).join(" | ")} |`);
    console.log(`| µs per send() call | ${send.map((v) => f2(med("send", w, v, "us_per_send_call"))).join(" | ")} | ${others.map((v) => f2(ratio("send", w, v, "us_per_send_call"))).join(" | ")} |`);
  }
  if (results.some((r) => r.mode === "open")) {
    const w = "time to first open (cold)";
    const samples = results.filter((r) => r.mode === "open" && r.workload === w && r.variant === "raw").length;
    console.log(`\nTime to first open, ${browser}, a fresh Chromium per sample (${samples} each, interleaved), from navigation start to \`open\` on a loopback server (ms, median):\n`);
    console.log(`| | raw WebSocket | resock (fetch + compile the wasm, then connect) | resock - raw |\n|---|---|---|---|`);
    const raw = med("open", w, "raw", "ms");
    const rs = med("open", w, "resock", "ms");
    console.log(`| ms | ${f2(raw)} | ${f2(rs)} | ${f2(rs - raw)} |`);
  }
  const more = [...new Set(results.filter((r) => r.mode === "open" && r.workload !== "time to first open (cold)").map((r) => r.workload))];
  if (more.length) {
    console.log(`\nTime to first open, more (same start and end; ms, median; "first load" = the warm page's first load, a fresh profile with the package cacheable):\n`);
    console.log(`| | ms | first load ms | samples |\n|---|---|---|---|`);
    for (const w of more) {
      const rows = results.filter((r) => r.mode === "open" && r.workload === w && r.ok);
      const firsts = rows.map((r) => r.first_ms).filter((x) => typeof x === "number");
      console.log(`| ${w} | ${f2(rows.length ? median(rows.map((r) => r.ms)) : NaN)} | ${firsts.length ? f2(median(firsts)) : "-"} | ${rows.length} |`);
    }
  }
  const mem = results.filter((r) => r.mode === "memory" && r.ok);
  if (mem.length) {
    const n = results.find((r) => r.mode === "memory").workload;
    const kb = (x) => (Number.isFinite(x) ? (x / 1024).toFixed(0) : "-");
    const mm = (v, f) => {
      const xs = mem.filter((r) => r.variant === v).map(f).filter((x) => typeof x === "number" && Number.isFinite(x));
      return xs.length ? median(xs) : NaN;
    };
    console.log(`\nMemory, ${n}, a fresh Chromium per sample (KiB, median of ${mem.filter((r) => r.variant === "raw").length}; JS heap = performance.memory.usedJSHeapSize after gc(); the client still open):\n`);
    console.log(`| | JS heap before connect | JS heap after N | growth | JS heap after close | wasm memory before | wasm memory after N |\n|---|---|---|---|---|---|---|`);
    for (const v of ["raw", "resock"]) {
      console.log(`| ${v} | ${kb(mm(v, (r) => r.heap_before))} | ${kb(mm(v, (r) => r.heap_after))} | ${kb(mm(v, (r) => r.heap_after - r.heap_before))} | ${kb(mm(v, (r) => r.heap_closed))} | ${kb(mm(v, (r) => r.wasm_before ?? NaN))} | ${kb(mm(v, (r) => r.wasm_after ?? NaN))} |`);
    }
  }
  const rec = results.filter((r) => r.mode === "reconnect" && r.ok);
  if (rec.length) {
    const names = { raw: "raw WebSocket, new socket at once in onclose", resock: "resock, default backoff (first delay uniform 0-500 ms)", "resock-fast": "resock, reconnect.initialDelayMs: 10" };
    console.log(`\nReconnect after a cut (the server destroys the TCP socket 300 ms after the welcome; a fresh client per sample; ms, median, min-max):\n`);
    console.log(`| | close seen -> next open | close seen -> next welcome | server: cut -> next upgrade request | samples |\n|---|---|---|---|---|`);
    const stat = (xs) => {
      xs = xs.filter((x) => typeof x === "number");
      return xs.length ? `${f2(median(xs))} (${f2(Math.min(...xs))}-${f2(Math.max(...xs))})` : "-";
    };
    for (const v of ["raw", "resock", "resock-fast"]) {
      const rows = rec.filter((r) => r.variant === v);
      if (!rows.length) continue;
      console.log(`| ${names[v]} | ${stat(rows.map((r) => r.to_open_ms))} | ${stat(rows.map((r) => r.to_welcome_ms))} | ${stat(rows.map((r) => r.server_ms))} | ${rows.length} |`);
    }
  }
  const bundle = results.filter((r) => r.mode === "bundle");
  if (bundle.length) {
    const ours = bundle.find((r) => r.variant === "resock").gzip_bytes;
    console.log(`\nBundle bytes (esbuild --bundle --minify of a one-line entry exporting the client, then gzip -9; resock: .wasm + JS glue of pkg/, each gzip -9):\n`);
    console.log(`| | version | bytes | gzip -9 bytes | resock / this |\n|---|---|---|---|---|`);
    for (const r of bundle) console.log(`| ${r.variant} | ${r.version} | ${r.raw_bytes.toLocaleString("en")} | ${r.gzip_bytes.toLocaleString("en")} | ${f2(ours / r.gzip_bytes)} |`);
  }
  const bad = results.filter((r) => !r.ok);
  console.log(
    bad.length
      ? `\n[dispatch] ${bad.length} run(s) did NOT get every frame exactly once in order: ${JSON.stringify(bad)}`
      : `\nEvery run of every variant got each of the N frames exactly once, in order.`,
  );
  if (args.svg) writeFileSync(resolve(args.svg), chart(results, net, med));
}

// A grouped bar chart of messages/s from the network, per workload and variant (SVG, no deps).
function chart(results, net, med) {
  const W = 720, H = 300, left = 60, bottom = 40, top = 30;
  const colors = { raw: "#888", resock: "#1f6feb", "resock-base": "#9ecbff", partysocket: "#e36209" };
  const values = WORKLOADS.map((w) => net.map((v) => med("net", w.name, v, "msgs_per_s")));
  const max = Math.max(...values.flat().filter(Number.isFinite)) * 1.1;
  const groupW = (W - left - 10) / WORKLOADS.length;
  const barW = (groupW - 20) / net.length;
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`;
  svg += `<text x="${left}" y="16" font-size="13">Messages per second in the handler, loopback server, median (higher is better)</text>`;
  for (let t = 0; t <= 4; t++) {
    const v = (max / 4) * t;
    svg += `<line x1="${left}" x2="${W - 10}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${Math.round(v / 1000)}k</text>`;
  }
  WORKLOADS.forEach((w, i) => {
    const x0 = left + i * groupW + 10;
    net.forEach((v, j) => {
      const val = values[i][j];
      if (!Number.isFinite(val)) return;
      svg += `<rect x="${x0 + j * barW}" y="${y(val)}" width="${barW - 2}" height="${H - bottom - y(val)}" fill="${colors[v] ?? "#444"}"><title>${v}: ${Math.round(val)} msg/s</title></rect>`;
    });
    svg += `<text x="${x0 + (groupW - 20) / 2}" y="${H - bottom + 16}" text-anchor="middle">${w.name}</text>`;
  });
  net.forEach((v, j) => {
    svg += `<rect x="${left + j * 110}" y="${H - 14}" width="10" height="10" fill="${colors[v] ?? "#444"}"/><text x="${left + j * 110 + 14}" y="${H - 5}">${v === "resock-base" ? "resock (baseline)" : v}</text>`;
  });
  return svg + "</svg>\n";
}
