//! One WebSocket connection: authentication result, registration, a writer task fed by the
//! hub's bounded queue, the control loop (frames, heartbeat, pong and idle deadlines, rate
//! limit, kill switch), and the close handshake.
//!
//! Every close the server starts follows RFC 6455 §7.1.1: the close frame goes out, then the
//! server keeps reading and discarding until the client's close frame, EOF or [`DRAIN_GRACE`].
//! Dropping the socket with the client's frames unread would make the kernel send a reset, and
//! a client that keeps sending would see 1006 instead of the close code.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use resock::protocol::{
    is_valid_room_name, ClientMessage, CloseCode, ErrorBody, ErrorCode, RoomRef, ServerMessage, REASON_UNAUTHORIZED,
};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::auth::{AuthError, Identity};
use crate::engine::EngineError;
use crate::hub::{encode, ConnId, Kill, Out, RegisterError, RoomError};
use crate::log;
use crate::state::App;
use crate::text::{clip, clip_str, Esc};

/// How long queued frames and the close frame may take to go out before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long the server keeps reading (and discarding) after its close frame, waiting for the
/// client's close frame or EOF.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// While draining a stream whose frames can no longer be parsed (after a read error), the
/// client counts as done once it sent nothing for this long.
const DRAIN_QUIET: Duration = Duration::from_millis(250);

/// A frame at most this long may be a `pong`, checked before the rate limit; a longer one is
/// counted against the rate limit before it is parsed at all.
const PONG_MAX_BYTES: usize = 128;

/// The socket a connection task gets from the upgrade.
pub type Socket = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

type Sink = SplitSink<Socket, Message>;
type Stream = SplitStream<Socket>;

/// How a connection ends.
enum End {
    /// Send this close frame, then drain the socket (see the module docs).
    Close(u16, &'static str, Drain),
    /// Drop the socket without a close frame.
    Cut,
    /// The client closed or the socket failed: nothing more to send.
    Gone,
}

/// How to read what the client still sends after the server's close frame.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Frame by frame, until the client's close frame.
    Frames,
    /// The frame reader failed (oversize, bad UTF-8, protocol error): raw bytes, until EOF or
    /// the client falls quiet.
    Raw,
}

