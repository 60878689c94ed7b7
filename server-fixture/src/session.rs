//! One client's frames, whatever carries them: the WebSocket connection (`ws.rs`) and the SSE
//! session (`sse.rs`, frames arriving over `POST /sse/send`) share this handler, so both get
//! the same validation, rate limit, error codes, rooms and room-message dedupe.
//!
//! It sits under the state (it needs the hub, the engine and the configuration, not `App`), so
//! that `App` can hold the table of SSE sessions ([`Sessions`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use resock::protocol::{is_valid_room_name, ClientMessage, CloseCode, ErrorBody, ErrorCode, RoomRef, ServerMessage};
use serde_json::Value;
use tokio::time::Instant;

use crate::config::Config;
use crate::engine::Engine;
use crate::hub::{encode, ConnId, Hub, Out, RoomError};
use crate::text::{clip, clip_str};

/// A frame at most this long may be a `pong`, checked before the rate limit; a longer one is
/// counted against the rate limit before it is parsed at all.
pub const PONG_MAX_BYTES: usize = 128;

/// The longest `id` an error reply echoes, in bytes (an `id` is the client's to choose).
const MAX_ID_ECHO: usize = 128;

/// The close reason when the shared store (Redis) cannot be reached: the client reconnects
/// later and resends what was not acknowledged.
pub const UNAVAILABLE: &str = "Service unavailable: try again later";

/// What the handler needs of the server's state.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub hub: &'a Hub,
    pub engine: &'a dyn Engine,
    pub cfg: &'a Config,
}

/// Where the replies to a client's frames go.
pub enum Replies<'a> {
    /// Queued on the connection itself (a WebSocket).
    Queue,
    /// Collected for the answer of the request that carried the frame (`POST /sse/send`).
    Collect(&'a mut Vec<Arc<str>>),
}

/// What a frame asks of its carrier, beyond the replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// A `pong`: clears the pending ping deadline.
    Pong,
    /// Close the connection (end the SSE session) with this code and reason.
    Close(u16, &'static str),
}

/// A fixed-window rate limiter: `count` frames per window, then refusals; too many refusals
/// in one window close the connection.
struct RateWindow {
    started: Instant,
    seen: u32,
    refused: u32,
}

enum Rate {
    Allowed,
    Refused,
    Close,
}

impl RateWindow {
    fn new(now: Instant) -> Self {
        RateWindow { started: now, seen: 0, refused: 0 }
    }

    fn check(&mut self, now: Instant, limit: crate::config::RateLimit, close_after: u32) -> Rate {
        if now.duration_since(self.started) >= limit.window {
            *self = RateWindow::new(now);
        }
        self.seen += 1;
        if self.seen <= limit.count {
            return Rate::Allowed;
        }
        self.refused += 1;
        if self.refused >= close_after {
            Rate::Close
        } else {
            Rate::Refused
        }
    }
}

/// The state of one client's frames: its connection in the hub, its rate window (started when
/// it opened) and the rooms it joined (for the engine's clean-up at the end).
pub struct Session {
    pub id: ConnId,
    rate: RateWindow,
    rooms: Vec<String>,
}

impl Session {
    pub fn new(id: ConnId) -> Session {
        Session { id, rate: RateWindow::new(Instant::now()), rooms: Vec::new() }
    }

    /// The rooms joined, taken for the clean-up (`Engine::room_left` each).
    pub fn take_rooms(&mut self) -> Vec<String> {
        std::mem::take(&mut self.rooms)
    }

    fn reply(&self, ctx: Ctx<'_>, out: &mut Replies<'_>, msg: &ServerMessage<Value>, id: Option<&str>) {
        let frame = encode(msg, id, None);
        match out {
            Replies::Queue => {
                ctx.hub.send_to(self.id, Out::Text(frame));
            }
            Replies::Collect(list) => list.push(frame),
        }
    }

    /// Answers with an error. Client input in `message` is clipped (see [`clip`]): an error
    /// reply never costs much more than the frame it answers.
    fn error(
        &self,
        ctx: Ctx<'_>,
        out: &mut Replies<'_>,
        code: ErrorCode,
        message: impl Into<String>,
        id: Option<&str>,
    ) {
        let body = ErrorBody { code: code.as_str().to_owned(), message: clip(message.into()) };
        self.reply(ctx, out, &ServerMessage::Error(body), id.map(|id| clip_str(id, MAX_ID_ECHO)));
    }

