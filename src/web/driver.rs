//! The shell's glue: feeds browser events to the core machine and performs its actions. It
//! holds no policy. Listeners are called with no borrow held, so they may call the client.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
#[cfg(feature = "test-hooks")]
use std::sync::atomic::{AtomicUsize, Ordering};

use js_sys::{Function, Object};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

use super::credentials::socket_url;
use super::lifecycle::{Lifecycle, PageEvent};
use super::options::Options;
use super::parse::{parse, resock_emit, resock_listeners, set};
#[cfg(feature = "share")]
use super::share::{decode, FromTab};
use super::share::{Relay, Tabs};
use super::socket::{Handler, Socket, SocketEvent, Timer};
use super::sse::SseStream;
use crate::core::gated::{Gated, SHARE, SSE};
use crate::core::share::Role;
#[cfg(feature = "share")]
use crate::core::share::ShareInput;
use crate::core::{Action, Error, ErrorKind, Event, Id, Input, Machine, State};

pub type Shared = Rc<RefCell<Driver>>;

/// Borrows without a panic path: a borrow that cannot be had (never, by construction: no
/// borrow is held while calling out to JS) does nothing instead of aborting the module.
pub trait SharedExt {
    fn read<R>(&self, f: impl FnOnce(&Driver) -> R) -> Option<R>;
    fn update<R>(&self, f: impl FnOnce(&mut Driver) -> R) -> Option<R>;
}

impl SharedExt for RefCell<Driver> {
    fn read<R>(&self, f: impl FnOnce(&Driver) -> R) -> Option<R> {
        self.try_borrow().ok().map(|d| f(&d))
    }
    fn update<R>(&self, f: impl FnOnce(&mut Driver) -> R) -> Option<R> {
        self.try_borrow_mut().ok().map(|mut d| f(&mut d))
    }
}

/// Browser resources alive across every client: sockets, timers, lifecycle listener sets.
/// The leak tests read it (feature `test-hooks`): after clients close it returns to where it was.
#[cfg(feature = "test-hooks")]
static LIVE: AtomicUsize = AtomicUsize::new(0);

#[cfg(feature = "test-hooks")]
pub(crate) fn live_handles() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Holds one live browser resource; with `test-hooks`, counts it for as long as it is held.
pub(crate) struct Counted<T>(T);

impl<T> Counted<T> {
    fn new(t: T) -> Self {
        #[cfg(feature = "test-hooks")]
        LIVE.fetch_add(1, Ordering::Relaxed);
        Counted(t)
    }
}

#[cfg(feature = "test-hooks")]
impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) type RustListener = Rc<RefCell<dyn FnMut(&Event<JsValue>)>>;

/// Receives the outcome of one frame's reply, exactly once: a JS promise's `resolve` / `reject`
/// (JavaScript API), or a oneshot channel (Rust API).
pub(crate) type Settler = Box<dyn FnOnce(Result<Option<JsValue>, Error>)>;

/// Settles a JS promise: resolves with the reply (or nothing), rejects with an `Error`.
pub(crate) fn js_settler(resolve: Function, reject: Function) -> Settler {
    Box::new(move |result| {
        let _ = match result {
            Ok(Some(msg)) => resolve.call1(&JsValue::NULL, &msg),
            Ok(None) => resolve.call0(&JsValue::NULL),
            Err(e) => reject.call1(&JsValue::NULL, &error_value(&e, true)),
        };
    })
}

pub struct Driver {
    pub machine: Machine<JsValue>,
    /// Shared with each attempt's credentials fetch (an `Rc`: no copy per attempt).
    opts: Rc<Options>,
    socket: Option<Counted<Socket>>,
    socket_url: Option<(u32, String)>,
    /// The callback of the last attempt's credentials (`web/credentials.rs`).
    credentials: Option<Handler>,
    timer: Option<Counted<Timer>>,
    lifecycle: Option<Counted<Lifecycle>>,
    /// Sharing: the lock and channel, and a follower's relay (its socket).
    /// (`Gated`: always empty, and their code compiled away, in a build without the feature.)
    tabs: Gated<Counted<Tabs>, SHARE>,
    relay: Gated<Counted<Relay>, SHARE>,
    /// The SSE fallback's stream (in place of `socket`).
    sse: Gated<Counted<SseStream>, SSE>,
    /// The JS listeners: an array of one JS `Set` of functions per event name, in the order of
    /// [`crate::core::types::EVENT_NAMES`] (`fast.js`). An `Rc`, so that `emit` holds it past
    /// the borrow without a JS call.
    pub(crate) js_listeners: Rc<JsValue>,
    rust_listeners: Vec<(u64, RustListener)>,
    next_listener: u64,
    /// The promises waiting, by frame id, in the order made (a few: a list, not a map).
    promises: Vec<(Id, Settler)>,
    /// Actions not performed yet. A listener that calls the client while actions are being
    /// performed adds its own after them: side effects keep the machine's order.
    queue: Vec<Action<JsValue>>,
    performing: bool,
}

