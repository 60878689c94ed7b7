//! `GET /sse/notifications`: the user stream as Server-Sent Events, and `POST /sse/send`: the
//! client frames of an SSE session, for clients whose WebSocket upgrades fail.
//!
//! Two modes (docs/PROTOCOL.md, "SSE"):
//! - the plain stream (no `epoch` in the query): the user stream only, resumable with
//!   `Last-Event-ID` without an epoch check, keep-alive comments;
//! - the session (`epoch` in the query, empty when the client knows none yet): a connection of
//!   the hub like a socket: `welcome` first (with the session's secret), `resumed
//!   {replayed, complete}` after the replay when it resumes, room messages, presence and
//!   broadcasts, `ping` events, and a `close {code, reason}` event when the server ends it. Its
//!   frames arrive over `POST /sse/send?session=`, through the same handler as a socket's
//!   (`session.rs`); the reply is the POST's answer.
//!
//! Same credentials and origin rules as `/ws`; refused credentials get 401 (an event stream has
//! no close codes).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use warp::http::StatusCode;
use warp::sse::Event;
use warp::{Filter, Rejection, Reply};

use crate::auth::AuthError;
use crate::http::{authenticate, engine_error, query, raw_body, with_app, ApiError, CredentialQuery};
use crate::hub::{ConnId, Kill, Out, SseRefused, StreamItem, SLOW_CONSUMER_REASON};
use crate::log;
use crate::session::{Handled, Replies, Session, SseSession, UNAVAILABLE};
use crate::state::App;
use crate::text::Esc;

/// Both routes.
pub fn route(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    stream(app.clone()).or(send(app))
}

fn stream(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("sse" / "notifications")
        .and(warp::get())
        .and(with_app(app))
        .and(query::<CredentialQuery>())
        .and(warp::header::optional::<String>("last-event-id"))
        .and_then(open)
}

/// Opens a stream: authenticates, registers it in the hub, queues its welcome and replay, and
/// answers with the event stream.
async fn open(app: Arc<App>, creds: CredentialQuery, last: Option<String>) -> Result<impl Reply, Rejection> {
    // Checked before the credentials, so that a bad header does not spend a ticket.
    let last_event_id =
        match last.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Some(s.parse::<u64>().map_err(|_| {
                ApiError::reject(StatusCode::BAD_REQUEST, "Last-Event-ID must be a seq (a whole number)")
            })?),
            _ => creds.last_event_id,
        };
    if app.hub.refusing_sse() {
        return Err(ApiError::reject(StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
    }
    let who = authenticate(&app, creds.ticket.as_deref(), creds.token.as_deref()).await.map_err(|e| {
        let status =
            if e == AuthError::Unavailable { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::UNAUTHORIZED };
        ApiError::reject(status, e.describe())
    })?;
    let user = who.user_id;
    let session = creds.epoch.is_some();
    let reg = app.hub.register_sse(&user, session).map_err(|e| match e {
        SseRefused::PerUser => ApiError::reject(
            StatusCode::TOO_MANY_REQUESTS,
            format!("at most {} SSE streams per user: close one first", app.cfg.max_sse_per_user),
        ),
        SseRefused::Total => ApiError::reject(StatusCode::SERVICE_UNAVAILABLE, "too many SSE streams: try again later"),
    })?;
    let id = reg.id;
    let secret = session.then(crate::auth::new_ticket);
    // From here on, an early return (an engine error) ends the stream through the guard.
    let guard = Guard { app: app.clone(), id, user: user.clone(), secret: secret.clone() };
    log::info(format_args!("sse c{id} user={} opened{}", Esc(&user), if session { " (session)" } else { "" }));
    let mut ready = VecDeque::new();
    let mut last_sent = 0;
    let mut resuming = None;
    if let Some(secret) = &secret {
        let state = tokio::sync::Mutex::new(Session::new(id));
        app.sessions.insert(secret.clone(), Arc::new(SseSession { user: user.clone(), state }));
        // The welcome first, then (held until it) what the user's stream pushed meanwhile.
        app.engine.welcome(id, &user, false).await.map_err(engine_error)?;
        if let Some(since) = last_event_id {
            // The replay and `resumed`, as one batch, queued after the welcome; live messages
            // that arrive before it wait in the feed (see `Feed::frame`).
            resuming = Some(Vec::new());
            let epoch = creds.epoch.as_deref().unwrap_or_default();
            app.engine.resume(id, &user, epoch, since, None).await.map_err(engine_error)?;
        }
    } else {
        // Subscribed first, then the replay read: a message pushed in between arrives live
        // (and maybe in the replay too); the feed sends each seq once, in order.
        app.engine.user_watched(&user).await.map_err(engine_error)?;
        if let Some(since) = last_event_id {
            for item in app.engine.replay(&user, since).await.map_err(engine_error)? {
                last_sent = item.seq;
                ready.push_back(stream_event(&item));
            }
        }
    }
    let keepalive = Duration::from_millis(app.cfg.sse_keepalive_ms);
    let order = Order {
        session: secret,
        heartbeat_ms: app.cfg.sse_keepalive_ms,
        limit: usize::try_from(app.cfg.send_queue).unwrap_or(usize::MAX),
        last_sent,
        resuming,
        ready,
    };
    let feed = Feed { rx: reg.rx, kill: reg.kill, keepalive, guard, order, done: false };
    Ok(warp::sse::reply(futures_util::stream::unfold(feed, Feed::next)))
}

/// Ends the stream's traces when its response is dropped: the hub's connection (its rooms with
/// it), the session, and what the engine keeps for it.
struct Guard {
    app: Arc<App>,
    id: ConnId,
    user: String,
    secret: Option<String>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.app.hub.unregister(self.id);
        let session = self.secret.as_deref().and_then(|s| self.app.sessions.remove(s));
        log::info(format_args!("sse c{} user={} ended", self.id, Esc(&self.user)));
        let (app, user) = (self.app.clone(), std::mem::take(&mut self.user));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Some(session) = session {
                    let rooms = session.state.lock().await.take_rooms();
                    for room in rooms {
                        let _ = app.engine.room_left(&room).await;
                    }
                }
                // Let the engine drop what this instance no longer needs (a Redis subscription).
                let _ = app.engine.user_gone(&user).await;
            });
        }
    }
}

