//! One WebSocket connection: authentication result, registration, a writer task fed by the
//! hub's bounded queue, and the control loop (frames, heartbeat, pong and idle deadlines,
//! rate limit, kill switch).

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use resock::protocol::{
    is_valid_room_name, ClientMessage, CloseCode, ErrorBody, ErrorCode, RoomRef, ServerMessage, REASON_UNAUTHORIZED,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite;
use warp::ws::{Message, WebSocket};

use crate::auth::{AuthError, Identity};
use crate::hub::{encode, ConnId, Kill, Out, RegisterError, RoomError};
use crate::log;
use crate::server::App;

/// How long a close frame may take to go out before the socket is dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

type Sink = SplitSink<WebSocket, Message>;

/// How a connection ends.
enum End {
    /// Send this close frame, then drop the socket.
    Close(u16, &'static str),
    /// Drop the socket without a close frame.
    Cut,
    /// The client closed or the socket failed: nothing more to send.
    Gone,
}

/// Runs a connection from the upgrade to the end.
pub async fn run(ws: WebSocket, app: Arc<App>, who: Result<Identity, AuthError>) {
    let (mut sink, stream) = ws.split();
    let who = match who {
        Ok(who) => who,
        Err(e) => {
            log::info(format_args!("ws upgrade refused with 4001: {}", e.describe()));
            close_now(&mut sink, CloseCode::Unauthorized.as_u16(), REASON_UNAUTHORIZED).await;
            return;
        }
    };
    let reg = match app.hub.register(&who.user_id) {
        Ok(reg) => reg,
        Err(RegisterError::TooMany(reason)) => {
            log::info(format_args!("ws user={} refused with 1013: {reason}", who.user_id));
            close_now(&mut sink, CloseCode::TryAgainLater.as_u16(), reason).await;
            return;
        }
        Err(RegisterError::ShuttingDown) => {
            close_now(&mut sink, CloseCode::GoingAway.as_u16(), "Server shutting down").await;
            return;
        }
    };
    let id = reg.id;
    log::info(format_args!("conn c{id} user={} opened", who.user_id));
    let (close_tx, close_rx) = oneshot::channel();
    let mut writer = tokio::spawn(write_loop(sink, reg.rx, close_rx));

    let mut session = Session { app: &app, id, rate: RateWindow::new(Instant::now()) };
    let end = session.control_loop(stream, reg.kill, &mut writer).await;
    app.hub.unregister(id);
    // A JoinHandle must not be polled again once it has completed.
    let writer_done = writer.is_finished();
    match end {
        End::Close(code, reason) => {
            log::info(format_args!("conn c{id} user={} closed {code}: {reason}", who.user_id));
            let _ = close_tx.send((code, reason));
            if !writer_done && timeout(CLOSE_GRACE * 2, &mut writer).await.is_err() {
                writer.abort();
            }
        }
        End::Cut => {
            log::info(format_args!("conn c{id} user={} cut without a close frame", who.user_id));
            writer.abort();
        }
        End::Gone => {
            log::info(format_args!("conn c{id} user={} gone", who.user_id));
            drop(close_tx);
            if !writer_done && timeout(CLOSE_GRACE, &mut writer).await.is_err() {
                writer.abort();
            }
        }
    }
}

async fn close_now(sink: &mut Sink, code: u16, reason: &'static str) {
    let _ = timeout(CLOSE_GRACE, async {
        let _ = sink.send(Message::close_with(code, reason)).await;
        let _ = sink.close().await;
    })
    .await;
}

/// Writes queued frames until told to close. When the hub drops the queue (the connection was
/// removed), it waits for the close order instead of ending, so the close frame still goes out.
async fn write_loop(mut sink: Sink, mut rx: mpsc::Receiver<Out>, mut close_rx: oneshot::Receiver<(u16, &'static str)>) {
    let mut queue_open = true;
    loop {
        tokio::select! {
            biased;
            order = &mut close_rx => {
                if let Ok((code, reason)) = order {
                    // What was queued before the close (an error that explains it, say) goes first.
                    let _ = timeout(CLOSE_GRACE, async {
                        while let Ok(out) = rx.try_recv() {
                            if write(&mut sink, out).await.is_err() {
                                return;
                            }
                        }
                    })
                    .await;
                    close_now(&mut sink, code, reason).await;
                } else {
                    let _ = timeout(CLOSE_GRACE, sink.close()).await;
                }
                return;
            }
            out = rx.recv(), if queue_open => match out {
                Some(out) => {
                    if write(&mut sink, out).await.is_err() {
                        return;
                    }
                }
                None => queue_open = false,
            }
        }
    }
}

async fn write(sink: &mut Sink, out: Out) -> Result<(), warp::Error> {
    match out {
        Out::Text(text) => sink.send(Message::text(&*text)).await,
        Out::Batch(frames) => {
            for text in frames {
                sink.feed(Message::text(&*text)).await?;
            }
            sink.flush().await
        }
    }
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

struct Session<'a> {
    app: &'a App,
    id: ConnId,
    rate: RateWindow,
}

impl Session<'_> {
    async fn control_loop(
        &mut self,
        mut stream: futures_util::stream::SplitStream<WebSocket>,
        mut kill: oneshot::Receiver<Kill>,
        writer: &mut tokio::task::JoinHandle<()>,
    ) -> End {
        let cfg = &self.app.cfg;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + cfg.heartbeat(), cfg.heartbeat());
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pong_deadline: Option<Instant> = None;
        let mut last_received = Instant::now();
        let ping = encode(&ServerMessage::Ping, None, None);
        loop {
            let pong_wait = pong_deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
            tokio::select! {
                killed = &mut kill => return match killed {
                    Ok(Kill::Close(code, reason)) => End::Close(code, reason),
                    Ok(Kill::Cut) | Err(_) => End::Cut,
                },
                _ = &mut *writer => return End::Gone,
                _ = heartbeat.tick() => {
                    if pong_deadline.is_none() {
                        pong_deadline = Some(Instant::now() + cfg.pong_timeout());
                    }
                    self.app.hub.send_to(self.id, Out::Text(ping.clone()));
                }
                _ = sleep_until(pong_wait), if pong_deadline.is_some() => {
                    return End::Close(CloseCode::GoingAway.as_u16(), "Pong timeout");
                }
                _ = sleep_until(last_received + cfg.idle_timeout()) => {
                    return End::Close(CloseCode::GoingAway.as_u16(), "Idle timeout");
                }
                frame = stream.next() => {
                    last_received = Instant::now();
                    match frame {
                        None => return End::Gone,
                        Some(Err(e)) => return read_error(&e),
                        Some(Ok(msg)) if msg.is_text() => {
                            let text = msg.to_str().unwrap_or_default();
                            if text.len() as u64 > cfg.max_message_bytes {
                                return End::Close(CloseCode::TooBig.as_u16(), "Message too big");
                            }
                            match self.on_text(text) {
                                Some(Handled::Pong) => pong_deadline = None,
                                Some(Handled::End(end)) => return end,
                                None => {}
                            }
                        }
                        Some(Ok(msg)) if msg.is_binary() => {
                            return End::Close(CloseCode::Unsupported.as_u16(), "Binary frames are not supported");
                        }
                        Some(Ok(msg)) if msg.is_close() => return End::Gone,
                        Some(Ok(_)) => {} // protocol-level ping/pong: tungstenite answers pings itself
                    }
                }
            }
        }
    }

    fn reply(&self, msg: &ServerMessage<Value>, id: Option<&str>) {
        self.app.hub.send_to(self.id, Out::Text(encode(msg, id, None)));
    }

    fn error(&self, code: ErrorCode, message: impl Into<String>, id: Option<&str>) {
        let body = ErrorBody { code: code.as_str().to_owned(), message: message.into() };
        self.reply(&ServerMessage::Error(body), id);
    }

    fn on_text(&mut self, text: &str) -> Option<Handled> {
        let parsed: Result<Value, _> = serde_json::from_str(text);
        let obj = match parsed {
            Ok(Value::Object(obj)) => obj,
            _ => {
                if let Some(stop) = self.limit(None) {
                    return stop;
                }
                self.error(ErrorCode::BadJson, "a frame must be one JSON object", None);
                return None;
            }
        };
        let id = obj.get("id").and_then(Value::as_str).map(str::to_owned);
        let id = id.as_deref();
        let Some(kind) = obj.get("type").and_then(Value::as_str) else {
            if let Some(stop) = self.limit(id) {
                return stop;
            }
            self.error(ErrorCode::BadJson, "a frame needs a string `type`", id);
            return None;
        };
        if kind == "pong" {
            // Any pong clears the deadline, whatever its payload, and gets no reply.
            return Some(Handled::Pong);
        }
        if let Some(stop) = self.limit(id) {
            return stop;
        }
        let payload = match obj.get("payload") {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => {
                self.error(ErrorCode::BadPayload, "`payload` must be a JSON object", id);
                return None;
            }
        };
        let msg = match ClientMessage::<Value>::decode(kind, payload) {
            Ok(msg) => msg,
            Err(e) => {
                self.error(ErrorCode::BadPayload, format!("{kind}: {e}"), id);
                return None;
            }
        };
        match msg {
            ClientMessage::Pong => return Some(Handled::Pong),
            ClientMessage::Ping => self.reply(&ServerMessage::Pong, id),
            ClientMessage::Join(RoomRef { room }) => {
                if !is_valid_room_name(&room) {
                    self.error(ErrorCode::BadPayload, "room names are 1-64 characters of [A-Za-z0-9_.:-]", id);
                } else {
                    match self.app.hub.join(self.id, &room) {
                        Ok(joined) => self.reply(&ServerMessage::Joined(joined), id),
                        Err(RoomError::RoomLimit) => self.error(
                            ErrorCode::RoomLimit,
                            format!("at most {} rooms per connection", self.app.cfg.max_rooms_per_connection),
                            id,
                        ),
                        Err(_) => {}
                    }
                }
            }
            ClientMessage::Leave(RoomRef { room }) => {
                self.app.hub.leave(self.id, &room);
                self.reply(&ServerMessage::Left(RoomRef { room }), id);
            }
            ClientMessage::RoomMessage(send) => match self.app.hub.room_message(self.id, &send.room, send.data, id) {
                Ok(_) => {
                    if id.is_some() {
                        self.reply(&ServerMessage::Ack, id);
                    }
                }
                Err(RoomError::NotMember) => {
                    self.error(ErrorCode::NotMember, format!("not a member of room {:?}: join it first", send.room), id)
                }
                Err(_) => {}
            },
            ClientMessage::Resume(resume) => {
                self.app.hub.resume(self.id, &resume.epoch, resume.since, id);
            }
            ClientMessage::Custom { kind, .. } => {
                self.error(ErrorCode::UnknownType, format!("unknown message type {kind:?}"), id);
            }
            _ => self.error(ErrorCode::UnknownType, "unsupported message type", id),
        }
        None
    }

    /// Counts one frame against the rate limit: `None` lets it through; `Some(None)` refused it
    /// (answered `rate_limited`); `Some(Some(end))` closes the connection with 1008.
    fn limit(&mut self, id: Option<&str>) -> Option<Option<Handled>> {
        let cfg = &self.app.cfg;
        let verdict = self.rate.check(Instant::now(), cfg.rate_limit, cfg.rate_limit_close_after);
        if !matches!(verdict, Rate::Allowed) {
            self.app.hub.count_rate_limited();
        }
        match verdict {
            Rate::Allowed => None,
            Rate::Refused => {
                self.error(ErrorCode::RateLimited, "Rate limit exceeded", id);
                Some(None)
            }
            Rate::Close => {
                self.error(ErrorCode::RateLimited, "Rate limit exceeded: closing", id);
                Some(Some(Handled::End(End::Close(CloseCode::Policy.as_u16(), "Rate limit exceeded"))))
            }
        }
    }
}

enum Handled {
    Pong,
    End(End),
}

/// Maps a read error to the close code the protocol gives it.
fn read_error(e: &warp::Error) -> End {
    match e.source().and_then(|s| s.downcast_ref::<tungstenite::Error>()) {
        Some(tungstenite::Error::Capacity(_)) => End::Close(CloseCode::TooBig.as_u16(), "Message too big"),
        Some(tungstenite::Error::Utf8(_)) => End::Close(CloseCode::InvalidPayload.as_u16(), "Invalid UTF-8"),
        _ => End::Gone,
    }
}
