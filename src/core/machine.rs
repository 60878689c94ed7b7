//! The connection machine: `handle(input, now) -> actions`. No I/O, no clock, no randomness
//! of its own: the browser shell feeds it events and performs what it returns.
//!
//! The steps of a connection's life called from several places (`start_attempt`, `on_open`,
//! `on_socket_closed`, `connection_lost`, `retry`, `shut_down`, `on_welcome`, `on_error_frame`)
//! are `#[inline(never)]`: the release build inlines the machine into the shell's one dispatch
//! function, and a copy of each per caller cost 248 B gzip (docs/SIZE.md). None is on the path
//! of a common frame.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::backoff::Random;
use super::config::Config;
use super::frames;
use super::gated::{Gated, SHARE, SSE};
use super::outbox::Origin;
use super::phase::{Open, Phase};
use super::requests::{Kind, Requests};
use super::rooms::Rooms;
use super::sender::Sender;
use super::share::{self, Role, Share};
use super::stream::Stream;
use super::transport::{Fallback, Transport};
use super::types::{Action, Error, ErrorKind, Event, Id, Input, State};
use crate::protocol::{CloseCode, REASON_REPLACED};

/// Close code the client sends when it drops a connection it believes dead.
pub const CLOSE_LIVENESS: u16 = CloseCode::Liveness.as_u16();

pub struct Machine<P> {
    pub(super) cfg: Config,
    pub(super) rng: Box<dyn Random>,
    pub(super) state: State,
    pub(super) phase: Phase,
    /// The generation of the current attempt; inputs of older ones are ignored.
    pub(super) attempt: u32,
    /// Consecutive failed attempts (drives the backoff and `max_attempts`).
    pub(super) failures: u32,
    pub(super) auth_failures: u32,
    pub(super) online: bool,
    /// This server has sent a `welcome` before: after a reconnect, wait for the next one.
    pub(super) expect_welcome: bool,
    pub(super) rooms: Rooms,
    pub(super) sender: Sender,
    pub(super) stream: Stream<P>,
    pub(super) requests: Requests,
    /// The last id given. It starts at a random point below 2⁵³, so ids stay unique across
    /// clients (and page loads) and a server can drop a frame sent twice (before and after a
    /// cut) by its id.
    pub(super) next_id: u64,
    /// The ids the application chose (`send({id: "mine"})`) that are not numbers as the client
    /// writes them ([`frames::parse_id`]), by their key ([`frames::APP_ID`] set), while their
    /// frame lives. Empty unless an application names its frames.
    pub(super) app_ids: Vec<(Id, String)>,
    pub(super) scheduled: Option<u64>,
    pub(super) send_refused: bool,
    pub(super) actions: Vec<Action<P>>,
    /// Cross-tab sharing, when `Config::share` is on.
    pub(super) share: Gated<Share, SHARE>,
    /// The SSE fallback, when `Config::sse` is on.
    pub(super) fallback: Gated<Fallback, SSE>,
}

