//! One browser WebSocket and its four handlers. The handlers are fields, removed from the
//! socket and freed when this is dropped, so a closed connection leaves nothing behind.

use js_sys::JsString;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::protocol::CloseCode;

/// One closure type for every handler: each distinct type adds glue to the package.
type Handler = Closure<dyn FnMut(JsValue)>;

/// What a socket reports.
pub enum SocketEvent {
    Open,
    Text(String),
    /// A binary frame: the protocol has none; reported as a bad frame.
    Binary,
    Close {
        code: u16,
        reason: String,
    },
}

pub struct Socket {
    ws: WebSocket,
    _on_open: Handler,
    _on_message: Handler,
    _on_close: Handler,
    _on_error: Handler,
}

impl Socket {
    /// Opens `url`; every event goes to `report`.
    pub fn open(url: &str, report: impl Fn(SocketEvent) + Clone + 'static) -> Result<Socket, JsValue> {
        let ws = WebSocket::new(url)?;
        ws.set_binary_type(web_sys::BinaryType::Arraybuffer);
        let r = report.clone();
        let on_open = Handler::new(move |_| r(SocketEvent::Open));
        let r = report.clone();
        let on_message = Handler::new(move |e: JsValue| {
            let data = e.unchecked_into::<MessageEvent>().data();
            match data.dyn_ref::<JsString>() {
                Some(text) => r(SocketEvent::Text(String::from(text))),
                None => r(SocketEvent::Binary),
            }
        });
        let r = report;
        let on_close = Handler::new(move |e: JsValue| {
            let e = e.unchecked_into::<CloseEvent>();
            r(SocketEvent::Close { code: e.code(), reason: e.reason() })
        });
        // An error event is always followed by a close event, which carries what we need.
        let on_error = Handler::new(|_| {});
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Socket { ws, _on_open: on_open, _on_message: on_message, _on_close: on_close, _on_error: on_error })
    }

    pub fn send(&self, text: &str) -> Result<(), JsValue> {
        self.ws.send_with_str(text)
    }

    /// Closes with a code and reason; its close event is not awaited (the handlers go on drop).
    pub fn close(&self, code: u16, reason: &str) {
        if self.ws.close_with_code_and_reason(code, reason).is_err() {
            let _ = self.ws.close();
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let state = self.ws.ready_state();
        if state == WebSocket::CONNECTING || state == WebSocket::OPEN {
            let _ = self.ws.close_with_code_and_reason(CloseCode::Normal.as_u16(), "Client closed");
        }
    }
}