impl Drop for Driver {
    /// A client freed without `close()`: its promises are rejected, not left pending.
    fn drop(&mut self) {
        reject_all(std::mem::take(&mut self.promises), "the client was freed");
    }
}

/// Rejects every promise still pending (`closed`, with `why`): one loop for both ways out.
#[inline(never)]
fn reject_all(promises: Vec<(Id, Settler)>, why: &'static str) {
    for (_, settle) in promises {
        settle(Err(Error::new(ErrorKind::Closed, why)));
    }
}

fn now() -> u64 {
    js_sys::Date::now() as u64
}

#[wasm_bindgen(module = "/src/web/fast.js")]
extern "C" {
    fn resock_later();
    fn resock_error(thrown: bool, code: &str, message: &str, close_code: Option<u16>, id: Option<&str>) -> JsValue;
}

/// Anything, to be dropped later: a trait object with nothing but its drop (`dyn Any` made a
/// `type_id` function for each type deferred).
trait Doomed {}
impl<T> Doomed for T {}

thread_local! {
    /// Browser resources to drop once the current handler has returned ([`defer_drop`]).
    static DOOMED: RefCell<Vec<Box<dyn Doomed>>> = const { RefCell::new(Vec::new()) };
}

/// Drops a browser resource after the current handler returns (it may be that handler's own):
/// in a microtask (`queueMicrotask` of [`__resock_drop`], queued when the list was empty).
fn defer_drop<T: 'static>(t: T) {
    defer_drop_boxed(Box::new(t));
}

fn defer_drop_boxed(t: Box<dyn Doomed>) {
    // If the list cannot be borrowed (never: it is only borrowed here and to be emptied), `t`
    // is dropped at once.
    let first = DOOMED.try_with(|d| {
        d.try_borrow_mut().ok().map(|mut d| {
            d.push(t);
            d.len() == 1
        })
    });
    if first.ok().flatten() == Some(true) {
        resock_later();
    }
}

/// Drops what [`defer_drop`] kept (called by `fast.js` in a microtask). Not API.
#[doc(hidden)]
#[wasm_bindgen(skip_typescript)]
pub fn __resock_drop() {
    // Taken out first: a drop that defers another drop queues a new microtask.
    let doomed = DOOMED.try_with(|d| d.try_borrow_mut().map(|mut d| std::mem::take(&mut *d)).unwrap_or_default());
    drop(doomed);
}

impl Driver {
    pub fn new(opts: Options) -> Shared {
        super::parse::init();
        let rng = Box::new(js_sys::Math::random);
        Rc::new(RefCell::new(Driver {
            machine: Machine::new(opts.config, rng),
            opts: Rc::new(opts),
            socket: None,
            socket_url: None,
            credentials: None,
            timer: None,
            lifecycle: None,
            tabs: Gated::new(None),
            relay: Gated::new(None),
            sse: Gated::new(None),
            js_listeners: Rc::new(resock_listeners()),
            rust_listeners: Vec::new(),
            next_listener: 0,
            promises: Vec::new(),
            queue: Vec::new(),
            performing: false,
        }))
    }

    pub fn add_rust_listener(&mut self, f: RustListener) -> u64 {
        self.next_listener += 1;
        self.rust_listeners.push((self.next_listener, f));
        self.next_listener
    }

    pub fn remove_rust_listener(&mut self, id: u64) {
        self.rust_listeners.retain(|(i, _)| *i != id);
    }

    pub(crate) fn add_promise(&mut self, id: Id, settle: Settler) {
        self.promises.push((id, settle));
    }
}

