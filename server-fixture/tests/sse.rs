//! SSE sessions (docs/PROTOCOL.md, "SSE"): the welcome, resume with an epoch, `resumed
//! {complete}`, frames over `POST /sse/send` with the WebSocket's rooms, replies, errors, rate
//! limit and dedupe, and cuts in the middle of it all. Real clients on 127.0.0.1.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::time::Instant;

fn session_of(welcome: &Value) -> String {
    welcome["session"].as_str().expect("the welcome names the session").to_owned()
}

fn epoch_of(welcome: &Value) -> String {
    welcome["epoch"].as_str().expect("the welcome names the epoch").to_owned()
}

#[tokio::test]
async fn a_session_welcomes_and_resumes_across_a_cut_without_gap_or_duplicate() {
    let fx = Fx::start(&["--sse-keepalive-ms", "200"]).await;
    let svc = fx.service_token().await;
    let (mut sse, welcome) = Sse::session(&fx, "alice", None).await;
    assert_eq!(welcome["user_id"], "alice");
    assert_eq!(welcome["seq"], 0);
    assert_eq!(welcome["heartbeat_ms"], 200, "the SSE keep-alive interval");
    assert!(welcome["connection_id"].as_str().is_some_and(|c| c.starts_with('c')));
    assert!(session_of(&welcome).len() >= 43, "256 bits");
    let epoch = epoch_of(&welcome);
    for i in 1..=3 {
        let n = fx.notify(&svc, "alice", &format!("n{i}")).await;
        let ev = sse.expect("new_notification").await;
        assert_eq!((ev.seq(), &ev.data), (i, &n));
    }
    // A ping event keeps the session alive where a browser can see it.
    assert_eq!(
        sse.next_within(Duration::from_secs(2)).await,
        SseSeen::Event(Ev { id: String::new(), event: "ping".into(), data: json!({}) })
    );

    // Cut as a network failure would: no close event, the stream just ends.
    let res = fx.post_json("/dev/drop", None, json!({"user_id": "alice"})).await;
    assert_eq!(res.status(), 200);
    assert!(sse.until_end().await.is_empty());
    fx.notify(&svc, "alice", "n4").await;
    fx.notify(&svc, "alice", "n5").await;

    let (mut sse, again) = Sse::session(&fx, "alice", Some((&epoch, 3))).await;
    assert_eq!((again["epoch"].as_str(), again["seq"].as_u64()), (Some(epoch.as_str()), Some(5)));
    assert_ne!(session_of(&again), session_of(&welcome), "a new session");
    assert_eq!([sse.expect("new_notification").await.seq(), sse.expect("new_notification").await.seq()], [4, 5]);
    let resumed = sse.expect("resumed").await;
    assert_eq!((resumed.id.as_str(), &resumed.data), ("5", &json!({"replayed": 2, "complete": true})));
    fx.notify(&svc, "alice", "n6").await;
    assert_eq!(sse.expect("new_notification").await.seq(), 6);

    // Up to date: nothing replayed, complete.
    let (mut up_to_date, w) = Sse::session(&fx, "alice", Some((&epoch, 6))).await;
    assert_eq!(w["seq"], 6);
    assert_eq!(up_to_date.expect("resumed").await.data, json!({"replayed": 0, "complete": true}));

    // No resume: the welcome's id is its seq, so that an EventSource that reconnects by itself
    // before any message sends it as Last-Event-ID (and misses nothing).
    let token = fx.token("alice").await;
    let mut fresh = Sse::new(Sse::open(&fx, &format!("token={token}&epoch={epoch}"), None).await);
    let w = fresh.expect("welcome").await;
    assert_eq!((w.id.as_str(), w.data["seq"].as_u64()), ("6", Some(6)));
}

