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
use resock::protocol::{CloseCode, ServerMessage, REASON_UNAUTHORIZED};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::auth::{AuthError, Identity};
use crate::engine::EngineError;
use crate::hub::{encode, Kill, Out, RegisterError};
use crate::log;
use crate::session::{Handled, Replies, Session, UNAVAILABLE};
use crate::state::App;
use crate::text::Esc;

/// How long queued frames and the close frame may take to go out before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long the server keeps reading (and discarding) after its close frame, waiting for the
/// client's close frame or EOF.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// While draining a stream whose frames can no longer be parsed (after a read error), the
/// client counts as done once it sent nothing for this long.
const DRAIN_QUIET: Duration = Duration::from_millis(250);

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

    let mut conn = WsConn { app: &app, user: &who.user_id, session: Session::new(id) };
    // The welcome (and with it every frame held for this connection) once the engine has the
    // user's stream: from here on the user's pushes reach this connection.
    let welcomed = app.engine.welcome(id, &who.user_id, true).await;
    let end = match &welcomed {
        Ok(()) => conn.control_loop(&mut stream, reg.kill, &mut writer).await,
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
    for room in conn.session.take_rooms() {
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

/// One connection's task: its frames go to the shared handler ([`crate::session`]).
struct WsConn<'a> {
    app: &'a App,
    user: &'a str,
    session: Session,
}

impl WsConn<'_> {
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
        let id = self.session.id;
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
                    self.app.hub.send_to(id, Out::Text(ping.clone()));
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
                    let ctx = self.app.ctx();
                    match msg {
                        Message::Text(text) => {
                            if text.len() as u64 > cfg.max_message_bytes {
                                return End::Close(CloseCode::TooBig.as_u16(), "Message too big", Drain::Frames);
                            }
                            // Boxed: the handler's state (engine calls included) would otherwise
                            // take room in every idle connection's task.
                            let handled = Box::pin(self.session.on_text(
                                ctx,
                                self.user,
                                text.as_str(),
                                pong_deadline.is_some(),
                                &mut Replies::Queue,
                            ))
                            .await;
                            match handled {
                                Some(Handled::Pong) => pong_deadline = None,
                                Some(Handled::Close(code, reason)) => return End::Close(code, reason, Drain::Frames),
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
                            if let Some(Some(Handled::Close(code, reason))) =
                                self.session.limit(ctx, &mut Replies::Queue, None, false)
                            {
                                return End::Close(code, reason, Drain::Frames);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// RFC 6455's close code for a frame that breaks the protocol (reserved bits or opcodes, an
/// unmasked frame, a fragmented control frame...).
const PROTOCOL_ERROR: u16 = 1002;

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