/// Feeds one input to the machine and performs the actions. The machine sees the input at
/// once (so `send()` knows whether it was accepted); the actions run after any still pending.
pub fn dispatch(shared: &Shared, input: Input<JsValue>) {
    dispatch_at(shared, input, now());
}

/// [`dispatch`] at a time the caller read (a frame: in JS, with the frame).
fn dispatch_at(shared: &Shared, input: Input<JsValue>, now: u64) {
    let outermost = shared
        .update(|d| {
            if matches!(input, Input::Connect) && d.lifecycle.is_none() && d.machine.state() == State::Idle {
                let weak = Rc::downgrade(shared);
                d.lifecycle = Some(Counted::new(Lifecycle::listen(move |e| on_page_event(&weak, e))));
            }
            d.machine.handle_into(input, now, &mut d.queue);
            let outermost = !d.performing;
            d.performing = true;
            outermost
        })
        .unwrap_or(false);
    if !outermost {
        return;
    }
    // Usually one or two actions: `remove(0)` on a short Vec costs less code than a VecDeque.
    while let Some(action) = shared.update(|d| (!d.queue.is_empty()).then(|| d.queue.remove(0))).flatten() {
        perform(shared, action);
    }
    shared.update(|d| d.performing = false);
    let closed = shared.read(|d| d.machine.state() == State::Closed).unwrap_or(false);
    if closed {
        release(shared);
    }
}

fn on_page_event(weak: &Weak<RefCell<Driver>>, event: PageEvent) {
    if let Some(shared) = weak.upgrade() {
        let input = match event {
            PageEvent::Online => Input::Online,
            PageEvent::Offline => Input::Offline,
            PageEvent::Visible => Input::Visible,
        };
        dispatch(&shared, input);
    }
}

fn on_socket_event(weak: &Weak<RefCell<Driver>>, attempt: u32, event: SocketEvent) {
    let Some(shared) = weak.upgrade() else { return };
    let input = match event {
        SocketEvent::Open => Input::SocketOpened { attempt },
        SocketEvent::Message { msg, what, seq, flags, now } => {
            let input = match parse(msg, what, seq, flags) {
                Ok(mut inbound) => {
                    if inbound.id.is_none() && inbound.seq.is_none() && shared.read(|d| d.tabs.is_some()) == Some(true)
                    {
                        // Tabs share the socket: the core keeps this tab's rooms' messages.
                        inbound.room =
                            super::parse::get(&super::parse::get(&inbound.msg, "payload"), "room").as_string();
                    }
                    Input::Frame { attempt, inbound }
                }
                Err(message) => Input::BadFrame { attempt, message: message.into() },
            };
            dispatch_at(&shared, input, now);
            return;
        }
        SocketEvent::Close { code, reason } => {
            let sock = shared.update(|d| d.socket.take()).flatten();
            defer_drop(sock);
            Input::SocketClosed { attempt, code, reason }
        }
    };
    dispatch(&shared, input);
}

