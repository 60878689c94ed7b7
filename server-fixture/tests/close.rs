//! Close codes reach a client that keeps sending while it is being closed (RFC 6455 §7.1.1: the
//! server drains after its close frame). Each case runs 20 times; the client never waits for an
//! answer before sending more, as a flooding or buggy client in the field would not.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

const RUNS: usize = 20;

/// Connects, sends `first`, then `then` without pause (yielding between frames) until the
/// server's close frame arrives; returns the close code seen (1006: none) and how many frames
/// were sent. Bounded: 5 s and 200 000 frames.
async fn keep_sending(fx: &Fx, first: Message, then: Message) -> (u16, usize) {
    let (ws, _) = fx.connect("flooder").await;
    let (mut sink, mut stream) = ws.inner.split();
    let sender = tokio::spawn(async move {
        let mut sent = 0usize;
        if sink.send(first).await.is_err() {
            return sent;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while sent < 200_000 && Instant::now() < deadline {
            if sink.send(then.clone()).await.is_err() {
                break; // the client saw the close: tungstenite refuses to send after it
            }
            sent += 1;
            tokio::task::yield_now().await;
        }
        sent
    });
    let code = loop {
        match timeout(WAIT, stream.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => break u16::from(frame.code),
            Ok(Some(Ok(Message::Close(None)))) => break 1005,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) | Ok(None) => break 1006,
            Err(_) => panic!("no close within {WAIT:?}"),
        }
    };
    let sent = timeout(WAIT, sender).await.expect("sender stops").expect("sender task");
    (code, sent)
}

async fn every_run_sees(fx: &Fx, want: u16, first: Message, then: Message) {
    let mut seen = Vec::new();
    for _ in 0..RUNS {
        let (code, sent) = keep_sending(fx, first.clone(), then.clone()).await;
        seen.push((code, sent));
    }
    let hits = seen.iter().filter(|(code, _)| *code == want).count();
    assert_eq!(hits, RUNS, "expected {want} in {RUNS} of {RUNS} runs; (code, frames sent after the first): {seen:?}");
}

fn ping_frame() -> Message {
    Message::text(json!({"type": "ping", "id": "x"}).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_rate_limit_sees_1008() {
    let fx = Fx::start(&["--max-connections-per-user", "64"]).await;
    every_run_sees(&fx, 1008, ping_frame(), ping_frame()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_message_then_more_frames_sees_1009() {
    let fx = Fx::start(&["--max-message-bytes", "1024", "--max-connections-per-user", "64"]).await;
    let big = Message::text(json!({"type": "ping", "pad": "x".repeat(2_000_000)}).to_string());
    every_run_sees(&fx, 1009, big, ping_frame()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_frame_then_more_frames_sees_1003() {
    let fx = Fx::start(&["--max-connections-per-user", "64"]).await;
    every_run_sees(&fx, 1003, Message::binary(vec![1u8; 60_000]), Message::binary(vec![2u8; 60_000])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_then_more_frames_sees_1007() {
    let fx = Fx::start(&["--max-connections-per-user", "64"]).await;
    let mut raw = 0;
    for _ in 0..RUNS {
        let code = raw_client(&fx, &masked(0x81, &[0xff, 0xfe, 0xfd]), true).await;
        raw += usize::from(code == Some(1007));
    }
    assert_eq!(raw, RUNS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_then_read_gets_every_reply_and_1008() {
    // 1 000 frames written at once, read only afterwards: 10 pongs, 50 rate_limited errors (the
    // 50th closes), then the close frame.
    let fx = Fx::start(&[]).await;
    let (mut ws, _) = fx.connect("burst").await;
    for i in 0..1000 {
        ws.inner.feed(Message::text(json!({"type": "ping", "id": i.to_string()}).to_string())).await.unwrap();
    }
    let _ = ws.inner.flush().await;
    let (mut pongs, mut refused) = (0, 0);
    let close = loop {
        match ws.next().await {
            Seen::Json(v) if v["type"] == "pong" => pongs += 1,
            Seen::Json(v) if v["payload"]["code"] == "rate_limited" => refused += 1,
            Seen::Json(v) => panic!("unexpected {v}"),
            other => break other,
        }
    };
    assert_eq!((pongs, refused), (10, 50));
    assert_eq!(close, Seen::Close(1008, "Rate limit exceeded".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_close_1002() {
    let fx = Fx::start(&["--max-connections-per-user", "64"]).await;
    // RSV1 set, with no extension negotiated.
    assert_eq!(raw_client(&fx, &masked(0xC1, b"{}"), true).await, Some(1002));
    // A reserved opcode (0x3).
    assert_eq!(raw_client(&fx, &masked(0x83, b"{}"), true).await, Some(1002));
    // An unmasked client frame.
    assert_eq!(raw_client(&fx, &[0x81, 0x02, b'{', b'}'], true).await, Some(1002));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_closed_1008() {
    // Protocol-level pings count against the rate limit: a client that pings and never reads
    // cannot make the server queue pongs without bound.
    let fx = Fx::start(&["--max-connections-per-user", "64"]).await;
    every_run_sees(&fx, 1008, Message::Ping(vec![1u8; 100].into()), Message::Ping(vec![1u8; 100].into())).await;
}

/// A client frame with the given first byte (FIN, RSV, opcode) and payload, masked.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Upgrades by hand, writes `frame`, then (with `keep_sending`) keeps writing valid ping frames
/// while reading the server's frames; returns the server's close code, if a close frame came.
async fn raw_client(fx: &Fx, frame: &[u8], keep_sending: bool) -> Option<u16> {
    let ticket = fx.ticket("raw").await;
    let addr = fx.server.addr;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /ws?ticket={ticket} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(timeout(WAIT, tcp.read(&mut b)).await.unwrap().unwrap(), 1, "upgrade answer");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    let (mut rd, mut wr) = tcp.into_split();
    wr.write_all(frame).await.unwrap();
    let sender = tokio::spawn(async move {
        let ping = masked(0x81, br#"{"type":"ping"}"#);
        let deadline = Instant::now() + Duration::from_secs(3);
        while keep_sending && Instant::now() < deadline {
            if wr.write_all(&ping).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        wr
    });
    // Server frames are unmasked: 2-byte header (+2 or +8 for lengths), then the payload.
    let mut buf = Vec::new();
    let deadline = Instant::now() + WAIT;
    let code = loop {
        let mut chunk = [0u8; 4096];
        let n = match timeout(deadline.saturating_duration_since(Instant::now()), rd.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break None,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(code) = find_close(&buf) {
            break Some(code);
        }
    };
    sender.abort();
    code
}

/// The code of the first close frame in a run of unmasked server frames, if complete.
fn find_close(mut buf: &[u8]) -> Option<u16> {
    while buf.len() >= 2 {
        let opcode = buf[0] & 0x0f;
        let (len, head) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize, 10),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if buf.len() < head + len {
            return None;
        }
        if opcode == 0x8 {
            return (len >= 2).then(|| u16::from_be_bytes([buf[head], buf[head + 1]]));
        }
        buf = &buf[head + len..];
    }
    None
}
