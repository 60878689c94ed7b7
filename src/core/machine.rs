//! The connection machine: `handle(input, now) -> actions`. No I/O, no clock, no randomness
//! of its own: the browser shell feeds it events and performs what it returns.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::backoff::Random;
use super::frames;
use super::outbox::{Outbox, Queued};
use super::rooms::Rooms;
use super::stream::{OnWelcome, Outcome, Stream};
use super::vecmap::VecMap;
use super::types::{Action, Config, Error, ErrorKind, Event, InKind, Inbound, Input, State};
use crate::protocol::{is_valid_room_name, CloseCode, REASON_REPLACED};

/// Close code the client sends when it drops a connection it believes dead.
pub const CLOSE_LIVENESS: u16 = 4000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum PendingKind {
    Request,
    Join(String),
    Leave,
    /// A re-join the machine sent itself after a reconnect: its reply is not the app's.
    Rejoin(String),
}

#[derive(Debug, Clone)]
struct Pending {
    kind: PendingKind,
    deadline: u64,
    sent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No attempt in flight.
    None,
    Credentials,
    Socket,
    Open,
}

pub struct Machine<P> {
    cfg: Config,
    rng: Box<dyn Random>,
    state: State,
    phase: Phase,
    /// The generation of the current attempt; inputs of older ones are ignored.
    attempt: u32,
    /// Consecutive failed attempts (drives the backoff and `max_attempts`).
    failures: u32,
    auth_failures: u32,
    reconnect_at: Option<u64>,
    online: bool,
    open_since: Option<u64>,
    stable: bool,
    heartbeat_ms: u64,
    last_received: u64,
    welcomed: bool,
    probe_deadline: Option<u64>,
    throttled_until: Option<u64>,
    rooms: Rooms,
    outbox: Outbox,
    stream: Stream<P>,
    pending: VecMap<String, Pending>,
    next_id: u64,
    scheduled: Option<u64>,
    actions: Vec<Action<P>>,
}

