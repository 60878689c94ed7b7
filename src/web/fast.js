// The inbound fast path's JavaScript side (issue 11): a message handler that parses each frame
// once and hands wasm the object with its envelope's fields in one call, and one call per event
// that calls the listeners.
// Plain JS because every field read from Rust is a wasm->JS crossing with its key built from
// wasm memory; here the keys are literals. It reads and carries values: what they mean is
// decided in Rust (src/core/classify.rs).

let types = [];

// The type names the core decides (classify::Special::ALL, in order): `type` is answered as
// an index into this list, so the string never has to be copied into wasm memory.
export function resock_types(names) {
  types = names;
}

// The index of `t` in `types`, or -1. A loop of `===`, not a Map: a type string fresh from
// JSON.parse is not hashed yet, and hashing it cost 0.1 µs per frame; most comparisons stop at
// the length.
function typeIndex(t) {
  for (let i = 0; i < types.length; i++) if (types[i] === t) return i;
  return -1;
}

// Sets `ws.onmessage` to parse each frame once and hand it to wasm with its envelope in one
// call of the raw export (no closure glue): __resock_message(slot, msg, what, seq, flags, now), where
//   what: -3 not a string (binary), -2 not JSON, -1 JSON but not an object,
//         else 0 no string `type`, 1 another type, 2 + i the i-th special type
//   seq: the `seq` number, NaN when absent or not a number
//   flags: 1 payload present and not null, 2 `id` is a string
// (msg is undefined unless what >= 0). Decoded by the core: classify::Envelope::from_numbers.
//   now: Date.now()
export function resock_onmessage(ws, exports, slot) {
  const handler = (m, what, seq, flags) => exports.__resock_message(slot, m, what, seq, flags, Date.now());
  ws.onmessage = (event) => {
    const data = event.data;
    if (typeof data !== "string") return handler(undefined, -3, NaN, 0);
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return handler(undefined, -2, NaN, 0);
    }
    if (m === null || typeof m !== "object" || Array.isArray(m)) return handler(undefined, -1, NaN, 0);
    const t = m.type;
    const seq = m.seq;
    const p = m.payload;
    handler(
      m,
      typeof t !== "string" ? 0 : typeIndex(t) + 2,
      typeof seq === "number" ? seq : NaN,
      (p !== undefined && p !== null ? 1 : 0) | (typeof m.id === "string" ? 2 : 0),
    );
  };
}

// Calls every listener of `set` with `value`, as the set was when the event began (one listed
// during the call waits for the next event), without building an array in the common case of
// one listener. One listener's exception does not stop the others.
export function resock_emit(set, value) {
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

// One attempt's credentials and the socket URL with them (src/web/credentials.rs): the token (a
// provider function is called, and awaited when it returns a promise); then, with a ticket URL, a
// fresh ticket (a POST with the token as a bearer, answered with JSON {ticket}) in the URL's
// query as `ticket`, or else the token, if any, as `token`. Calls `done` once, always after a
// microtask: with {url}, or {status} (the ticket URL answered with a status that is not a 2xx),
// or {message} (what else went wrong).
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
      if (ticketUrl === undefined) return { url: token == null ? url : withQuery("token", token) };
      why = "the ticket request failed: ";
      const init = { method: "POST" };
      if (token != null) init.headers = { authorization: "Bearer " + token };
      const r = await fetch(ticketUrl, init);
      if (!r.ok) return { status: r.status };
      why = "";
      const ticket = (await r.json())?.ticket;
      return typeof ticket == "string"
        ? { url: withQuery("ticket", ticket) }
        : { message: "the ticket URL's answer has no string `ticket`" };
    })();
  } catch (e) {
    got = { message: why ? why + ((typeof e == "string" ? e : e?.message) ?? "unknown error") : "the ticket URL did not answer JSON" };
  }
  done(got);
}

// Calls wasm's `__resock_drop` in a microtask: browser resources are dropped there, after the
// handler that let them go has returned (src/web/driver.rs `defer_drop`).
export function resock_later(exports) {
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
