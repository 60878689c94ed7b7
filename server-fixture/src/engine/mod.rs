//! The engine seam: what several server instances must share, behind one trait.
//!
//! - [`memory::MemoryEngine`] (the default) keeps it in this process: nothing to install.
//! - [`redis::RedisEngine`] (`--redis redis://HOST:PORT`) keeps it in Redis, so any instance can
//!   serve any request: tickets, each user's stream (seq, epoch, history), the notification
//!   store, room-message dedupe, and the fan-out of user-stream pushes, room messages and
//!   broadcasts to every instance that has a member.
//!
//! The hub (`hub.rs`) stays local to an instance: its own connections, their rooms and send
//! queues. An engine hands it what to deliver (`Hub::deliver_*`) and queues welcomes and resume
//! batches on its connections.

pub mod memory;
pub mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use resock::protocol::{Notification, Resumed, ServerMessage};
use serde_json::Value;

use crate::auth::Identity;
use crate::hub::{encode, ConnId, Hub, Out, StreamItem};

/// A boxed engine future (the trait is used as `dyn Engine`).
pub type EngineFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, EngineError>> + Send + 'a>>;

/// Why an engine call did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The shared store cannot be reached right now: nothing was done (HTTP 503).
    Unavailable(String),
    /// The user holds this many unredeemed tickets already (HTTP 429).
    TooManyTickets(usize),
    /// The user has `--max-connections-per-user` connections over all instances (close 1013).
    TooManyConnections,
    /// An unknown, used or expired ticket.
    BadTicket,
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Unavailable(why) => write!(f, "the shared store is unavailable: {why}"),
            EngineError::TooManyTickets(n) => {
                write!(f, "{n} unredeemed tickets already: use one, or wait for them to expire")
            }
            EngineError::BadTicket => f.write_str("unknown, used or expired ticket"),
            EngineError::TooManyConnections => f.write_str("Too many connections for this user"),
        }
    }
}

/// The engine's state, for `/healthz`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub engine: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a resume found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeResult {
    pub replayed: u64,
    pub complete: bool,
}

/// The shared state of the servers. Every method that changes something either did it (and
/// then the change reached every instance that needs it) or returns an error, never half.
pub trait Engine: Send + Sync {
    fn issue_ticket(&self, who: Identity) -> EngineFuture<'_, String>;
    fn redeem_ticket<'a>(&'a self, ticket: &'a str) -> EngineFuture<'a, Identity>;

    /// A local connection `conn` of `user` was registered (its frames held back): with `counted`
    /// (a WebSocket; not an SSE session) counts it against the per-user cap over all instances
    /// (`TooManyConnections`: not counted), and from now on the user's pushes reach it; queues its
    /// `welcome` with the stream's epoch and seq.
    fn welcome<'a>(&'a self, conn: ConnId, user: &'a str, counted: bool) -> EngineFuture<'a, ()>;
    /// A connection that [`Engine::welcome`] counted ended.
    fn connection_closed<'a>(&'a self, user: &'a str) -> EngineFuture<'a, ()>;
    /// A local connection or SSE stream of `user` ended.
    fn user_gone<'a>(&'a self, user: &'a str) -> EngineFuture<'a, ()>;
    /// An SSE stream of `user` starts: pushes reach the hub from now on.
    fn user_watched<'a>(&'a self, user: &'a str) -> EngineFuture<'a, ()>;