fn perform(shared: &Shared, action: Action<JsValue>) {
    if shared.read(|d| d.machine.is_stale(&action)).unwrap_or(true) {
        return;
    }
    match action {
        Action::FetchCredentials { attempt } => {
            let Some(opts) = shared.read(|d| d.opts.clone()) else { return };
            let weak = Rc::downgrade(shared);
            // Called with no borrow held: a token provider may call the client.
            let f = socket_url(&opts, move |result| {
                let Some(shared) = weak.upgrade() else { return };
                let input = match result {
                    Ok(url) => {
                        shared.update(|d| d.socket_url = Some((attempt, url)));
                        Input::CredentialsReady { attempt }
                    }
                    Err(e) => Input::CredentialsFailed { attempt, status: e.status, message: e.message },
                };
                dispatch(&shared, input);
            });
            let old = shared.update(|d| d.credentials.replace(f));
            defer_drop(old);
        }
        Action::OpenSocket { attempt } => {
            let url = match shared.update(|d| d.socket_url.take()).flatten() {
                Some((a, url)) if a == attempt => url,
                _ => return,
            };
            let weak = Rc::downgrade(shared);
            match Socket::open(&url, move |e| on_socket_event(&weak, attempt, e)) {
                Ok(sock) => {
                    let old = shared.update(|d| {
                        if let (Some(tabs), Some(Role::Leader), Some(me)) =
                            (d.tabs.as_ref(), d.machine.role(), d.machine.tab_id())
                        {
                            tabs.0.relay(sock.ws().as_ref(), me);
                        }
                        d.socket.replace(Counted::new(sock))
                    });
                    defer_drop(old);
                }
                Err(e) => {
                    let detail = super::parse::get(&e, "message").as_string().unwrap_or_default();
                    let message = crate::core::frames::concat(&["the browser refused the socket URL: ", &detail]);
                    dispatch(shared, Input::SocketRefused { attempt, message });
                }
            }
        }
        Action::CloseSocket { code, reason } => {
            // (Both are always empty in a build without their features: nothing to drop then.)
            if SHARE || SSE {
                let others = shared.update(|d| (d.relay.take(), d.sse.take()));
                defer_drop(others);
            }
            let sock = shared.update(|d| d.socket.take()).flatten();
            if let Some(sock) = &sock {
                sock.0.close(code, reason);
            }
            defer_drop(sock);
        }
        Action::Send(text) => {
            shared.read(|d| match (&d.socket, d.sse.as_ref(), d.relay.as_ref(), d.tabs.as_ref(), d.machine.tab_id()) {
                (Some(sock), ..) => {
                    let _ = sock.0.send(&text);
                }
                (None, Some(sse), ..) => sse.0.send(&text),
                (None, None, Some(_), Some(tabs), Some(me)) => tabs.0.up(me, &text),
                _ => {}
            });
        }
        #[cfg(feature = "share")]
        Action::RequestLock | Action::StealLock => {
            let steal = matches!(action, Action::StealLock);
            if shared.read(|d| d.tabs.is_none()) == Some(true) {
                open_tabs(shared);
            }
            shared.read(|d| d.tabs.as_ref().map(|t| t.0.lock(steal)));
        }
        #[cfg(feature = "share")]
        Action::Post(peer) => {
            shared.read(|d| d.tabs.as_ref().map(|t| t.0.post(&peer)));
        }
        #[cfg(feature = "sse")]
        Action::OpenSse { attempt, resume } => {
            let (url, sse) = match shared.update(|d| (d.socket_url.take(), d.opts.sse.as_ref().cloned())) {
                Some((Some((a, url)), Some(sse))) if a == attempt => (url, sse),
                _ => return,
            };
            let url = super::credentials::sse_url(&sse.0, &url, resume.as_ref());
            let weak = Rc::downgrade(shared);
            let report: super::socket::Report = Rc::new(move |e| on_socket_event(&weak, attempt, e));
            if let Ok(stream) = SseStream::open(&url, &sse.1, report) {
                let old = shared.update(|d| {
                    if let (Some(tabs), Some(Role::Leader), Some(me)) =
                        (d.tabs.as_ref(), d.machine.role(), d.machine.tab_id())
                    {
                        tabs.0.relay(stream.handle(), me);
                    }
                    d.sse.replace(Counted::new(stream))
                });
                defer_drop(old);
            }
        }
        #[cfg(feature = "share")]
        Action::OpenRelay { attempt } => {
            let weak = Rc::downgrade(shared);
            let report: super::socket::Report = Rc::new(move |e| on_socket_event(&weak, attempt, e));
            if let Ok(relay) = Relay::new(report) {
                let old = shared.update(|d| d.relay.replace(Counted::new(relay)));
                defer_drop(old);
            }
        }
        Action::Schedule(at) => {
            let timer = at.map(|at| {
                // setTimeout takes an i32: clamp there, or a long one fires at once.
                let delay = i32::try_from(at.saturating_sub(now())).unwrap_or(i32::MAX);
                let weak = Rc::downgrade(shared);
                Counted::new(Timer::new(delay, move || {
                    if let Some(shared) = weak.upgrade() {
                        dispatch(&shared, Input::Tick);
                    }
                }))
            });
            let old = shared.update(|d| std::mem::replace(&mut d.timer, timer));
            defer_drop(old);
        }
        Action::Emit(event) => emit(shared, &event),
        Action::Settle { id, result } => {
            let taken =
                shared.update(|d| d.promises.iter().position(|(i, _)| *i == id).map(|at| d.promises.remove(at)));
            if let Some((_, settle)) = taken.flatten() {
                settle(result);
            }
        }
        // A build without sharing or SSE: its machine never asks for these (`core::gated`).
        #[cfg(not(all(feature = "share", feature = "sse")))]
        _ => {}
    }
}