impl<P: Clone> Machine<P> {
    pub fn new(cfg: Config, mut rng: Box<dyn Random>) -> Self {
        let next_id = (rng.next_unit() * 9e15) as u64;
        let share = cfg.share.then(|| share::new_share(rng.next_unit(), rng.next_unit()));
        Machine {
            share: Gated::new(share),
            fallback: Gated::new(cfg.sse.then(Fallback::new)),
            next_id,
            app_ids: Vec::new(),
            sender: Sender::new(cfg.outbox, cfg.send_rate),
            stream: Stream::new(cfg.max_ahead),
            cfg,
            rng,
            state: State::Idle,
            phase: Phase::IDLE,
            attempt: 0,
            failures: 0,
            auth_failures: 0,
            online: true,
            expect_welcome: false,
            rooms: Rooms::default(),
            requests: Requests::default(),
            scheduled: None,
            send_refused: false,
            actions: Vec::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    #[cfg(test)]
    /// The rooms the application wants.
    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.iter()
    }

    pub fn outbox_len(&self) -> usize {
        self.sender.outbox().len()
    }

    #[cfg(test)]
    /// The last user-stream seq delivered, and its epoch.
    pub fn stream_position(&self) -> (Option<&str>, u64) {
        (self.stream.epoch(), self.stream.last_seq())
    }

    /// True when the last `handle` refused an application message (outbox full, or closed).
    pub fn send_refused(&self) -> bool {
        self.send_refused
    }

    /// A fresh frame id, unique to this client: the next number after a random start.
    pub fn next_id(&mut self) -> Id {
        self.next_id += 1;
        self.next_id
    }

    /// The key of an id the application gave its frame (`send({type, id, ...})`): the number
    /// itself when it reads as one of the client's ([`frames::parse_id`]), else a fresh key
    /// remembered with the string until the frame is done.
    pub fn app_id(&mut self, id: String) -> Id {
        if let Some(n) = frames::parse_id(&id) {
            return n;
        }
        let key = self.next_id() | frames::APP_ID;
        self.app_ids.push((key, id));
        key
    }

    /// The key of a frame id from the server: `None` for an id this client never gave (or
    /// forgot). A number costs no allocation and no look-up.
    pub(super) fn key_of(&self, id: &str) -> Option<Id> {
        match frames::parse_id(id) {
            Some(n) => Some(n),
            None => self.app_ids.iter().find(|(_, s)| s == id).map(|(k, _)| *k),
        }
    }

    /// The frame of `id` is done: an application's own id is forgotten, and returned.
    pub(super) fn forget_id(&mut self, id: Id) -> Option<String> {
        let at = self.app_ids.iter().position(|(k, _)| *k == id)?;
        Some(self.app_ids.remove(at).1)
    }

    /// True for an action decided earlier that must not start now: a listener closed the client
    /// while the shell was still performing the actions decided before (credentials or a socket
    /// for an attempt that will never be used).
    pub fn is_stale(&self, action: &Action<P>) -> bool {
        self.state == State::Closed
            && matches!(action, Action::FetchCredentials { .. } | Action::OpenSocket { .. } | Action::OpenSse { .. })
    }

    #[cfg(test)]
    /// Application frames sent on the current connection and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.sender.in_flight()
    }

    /// Feeds one input at wall-clock time `now` (ms) and returns what to do, in order.
    #[cfg(test)]
    pub fn handle(&mut self, input: Input<P>, now: u64) -> Vec<Action<P>> {
        let mut out = Vec::new();
        self.handle_into(input, now, &mut out);
        out
    }

    /// Feeds one input at wall-clock time `now` (ms) and appends what to do, in order, to `out`.
    /// The machine's own action buffer keeps its capacity: a frame allocates nothing here.
    pub fn handle_into(&mut self, input: Input<P>, now: u64, out: &mut Vec<Action<P>>) {
        self.send_refused = false;
        self.step(input, now);
        self.check_clock(now);
        self.pump(now);
        self.reschedule(now);
        out.append(&mut self.actions);
    }

