//! Every per-connection and per-user resource is bounded: tickets, SSE streams, history and the
//! REST store in bytes, idle streams dropped, error replies clipped, HTTP timeouts.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

#[tokio::test]
async fn tickets_per_user_are_capped_at_429() {
    let fx = Fx::start(&["--max-tickets-per-user", "3"]).await;
    let alice = fx.token("alice").await;
    let mut tickets = Vec::new();
    for _ in 0..3 {
        let res = fx.ticket_for_token(&alice).await;
        assert_eq!(res.status(), 200);
        tickets.push(res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned());
    }
    let res = fx.ticket_for_token(&alice).await;
    assert_eq!(res.status(), 429);
    assert!(res.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("unredeemed"));
    // Another user is not affected; redeeming one frees a place.
    assert_eq!(fx.ticket_for_token(&fx.token("bob").await).await.status(), 200);
    let _ws = Ws::connect(&fx.ws_url(&format!("/ws?ticket={}", tickets[0]))).await.unwrap();
    assert_eq!(fx.ticket_for_token(&alice).await.status(), 200);
}

#[tokio::test]
async fn sse_streams_are_capped_per_user_and_in_total() {
    let fx = Fx::start(&["--max-sse-per-user", "2", "--max-sse", "3"]).await;
    let open = |user: &'static str| {
        let fx = &fx;
        async move {
            let token = fx.token(user).await;
            fx.http.get(fx.url(&format!("/sse/notifications?token={token}"))).send().await.unwrap()
        }
    };
    let a1 = open("alice").await;
    let a2 = open("alice").await;
    assert_eq!((a1.status().as_u16(), a2.status().as_u16()), (200, 200));
    let a3 = open("alice").await;
    assert_eq!(a3.status(), 429);
    let b1 = open("bob").await;
    assert_eq!(b1.status(), 200);
    let c1 = open("carol").await;
    assert_eq!(c1.status(), 503, "three streams open in total");
    drop(a1);
    fx.wait_stats("a stream closed", |s| s["sse_subscribers"] == 2).await;
    assert_eq!(open("carol").await.status(), 200);
}

#[tokio::test]
async fn history_is_bounded_in_bytes_and_resume_says_so() {
    let fx = Fx::start(&["--history-bytes", "3000"]).await;
    let service = fx.service_token().await;
    let (mut ws, welcome) = fx.connect("alice").await;
    let epoch = welcome["payload"]["epoch"].as_str().unwrap().to_owned();
    for i in 0..10 {
        let res = fx
            .post_json(
                "/api/notifications",
                Some(&service),
                json!({"user_id": "alice", "title": format!("n{i}"), "body": "x".repeat(1000)}),
            )
            .await;
        assert_eq!(res.status(), 201);
        ws.expect_type("new_notification").await;
    }
    ws.send(json!({"type": "resume", "id": "r", "payload": {"epoch": epoch, "since": 0}})).await;
    let (replayed, resumed) = seqs_until_resumed(&mut ws).await;
    assert!(replayed.len() <= 2, "about 1.1 KB a frame: at most two fit in 3 000 B, got {replayed:?}");
    assert_eq!(replayed.last(), Some(&10));
    assert_eq!(resumed["payload"]["complete"], false);
}

#[tokio::test]
async fn the_rest_store_is_bounded_per_user() {
    let fx = Fx::start(&["--store-max", "3"]).await;
    let service = fx.service_token().await;
    for i in 0..5 {
        fx.notify(&service, "alice", &format!("n{i}")).await;
    }
    let alice = fx.token("alice").await;
    let list: Value =
        fx.http.get(fx.url("/api/notifications")).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    let titles: Vec<&str> = list.as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["n2", "n3", "n4"]);
}

#[tokio::test]
async fn an_idle_stream_is_dropped_and_comes_back_with_a_new_epoch() {
    let fx = Fx::start(&["--stream-ttl-ms", "100"]).await;
    let service = fx.service_token().await;
    let (ws, welcome) = fx.connect("alice").await;
    fx.notify(&service, "alice", "one").await;
    ws.close().await;
    fx.wait_stats("alice's stream dropped", |s| s["users"].get("alice").is_none()).await;
    let (mut ws, again) = fx.connect("alice").await;
    assert_ne!(again["payload"]["epoch"], welcome["payload"]["epoch"]);
    assert_eq!(again["payload"]["seq"], 0);
    // A client resuming from the old stream learns that it cannot be filled.
    let old = welcome["payload"]["epoch"].as_str().unwrap();
    ws.send(json!({"type": "resume", "payload": {"epoch": old, "since": 1}})).await;
    assert_eq!(ws.expect_type("resumed").await["payload"]["complete"], false);
}

