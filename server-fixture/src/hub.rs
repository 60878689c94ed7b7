//! The connection manager of one instance: its connections per user, their rooms, SSE
//! streams, and the kill switches that end a connection from outside its task.
//!
//! An SSE stream is a connection too ([`Kind::Sse`]), with its own caps (`--max-sse-per-user`,
//! `--max-sse`) and counted apart from WebSocket connections: it gets the user stream the same
//! way (held until its welcome, in seq order), and an SSE session (the resumable mode) joins
//! rooms and gets room messages, presence and broadcasts like a socket. What
//! instances share (streams, tickets, the store, fan-out) is the engine's (`engine/`); the engine
//! hands the hub what to deliver here.
//!
//! Every connection has a bounded queue of outgoing frames. The hub only ever `try_send`s into
//! it while holding its lock, so a broadcast never waits on a slow reader, and frames of one
//! user's stream are queued in seq order on every connection. A connection whose queue is full
//! is not reading: it is removed at once and closed with 1008 (see [`SLOW_CONSUMER_REASON`]).
//!
//! A new connection is held until its `welcome` ([`Hub::welcome`]): what is delivered to it
//! before is kept back, and user-stream frames that the welcome's seq already covers are
//! dropped, so `welcome` is always the first frame and nothing falls between the welcome's seq
//! and the live stream.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::RngCore;
use resock::protocol::{CloseCode, Frame, Joined, ServerMessage, Welcome, REASON_REPLACED};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::log;
use crate::text::Esc;

pub type ConnId = u64;

/// Why a client that does not read is closed with 1008 (policy violation): the server will not
/// buffer without bound for it, and the client should reconnect and `resume`, which replays what
/// it missed. 1008 rather than 1011 (not a server fault) or 1013 (not overload: other clients are
/// served normally). The close frame is sent best-effort: a client that does not read may never
/// see it, and then sees 1006.
pub const SLOW_CONSUMER_REASON: &str = "Send queue full: client is not reading";

/// The close reason when a connection's user stream started a new epoch under it (1012).
pub const STREAM_RESET_REASON: &str = "Stream reset: reconnect and resume";

/// A frame for a connection's writer.
#[derive(Debug, Clone)]
pub enum Out {
    Text(Arc<str>),
    /// Several frames queued as one, so that a resume replay takes one slot and stays in order.
    Batch(Vec<Arc<str>>),
}

/// How the hub ends a connection from outside.
#[derive(Debug, Clone)]
pub enum Kill {
    /// Send a close frame with this code and reason, then end.
    Close(u16, &'static str),
    /// End without a close frame, as a network failure would (`/dev/drop`).
    Cut,
}

/// One user-stream message: the whole WebSocket frame, once. SSE's event name and `data:` are
/// slices of it (a 1 KB notification used to be held three times over).
#[derive(Debug)]
pub struct StreamItem {
    pub seq: u64,
    /// `{"type":"KIND","payload":PAYLOAD,"seq":SEQ}`.
    pub frame: Arc<str>,
    kind: std::ops::Range<usize>,
    payload: std::ops::Range<usize>,
}

const HEAD: &str = "{\"type\":\"";
const MIDDLE: &str = "\",\"payload\":";

impl StreamItem {
    /// The frame of message `seq`: `kind` is a plain identifier (a protocol type), `payload`
    /// one-line JSON.
    pub fn new(seq: u64, kind: &str, payload: &str) -> StreamItem {
        let frame = format!("{HEAD}{kind}{MIDDLE}{payload},\"seq\":{seq}}}");
        let kind = HEAD.len()..HEAD.len() + kind.len();
        let start = kind.end + MIDDLE.len();
        StreamItem { seq, frame: Arc::from(frame), kind, payload: start..start + payload.len() }
    }

    pub fn of(seq: u64, msg: &ServerMessage<Value>) -> StreamItem {
        StreamItem::new(seq, msg.kind(), &crate::engine::payload_json(msg))
    }

