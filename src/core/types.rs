//! The data that goes in and out of the connection machine.

use alloc::string::String;

use super::share::{Peer, ShareInput};
use super::stream::ResyncReason;

/// A frame id inside the machine: the SDK's own ids are numbers, which go on the wire as their
/// decimal digits (`"id":"123"`); an id the application chose is a key from
/// [`super::Machine::app_id`]. The strings are made only where a frame or an error needs one.
pub type Id = u64;

/// The connection state the application sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created, `connect()` not called yet.
    Idle,
    /// The first attempt: fetching credentials, then opening the socket.
    Connecting,
    Open,
    /// Lost, waiting for the next attempt or making it.
    Reconnecting,
    /// Closed for good: by `close()`, or a failure that retrying cannot fix.
    Closed,
}

impl State {
    pub const ALL: [State; 5] = [State::Idle, State::Connecting, State::Open, State::Reconnecting, State::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting => "connecting",
            State::Open => "open",
            State::Reconnecting => "reconnecting",
            State::Closed => "closed",
        }
    }
}

/// The SDK's own error kinds: one table, from which the enum, its codes and its fatality are
/// made (`bindings.d.ts` lists the same codes; the contract test compares them).
macro_rules! error_kinds {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $fatal:literal;)*) => {
        /// What went wrong, as the application sees it. Each says whether the client keeps going.
        /// The server's own codes stay apart, in [`ErrorKind::Server`]: a server code that reads
        /// like one of the SDK's (`"timeout"`) is still the server's.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $($(#[$doc])* $name,)*
            /// An `error` message from the server, with its code (`not_member`, `room_limit`, ...).
            Server(String),
        }

        impl ErrorKind {
            /// Every kind of the SDK's own (all but [`ErrorKind::Server`]), in table order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$name),*];

            /// The `code` of the error event in JavaScript.
            pub fn code(&self) -> &str {
                match self {
                    $(ErrorKind::$name => $code,)*
                    ErrorKind::Server(code) => code,
                }
            }

            /// True when the client ends in `closed` because of it.
            pub fn is_fatal(&self) -> bool {
                match self {
                    $(ErrorKind::$name => $fatal,)*
                    ErrorKind::Server(_) => false,
                }
            }
        }
    };
}

error_kinds! {
    /// Two authentication failures in a row (close 4001, or 401/403 from the ticket URL). Fatal.
    AuthFailed = "auth_failed", true;
    /// Another connection of the same user replaced this one (1000 "Replaced..."). Fatal.
    Replaced = "replaced", true;
    /// The server closed normally (1000). Fatal: the client stays closed.
    ServerClosed = "server_closed", true;
    /// The server refused a binary frame (1003). Fatal.
    Unsupported = "unsupported_data", true;
    /// The server saw invalid UTF-8 (1007). Fatal.
    InvalidPayload = "invalid_payload", true;
    /// A message over the server's size limit (1009). Fatal.
    MessageTooBig = "message_too_big", true;
    /// A policy close (1008: too many refused messages, or too slow to read). Retried.
    PolicyViolation = "policy_violation", false;
    /// The server failed (1011). Retried.
    ServerError = "server_error", false;
    /// The server is full (1013). Retried after the maximum delay.
    TryAgainLater = "try_again_later", false;
    /// `maxAttempts` reconnect attempts in a row failed. Fatal.
    MaxAttempts = "max_attempts", true;
    /// An attempt took longer than `connect_timeout_ms`. Retried.
    ConnectTimeout = "connect_timeout", false;
    /// The browser refused to open a socket to the URL. Fatal.
    BadUrl = "bad_url", true;
    /// The ticket URL could not be reached or answered badly (not 401/403). Retried.
    TicketFailed = "ticket_failed", false;
    /// The server refused a frame over its rate limit that the client did not send (or no longer
    /// tracks); sends are held back a while. A frame the client sent is sent again instead.
    RateLimited = "rate_limited", false;
    /// The outbox is full: the message was not queued.
    OutboxFull = "outbox_full", false;
    /// A queued message passed `outbox_ttl_ms` before it could be sent.
    Expired = "expired", false;
    /// A request got no reply in time.
    Timeout = "timeout", false;
    /// The connection was lost before a request's reply came.
    Disconnected = "disconnected", false;
    /// The client is closed: nothing more can be sent.
    Closed = "closed", false;
    /// A room name that is not 1-64 characters of `[A-Za-z0-9_.:-]`.
    BadRoom = "bad_room", false;
    /// A frame from the server that is not a JSON object with a `type`.
    BadFrame = "bad_frame", false;
}