    fn step(&mut self, input: Input<P>, now: u64) {
        if self.state == State::Closed {
            self.refuse_after_close(input);
            return;
        }
        match input {
            Input::Connect => {
                if self.state == State::Idle && !self.share_connect(now) {
                    self.set_state(State::Connecting);
                    self.start_attempt(now);
                }
            }
            Input::Close => self.close(),
            Input::CredentialsReady { attempt } => {
                if let (true, Phase::Credentials { deadline }) = (attempt == self.attempt, &self.phase) {
                    self.phase = Phase::Socket { deadline: *deadline };
                    let action = match self.transport() {
                        Transport::WebSocket => Action::OpenSocket { attempt },
                        Transport::Sse => {
                            // The stream resumes from where this client is, by its URL.
                            let resume = self.stream.epoch().map(|e| (String::from(e), self.stream.last_seq()));
                            Action::OpenSse { attempt, resume }
                        }
                    };
                    self.push(action);
                }
            }
            Input::CredentialsFailed { attempt, status, message } => {
                if attempt == self.attempt && matches!(self.phase, Phase::Credentials { .. }) {
                    self.phase = Phase::IDLE;
                    self.on_credentials_failed(now, status, message);
                }
            }
            Input::SocketOpened { attempt } => {
                if attempt == self.attempt && matches!(self.phase, Phase::Socket { .. }) {
                    self.on_open(now);
                }
            }
            Input::SocketRefused { attempt, message } => {
                if attempt == self.attempt && matches!(self.phase, Phase::Socket { .. }) {
                    self.phase = Phase::IDLE;
                    self.fail(Error::new(ErrorKind::BadUrl, message));
                }
            }
            Input::SocketClosed { attempt, code, reason } => {
                if attempt == self.attempt && self.phase.has_socket() {
                    self.on_socket_closed(now, code, reason);
                }
            }
            Input::Frame { attempt, inbound } => {
                if attempt == self.attempt && self.phase.is_open() {
                    self.on_frame(now, inbound);
                }
            }
            Input::BadFrame { attempt, message } => {
                if let (true, Phase::Open(open)) = (attempt == self.attempt, &mut self.phase) {
                    open.last_received = now;
                    self.emit_error(Error::new(ErrorKind::BadFrame, message));
                }
            }
            // The one timer asked for has fired: none is armed now (see `reschedule`).
            Input::Tick => self.scheduled = None,
            Input::Offline => {
                self.online = false;
                if let Phase::Waiting { retry_at, server_hold: false } = &mut self.phase {
                    *retry_at = None; // paused until online
                }
            }
            Input::Online => {
                self.online = true;
                self.wake_up(now);
            }
            Input::Visible => self.wake_up(now),
            Input::Send { id, text, ack } => self.queue_app(now, text, id, Origin::Send { ack }),
            Input::Request { id, text, timeout_ms } => {
                let deadline = now.saturating_add(timeout_ms.unwrap_or(self.cfg.request_timeout_ms));
                self.requests.add(id, Kind::Request, deadline, false);
                self.queue_app(now, text, id, Origin::Request);
            }
            Input::Join { room, id } => self.join(now, room, id),
            Input::Leave { room, id } => self.leave(now, room, id),
            Input::Share(input) => self.on_share(now, input),
        }
    }

    // ---- connection lifecycle -----------------------------------------------------------------

    #[inline(never)]
    pub(super) fn start_attempt(&mut self, now: u64) {
        self.attempt = self.attempt.wrapping_add(1);
        if self.role() == Some(Role::Follower) {
            self.start_relay(now);
            return;
        }
        self.phase = Phase::Credentials { deadline: now.saturating_add(self.cfg.connect_timeout_ms) };
        self.push(Action::FetchCredentials { attempt: self.attempt });
    }

    #[inline(never)]
    pub(super) fn on_open(&mut self, now: u64) {
        self.phase = Phase::Open(Open::new(now, self.cfg.default_heartbeat_ms, self.cfg.stable_after_ms));
        self.transport_opened(now);
        if self.expect_welcome {
            // The welcome decides the resume, which must go before anything else.
            self.sender.hold(now.saturating_add(self.cfg.welcome_timeout_ms));
        }
        // Every wanted room, again: with the app's own id when a join of it is waiting.
        // (By index, no copy of the list: nothing here changes it.)
        let mut i = 0;
        while let Some(room) = self.rooms.get(i).map(String::from) {
            i += 1;
            let id = match self.requests.waiting_join(&room) {
                Some(id) => id,
                None => {
                    let id = self.next_id();
                    let deadline = now.saturating_add(self.cfg.request_timeout_ms);
                    self.requests.add(id, Kind::Rejoin(room.clone()), deadline, false);
                    id
                }
            };
            self.requests.mark_sent(id);
            self.sender.push_control(frames::join(id, &room), id, false);
        }
        self.set_state(State::Open);
    }