/// Runs a connection from the upgrade to the end.
pub async fn run(ws: Socket, app: Arc<App>, who: Result<Identity, AuthError>) {
    let (sink, stream) = ws.split();
    let who = match who {
        Ok(who) => who,
        Err(AuthError::Unavailable) => {
            log::info(format_args!("ws upgrade refused with 1013: {}", AuthError::Unavailable.describe()));
            Box::pin(refuse(sink, stream, CloseCode::TryAgainLater.as_u16(), UNAVAILABLE)).await;
            return;
        }
        Err(e) => {
            log::info(format_args!("ws upgrade refused with 4001: {}", e.describe()));
            Box::pin(refuse(sink, stream, CloseCode::Unauthorized.as_u16(), REASON_UNAUTHORIZED)).await;
            return;
        }
    };
    let user = Esc(&who.user_id);
    let reg = match app.hub.register(&who.user_id) {
        Ok(reg) => reg,
        Err(RegisterError::TooMany(reason)) => {
            log::info(format_args!("ws user={user} refused with 1013: {reason}"));
            Box::pin(refuse(sink, stream, CloseCode::TryAgainLater.as_u16(), reason)).await;
            return;
        }
        Err(RegisterError::ShuttingDown) => {
            Box::pin(refuse(sink, stream, CloseCode::GoingAway.as_u16(), "Server shutting down")).await;
            return;
        }
    };
    let id = reg.id;
    log::info(format_args!("conn c{id} user={user} opened"));
    let (close_tx, close_rx) = oneshot::channel();
    let mut writer = tokio::spawn(write_loop(sink, reg.rx, close_rx));
    let mut stream = stream;

    let mut session =
        Session { app: &app, id, user: &who.user_id, rate: RateWindow::new(Instant::now()), rooms: Vec::new() };
    // The welcome (and with it every frame held for this connection) once the engine has the
    // user's stream: from here on the user's pushes reach this connection.
    let welcomed = app.engine.welcome(id, &who.user_id).await;
    let end = match &welcomed {
        Ok(()) => session.control_loop(&mut stream, reg.kill, &mut writer).await,
        Err(EngineError::TooManyConnections) => {
            log::info(format_args!("ws user={user} refused with 1013: too many connections over all instances"));
            End::Close(CloseCode::TryAgainLater.as_u16(), "Too many connections for this user", Drain::Frames)
        }
        Err(e) => {
            log::info(format_args!("conn c{id} user={user}: {e}"));
            End::Close(CloseCode::TryAgainLater.as_u16(), UNAVAILABLE, Drain::Frames)
        }
    };
    app.hub.unregister(id);
    if welcomed.is_ok() {
        let _ = app.engine.connection_closed(&who.user_id).await;
    }
    // Let the engine drop what this instance no longer needs (Redis subscriptions).
    let _ = app.engine.user_gone(&who.user_id).await;
    for room in std::mem::take(&mut session.rooms) {
        let _ = app.engine.room_left(&room).await;
    }
    match end {
        End::Close(code, reason, drain) => {
            log::info(format_args!("conn c{id} user={user} closed {code}: {reason}"));
            let _ = close_tx.send((code, reason));
            // Boxed, like `refuse`: the close path's state would otherwise sit in every idle
            // connection's task for its whole life (docs/BENCHMARKS.md, memory per connection).
            Box::pin(finish_close(stream, writer, drain)).await;
        }
        End::Cut => {
            log::info(format_args!("conn c{id} user={user} cut without a close frame"));
            writer.abort();
        }
        End::Gone => {
            log::info(format_args!("conn c{id} user={user} gone"));
            // The writer flushes tungstenite's reply to the client's close frame, then ends.
            drop(close_tx);
            if !writer.is_finished() && timeout(CLOSE_GRACE, &mut writer).await.is_err() {
                writer.abort();
            }
        }
    }
}

/// Closes a connection that never registered: the close frame, then the drain.
async fn refuse(mut sink: Sink, stream: Stream, code: u16, reason: &'static str) {
    close_now(&mut sink, code, reason).await;
    let writer = tokio::spawn(async move { Some(sink) });
    finish_close(stream, writer, Drain::Frames).await;
}

/// Waits for the writer (which sends the close frame) while reading and discarding what the
/// client still sends, until its close frame, EOF or [`DRAIN_GRACE`]; then drops the socket.
async fn finish_close(mut stream: Stream, mut writer: JoinHandle<Option<Sink>>, drain: Drain) {
    let deadline = Instant::now() + DRAIN_GRACE;
    let sink = match drain {
        Drain::Frames => {
            let (sink, ()) = tokio::join!(join_writer(&mut writer, deadline), drain_frames(&mut stream, deadline));
            sink
        }
        Drain::Raw => join_writer(&mut writer, deadline).await,
    };
    if drain == Drain::Raw {
        if let Some(Ok(mut ws)) = sink.map(|sink| stream.reunite(sink)) {
            drain_raw(ws.get_mut(), deadline).await;
        }
    }
}

async fn join_writer(writer: &mut JoinHandle<Option<Sink>>, deadline: Instant) -> Option<Sink> {
    match tokio::time::timeout_at(deadline, &mut *writer).await {
        Ok(Ok(sink)) => sink,
        Ok(Err(_)) => None,
        Err(_) => {
            writer.abort(); // the client does not read: nothing more can reach it
            None
        }
    }
}

/// Reads and discards frames until the client's close frame, the end of the stream or
/// `deadline`. None of them is handled or answered.
async fn drain_frames(stream: &mut Stream, deadline: Instant) {
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, stream.next()).await {
        if msg.is_close() {
            return;
        }
    }
}