    /// Reads back a frame made by [`StreamItem::new`] (by this or another instance).
    pub fn parse(frame: Arc<str>) -> Option<StreamItem> {
        let rest = frame.strip_prefix(HEAD)?;
        let kind_len = rest.find(MIDDLE)?;
        let tail = frame.rfind(",\"seq\":")?;
        let seq = frame.get(tail + 7..frame.len().checked_sub(1)?)?.parse().ok()?;
        let kind = HEAD.len()..HEAD.len() + kind_len;
        let payload = kind.end + MIDDLE.len()..tail;
        (payload.start <= payload.end).then_some(StreamItem { seq, frame, kind, payload })
    }

    /// The message type.
    pub fn kind(&self) -> &str {
        self.frame.get(self.kind.clone()).unwrap_or_default()
    }

    /// The payload as one-line JSON (for SSE `data:`).
    pub fn payload(&self) -> &str {
        self.frame.get(self.payload.clone()).unwrap_or_default()
    }
}

/// 64 random bits as 16 hex digits.
pub fn new_epoch() -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What carries a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ws,
    /// An SSE stream; `session`: the resumable mode (welcome, rooms, `POST /sse/send`), else
    /// the plain stream that gets the user stream only.
    Sse {
        session: bool,
    },
}

struct Conn {
    user: String,
    kind: Kind,
    tx: mpsc::Sender<Out>,
    kill: Option<oneshot::Sender<Kill>>,
    rooms: HashSet<String>,
    /// The rooms whose member count it asked for (`presence`): a subset of `rooms`.
    presence: HashSet<String>,
    /// Until the welcome: what was delivered meanwhile, with the seq of user-stream frames.
    held: Option<Vec<(Option<u64>, Out)>>,
    /// The user-stream epoch of its welcome.
    epoch: Option<Arc<str>>,
}

#[derive(Default)]
struct State {
    conns: HashMap<ConnId, Conn>,
    /// Each user's WebSocket connections, oldest first.
    users: HashMap<String, Vec<ConnId>>,
    rooms: HashMap<String, HashSet<ConnId>>,
    /// Each user's SSE streams (also in `conns`).
    sse: HashMap<String, Vec<ConnId>>,
    sse_total: usize,
    opened_total: u64,
    /// Per user: connections opened, and the last user-stream seq delivered here.
    seen_users: HashMap<String, (u64, u64)>,
    refuse_until: Option<Instant>,
    shutting_down: bool,
}

/// The limits the hub enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_user: usize,
    pub single_connection_per_user: bool,
    pub max_rooms_per_connection: usize,
    pub send_queue: usize,
    pub max_sse_per_user: usize,
    pub max_sse: usize,
    pub heartbeat_ms: u64,
    /// Queue a `welcome` first on every connection (off with `--no-welcome`).
    pub send_welcome: bool,
}

pub struct Hub {
    state: Mutex<State>,
    /// This process's epoch (`/dev/stats`); each user's stream has its own.
    epoch: String,
    next_id: AtomicU64,
    limits: Limits,
    /// `rate_limited` answers sent since start, all connections together (`/dev/stats`).
    rate_limited_total: AtomicU64,
}

/// What a new connection gets from [`Hub::register`].
pub struct Registered {
    pub id: ConnId,
    pub rx: mpsc::Receiver<Out>,
    pub kill: oneshot::Receiver<Kill>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// Over the global or per-user cap: close 1013.
    TooMany(&'static str),
    /// Shutting down: close 1001.
    ShuttingDown,
}

/// Why an SSE stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseRefused {
    /// The user holds `--max-sse-per-user` streams: 429.
    PerUser,
    /// `--max-sse` streams are open: 503.
    Total,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomError {
    NotMember,
    RoomLimit,
    /// The connection is gone (closed while the request was handled).
    Gone,
}

/// A snapshot of the hub, for `/dev/stats` and the tests.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub connections: usize,
    pub opened_total: u64,
    pub users: HashMap<String, UserStats>,
    pub rooms: HashMap<String, usize>,
    pub sse_subscribers: usize,
    pub epoch: String,
    /// `rate_limited` answers sent since start: a client that paces its sends keeps it at 0.
    pub rate_limited_total: u64,
}