    /// Appends a message to `user`'s stream and delivers it wherever the user is. Its seq.
    fn push<'a>(&'a self, user: &'a str, msg: ServerMessage<Value>) -> EngineFuture<'a, u64>;
    /// Queues on `conn`, as one batch, the stored messages after `since` and `resumed`.
    fn resume<'a>(
        &'a self,
        conn: ConnId,
        user: &'a str,
        epoch: &'a str,
        since: u64,
        reply_id: Option<&'a str>,
    ) -> EngineFuture<'a, ResumeResult>;
    /// The stored messages of `user` after `since` (SSE's Last-Event-ID).
    fn replay<'a>(&'a self, user: &'a str, since: u64) -> EngineFuture<'a, Vec<Arc<StreamItem>>>;

    /// A local connection joined `room` (the first local member subscribes the instance).
    fn room_joined<'a>(&'a self, room: &'a str) -> EngineFuture<'a, ()>;
    /// A local connection left `room`.
    fn room_left<'a>(&'a self, room: &'a str) -> EngineFuture<'a, ()>;
    /// Sends a room message to every member on every instance but connection `from`; `false`
    /// when `user` already sent a room message with this `frame_id` (acked, not sent again).
    fn room_message<'a>(
        &'a self,
        room: &'a str,
        from: ConnId,
        user: &'a str,
        frame_id: Option<&'a str>,
        frame: Arc<str>,
    ) -> EngineFuture<'a, bool>;
    /// Sends a frame to every connection on every instance, but `exclude_user`'s. Returns the
    /// connections addressed on this instance.
    fn broadcast<'a>(&'a self, frame: Arc<str>, exclude_user: Option<&'a str>) -> EngineFuture<'a, usize>;

    /// Stores a notification and pushes `new_notification`, in one step.
    fn notify<'a>(&'a self, user: &'a str, title: String, body: String) -> EngineFuture<'a, Notification>;
    fn notifications<'a>(&'a self, user: &'a str) -> EngineFuture<'a, Vec<Notification>>;
    /// Marks the user's own among `ids` read and pushes `notification_read` when it marked any.
    fn mark_read<'a>(&'a self, user: &'a str, ids: Vec<u64>) -> EngineFuture<'a, Vec<u64>>;
    /// Marks all read and pushes `all_read` when any was unread. How many were.
    fn mark_all_read<'a>(&'a self, user: &'a str) -> EngineFuture<'a, usize>;

    /// Applies a record of an event source (Kafka) exactly once: `Duplicate` when this record,
    /// or a later one of its partition, was applied before (a redelivery after a crash or a
    /// rebalance). The check and the change are one step.
    fn record<'a>(&'a self, id: &'a RecordId, action: RecordAction) -> EngineFuture<'a, Applied>;

    /// Drops what idle users left behind (`--stream-ttl-ms`); Redis expires its keys itself and
    /// has the engine refresh those of the users connected here. How many streams it dropped.
    fn sweep(&self) -> EngineFuture<'_, usize>;
    fn health(&self) -> Health;
}

/// Where a record came from: its topic, partition and offset (offsets grow within a partition).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordId {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// What a record asks for.
#[derive(Debug, Clone)]
pub enum RecordAction {
    /// A message on `user`'s stream.
    Push { user: String, msg: ServerMessage<Value> },
    /// A notification stored and pushed, as `POST /api/notifications` does.
    Notify { user: String, title: String, body: String },
    /// A frame to every member of `room` on every instance.
    Room { room: String, frame: Arc<str> },
}

/// Whether a record changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done,
    Duplicate,
}

/// What a resume found in a stream of the right epoch: its last seq, the oldest seq it still
/// holds (`None`: none), and the frames after the resume's `since`.
pub struct Found {
    pub last: u64,
    pub oldest: Option<u64>,
    pub frames: Vec<Arc<str>>,
}

/// Queues a resume's answer on `conn` as one batch: the replayed frames, then `resumed`.
/// `found` is `None` for a wrong or unknown epoch. Complete when nothing was missed or the
/// history still reaches `since + 1`; a `since` past the last seq is never complete.
pub fn queue_resume(hub: &Hub, conn: ConnId, found: Option<Found>, since: u64, reply_id: Option<&str>) -> ResumeResult {
    let (mut frames, result) = match found {
        Some(f) if since <= f.last => {
            let complete = since == f.last || f.oldest.is_some_and(|o| o <= since + 1);
            let replayed = f.frames.len() as u64;
            (f.frames, ResumeResult { replayed, complete })
        }
        _ => (Vec::new(), ResumeResult { replayed: 0, complete: false }),
    };
    let resumed = Resumed { replayed: result.replayed, complete: result.complete };
    frames.push(encode(&ServerMessage::Resumed(resumed), reply_id, None));
    hub.send_to(conn, Out::Batch(frames));
    result
}

/// The payload of a message as one-line JSON.
pub fn payload_json(msg: &ServerMessage<Value>) -> String {
    serde_json::to_string(&resock::protocol::PayloadOf(msg)).unwrap_or_default()
}