/// Opens the lock and channel of a sharing client: messages and lock news go to the machine,
/// frames relayed down to the relay.
#[cfg(feature = "share")]
fn open_tabs(shared: &Shared) {
    let Some((Some(name), Some(me))) = shared.read(|d| (d.opts.share.as_ref().cloned(), d.machine.tab_id())) else {
        return;
    };
    let weak = Rc::downgrade(shared);
    let on_peer = move |msg: JsValue| {
        let Some(shared) = weak.upgrade() else { return };
        match decode(&msg) {
            Some(FromTab::Down { from, text }) => {
                // The slot only: nothing is borrowed while the frame runs (its listeners may call
                // the client).
                let slot =
                    shared.read(|d| d.relay.as_ref().filter(|_| d.machine.accepts_down(from)).map(|r| r.0.slot()));
                if let Some(Some(slot)) = slot {
                    Relay::frame(slot, &text);
                }
            }
            Some(FromTab::Peer(peer)) => dispatch(&shared, Input::Share(ShareInput::Peer(peer))),
            None => {}
        }
    };
    let weak = Rc::downgrade(shared);
    let on_lock = move |granted: JsValue| {
        if let Some(shared) = weak.upgrade() {
            let input = if granted.is_truthy() { ShareInput::LockGranted } else { ShareInput::LockLost };
            dispatch(&shared, Input::Share(input));
        }
    };
    let tabs = Counted::new(Tabs::open(&name, me, on_peer, on_lock));
    shared.update(|d| d.tabs = Gated::new(Some(tabs)));
}

/// Frees every browser resource and listener of a closed client.
fn release(shared: &Shared) {
    let promises = shared
        .update(|d| {
            let kept = (d.socket.take(), d.timer.take(), d.lifecycle.take(), d.credentials.take());
            if SHARE || SSE {
                defer_drop((kept, d.relay.take(), d.tabs.take(), d.sse.take()));
            } else {
                defer_drop(kept);
            }
            resock_emit(&d.js_listeners, -1, &JsValue::UNDEFINED);
            d.rust_listeners.clear();
            std::mem::take(&mut d.promises)
        })
        .unwrap_or_default();
    reject_all(promises, "the client is closed");
}

/// `{code, message, closeCode?, id?}` (an error event), or with `thrown` a JS `Error` with the
/// same fields (a promise's rejection): made by `fast.js`'s `resock_error` in one call.
pub fn error_value(e: &Error, thrown: bool) -> JsValue {
    resock_error(thrown, e.kind.code(), &e.message, e.close_code, e.id.as_deref())
}

/// The value JS listeners get (a message is passed as it is, not copied).
fn event_value(event: &Event<JsValue>) -> Option<JsValue> {
    Some(match event {
        Event::State(s) => JsValue::from_str(s.as_str()),
        Event::Message(_) => return None,
        Event::Error(e) => error_value(e, false),
        Event::Resync(r) => {
            let o = Object::new();
            set(&o, "reason", &JsValue::from_str(r.as_str()));
            o.into()
        }
        Event::Retry { attempt, delay_ms } => {
            let o = Object::new();
            set(&o, "attempt", &JsValue::from(*attempt));
            set(&o, "delayMs", &JsValue::from(*delay_ms as f64));
            o.into()
        }
    })
}

fn emit(shared: &Shared, event: &Event<JsValue>) {
    let Some((sets, rust)) = shared.read(|d| {
        let sets = d.js_listeners.clone();
        let mut rust: Vec<RustListener> = Vec::new();
        for (_, f) in &d.rust_listeners {
            rust.push(f.clone());
        }
        (sets, rust)
    }) else {
        return;
    };
    // The listeners as the set is now; one that throws does not stop the others (fast.js).
    let i = event.index() as i32;
    match (event, event_value(event)) {
        (Event::Message(m), _) => resock_emit(&sets, i, m),
        (_, Some(v)) => resock_emit(&sets, i, &v),
        (_, None) => {}
    }
    for f in rust {
        if let Ok(mut f) = f.try_borrow_mut() {
            f(event);
        }
    }
}
