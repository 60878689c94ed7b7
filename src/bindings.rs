//! The JavaScript API (`SDK-API.md`): `new Client(options)`, `on`, `connect`, `send`, `join`,
//! `leave`, `request`, `state`, `close`. TypeScript declarations are written out below so that
//! messages form a discriminated union on `type` and `on` is typed per event.

use js_sys::{Function, Object, Promise, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::core::frames::{u64_to_string, with_id};
use crate::core::{Id, Input};
use crate::web::driver::{dispatch, js_settler, Driver, Shared, SharedExt};
use crate::web::options::{type_error, Options};
use crate::web::parse::{get, set};

#[wasm_bindgen(module = "/src/web/fast.js")]
extern "C" {
    fn resock_promise() -> JsValue;
}

#[wasm_bindgen(typescript_custom_section)]
const TS: &'static str = include_str!("bindings.d.ts");

/// A realtime connection. See the TypeScript declarations for the whole surface.
#[wasm_bindgen(skip_typescript)]
pub struct Client {
    shared: Shared,
}

#[wasm_bindgen]
impl Client {
    /// Checks the options (a bad one throws a `TypeError` naming it). Does not connect.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<Client, JsValue> {
        let opts = Options::from_js(&options)?;
        Ok(Client { shared: Driver::new(opts) })
    }

    /// Adds a listener; returns the function that removes it.
    pub fn on(&self, event: JsValue, listener: JsValue) -> Result<Function, JsValue> {
        // Checked and added by `fast.js` (`resock_on`): TypeErrors for a non-string event, an
        // unknown one, a listener that is not a function.
        let sets = self.shared.read(|d| d.js_listeners.clone()).unwrap_or_default();
        crate::web::parse::resock_on(&sets, &event, &listener)
    }

    /// Starts connecting (idempotent). A closed client stays closed: create a new one.
    pub fn connect(&self) {
        dispatch(&self.shared, Input::Connect);
    }

    /// Sends `{type, payload?}` now, or queues it while not open, with an id (the message's own
    /// string `id`, or a fresh one). Returns the id, or false (and emits an `error`) when the
    /// outbox is full or the client is closed. With `{ack: true}`, returns a promise instead:
    /// it resolves with the server's answer and rejects when the frame is refused for good.
    pub fn send(&self, message: JsValue, options: JsValue) -> Result<JsValue, JsValue> {
        let text = frame_text(&message)?;
        // The app's own id: its frame already carries it; the machine keys it (a number, or a
        // key it remembers the string by).
        let own = get(&message, "id");
        let own_id = own.as_string();
        let mine = own_id.is_some();
        let (id, text) = match own_id {
            Some(s) => (self.shared.update(|d| d.machine.app_id(s)).unwrap_or_default(), text),
            None => {
                let id = self.shared.update(|d| d.machine.next_id()).unwrap_or_default();
                (id, with_id(&text, id))
            }
        };
        if get(&options, "ack").is_truthy() {
            return Ok(self.promise_for(id, Input::Send { id, text, ack: true }).into());
        }
        if !self.feed_checked(Input::Send { id, text, ack: false }) {
            return Ok(JsValue::FALSE);
        }
        Ok(if mine { own } else { JsValue::from_str(&u64_to_string(id)) })
    }

    /// Joins a room: resolves with the `joined` message, rejects with an `Error` whose `code`
    /// says why. The room is joined again after every reconnect until `leave`.
    pub fn join(&self, room: String) -> Promise {
        self.promise(|id| Input::Join { room, id })
    }

    /// Leaves a room and stops re-joining it.
    pub fn leave(&self, room: String) -> Promise {
        self.promise(|id| Input::Leave { room, id })
    }

    /// Sends `{type, id, payload}` and resolves with the one reply carrying the same `id`.
    pub fn request(&self, kind: JsValue, payload: JsValue, options: JsValue) -> Result<Promise, JsValue> {
        if !kind.is_string() {
            return Err(type_error("resock: request(type, payload) needs a string type"));
        }
        let timeout_ms = match get(&options, "timeoutMs").as_f64() {
            Some(t) if t.is_finite() && t >= 0.0 => Some(t as u64),
            Some(_) => return Err(type_error("resock: option timeoutMs must be a number >= 0")),
            None => None,
        };
        let msg = Object::new();
        set(&msg, "type", &kind);
        if !payload.is_undefined() {
            set(&msg, "payload", &payload);
        }
        // Serialized before an id is taken: a payload JSON cannot hold (a cycle, a BigInt) is
        // the caller's TypeError, not a frame sent without it.
        let text = json_text(&msg)?;
        Ok(self.promise(move |id| Input::Request { id, text: with_id(&text, id), timeout_ms }))
    }

    /// `"idle" | "connecting" | "open" | "reconnecting" | "closed"`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> JsValue {
        // A JsValue, not a String: no copy through wasm memory (and less glue) for a constant.
        JsValue::from_str(self.shared.read(|d| d.machine.state().as_str()).unwrap_or("closed"))
    }

    /// Closes with 1000 and never reconnects; frees every listener and timer.
    pub fn close(&self) {
        dispatch(&self.shared, Input::Close);
    }

    /// `"solo"`, `"leader"` or `"follower"` (cross-tab sharing).
    #[wasm_bindgen(getter)]
    pub fn role(&self) -> JsValue {
        use crate::core::share::Role;
        let role = self.shared.read(|d| d.machine.role()).flatten();
        JsValue::from_str(match role {
            None => "solo",
            Some(Role::Leader) => "leader",
            Some(Role::Follower) => "follower",
        })
    }

    /// `"websocket"`, or `"sse"` while the SSE fallback carries the connection.
    #[wasm_bindgen(getter)]
    pub fn transport(&self) -> JsValue {
        JsValue::from_str(self.shared.read(|d| d.machine.transport().as_str()).unwrap_or("websocket"))
    }

    /// Messages waiting in the outbox.
    #[wasm_bindgen(getter, js_name = queued)]
    pub fn queued(&self) -> usize {
        self.shared.read(|d| d.machine.outbox_len()).unwrap_or(0)
    }
}