/// The events of one stream, from the frames the hub queues for its connection.
struct Feed {
    rx: mpsc::Receiver<Out>,
    kill: oneshot::Receiver<Kill>,
    keepalive: Duration,
    guard: Guard,
    order: Order,
    done: bool,
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Feed)> {
        loop {
            if let Some(event) = self.order.ready.pop_front() {
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            tokio::select! {
                biased;
                killed = &mut self.kill => {
                    // What was queued before the end goes first.
                    while let Ok(out) = self.rx.try_recv() {
                        self.take(out);
                    }
                    if let Ok(Kill::Close(code, reason)) = killed {
                        self.order.close(code, reason);
                    }
                    self.done = true;
                }
                out = self.rx.recv() => match out {
                    Some(out) => self.take(out),
                    None => self.done = true,
                },
                () = tokio::time::sleep(self.keepalive) => self.order.keepalive(),
            }
        }
    }

    fn take(&mut self, out: Out) {
        if self.order.take(out).is_err() {
            log::info(format_args!("sse c{} closed 1008: send queue full", self.guard.id));
            self.guard.app.hub.end(self.guard.id, Kill::Close(1008, SLOW_CONSUMER_REASON));
        }
    }
}

/// More live messages arrived during a resume than the send queue holds: the client is not
/// reading (or the resume is stuck); the stream ends like a slow consumer's.
#[derive(Debug, PartialEq, Eq)]
struct Overflow;

/// What a stream sends, in which order: the frames queued for it turned into events, with no
/// I/O (tested below).
struct Order {
    /// The session's secret (it goes into the welcome); `None` for a plain stream.
    session: Option<String>,
    /// The welcome's `heartbeat_ms`: the keep-alive interval.
    heartbeat_ms: u64,
    /// Live user-stream messages held back while a session's resume is pending (at most `limit`).
    resuming: Option<Vec<StreamItem>>,
    limit: usize,
    /// The last user-stream seq sent: a later one with a seq at or under it is a duplicate.
    last_sent: u64,
    ready: VecDeque<Event>,
}

impl Order {
    fn take(&mut self, out: Out) -> Result<(), Overflow> {
        match out {
            Out::Text(frame) => self.frame(frame, false),
            // The answer to the session's resume: the replay, then `resumed`.
            Out::Batch(frames) => frames.into_iter().try_for_each(|frame| self.frame(frame, true)),
        }
    }

    /// The keep-alive: an event for a session (so that an EventSource sees it), a comment for a
    /// plain stream.
    fn keepalive(&mut self) {
        self.ready.push_back(if self.session.is_some() {
            Event::default().event("ping").data("{}")
        } else {
            Event::default().comment("")
        });
    }

    /// The server ended the stream with this code: a session says so; a plain stream just ends.
    fn close(&mut self, code: u16, reason: &str) {
        if self.session.is_some() {
            let data = serde_json::json!({ "code": code, "reason": reason }).to_string();
            self.ready.push_back(Event::default().event("close").data(data));
        }
    }

