//! The SSE fallback's stream and POSTs (issue 12; `fast.js` reads the stream): a stand-in for
//! the socket whose events come through the same slot of the socket table, as the frames a
//! socket would have carried. It carries values: when to use it is decided in
//! `core/transport.rs`. Aborted (the fetch and its reader) when dropped.

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

use super::socket::{Handler, Report, Slot, SocketEvent};

#[wasm_bindgen(module = "/src/web/fast.js")]
extern "C" {
    fn resock_sse_open(url: &str, send_url: &str, slot: u32, on_event: &js_sys::Function) -> JsValue;
    fn resock_sse_send(h: &JsValue, text: &str);
    fn resock_sse_close(h: &JsValue);
}

pub struct SseStream {
    handle: JsValue,
    _slot: Slot,
    _on_event: Handler,
}

impl SseStream {
    /// Opens the stream at `url` (credentials, epoch and `last_event_id` in it); frames are
    /// POSTed to `send_url`. Every event goes to `report`.
    pub fn open(url: &str, send_url: &str, report: Report) -> Result<SseStream, JsValue> {
        let slot = Slot::new(report.clone())?;
        // Nothing when the stream opens, like a socket's handler; then once `[code, reason]`
        // (the server's `close` event, or the stream cut), or `[post, status, true]`: an HTTP
        // answer, whose meaning the core decides.
        let on_event = Handler::new(move |v: JsValue| {
            if v.is_undefined() {
                return report(SocketEvent::Open);
            }
            let a: &js_sys::Array = v.unchecked_ref();
            let (code, reason) = if a.get(2).is_truthy() {
                let status = a.get(1).as_f64().map_or(0, |s| s as u16);
                crate::core::transport::sse_refusal(a.get(0).is_truthy(), status)
            } else {
                (a.get(0).as_f64().map_or(1006, |c| c as u16), a.get(1).as_string().unwrap_or_default())
            };
            report(SocketEvent::Close { code, reason })
        });
        let handle = resock_sse_open(url, send_url, slot.index(), on_event.as_ref().unchecked_ref());
        Ok(SseStream { handle, _slot: slot, _on_event: on_event })
    }

    pub fn send(&self, text: &str) {
        resock_sse_send(&self.handle, text);
    }

    /// The object a leader tab's relay hook is set on (`share.js`).
    pub fn handle(&self) -> &JsValue {
        &self.handle
    }
}

impl Drop for SseStream {
    fn drop(&mut self) {
        resock_sse_close(&self.handle);
    }
}