impl ErrorKind {
    /// The SDK kind an error `code` names (the inverse of [`ErrorKind::code`] over
    /// [`ErrorKind::ALL`]); `None` for any other code. A server's code is never turned into one
    /// of these: it stays [`ErrorKind::Server`].
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.iter().find(|k| k.code() == code).cloned()
    }
}

/// An error event: what, in words a person can act on, and the close code if one caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub close_code: Option<u16>,
    /// The id of the frame it is about (a `send` refused for good, say).
    pub id: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), close_code: None, id: None }
    }

    pub fn with_id(mut self, id: &str) -> Self {
        self.id = Some(String::from(id));
        self
    }

    pub fn with_close(mut self, code: u16) -> Self {
        self.close_code = Some(code);
        self
    }
}

/// `code: message`, then the close code and the frame id when there are. (Rust API only: the
/// JavaScript API builds its own objects, so `core::fmt` stays out of the package.)
impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)?;
        if let Some(code) = self.close_code {
            write!(f, " (close code {code})")?;
        }
        if let Some(id) = &self.id {
            write!(f, " (frame {id})")?;
        }
        Ok(())
    }
}

impl core::error::Error for Error {}

/// A parsed frame from the server. `P` is the whole message as the application will see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound<P> {
    pub kind: InKind,
    pub id: Option<String>,
    pub seq: Option<u64>,
    pub msg: P,
    /// The room a push names (`payload.room` of a frame with no `id` and no `seq`), read by the
    /// shell only when tabs share a socket: a tab takes only its own rooms' messages.
    pub room: Option<String>,
}

/// What the machine needs to know about a frame; everything else is the application's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InKind {
    Welcome {
        heartbeat_ms: u64,
        epoch: String,
        seq: u64,
    },
    Ping,
    Pong,
    Resumed {
        complete: bool,
    },
    Error {
        code: String,
        message: String,
    },
    /// Any other type (`joined`, `ack`, notifications, room messages, unknown types...).
    Other,
}

/// The event names of the JavaScript API's `on()`, in the order of [`Event::index`]. Read by the
/// tests: `fast.js` writes them out (src/contract.rs checks it).
#[cfg_attr(not(test), allow(dead_code))]
pub const EVENT_NAMES: [&str; 5] = ["message", "state", "error", "resync", "retry"];

/// Events for the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<P> {
    State(State),
    Message(P),
    Error(Error),
    /// Reload state over REST: messages may have been missed.
    Resync(ResyncReason),
    /// The next attempt starts in `delay_ms` (attempt counts from 1).
    Retry {
        attempt: u32,
        delay_ms: u64,
    },
}

impl<P> Event<P> {
    /// Its name in [`EVENT_NAMES`].
    pub fn name(&self) -> &'static str {
        match self {
            Event::Message(_) => "message",
            Event::State(_) => "state",
            Event::Error(_) => "error",
            Event::Resync(_) => "resync",
            Event::Retry { .. } => "retry",
        }
    }

    /// Its index in [`EVENT_NAMES`] (the shell keeps the JS listener sets in that order).
    pub fn index(&self) -> usize {
        match self {
            Event::Message(_) => 0,
            Event::State(_) => 1,
            Event::Error(_) => 2,
            Event::Resync(_) => 3,
            Event::Retry { .. } => 4,
        }
    }
}