impl<P: Clone> Machine<P> {
    pub fn new(cfg: Config, rng: Box<dyn Random>) -> Self {
        Machine {
            heartbeat_ms: cfg.default_heartbeat_ms,
            outbox: Outbox::new(cfg.outbox),
            stream: Stream::new(cfg.max_ahead),
            cfg,
            rng,
            state: State::Idle,
            phase: Phase::None,
            attempt: 0,
            failures: 0,
            auth_failures: 0,
            reconnect_at: None,
            online: true,
            open_since: None,
            stable: false,
            last_received: 0,
            welcomed: false,
            probe_deadline: None,
            throttled_until: None,
            rooms: Rooms::default(),
            pending: VecMap::new(),
            next_id: 0,
            scheduled: None,
            actions: Vec::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The rooms the application wants.
    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.iter()
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    pub fn outbox_bytes(&self) -> usize {
        self.outbox.bytes()
    }

    pub fn pending_requests(&self) -> usize {
        self.pending.values().filter(|p| p.kind != PendingKind::Leave).count()
    }

    /// The last user-stream seq delivered, and its epoch.
    pub fn stream_position(&self) -> (Option<&str>, u64) {
        (self.stream.epoch(), self.stream.last_seq())
    }

    /// A fresh request id.
    pub fn next_id(&mut self) -> String {
        self.next_id += 1;
        frames::u64_to_string(self.next_id)
    }

    /// Feeds one input at wall-clock time `now` (ms) and returns what to do, in order.
    pub fn handle(&mut self, input: Input<P>, now: u64) -> Vec<Action<P>> {
        self.step(input, now);
        self.check_clock(now);
        self.reschedule(now);
        core::mem::take(&mut self.actions)
    }

    fn step(&mut self, input: Input<P>, now: u64) {
        if self.state == State::Closed {
            self.refuse_after_close(input);
            return;
        }
        match input {
            Input::Connect => {
                if self.state == State::Idle {
                    self.set_state(State::Connecting);
                    self.start_attempt();
                }
            }
            Input::Close => self.close(),
            Input::CredentialsReady { attempt } => {
                if attempt == self.attempt && self.phase == Phase::Credentials {
                    self.phase = Phase::Socket;
                    self.push(Action::OpenSocket { attempt });
                }
            }
            Input::CredentialsFailed { attempt, auth, message } => {
                if attempt == self.attempt && self.phase == Phase::Credentials {
                    self.phase = Phase::None;
                    if auth {
                        self.on_auth_failure(message, None);
                    } else {
                        self.emit_error(Error::new(ErrorKind::TicketFailed, message));
                        self.retry(now, None);
                    }
                }
            }
            Input::SocketOpened { attempt } => {
                if attempt == self.attempt && self.phase == Phase::Socket {
                    self.on_open(now);
                }
            }
            Input::SocketClosed { attempt, code, reason } => {
                if attempt == self.attempt && matches!(self.phase, Phase::Socket | Phase::Open) {
                    self.on_socket_closed(now, code, reason);
                }
            }
            Input::Frame { attempt, inbound } => {
                if attempt == self.attempt && self.phase == Phase::Open {
                    self.on_frame(now, inbound);
                }
            }
            Input::BadFrame { attempt, message } => {
                if attempt == self.attempt && self.phase == Phase::Open {
                    self.last_received = now;
                    self.emit_error(Error::new(ErrorKind::BadFrame, message));
                }
            }
            Input::Tick => {}
            Input::Offline => {
                self.online = false;
                if self.phase == Phase::None && self.reconnect_at.is_some() {
                    self.reconnect_at = None; // paused until online
                }
            }
            Input::Online => {
                self.online = true;
                self.wake_up(now);
            }
            Input::Visible => self.wake_up(now),
            Input::Send { text } => self.send_or_queue(now, text, None),
            Input::Request { id, text, timeout_ms } => {
                let deadline = now.saturating_add(timeout_ms.unwrap_or(self.cfg.request_timeout_ms));
                self.pending.insert(id.clone(), Pending { kind: PendingKind::Request, deadline, sent: false });
                self.send_or_queue(now, text, Some(id));
            }
            Input::Join { room, id } => self.join(now, room, id),
            Input::Leave { room, id } => self.leave(now, room, id),
        }
    }

    // ---- connection lifecycle -----------------------------------------------------------------

    fn start_attempt(&mut self) {
        self.attempt = self.attempt.wrapping_add(1);
        self.phase = Phase::Credentials;
        self.reconnect_at = None;
        self.push(Action::FetchCredentials { attempt: self.attempt });
    }

    fn on_open(&mut self, now: u64) {
        self.phase = Phase::Open;
        self.open_since = Some(now);
        self.stable = false;
        self.last_received = now;
        self.welcomed = false;
        self.probe_deadline = None;
        self.heartbeat_ms = self.cfg.default_heartbeat_ms;
        self.set_state(State::Open);
        // Every wanted room, again: with the app's own id when a join of it is waiting.
        let rooms: Vec<String> = self.rooms.iter().map(String::from).collect();
        for room in rooms {
            let waiting = self
                .pending
                .iter()
                .find(|(_, p)| !p.sent && p.kind == PendingKind::Join(room.clone()))
                .map(|(id, _)| id.clone());
            let id = match waiting {
                Some(id) => id,
                None => {
                    let id = self.next_id();
                    let deadline = now.saturating_add(self.cfg.request_timeout_ms);
                    self.pending.insert(id.clone(), Pending { kind: PendingKind::Rejoin(room.clone()), deadline, sent: false });
                    id
                }
            };
            if let Some(p) = self.pending.get_mut(&id) {
                p.sent = true;
            }
            self.push(Action::Send(frames::join(&id, &room)));
        }
        self.flush_outbox(now);
    }

    fn on_socket_closed(&mut self, now: u64, code: u16, reason: String) {
        self.connection_lost();
        match CloseCode::from_u16(code) {
            CloseCode::Normal => {
                let kind = if reason == REASON_REPLACED { ErrorKind::Replaced } else { ErrorKind::ServerClosed };
                let msg = if reason.is_empty() { String::from("the server closed the connection") } else { reason };
                self.fail(Error::new(kind, msg).with_close(code));
            }
            CloseCode::Unauthorized => self.on_auth_failure(String::from("the server refused the credentials"), Some(code)),
            CloseCode::Unsupported => self.fail(Error::new(ErrorKind::Unsupported, "the server refused a binary frame").with_close(code)),
            CloseCode::InvalidPayload => self.fail(Error::new(ErrorKind::InvalidPayload, "the server saw invalid UTF-8").with_close(code)),
            CloseCode::TooBig => self.fail(
                Error::new(ErrorKind::MessageTooBig, "a message was over the server's size limit").with_close(code),
            ),
            CloseCode::Policy => {
                self.emit_error(Error::new(ErrorKind::PolicyViolation, reason).with_close(code));
                self.retry(now, None);
            }
            CloseCode::ServerError => {
                self.emit_error(Error::new(ErrorKind::ServerError, reason).with_close(code));
                self.retry(now, None);
            }
            CloseCode::TryAgainLater => {
                self.emit_error(Error::new(ErrorKind::TryAgainLater, reason).with_close(code));
                let max = self.cfg.backoff.max_ms;
                self.retry(now, Some(max));
            }
            _ => self.retry(now, None),
        }
    }

    /// Common to every way a connection ends: forget what belonged to it.
    fn connection_lost(&mut self) {
        let was_open = self.phase == Phase::Open;
        self.phase = Phase::None;
        self.open_since = None;
        self.probe_deadline = None;
        if !was_open {
            return;
        }
        let lost: Vec<String> = self.pending.iter().filter(|(_, p)| p.sent).map(|(id, _)| id.clone()).collect();
        for id in lost {
            if let Some(p) = self.pending.remove(&id) {
                match p.kind {
                    PendingKind::Rejoin(_) => {}
                    PendingKind::Join(room) => {
                        // The room stays wanted: it is joined again on the next open.
                        self.pending.insert(id, Pending { kind: PendingKind::Join(room), deadline: p.deadline, sent: false });
                    }
                    _ => self.settle_err(id, Error::new(ErrorKind::Disconnected, "the connection was lost before the reply")),
                }
            }
        }
        let out = self.stream.on_connection_lost();
        self.apply_outcome(out);
    }

    fn on_auth_failure(&mut self, message: String, close_code: Option<u16>) {
        self.auth_failures += 1;
        if self.auth_failures >= 2 {
            let mut e = Error::new(ErrorKind::AuthFailed, message);
            e.close_code = close_code;
            self.fail(e);
        } else {
            // Fresh credentials, at once: a ticket or token may just have expired.
            self.set_state(State::Reconnecting);
            self.start_attempt();
        }
    }

    /// Schedules the next attempt after a backoff delay (at least `min_ms`).
    fn retry(&mut self, now: u64, min_ms: Option<u64>) {
        if let Some(max) = self.cfg.max_attempts {
            if self.failures >= max {
                let msg = frames::concat(&["gave up after ", &frames::u64_to_string(u64::from(max)), " failed attempts"]);
                self.fail(Error::new(ErrorKind::MaxAttempts, msg));
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
        self.reconnect_at = if self.online { Some(now.saturating_add(delay)) } else { None };
    }

    /// Online or visible again: check a live connection at once, retry a waiting one now.
    fn wake_up(&mut self, now: u64) {
        match self.phase {
            Phase::Open => {
                if now >= self.liveness_deadline() {
                    self.drop_dead(now);
                } else if self.welcomed && self.probe_deadline.is_none() {
                    self.probe_deadline = Some(now.saturating_add(self.cfg.probe_timeout_ms));
                    self.push(Action::Send(String::from(frames::PING)));
                }
            }
            Phase::None if self.state == State::Reconnecting && self.online => self.start_attempt(),
            _ => {}
        }
    }

    fn liveness_deadline(&self) -> u64 {
        self.last_received.saturating_add(self.heartbeat_ms).saturating_add(self.cfg.heartbeat_grace_ms)
    }

    /// Drops a connection that stopped answering, without waiting for its close event.
    fn drop_dead(&mut self, now: u64) {
        self.push(Action::CloseSocket { code: CLOSE_LIVENESS, reason: "Heartbeat timeout" });
        self.connection_lost();
        self.retry(now, None);
    }

    fn close(&mut self) {
        if matches!(self.phase, Phase::Socket | Phase::Open) {
            self.push(Action::CloseSocket { code: CloseCode::Normal.as_u16(), reason: "Client closed" });
        }
        self.shut_down(None);
    }

    /// Ends in `closed` with a fatal error.
    fn fail(&mut self, error: Error) {
        if matches!(self.phase, Phase::Socket | Phase::Open) {
            self.push(Action::CloseSocket { code: CloseCode::Normal.as_u16(), reason: "Client closed" });
        }
        self.shut_down(Some(error));
    }

    fn shut_down(&mut self, error: Option<Error>) {
        self.phase = Phase::None;
        self.reconnect_at = None;
        self.probe_deadline = None;
        self.throttled_until = None;
        let ids: Vec<String> = self.pending.keys().cloned().collect();
        for id in ids {
            if let Some(p) = self.pending.remove(&id) {
                if !matches!(p.kind, PendingKind::Rejoin(_)) {
                    self.settle_err(id, Error::new(ErrorKind::Closed, "the client is closed"));
                }
            }
        }
        self.outbox.drain();
        if let Some(e) = error {
            self.emit_error(e);
        }
        self.set_state(State::Closed);
    }

    fn refuse_after_close(&mut self, input: Input<P>) {
        let closed = || Error::new(ErrorKind::Closed, "the client is closed: create a new one");
        match input {
            Input::Send { .. } => self.emit_error(closed()),
            Input::Request { id, .. } | Input::Join { id, .. } | Input::Leave { id, .. } => self.settle_err(id, closed()),
            _ => {}
        }
    }

    // ---- frames ---------------------------------------------------------------------------------

    fn on_frame(&mut self, now: u64, inbound: Inbound<P>) {
        self.last_received = now;
        self.probe_deadline = None;
        if self.auth_failures > 0 {
            self.auth_failures = 0; // the server spoke to us: the credentials were good
        }
        let Inbound { kind, id, seq, msg } = inbound;
        match kind {
            InKind::Ping => {
                self.push(Action::Send(String::from(frames::PONG)));
                return;
            }
            InKind::Welcome { heartbeat_ms, epoch, seq } => {
                self.welcomed = true;
                if heartbeat_ms > 0 {
                    self.heartbeat_ms = heartbeat_ms;
                }
                match self.stream.on_welcome(&epoch, seq) {
                    OnWelcome::Nothing => {}
                    OnWelcome::Resume { epoch, since } => {
                        let rid = self.next_id();
                        self.push(Action::Send(frames::resume(&rid, &epoch, since)));
                    }
                    OnWelcome::Resync(reason) => self.push(Action::Emit(Event::Resync(reason))),
                }
                return;
            }
            InKind::Resumed { complete } => {
                let out = self.stream.on_resumed(complete);
                self.apply_outcome(out);
                return;
            }
            InKind::Error { ref code, ref message } => {
                if code == "rate_limited" {
                    self.throttled_until = Some(now.saturating_add(self.cfg.throttle_ms));
                }
                if let Some(id) = id.as_deref() {
                    if let Some(p) = self.pending.remove(id) {
                        let error = if code == "rate_limited" {
                            Error::new(ErrorKind::RateLimited, message.clone())
                        } else {
                            Error::new(ErrorKind::Server(code.clone()), message.clone())
                        };
                        match p.kind {
                            PendingKind::Join(room) => {
                                self.rooms.unwant(&room);
                                self.settle_err(String::from(id), error);
                            }
                            PendingKind::Rejoin(room) => {
                                // A room the app wanted can no longer be joined: say so, once.
                                self.rooms.unwant(&room);
                                self.emit_error(error);
                            }
                            _ => self.settle_err(String::from(id), error),
                        }
                        return;
                    }
                }
                let kind = if code == "rate_limited" { ErrorKind::RateLimited } else { ErrorKind::Server(code.clone()) };
                self.emit_error(Error::new(kind, message.clone()));
                return;
            }
            InKind::Pong if id.is_none() => return, // the answer to a liveness probe
            InKind::Pong | InKind::Other => {}
        }
        if let Some(id) = id.as_deref() {
            if let Some(p) = self.pending.remove(id) {
                match p.kind {
                    PendingKind::Rejoin(_) => {}
                    _ => self.push(Action::Settle { id: String::from(id), result: Ok(Some(msg)) }),
                }
                return;
            }
        }
        match seq {
            Some(seq) if self.stream.epoch().is_some() => {
                let out = self.stream.on_message(seq, msg);
                self.apply_outcome(out);
            }
            _ => self.push(Action::Emit(Event::Message(msg))),
        }
    }

    fn apply_outcome(&mut self, out: Outcome<P>) {
        for msg in out.deliver {
            self.push(Action::Emit(Event::Message(msg)));
        }
        if let Some(reason) = out.resync {
            self.push(Action::Emit(Event::Resync(reason)));
        }
    }

    // ---- sending --------------------------------------------------------------------------------

    fn can_send_now(&self, now: u64) -> bool {
        self.phase == Phase::Open && self.throttled_until.is_none_or(|t| now >= t)
    }

    fn send_or_queue(&mut self, now: u64, text: String, id: Option<String>) {
        if self.can_send_now(now) && self.outbox.is_empty() {
            if let Some(p) = id.as_deref().and_then(|id| self.pending.get_mut(id)) {
                p.sent = true;
            }
            self.push(Action::Send(text));
            return;
        }
        let expires_at = self.cfg.outbox_ttl_ms.map(|ttl| now.saturating_add(ttl));
        if self.outbox.push(Queued { text, expires_at, id: id.clone() }).is_err() {
            let limits = self.outbox.limits();
            let msg = frames::concat(&[
                "the outbox is full (",
                &frames::u64_to_string(limits.max_messages as u64),
                " messages or ",
                &frames::u64_to_string(limits.max_bytes as u64),
                " bytes): the message was not queued",
            ]);
            let error = Error::new(ErrorKind::OutboxFull, msg);
            match id {
                Some(id) => {
                    self.pending.remove(&id);
                    self.settle_err(id, error);
                }
                None => self.emit_error(error),
            }
        }
    }

    fn flush_outbox(&mut self, now: u64) {
        if !self.can_send_now(now) {
            return;
        }
        for item in self.outbox.drain() {
            if let Some(p) = item.id.as_deref().and_then(|id| self.pending.get_mut(id)) {
                p.sent = true;
            }
            self.push(Action::Send(item.text));
        }
    }

    fn join(&mut self, now: u64, room: String, id: String) {
        if !is_valid_room_name(&room) {
            let e = Error::new(ErrorKind::BadRoom, "room names are 1-64 characters of [A-Za-z0-9_.:-]");
            self.settle_err(id, e);
            return;
        }
        self.rooms.want(&room);
        let deadline = now.saturating_add(self.cfg.request_timeout_ms);
        let sent = self.phase == Phase::Open;
        self.pending.insert(id.clone(), Pending { kind: PendingKind::Join(room.clone()), deadline, sent });
        if sent {
            self.push(Action::Send(frames::join(&id, &room)));
        }
    }

    fn leave(&mut self, now: u64, room: String, id: String) {
        self.rooms.unwant(&room);
        // A join of that room still waiting for a connection will never happen now.
        let waiting: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| !p.sent && p.kind == PendingKind::Join(room.clone()))
            .map(|(id, _)| id.clone())
            .collect();
        for wid in waiting {
            self.pending.remove(&wid);
            self.settle_err(wid, Error::new(ErrorKind::Closed, "left the room before it was joined"));
        }
        if self.phase == Phase::Open {
            let deadline = now.saturating_add(self.cfg.request_timeout_ms);
            self.pending.insert(id.clone(), Pending { kind: PendingKind::Leave, deadline, sent: true });
            self.push(Action::Send(frames::leave(&id, &room)));
        } else {
            // Not connected: not in the room, and it will not be joined again.
            self.push(Action::Settle { id, result: Ok(None) });
        }
    }

    // ---- time -------------------------------------------------------------------------------------

    /// Everything due at `now`: stability, liveness, probes, retries, deadlines, throttling.
    fn check_clock(&mut self, now: u64) {
        if self.state == State::Closed {
            return;
        }
        if let (Some(since), false) = (self.open_since, self.stable) {
            if now >= since.saturating_add(self.cfg.stable_after_ms) {
                self.stable = true;
                self.failures = 0;
                self.auth_failures = 0;
            }
        }
        if self.phase == Phase::Open {
            let probe_failed = self.probe_deadline.is_some_and(|t| now >= t);
            if probe_failed || now >= self.liveness_deadline() {
                self.drop_dead(now);
            }
        }
        if self.phase == Phase::None && self.reconnect_at.is_some_and(|t| now >= t) {
            self.start_attempt();
        }
        let expired: Vec<String> =
            self.pending.iter().filter(|(_, p)| now >= p.deadline).map(|(id, _)| id.clone()).collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                self.outbox.remove_id(&id);
                match p.kind {
                    PendingKind::Rejoin(_) => {}
                    _ => self.settle_err(id, Error::new(ErrorKind::Timeout, "no reply in time")),
                }
            }
        }
        for item in self.outbox.expire(now) {
            let e = Error::new(ErrorKind::Expired, "a queued message was not sent in time and was dropped");
            match item.id {
                Some(id) => {
                    self.pending.remove(&id);
                    self.settle_err(id, e);
                }
                None => self.emit_error(e),
            }
        }
        if self.throttled_until.is_some_and(|t| now >= t) {
            self.throttled_until = None;
            self.flush_outbox(now);
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        if self.state == State::Closed {
            return None;
        }
        let mut next: Option<u64> = None;
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.reconnect_at);
        if self.phase == Phase::Open {
            consider(Some(self.liveness_deadline()));
            consider(self.probe_deadline);
            if !self.stable {
                consider(self.open_since.map(|s| s.saturating_add(self.cfg.stable_after_ms)));
            }
            if !self.outbox.is_empty() {
                consider(self.throttled_until);
            }
        }
        consider(self.pending.values().map(|p| p.deadline).min());
        consider(self.outbox.next_deadline());
        next
    }

    fn reschedule(&mut self, now: u64) {
        let next = self.next_deadline().map(|t| t.max(now));
        if next != self.scheduled {
            self.scheduled = next;
            self.actions.push(Action::Schedule(next));
        }
    }

    // ---- helpers ----------------------------------------------------------------------------------

    fn push(&mut self, action: Action<P>) {
        self.actions.push(action);
    }

    fn set_state(&mut self, state: State) {
        if self.state != state {
            self.state = state;
            self.push(Action::Emit(Event::State(state)));
        }
    }

    fn emit_error(&mut self, error: Error) {
        self.push(Action::Emit(Event::Error(error)));
    }

    fn settle_err(&mut self, id: String, error: Error) {
        self.push(Action::Settle { id, result: Err(error) });
    }
}