    #[inline(never)]
    fn on_socket_closed(&mut self, now: u64, code: u16, reason: String) {
        let opened = self.phase.is_open();
        self.connection_lost();
        if self.transport_failed(now, code, opened) {
            return;
        }
        // The close code's error: its kind, and its text (`None`: the server's reason).
        let (kind, text) = match CloseCode::from_u16(code) {
            CloseCode::Normal if reason == REASON_REPLACED => (ErrorKind::Replaced, None),
            CloseCode::Normal => (ErrorKind::ServerClosed, reason.is_empty().then_some("closed by the server")),
            CloseCode::Unauthorized => {
                return self.on_auth_failure(now, String::from("the server refused the credentials"), Some(code));
            }
            CloseCode::Unsupported => (ErrorKind::Unsupported, Some("the server refused a binary frame")),
            CloseCode::InvalidPayload => (ErrorKind::InvalidPayload, Some("the server saw invalid UTF-8")),
            CloseCode::TooBig => (ErrorKind::MessageTooBig, Some("a message was over the server's size limit")),
            CloseCode::Policy => (ErrorKind::PolicyViolation, None),
            CloseCode::ServerError => (ErrorKind::ServerError, None),
            CloseCode::TryAgainLater => (ErrorKind::TryAgainLater, None),
            _ => return self.retry(now, None),
        };
        let retried = matches!(kind, ErrorKind::PolicyViolation | ErrorKind::ServerError | ErrorKind::TryAgainLater);
        // The server is full: wait the longest.
        let min = matches!(kind, ErrorKind::TryAgainLater).then_some(self.cfg.backoff.max_ms);
        let error = Error::new(kind, text.map_or(reason, String::from)).with_close(code);
        if retried {
            self.emit_error(error);
            self.retry(now, min);
        } else {
            self.fail(error);
        }
    }

    /// Closes the connection (socket, relay or SSE stream) with 1000 and `reason`, and forgets
    /// it: the machine gives it up itself (another tab leads, a probe, a relay that timed out).
    pub(super) fn give_up_connection(&mut self, reason: &'static str) {
        self.push(Action::CloseSocket { code: CloseCode::Normal.as_u16(), reason });
        self.connection_lost();
    }

    /// Common to every way a connection ends: forget what belonged to it.
    #[inline(never)]
    pub(super) fn connection_lost(&mut self) {
        let was_open = self.phase.is_open();
        if was_open {
            self.share_connection_lost();
        }
        self.phase = Phase::IDLE;
        self.sender.on_connection_lost();
        if !was_open {
            return;
        }
        let actions = &mut self.actions;
        self.requests.connection_lost(|id, result| actions.push(Action::Settle { id, result: result.map(|()| None) }));
        self.stream.on_connection_lost();
    }

    /// 401 or 403 from the ticket URL: the token was refused, which fresh credentials may fix
    /// once. Anything else: retried with backoff.
    fn on_credentials_failed(&mut self, now: u64, status: Option<u16>, message: String) {
        let message = match status {
            Some(code) => {
                let mut m = String::from("the ticket URL answered HTTP ");
                frames::push_u64(&mut m, code.into());
                m
            }
            None => message,
        };
        if matches!(status, Some(401 | 403)) {
            self.on_auth_failure(now, message, None);
        } else {
            self.emit_error(Error::new(ErrorKind::TicketFailed, message));
            self.retry(now, None);
        }
    }

    fn on_auth_failure(&mut self, now: u64, message: String, close_code: Option<u16>) {
        self.auth_failures += 1;
        if self.auth_failures >= 2 {
            let mut e = Error::new(ErrorKind::AuthFailed, message);
            e.close_code = close_code;
            self.fail(e);
        } else {
            // Fresh credentials, at once: a ticket or token may just have expired.
            self.set_state(State::Reconnecting);
            self.start_attempt(now);
        }
    }

    /// Schedules the next attempt after a backoff delay (at least `min_ms`).
    #[inline(never)]
    pub(super) fn retry(&mut self, now: u64, min_ms: Option<u64>) {
        // A failure of another kind breaks a run of auth failures.
        self.auth_failures = 0;
        if self.role() == Some(Role::Follower) {
            // A relay costs the server nothing: try again when a leader says it is open.
            self.set_state(State::Reconnecting);
            let retry_at = now.saturating_add(share::RELAY_TIMEOUT_MS);
            self.phase = Phase::Waiting { retry_at: Some(retry_at), server_hold: false };
            return;
        }
        if let Some(max) = self.cfg.max_attempts {
            if self.failures >= max {
                self.fail(Error::new(ErrorKind::MaxAttempts, "gave up: reconnect.maxAttempts reached"));
                return;
            }
        }
        let mut delay = self.cfg.backoff.delay(self.failures, self.rng.as_mut());
        if let Some(min) = min_ms {
            delay = delay.max(min);
        }
        self.failures = self.failures.saturating_add(1);
        self.set_state(State::Reconnecting);
        self.push(Action::Emit(Event::Retry { attempt: self.failures, delay_ms: delay }));
        let server_hold = min_ms.is_some();
        let retry_at = (self.online || server_hold).then(|| now.saturating_add(delay));
        self.phase = Phase::Waiting { retry_at, server_hold };
    }

