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
  ws.onmessage = (event) => {
    const data = event.data;
    if (ws.resockRelay) ws.resockRelay(data); // a leader tab's socket (src/web/share.js)
    resock_frame(data, exports, slot);
  };
}

// One frame's text (a socket's, or one relayed by the leader tab) to wasm, as above.
export function resock_frame(data, exports, slot) {
  const now = Date.now();
  if (typeof data !== "string") return exports.__resock_message(slot, undefined, -3, NaN, 0, now);
  let m;
  try {
    m = JSON.parse(data);
  } catch {
    return exports.__resock_message(slot, undefined, -2, NaN, 0, now);
  }
  if (m === null || typeof m !== "object" || Array.isArray(m)) {
    return exports.__resock_message(slot, undefined, -1, NaN, 0, now);
  }
  const t = m.type;
  const seq = m.seq;
  const p = m.payload;
  exports.__resock_message(
    slot,
    m,
    typeof t !== "string" ? 0 : typeIndex(t) + 2,
    typeof seq === "number" ? seq : NaN,
    (p !== undefined && p !== null ? 1 : 0) | (typeof m.id === "string" ? 2 : 0),
    now,
  );
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
