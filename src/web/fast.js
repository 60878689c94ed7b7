// The inbound fast path's JavaScript side (issue 11): a message handler that parses each frame
// once and hands wasm the object with its envelope's fields in one call, and one call per event
// that calls the listeners.
// Plain JS because every field read from Rust is a wasm->JS crossing with its key built from
// wasm memory; here the keys are literals. It reads and carries values: what they mean is
// decided in Rust (src/core/classify.rs).

// The type names the core decides (classify::Special::ALL, in order; src/contract.rs checks
// this line): `type` is answered as an index into this list, so the string never has to be
// copied into wasm memory.
const types = "ping pong welcome resumed error".split(" ");

// The wasm module's exports (the raw `__resock_message` and `__resock_drop`), given by every new
// client (src/web/parse.rs init).
let exports;
export function resock_init(wasmExports) {
  exports = wasmExports;
}

// The index of `t` in `types`, or -1. A loop of `===`, not a Map: a type string fresh from
// JSON.parse is not hashed yet, and hashing it cost 0.1 µs per frame; most comparisons stop at
// the length.
function typeIndex(t) {
  for (let i = 0; i < types.length; i++) if (types[i] === t) return i;
  return -1;
}

// One frame's text (a socket's, an SSE POST's answer, or one relayed by the leader tab), parsed
// once and handed to wasm with its envelope in one call of the raw export (no closure glue):
// __resock_message(slot, what, seq, flags, now), where
//   what: -3 not a string (binary), -2 not JSON, -1 JSON but not an object,
//         else 0 no string `type`, 1 another type, 2 + i the i-th special type
//   seq: the `seq` number, NaN when absent or not a number
//   flags: 1 payload present and not null, 2 `id` is a string
// Decoded by the core: classify::Envelope::from_numbers.
//   now: Date.now()
// The object itself (what >= 0) is fetched by wasm with resock_current() during that call: the
// package's wasm is built without reference types (scripts/build-pkg.sh), so a raw export can
// take numbers but not a JS object.
export function resock_frame(data, slot) {
  const now = Date.now();
  if (typeof data !== "string") return exports.__resock_message(slot, -3, NaN, 0, now);
  let m;
  try {
    m = JSON.parse(data);
  } catch {
    return exports.__resock_message(slot, -2, NaN, 0, now);
  }
  if (m === null || typeof m !== "object" || Array.isArray(m)) {
    return exports.__resock_message(slot, -1, NaN, 0, now);
  }
  resock_object(m, slot, now);
}

// A frame already parsed (an object), to wasm with its envelope as three numbers.
function resock_object(m, slot, now) {
  const t = m.type;
  const seq = m.seq;
  const p = m.payload;
  current = m;
  exports.__resock_message(
    slot,
    typeof t !== "string" ? 0 : typeIndex(t) + 2,
    typeof seq === "number" ? seq : NaN,
    (p !== undefined && p !== null ? 1 : 0) | (typeof m.id === "string" ? 2 : 0),
    now,
  );
  current = undefined;
}

// The frame being handed to wasm (see above).
let current;
export function resock_current() {
  return current;
}

// The event names, in the order of the core's EVENT_NAMES (src/contract.rs checks this line).
const events = "message state error resync retry".split(" ");

// A client's JS listeners (src/web/driver.rs): one Set per event name, in the order of `events`.
export function resock_listeners() {
  return events.map(() => new Set());
}

// A misuse of the API: a TypeError that says what to do.
function fail(text) {
  throw new TypeError("resock: " + text);
}

const isObject = (v) => v !== null && typeof v == "object";

// `client.on(event, listener)`: adds the listener and returns the function that removes it,
// `Set.prototype.delete` bound to its set and listener (plain JS: nothing to leak if it is never
// called, no eval for a strict CSP). A TypeError for anything but a known event and a function.
export function resock_on(sets, event, f) {
  if (typeof event != "string") fail("on(event, listener) needs a string event");
  if (typeof f != "function") fail("on(event, listener) needs a function");
  const set = sets[events.indexOf(event)];
  if (!set) fail(`unknown event "${event}"; events are ${events.join(", ")}`);
  set.add(f);
  return set.delete.bind(set, f);
}