/// Inputs: what happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<P> {
    /// The application asked to connect (idempotent).
    Connect,
    /// The application asked to close (code 1000, no reconnect).
    Close,
    /// Credentials for attempt `attempt` are ready: open the socket.
    CredentialsReady {
        attempt: u32,
    },
    /// Getting credentials failed: the ticket URL answered `status` (not a 2xx), or `message`
    /// says what else went wrong (no answer, no ticket in it, the token provider threw).
    CredentialsFailed {
        attempt: u32,
        status: Option<u16>,
        message: String,
    },
    SocketOpened {
        attempt: u32,
    },
    /// The browser refused to create the socket (a malformed URL): fatal.
    SocketRefused {
        attempt: u32,
        message: String,
    },
    SocketClosed {
        attempt: u32,
        code: u16,
        reason: String,
    },
    Frame {
        attempt: u32,
        inbound: Inbound<P>,
    },
    /// A frame that could not be parsed.
    BadFrame {
        attempt: u32,
        message: String,
    },
    /// The scheduled wake-up (or any time: the machine checks the clock).
    Tick,
    Online,
    Offline,
    /// The page became visible again.
    Visible,
    /// An application frame, already serialized with `id` in it (from
    /// [`super::Machine::next_id`], or the app's own, keyed by [`super::Machine::app_id`]). `ack`: settle `id` with the server's
    /// answer (the `ack`, or the error that refused it for good).
    Send {
        id: Id,
        text: String,
        ack: bool,
    },
    /// A request frame carrying `id` (from [`super::Machine::next_id`]).
    Request {
        id: Id,
        text: String,
        timeout_ms: Option<u64>,
    },
    Join {
        room: String,
        id: Id,
    },
    Leave {
        room: String,
        id: Id,
    },
    /// Cross-tab sharing (`Config::share`): the lock, and a message from another tab.
    Share(ShareInput),
}

/// Actions: what the shell must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<P> {
    /// Get a ticket (or token) for attempt `attempt`, then answer with `CredentialsReady` or
    /// `CredentialsFailed`.
    FetchCredentials {
        attempt: u32,
    },
    /// Open the socket of attempt `attempt` with the credentials fetched.
    OpenSocket {
        attempt: u32,
    },
    /// Close the current socket and stop listening to it (its close event is not awaited).
    CloseSocket {
        code: u16,
        reason: &'static str,
    },
    Send(String),
    /// Wake the machine (`Input::Tick`) at this wall-clock time; `None` cancels the wake-up.
    Schedule(Option<u64>),
    Emit(Event<P>),
    /// Settle the promise of request `id`: with its reply, with nothing (a `leave` while not
    /// connected), or with an error.
    Settle {
        id: Id,
        result: Result<Option<P>, Error>,
    },
    /// Sharing: ask for the user's lock (answered by `ShareInput::LockGranted`, at once or when
    /// the tab holding it lets go).
    RequestLock,
    /// Sharing: take the lock from the tab holding it (it seems frozen).
    StealLock,
    /// Sharing: post a message to the other tabs.
    Post(Peer),
    /// SSE fallback: open the server's SSE session stream for attempt `attempt` with the
    /// credentials fetched, resuming after `(epoch, seq)` when there is one. Its events are this
    /// attempt's frames; `Send` then goes by HTTP POST.
    OpenSse {
        attempt: u32,
        resume: Option<(String, u64)>,
    },
    /// Sharing: this attempt is a relay through the leader; relayed frames are its frames.
    OpenRelay {
        attempt: u32,
    },
}

#[cfg(test)]
mod event_index_tests {
    use super::*;

    #[test]
    fn an_events_index_names_it_in_event_names() {
        let events: [Event<()>; 5] = [
            Event::Message(()),
            Event::State(State::Open),
            Event::Error(Error::new(ErrorKind::Closed, "x")),
            Event::Resync(ResyncReason::Gap),
            Event::Retry { attempt: 1, delay_ms: 1 },
        ];
        for e in &events {
            assert_eq!(EVENT_NAMES[e.index()], e.name());
        }
    }
}
