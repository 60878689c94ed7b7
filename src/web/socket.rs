//! One browser WebSocket, opened and closed by `fast.js` (`resock_socket`), and its handler. The
//! handler is a field, removed from the socket and freed when this is dropped, so a closed
//! connection leaves nothing behind.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use web_sys::WebSocket;

use super::parse::get;

use crate::protocol::CloseCode;

/// The one closure type of the shell's browser callbacks (sockets, timers, tabs, SSE streams,
/// credentials): each distinct type adds glue to the package.
pub(crate) type Handler = Closure<dyn FnMut(JsValue)>;

/// Where a socket's events go.
pub type Report = Rc<dyn Fn(SocketEvent)>;

thread_local! {
    /// The `report` of each live socket, by slot, for [`__resock_message`]. A frame comes in
    /// through that plain export instead of a `Closure`: wasm-bindgen's closure glue costs a
    /// rest-arguments array and a try/finally per call, a fifth of the SDK's own cost per
    /// message (issue 11). Slots are reused; a socket empties its slot when dropped.
    static SLOTS: RefCell<Vec<Option<Report>>> = const { RefCell::new(Vec::new()) };
}

/// One frame from `fast.js`'s message handler: its envelope as three numbers (see
/// `web/parse.rs`) and `Date.now()`; the parsed object, when there is one (`what >= 0`), is
/// `resock_current()` during this call. Not API: called only by the SDK's own JS.
#[doc(hidden)]
#[wasm_bindgen(skip_typescript)]
pub fn __resock_message(slot: u32, what: f64, seq: f64, flags: f64, now: f64) {
    let msg = if what >= 0.0 { super::parse::resock_current() } else { JsValue::UNDEFINED };
    let report =
        SLOTS.try_with(|s| s.try_borrow().ok().and_then(|s| s.get(slot as usize).cloned().flatten())).ok().flatten();
    if let Some(report) = report {
        report(SocketEvent::Message { msg, what, seq, flags, now: now as u64 });
    }
}

/// What a socket reports.
pub enum SocketEvent {
    Open,
    /// A message, parsed once by `fast.js` (the text stays a JS string until then) with its
    /// envelope as three numbers; `web/parse.rs` reads them (a binary frame is a bad frame there).
    Message {
        msg: JsValue,
        what: f64,
        seq: f64,
        flags: f64,
        /// `Date.now()` when it came (read in JS: one crossing less).
        now: u64,
    },
    Close {
        code: u16,
        reason: String,
    },
}

pub struct Socket {
    ws: WebSocket,
    /// Its open and close events (`fast.js` `resock_socket`).
    _on_event: Handler,
    _slot: Slot,
}

/// A place in the table [`__resock_message`] reads: a socket's, or a follower tab's relay
/// (`web/share.rs`), whose frames come the same way. Emptied when dropped.
pub struct Slot(usize);

impl Slot {
    pub fn new(report: Report) -> Result<Slot, JsValue> {
        let slot = SLOTS.try_with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            let free = s.iter().position(Option::is_none);
            let slot = free.unwrap_or(s.len());
            match s.get_mut(slot) {
                Some(entry) => *entry = Some(report),
                None => s.push(Some(report)),
            }
            Some(slot)
        });
        slot.ok().flatten().map(Slot).ok_or_else(|| JsValue::from_str("resock: socket table busy"))
    }

    pub fn index(&self) -> u32 {
        self.0 as u32
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = SLOTS.try_with(|s| {
            if let Some(entry) = s.try_borrow_mut().ok().as_deref_mut().and_then(|s| s.get_mut(self.0)) {
                *entry = None;
            }
        });
    }
}

#[wasm_bindgen(module = "/src/web/fast.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    fn resock_socket(url: &str, on_event: &Handler, slot: u32) -> Result<WebSocket, JsValue>;
    fn resock_socket_close(ws: &WebSocket, code: u16, reason: &str, drop: bool);
}

impl Socket {
    /// Opens `url`; every event goes to `report`.
    pub fn open(url: &str, report: impl Fn(SocketEvent) + 'static) -> Result<Socket, JsValue> {
        let report: Report = Rc::new(report);
        let slot = Slot::new(report.clone())?;
        // `undefined` for open, the close event for close (`fast.js`); an error event is always
        // followed by a close event, which carries what we need.
        let on_event = Handler::new(move |e: JsValue| {
            report(if e.is_undefined() {
                SocketEvent::Open
            } else {
                SocketEvent::Close {
                    code: get(&e, "code").as_f64().unwrap_or(0.0) as u16,
                    reason: get(&e, "reason").as_string().unwrap_or_default(),
                }
            })
        });
        let ws = resock_socket(url, &on_event, slot.index())?;
        Ok(Socket { ws, _on_event: on_event, _slot: slot })
    }

    pub fn ws(&self) -> &WebSocket {
        &self.ws
    }

    pub fn send(&self, text: &str) -> Result<(), JsValue> {
        self.ws.send_with_str(text)
    }

    /// Closes with a code and reason; its close event is not awaited (the handlers go on drop).
    pub fn close(&self, code: u16, reason: &str) {
        resock_socket_close(&self.ws, code, reason, false);
    }
}

impl Drop for Socket {
    /// Removes the handlers, and closes a socket still connecting or open.
    fn drop(&mut self) {
        resock_socket_close(&self.ws, CloseCode::Normal.as_u16(), "Client closed", true);
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Handler, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// One `setTimeout`, cleared when dropped. Its callback is a [`Handler`], the sockets' closure
/// type: one closure type less in the package than gloo-timers' `Timeout` (docs/SIZE.md).
pub struct Timer {
    id: JsValue,
    _f: Handler,
}

impl Timer {
    pub fn new(ms: i32, f: impl FnMut() + 'static) -> Timer {
        let mut f = f;
        let f = Handler::new(move |_| f());
        Timer { id: set_timeout(&f, ms), _f: f }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        clear_timeout(&self.id);
    }
}