#[tokio::test]
async fn a_resume_from_another_epoch_or_past_the_history_is_incomplete() {
    let fx = Fx::start(&["--history", "3"]).await;
    let svc = fx.service_token().await;
    let (mut sse, welcome) = Sse::session(&fx, "alice", None).await;
    let epoch = epoch_of(&welcome);
    for i in 1..=6 {
        fx.notify(&svc, "alice", &format!("n{i}")).await;
        assert_eq!(sse.expect("new_notification").await.seq(), i);
    }
    // Another epoch (a restarted fixture's, say): nothing replayed, incomplete, then live.
    let (mut other, w) = Sse::session(&fx, "alice", Some(("0123456789abcdef", 2))).await;
    assert_eq!(w["seq"], 6, "the client resyncs from here");
    assert_eq!(other.expect("resumed").await.data, json!({"replayed": 0, "complete": false}));
    fx.notify(&svc, "alice", "n7").await;
    assert_eq!(other.expect("new_notification").await.seq(), 7);
    // No epoch known (`epoch=`) but a Last-Event-ID: the seq cannot be trusted.
    let (mut blank, _) = Sse::session(&fx, "alice", Some(("", 6))).await;
    assert_eq!(blank.expect("resumed").await.data, json!({"replayed": 0, "complete": false}));
    // The history keeps the last 3: a resume from 1 gets 5, 6, 7 and is told 2-4 are gone.
    let (mut past, _) = Sse::session(&fx, "alice", Some((&epoch, 1))).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(past.expect("new_notification").await.seq());
    }
    assert_eq!(got, [5, 6, 7]);
    assert_eq!(past.expect("resumed").await.data, json!({"replayed": 3, "complete": false}));
    // A seq past the last one: nothing replayed, incomplete.
    let (mut ahead, _) = Sse::session(&fx, "alice", Some((&epoch, 99))).await;
    assert_eq!(ahead.expect("resumed").await.data, json!({"replayed": 0, "complete": false}));
    // The query parameter works like the header (for clients that cannot set it).
    let token = fx.token("alice").await;
    let mut q = Sse::new(Sse::open(&fx, &format!("token={token}&epoch={epoch}&last_event_id=6"), None).await);
    assert_eq!(q.expect("welcome").await.data["seq"], 7);
    assert_eq!(q.expect("new_notification").await.seq(), 7);
    assert_eq!(q.expect("resumed").await.data, json!({"replayed": 1, "complete": true}));
}

