//! The connection manager: connections per user, rooms, user streams with history, SSE
//! subscribers, and the kill switches that end a connection from outside its task.
//!
//! Every connection has a bounded queue of outgoing frames. The hub only ever `try_send`s into
//! it while holding its lock, so a broadcast never waits on a slow reader, and frames of one
//! user's stream are queued in seq order on every connection. A connection whose queue is full
//! is not reading: it is removed at once and closed with 1008 (see [`SLOW_CONSUMER_REASON`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::RngCore;
use resock::protocol::{CloseCode, Frame, Joined, Resumed, ServerMessage, Welcome, REASON_REPLACED};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::log;
use crate::text::Esc;

pub type ConnId = u64;

/// Room-message ids remembered per user to drop a repeat (docs/PROTOCOL.md "Rooms"): a client
/// resends only what was unanswered at a cut, far fewer than this.
pub const REMEMBERED_IDS: usize = 256;

/// Why a client that does not read is closed with 1008 (policy violation): the server will not
/// buffer without bound for it, and the client should reconnect and `resume`, which replays what
/// it missed. 1008 rather than 1011 (not a server fault) or 1013 (not overload: other clients are
/// served normally). The close frame is sent best-effort: a client that does not read may never
/// see it, and then sees 1006.
pub const SLOW_CONSUMER_REASON: &str = "Send queue full: client is not reading";

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

/// One user-stream message, kept in history: the whole WebSocket frame, once. SSE's event name
/// and `data:` are slices of it (a 1 KB notification used to be held three times over).
#[derive(Debug)]
pub struct StreamItem {
    pub seq: u64,
    /// `{"type":KIND,"payload":PAYLOAD,"seq":SEQ}`.
    pub frame: Arc<str>,
    kind: std::ops::Range<usize>,
    payload: std::ops::Range<usize>,
}

impl StreamItem {
    fn new(seq: u64, msg: &ServerMessage<Value>) -> StreamItem {
        let kind_json = serde_json::to_string(msg.kind()).unwrap_or_default();
        let payload = serde_json::to_string(&resock::protocol::PayloadOf(msg)).unwrap_or_default();
        let head = format!("{{\"type\":{kind_json},\"payload\":");
        let frame = format!("{head}{payload},\"seq\":{seq}}}");
        let kind = 8..8 + kind_json.len(); // after `{"type":`
        let payload = head.len()..head.len() + payload.len();
        StreamItem { seq, frame: Arc::from(frame), kind: kind.start + 1..kind.end - 1, payload }
    }

    /// The message type, as it appears in the frame (types are plain identifiers).
    pub fn kind(&self) -> &str {
        self.frame.get(self.kind.clone()).unwrap_or_default()
    }

    /// The payload as one-line JSON (for SSE `data:`).
    pub fn payload(&self) -> &str {
        self.frame.get(self.payload.clone()).unwrap_or_default()
    }
}

struct Conn {
    user: String,
    tx: mpsc::Sender<Out>,
    kill: Option<oneshot::Sender<Kill>>,
    rooms: HashSet<String>,
}

struct SseSub {
    id: u64,
    tx: mpsc::Sender<Arc<StreamItem>>,
}

/// A user's stream: its epoch (new whenever the stream is created, so a stream dropped and
/// made again is never mistaken for the old one), the last seq, and the history kept for
/// resume, bounded in messages and bytes.
struct UserStream {
    epoch: String,
    seq: u64,
    history: VecDeque<Arc<StreamItem>>,
    bytes: usize,
    touched: Instant,
}

impl UserStream {
    fn new() -> UserStream {
        UserStream { epoch: new_epoch(), seq: 0, history: VecDeque::new(), bytes: 0, touched: Instant::now() }
    }
}

/// 64 random bits as 16 hex digits.
fn new_epoch() -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Default)]
struct State {
    conns: HashMap<ConnId, Conn>,
    /// Each user's connections, oldest first.
    users: HashMap<String, Vec<ConnId>>,
    rooms: HashMap<String, HashSet<ConnId>>,
    streams: HashMap<String, UserStream>,
    /// SSE subscribers by user.
    sse: HashMap<String, Vec<SseSub>>,
    sse_total: usize,
    opened_total: u64,
    opened_by_user: HashMap<String, u64>,
    /// Each user's last [`REMEMBERED_IDS`] room-message ids: a repeat is acked, not sent again.
    message_ids: HashMap<String, SeenIds>,
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
    pub history: usize,
    pub history_bytes: usize,
    pub stream_ttl: Duration,
    pub max_sse_per_user: usize,
    pub max_sse: usize,
    pub heartbeat_ms: u64,
    /// Queue a `welcome` first on every connection (off with `--no-welcome`).
    pub send_welcome: bool,
}