/// Reads and discards raw bytes until EOF, [`DRAIN_QUIET`] without a byte, or `deadline`.
async fn drain_raw<S: tokio::io::AsyncRead + Unpin>(io: &mut S, deadline: Instant) {
    let mut buf = [0u8; 1024];
    loop {
        let quiet = (Instant::now() + DRAIN_QUIET).min(deadline);
        match tokio::time::timeout_at(quiet, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

async fn close_now(sink: &mut Sink, code: u16, reason: &'static str) {
    let frame = CloseFrame { code: WsCloseCode::from(code), reason: reason.into() };
    let _ = timeout(CLOSE_GRACE, async {
        let _ = sink.send(Message::Close(Some(frame))).await;
        let _ = sink.close().await;
    })
    .await;
}

/// Writes queued frames until told to close. When the hub drops the queue (the connection was
/// removed), it waits for the close order instead of ending, so the close frame still goes out.
/// Gives the sink back for the drain, unless writing failed.
async fn write_loop(
    mut sink: Sink,
    mut rx: mpsc::Receiver<Out>,
    mut close_rx: oneshot::Receiver<(u16, &'static str)>,
) -> Option<Sink> {
    let mut queue_open = true;
    loop {
        tokio::select! {
            biased;
            order = &mut close_rx => {
                if let Ok((code, reason)) = order {
                    // What was queued before the close (an error that explains it, say) goes first.
                    let flushed = timeout(CLOSE_GRACE, async {
                        while let Ok(out) = rx.try_recv() {
                            write(&mut sink, out).await?;
                        }
                        Ok::<_, tungstenite::Error>(())
                    })
                    .await;
                    if !matches!(flushed, Ok(Ok(()))) {
                        return None;
                    }
                    close_now(&mut sink, code, reason).await;
                } else {
                    let _ = timeout(CLOSE_GRACE, sink.close()).await;
                }
                return Some(sink);
            }
            out = rx.recv(), if queue_open => match out {
                Some(out) => {
                    if write(&mut sink, out).await.is_err() {
                        return None;
                    }
                }
                None => queue_open = false,
            }
        }
    }
}

async fn write(sink: &mut Sink, out: Out) -> Result<(), tungstenite::Error> {
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
    user: &'a str,
    rate: RateWindow,
    /// The rooms this connection joined (for the engine's clean-up at the end).
    rooms: Vec<String>,
}

impl Session<'_> {
    async fn control_loop(
        &mut self,
        stream: &mut Stream,
        mut kill: oneshot::Receiver<Kill>,
        writer: &mut JoinHandle<Option<Sink>>,
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
                    Ok(Kill::Close(code, reason)) => End::Close(code, reason, Drain::Frames),
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
                    return End::Close(CloseCode::GoingAway.as_u16(), "Pong timeout", Drain::Frames);
                }
                _ = sleep_until(last_received + cfg.idle_timeout()) => {
                    return End::Close(CloseCode::GoingAway.as_u16(), "Idle timeout", Drain::Frames);
                }
                frame = stream.next() => {
                    last_received = Instant::now();
                    let msg = match frame {
                        None => return End::Gone,
                        Some(Err(e)) => return read_error(&e),
                        Some(Ok(msg)) => msg,
                    };
                    match msg {
                        Message::Text(text) => {
                            if text.len() as u64 > cfg.max_message_bytes {
                                return End::Close(CloseCode::TooBig.as_u16(), "Message too big", Drain::Frames);
                            }
                            // Boxed: the handler's state (engine calls included) would otherwise
                            // take room in every idle connection's task.
                            match Box::pin(self.on_text(text.as_str(), pong_deadline.is_some())).await {
                                Some(Handled::Pong) => pong_deadline = None,
                                Some(Handled::End(end)) => return end,
                                None => {}
                            }
                        }
                        Message::Binary(_) => {
                            return End::Close(CloseCode::Unsupported.as_u16(), "Binary frames are not supported", Drain::Frames);
                        }
                        Message::Close(_) => return End::Gone,
                        // Protocol-level pings and pongs: tungstenite answers pings itself. They
                        // count against the rate limit like any frame (a ping flood is closed 1008),
                        // unanswered: there is no id to answer to.
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                            if let Some(Some(Handled::End(end))) = self.limit(None, false) {
                                return end;
                            }
                        }
                    }
                }
            }
        }
    }

    fn reply(&self, msg: &ServerMessage<Value>, id: Option<&str>) {
        self.app.hub.send_to(self.id, Out::Text(encode(msg, id, None)));
    }

    /// Answers with an error. Client input in `message` is clipped (see [`clip`]): an error
    /// reply never costs much more than the frame it answers.
    fn error(&self, code: ErrorCode, message: impl Into<String>, id: Option<&str>) {
        let body = ErrorBody { code: code.as_str().to_owned(), message: clip(message.into()) };
        self.reply(&ServerMessage::Error(body), id.map(|id| clip_str(id, MAX_ID_ECHO)));
    }

    async fn on_text(&mut self, text: &str, ping_pending: bool) -> Option<Handled> {
        // A pong answering the server's ping is free; anything else counts against the rate limit
        // before it is parsed at all (a large frame is never parsed when it is over the limit).
        if text.len() <= PONG_MAX_BYTES && is_pong(text) {
            if ping_pending {
                return Some(Handled::Pong);
            }
            // An unsolicited pong: counted, and like any pong it gets no reply.
            return match self.limit(None, false) {
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
        if let Some(stop) = self.limit(id, true) {
            return stop;
        }
        let Some(obj) = obj else {
            self.error(ErrorCode::BadJson, "a frame must be one JSON object", None);
            return None;
        };
        let Some(kind) = obj.get("type").and_then(Value::as_str) else {
            self.error(ErrorCode::BadJson, "a frame needs a string `type`", id);
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
                self.error(ErrorCode::BadPayload, "`payload` must be a JSON object", id);
                return None;
            }
        };
        let msg = match ClientMessage::<Value>::decode(kind, payload) {
            Ok(msg) => msg,
            Err(e) => {
                self.error(ErrorCode::BadPayload, format!("{}: {e}", clip_str(kind, 64)), id);
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
                        Ok(joined) => {
                            if !self.rooms.contains(&room) {
                                self.rooms.push(room.clone());
                            }
                            if self.app.engine.room_joined(&room).await.is_err() {
                                return Some(Handled::End(unavailable()));
                            }
                            self.reply(&ServerMessage::Joined(joined), id)
                        }
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
                self.rooms.retain(|r| *r != room);
                let _ = self.app.engine.room_left(&room).await;
                self.reply(&ServerMessage::Left(RoomRef { room }), id);
            }
            ClientMessage::Presence(RoomRef { room }) => match self.app.hub.watch_presence(self.id, &room) {
                Ok(count) => self.reply(&ServerMessage::Presence(count), id),
                Err(RoomError::NotMember) => self.error(
                    ErrorCode::NotMember,
                    format!("not a member of room {:?}: join it first", clip_str(&room, 64)),
                    id,
                ),
                Err(_) => {}
            },
            ClientMessage::RoomMessage(send) => match self.app.hub.check_member(self.id, &send.room) {
                Ok(()) => {
                    let msg = ServerMessage::RoomMessage(resock::protocol::RoomMessage {
                        room: send.room.clone(),
                        from: self.user.to_owned(),
                        data: send.data,
                    });
                    let frame = encode(&msg, None, None);
                    // Acked only once the engine took it (a repeat of an id: acked, not sent).
                    match self.app.engine.room_message(&send.room, self.id, self.user, id, frame).await {
                        Ok(_) if id.is_some() => self.reply(&ServerMessage::Ack, id),
                        Ok(_) => {}
                        Err(_) => return Some(Handled::End(unavailable())),
                    }
                }
                Err(RoomError::NotMember) => self.error(
                    ErrorCode::NotMember,
                    format!("not a member of room {:?}: join it first", clip_str(&send.room, 64)),
                    id,
                ),
                Err(_) => {}
            },
            ClientMessage::Resume(resume) => {
                let resumed = self.app.engine.resume(self.id, self.user, &resume.epoch, resume.since, id).await;
                if resumed.is_err() {
                    return Some(Handled::End(unavailable()));
                }
            }
            ClientMessage::Custom { kind, .. } => {
                self.error(ErrorCode::UnknownType, format!("unknown message type {:?}", clip_str(&kind, 64)), id);
            }
            _ => self.error(ErrorCode::UnknownType, "unsupported message type", id),
        }
        None
    }

    /// Counts one frame against the rate limit: `None` lets it through; `Some(None)` refused it
    /// (answered `rate_limited` when `answer`); `Some(Some(end))` closes the connection with 1008.
    fn limit(&mut self, id: Option<&str>, answer: bool) -> Option<Option<Handled>> {
        let cfg = &self.app.cfg;
        let verdict = self.rate.check(Instant::now(), cfg.rate_limit, cfg.rate_limit_close_after);
        if !matches!(verdict, Rate::Allowed) {
            self.app.hub.count_rate_limited();
        }
        match verdict {
            Rate::Allowed => None,
            Rate::Refused => {
                if answer {
                    self.error(ErrorCode::RateLimited, "Rate limit exceeded", id);
                }
                Some(None)
            }
            Rate::Close => {
                if answer {
                    self.error(ErrorCode::RateLimited, "Rate limit exceeded: closing", id);
                }
                Some(Some(Handled::End(End::Close(CloseCode::Policy.as_u16(), "Rate limit exceeded", Drain::Frames))))
            }
        }
    }
}