/// Pushes go on while the client cuts and resumes its stream again and again: over the whole
/// run it sees every seq once, in order, and every resume is complete.
#[tokio::test]
async fn resumes_under_a_burst_of_pushes_lose_and_repeat_nothing() {
    const N: u64 = 300;
    let fx = Fx::start(&["--max-sse-per-user", "64"]).await;
    let svc = fx.service_token().await;
    let (mut sse, welcome) = Sse::session(&fx, "alice", None).await;
    let epoch = epoch_of(&welcome);
    let pusher = {
        let (http, url, svc) = (fx.http.clone(), fx.url("/api/notifications"), svc.clone());
        tokio::spawn(async move {
            for i in 1..=N {
                let body = json!({"user_id": "alice", "title": format!("n{i}"), "body": "b"});
                let res = http.post(&url).bearer_auth(&svc).json(&body).send().await.unwrap();
                assert_eq!(res.status(), 201);
                if i % 25 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    let mut seen: Vec<u64> = Vec::new();
    let mut cuts = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.last().copied().unwrap_or(0) < N {
        assert!(Instant::now() < deadline, "not all {N} seen: {} so far", seen.len());
        // Read a few events, then cut: by the server (`/dev/drop`) or by the client.
        let want = 7 + cuts % 13;
        for _ in 0..want {
            match sse.next_within(Duration::from_secs(2)).await {
                SseSeen::Event(ev) if ev.event == "new_notification" => seen.push(ev.seq()),
                SseSeen::Event(ev) if ev.event == "resumed" => {
                    assert_eq!(ev.data["complete"], true, "{ev:?}");
                }
                SseSeen::Event(ev) if ev.event == "ping" => {}
                SseSeen::Event(ev) => panic!("unexpected {ev:?}"),
                SseSeen::Ended => break,
                SseSeen::Timeout => break,
            }
        }
        if seen.last().copied().unwrap_or(0) >= N {
            break;
        }
        cuts += 1;
        if cuts % 2 == 0 {
            fx.post_json("/dev/drop", None, json!({"user_id": "alice"})).await;
        }
        drop(sse);
        let last = seen.last().copied().unwrap_or(0);
        sse = Sse::session(&fx, "alice", Some((&epoch, last))).await.0;
    }
    pusher.await.unwrap();
    assert!(cuts >= 5, "only {cuts} cuts");
    assert_eq!(seen, (1..=N).collect::<Vec<_>>(), "every seq once, in order, over {cuts} cuts");
}

#[tokio::test]
async fn posts_from_a_session_reach_websocket_members_and_back() {
    let fx = Fx::start(&[]).await;
    let (mut bob, _) = fx.connect("bob").await;
    bob.send(json!({"type": "join", "id": "j", "payload": {"room": "general"}})).await;
    assert_eq!(bob.expect_type("joined").await["payload"]["members"], 1);

    let (mut sse, welcome) = Sse::session(&fx, "alice", None).await;
    let s = session_of(&welcome);
    let join = json!({"type": "join", "id": "1", "payload": {"room": "general"}});
    let (status, reply) = post_frame(&fx, &s, join.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(reply, json!({"type": "joined", "id": "1", "payload": {"room": "general", "members": 2}}));
    assert_eq!(fx.stats().await["rooms"]["general"], 2);

    let send = json!({"type": "room_message", "id": "m1", "payload": {"room": "general", "data": {"text": "hi"}}});
    assert_eq!(post_frame(&fx, &s, send.to_string()).await, (200, json!({"type": "ack", "id": "m1", "payload": {}})));
    let got = bob.expect_type("room_message").await;
    assert_eq!(got["payload"], json!({"room": "general", "from": "alice", "data": {"text": "hi"}}));
    assert!(got.get("id").is_none() && got.get("seq").is_none());

    bob.send(json!({"type": "room_message", "id": "b1", "payload": {"room": "general", "data": 7}})).await;
    assert_eq!(bob.expect_type("ack").await["id"], "b1");
    let ev = sse.expect("room_message").await;
    assert_eq!((ev.id.as_str(), &ev.data), ("", &json!({"room": "general", "from": "bob", "data": 7})));

    // Without an id: delivered, no reply (204).
    let quiet = json!({"type": "room_message", "payload": {"room": "general", "data": 8}});
    assert_eq!(post_frame(&fx, &s, quiet.to_string()).await, (204, Value::Null));
    assert_eq!(bob.expect_type("room_message").await["payload"]["data"], 8);

    // Presence: asked over POST, changes arrive on the stream.
    let presence = json!({"type": "presence", "id": "p", "payload": {"room": "general"}});
    let (_, reply) = post_frame(&fx, &s, presence.to_string()).await;
    assert_eq!(reply["payload"], json!({"room": "general", "members": 2}));
    let (mut carol, _) = fx.connect("carol").await;
    carol.send(json!({"type": "join", "id": "c", "payload": {"room": "general"}})).await;
    carol.expect_type("joined").await;
    assert_eq!(sse.expect("presence").await.data, json!({"room": "general", "members": 3}));

    // A ping is answered; a broadcast reaches the session (not a plain stream).
    let (_, pong) = post_frame(&fx, &s, r#"{"type":"ping","id":"x"}"#).await;
    assert_eq!(pong, json!({"type": "pong", "id": "x", "payload": {}}));
    let svc = fx.service_token().await;
    let res = fx.post_json("/api/broadcast", Some(&svc), json!({"type": "deploy", "payload": {"v": 2}})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["delivered"], 3, "bob, carol and alice's session");
    assert_eq!(sse.expect("deploy").await.data, json!({"v": 2}));
    assert_eq!(bob.expect_type("deploy").await["payload"], json!({"v": 2}));
    assert_eq!(carol.expect_type("deploy").await["payload"], json!({"v": 2}));

    // Left: bob's messages no longer reach the session. The next event is the marker.
    let leave = json!({"type": "leave", "id": "2", "payload": {"room": "general"}});
    assert_eq!(
        post_frame(&fx, &s, leave.to_string()).await,
        (200, json!({"type": "left", "id": "2", "payload": {"room": "general"}}))
    );
    bob.send(json!({"type": "room_message", "id": "b2", "payload": {"room": "general", "data": 9}})).await;
    assert_eq!(bob.expect_type("ack").await["id"], "b2");
    assert_eq!(carol.expect_type("room_message").await["payload"]["data"], 9);
    fx.notify(&svc, "alice", "marker").await;
    assert_eq!(sse.expect("new_notification").await.data["title"], "marker", "the room message did not come");
    let (status, reply) = post_frame(&fx, &s, send.to_string()).await;
    assert_eq!((status, reply["payload"]["code"].as_str()), (200, Some("not_member")));
}

#[tokio::test]
async fn post_errors_have_the_websocket_codes() {
    let fx = Fx::start(&["--max-message-bytes", "1024", "--rate-limit", "100/10s"]).await;
    let (mut sse, welcome) = Sse::session(&fx, "alice", None).await;
    let s = session_of(&welcome);
    let code = |v: &Value| (v["type"].clone(), v["id"].clone(), v["payload"]["code"].clone());
    let cases: &[(&str, (Value, Value, Value))] = &[
        ("not json", (json!("error"), Value::Null, json!("bad_json"))),
        ("", (json!("error"), Value::Null, json!("bad_json"))),
        ("[1]", (json!("error"), Value::Null, json!("bad_json"))),
        (r#"{"id":"a"}"#, (json!("error"), json!("a"), json!("bad_json"))),
        (r#"{"type":"join","id":"b","payload":3}"#, (json!("error"), json!("b"), json!("bad_payload"))),
        (
            r#"{"type":"join","id":"c","payload":{"room":"no spaces"}}"#,
            (json!("error"), json!("c"), json!("bad_payload")),
        ),
        (r#"{"type":"join","id":"d"}"#, (json!("error"), json!("d"), json!("bad_payload"))),
        (r#"{"type":"shout","id":"e"}"#, (json!("error"), json!("e"), json!("unknown_type"))),
        (r#"{"type":"welcome","id":"f"}"#, (json!("error"), json!("f"), json!("unknown_type"))),
        (
            r#"{"type":"room_message","id":"g","payload":{"room":"elsewhere","data":1}}"#,
            (json!("error"), json!("g"), json!("not_member")),
        ),
        (
            r#"{"type":"presence","id":"h","payload":{"room":"elsewhere"}}"#,
            (json!("error"), json!("h"), json!("not_member")),
        ),
        (
            r#"{"type":"resume","id":"i","payload":{"epoch":"x","since":0}}"#,
            (json!("error"), json!("i"), json!("unknown_type")),
        ),
    ];
    for (body, want) in cases {
        let (status, reply) = post_frame(&fx, &s, body.to_string()).await;
        assert_eq!((status, code(&reply)), (200, want.clone()), "{body:?}: {reply}");
    }
    // Sizes: the WebSocket's limit, counted in bytes of the frame; over it 413, and the session
    // stays open (an HTTP request can be refused alone).
    let ping = |len: usize| {
        let head = r#"{"type":"ping","id":"z","payload":{"pad":""}}"#;
        let pad = "x".repeat(len - head.len());
        format!(r#"{{"type":"ping","id":"z","payload":{{"pad":"{pad}"}}}}"#)
    };
    assert_eq!(post_frame(&fx, &s, ping(1024)).await.0, 200);
    let (status, body) = post_frame(&fx, &s, ping(1025)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].is_string());
    assert_eq!(post_frame(&fx, &s, vec![0xff, 0xfe]).await.0, 400, "not UTF-8");
    // Unknown, missing and ended sessions.
    assert_eq!(post_frame(&fx, "nope", r#"{"type":"ping"}"#).await.0, 410);
    let res = fx.http.post(fx.url("/sse/send")).body(r#"{"type":"ping"}"#).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("session"));
    assert_eq!(fx.http.get(fx.url(&format!("/sse/send?session={s}"))).send().await.unwrap().status(), 405);
    // Nothing of this reached the stream.
    sse.expect_quiet(Duration::from_millis(100)).await;
    fx.post_json("/dev/drop", None, json!({"user_id": "alice"})).await;
    sse.until_end().await;
    assert_eq!(post_frame(&fx, &s, r#"{"type":"ping","id":"late"}"#).await.0, 410);
}

#[tokio::test]
async fn the_rate_limit_refuses_then_ends_the_session_with_a_close_event() {
    let fx = Fx::start(&["--rate-limit", "5/10s", "--rate-limit-close-after", "3"]).await;
    let (mut sse, welcome) = Sse::session(&fx, "alice", None).await;
    let s = session_of(&welcome);
    for i in 0..5 {
        let (status, reply) = post_frame(&fx, &s, json!({"type": "ping", "id": format!("ok{i}")}).to_string()).await;
        assert_eq!((status, reply["type"].as_str()), (200, Some("pong")));
    }
    for i in 0..3 {
        let (status, reply) = post_frame(&fx, &s, json!({"type": "ping", "id": format!("no{i}")}).to_string()).await;
        assert_eq!(status, 200);
        assert_eq!(
            (reply["payload"]["code"].as_str(), reply["id"].as_str()),
            (Some("rate_limited"), Some(&*format!("no{i}")))
        );
    }
    let close = sse.until_end().await;
    assert_eq!(
        close,
        [Ev { id: String::new(), event: "close".into(), data: json!({"code": 1008, "reason": "Rate limit exceeded"}) }]
    );
    assert_eq!(post_frame(&fx, &s, r#"{"type":"ping","id":"after"}"#).await.0, 410);
    assert_eq!(fx.stats().await["rate_limited_total"], 3);
}

/// A burst of room messages is posted while the session's stream is cut; the client opens a new
/// session, joins again and resends every frame (an acked one too, as if its answer was lost):
/// the WebSocket member gets each message exactly once.
#[tokio::test]
async fn frames_resent_after_a_cut_mid_burst_are_delivered_once() {
    const N: usize = 40;
    let fx = Fx::start(&["--rate-limit", "1000/1s"]).await;
    let (mut bob, _) = fx.connect("bob").await;
    bob.send(json!({"type": "join", "id": "j", "payload": {"room": "r"}})).await;
    bob.expect_type("joined").await;
    let (mut sse, welcome) = Sse::session(&fx, "alice", None).await;
    let s = session_of(&welcome);
    let join = json!({"type": "join", "id": "j", "payload": {"room": "r"}}).to_string();
    assert_eq!(post_frame(&fx, &s, join.clone()).await.0, 200);
    let frame = |i: usize| {
        json!({"type": "room_message", "id": format!("m{i}"), "payload": {"room": "r", "data": i}}).to_string()
    };

    let mut burst = tokio::task::JoinSet::new();
    for i in 0..N {
        let (http, url, body) = (fx.http.clone(), fx.url(&format!("/sse/send?session={s}")), frame(i));
        burst.spawn(async move {
            // Spread over ~120 ms: the cut lands in the middle.
            tokio::time::sleep(Duration::from_millis(3 * i as u64)).await;
            (i, http.post(url).body(body).send().await.map(|r| r.status().as_u16()))
        });
    }
    let mut statuses = HashMap::new();
    while let Some(done) = tokio::time::timeout(WAIT, burst.join_next()).await.expect("the burst is answered") {
        let (i, status) = done.unwrap();
        statuses.insert(i, status.expect("an HTTP answer"));
        if statuses.len() == 10 {
            // Cut while the rest is in flight.
            fx.post_json("/dev/drop", None, json!({"user_id": "alice"})).await;
        }
    }
    let acked = statuses.values().filter(|s| **s == 200).count();
    let gone = statuses.values().filter(|s| **s == 410).count();
    assert_eq!(acked + gone, N, "each is acked or refused as gone: {statuses:?}");
    assert!(acked >= 10 && gone >= 1, "the cut fell mid-burst: {acked} acked, {gone} gone");
    assert!(sse.until_end().await.is_empty(), "a cut: no close event");

    let (_sse, again) = Sse::session(&fx, "alice", None).await;
    let s2 = session_of(&again);
    assert_eq!(post_frame(&fx, &s, frame(0)).await.0, 410, "the old session is gone");
    assert_eq!(post_frame(&fx, &s2, join).await.0, 200);
    for i in 0..N {
        let (status, reply) = post_frame(&fx, &s2, frame(i)).await;
        assert_eq!((status, reply["type"].as_str(), reply["id"].as_str()), (200, Some("ack"), Some(&*format!("m{i}"))));
    }
    let mut got = vec![0; N];
    for _ in 0..N {
        let m = bob.expect_type("room_message").await;
        got[m["payload"]["data"].as_u64().unwrap() as usize] += 1;
    }
    assert_eq!(got, vec![1; N], "each message once ({acked} acked before the cut, {gone} refused)");
    bob.expect_quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn sessions_show_in_stats_and_metrics_and_are_cleaned_up_when_the_stream_ends() {
    let fx = Fx::start(&["--sse-keepalive-ms", "50"]).await;
    let (mut a, welcome) = Sse::session(&fx, "alice", None).await;
    let s = session_of(&welcome);
    let (b, _) = Sse::session(&fx, "alice", None).await;
    let token = fx.token("alice").await;
    let plain = Sse::new(Sse::open(&fx, &format!("token={token}"), None).await);
    let join = json!({"type": "join", "id": "j", "payload": {"room": "lobby"}}).to_string();
    assert_eq!(post_frame(&fx, &s, join).await.0, 200);
    let stats = fx.stats().await;
    assert_eq!((stats["connections"].as_u64(), stats["sse_subscribers"].as_u64()), (Some(0), Some(3)), "{stats}");
    assert_eq!((stats["users"]["alice"]["open"].as_u64(), stats["users"]["alice"]["sse"].as_u64()), (Some(0), Some(3)));
    assert_eq!(stats["rooms"]["lobby"], 1);
    let metrics = fx.http.get(fx.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "resock_sse_subscribers 3"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "resock_connections 0"), "{metrics}");

    // The client goes away: the server notices at its next write (a ping within 50 ms).
    drop(b);
    drop(plain);
    fx.wait_stats("two streams ended", |s| s["sse_subscribers"] == 1).await;
    match a.next_within(WAIT).await {
        SseSeen::Event(ev) => assert_eq!(ev.event, "ping", "the session lives on"),
        other => panic!("expected a ping, saw {other:?}"),
    }
    drop(a);
    let stats = fx.wait_stats("every stream ended", |s| s["sse_subscribers"] == 0).await;
    assert!(stats["rooms"].get("lobby").is_none(), "its room was left: {stats}");
    assert_eq!(stats["users"]["alice"]["sse"], 0);
    assert_eq!(post_frame(&fx, &s, r#"{"type":"ping","id":"p"}"#).await.0, 410);
    assert_eq!(fx.server.app.sessions.len(), 0, "the session table is empty again");
}

#[tokio::test]
async fn the_server_ends_a_session_with_a_close_event_and_a_plain_stream_silently() {
    let fx = Fx::start(&[]).await;
    let (mut sse, _) = Sse::session(&fx, "alice", None).await;
    let token = fx.token("alice").await;
    let mut plain = Sse::new(Sse::open(&fx, &format!("token={token}"), None).await);
    fx.wait_stats("both streams", |s| s["sse_subscribers"] == 2).await;
    let res = fx.post_json("/dev/drop", None, json!({"user_id": "alice", "close_code": 1012})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["dropped"], 0, "no WebSocket connection");
    let end = sse.until_end().await;
    assert_eq!(end.len(), 1);
    assert_eq!(
        (end[0].event.as_str(), &end[0].data),
        ("close", &json!({"code": 1012, "reason": "Closed by /dev/drop"}))
    );
    assert!(plain.until_end().await.is_empty(), "the plain stream has no close event");
    // The plain stream never gets a welcome or anything but the user stream.
    let svc = fx.service_token().await;
    let mut plain = Sse::new(Sse::open(&fx, &format!("token={token}"), None).await);
    fx.wait_stats("the plain stream", |s| s["sse_subscribers"] == 1).await;
    fx.post_json("/api/broadcast", Some(&svc), json!({"type": "deploy"})).await;
    fx.notify(&svc, "alice", "n").await;
    assert_eq!(plain.expect("new_notification").await.seq(), 1);
}

#[tokio::test]
async fn a_session_gets_its_welcome_even_with_no_welcome_and_its_room_limit() {
    let fx = Fx::start(&["--no-welcome", "--max-rooms-per-connection", "1"]).await;
    let (_sse, welcome) = Sse::session(&fx, "alice", None).await;
    let s = session_of(&welcome);
    let join = |room: &str| json!({"type": "join", "id": room, "payload": {"room": room}}).to_string();
    assert_eq!(post_frame(&fx, &s, join("a")).await.1["type"], "joined");
    assert_eq!(post_frame(&fx, &s, join("a")).await.1["type"], "joined", "joined again: not counted");
    let (status, reply) = post_frame(&fx, &s, join("b")).await;
    assert_eq!((status, reply["id"].as_str(), reply["payload"]["code"].as_str()), (200, Some("b"), Some("room_limit")));
    // A socket of the same server still gets no welcome.
    let ticket = fx.ticket("bob").await;
    let mut ws = Ws::connect(&fx.ws_url(&format!("/ws?ticket={ticket}"))).await.unwrap();
    ws.send(json!({"type": "ping", "id": "first"})).await;
    assert_eq!(ws.expect_any().await["type"], "pong");
}

#[tokio::test]
async fn shutdown_ends_a_session_with_close_1001() {
    let fx = Fx::start(&[]).await;
    let (mut sse, _) = Sse::session(&fx, "alice", None).await;
    let Fx { server, .. } = fx;
    let stopping = tokio::spawn(server.shutdown());
    let end = sse.until_end().await;
    assert_eq!(end.len(), 1, "{end:?}");
    assert_eq!(
        (end[0].event.as_str(), &end[0].data),
        ("close", &json!({"code": 1001, "reason": "Server shutting down"}))
    );
    tokio::time::timeout(WAIT, stopping).await.expect("stops in time").unwrap();
}