/// [`Hub::totals`].
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    pub connections: usize,
    pub opened_total: u64,
    pub rooms: usize,
    pub sse_subscribers: usize,
    pub rate_limited_total: u64,
}

#[derive(Debug, Serialize)]
pub struct UserStats {
    /// Open WebSocket connections.
    pub open: usize,
    /// Open SSE streams.
    pub sse: usize,
    pub opened_total: u64,
    /// The last user-stream seq this instance delivered (or, in memory, assigned).
    pub seq: u64,
}

/// Serializes a server message into one text frame.
pub fn encode(msg: &ServerMessage<Value>, id: Option<&str>, seq: Option<u64>) -> Arc<str> {
    let frame = Frame::new(msg).with_id(id).with_seq(seq);
    // Serializing plain data into a String cannot fail.
    Arc::from(serde_json::to_string(&frame).unwrap_or_default())
}

impl Hub {
    pub fn new(limits: Limits) -> Self {
        Hub {
            state: Mutex::new(State::default()),
            epoch: new_epoch(),
            next_id: AtomicU64::new(1),
            limits,
            rate_limited_total: AtomicU64::new(0),
        }
    }

    /// Counts one `rate_limited` answer (for `/dev/stats`).
    pub fn count_rate_limited(&self) {
        self.rate_limited_total.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while `/dev/drop`'s `refuse_ms` or a shutdown refuses new upgrades.
    pub fn refusing(&self) -> bool {
        let st = self.lock();
        st.shutting_down || st.refuse_until.is_some_and(|t| t > Instant::now())
    }

    /// Adds a connection of `user`, enforcing the caps and single-connection mode. Its frames
    /// are held until [`Hub::welcome`].
    pub fn register(&self, user: &str) -> Result<Registered, RegisterError> {
        let mut st = self.lock();
        if st.shutting_down {
            return Err(RegisterError::ShuttingDown);
        }
        if self.limits.single_connection_per_user {
            let older: Vec<ConnId> = st.users.get(user).cloned().unwrap_or_default();
            for id in older {
                log::info(format_args!("conn c{id} user={} replaced by a new connection", Esc(user)));
                remove_conn(&mut st, id, Some(Kill::Close(CloseCode::Normal.as_u16(), REASON_REPLACED)));
            }
        }
        if ws_count(&st) >= self.limits.max_connections {
            return Err(RegisterError::TooMany("Too many connections"));
        }
        if st.users.get(user).map_or(0, Vec::len) >= self.limits.max_connections_per_user {
            return Err(RegisterError::TooMany("Too many connections for this user"));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.limits.send_queue);
        let (kill_tx, kill_rx) = oneshot::channel();
        let conn = Conn {
            user: user.to_owned(),
            kind: Kind::Ws,
            tx,
            kill: Some(kill_tx),
            rooms: HashSet::new(),
            presence: HashSet::new(),
            held: Some(Vec::new()),
            epoch: None,
        };
        st.conns.insert(id, conn);
        st.users.entry(user.to_owned()).or_default().push(id);
        st.opened_total += 1;
        st.seen_users.entry(user.to_owned()).or_default().0 += 1;
        Ok(Registered { id, rx, kill: kill_rx })
    }

    /// Queues the `welcome` of connection `id` (unless `--no-welcome`), then what was held for
    /// it, less the user-stream frames that `seq` covers.
    pub fn welcome(&self, id: ConnId, epoch: &str, seq: u64) {
        let mut st = self.lock();
        let Some(conn) = st.conns.get_mut(&id) else { return };
        let held = conn.held.take().unwrap_or_default();
        conn.epoch = Some(Arc::from(epoch));
        // An SSE session's welcome carries its secret: it is always sent.
        if self.limits.send_welcome || conn.kind == (Kind::Sse { session: true }) {
            let welcome = Welcome {
                user_id: conn.user.clone(),
                connection_id: format!("c{id}"),
                heartbeat_ms: self.limits.heartbeat_ms,
                epoch: epoch.to_owned(),
                seq,
            };
            send_locked(&mut st, id, Out::Text(encode(&ServerMessage::Welcome(welcome), None, None)));
        }
        for (item_seq, out) in held {
            if item_seq.is_none_or(|s| s > seq) {
                send_locked(&mut st, id, out);
            }
        }
    }

    /// Removes every trace of a connection (user map, rooms). Safe to call twice.
    pub fn unregister(&self, id: ConnId) {
        let mut st = self.lock();
        remove_conn(&mut st, id, None);
    }

    /// Ends connection `id` from outside its task, as `how` says.
    pub fn end(&self, id: ConnId, how: Kill) {
        let mut st = self.lock();
        remove_conn(&mut st, id, Some(how));
    }

    /// True while connection `id` is registered (not ended).
    pub fn is_open(&self, id: ConnId) -> bool {
        self.lock().conns.contains_key(&id)
    }

    /// Queues a frame for one connection; a full queue closes it (slow consumer).
    pub fn send_to(&self, id: ConnId, out: Out) -> bool {
        let mut st = self.lock();
        send_locked(&mut st, id, out)
    }

    /// Adds connection `id` to `room` (a join of a room it is in answers the same).
    pub fn join(&self, id: ConnId, room: &str) -> Result<Joined, RoomError> {
        let mut st = self.lock();
        let limit = self.limits.max_rooms_per_connection;
        let conn = st.conns.get_mut(&id).ok_or(RoomError::Gone)?;
        if !conn.rooms.contains(room) {
            if conn.rooms.len() >= limit {
                return Err(RoomError::RoomLimit);
            }
            conn.rooms.insert(room.to_owned());
        }
        let members = st.rooms.entry(room.to_owned()).or_default();
        let added = members.insert(id);
        let joined = Joined { room: room.to_owned(), members: members.len() as u64 };
        if added {
            presence_locked(&mut st, room);
        }
        Ok(joined)
    }

    /// Connection `id`, a member of `room`, gets the room's member count now and a `presence`
    /// message whenever it changes, until it leaves the room.
    pub fn watch_presence(&self, id: ConnId, room: &str) -> Result<Joined, RoomError> {
        let mut st = self.lock();
        let members =
            st.rooms.get(room).filter(|m| m.contains(&id)).map(|m| m.len() as u64).ok_or(RoomError::NotMember)?;
        let conn = st.conns.get_mut(&id).ok_or(RoomError::Gone)?;
        conn.presence.insert(room.to_owned());
        Ok(Joined { room: room.to_owned(), members })
    }

    /// Leaves a room; leaving a room one is not in is not an error.
    pub fn leave(&self, id: ConnId, room: &str) {
        let mut st = self.lock();
        if let Some(conn) = st.conns.get_mut(&id) {
            conn.rooms.remove(room);
            conn.presence.remove(room);
        }
        leave_room(&mut st, id, room);
    }

    /// Checks that connection `id` may send to `room`.
    pub fn check_member(&self, id: ConnId, room: &str) -> Result<(), RoomError> {
        let st = self.lock();
        let conn = st.conns.get(&id).ok_or(RoomError::Gone)?;
        if conn.rooms.contains(room) {
            Ok(())
        } else {
            Err(RoomError::NotMember)
        }
    }

    /// True while a connection of this instance is in `room`.
    pub fn has_room(&self, room: &str) -> bool {
        self.lock().rooms.contains_key(room)
    }

    /// True while `user` has a connection or an SSE stream on this instance.
    pub fn has_user(&self, user: &str) -> bool {
        let st = self.lock();
        st.users.contains_key(user) || st.sse.contains_key(user)
    }

    /// The users with a connection or an SSE stream here.
    pub fn local_users(&self) -> Vec<String> {
        let st = self.lock();
        st.users.keys().chain(st.sse.keys()).cloned().collect::<HashSet<_>>().into_iter().collect()
    }

    /// Delivers a user-stream message of `epoch` to every local connection and SSE stream of
    /// `user`. A connection welcomed in another epoch (the shared store lost the stream) is
    /// closed 1012 instead: its seqs mean nothing now, and it reconnects, resumes and learns
    /// that the gap cannot be filled.
    pub fn deliver_user(&self, user: &str, epoch: Option<&str>, item: &Arc<StreamItem>) {
        let mut st = self.lock();
        if let Some(seen) = st.seen_users.get_mut(user) {
            seen.1 = seen.1.max(item.seq);
        }
        let mut targets: Vec<ConnId> = st.users.get(user).cloned().unwrap_or_default();
        targets.extend(st.sse.get(user).into_iter().flatten().copied());
        for target in targets {
            let stale = match (epoch, st.conns.get(&target).and_then(|c| c.epoch.as_deref())) {
                (Some(now), Some(welcomed)) => now != welcomed,
                _ => false,
            };
            if stale {
                log::info(format_args!("conn c{target} user={} closed 1012: its stream's epoch changed", Esc(user)));
                remove_conn(&mut st, target, Some(Kill::Close(1012, STREAM_RESET_REASON)));
                continue;
            }
            deliver_locked(&mut st, target, Some(item.seq), Out::Text(item.frame.clone()), self.limits.send_queue);
        }
    }

    /// Delivers a frame to every local member of `room` but connection `except`.
    pub fn deliver_room(&self, room: &str, frame: &Arc<str>, except: Option<ConnId>) -> usize {
        let mut st = self.lock();
        let targets: Vec<ConnId> =
            st.rooms.get(room).map(|m| m.iter().copied().filter(|c| Some(*c) != except).collect()).unwrap_or_default();
        for target in &targets {
            deliver_locked(&mut st, *target, None, Out::Text(frame.clone()), self.limits.send_queue);
        }
        targets.len()
    }

    /// Delivers a frame to every local connection and SSE session (not plain SSE streams: they
    /// carry the user stream only), except those of `exclude_user`.
    pub fn deliver_all(&self, frame: &Arc<str>, exclude_user: Option<&str>) -> usize {
        let mut st = self.lock();
        let targets: Vec<ConnId> = st
            .conns
            .iter()
            .filter(|(_, c)| Some(c.user.as_str()) != exclude_user && c.kind != (Kind::Sse { session: false }))
            .map(|(id, _)| *id)
            .collect();
        for target in &targets {
            deliver_locked(&mut st, *target, None, Out::Text(frame.clone()), self.limits.send_queue);
        }
        targets.len()
    }

    /// True once shutdown began: no new SSE stream (it would keep the server up).
    pub fn refusing_sse(&self) -> bool {
        self.lock().shutting_down
    }

    /// Adds an SSE stream of `user`, under the SSE caps (not the connection caps). A session
    /// (`session`) is held until its welcome ([`Hub::welcome`]), like a socket; a plain stream
    /// gets the user stream at once (its route replays what it missed first).
    pub fn register_sse(&self, user: &str, session: bool) -> Result<Registered, SseRefused> {
        let mut st = self.lock();
        if st.sse.get(user).map_or(0, Vec::len) >= self.limits.max_sse_per_user {
            return Err(SseRefused::PerUser);
        }
        if st.sse_total >= self.limits.max_sse {
            return Err(SseRefused::Total);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.limits.send_queue);
        let (kill_tx, kill_rx) = oneshot::channel();
        let conn = Conn {
            user: user.to_owned(),
            kind: Kind::Sse { session },
            tx,
            kill: Some(kill_tx),
            rooms: HashSet::new(),
            presence: HashSet::new(),
            held: session.then(Vec::new),
            epoch: None,
        };
        st.conns.insert(id, conn);
        st.sse.entry(user.to_owned()).or_default().push(id);
        st.sse_total += 1;
        st.seen_users.entry(user.to_owned()).or_default();
        Ok(Registered { id, rx, kill: kill_rx })
    }

    /// Forgets the `/dev/stats` entries of users with no connection here that `keep` does not
    /// keep (the engine's sweep: their streams are gone).
    pub fn forget_users(&self, keep: impl Fn(&str) -> bool) {
        let mut st = self.lock();
        let st = &mut *st;
        let (users, sse) = (&st.users, &st.sse);
        st.seen_users.retain(|user, _| users.contains_key(user) || sse.contains_key(user) || keep(user));
    }

    /// Ends every connection and SSE stream (or one user's) as `how` says (`Kill::Cut`: without
    /// a close frame, as a network failure would), and refuses upgrades for `refuse`. Returns how
    /// many WebSocket connections it ended.
    pub fn drop_connections(&self, user: Option<&str>, refuse: Duration, how: Kill) -> usize {
        let mut st = self.lock();
        if !refuse.is_zero() {
            st.refuse_until = Some(Instant::now() + refuse);
        }
        let ids: Vec<(ConnId, Kind)> =
            st.conns.iter().filter(|(_, c)| user.is_none_or(|u| c.user == u)).map(|(id, c)| (*id, c.kind)).collect();
        for (id, _) in &ids {
            remove_conn(&mut st, *id, Some(how.clone()));
        }
        ids.iter().filter(|(_, kind)| *kind == Kind::Ws).count()
    }

    /// Closes every connection with 1001, ends every SSE stream, and refuses new ones. Returns
    /// how many WebSocket connections were closed.
    pub fn shutdown(&self) -> usize {
        let mut st = self.lock();
        st.shutting_down = true;
        let ws = ws_count(&st);
        let ids: Vec<ConnId> = st.conns.keys().copied().collect();
        for id in &ids {
            remove_conn(&mut st, *id, Some(Kill::Close(CloseCode::GoingAway.as_u16(), "Server shutting down")));
        }
        ws
    }

    /// The hub's totals without its per-user and per-room maps (cheap; for `/metrics`).
    pub fn totals(&self) -> Totals {
        let st = self.lock();
        Totals {
            connections: ws_count(&st),
            opened_total: st.opened_total,
            rooms: st.rooms.len(),
            sse_subscribers: st.sse_total,
            rate_limited_total: self.rate_limited_total.load(Ordering::Relaxed),
        }
    }

    pub fn stats(&self) -> Stats {
        let st = self.lock();
        let users = st
            .seen_users
            .iter()
            .map(|(user, (opened, seq))| {
                let open = st.users.get(user).map_or(0, Vec::len);
                let sse = st.sse.get(user).map_or(0, Vec::len);
                (user.clone(), UserStats { open, sse, opened_total: *opened, seq: *seq })
            })
            .collect();
        Stats {
            connections: ws_count(&st),
            opened_total: st.opened_total,
            users,
            rooms: st.rooms.iter().map(|(r, m)| (r.clone(), m.len())).collect(),
            sse_subscribers: st.sse_total,
            epoch: self.epoch.clone(),
            rate_limited_total: self.rate_limited_total.load(Ordering::Relaxed),
        }
    }
}

/// Queues `out` on connection `id`, or holds it there until the welcome (at most `limit` frames,
/// the send queue's size: past it, the connection is closed like a slow consumer).
fn deliver_locked(st: &mut State, id: ConnId, seq: Option<u64>, out: Out, limit: usize) {
    let Some(conn) = st.conns.get_mut(&id) else { return };
    if let Some(held) = conn.held.as_mut() {
        if held.len() < limit {
            held.push((seq, out));
        } else {
            remove_conn(st, id, Some(Kill::Close(CloseCode::Policy.as_u16(), SLOW_CONSUMER_REASON)));
        }
        return;
    }
    send_locked(st, id, out);
}

fn send_locked(st: &mut State, id: ConnId, out: Out) -> bool {
    let Some(conn) = st.conns.get(&id) else { return false };
    match conn.tx.try_send(out) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            log::info(format_args!("conn c{id} user={} closed 1008: send queue full", Esc(&conn.user)));
            remove_conn(st, id, Some(Kill::Close(CloseCode::Policy.as_u16(), SLOW_CONSUMER_REASON)));
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            remove_conn(st, id, None);
            false
        }
    }
}