#[tokio::test]
async fn a_stream_with_a_connection_is_kept() {
    let fx = Fx::start(&["--stream-ttl-ms", "50"]).await;
    let (mut ws, welcome) = fx.connect("alice").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let epoch = welcome["payload"]["epoch"].as_str().unwrap();
    ws.send(json!({"type": "resume", "payload": {"epoch": epoch, "since": 0}})).await;
    assert_eq!(ws.expect_type("resumed").await["payload"]["complete"], true);
}

#[tokio::test]
async fn read_all_with_nothing_unread_pushes_nothing() {
    let fx = Fx::start(&[]).await;
    let (mut ws, _) = fx.connect("alice").await;
    let alice = fx.token("alice").await;
    for _ in 0..20 {
        let res = fx.post_json("/api/notifications/read-all", Some(&alice), json!({})).await;
        assert_eq!(res.json::<Value>().await.unwrap()["marked"], 0);
    }
    ws.expect_quiet(Duration::from_millis(200)).await;
    assert_eq!(fx.stats().await["users"]["alice"]["seq"], 0);
}

#[tokio::test]
async fn error_replies_never_echo_much_client_input() {
    let fx = Fx::start(&[]).await;
    let service = fx.service_token().await;
    // A 64 KB body that does not fit: serde quotes it; the reply is clipped.
    let junk = format!("{{\"user_id\": {}}}", "9".repeat(64 * 1024));
    let res = fx
        .http
        .post(fx.url("/api/notifications"))
        .bearer_auth(&service)
        .header("content-type", "application/json")
        .body(junk)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body = res.text().await.unwrap();
    assert!(body.len() < 400, "{} bytes", body.len());
    // Over WebSocket: an unknown type and a huge id.
    let (mut ws, _) = fx.connect("alice").await;
    ws.send(json!({"type": "x".repeat(30_000), "id": "i".repeat(30_000)})).await;
    let e = ws.expect_type("error").await;
    assert!(e.to_string().len() < 600, "{} bytes", e.to_string().len());
}

/// A raw TCP client that sends `bytes` and returns how long the server took to close.
async fn closed_after(fx: &Fx, bytes: &[u8], max: Duration) -> Option<Duration> {
    let mut tcp = TcpStream::connect(fx.server.addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match timeout(max.saturating_sub(started.elapsed()), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue, // a 408 or 400 answer, then the close
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn slow_request_heads_and_idle_keep_alives_are_closed_within_the_header_timeout() {
    let fx = Fx::start(&["--header-timeout-ms", "300"]).await;
    let max = Duration::from_secs(3);
    // Half a request line.
    let t = closed_after(&fx, b"GET /api/notif", max).await.expect("closed");
    assert!(t < Duration::from_millis(1500), "{t:?}");
    // A complete request line and one header, never finished.
    let t = closed_after(&fx, b"GET /ws HTTP/1.1\r\nHost: x\r\n", max).await.expect("closed");
    assert!(t < Duration::from_millis(1500), "{t:?}");
    // A finished request on a keep-alive connection, then nothing.
    let t = closed_after(&fx, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", max).await.expect("closed");
    assert!(t < Duration::from_millis(1500), "{t:?}");
}

#[tokio::test]
async fn a_body_trickled_in_is_cut_off_at_the_body_timeout() {
    let fx = Fx::start(&["--body-timeout-ms", "300"]).await;
    let service = fx.service_token().await;
    let mut tcp = TcpStream::connect(fx.server.addr).await.unwrap();
    let head = format!(
        "POST /api/notifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {service}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // One byte every 100 ms, never finishing; bounded to 3 s.
    while started.elapsed() < Duration::from_secs(3) {
        let _ = tcp.write_all(b" ").await;
        if let Ok(Ok(n)) = timeout(Duration::from_millis(100), tcp.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_jwt_subject_cannot_forge_a_log_line() {
    // The log is tested end to end in binary.rs; here: such a token still works, and the
    // subject reaches the hub unchanged (escaping is for the log only).
    let fx = Fx::start(&[]).await;
    let (_, welcome) = fx.connect("eve opened\n[resock-fixture] conn c1 user=admin").await;
    assert_eq!(welcome["payload"]["user_id"], "eve opened\n[resock-fixture] conn c1 user=admin");
}