    /// Turns one queued frame into events. A user-stream message is sent once, in seq order: a
    /// replayed one always (the replay is what the client asked for), a live one when its seq is
    /// past the last sent, and while a resume is pending it waits for the replay's end.
    fn frame(&mut self, frame: Arc<str>, replayed: bool) -> Result<(), Overflow> {
        if let Some(item) = StreamItem::parse(frame.clone()) {
            if replayed {
                self.send_item(&item);
            } else if let Some(held) = self.resuming.as_mut() {
                if held.len() >= self.limit {
                    return Err(Overflow);
                }
                held.push(item);
            } else if item.seq > self.last_sent {
                self.send_item(&item);
            }
            return Ok(());
        }
        // A plain stream carries the user stream only.
        let Some(secret) = self.session.as_deref() else { return Ok(()) };
        let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(&frame) else { return Ok(()) };
        let kind = match obj.remove("type") {
            // An event name cannot hold a line break (it would end the field).
            Some(Value::String(kind)) if !kind.contains(['\r', '\n']) => kind,
            _ => return Ok(()),
        };
        let mut payload = obj.remove("payload").unwrap_or_else(|| Value::Object(Default::default()));
        let mut event = Event::default();
        // `welcome` (unless a replay follows) and `resumed` carry the last seq they cover as their
        // id, so that an EventSource's own Last-Event-ID is always the last seq the client has.
        if kind == "welcome" {
            self.last_sent = payload["seq"].as_u64().unwrap_or(0);
            if let Value::Object(p) = &mut payload {
                p.insert("session".into(), secret.into());
                p.insert("heartbeat_ms".into(), self.heartbeat_ms.into());
            }
            if self.resuming.is_none() {
                event = event.id(self.last_sent.to_string());
            }
        } else if kind == "resumed" {
            event = event.id(self.last_sent.to_string());
        }
        self.ready.push_back(event.event(&kind).data(payload.to_string()));
        if kind == "resumed" {
            for item in self.resuming.take().unwrap_or_default() {
                if item.seq > self.last_sent {
                    self.send_item(&item);
                }
            }
        }
        Ok(())
    }

    fn send_item(&mut self, item: &StreamItem) {
        self.last_sent = self.last_sent.max(item.seq);
        self.ready.push_back(stream_event(item));
    }
}

/// A user-stream message as an event: `id: <seq>`, `event: <type>`, `data: <payload>`.
fn stream_event(item: &StreamItem) -> Event {
    Event::default().id(item.seq.to_string()).event(item.kind()).data(item.payload())
}

/// The query of `POST /sse/send`.
#[derive(Debug, Default, serde::Deserialize)]
struct SendQuery {
    session: Option<String>,
}

/// `POST /sse/send?session=<secret>`: one client frame (the body, as a WebSocket text frame),
/// handled like a socket's; the reply is the answer (`200` with the frame, `204` when the frame
/// gets none).
fn send(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let (limit, within) = (app.cfg.max_message_bytes, app.cfg.body_timeout());
    warp::path!("sse" / "send")
        .and(warp::post())
        .and(with_app(app))
        .and(query::<SendQuery>())
        .and(raw_body(limit, within))
        .and_then(post_frame)
}

fn gone() -> Rejection {
    ApiError::reject(StatusCode::GONE, "unknown or ended SSE session: open the event stream again")
}

