//! The same client for Rust front ends compiled to wasm32 (Leptos, Yew, Dioxus): typed
//! messages through serde, callbacks, and futures for `join` and `request`.

use std::cell::RefCell;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

use super::driver::{dispatch, Driver, RustListener, Shared, SharedExt};
use super::options::{Options, TokenSource};
use super::parse::get;
use crate::core::{Config, Error, ErrorKind, Event, Input, State};
use crate::protocol::{ClientMessage, Frame, ServerMessage};

/// Options for [`Client::new`]: the socket URL, an optional ticket URL and token, and the
/// connection policy.
#[derive(Clone)]
pub struct ClientOptions {
    pub url: String,
    pub ticket_url: Option<String>,
    pub token: Option<String>,
    pub config: Config,
}

impl ClientOptions {
    pub fn new(url: impl Into<String>) -> Self {
        ClientOptions { url: url.into(), ticket_url: None, token: None, config: Config::default() }
    }
}

/// Removes its listener when dropped.
#[must_use = "the listener is removed when the subscription is dropped"]
pub struct Subscription {
    shared: std::rc::Weak<RefCell<Driver>>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            if let Ok(mut d) = shared.try_borrow_mut() {
                d.remove_rust_listener(self.id);
            }
        }
    }
}

pub struct Client {
    shared: Shared,
}

fn error_from_js(e: &JsValue) -> Error {
    let code = get(e, "code").as_string().unwrap_or_default();
    let message = get(e, "message").as_string().unwrap_or_default();
    let mut error = Error::new(ErrorKind::from_code(&code), message);
    error.id = get(e, "id").as_string();
    error
}

impl Client {
    pub fn new(options: ClientOptions) -> Self {
        let opts = Options {
            url: options.url,
            ticket_url: options.ticket_url,
            token: options.token.map_or(TokenSource::None, TokenSource::Fixed),
            config: options.config,
        };
        Client { shared: Driver::new(opts) }
    }

    /// Every event, as the core emits it.
    pub fn on_event(&self, f: impl FnMut(&Event<JsValue>) + 'static) -> Subscription {
        let listener: RustListener = Rc::new(RefCell::new(f));
        let id = self.shared.update(|d| d.add_rust_listener(listener)).unwrap_or(0);
        Subscription { shared: Rc::downgrade(&self.shared), id }
    }

    /// Every application message, decoded into [`ServerMessage`]; one that does not fit its
    /// type's shape is passed to `on_bad` instead of being lost.
    pub fn on_message<D: DeserializeOwned + 'static>(
        &self,
        mut f: impl FnMut(ServerMessage<D>) + 'static,
        mut on_bad: impl FnMut(JsValue, String) + 'static,
    ) -> Subscription {
        self.on_event(move |e| {
            if let Event::Message(msg) = e {
                let kind = get(msg, "type").as_string().unwrap_or_default();
                let payload = get(msg, "payload");
                match ServerMessage::<D>::decode(&kind, serde_wasm_bindgen::Deserializer::from(payload)) {
                    Ok(m) => f(m),
                    Err(err) => on_bad(msg.clone(), err.to_string()),
                }
            }
        })
    }

    pub fn connect(&self) {
        dispatch(&self.shared, Input::Connect);
    }

    pub fn close(&self) {
        dispatch(&self.shared, Input::Close);
    }

    pub fn state(&self) -> State {
        self.shared.read(|d| d.machine.state()).unwrap_or(State::Closed)
    }

    /// Serializes and sends (or queues) a message with a fresh id, which it returns. A refusal
    /// for good comes as an `error` event carrying that id.
    pub fn send<D: Serialize>(&self, message: &ClientMessage<D>) -> Result<String, Error> {
        let id = self.shared.update(|d| d.machine.next_id()).unwrap_or_default();
        let text = to_json(&Frame::new(message).with_id(Some(&id)))?;
        dispatch(&self.shared, Input::Send { id: id.clone(), text, ack: false });
        Ok(id)
    }

    /// Sends like [`Client::send`] and waits for the server's answer (`ack`), or the error that
    /// refused it for good. Refusals by the rate limit and cuts are not errors: it goes again.
    pub async fn send_acked<D: Serialize>(&self, message: &ClientMessage<D>) -> Result<JsValue, Error> {
        let id = self.shared.update(|d| d.machine.next_id()).unwrap_or_default();
        let text = to_json(&Frame::new(message).with_id(Some(&id)))?;
        self.pending_with(id, move |id| Input::Send { id, text, ack: true }).await
    }

    /// Joins a room (and again after every reconnect).
    pub async fn join(&self, room: &str) -> Result<JsValue, Error> {
        let room = room.to_owned();
        self.pending(move |id| Input::Join { room, id }).await
    }

    pub async fn leave(&self, room: &str) -> Result<JsValue, Error> {
        let room = room.to_owned();
        self.pending(move |id| Input::Leave { room, id }).await
    }

    /// Sends a request and waits for the reply with the same id.
    pub async fn request<D: Serialize>(
        &self,
        message: &ClientMessage<D>,
        timeout_ms: Option<u64>,
    ) -> Result<JsValue, Error> {
        let id = self.shared.update(|d| d.machine.next_id()).unwrap_or_default();
        let text = to_json(&Frame::new(message).with_id(Some(&id)))?;
        self.pending_with(id, move |id| Input::Request { id, text, timeout_ms }).await
    }

    async fn pending(&self, input: impl FnOnce(String) -> Input<JsValue>) -> Result<JsValue, Error> {
        let id = self.shared.update(|d| d.machine.next_id()).unwrap_or_default();
        self.pending_with(id, input).await
    }

    async fn pending_with(&self, id: String, input: impl FnOnce(String) -> Input<JsValue>) -> Result<JsValue, Error> {
        let shared = self.shared.clone();
        let key = id.clone();
        let promise = js_sys::Promise::new(&mut |resolve, reject| {
            shared.update(|d| d.add_promise(key.clone(), resolve, reject));
        });
        dispatch(&self.shared, input(id));
        JsFuture::from(promise).await.map_err(|e| error_from_js(&e))
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, Error> {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    let js = value.serialize(&serializer).map_err(|e| Error::new(ErrorKind::BadFrame, e.to_string()))?;
    js_sys::JSON::stringify(&js)
        .map(String::from)
        .map_err(|_| Error::new(ErrorKind::BadFrame, "the message cannot be serialized to JSON"))
}