pub struct Hub {
    state: Mutex<State>,
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

/// The last [`REMEMBERED_IDS`] ids of one user's room messages, as 64-bit hashes: 4 KB per user
/// at most, whatever the ids' length, with O(1) look-ups. (Two ids colliding among 256 has a
/// chance of about 2^-49; the cost would be one message acked and not delivered.)
#[derive(Default)]
struct SeenIds {
    order: VecDeque<u64>,
    set: HashSet<u64>,
}

impl SeenIds {
    /// Remembers `id`; false when it was already remembered.
    fn insert(&mut self, id: &str) -> bool {
        use std::hash::Hasher;
        // DefaultHasher::new() has fixed keys: the same id hashes the same on every call.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write(id.as_bytes());
        let key = h.finish();
        if !self.set.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > REMEMBERED_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
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

#[derive(Debug, Serialize)]
pub struct UserStats {
    pub open: usize,
    pub opened_total: u64,
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
        let epoch = new_epoch();
        Hub {
            state: Mutex::new(State::default()),
            epoch,
            next_id: AtomicU64::new(1),
            limits,
            rate_limited_total: AtomicU64::new(0),
        }
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
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

    /// Adds a connection of `user`, enforcing the caps and single-connection mode.
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
        if st.conns.len() >= self.limits.max_connections {
            return Err(RegisterError::TooMany("Too many connections"));
        }
        if st.users.get(user).map_or(0, Vec::len) >= self.limits.max_connections_per_user {
            return Err(RegisterError::TooMany("Too many connections for this user"));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.limits.send_queue);
        let (kill_tx, kill_rx) = oneshot::channel();
        let stream = st.streams.entry(user.to_owned()).or_insert_with(UserStream::new);
        stream.touched = Instant::now();
        let welcome = Welcome {
            user_id: user.to_owned(),
            connection_id: format!("c{id}"),
            heartbeat_ms: self.limits.heartbeat_ms,
            epoch: stream.epoch.clone(),
            seq: stream.seq,
        };
        // Queued under the lock, so `welcome` is the first frame: no stream message can overtake it.
        if self.limits.send_welcome {
            let _ = tx.try_send(Out::Text(encode(&ServerMessage::Welcome(welcome), None, None)));
        }
        st.conns.insert(id, Conn { user: user.to_owned(), tx, kill: Some(kill_tx), rooms: HashSet::new() });
        st.users.entry(user.to_owned()).or_default().push(id);
        st.opened_total += 1;
        *st.opened_by_user.entry(user.to_owned()).or_default() += 1;
        Ok(Registered { id, rx, kill: kill_rx })
    }

    /// Removes every trace of a connection (user map, rooms). Safe to call twice.
    pub fn unregister(&self, id: ConnId) {
        let mut st = self.lock();
        remove_conn(&mut st, id, None);
    }

    /// Queues a frame for one connection; a full queue closes it (slow consumer).
    pub fn send_to(&self, id: ConnId, out: Out) -> bool {
        let mut st = self.lock();
        send_locked(&mut st, id, out)
    }

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
        members.insert(id);
        Ok(Joined { room: room.to_owned(), members: members.len() as u64 })
    }

    /// Leaves a room; leaving a room one is not in is not an error.
    pub fn leave(&self, id: ConnId, room: &str) {
        let mut st = self.lock();
        if let Some(conn) = st.conns.get_mut(&id) {
            conn.rooms.remove(room);
        }
        leave_room(&mut st, id, room);
    }

    /// Sends `data` to every other member connection of `room`, unless this user sent a room
    /// message with the same `frame_id` before (a client sending again after a cut): then nobody.
    pub fn room_message(
        &self,
        id: ConnId,
        room: &str,
        data: Value,
        frame_id: Option<&str>,
    ) -> Result<usize, RoomError> {
        let mut st = self.lock();
        let conn = st.conns.get(&id).ok_or(RoomError::Gone)?;
        if !conn.rooms.contains(room) {
            return Err(RoomError::NotMember);
        }
        if let Some(fid) = frame_id {
            let user = conn.user.clone();
            if !st.message_ids.entry(user).or_default().insert(fid) {
                return Ok(0);
            }
        }
        let conn = st.conns.get(&id).ok_or(RoomError::Gone)?;
        let msg = ServerMessage::RoomMessage(resock::protocol::RoomMessage {
            room: room.to_owned(),
            from: conn.user.clone(),
            data,
        });
        let frame = encode(&msg, None, None);
        let targets: Vec<ConnId> =
            st.rooms.get(room).map(|m| m.iter().copied().filter(|c| *c != id).collect()).unwrap_or_default();
        for target in &targets {
            send_locked(&mut st, *target, Out::Text(frame.clone()));
        }
        Ok(targets.len())
    }

