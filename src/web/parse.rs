//! Turns a WebSocket message event into what the core needs ([`Inbound`]) and what the app
//! sees, with `JSON.parse` and no serde_json. The core decides what the frame means
//! ([`crate::core::classify`]); this file reads values for it and applies the fix it names.
//!
//! The fast path (issue 11): the frame stays a JS string until the socket's message handler
//! (`src/web/fast.js`) parses it, once, and calls wasm (`socket::__resock_message`) with the
//! envelope's fields as three numbers; wasm takes the object with one call back
//! (`resock_current`). A common frame costs those two crossings and no allocation here. Other reads
//! (a welcome's payload, an error's) go through `fast.js` `resock_get`.

use js_sys::Object;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

use crate::core::classify::{classify, read_envelope, whole_number, Envelope, Fix, JsonView, BINARY, NOT_JSON};
use crate::core::Inbound;

#[wasm_bindgen(module = "/src/web/fast.js")]
extern "C" {
    fn resock_init(exports: &JsValue);
    pub(crate) fn resock_listeners() -> JsValue;
    pub(crate) fn resock_frame(text: &JsValue, slot: u32);
    pub(crate) fn resock_emit(sets: &JsValue, i: i32, value: &JsValue);
    #[wasm_bindgen(catch)]
    pub(crate) fn resock_on(sets: &JsValue, event: &JsValue, listener: &JsValue) -> Result<js_sys::Function, JsValue>;
    pub(crate) fn resock_current() -> JsValue;
    fn resock_get(obj: &JsValue, key: &str) -> JsValue;
    fn resock_set(obj: &JsValue, key: &str, value: &JsValue);
}

/// Gives the JS side the module's exports (once per client: cheap). The names of the types the
/// core decides are written in `fast.js` (`src/contract.rs` checks them against `Special::ALL`).
pub(crate) fn init() {
    resock_init(&wasm_bindgen::exports());
}

/// `obj[key]`, or `undefined` (`fast.js`): not an object (`send(msg)` with no options, say), or
/// a getter that throws. One call: `Reflect.get` from wasm was two (the object test first, as an
/// exception thrown and caught cost about 12 µs per `send()`, issue 11) and a caught call's glue.
pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    resock_get(obj, key)
}

/// `obj[key] = value`, quietly not done where JS refuses it (`fast.js`).
pub(crate) fn set(obj: &JsValue, key: &str, value: &JsValue) {
    resock_set(obj, key, value);
}

fn is_object(v: &JsValue) -> bool {
    v.is_object() && !js_sys::Array::is_array(v)
}

impl JsonView for JsValue {
    fn is_object(&self) -> bool {
        is_object(self)
    }
    fn str(&self, key: &str) -> Option<String> {
        get(self, key).as_string()
    }
    fn u64(&self, key: &str) -> Option<u64> {
        whole_number(get(self, key).as_f64()?)
    }
    fn bool(&self, key: &str) -> Option<bool> {
        get(self, key).as_bool()
    }
    fn object(&self, key: &str) -> Option<JsValue> {
        Some(get(self, key)).filter(is_object)
    }
    fn has(&self, key: &str) -> bool {
        let v = get(self, key);
        !(v.is_undefined() || v.is_null())
    }
}

/// A parsed frame with its envelope as `fast.js` answered it; nested objects read through
/// `resock_get` (their `envelope` is read field by field, as the trait's default).
struct Frame {
    msg: JsValue,
    /// `[what, seq, flags]` as `fast.js` writes them; `None` for a nested object.
    env: Option<[f64; 3]>,
}

impl JsonView for Frame {
    fn is_object(&self) -> bool {
        self.env.map_or_else(|| is_object(&self.msg), |[what, ..]| what >= 0.0)
    }
    fn str(&self, key: &str) -> Option<String> {
        self.msg.str(key)
    }
    fn u64(&self, key: &str) -> Option<u64> {
        self.msg.u64(key)
    }
    fn bool(&self, key: &str) -> Option<bool> {
        self.msg.bool(key)
    }
    fn object(&self, key: &str) -> Option<Frame> {
        self.msg.object(key).map(|msg| Frame { msg, env: None })
    }
    fn has(&self, key: &str) -> bool {
        self.msg.has(key)
    }
    fn envelope(&self) -> Envelope {
        let Some([what, seq, flags]) = self.env else { return read_envelope(self) };
        Envelope::from_numbers(what, seq, flags, || self.msg.str("id"))
    }
}

/// One frame, parsed by `fast.js`'s message handler, for the core. `Err` carries a message for a
/// `bad_frame` error.
pub(crate) fn parse(msg: JsValue, what: f64, seq: f64, flags: f64) -> Result<Inbound<JsValue>, &'static str> {
    if what == -3.0 {
        return Err(BINARY);
    }
    if what == -2.0 {
        return Err(NOT_JSON);
    }
    let frame = Frame { msg, env: Some([what, seq, flags]) };
    let c = classify(&frame)?;
    let msg = frame.msg;
    match c.fix {
        Fix::None => {}
        Fix::EmptyPayload => set(&msg, "payload", &Object::new()),
        Fix::PayloadFromData => set(&msg, "payload", &get(&msg, "data")),
        Fix::LegacyError { code, message } => {
            set(&msg, "type", &JsValue::from_str("error"));
            let p = Object::new();
            set(&p, "code", &JsValue::from_str(code));
            set(&p, "message", &JsValue::from_str(&message));
            set(&msg, "payload", &p);
        }
    }
    Ok(Inbound { kind: c.kind, id: c.id, seq: c.seq, msg, room: None })
}