    /// Handles one text frame of `user`. `ping_pending`: the server waits for a pong (a small
    /// pong is then free).
    pub async fn on_text(
        &mut self,
        ctx: Ctx<'_>,
        user: &str,
        text: &str,
        ping_pending: bool,
        out: &mut Replies<'_>,
    ) -> Option<Handled> {
        // A pong answering the server's ping is free; anything else counts against the rate limit
        // before it is parsed at all (a large frame is never parsed when it is over the limit).
        if text.len() <= PONG_MAX_BYTES && is_pong(text) {
            if ping_pending {
                return Some(Handled::Pong);
            }
            // An unsolicited pong: counted, and like any pong it gets no reply.
            return match self.limit(ctx, out, None, false) {
                Some(Some(end)) => Some(end),
                _ => Some(Handled::Pong),
            };
        }
        let parsed: Result<Value, _> = serde_json::from_str(text);
        let (obj, id) = match parsed {
            Ok(Value::Object(obj)) => {
                let id = obj.get("id").and_then(Value::as_str).map(str::to_owned);
                (Some(obj), id)
            }
            _ => (None, None),
        };
        let id = id.as_deref();
        if let Some(stop) = self.limit(ctx, out, id, true) {
            return stop;
        }
        let Some(obj) = obj else {
            self.error(ctx, out, ErrorCode::BadJson, "a frame must be one JSON object", None);
            return None;
        };
        let Some(kind) = obj.get("type").and_then(Value::as_str) else {
            self.error(ctx, out, ErrorCode::BadJson, "a frame needs a string `type`", id);
            return None;
        };
        if kind == "pong" {
            // A large pong: counted above; it clears the deadline like any pong and gets no reply.
            return Some(Handled::Pong);
        }
        let payload = match obj.get("payload") {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => {
                self.error(ctx, out, ErrorCode::BadPayload, "`payload` must be a JSON object", id);
                return None;
            }
        };
        let msg = match ClientMessage::<Value>::decode(kind, payload) {
            Ok(msg) => msg,
            Err(e) => {
                self.error(ctx, out, ErrorCode::BadPayload, format!("{}: {e}", clip_str(kind, 64)), id);
                return None;
            }
        };
        match msg {
            ClientMessage::Pong => return Some(Handled::Pong),
            ClientMessage::Ping => self.reply(ctx, out, &ServerMessage::Pong, id),
            ClientMessage::Join(RoomRef { room }) => {
                if !is_valid_room_name(&room) {
                    self.error(
                        ctx,
                        out,
                        ErrorCode::BadPayload,
                        "room names are 1-64 characters of [A-Za-z0-9_.:-]",
                        id,
                    );
                } else {
                    match ctx.hub.join(self.id, &room) {
                        Ok(joined) => {
                            if !self.rooms.contains(&room) {
                                self.rooms.push(room.clone());
                            }
                            if ctx.engine.room_joined(&room).await.is_err() {
                                return Some(unavailable());
                            }
                            self.reply(ctx, out, &ServerMessage::Joined(joined), id)
                        }
                        Err(RoomError::RoomLimit) => self.error(
                            ctx,
                            out,
                            ErrorCode::RoomLimit,
                            format!("at most {} rooms per connection", ctx.cfg.max_rooms_per_connection),
                            id,
                        ),
                        Err(_) => {}
                    }
                }
            }
            ClientMessage::Leave(RoomRef { room }) => {
                ctx.hub.leave(self.id, &room);
                self.rooms.retain(|r| *r != room);
                let _ = ctx.engine.room_left(&room).await;
                self.reply(ctx, out, &ServerMessage::Left(RoomRef { room }), id);
            }
            ClientMessage::Presence(RoomRef { room }) => match ctx.hub.watch_presence(self.id, &room) {
                Ok(count) => self.reply(ctx, out, &ServerMessage::Presence(count), id),
                Err(RoomError::NotMember) => self.error(
                    ctx,
                    out,
                    ErrorCode::NotMember,
                    format!("not a member of room {:?}: join it first", clip_str(&room, 64)),
                    id,
                ),
                Err(_) => {}
            },
            ClientMessage::RoomMessage(send) => match ctx.hub.check_member(self.id, &send.room) {
                Ok(()) => {
                    let msg = ServerMessage::RoomMessage(resock::protocol::RoomMessage {
                        room: send.room.clone(),
                        from: user.to_owned(),
                        data: send.data,
                    });
                    let frame = encode(&msg, None, None);
                    // Acked only once the engine took it (a repeat of an id: acked, not sent).
                    match ctx.engine.room_message(&send.room, self.id, user, id, frame).await {
                        Ok(_) if id.is_some() => self.reply(ctx, out, &ServerMessage::Ack, id),
                        Ok(_) => {}
                        Err(_) => return Some(unavailable()),
                    }
                }
                Err(RoomError::NotMember) => self.error(
                    ctx,
                    out,
                    ErrorCode::NotMember,
                    format!("not a member of room {:?}: join it first", clip_str(&send.room, 64)),
                    id,
                ),
                Err(_) => {}
            },
            ClientMessage::Resume(resume) => match out {
                Replies::Queue => {
                    let resumed = ctx.engine.resume(self.id, user, &resume.epoch, resume.since, id).await;
                    if resumed.is_err() {
                        return Some(unavailable());
                    }
                }
                // An SSE session resumes when its stream opens (`Last-Event-ID` and `epoch`): a
                // replay queued in the middle of its stream would interleave with live events.
                Replies::Collect(_) => self.error(
                    ctx,
                    out,
                    ErrorCode::UnknownType,
                    "`resume` is not sent over POST: reopen the event stream with Last-Event-ID and epoch",
                    id,
                ),
            },
            ClientMessage::Custom { kind, .. } => {
                self.error(
                    ctx,
                    out,
                    ErrorCode::UnknownType,
                    format!("unknown message type {:?}", clip_str(&kind, 64)),
                    id,
                );
            }
            _ => self.error(ctx, out, ErrorCode::UnknownType, "unsupported message type", id),
        }
        None
    }