/// The WebSocket connections (every connection but the SSE streams).
fn ws_count(st: &State) -> usize {
    st.conns.len().saturating_sub(st.sse_total)
}

fn remove_conn(st: &mut State, id: ConnId, kill: Option<Kill>) {
    let Some(mut conn) = st.conns.remove(&id) else { return };
    let by_user = if conn.kind == Kind::Ws { &mut st.users } else { &mut st.sse };
    if let Some(list) = by_user.get_mut(&conn.user) {
        list.retain(|c| *c != id);
        if list.is_empty() {
            by_user.remove(&conn.user);
        }
    }
    if conn.kind != Kind::Ws {
        st.sse_total -= 1;
    }
    for room in conn.rooms.drain() {
        leave_room(st, id, &room);
    }
    if let (Some(kill), Some(tx)) = (kill, conn.kill.take()) {
        let _ = tx.send(kill);
    }
}

fn leave_room(st: &mut State, id: ConnId, room: &str) {
    if let Some(members) = st.rooms.get_mut(room) {
        let removed = members.remove(&id);
        if members.is_empty() {
            st.rooms.remove(room);
        } else if removed {
            presence_locked(st, room);
        }
    }
}

/// Sends the member count of `room` to its members that asked for it (`presence`).
fn presence_locked(st: &mut State, room: &str) {
    let Some(members) = st.rooms.get(room) else { return };
    let count = members.len() as u64;
    let targets: Vec<ConnId> =
        members.iter().copied().filter(|c| st.conns.get(c).is_some_and(|c| c.presence.contains(room))).collect();
    if targets.is_empty() {
        return;
    }
    let frame = encode(&ServerMessage::Presence(Joined { room: room.to_owned(), members: count }), None, None);
    for target in targets {
        send_locked(st, target, Out::Text(frame.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_streams_are_counted_apart_from_sockets() {
        let hub = Hub::new(Limits {
            max_connections: 1,
            max_connections_per_user: 1,
            single_connection_per_user: true,
            max_rooms_per_connection: 4,
            send_queue: 4,
            max_sse_per_user: 2,
            max_sse: 3,
            heartbeat_ms: 1000,
            send_welcome: false,
        });
        let ws = hub.register("a").unwrap();
        let session = hub.register_sse("a", true).unwrap();
        let _plain = hub.register_sse("a", false).unwrap();
        assert_eq!(hub.register_sse("a", true).err(), Some(SseRefused::PerUser));
        assert!(matches!(hub.register("b"), Err(RegisterError::TooMany(_))), "the socket cap counts sockets");
        let t = hub.totals();
        assert_eq!((t.connections, t.sse_subscribers), (1, 2));
        assert_eq!(hub.stats().users["a"].sse, 2);
        hub.join(ws.id, "r").unwrap();
        assert_eq!(hub.join(session.id, "r").unwrap().members, 2, "a session is a member like a socket");
        assert_eq!(hub.deliver_all(&Arc::from("{}"), None), 2, "the socket and the session, not the plain stream");
        // A new socket of the user replaces the old one, not its SSE streams.
        let ws2 = hub.register("a").unwrap();
        assert!(!hub.is_open(ws.id) && hub.is_open(ws2.id) && hub.is_open(session.id));
        hub.end(session.id, Kill::Cut);
        assert_eq!((hub.totals().sse_subscribers, hub.has_room("r")), (1, false));
        assert_eq!(hub.drop_connections(Some("a"), Duration::ZERO, Kill::Cut), 1, "sockets only are counted");
        let t = hub.totals();
        assert_eq!((t.connections, t.sse_subscribers), (0, 0));
        assert!(!hub.has_user("a"));
    }

    #[test]
    fn a_stream_item_reads_back() {
        let item = StreamItem::new(42, "new_notification", r#"{"id":1,"title":"a,\"seq\":9"}"#);
        assert_eq!(
            item.frame.as_ref(),
            r#"{"type":"new_notification","payload":{"id":1,"title":"a,\"seq\":9"},"seq":42}"#
        );
        let back = StreamItem::parse(item.frame.clone()).unwrap();
        assert_eq!((back.seq, back.kind(), back.payload()), (42, "new_notification", item.payload()));
        assert_eq!(item.payload(), r#"{"id":1,"title":"a,\"seq\":9"}"#);
        assert!(StreamItem::parse(Arc::from("{\"type\":\"x\"}")).is_none());
    }
}