// Calls every listener of the i-th set with `value`, as the set was when the event began (one
// listed during the call waits for the next event), without building an array in the common case
// of one listener. One listener's exception does not stop the others. i < 0: the client is
// closed, every set is emptied.
export function resock_emit(sets, i, value) {
  if (i < 0) return sets.forEach((s) => s.clear());
  const set = sets[i];
  const n = set.size;
  if (n === 0) return;
  if (n === 1) {
    for (const f of set) {
      call(f, value);
      break;
    }
    return;
  }
  for (const f of Array.from(set)) call(f, value);
}

function call(f, value) {
  try {
    f(value);
  } catch (e) {
    console.error("resock: a listener threw", e);
  }
}

// The SSE fallback's stream (issue 12): the server's SSE session read with fetch (an
// EventSource cannot see events of every name, nor be kept from reconnecting by itself), each
// event turned into the frame a socket would have carried ({type: event, payload: data, seq: id})
// and handed to wasm like a socket's (relayed first in a leader tab, as a socket's frames are).
// onEvent() when the response starts; onEvent([code, reason, http]) once: the server's `close`
// event, 1006 when the stream ends or fails otherwise, or (http) an HTTP answer [post, status].
// What it all means is decided in Rust (src/core/transport.rs).
export function resock_sse_open(url, sendUrl, slot, onEvent) {
  let ready;
  // `sendUrl` is relative to the stream's URL ("send" beside it, by default).
  const h = { ctl: new AbortController(), session: null, q: Promise.resolve(), sendUrl: new URL(sendUrl, url).href, ended: false, resockRelay: null };
  h.ready = new Promise((r) => (ready = r));
  // A POST's answer: a frame's text, parsed once.
  h.frame = (text) => {
    if (h.ended) return;
    if (h.resockRelay) h.resockRelay(text);
    resock_frame(text, slot);
  };
  h.end = (code, reason, http) => {
    if (h.ended) return;
    h.ended = true;
    h.ctl.abort();
    onEvent([code, reason, http]);
  };
  // An HTTP answer that ends the session (status 0: none, a network error): the core decides
  // what close it stands for (core/transport.rs sse_refusal).
  h.http = (post, status) => h.end(post, status, true);
  const event = (type, data, id) => {
    let payload;
    try {
      payload = JSON.parse(data);
    } catch {
      payload = data;
    }
    if (type === "close") return h.end(payload && payload.code ? payload.code : 1006, (payload && payload.reason) || "");
    if (type === "welcome" && payload && typeof payload.session === "string") {
      h.session = payload.session;
      ready();
    }
    const m = { type, payload };
    // A message's `id:` is its seq (a welcome's or resumed's is the seq it covers: for an
    // EventSource's own reconnection, which this reader does not do).
    if (id && type !== "welcome" && type !== "resumed") m.seq = Number(id);
    if (h.ended) return;
    // The welcome (with the session's secret) and the stream's own `resumed` stay in this tab;
    // only what is relayed is turned back into text. The object goes to wasm as it is.
    if (h.resockRelay && type !== "welcome" && type !== "resumed") h.resockRelay(JSON.stringify(m));
    resock_object(m, slot, Date.now());
  };
  fetch(url, { signal: h.ctl.signal, headers: { accept: "text/event-stream" }, cache: "no-store" })
    .then(async (res) => {
      if (h.ended) return;
      if (!res.ok) return h.http(false, res.status);
      if (!res.body) return h.end(1006, "");
      onEvent();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      let type = "message";
      let data = [];
      let id = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done || h.ended) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n")) >= 0 && !h.ended) {
          let line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.endsWith("\r")) line = line.slice(0, -1);
          if (line === "") {
            if (data.length) event(type, data.join("\n"), id);
            type = "message";
            data = [];
            id = "";
          } else if (line[0] !== ":") {
            const c = line.indexOf(":");
            const field = c < 0 ? line : line.slice(0, c);
            let v = c < 0 ? "" : line.slice(c + 1);
            if (v[0] === " ") v = v.slice(1);
            if (field === "event") type = v;
            else if (field === "data") data.push(v);
            else if (field === "id") id = v;
          }
        }
      }
      h.end(1006, "");
    })
    .catch(() => h.http(false, 0));
  return h;
}