    /// Appends a message to `user`'s stream and pushes it to every connection and SSE subscriber
    /// of that user (and no one else). Returns its seq.
    pub fn push_user(&self, user: &str, msg: &ServerMessage<Value>) -> u64 {
        let mut st = self.lock();
        let stream = st.streams.entry(user.to_owned()).or_insert_with(UserStream::new);
        stream.seq += 1;
        stream.touched = Instant::now();
        let seq = stream.seq;
        let item = Arc::new(StreamItem::new(seq, msg));
        stream.bytes += item.frame.len();
        stream.history.push_back(item.clone());
        // Bounded in messages and in bytes; the newest message is always kept.
        while stream.history.len() > 1
            && (stream.history.len() > self.limits.history || stream.bytes > self.limits.history_bytes)
        {
            if let Some(old) = stream.history.pop_front() {
                stream.bytes -= old.frame.len();
            }
        }
        if self.limits.history == 0 {
            stream.history.clear();
            stream.bytes = 0;
        }
        let targets: Vec<ConnId> = st.users.get(user).cloned().unwrap_or_default();
        for target in targets {
            send_locked(&mut st, target, Out::Text(item.frame.clone()));
        }
        let st = &mut *st;
        if let Some(subs) = st.sse.get_mut(user) {
            let before = subs.len();
            subs.retain(|sub| {
                let alive = sub.tx.try_send(item.clone()).is_ok();
                if !alive {
                    log::info(format_args!("sse s{} user={} dropped: not reading", sub.id, Esc(user)));
                }
                alive
            });
            st.sse_total -= before - subs.len();
            if subs.is_empty() {
                st.sse.remove(user);
            }
        }
        seq
    }

    /// Queues, as one batch on connection `id`, every stored stream message after `since`
    /// followed by `resumed`.
    pub fn resume(&self, id: ConnId, epoch: &str, since: u64, reply_id: Option<&str>) -> Option<Resumed> {
        let mut st = self.lock();
        let user = st.conns.get(&id)?.user.clone();
        let stream = st.streams.get(&user);
        let (mut frames, resumed) = if stream.is_none_or(|s| s.epoch != epoch) {
            (Vec::new(), Resumed { replayed: 0, complete: false })
        } else {
            let last = stream.map_or(0, |s| s.seq);
            if since > last {
                (Vec::new(), Resumed { replayed: 0, complete: false })
            } else {
                let history = stream.map(|s| &s.history);
                let frames: Vec<Arc<str>> =
                    history.into_iter().flatten().filter(|i| i.seq > since).map(|i| i.frame.clone()).collect();
                let oldest = history.and_then(|h| h.front()).map_or(last + 1, |i| i.seq);
                let complete = since == last || oldest <= since + 1;
                let replayed = frames.len() as u64;
                (frames, Resumed { replayed, complete })
            }
        };
        frames.push(encode(&ServerMessage::Resumed(resumed), reply_id, None));
        send_locked(&mut st, id, Out::Batch(frames));
        Some(resumed)
    }

    /// Sends a frame to every WebSocket connection, except those of `exclude_user`.
    pub fn broadcast(&self, frame: Arc<str>, exclude_user: Option<&str>) -> usize {
        let mut st = self.lock();
        let targets: Vec<ConnId> =
            st.conns.iter().filter(|(_, c)| Some(c.user.as_str()) != exclude_user).map(|(id, _)| *id).collect();
        for target in &targets {
            send_locked(&mut st, *target, Out::Text(frame.clone()));
        }
        targets.len()
    }

    /// True once shutdown began: no new SSE stream (it would keep the server up).
    pub fn refusing_sse(&self) -> bool {
        self.lock().shutting_down
    }

