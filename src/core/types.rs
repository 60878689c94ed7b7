//! The data that goes in and out of the connection machine.

use alloc::string::String;

use super::backoff::Backoff;
use super::outbox::OutboxLimits;
use super::sender::SendRate;
use super::stream::ResyncReason;

/// Every knob of the connection policy, with the defaults of `SDK-API.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub backoff: Backoff,
    /// Consecutive failed attempts before giving up; `None` retries forever.
    pub max_attempts: Option<u32>,
    /// Added to the heartbeat interval: nothing received for `heartbeat + grace` means dead.
    pub heartbeat_grace_ms: u64,
    /// The heartbeat assumed until (or unless) a `welcome` names one.
    pub default_heartbeat_ms: u64,
    /// How long `request`, `join` and `leave` wait for their reply.
    pub request_timeout_ms: u64,
    /// How long a liveness probe (sent when the page comes back) waits for any frame.
    pub probe_timeout_ms: u64,
    /// A connection open this long resets the backoff and the auth-failure count.
    pub stable_after_ms: u64,
    /// How long sends are held back after the server answered `rate_limited`.
    pub throttle_ms: u64,
    pub outbox: OutboxLimits,
    /// Drop (and report) a queued frame still unsent after this long; `None` keeps it.
    pub outbox_ttl_ms: Option<u64>,
    /// User-stream messages held ahead of a gap while a resume fills it.
    pub max_ahead: usize,
    /// At most `max` frames reach the server per window (its rate limit, or under it), clocked by
    /// the server's answers; `None` sends without pacing.
    pub send_rate: Option<SendRate>,
    /// How long an attempt may take to get credentials and open the socket.
    pub connect_timeout_ms: u64,
    /// After a reconnect to a server that sent a `welcome` before, how long to wait for the new
    /// one (which decides the resume) before sending anything.
    pub welcome_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backoff: Backoff::default(),
            max_attempts: None,
            heartbeat_grace_ms: 15_000,
            default_heartbeat_ms: 30_000,
            request_timeout_ms: 10_000,
            probe_timeout_ms: 5_000,
            stable_after_ms: 5_000,
            throttle_ms: 1_000,
            outbox: OutboxLimits::default(),
            outbox_ttl_ms: None,
            max_ahead: 1_000,
            send_rate: Some(SendRate::default()),
            connect_timeout_ms: 10_000,
            welcome_timeout_ms: 2_000,
        }
    }
}

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

/// What went wrong, as the application sees it. Each says whether the client keeps going.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Two authentication failures in a row (close 4001, or 401/403 from the ticket URL). Fatal.
    AuthFailed,
    /// Another connection of the same user replaced this one (1000 "Replaced..."). Fatal.
    Replaced,
    /// The server closed normally (1000). Fatal: the client stays closed.
    ServerClosed,
    /// The server refused a binary frame (1003). Fatal.
    Unsupported,
    /// The server saw invalid UTF-8 (1007). Fatal.
    InvalidPayload,
    /// A message over the server's size limit (1009). Fatal.
    MessageTooBig,
    /// A policy close (1008: too many refused messages, or too slow to read). Retried.
    PolicyViolation,
    /// The server failed (1011). Retried.
    ServerError,
    /// The server is full (1013). Retried after the maximum delay.
    TryAgainLater,
    /// `maxAttempts` reconnect attempts in a row failed. Fatal.
    MaxAttempts,
    /// An attempt took longer than `connect_timeout_ms`. Retried.
    ConnectTimeout,
    /// The browser refused to open a socket to the URL. Fatal.
    BadUrl,
    /// The ticket URL could not be reached or answered badly (not 401/403). Retried.
    TicketFailed,
    /// The server refused a frame over its rate limit that the client did not send (or no longer
    /// tracks); sends are held back a while. A frame the client sent is sent again instead.
    RateLimited,
    /// The outbox is full: the message was not queued.
    OutboxFull,
    /// A queued message passed `outbox_ttl_ms` before it could be sent.
    Expired,
    /// A request got no reply in time.
    Timeout,
    /// The connection was lost before a request's reply came.
    Disconnected,
    /// The client is closed: nothing more can be sent.
    Closed,
    /// A room name that is not 1-64 characters of `[A-Za-z0-9_.:-]`.
    BadRoom,
    /// A frame from the server that is not a JSON object with a `type`.
    BadFrame,
    /// An `error` message from the server, with its code (`not_member`, `room_limit`, ...).
    Server(String),
}

