//! The in-memory engine (the default): one instance, nothing to install. One lock orders every
//! change of a user's stream with its delivery: a store change and its push happen together,
//! seqs follow the order of the changes, and a resume batch is queued atomically with respect
//! to pushes. Lock order: this engine's lock, then the hub's, never the other way.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use resock::protocol::{Notification, NotificationRead, ServerMessage};
use serde_json::Value;

use super::{
    queue_resume, Applied, Engine, EngineError, EngineFuture, Found, Health, RecordAction, RecordId, ResumeResult,
};
use crate::auth::{Identity, Tickets, TooManyTickets};
use crate::hub::{new_epoch, ConnId, Hub, StreamItem};
use crate::store::Store;

/// Room-message ids remembered per user to drop a repeat (docs/PROTOCOL.md "Rooms"): a client
/// resends only what was unanswered at a cut, far fewer than this.
pub const REMEMBERED_IDS: usize = 256;

/// History and expiry settings of the user streams.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub history: usize,
    pub history_bytes: usize,
    pub ttl: Duration,
}

pub struct MemoryEngine {
    hub: Arc<Hub>,
    tickets: Tickets,
    /// Changed only under `state`'s lock, so a change and its push are one step.
    store: Store,
    limits: StreamLimits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    streams: HashMap<String, UserStream>,
    /// Each user's last [`REMEMBERED_IDS`] room-message ids: a repeat is acked, not sent again.
    message_ids: HashMap<String, SeenIds>,
    /// The last offset applied per event-source partition (records are applied in offset order).
    applied: HashMap<(String, i32), i64>,
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

impl MemoryEngine {
    pub fn new(hub: Arc<Hub>, tickets: Tickets, store: Store, limits: StreamLimits) -> Self {
        MemoryEngine { hub, tickets, store, limits, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends to `user`'s stream and delivers, under the engine's lock (held by the caller).
    fn append(&self, st: &mut State, user: &str, msg: &ServerMessage<Value>) -> u64 {
        let limits = self.limits;
        let stream = st.streams.entry(user.to_owned()).or_insert_with(UserStream::new);
        stream.seq += 1;
        stream.touched = Instant::now();
        let item = Arc::new(StreamItem::of(stream.seq, msg));
        stream.bytes += item.frame.len();
        stream.history.push_back(item.clone());
        // Bounded in messages and in bytes; the newest message is always kept.
        while stream.history.len() > 1 && (stream.history.len() > limits.history || stream.bytes > limits.history_bytes)
        {
            if let Some(old) = stream.history.pop_front() {
                stream.bytes -= old.frame.len();
            }
        }
        if limits.history == 0 {
            stream.history.clear();
            stream.bytes = 0;
        }
        self.hub.deliver_user(user, Some(&stream.epoch), &item);
        item.seq
    }
}

fn ready<'a, T: Send + 'a>(value: Result<T, EngineError>) -> EngineFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Engine for MemoryEngine {
    fn issue_ticket(&self, who: Identity) -> EngineFuture<'_, String> {
        ready(self.tickets.issue(who).map_err(|TooManyTickets(n)| EngineError::TooManyTickets(n)))
    }

    fn redeem_ticket<'a>(&'a self, ticket: &'a str) -> EngineFuture<'a, Identity> {
        ready(self.tickets.redeem(ticket).map_err(|_| EngineError::BadTicket))
    }

    fn welcome<'a>(&'a self, conn: ConnId, user: &'a str, _counted: bool) -> EngineFuture<'a, ()> {
        let mut st = self.lock();
        let stream = st.streams.entry(user.to_owned()).or_insert_with(UserStream::new);
        stream.touched = Instant::now();
        self.hub.welcome(conn, &stream.epoch, stream.seq);
        ready(Ok(()))
    }

    fn connection_closed<'a>(&'a self, _user: &'a str) -> EngineFuture<'a, ()> {
        // One instance: the hub's own per-user cap is the whole cap.
        ready(Ok(()))
    }

    fn user_gone<'a>(&'a self, _user: &'a str) -> EngineFuture<'a, ()> {
        ready(Ok(()))
    }

    fn user_watched<'a>(&'a self, _user: &'a str) -> EngineFuture<'a, ()> {
        ready(Ok(()))
    }

    fn push<'a>(&'a self, user: &'a str, msg: ServerMessage<Value>) -> EngineFuture<'a, u64> {
        let mut st = self.lock();
        ready(Ok(self.append(&mut st, user, &msg)))
    }

    fn resume<'a>(
        &'a self,
        conn: ConnId,
        user: &'a str,
        epoch: &'a str,
        since: u64,
        reply_id: Option<&'a str>,
    ) -> EngineFuture<'a, ResumeResult> {
        let st = self.lock();
        let found = st.streams.get(user).filter(|s| s.epoch == epoch).map(|s| Found {
            last: s.seq,
            // An empty history holds nothing before the next seq.
            oldest: Some(s.history.front().map_or(s.seq + 1, |i| i.seq)),
            frames: s.history.iter().filter(|i| i.seq > since).map(|i| i.frame.clone()).collect(),
        });
        // Under the engine's lock: no push can fall between the replay and the live stream.
        ready(Ok(queue_resume(&self.hub, conn, found, since, reply_id)))
    }