    /// Subscribes an SSE stream of `user`: returns the stored messages after `last_event_id` and
    /// the receiver of the live ones (registered under the same lock, so none falls between).
    #[allow(clippy::type_complexity)]
    pub fn subscribe_sse(
        &self,
        user: &str,
        last_event_id: Option<u64>,
    ) -> Result<(u64, Vec<Arc<StreamItem>>, mpsc::Receiver<Arc<StreamItem>>), SseRefused> {
        let mut st = self.lock();
        if st.sse.get(user).map_or(0, Vec::len) >= self.limits.max_sse_per_user {
            return Err(SseRefused::PerUser);
        }
        if st.sse_total >= self.limits.max_sse {
            return Err(SseRefused::Total);
        }
        let replay = match last_event_id {
            Some(since) => st
                .streams
                .get(user)
                .map(|s| s.history.iter().filter(|i| i.seq > since).cloned().collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let (tx, rx) = mpsc::channel(self.limits.send_queue);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        st.sse.entry(user.to_owned()).or_default().push(SseSub { id, tx });
        st.sse_total += 1;
        Ok((id, replay, rx))
    }

    pub fn unsubscribe_sse(&self, user: &str, id: u64) {
        let mut st = self.lock();
        let st = &mut *st;
        if let Some(subs) = st.sse.get_mut(user) {
            let before = subs.len();
            subs.retain(|s| s.id != id);
            st.sse_total -= before - subs.len();
            if subs.is_empty() {
                st.sse.remove(user);
            }
        }
    }

    /// Drops the streams (history, seq, epoch) of users with no connection and no SSE stream
    /// whose stream saw nothing for `--stream-ttl-ms`, with their `/dev/stats` entry. Returns how
    /// many it dropped.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut st = self.lock();
        let st = &mut *st;
        let ttl = self.limits.stream_ttl;
        let before = st.streams.len();
        let (users, sse) = (&st.users, &st.sse);
        st.streams.retain(|user, s| {
            users.contains_key(user) || sse.contains_key(user) || now.saturating_duration_since(s.touched) < ttl
        });
        let streams = &st.streams;
        st.opened_by_user.retain(|user, _| streams.contains_key(user) || users.contains_key(user));
        st.message_ids.retain(|user, _| streams.contains_key(user) || users.contains_key(user));
        before - st.streams.len()
    }

    /// Ends every connection (or one user's) as `how` says (`Kill::Cut`: without a close frame,
    /// as a network failure would), ends SSE streams, and refuses upgrades for `refuse`.
    /// Returns how many connections it ended.
    pub fn drop_connections(&self, user: Option<&str>, refuse: Duration, how: Kill) -> usize {
        let mut st = self.lock();
        if !refuse.is_zero() {
            st.refuse_until = Some(Instant::now() + refuse);
        }
        let ids: Vec<ConnId> =
            st.conns.iter().filter(|(_, c)| user.is_none_or(|u| c.user == u)).map(|(id, _)| *id).collect();
        for id in &ids {
            remove_conn(&mut st, *id, Some(how.clone()));
        }
        match user {
            Some(u) => {
                let ended = st.sse.remove(u).map_or(0, |subs| subs.len());
                st.sse_total -= ended;
            }
            None => {
                st.sse.clear();
                st.sse_total = 0;
            }
        }
        ids.len()
    }

    /// Closes every connection with 1001 and refuses new ones. Returns how many were closed.
    pub fn shutdown(&self) -> usize {
        let mut st = self.lock();
        st.shutting_down = true;
        let ids: Vec<ConnId> = st.conns.keys().copied().collect();
        for id in &ids {
            remove_conn(&mut st, *id, Some(Kill::Close(CloseCode::GoingAway.as_u16(), "Server shutting down")));
        }
        st.sse.clear();
        st.sse_total = 0;
        ids.len()
    }

    pub fn stats(&self) -> Stats {
        let st = self.lock();
        let mut users: HashMap<String, UserStats> = HashMap::new();
        for (user, total) in &st.opened_by_user {
            users.insert(
                user.clone(),
                UserStats {
                    open: st.users.get(user).map_or(0, Vec::len),
                    opened_total: *total,
                    seq: st.streams.get(user).map_or(0, |s| s.seq),
                },
            );
        }
        Stats {
            connections: st.conns.len(),
            opened_total: st.opened_total,
            users,
            rooms: st.rooms.iter().map(|(r, m)| (r.clone(), m.len())).collect(),
            sse_subscribers: st.sse_total,
            epoch: self.epoch.clone(),
            rate_limited_total: self.rate_limited_total.load(Ordering::Relaxed),
        }
    }
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

fn remove_conn(st: &mut State, id: ConnId, kill: Option<Kill>) {
    let Some(mut conn) = st.conns.remove(&id) else { return };
    if let Some(list) = st.users.get_mut(&conn.user) {
        list.retain(|c| *c != id);
        if list.is_empty() {
            st.users.remove(&conn.user);
        }
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
        members.remove(&id);
        if members.is_empty() {
            st.rooms.remove(room);
        }
    }
}