enum Handled {
    Pong,
    End(End),
}

/// The close reason when the shared store (Redis) cannot be reached: the client reconnects
/// later and resends what was not acknowledged.
const UNAVAILABLE: &str = "Service unavailable: try again later";

/// The longest `id` an error reply echoes, in bytes (an `id` is the client's to choose).
const MAX_ID_ECHO: usize = 128;

/// The end of a connection whose request the engine could not serve: 1013, so the client
/// reconnects after a while and resends what was not acknowledged.
fn unavailable() -> End {
    End::Close(CloseCode::TryAgainLater.as_u16(), UNAVAILABLE, Drain::Frames)
}

/// RFC 6455's close code for a frame that breaks the protocol (reserved bits or opcodes, an
/// unmasked frame, a fragmented control frame...).
const PROTOCOL_ERROR: u16 = 1002;

/// True for a small frame whose `type` is `"pong"`.
fn is_pong(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_str::<Kind<'_>>(text).is_ok_and(|k| k.kind.as_deref() == Some("pong"))
}

/// Maps a read error to the close code the protocol gives it. After any of them the frame
/// reader is unusable, so the drain reads raw bytes.
fn read_error(e: &tungstenite::Error) -> End {
    use tungstenite::error::ProtocolError;
    match e {
        tungstenite::Error::Capacity(_) => End::Close(CloseCode::TooBig.as_u16(), "Message too big", Drain::Raw),
        tungstenite::Error::Utf8(_) => End::Close(CloseCode::InvalidPayload.as_u16(), "Invalid UTF-8", Drain::Raw),
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Gone,
        tungstenite::Error::Protocol(_) => End::Close(PROTOCOL_ERROR, "Protocol error", Drain::Raw),
        // tungstenite's own replies (pongs) past MAX_WRITE_BUFFER: the client does not read.
        tungstenite::Error::WriteBufferFull(_) => End::Cut,
        _ => End::Gone,
    }
}
