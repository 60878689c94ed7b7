//! The WebSocket side of PROTOCOL.md against the real fixture: auth, origin, welcome,
//! heartbeat, connection manager, rooms, requests and errors, limits and close codes, resume.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{self, Message};

const DEV_SECRET: &str = resock_fixture::config::DEV_JWT_SECRET;

async fn expect_4001(fx: &Fx, query: &str) {
    let mut ws = Ws::connect(&fx.ws_url(&format!("/ws?{query}"))).await.expect("the upgrade is accepted");
    assert_eq!(ws.expect_close().await, (4001, "Unauthorized".to_owned()), "query {query}");
}

// ---- authentication -------------------------------------------------------------------------

#[tokio::test]
async fn ticket_connects_and_welcome_names_the_connection() {
    let fx = Fx::start(&["--heartbeat-ms", "12345"]).await;
    let (_ws, welcome) = fx.connect("alice").await;
    let p = &welcome["payload"];
    assert_eq!(p["user_id"], "alice");
    assert_eq!(p["heartbeat_ms"], 12345);
    assert_eq!(p["seq"], 0);
    assert!(p["connection_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(p["epoch"].as_str().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn ticket_response_has_a_long_url_safe_ticket() {
    let fx = Fx::start(&["--ticket-ttl-ms", "1234"]).await;
    let token = fx.token("alice").await;
    let res = fx.ticket_for_token(&token).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["expires_in_ms"], 1234);
    let t = v["ticket"].as_str().unwrap();
    assert!(t.len() >= 22, "at least 128 bits");
    assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
}

#[tokio::test]
async fn token_in_query_and_the_notifications_alias_connect() {
    let fx = Fx::start(&[]).await;
    let token = fx.token("bob").await;
    for path in ["/ws", "/ws/notifications"] {
        let mut ws = Ws::connect(&fx.ws_url(&format!("{path}?token={token}"))).await.unwrap();
        assert_eq!(ws.expect_type("welcome").await["payload"]["user_id"], "bob");
    }
}

#[tokio::test]
async fn a_reused_ticket_closes_4001() {
    let fx = Fx::start(&[]).await;
    let ticket = fx.ticket("alice").await;
    let mut first = Ws::connect(&fx.ws_url(&format!("/ws?ticket={ticket}"))).await.unwrap();
    first.expect_type("welcome").await;
    expect_4001(&fx, &format!("ticket={ticket}")).await;
}

#[tokio::test]
async fn an_expired_ticket_closes_4001() {
    let fx = Fx::start(&["--ticket-ttl-ms", "50"]).await;
    let ticket = fx.ticket("alice").await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    expect_4001(&fx, &format!("ticket={ticket}")).await;
}

#[tokio::test]
async fn another_users_ticket_closes_4001() {
    let fx = Fx::start(&[]).await;
    let alices = fx.ticket("alice").await;
    let bobs_token = fx.token("bob").await;
    expect_4001(&fx, &format!("ticket={alices}&token={bobs_token}")).await;
}

#[tokio::test]
async fn unknown_and_missing_credentials_close_4001() {
    let fx = Fx::start(&[]).await;
    expect_4001(&fx, "ticket=not-a-ticket").await;
    expect_4001(&fx, "").await;
}

#[tokio::test]
async fn bad_jwts_close_4001_and_get_no_ticket() {
    let fx = Fx::start(&[]).await;
    let wrong_secret = sign("not-the-secret", json!({"sub": "alice", "exp": now_s() + 600}));
    let expired = sign(DEV_SECRET, json!({"sub": "alice", "exp": now_s() - 10}));
    let no_exp = sign(DEV_SECRET, json!({"sub": "alice"}));
    let none = alg_none("alice");
    for (what, token) in
        [("wrong secret", &wrong_secret), ("expired", &expired), ("no exp", &no_exp), ("alg none", &none)]
    {
        expect_4001(&fx, &format!("token={token}")).await;
        assert_eq!(fx.ticket_for_token(token).await.status(), 401, "{what}");
    }
    let res = fx.http.post(fx.url("/ws/ticket")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.json::<Value>().await.unwrap()["error"].is_string());
}

#[tokio::test]
async fn origin_allowlist_refuses_other_origins_before_the_upgrade() {
    let fx = Fx::start(&["--allowed-origin", "http://app.test:3000"]).await;
    let token = fx.token("alice").await;
    let url = fx.ws_url(&format!("/ws?token={token}"));
    match Ws::connect_with(&url, &[("origin", "http://evil.test")]).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        Err(e) => panic!("expected HTTP 403, got {e}"),
        Ok(_) => panic!("a disallowed origin was upgraded"),
    }
    let mut ok = Ws::connect_with(&url, &[("origin", "http://app.test:3000")]).await.unwrap();
    ok.expect_type("welcome").await;
    // No Origin header at all (not a browser): allowed.
    let mut plain = Ws::connect(&url).await.unwrap();
    plain.expect_type("welcome").await;
    // The ticket endpoint follows the same rule.
    let res = fx
        .http
        .post(fx.url("/ws/ticket"))
        .bearer_auth(&token)
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

// ---- heartbeat -------------------------------------------------------------------------------

#[tokio::test]
async fn pings_answered_keep_the_connection_past_the_pong_timeout() {
    let fx = Fx::start(&["--heartbeat-ms", "100", "--pong-timeout-ms", "150"]).await;
    let (mut ws, _) = fx.connect("alice").await;
    let mut pings = 0;
    let until = Instant::now() + Duration::from_millis(900);
    while Instant::now() < until {
        match ws.next().await {
            Seen::Json(v) if v["type"] == "ping" => {
                assert_eq!(v["payload"], json!({}));
                pings += 1;
                ws.send(json!({"type": "pong", "payload": {}})).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 4, "saw {pings} pings");
    ws.send(json!({"type": "ping", "id": "p1"})).await;
    let pong = ws.expect_type("pong").await;
    assert_eq!(pong["id"], "p1");
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed_1001_and_forgotten() {
    let fx = Fx::start(&["--heartbeat-ms", "100", "--pong-timeout-ms", "100"]).await;
    let (mut silent, _) = fx.connect("mute").await;
    silent.send(json!({"type": "join", "id": "j", "payload": {"room": "lobby"}})).await;
    let started = Instant::now();
    let (code, reason) = loop {
        match silent.next().await {
            Seen::Json(_) => continue, // joined, pings: never answered
            Seen::Close(code, reason) => break (code, reason),
            other => panic!("expected a close, saw {other:?}"),
        }
    };
    let elapsed = started.elapsed();
    assert_eq!(code, 1001, "{reason}");
    assert!(reason.contains("Pong"), "{reason}");
    // interval + timeout is 200 ms: not before the first ping's deadline, and well within a second.
    assert!(elapsed >= Duration::from_millis(150), "closed too early: {elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "closed too late: {elapsed:?}");
    let stats = fx.wait_stats("the silent connection to go", |s| s["connections"] == 0).await;
    assert_eq!(stats["users"]["mute"]["open"], 0);
    assert!(stats["rooms"].get("lobby").is_none(), "still in its room: {stats}");
}

#[tokio::test]
async fn any_pong_clears_the_deadline_and_gets_no_reply() {
    let fx = Fx::start(&["--heartbeat-ms", "100", "--pong-timeout-ms", "150"]).await;
    let (mut ws, _) = fx.connect("alice").await;
    let until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < until {
        match ws.next().await {
            Seen::Json(v) if v["type"] == "ping" => ws.send(json!({"type": "pong", "payload": 1})).await,
            other => panic!("expected only pings, saw {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_idle_client_is_closed_1001() {
    let fx = Fx::start(&["--heartbeat-ms", "60000", "--idle-timeout-ms", "150"]).await;
    let (mut ws, _) = fx.connect("alice").await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!(code, 1001);
    assert!(reason.contains("Idle"), "{reason}");
}

// ---- connection manager --------------------------------------------------------------------

#[tokio::test]
async fn a_notification_reaches_every_connection_of_its_user_and_no_other() {
    let fx = Fx::start(&[]).await;
    let service = fx.service_token().await;
    let mut alice = Vec::new();
    for _ in 0..3 {
        alice.push(fx.connect("alice").await.0);
    }
    let (mut bob, _) = fx.connect("bob").await;
    let n = fx.notify(&service, "alice", "hello").await;
    for ws in &mut alice {
        let m = ws.expect_type("new_notification").await;
        assert_eq!(m["payload"], n);
        assert_eq!(m["seq"], 1);
    }
    bob.expect_quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn single_connection_mode_replaces_the_older_connection() {
    let fx = Fx::start(&["--single-connection-per-user"]).await;
    let (mut old, _) = fx.connect("alice").await;
    let (mut new, _) = fx.connect("alice").await;
    assert_eq!(old.expect_close().await, (1000, "Replaced by new connection".to_owned()));
    let service = fx.service_token().await;
    fx.notify(&service, "alice", "x").await;
    new.expect_type("new_notification").await;
    assert_eq!(fx.stats().await["users"]["alice"]["open"], 1);
}

#[tokio::test]
async fn connections_over_the_per_user_cap_close_1013() {
    let fx = Fx::start(&["--max-connections-per-user", "2"]).await;
    let _a = fx.connect("alice").await;
    let _b = fx.connect("alice").await;
    let ticket = fx.ticket("alice").await;
    let mut third = Ws::connect(&fx.ws_url(&format!("/ws?ticket={ticket}"))).await.unwrap();
    assert_eq!(third.expect_close().await.0, 1013);
    // Another user is not affected.
    fx.connect("bob").await;
}

#[tokio::test]
async fn connections_over_the_global_cap_close_1013() {
    let fx = Fx::start(&["--max-connections", "2"]).await;
    let _a = fx.connect("alice").await;
    let _b = fx.connect("bob").await;
    let ticket = fx.ticket("carol").await;
    let mut third = Ws::connect(&fx.ws_url(&format!("/ws?ticket={ticket}"))).await.unwrap();
    assert_eq!(third.expect_close().await.0, 1013);
}

#[tokio::test]
async fn a_client_close_is_answered_1000_and_forgotten() {
    let fx = Fx::start(&[]).await;
    let (mut ws, _) = fx.connect("alice").await;
    ws.send_raw(Message::Close(Some(tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await;
    assert_eq!(ws.expect_close().await.0, 1000);
    fx.wait_stats("the connection to go", |s| s["connections"] == 0).await;
}

// ---- rooms ---------------------------------------------------------------------------------

#[tokio::test]
async fn room_messages_reach_other_members_and_the_sender_gets_an_ack() {
    let fx = Fx::start(&[]).await;
    let (mut alice, _) = fx.connect("alice").await;
    let (mut alice2, _) = fx.connect("alice").await;
    let (mut bob, _) = fx.connect("bob").await;
    let (mut carol, _) = fx.connect("carol").await;
    alice.send(json!({"type": "join", "id": "1", "payload": {"room": "general"}})).await;
    let joined = alice.expect_type("joined").await;
    assert_eq!(joined, json!({"type": "joined", "id": "1", "payload": {"room": "general", "members": 1}}));
    alice2.send(json!({"type": "join", "id": "2", "payload": {"room": "general"}})).await;
    assert_eq!(alice2.expect_type("joined").await["payload"]["members"], 2);
    bob.send(json!({"type": "join", "id": "3", "payload": {"room": "general"}})).await;
    assert_eq!(bob.expect_type("joined").await["payload"]["members"], 3);

    alice
        .send(json!({"type": "room_message", "id": "8", "payload": {"room": "general", "data": {"text": "hi"}}}))
        .await;
    assert_eq!(alice.expect_type("ack").await["id"], "8");
    let expected = json!({"room": "general", "from": "alice", "data": {"text": "hi"}});
    assert_eq!(bob.expect_type("room_message").await["payload"], expected);
    // Only the sending connection is excluded: the user's other connection gets it.
    assert_eq!(alice2.expect_type("room_message").await["payload"], expected);
    alice.expect_quiet(Duration::from_millis(150)).await;
    carol.expect_quiet(Duration::from_millis(50)).await;

    bob.send(json!({"type": "leave", "id": "9", "payload": {"room": "general"}})).await;
    assert_eq!(bob.expect_type("left").await, json!({"type": "left", "id": "9", "payload": {"room": "general"}}));
    alice.send(json!({"type": "room_message", "payload": {"room": "general", "data": 1}})).await;
    alice2.expect_type("room_message").await;
    bob.expect_quiet(Duration::from_millis(150)).await;
    alice.expect_quiet(Duration::from_millis(50)).await; // no id: no ack
}

#[tokio::test]
async fn presence_answers_the_member_count_then_tells_each_change_to_those_who_asked() {
    let fx = Fx::start(&[]).await;
    let (mut alice, _) = fx.connect("alice").await;
    let (mut bob, _) = fx.connect("bob").await;
    let (carol, _) = fx.connect("carol").await;
    // Not a member yet: not_member.
    alice.send(json!({"type": "presence", "id": "p0", "payload": {"room": "lobby"}})).await;
    let e = alice.expect_type("error").await;
    assert_eq!((e["id"].clone(), e["payload"]["code"].clone()), (json!("p0"), json!("not_member")));
    alice.send(json!({"type": "join", "id": "1", "payload": {"room": "lobby"}})).await;
    alice.expect_type("joined").await;
    alice.send(json!({"type": "presence", "id": "p1", "payload": {"room": "lobby"}})).await;
    let now = alice.expect_type("presence").await;
    assert_eq!(now, json!({"type": "presence", "id": "p1", "payload": {"room": "lobby", "members": 1}}));
    // bob joins without asking: alice is told, bob is not.
    bob.send(json!({"type": "join", "id": "2", "payload": {"room": "lobby"}})).await;
    assert_eq!(bob.expect_type("joined").await["payload"]["members"], 2);
    assert_eq!(
        alice.expect_type("presence").await,
        json!({"type": "presence", "payload": {"room": "lobby", "members": 2}})
    );
    // A join of a room already joined changes nothing.
    bob.send(json!({"type": "join", "id": "3", "payload": {"room": "lobby"}})).await;
    bob.expect_type("joined").await;
    alice.expect_quiet(Duration::from_millis(100)).await;
    bob.expect_quiet(Duration::from_millis(50)).await;
    // carol joins, then her connection closes: two changes.
    let mut carol = carol;
    carol.send(json!({"type": "join", "id": "4", "payload": {"room": "lobby"}})).await;
    carol.expect_type("joined").await;
    assert_eq!(alice.expect_type("presence").await["payload"]["members"], 3);
    carol.close().await;
    assert_eq!(alice.expect_type("presence").await["payload"]["members"], 2);
    // After alice leaves, she hears nothing more of the room.
    alice.send(json!({"type": "leave", "id": "5", "payload": {"room": "lobby"}})).await;
    alice.expect_type("left").await;
    bob.send(json!({"type": "leave", "id": "6", "payload": {"room": "lobby"}})).await;
    bob.expect_type("left").await;
    alice.expect_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_room_message_sent_again_with_its_id_is_acked_and_not_delivered_twice() {
    let fx = Fx::start(&[]).await;
    let (mut bob, _) = fx.connect("bob").await;
    bob.send(json!({"type": "join", "id": "1", "payload": {"room": "r"}})).await;
    bob.expect_type("joined").await;
    let msg = |id: &str, data: u32| json!({"type": "room_message", "id": id, "payload": {"room": "r", "data": data}});
    // Sent once, the connection cut before its ack, sent again on a new connection.
    let (mut first, _) = fx.connect("alice").await;
    first.send(json!({"type": "join", "id": "j", "payload": {"room": "r"}})).await;
    first.expect_type("joined").await;
    first.send(msg("k3x.7", 1)).await;
    assert_eq!(bob.expect_type("room_message").await["payload"]["data"], 1);
    drop(first);
    let (mut again, _) = fx.connect("alice").await;
    again.send(json!({"type": "join", "id": "j", "payload": {"room": "r"}})).await;
    again.expect_type("joined").await;
    again.send(msg("k3x.7", 1)).await;
    assert_eq!(again.expect_type("ack").await["id"], "k3x.7");
    bob.expect_quiet(Duration::from_millis(150)).await;
    // Another user's frame with the same id is another message.
    let (mut carol, _) = fx.connect("carol").await;
    carol.send(json!({"type": "join", "id": "j", "payload": {"room": "r"}})).await;
    carol.expect_type("joined").await;
    carol.send(msg("k3x.7", 2)).await;
    assert_eq!(bob.expect_type("room_message").await["payload"]["data"], 2);
}

#[tokio::test]
async fn a_message_to_a_room_not_joined_is_not_member() {
    let fx = Fx::start(&[]).await;
    let (mut ws, _) = fx.connect("alice").await;
    ws.send(json!({"type": "room_message", "id": "5", "payload": {"room": "secret", "data": "x"}})).await;
    let e = ws.expect_type("error").await;
    assert_eq!(e["id"], "5");
    assert_eq!(e["payload"]["code"], "not_member");
}

#[tokio::test]
async fn bad_room_names_and_the_room_limit_are_refused() {
    let fx = Fx::start(&["--max-rooms-per-connection", "2"]).await;
    let (mut ws, _) = fx.connect("alice").await;
    let long = "x".repeat(65);
    for bad in ["", "has space", "slash/no", long.as_str()] {
        ws.send(json!({"type": "join", "id": "b", "payload": {"room": bad}})).await;
        let e = ws.expect_type("error").await;
        assert_eq!(e["payload"]["code"], "bad_payload", "room {bad:?}");
    }
    let ok = "A-z_0.9:x".to_owned() + &"y".repeat(55);
    for (i, room) in [ok.as_str(), "two"].iter().enumerate() {
        ws.send(json!({"type": "join", "id": i.to_string(), "payload": {"room": room}})).await;
        ws.expect_type("joined").await;
    }
    ws.send(json!({"type": "join", "id": "3", "payload": {"room": "three"}})).await;
    let e = ws.expect_type("error").await;
    assert_eq!((e["id"].as_str(), e["payload"]["code"].as_str()), (Some("3"), Some("room_limit")));
    // Joining a room again is not a new room.
    ws.send(json!({"type": "join", "id": "4", "payload": {"room": "two"}})).await;
    ws.expect_type("joined").await;
}

// ---- requests and errors -------------------------------------------------------------------

#[tokio::test]
async fn bad_frames_get_typed_errors_with_their_id() {
    let fx = Fx::start(&[]).await;
    let (mut ws, _) = fx.connect("alice").await;
    ws.send_raw(Message::text("{not json")).await;
    assert_eq!(ws.expect_type("error").await["payload"]["code"], "bad_json");
    ws.send_raw(Message::text("[1,2]")).await;
    assert_eq!(ws.expect_type("error").await["payload"]["code"], "bad_json");
    ws.send(json!({"id": "t", "payload": {}})).await;
    let e = ws.expect_type("error").await;
    assert_eq!((e["id"].as_str(), e["payload"]["code"].as_str()), (Some("t"), Some("bad_json")));
    ws.send(json!({"type": "fly", "id": "u"})).await;
    let e = ws.expect_type("error").await;
    assert_eq!((e["id"].as_str(), e["payload"]["code"].as_str()), (Some("u"), Some("unknown_type")));
    ws.send(json!({"type": "join", "id": "v", "payload": {}})).await;
    let e = ws.expect_type("error").await;
    assert_eq!((e["id"].as_str(), e["payload"]["code"].as_str()), (Some("v"), Some("bad_payload")));
    assert!(e["payload"]["message"].as_str().unwrap().contains("room"));
    ws.send(json!({"type": "join", "id": "w", "payload": "general"})).await;
    assert_eq!(ws.expect_type("error").await["payload"]["code"], "bad_payload");
    // The connection is still usable.
    ws.send(json!({"type": "ping", "id": "x"})).await;
    assert_eq!(ws.expect_type("pong").await["id"], "x");
}

// ---- limits and close codes ----------------------------------------------------------------

#[tokio::test]
async fn a_message_over_the_size_limit_closes_1009() {
    let fx = Fx::start(&["--max-message-bytes", "1024"]).await;
    let (mut ws, _) = fx.connect("alice").await;
    // Exactly at the limit is allowed.
    let pad = "p".repeat(1024 - r#"{"type":"ping","id":"a","payload":{"x":""}}"#.len());
    let at_limit = format!(r#"{{"type":"ping","id":"a","payload":{{"x":"{pad}"}}}}"#);
    assert_eq!(at_limit.len(), 1024);
    ws.send_raw(Message::text(at_limit)).await;
    assert_eq!(ws.expect_type("pong").await["id"], "a");
    ws.send(json!({"type": "ping", "payload": {"x": "y".repeat(2000)}})).await;
    assert_eq!(ws.expect_close().await.0, 1009);
}

#[tokio::test]
async fn a_binary_frame_closes_1003() {
    let fx = Fx::start(&[]).await;
    let (mut ws, _) = fx.connect("alice").await;
    ws.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    assert_eq!(ws.expect_close().await.0, 1003);
}

#[tokio::test]
async fn invalid_utf8_closes_1007() {
    let fx = Fx::start(&[]).await;
    let (mut ws, _) = fx.connect("alice").await;
    let frame = Frame::message(vec![0x7b, 0xff, 0xfe, 0x7d], OpCode::Data(Data::Text), true);
    ws.send_raw(Message::Frame(frame)).await;
    assert_eq!(ws.expect_close().await.0, 1007);
}

#[tokio::test]
async fn a_flood_past_the_rate_limit_is_refused_then_closed_1008() {
    // A long window so the test does not depend on timing.
    let fx = Fx::start(&["--rate-limit", "5/60s"]).await;
    let (mut ws, _) = fx.connect("alice").await;
    for i in 0..5 {
        ws.send(json!({"type": "ping", "id": format!("ok{i}")})).await;
        assert_eq!(ws.expect_type("pong").await["id"], format!("ok{i}"));
    }
    for i in 0..49 {
        ws.send(json!({"type": "ping", "id": format!("no{i}")})).await;
        let e = ws.expect_type("error").await;
        assert_eq!(e["payload"]["code"], "rate_limited");
        assert_eq!(e["id"], format!("no{i}"));
    }
    ws.send(json!({"type": "ping", "id": "last"})).await;
    let e = ws.expect_type("error").await;
    assert_eq!(e["payload"]["code"], "rate_limited");
    assert_eq!(ws.expect_close().await.0, 1008);
}

#[tokio::test]
async fn pongs_answering_pings_are_free_and_unsolicited_pongs_count() {
    let fx = Fx::start(&["--rate-limit", "3/60s", "--heartbeat-ms", "40"]).await;
    let (mut ws, _) = fx.connect("alice").await;
    // Five pings answered: none of the pongs counts.
    for _ in 0..5 {
        assert_eq!(ws.next().await, Seen::Json(json!({"type": "ping", "payload": {}})));
        ws.send(json!({"type": "pong"})).await;
    }
    // Two requests, then an unsolicited pong (no ping outstanding: counted, not answered)...
    let fx2 = Fx::start(&["--rate-limit", "3/60s"]).await;
    let (mut quiet, _) = fx2.connect("bob").await;
    for i in 0..2 {
        quiet.send(json!({"type": "ping", "id": format!("r{i}")})).await;
        quiet.expect_type("pong").await;
    }
    quiet.send(json!({"type": "pong"})).await;
    // ...so the next request is over the limit.
    quiet.send(json!({"type": "ping", "id": "over"})).await;
    let e = quiet.expect_type("error").await;
    assert_eq!((e["payload"]["code"].as_str(), e["id"].as_str()), (Some("rate_limited"), Some("over")));
    // While the answered pongs left alice's whole budget: three requests pass.
    for i in 0..3 {
        ws.send(json!({"type": "ping", "id": format!("a{i}")})).await;
        loop {
            match ws.next().await {
                Seen::Json(v) if v["type"] == "ping" => ws.send(json!({"type": "pong"})).await,
                Seen::Json(v) => {
                    assert_eq!((v["type"].as_str(), v["id"].as_str()), (Some("pong"), Some(&*format!("a{i}"))));
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn the_rate_window_resets() {
    let fx = Fx::start(&["--rate-limit", "3/200ms"]).await;
    let (mut ws, _) = fx.connect("alice").await;
    for round in 0..2 {
        for i in 0..3 {
            ws.send(json!({"type": "ping", "id": format!("{round}-{i}")})).await;
            ws.expect_type("pong").await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_client_that_does_not_read_is_closed_while_others_keep_receiving() {
    let fx = Fx::start(&["--send-queue", "8", "--max-message-bytes", "200000"]).await;
    let service = fx.service_token().await;
    let (mut reader, _) = fx.connect("reader").await;
    let (mut stalled, _) = fx.connect("stalled").await; // never read from until the end
    let big = "z".repeat(60_000);
    let mut sent = 0;
    // Bounded: stops as soon as the stalled client is gone, at most 600 broadcasts (36 MB).
    while sent < 600 {
        let res = fx
            .post_json("/api/broadcast", Some(&service), json!({"type": "blob", "payload": {"n": sent, "big": big}}))
            .await;
        assert_eq!(res.status(), 200);
        sent += 1;
        for _ in 0..1 {
            let m = reader.expect_type("blob").await;
            assert_eq!(m["payload"]["n"], sent - 1);
        }
        if fx.stats().await["users"]["stalled"]["open"] == 0 {
            break;
        }
    }
    assert!(sent < 600, "the stalled client was never closed");
    // The reader still receives after the stalled one is gone.
    fx.post_json("/api/broadcast", Some(&service), json!({"type": "after", "payload": {}})).await;
    reader.expect_type("after").await;
    // What the stalled client finally reads ends in 1008 or, if the close frame could not be
    // written in time, a dropped socket; never in more messages forever.
    let mut n = 0;
    let end = loop {
        match stalled.next().await {
            Seen::Json(_) => n += 1,
            other => break other,
        }
    };
    assert!(n < sent, "got {n} of {sent}");
    assert!(matches!(end, Seen::Close(1008, _) | Seen::Dropped), "{end:?}");
}

#[tokio::test]
async fn dev_drop_can_close_with_a_chosen_code() {
    let fx = Fx::start(&[]).await;
    let (mut ws, _) = fx.connect("alice").await;
    let res = fx.post_json("/dev/drop", None, json!({"close_code": 1011})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(ws.expect_close().await.0, 1011);
    let res = fx.post_json("/dev/drop", None, json!({"close_code": 1006})).await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn dev_drop_cuts_without_a_close_frame_and_refuses_upgrades_for_a_while() {
    let fx = Fx::start(&[]).await;
    let (mut alice, _) = fx.connect("alice").await;
    let (mut bob, _) = fx.connect("bob").await;
    let res = fx.post_json("/dev/drop", None, json!({"user_id": "alice"})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["dropped"], 1);
    assert_eq!(alice.next().await, Seen::Dropped);
    bob.expect_quiet(Duration::from_millis(100)).await;

    let res = fx.post_json("/dev/drop", None, json!({"refuse_ms": 300})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["dropped"], 1);
    assert_eq!(bob.next().await, Seen::Dropped);
    let token = fx.token("alice").await;
    let url = fx.ws_url(&format!("/ws?token={token}"));
    match Ws::connect(&url).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    let mut back = Ws::connect(&url).await.unwrap();
    back.expect_type("welcome").await;
}

// ---- user stream and resume ----------------------------------------------------------------

#[tokio::test]
async fn resume_replays_exactly_the_missing_seqs_once() {
    let fx = Fx::start(&[]).await;
    let service = fx.service_token().await;
    let (mut ws, welcome) = fx.connect("alice").await;
    let epoch = welcome["payload"]["epoch"].as_str().unwrap().to_owned();
    for i in 1..=3 {
        fx.notify(&service, "alice", &format!("n{i}")).await;
        assert_eq!(ws.expect_type("new_notification").await["seq"], i);
    }
    ws.close().await;
    for i in 4..=6 {
        fx.notify(&service, "alice", &format!("n{i}")).await;
    }
    let r =
        fx.post_json("/api/tasks/t1", Some(&service), json!({"user_id": "alice", "action": "done", "task": {}})).await;
    assert_eq!(r.status(), 200);
    let (mut ws, welcome) = fx.connect("alice").await;
    assert_eq!(welcome["payload"]["seq"], 7);
    assert_eq!(welcome["payload"]["epoch"], epoch.as_str());
    ws.send(json!({"type": "resume", "id": "r", "payload": {"epoch": epoch, "since": 3}})).await;
    let (seqs, resumed) = seqs_until_resumed(&mut ws).await;
    assert_eq!(seqs, vec![4, 5, 6, 7]);
    assert_eq!(resumed["payload"], json!({"replayed": 4, "complete": true}));
    assert_eq!(resumed["id"], "r");
    // Nothing missing: nothing replayed, complete.
    ws.send(json!({"type": "resume", "payload": {"epoch": epoch, "since": 7}})).await;
    let (seqs, resumed) = seqs_until_resumed(&mut ws).await;
    assert!(seqs.is_empty());
    assert_eq!(resumed["payload"], json!({"replayed": 0, "complete": true}));
}

#[tokio::test]
async fn resume_past_the_history_or_on_a_wrong_epoch_is_incomplete() {
    let fx = Fx::start(&["--history", "3"]).await;
    let service = fx.service_token().await;
    for i in 1..=6 {
        fx.notify(&service, "alice", &format!("n{i}")).await;
    }
    let (mut ws, welcome) = fx.connect("alice").await;
    let epoch = welcome["payload"]["epoch"].as_str().unwrap().to_owned();
    ws.send(json!({"type": "resume", "payload": {"epoch": epoch, "since": 1}})).await;
    let (seqs, resumed) = seqs_until_resumed(&mut ws).await;
    assert_eq!(seqs, vec![4, 5, 6]);
    assert_eq!(resumed["payload"], json!({"replayed": 3, "complete": false}));
    // since = 3: the history (4..6) reaches 4, so it is complete.
    ws.send(json!({"type": "resume", "payload": {"epoch": epoch, "since": 3}})).await;
    let (seqs, resumed) = seqs_until_resumed(&mut ws).await;
    assert_eq!(seqs, vec![4, 5, 6]);
    assert_eq!(resumed["payload"]["complete"], true);
    ws.send(json!({"type": "resume", "payload": {"epoch": "another", "since": 1}})).await;
    let (seqs, resumed) = seqs_until_resumed(&mut ws).await;
    assert!(seqs.is_empty());
    assert_eq!(resumed["payload"], json!({"replayed": 0, "complete": false}));
}

#[tokio::test]
async fn a_restarted_fixture_starts_a_new_epoch() {
    let a = Fx::start(&[]).await;
    let b = Fx::start(&[]).await;
    let (_, wa) = a.connect("alice").await;
    let (_, wb) = b.connect("alice").await;
    assert_ne!(wa["payload"]["epoch"], wb["payload"]["epoch"]);
}

#[tokio::test]
async fn shutdown_closes_every_socket_1001() {
    let fx = Fx::start(&[]).await;
    let (mut a, _) = fx.connect("alice").await;
    let (mut b, _) = fx.connect("bob").await;
    let Fx { server, .. } = fx;
    let stop = tokio::spawn(server.shutdown());
    assert_eq!(a.expect_close().await.0, 1001);
    assert_eq!(b.expect_close().await.0, 1001);
    tokio::time::timeout(WAIT, stop).await.expect("shutdown ends").unwrap();
}

#[tokio::test]
async fn no_welcome_mode_behaves_like_the_seed_servers() {
    let fx = Fx::start(&["--no-welcome", "--heartbeat-ms", "100"]).await;
    let service = fx.service_token().await;
    let token = fx.token("alice").await;
    let mut ws = Ws::connect(&fx.ws_url(&format!("/ws?token={token}"))).await.unwrap();
    fx.wait_stats("the connection", |s| s["connections"] == 1).await;
    fx.notify(&service, "alice", "x").await;
    // The first frame is the notification (or a ping), never a welcome.
    let first = ws.next_app().await;
    assert!(matches!(&first, Seen::Json(v) if v["type"] == "new_notification"), "{first:?}");
}