// A frame over HTTP POST, in order after the ones before it, once the session is known; the
// answer (ack, joined, error...) is handed to wasm like a frame of the stream. Any other answer,
// or none, ends the stream; the core decides as what (core/transport.rs sse_refusal).
export function resock_sse_send(h, text) {
  h.q = h.q
    .then(() => h.ready)
    .then(() => {
      if (h.ended) return undefined;
      const u = new URL(h.sendUrl);
      u.searchParams.set("session", h.session);
      return fetch(u, { method: "POST", body: text, headers: { "content-type": "text/plain" } }).then(async (r) => {
        if (r.status === 200) h.frame(await r.text());
        else if (r.status !== 204) h.http(true, r.status);
      });
    })
    // Not sent: the stream is over as a socket's would be; the machine sends it again.
    .catch(() => h.http(true, 0));
}

export function resock_sse_close(h) {
  h.ended = true;
  h.ctl.abort();
}

// One attempt's credentials and the socket URL with them (src/web/credentials.rs): the token (a
// provider function is called, and awaited when it returns a promise); then, with a ticket URL, a
// fresh ticket (a POST with the token as a bearer, answered with JSON {ticket}) in the URL's
// query as `ticket`, or else the token, if any, as `token`. Calls `done` once, always after a
// microtask: with the URL (a string), or the status (a number: the ticket URL answered with one
// that is not a 2xx), or {message} (what else went wrong).
export async function resock_credentials(url, token, ticketUrl, done) {
  const withQuery = (key, value) => url + (url.includes("?") ? "&" : "?") + key + "=" + encodeURIComponent(value);
  let why = "the token provider threw: ";
  let got;
  try {
    got = await (async () => {
      if (typeof token == "function") {
        token = token();
        if (token instanceof Promise) {
          why = "the token provider rejected: ";
          token = await token;
        }
        if (token != null && typeof token != "string") return { message: "the token provider must return a string" };
      }
      if (ticketUrl === undefined) return token == null ? url : withQuery("token", token);
      why = "the ticket request failed: ";
      const init = { method: "POST" };
      if (token != null) init.headers = { authorization: "Bearer " + token };
      const r = await fetch(ticketUrl, init);
      if (!r.ok) return r.status;
      why = "";
      const ticket = (await r.json())?.ticket;
      return typeof ticket == "string"
        ? withQuery("ticket", ticket)
        : { message: "the ticket URL's answer has no string `ticket`" };
    })();
  } catch (e) {
    got = { message: why ? why + ((typeof e == "string" ? e : e?.message) ?? "unknown error") : "the ticket URL did not answer JSON" };
  }
  try {
    done(got);
  } catch {} // freed: the attempt is over (src/web/credentials.rs)
}

// Calls wasm's `__resock_drop` in a microtask: browser resources are dropped there, after the
// handler that let them go has returned (src/web/driver.rs `defer_drop`).
export function resock_later() {
  queueMicrotask(exports.__resock_drop);
}

// A new promise with its resolve and reject functions: [promise, resolve, reject] (a promise of
// `send({ack})`, `join`, `leave` or `request`; src/bindings.rs). Made here so that no wasm
// closure is needed for the executor.
export function resock_promise() {
  let r;
  const p = new Promise((resolve, reject) => (r = [, resolve, reject]));
  r[0] = p;
  return r;
}

// The page's online, offline and visibilitychange listeners (src/web/lifecycle.rs): `report` gets
// 0 online, 1 offline, 2 the page became visible. Returns the function that removes them. None
// without a page (a worker).
export function resock_lifecycle(report) {
  if (typeof window == "undefined" || typeof document == "undefined") return () => {};
  const on = [
    [window, "online", () => report(0)],
    [window, "offline", () => report(1)],
    [document, "visibilitychange", () => document.visibilityState == "visible" && report(2)],
  ];
  for (const [target, name, f] of on) target.addEventListener(name, f);
  return () => {
    for (const [target, name, f] of on) target.removeEventListener(name, f);
  };
}

// An error event's value {code, message, closeCode?, id?}, or (thrown) a JS Error with the same
// fields for a promise's rejection (web/driver.rs error_value).
export function resock_error(thrown, code, message, closeCode, id) {
  const e = thrown ? new Error(message) : {};
  e.code = code;
  if (!thrown) e.message = message;
  if (closeCode !== undefined) e.closeCode = closeCode;
  if (id !== undefined) e.id = id;
  return e;
}