    /// Online or visible again: check a live connection at once, retry a waiting one now
    /// (unless the server asked to wait).
    fn wake_up(&mut self, now: u64) {
        let (grace, probe_ms) = (self.cfg.heartbeat_grace_ms, self.cfg.probe_timeout_ms);
        match &mut self.phase {
            Phase::Open(open) if now >= open.liveness_deadline(grace) => self.drop_dead(now),
            Phase::Open(open) if open.welcomed && open.probe_deadline.is_none() => {
                open.probe_deadline = Some(now.saturating_add(probe_ms));
                // The server counts it: the sender paces around it; its `pong` carries the id.
                let id = self.next_id();
                self.push(Action::Send(frames::ping(id)));
                self.sender.record(id, now);
            }
            Phase::Waiting { server_hold: false, .. } if self.state == State::Reconnecting && self.online => {
                self.start_attempt(now)
            }
            _ => {}
        }
    }

    /// Drops a connection that stopped answering, without waiting for its close event.
    pub(super) fn drop_dead(&mut self, now: u64) {
        self.push(Action::CloseSocket { code: CLOSE_LIVENESS, reason: "Heartbeat timeout" });
        self.connection_lost();
        self.retry(now, None);
    }

    fn close(&mut self) {
        if self.phase.has_socket() {
            self.push(Action::CloseSocket { code: CloseCode::Normal.as_u16(), reason: "Client closed" });
        }
        self.shut_down(None);
    }

    /// Ends in `closed` with a fatal error.
    pub(super) fn fail(&mut self, error: Error) {
        if self.phase.has_socket() {
            self.push(Action::CloseSocket { code: CloseCode::Normal.as_u16(), reason: "Client closed" });
        }
        self.shut_down(Some(error));
    }

    #[inline(never)]
    fn shut_down(&mut self, error: Option<Error>) {
        if self.phase.is_open() {
            self.share_connection_lost();
        }
        if let Some(s) = self.share.as_ref() {
            let bye = super::share::Peer::Bye { from: s.me };
            self.push(Action::Post(bye));
        }
        self.phase = Phase::IDLE;
        let actions = &mut self.actions;
        self.requests.close(|id| {
            let result = Err(Error::new(ErrorKind::Closed, "the client is closed"));
            actions.push(Action::Settle { id, result });
        });
        // The shell rejects every promise still pending (`{ack: true}` sends included) on close.
        self.sender.clear();
        self.app_ids.clear();
        if let Some(e) = error {
            self.emit_error(e);
        }
        self.set_state(State::Closed);
    }

    fn refuse_after_close(&mut self, input: Input<P>) {
        let closed = || Error::new(ErrorKind::Closed, "the client is closed: create a new one");
        match input {
            Input::Send { id, ack, .. } => {
                self.send_refused = true;
                self.app_failed(id, Origin::Send { ack }, closed());
            }
            Input::Request { id, .. } | Input::Join { id, .. } | Input::Leave { id, .. } => {
                self.settle_err(id, closed())
            }
            _ => {}
        }
    }

    // ---- helpers ----------------------------------------------------------------------------------

    pub(super) fn push(&mut self, action: Action<P>) {
        self.actions.push(action);
    }

    pub(super) fn set_state(&mut self, state: State) {
        if self.state != state {
            self.state = state;
            self.push(Action::Emit(Event::State(state)));
        }
    }

    pub(super) fn emit_error(&mut self, error: Error) {
        self.push(Action::Emit(Event::Error(error)));
    }

    pub(super) fn settle_err(&mut self, id: Id, error: Error) {
        self.push(Action::Settle { id, result: Err(error) });
    }
}
