//! The same client for Rust front ends compiled to wasm32 (Leptos, Yew, Dioxus): typed
//! messages through serde, callbacks, and Rust futures (a oneshot channel, no JS promise) for
//! `join`, `leave`, `request` and `send_acked`, which fail with the core's [`Error`] whole.

use std::cell::RefCell;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use wasm_bindgen::JsValue;

use super::driver::{dispatch, Driver, RustListener, Shared, SharedExt};
use super::oneshot;
use super::options::Options;
use super::parse::get;
use crate::core::config::check_urls;
use crate::core::frames::u64_to_string;
use crate::core::gated::Gated;
use crate::core::{Config, ConfigError, Error, ErrorKind, Event, Id, Input, State};
use crate::protocol::{ClientMessage, Frame, Joined, ServerMessage};

/// Options for [`Client::new`]: the socket URL, an optional ticket URL and token, and the
/// connection policy. Start from [`ClientOptions::new`] and set what differs: fields may be
/// added.
#[derive(Clone)]
#[non_exhaustive]
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

impl Client {
    /// Checks the options with the same rules as the JavaScript API (`ConfigError` says what to
    /// fix). Does not connect.
    pub fn new(options: ClientOptions) -> Result<Self, ConfigError> {
        check_urls(&options.url, options.ticket_url.as_deref())?;
        options.config.validate()?;
        let opts = Options {
            url: options.url,
            ticket_url: options.ticket_url,
            token: options.token.map_or(JsValue::UNDEFINED, |t| JsValue::from_str(&t)),
            config: options.config,
            share: Gated::new(None),
            sse: Gated::new(None),
        };
        Ok(Client { shared: Driver::new(opts) })
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
        let id = self.next_id();
        let wire_id = u64_to_string(id);
        let text = to_json(&Frame::new(message).with_id(Some(&wire_id)))?;
        dispatch(&self.shared, Input::Send { id, text, ack: false });
        Ok(wire_id)
    }

    /// Sends like [`Client::send`] and waits for the server's answer (`ack`), or the error that
    /// refused it for good. Refusals by the rate limit and cuts are not errors: it goes again.
    pub async fn send_acked<D: Serialize>(&self, message: &ClientMessage<D>) -> Result<JsValue, Error> {
        let id = self.next_id();
        let text = to_json(&Frame::new(message).with_id(Some(&u64_to_string(id))))?;
        reply(self.pending(id, Input::Send { id, text, ack: true }).await)
    }

    /// Joins a room (and again after every reconnect until [`Client::leave`]): the server's
    /// `joined`, typed.
    pub async fn join(&self, room: &str) -> Result<Joined, Error> {
        let id = self.next_id();
        let msg = reply(self.pending(id, Input::Join { room: room.to_owned(), id }).await)?;
        Joined::deserialize(serde_wasm_bindgen::Deserializer::from(get(&msg, "payload")))
            .map_err(|e| Error::new(ErrorKind::BadFrame, e.to_string()))
    }

    /// Leaves a room and stops re-joining it.
    pub async fn leave(&self, room: &str) -> Result<(), Error> {
        let id = self.next_id();
        self.pending(id, Input::Leave { room: room.to_owned(), id }).await.map(|_| ())
    }

    /// Sends a request and waits for the reply with the same id.
    pub async fn request<D: Serialize>(
        &self,
        message: &ClientMessage<D>,
        timeout_ms: Option<u64>,
    ) -> Result<JsValue, Error> {
        let id = self.next_id();
        let text = to_json(&Frame::new(message).with_id(Some(&u64_to_string(id))))?;
        reply(self.pending(id, Input::Request { id, text, timeout_ms }).await)
    }

    fn next_id(&self) -> Id {
        self.shared.update(|d| d.machine.next_id()).unwrap_or_default()
    }

    /// Registers a oneshot channel for `id`'s outcome, feeds `input`, and waits.
    async fn pending(&self, id: Id, input: Input<JsValue>) -> Result<Option<JsValue>, Error> {
        let (tx, rx) = oneshot::channel();
        self.shared.update(|d| d.add_promise(id, Box::new(move |result| tx.send(result))));
        dispatch(&self.shared, input);
        rx.await.unwrap_or_else(|| Err(Error::new(ErrorKind::Closed, "the client was freed")))
    }
}

/// A reply that must carry a message.
fn reply(result: Result<Option<JsValue>, Error>) -> Result<JsValue, Error> {
    result?.ok_or_else(|| Error::new(ErrorKind::BadFrame, "no reply message"))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, Error> {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    let js = value.serialize(&serializer).map_err(|e| Error::new(ErrorKind::BadFrame, e.to_string()))?;
    js_sys::JSON::stringify(&js)
        .map(String::from)
        .map_err(|_| Error::new(ErrorKind::BadFrame, "the message cannot be serialized to JSON"))
}