impl Client {
    fn promise(&self, input: impl FnOnce(Id) -> Input<JsValue>) -> Promise {
        let id = self.shared.update(|d| d.machine.next_id()).unwrap_or_default();
        self.promise_for(id, input(id))
    }

    fn promise_for(&self, id: Id, input: Input<JsValue>) -> Promise {
        // [promise, resolve, reject] from `fast.js`: no wasm closure for the executor.
        let made = resock_promise();
        let resolve: Function = get(&made, "1").unchecked_into();
        let reject: Function = get(&made, "2").unchecked_into();
        self.shared.update(|d| d.add_promise(id, js_settler(resolve, reject)));
        dispatch(&self.shared, input);
        get(&made, "0").unchecked_into()
    }

    /// Dispatches and tells whether the machine accepted the message.
    fn feed_checked(&self, input: Input<JsValue>) -> bool {
        dispatch(&self.shared, input);
        // The machine has seen the input even when its actions wait behind others.
        !self.shared.read(|d| d.machine.send_refused()).unwrap_or(true)
    }
}

/// `JSON.stringify` of a `{type: string, ...}` object; a `TypeError` for anything else.
fn frame_text(message: &JsValue) -> Result<String, JsValue> {
    // `get` answers `undefined` for anything but an object.
    if !get(message, "type").is_string() {
        return Err(type_error("resock: send(message) needs an object with a string `type`"));
    }
    json_text(message)
}

/// `JSON.stringify`, or a `TypeError` when it throws.
fn json_text(message: &JsValue) -> Result<String, JsValue> {
    JSON::stringify(message)
        .map(String::from)
        .map_err(|_| type_error("resock: the message cannot be serialized to JSON"))
}

/// Browser resources (sockets, timers, lifecycle listener sets) held by every client together.
/// After every client is closed it returns to 0: the browser leak tests read it. Test
/// instrumentation: only with the `test-hooks` feature, and then exported to JS as `liveHandles`.
#[cfg(feature = "test-hooks")]
#[wasm_bindgen(js_name = liveHandles, skip_typescript)]
pub fn live_handles_js() -> usize {
    crate::web::driver::live_handles()
}

// `isKnownMessage` (declared in bindings.d.ts) is `fast.js`'s `resock_is_known`, exported by the
// package's glue (scripts/finish-pkg.mjs): a list of names in JS, checked against
// `protocol::SERVER_TYPES` by src/contract.rs, instead of that table and a call into wasm.