    /// Counts one frame against the rate limit: `None` lets it through; `Some(None)` refused it
    /// (answered `rate_limited` when `answer`); `Some(Some(close))` closes the connection with 1008.
    pub fn limit(
        &mut self,
        ctx: Ctx<'_>,
        out: &mut Replies<'_>,
        id: Option<&str>,
        answer: bool,
    ) -> Option<Option<Handled>> {
        let cfg = ctx.cfg;
        let verdict = self.rate.check(Instant::now(), cfg.rate_limit, cfg.rate_limit_close_after);
        if !matches!(verdict, Rate::Allowed) {
            ctx.hub.count_rate_limited();
        }
        match verdict {
            Rate::Allowed => None,
            Rate::Refused => {
                if answer {
                    self.error(ctx, out, ErrorCode::RateLimited, "Rate limit exceeded", id);
                }
                Some(None)
            }
            Rate::Close => {
                if answer {
                    self.error(ctx, out, ErrorCode::RateLimited, "Rate limit exceeded: closing", id);
                }
                Some(Some(Handled::Close(CloseCode::Policy.as_u16(), "Rate limit exceeded")))
            }
        }
    }
}

/// The end of a connection whose request the engine could not serve: 1013, so the client
/// reconnects after a while and resends what was not acknowledged.
fn unavailable() -> Handled {
    Handled::Close(CloseCode::TryAgainLater.as_u16(), UNAVAILABLE)
}

/// True for a small frame whose `type` is `"pong"`.
fn is_pong(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_str::<Kind<'_>>(text).is_ok_and(|k| k.kind.as_deref() == Some("pong"))
}

/// One SSE session: the frames its client posts (`POST /sse/send`) are handled one at a time,
/// in the order their requests take the lock.
pub struct SseSession {
    pub user: String,
    pub state: tokio::sync::Mutex<Session>,
}

/// The open SSE sessions of this instance, by their secret (bounded by `--max-sse`: a session
/// lives exactly as long as its event stream).
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<SseSession>>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SseSession>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, secret: String, session: Arc<SseSession>) {
        self.lock().insert(secret, session);
    }

    pub fn get(&self, secret: &str) -> Option<Arc<SseSession>> {
        self.lock().get(secret).cloned()
    }

    pub fn remove(&self, secret: &str) -> Option<Arc<SseSession>> {
        self.lock().remove(secret)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