// `new Client(options)`'s options, read and type-checked here (src/web/options.rs has the rest:
// the URLs' checks and the limits, decided by the core). A wrong type is a TypeError naming the
// option; else [url, ticketUrl, token, share, sseUrl, sseSendUrl, ...numbers], the numbers in the
// order of NUMBERS, -1 when not given, -2 for `heartbeat: false` and `sendRate: null`.
// `share` and `sse`: whether this build has them (else the options are refused by name).
const NUMBERS =
  "reconnect.initialDelayMs reconnect.maxDelayMs reconnect.maxAttempts heartbeatGraceMs requestTimeoutMs stableAfterMs connectTimeoutMs sendRate.max sendRate.windowMs outbox.maxMessages outbox.maxBytes outbox.ttlMs sseProbeMs".split(" ");
export function resock_options(o, share, sse) {
  const bad = (path, what) => fail("option " + path + " must be " + what);
  if (!isObject(o)) fail("new Client needs an options object");
  const str = (k, v = o[k]) => (v == null ? undefined : typeof v == "string" ? v : bad(k, "a string"));
  const url = str("url") ?? bad("url", "set");
  const ticketUrl = str("ticketUrl");
  const token = o.token ?? undefined;
  if (token !== undefined && typeof token != "string" && typeof token != "function") bad("token", "a string or function");
  if (o.reconnect !== undefined && !isObject(o.reconnect)) bad("reconnect", "an object");
  if (o.sendRate != null && !isObject(o.sendRate)) bad("sendRate", "{max, windowMs} or null");
  const nums = NUMBERS.slice(0, sse ? 13 : 12).map((path, v) => {
    const [k, field] = path.split(".");
    v = field ? Object(o[k])[field] : o[k];
    return v == null ? -1 : typeof v == "number" && v >= 0 && v <= 9007199254740991 ? v : bad(path, "a number >= 0");
  });
  if (o.heartbeat === false) nums[3] = -2;
  if (o.sendRate === null) nums[7] = -2;
  if (!share && o.share !== undefined) fail('option share is in the full build: import from "resock/full"');
  if (!sse && o.sseUrl !== undefined) fail('option sseUrl is in the full build: import from "resock/full"');
  const key = share && str("share");
  if (key === "") bad("share", "the user's id, not empty");
  const sseUrl = sse && str("sseUrl");
  return [url, ticketUrl, token, key, sseUrl, sseUrl && (str("sseSendUrl") ?? "send"), ...nums];
}

// `o[k]` for wasm (src/web/parse.rs get): undefined when `o` is not an object or the read throws.
export function resock_get(o, k) {
  try {
    return isObject(o) ? o[k] : undefined;
  } catch {}
}

// `o[k] = v` for wasm (src/web/parse.rs set); nothing where JS refuses it.
export function resock_set(o, k, v) {
  try {
    o[k] = v;
  } catch {}
}

// A WebSocket for src/web/socket.rs: frames as ArrayBuffers when binary, each message parsed once
// and handed to wasm (resock_frame; first relayed to the other tabs by a leader tab's socket,
// src/web/share.js), `onEvent()` when open and `onEvent(closeEvent)` when closed (an error event
// is always followed by a close event, which says what happened). Throws what `new WebSocket`
// throws (a malformed URL).
export function resock_socket(url, onEvent, slot) {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => onEvent();
  ws.onmessage = (event) => {
    const data = event.data;
    if (ws.resockRelay) ws.resockRelay(data);
    resock_frame(data, slot);
  };
  ws.onclose = onEvent;
  return ws;
}

// Closes a socket with a code and reason (else plainly, if the browser refuses them). `drop`: its
// handlers go first, and only a socket still connecting or open is closed.
export function resock_socket_close(ws, code, reason, drop) {
  if (drop) {
    ws.onopen = ws.onmessage = ws.onclose = null;
    if (ws.readyState > 1) return;
  }
  try {
    ws.close(code, reason);
  } catch {
    ws.close();
  }
}

// `isKnownMessage(message)` of the package (exported by its glue: scripts/finish-pkg.mjs): true
// for a message of a type this version knows, the room and user-stream types of
// protocol::SERVER_TYPES (src/contract.rs checks this line).
const appTypes = "room_message presence new_notification notification_read all_read task_update".split(" ");
export function resock_is_known(message) {
  return appTypes.includes(resock_get(message, "type"));
}