impl ErrorKind {
    /// The `code` of the error event in JavaScript.
    pub fn code(&self) -> &str {
        match self {
            ErrorKind::AuthFailed => "auth_failed",
            ErrorKind::Replaced => "replaced",
            ErrorKind::ServerClosed => "server_closed",
            ErrorKind::Unsupported => "unsupported_data",
            ErrorKind::InvalidPayload => "invalid_payload",
            ErrorKind::MessageTooBig => "message_too_big",
            ErrorKind::PolicyViolation => "policy_violation",
            ErrorKind::ServerError => "server_error",
            ErrorKind::TryAgainLater => "try_again_later",
            ErrorKind::MaxAttempts => "max_attempts",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::BadUrl => "bad_url",
            ErrorKind::TicketFailed => "ticket_failed",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::OutboxFull => "outbox_full",
            ErrorKind::Expired => "expired",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::Closed => "closed",
            ErrorKind::BadRoom => "bad_room",
            ErrorKind::BadFrame => "bad_frame",
            ErrorKind::Server(code) => code,
        }
    }

    /// The kind an error `code` names (the inverse of [`ErrorKind::code`]); any other code is
    /// the server's.
    pub fn from_code(code: &str) -> ErrorKind {
        match code {
            "auth_failed" => ErrorKind::AuthFailed,
            "replaced" => ErrorKind::Replaced,
            "server_closed" => ErrorKind::ServerClosed,
            "unsupported_data" => ErrorKind::Unsupported,
            "invalid_payload" => ErrorKind::InvalidPayload,
            "message_too_big" => ErrorKind::MessageTooBig,
            "policy_violation" => ErrorKind::PolicyViolation,
            "server_error" => ErrorKind::ServerError,
            "try_again_later" => ErrorKind::TryAgainLater,
            "max_attempts" => ErrorKind::MaxAttempts,
            "connect_timeout" => ErrorKind::ConnectTimeout,
            "bad_url" => ErrorKind::BadUrl,
            "ticket_failed" => ErrorKind::TicketFailed,
            "rate_limited" => ErrorKind::RateLimited,
            "outbox_full" => ErrorKind::OutboxFull,
            "expired" => ErrorKind::Expired,
            "timeout" => ErrorKind::Timeout,
            "disconnected" => ErrorKind::Disconnected,
            "closed" => ErrorKind::Closed,
            "bad_room" => ErrorKind::BadRoom,
            "bad_frame" => ErrorKind::BadFrame,
            other => ErrorKind::Server(other.into()),
        }
    }

    /// True when the client ends in `closed` because of it.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ErrorKind::AuthFailed
                | ErrorKind::Replaced
                | ErrorKind::ServerClosed
                | ErrorKind::Unsupported
                | ErrorKind::InvalidPayload
                | ErrorKind::MessageTooBig
                | ErrorKind::MaxAttempts
                | ErrorKind::BadUrl
        )
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

/// A parsed frame from the server. `P` is the whole message as the application will see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound<P> {
    pub kind: InKind,
    pub id: Option<String>,
    pub seq: Option<u64>,
    pub msg: P,
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
    /// Getting credentials failed; `auth` when the ticket URL answered 401 or 403.
    CredentialsFailed {
        attempt: u32,
        auth: bool,
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
    /// [`super::Machine::next_id`], or the app's own). `ack`: settle `id` with the server's
    /// answer (the `ack`, or the error that refused it for good).
    Send {
        id: String,
        text: String,
        ack: bool,
    },
    /// A request frame carrying `id` (from [`super::Machine::next_id`]).
    Request {
        id: String,
        text: String,
        timeout_ms: Option<u64>,
    },
    Join {
        room: String,
        id: String,
    },
    Leave {
        room: String,
        id: String,
    },
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
        id: String,
        result: Result<Option<P>, Error>,
    },
}
