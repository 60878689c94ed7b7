// The dispatch benchmark's page (issue 11), run in headless Chromium with no DevTools attached.
// For each workload, round by round with the variants interleaved (their order rotates):
//   net: the loopback server sends a welcome then N frames as fast as it can; msgs/s from the
//        first workload frame to the N-th, in the variant's own message handler
//   in-page: the same N frames handed to the handlers as `{data}` objects, no network: µs/msg
// Every variant checks that it got each frame exactly once, in order. Results go to POST /result.
import init, { Client } from "/pkg/resock.js";
import { WebSocket as PartySocketWS } from "/partysocket.js";
import { WORKLOADS, frame, position, welcome } from "/workloads.mjs";

const q = new URLSearchParams(location.search);
const N = Number(q.get("n") ?? 100000);
const ROUNDS = Number(q.get("rounds") ?? 5);
const NET = (q.get("net") ?? "raw,resock,partysocket").split(",").filter((v) => v && v !== "none");
const INPAGE = (q.get("inpage") ?? "raw,resock").split(",").filter((v) => v && v !== "none");
const SEND_N = Number(q.get("send_n") ?? 10000);
const SEND = (q.get("send") ?? "raw,resock").split(",").filter((v) => v && v !== "none");
const RUN_TIMEOUT_MS = 120000;
// With a baseline package (scripts/bench.sh --dispatch --baseline REV), "resock-base" is that
// build, measured in the same page beside the current one.
const BASE = q.get("base");
let BaseClient = null;

const log = (line) => fetch("/log", { method: "POST", body: line });

// Counts workload frames, checking exactly-once and order; `done()` after the N-th.
function counter(done) {
  const c = { expect: 1, bad: 0, t0: 0, t1: 0 };
  c.on = (m) => {
    const p = position(m);
    if (p < 0) return;
    if (c.expect === 1) c.t0 = performance.now();
    if (p !== c.expect) c.bad++;
    c.expect = p + 1;
    if (p === N) {
      c.t1 = performance.now();
      done();
    }
  };
  return c;
}

function bounded(start) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out")), RUN_TIMEOUT_MS);
    start(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      reject,
    );
  });
}

const NET_VARIANTS = {
  // The browser's own: the baseline.
  raw(url, c) {
    const ws = new WebSocket(url);
    ws.onmessage = (e) => c.on(JSON.parse(e.data));
    return () => ws.close();
  },
  resock(url, c) {
    const client = new Client({ url });
    client.on("message", c.on);
    client.connect();
    return () => client.close();
  },
  "resock-base"(url, c) {
    const client = new BaseClient({ url });
    client.on("message", c.on);
    client.connect();
    return () => client.close();
  },
  partysocket(url, c) {
    const ws = new PartySocketWS(url, [], { maxRetries: 0 });
    ws.onmessage = (e) => c.on(JSON.parse(e.data));
    return () => ws.close();
  },
};

async function net(variant, w) {
  const url = `ws://${location.host}/blast?kind=${w.kind}&bytes=${w.bytes}&n=${N}`;
  let stop = () => {};
  const c = await bounded((resolve) => {
    const c = counter(() => resolve(c));
    stop = NET_VARIANTS[variant](url, c);
  }).finally(() => stop());
  return { msgs_per_s: ((N - 1) * 1000) / (c.t1 - c.t0), bad: c.bad, ok: c.bad === 0 };
}