    fn replay<'a>(&'a self, user: &'a str, since: u64) -> EngineFuture<'a, Vec<Arc<StreamItem>>> {
        let st = self.lock();
        let items = st
            .streams
            .get(user)
            .map(|s| s.history.iter().filter(|i| i.seq > since).cloned().collect())
            .unwrap_or_default();
        ready(Ok(items))
    }

    fn room_joined<'a>(&'a self, _room: &'a str) -> EngineFuture<'a, ()> {
        ready(Ok(()))
    }

    fn room_left<'a>(&'a self, _room: &'a str) -> EngineFuture<'a, ()> {
        ready(Ok(()))
    }

    fn room_message<'a>(
        &'a self,
        room: &'a str,
        from: ConnId,
        user: &'a str,
        frame_id: Option<&'a str>,
        frame: Arc<str>,
    ) -> EngineFuture<'a, bool> {
        if let Some(fid) = frame_id {
            if !self.lock().message_ids.entry(user.to_owned()).or_default().insert(fid) {
                return ready(Ok(false));
            }
        }
        self.hub.deliver_room(room, &frame, Some(from));
        ready(Ok(true))
    }

    fn broadcast<'a>(&'a self, frame: Arc<str>, exclude_user: Option<&'a str>) -> EngineFuture<'a, usize> {
        ready(Ok(self.hub.deliver_all(&frame, exclude_user)))
    }

    fn notify<'a>(&'a self, user: &'a str, title: String, body: String) -> EngineFuture<'a, Notification> {
        let mut st = self.lock();
        let n = self.store.add(user, title, body);
        self.append(&mut st, user, &ServerMessage::NewNotification(n.clone()));
        ready(Ok(n))
    }

    fn notifications<'a>(&'a self, user: &'a str) -> EngineFuture<'a, Vec<Notification>> {
        ready(Ok(self.store.list(user)))
    }

    fn mark_read<'a>(&'a self, user: &'a str, ids: Vec<u64>) -> EngineFuture<'a, Vec<u64>> {
        let mut st = self.lock();
        let marked = self.store.mark_read(user, &ids);
        if !marked.is_empty() {
            let msg = ServerMessage::NotificationRead(NotificationRead { notification_ids: marked.clone() });
            self.append(&mut st, user, &msg);
        }
        ready(Ok(marked))
    }

    fn mark_all_read<'a>(&'a self, user: &'a str) -> EngineFuture<'a, usize> {
        let mut st = self.lock();
        let marked = self.store.mark_all_read(user);
        // Only when something changed: a read-all loop must not fill the user's history.
        if marked > 0 {
            self.append(&mut st, user, &ServerMessage::AllRead);
        }
        ready(Ok(marked))
    }

    fn record<'a>(&'a self, id: &'a RecordId, action: RecordAction) -> EngineFuture<'a, Applied> {
        let mut st = self.lock();
        let part = (id.topic.clone(), id.partition);
        if st.applied.get(&part).is_some_and(|last| id.offset <= *last) {
            return ready(Ok(Applied::Duplicate));
        }
        match action {
            RecordAction::Push { user, msg } => {
                self.append(&mut st, &user, &msg);
            }
            RecordAction::Notify { user, title, body } => {
                let n = self.store.add(&user, title, body);
                self.append(&mut st, &user, &ServerMessage::NewNotification(n));
            }
            RecordAction::Room { room, frame } => {
                self.hub.deliver_room(&room, &frame, None);
            }
        }
        st.applied.insert(part, id.offset);
        ready(Ok(Applied::Done))
    }

    fn sweep(&self) -> EngineFuture<'_, usize> {
        let now = Instant::now();
        let mut st = self.lock();
        let ttl = self.limits.ttl;
        let before = st.streams.len();
        let hub = &self.hub;
        st.streams.retain(|user, s| hub.has_user(user) || now.saturating_duration_since(s.touched) < ttl);
        let st = &mut *st;
        let streams = &st.streams;
        st.message_ids.retain(|user, _| streams.contains_key(user) || hub.has_user(user));
        self.hub.forget_users(|user| streams.contains_key(user));
        ready(Ok(before - st.streams.len()))
    }

    fn health(&self) -> Health {
        Health { engine: "memory", ok: true, detail: None }
    }
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
        let key = id_hash(id);
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

/// A 64-bit hash of a frame id, the same in every process (SipHash with fixed keys).
pub fn id_hash(id: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(id.as_bytes());
    h.finish()
}