async fn post_frame(app: Arc<App>, q: SendQuery, body: Vec<u8>) -> Result<warp::reply::Response, Rejection> {
    let secret = q.session.filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::reject(StatusCode::BAD_REQUEST, "missing `session`: the session of the event stream's welcome")
    })?;
    let session = app.sessions.get(&secret).ok_or_else(gone)?;
    let text =
        String::from_utf8(body).map_err(|_| ApiError::reject(StatusCode::BAD_REQUEST, "a frame must be UTF-8 text"))?;
    // One frame at a time per session, like a socket's.
    let mut state = session.state.lock().await;
    let id = state.id;
    if !app.hub.is_open(id) {
        return Err(gone());
    }
    let mut replies = Vec::new();
    let handled = state.on_text(app.ctx(), &session.user, &text, false, &mut Replies::Collect(&mut replies)).await;
    if let Some(Handled::Close(code, reason)) = handled {
        log::info(format_args!("sse c{id} user={} closed {code}: {reason}", Esc(&session.user)));
        app.hub.end(id, Kill::Close(code, reason));
        if replies.is_empty() && reason == UNAVAILABLE {
            return Err(ApiError::reject(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE));
        }
    }
    match replies.into_iter().next() {
        Some(reply) => {
            Ok(warp::reply::with_header(reply.to_string(), "content-type", "application/json").into_response())
        }
        // Handled when the session was open while it ran; none of its requests answers 204 then.
        None if !app.hub.is_open(id) => Err(gone()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::encode;
    use resock::protocol::{Resumed, ServerMessage, Welcome};

    fn item(seq: u64) -> Arc<str> {
        StreamItem::new(seq, "task_update", &format!(r#"{{"n":{seq}}}"#)).frame
    }

    fn welcome(seq: u64) -> Out {
        let w = Welcome { user_id: "a".into(), connection_id: "c1".into(), heartbeat_ms: 1, epoch: "e".into(), seq };
        Out::Text(encode(&ServerMessage::Welcome(w), None, None))
    }

    fn resume_batch(seqs: &[u64], complete: bool) -> Out {
        let mut frames: Vec<Arc<str>> = seqs.iter().copied().map(item).collect();
        let resumed = Resumed { replayed: seqs.len() as u64, complete };
        frames.push(encode(&ServerMessage::Resumed(resumed), None, None));
        Out::Batch(frames)
    }

    fn order(resuming: bool) -> Order {
        let resuming = resuming.then(Vec::new);
        Order { session: Some("S".into()), heartbeat_ms: 9, limit: 4, last_sent: 0, resuming, ready: VecDeque::new() }
    }

    /// The events as (id, event) pairs.
    fn sent(o: &mut Order) -> Vec<String> {
        o.ready
            .drain(..)
            .map(|e| {
                let text = e.to_string();
                let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default().to_owned();
                format!("{}{}", field("event:"), field("id:"))
            })
            .collect()
    }

    #[test]
    fn live_messages_that_overtake_the_replay_wait_for_it_and_go_once() {
        // welcome 10; 11 and 12 are pushed before the replay is read (so they are in it too), 13
        // after it was read but before it was queued (another instance's push, with Redis).
        let mut o = order(true);
        o.take(welcome(10)).unwrap();
        for seq in [11, 12, 13] {
            o.take(Out::Text(item(seq))).unwrap();
        }
        o.take(resume_batch(&[6, 7, 8, 9, 10, 11, 12], true)).unwrap();
        o.take(Out::Text(item(13))).unwrap();
        o.take(Out::Text(item(14))).unwrap();
        let want: Vec<String> = std::iter::once("welcome".to_owned())
            .chain((6..=12).map(|s| format!("task_update{s}")))
            .chain(std::iter::once("resumed12".to_owned()))
            .chain((13..=14).map(|s| format!("task_update{s}")))
            .collect();
        assert_eq!(sent(&mut o), want);
    }

    #[test]
    fn after_an_incomplete_resume_the_live_messages_past_the_welcome_go_out() {
        // Another epoch: nothing replayed; 11 arrived live meanwhile and must not be lost.
        let mut o = order(true);
        o.take(welcome(10)).unwrap();
        o.take(Out::Text(item(11))).unwrap();
        assert_eq!(sent(&mut o), ["welcome"], "held until the replay's end; no id: the replay follows");
        o.take(resume_batch(&[], false)).unwrap();
        o.take(Out::Text(item(12))).unwrap();
        assert_eq!(sent(&mut o), ["resumed10", "task_update11", "task_update12"], "resumed: the welcome's seq");
    }

    #[test]
    fn the_welcome_carries_the_session_and_the_keepalive() {
        let mut o = order(false);
        o.take(welcome(3)).unwrap();
        let text = o.ready.pop_front().unwrap().to_string();
        assert!(text.lines().any(|l| l == "id:3"), "no replay follows: the welcome's seq is the id: {text}");
        let data: Value = serde_json::from_str(text.lines().find_map(|l| l.strip_prefix("data:")).unwrap()).unwrap();
        assert_eq!(
            (data["session"].as_str(), data["heartbeat_ms"].as_u64(), data["seq"].as_u64()),
            (Some("S"), Some(9), Some(3))
        );
        // Live messages the welcome covers are not sent again.
        o.take(Out::Text(item(3))).unwrap();
        o.take(Out::Text(item(4))).unwrap();
        assert_eq!(sent(&mut o), ["task_update4"]);
    }

    #[test]
    fn holding_more_than_the_send_queue_during_a_resume_overflows() {
        let mut o = order(true);
        o.take(welcome(0)).unwrap();
        for seq in 1..=4 {
            o.take(Out::Text(item(seq))).unwrap();
        }
        assert_eq!(o.take(Out::Text(item(5))), Err(Overflow));
    }

    #[test]
    fn a_plain_stream_gets_the_user_stream_only_and_no_close_event() {
        let mut o = Order { session: None, ..order(false) };
        o.take(Out::Text(encode(&ServerMessage::Pong, None, None))).unwrap();
        o.take(Out::Text(item(1))).unwrap();
        o.take(Out::Text(item(1))).unwrap();
        o.close(1001, "Server shutting down");
        o.keepalive();
        assert_eq!(sent(&mut o), ["task_update1", ""], "the keep-alive is a comment");
    }
}