// Send throughput (issue 11): SEND_N `room_message` frames (about 100 B) sent in one loop, to a
// loopback sink that answers each frame's id with an `ack` (as the fixture does) and says
// `sink_done` after the last. Pacing off and an outbox that holds them all, for resock. Reports
// sends/s until `sink_done` arrived and the cost of the send loop itself.
function sendMessage(i) {
  return { type: "room_message", payload: { room: "general", data: { i, t: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" } } };
}

const SEND_VARIANTS = {
  raw(url, done) {
    const ws = new WebSocket(url);
    let id = 0;
    ws.onmessage = (e) => JSON.parse(e.data).type === "sink_done" && done();
    return {
      opened: new Promise((r) => (ws.onopen = r)),
      send: (m) => ws.send(JSON.stringify({ ...m, id: String(++id) })),
      stop: () => ws.close(),
    };
  },
  resock: (url, done) => resockSender(Client, url, done),
  "resock-base": (url, done) => resockSender(BaseClient, url, done),
};

function resockSender(Class, url, done) {
  const client = new Class({ url, sendRate: null, outbox: { maxMessages: SEND_N + 10, maxBytes: 1e9 } });
  client.on("message", (m) => m.type === "sink_done" && done());
  const opened = new Promise((r) => client.on("state", (s) => s === "open" && r()));
  client.connect();
  return { opened, send: (m) => client.send(m), stop: () => client.close() };
}

async function sendRun(variant) {
  const url = `ws://${location.host}/sink?n=${SEND_N}`;
  let stop = () => {};
  let t0 = 0;
  let tLoop = 0;
  let refused = 0;
  const tDone = await bounded(async (resolve) => {
    const s = SEND_VARIANTS[variant](url, () => resolve(performance.now()));
    stop = s.stop;
    await s.opened;
    t0 = performance.now();
    for (let i = 1; i <= SEND_N; i++) if (s.send(sendMessage(i)) === false) refused++;
    tLoop = performance.now();
  }).finally(() => stop());
  return {
    sends_per_s: (SEND_N * 1000) / (tDone - t0),
    us_per_send_call: ((tLoop - t0) * 1000) / SEND_N,
    bad: refused,
    ok: refused === 0,
  };
}

const frames = new Map();
function framesOf(w) {
  const key = w.name;
  if (!frames.has(key)) frames.set(key, Array.from({ length: N }, (_, i) => frame(w.kind, w.bytes, i + 1)));
  return frames.get(key);
}

// A stand-in for the browser's WebSocket: resock opens it like the real one and the benchmark
// calls its `onmessage` with each frame.
class FakeSocket {
  static last = null;
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    FakeSocket.last = this;
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.({});
    }, 0);
  }
  send() {}
  close() {
    this.readyState = 3;
  }
}

async function inpage(variant, w) {
  const list = framesOf(w);
  let c;
  let feed;
  let stop = () => {};
  if (variant === "raw") {
    c = counter(() => {});
    const onmessage = (e) => c.on(JSON.parse(e.data));
    feed = (data) => onmessage({ data });
  } else {
    c = counter(() => {});
    const real = globalThis.WebSocket;
    globalThis.WebSocket = FakeSocket;
    const client = new (variant === "resock-base" ? BaseClient : Client)({ url: "ws://in-page.invalid/" });
    try {
      await bounded((resolve) => {
        client.on("state", (s) => s === "open" && resolve());
        client.connect();
      });
    } finally {
      globalThis.WebSocket = real;
    }
    client.on("message", c.on);
    const sock = FakeSocket.last;
    feed = (data) => sock.onmessage({ data });
    stop = () => client.close();
  }
  feed(welcome());
  const t0 = performance.now();
  for (let i = 0; i < list.length; i++) feed(list[i]);
  const t1 = performance.now();
  stop();
  return { us_per_msg: ((t1 - t0) * 1000) / N, bad: c.bad + (c.expect === N + 1 ? 0 : 1), ok: c.bad === 0 && c.expect === N + 1 };
}

// Between runs: a full GC (Chromium runs with --js-flags=--expose-gc) and a pause, so that no
// run pays for the garbage or the closing socket of the one before.
async function settle() {
  globalThis.gc?.();
  await new Promise((r) => setTimeout(r, 100));
}

function rotate(list, k) {
  return list.map((_, i) => list[(i + k) % list.length]);
}

async function main() {
  await init();
  if (BASE) {
    const base = await import(`${BASE}/resock.js`);
    await base.default();
    BaseClient = base.Client;
    if (NET.length) NET.push("resock-base");
    if (INPAGE.length) INPAGE.push("resock-base");
    if (SEND.length) SEND.push("resock-base");
  }
  // Warm-up, not recorded: every handler and the wasm module reach their optimized tiers.
  for (const w of WORKLOADS) for (const variant of INPAGE) await inpage(variant, w);
  const results = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const w of WORKLOADS) {
      for (const variant of rotate(NET, round)) {
        await settle();
        const r = { mode: "net", round, workload: w.name, variant, ...(await net(variant, w)) };
        results.push(r);
        await log(JSON.stringify(r));
      }
      for (const variant of rotate(INPAGE, round)) {
        await settle();
        const r = { mode: "inpage", round, workload: w.name, variant, ...(await inpage(variant, w)) };
        results.push(r);
        await log(JSON.stringify(r));
      }
    }
  }
  for (let round = 1; round <= ROUNDS && SEND_N > 0; round++) {
    for (const variant of rotate(SEND, round)) {
      await settle();
      const r = { mode: "send", round, workload: "send room_message ~130 B", variant, ...(await sendRun(variant)) };
      results.push(r);
      await log(JSON.stringify(r));
    }
  }
  await fetch("/result", { method: "POST", body: JSON.stringify({ userAgent: navigator.userAgent, n: N, rounds: ROUNDS, results }) });
}

main().catch((e) => fetch("/result", { method: "POST", body: JSON.stringify({ error: String(e && e.stack ? e.stack : e) }) }));
