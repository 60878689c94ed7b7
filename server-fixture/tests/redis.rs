//! Several fixture instances sharing one real Redis (`redis-server`, started by each test on a
//! free loopback port with persistence off, and killed at the end): users, rooms, tickets and
//! streams cross instances, and Redis faults are answered as docs/PROTOCOL.md says.

mod common;

use std::time::Duration;

use common::*;
use futures_util::future::join_all;
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

async fn instances(redis: &Redis, n: usize, extra: &[&str]) -> Vec<Fx> {
    let url = redis.url();
    let mut out = Vec::new();
    for _ in 0..n {
        let mut args = vec!["--redis", url.as_str(), "--max-connections-per-user", "64"];
        args.extend_from_slice(extra);
        out.push(Fx::start(&args).await);
    }
    out
}

/// Waits (bounded) until `/healthz` answers 200.
async fn wait_healthy(fx: &Fx) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while fx.http.get(fx.url("/healthz")).send().await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "/healthz did not recover");
        sleep(Duration::from_millis(50)).await;
    }
}

async fn seq_of(ws: &mut Ws, kind: &str) -> u64 {
    ws.expect_type(kind).await["seq"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_posted_on_b_reaches_the_users_connections_on_a_and_c_once() {
    let redis = Redis::start();
    let fx = instances(&redis, 3, &[]).await;
    let (mut on_a, wa) = fx[0].connect("alice").await;
    let (mut on_c, wc) = fx[2].connect("alice").await;
    let (mut bob, _) = fx[0].connect("bob").await;
    assert_eq!(wa["payload"]["epoch"], wc["payload"]["epoch"], "one stream, one epoch, any instance");
    let service = fx[1].service_token().await;
    let n = fx[1].notify(&service, "alice", "from b").await;
    for ws in [&mut on_a, &mut on_c] {
        let got = ws.expect_type("new_notification").await;
        assert_eq!((got["seq"].as_u64(), &got["payload"]["id"]), (Some(1), &n["id"]));
        ws.expect_quiet(Duration::from_millis(150)).await;
    }
    bob.expect_quiet(Duration::from_millis(50)).await;
    // The store is shared: the list on C, a mark-read on C pushed to A.
    let alice = fx[2].token("alice").await;
    let list: Value =
        fx[2].http.get(fx[2].url("/api/notifications")).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["title"], "from b");
    let res = fx[2]
        .post_json("/api/notifications/mark-read", Some(&alice), json!({"notification_ids": [n["id"], 999]}))
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["marked"], json!([n["id"]]));
    let read = on_a.expect_type("notification_read").await;
    assert_eq!((read["seq"].as_u64(), &read["payload"]["notification_ids"]), (Some(2), &json!([n["id"]])));
    let res = fx[0].post_json("/api/notifications/read-all", Some(&alice), json!({})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["marked"], 0, "already read: nothing pushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_message_crosses_instances_and_skips_only_the_sending_connection() {
    let redis = Redis::start();
    let fx = instances(&redis, 2, &[]).await;
    let (mut sender, _) = fx[0].connect("alice").await;
    let (mut alice_elsewhere, _) = fx[1].connect("alice").await;
    let (mut bob, _) = fx[1].connect("bob").await;
    let (mut carol, _) = fx[0].connect("carol").await;
    for ws in [&mut sender, &mut alice_elsewhere, &mut bob, &mut carol] {
        ws.send(json!({"type": "join", "id": "j", "payload": {"room": "general"}})).await;
        ws.expect_type("joined").await;
    }
    sender.send(json!({"type": "room_message", "id": "m1", "payload": {"room": "general", "data": "hi"}})).await;
    assert_eq!(sender.expect_type("ack").await["id"], "m1");
    for ws in [&mut alice_elsewhere, &mut bob, &mut carol] {
        let m = ws.expect_type("room_message").await;
        assert_eq!((m["payload"]["from"].as_str(), m["payload"]["data"].as_str()), (Some("alice"), Some("hi")));
    }
    sender.expect_quiet(Duration::from_millis(150)).await;
    // The same id again from alice's other connection, on the other instance: acked, not sent.
    alice_elsewhere
        .send(json!({"type": "room_message", "id": "m1", "payload": {"room": "general", "data": "hi"}}))
        .await;
    assert_eq!(alice_elsewhere.expect_type("ack").await["id"], "m1");
    bob.expect_quiet(Duration::from_millis(150)).await;
    // Bob leaves: the room still reaches carol across instances; bob gets nothing.
    bob.send(json!({"type": "leave", "id": "l", "payload": {"room": "general"}})).await;
    bob.expect_type("left").await;
    sender.send(json!({"type": "room_message", "payload": {"room": "general", "data": 2}})).await;
    assert_eq!(carol.expect_type("room_message").await["payload"]["data"], 2);
    assert_eq!(alice_elsewhere.expect_type("room_message").await["payload"]["data"], 2);
    bob.expect_quiet(Duration::from_millis(150)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_posting_500_each_for_one_user_make_seqs_1_to_1000() {
    let redis = Redis::start();
    let fx = instances(&redis, 2, &["--history", "2000", "--history-bytes", "10000000", "--send-queue", "2000"]).await;
    let (mut ws, welcome) = fx[0].connect("alice").await;
    let epoch = welcome["payload"]["epoch"].as_str().unwrap().to_owned();
    let service = fx[0].service_token().await;
    let post = |i: usize| {
        let (fx, service) = (&fx[i % 2], &service);
        async move {
            let body = json!({"user_id": "alice", "action": "updated", "task": {"n": i}});
            let res = fx.post_json(&format!("/api/tasks/t{i}"), Some(service), body).await;
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()["seq"].as_u64().unwrap()
        }
    };
    // Two posters at once, one per instance.
    let (a, b) = tokio::join!(async { join_all((0..500).map(|i| post(2 * i))).await }, async {
        join_all((0..500).map(|i| post(2 * i + 1))).await
    });
    let mut seqs: Vec<u64> = a.into_iter().chain(b).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=1000).collect::<Vec<u64>>(), "no seq reused or skipped");
    // The live connection saw them in order, each once.
    let mut live = Vec::new();
    while live.len() < 1000 {
        live.push(seq_of(&mut ws, "task_update").await);
    }
    assert_eq!(live, (1..=1000).collect::<Vec<u64>>());
    // A resume on the other instance replays exactly the ones after 990.
    let (mut other, _) = fx[1].connect("alice").await;
    other.send(json!({"type": "resume", "id": "r", "payload": {"epoch": epoch, "since": 990}})).await;
    let (replayed, resumed) = seqs_until_resumed(&mut other).await;
    assert_eq!(replayed, (991..=1000).collect::<Vec<u64>>());
    assert_eq!(resumed["payload"], json!({"replayed": 10, "complete": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_from_one_instance_works_once_on_another_and_a_race_of_20_wins_once() {
    let redis = Redis::start();
    let fx = instances(&redis, 3, &[]).await;
    let ticket = fx[0].ticket("alice").await;
    let (mut ws, welcome) = {
        let mut ws = Ws::connect(&fx[1].ws_url(&format!("/ws?ticket={ticket}"))).await.unwrap();
        let w = ws.expect_type("welcome").await;
        (ws, w)
    };
    assert_eq!(welcome["payload"]["user_id"], "alice");
    ws.expect_quiet(Duration::from_millis(20)).await;
    let mut again = Ws::connect(&fx[2].ws_url(&format!("/ws?ticket={ticket}"))).await.unwrap();
    assert_eq!(again.expect_close().await.0, 4001);
    // 20 sockets over 3 instances race for one ticket.
    let ticket = fx[2].ticket("bob").await;
    let racers = (0..20).map(|i| {
        let url = fx[i % 3].ws_url(&format!("/ws?ticket={ticket}"));
        async move {
            let mut ws = Ws::connect(&url).await.unwrap();
            match ws.next().await {
                Seen::Json(v) if v["type"] == "welcome" => true,
                Seen::Close(4001, _) => false,
                other => panic!("{other:?}"),
            }
        }
    });
    let wins = join_all(racers).await.into_iter().filter(|w| *w).count();
    assert_eq!(wins, 1);
    // The per-user ticket cap holds across instances.
    let fx_cap = instances(&redis, 2, &["--max-tickets-per-user", "2"]).await;
    let carol = fx_cap[0].token("carol").await;
    assert_eq!(fx_cap[0].ticket_for_token(&carol).await.status(), 200);
    assert_eq!(fx_cap[1].ticket_for_token(&carol).await.status(), 200);
    assert_eq!(fx_cap[0].ticket_for_token(&carol).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_gone_and_a_reconnect_to_another_resumes_complete() {
    let redis = Redis::start();
    let mut fx = instances(&redis, 2, &[]).await;
    let service = fx[1].service_token().await;
    let (mut ws, welcome) = fx[0].connect("alice").await;
    let epoch = welcome["payload"]["epoch"].as_str().unwrap().to_owned();
    for i in 0..3 {
        fx[1].notify(&service, "alice", &format!("n{i}")).await;
    }
    let mut last = 0;
    for _ in 0..3 {
        last = seq_of(&mut ws, "new_notification").await;
    }
    // Instance A goes away; three more are posted on B meanwhile.
    let a = fx.remove(0);
    a.server.shutdown().await;
    for i in 3..6 {
        fx[0].notify(&service, "alice", &format!("n{i}")).await;
    }
    let (mut ws, again) = fx[0].connect("alice").await;
    assert_eq!(again["payload"]["epoch"], epoch.as_str());
    assert_eq!(again["payload"]["seq"], 6);
    ws.send(json!({"type": "resume", "payload": {"epoch": epoch, "since": last}})).await;
    let (replayed, resumed) = seqs_until_resumed(&mut ws).await;
    assert_eq!(replayed, [4, 5, 6]);
    assert_eq!(resumed["payload"]["complete"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_or_a_redis_restart_makes_a_new_epoch_and_resume_incomplete() {
    let mut redis = Redis::start();
    let fx = instances(&redis, 2, &[]).await;
    let service = fx[0].service_token().await;
    let (ws, welcome) = fx[0].connect("alice").await;
    let epoch = welcome["payload"]["epoch"].as_str().unwrap().to_owned();
    fx[0].notify(&service, "alice", "one").await;
    ws.close().await;
    assert_eq!(redis.cli(&["FLUSHALL"]), "OK");
    let (mut ws, after_flush) = fx[1].connect("alice").await;
    assert_ne!(after_flush["payload"]["epoch"], epoch.as_str(), "the data is gone: a new epoch");
    ws.send(json!({"type": "resume", "payload": {"epoch": epoch, "since": 1}})).await;
    assert_eq!(ws.expect_type("resumed").await["payload"]["complete"], false);
    let flushed_epoch = after_flush["payload"]["epoch"].as_str().unwrap().to_owned();
    ws.close().await;
    // A restart without persistence: the same.
    let port = redis.port;
    redis.stop();
    let _redis = Redis::on(port);
    wait_healthy(&fx[0]).await;
    let deadline = Instant::now() + WAIT;
    let again = loop {
        let ticket = fx[0].http.post(fx[0].url("/ws/ticket")).bearer_auth(fx[0].token("alice").await).send().await;
        if let Ok(res) = ticket {
            if res.status() == 200 {
                let t = res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned();
                let mut ws = Ws::connect(&fx[0].ws_url(&format!("/ws?ticket={t}"))).await.unwrap();
                break ws.expect_type("welcome").await;
            }
        }
        assert!(Instant::now() < deadline, "the instance did not recover after Redis came back");
        sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(again["payload"]["epoch"], flushed_epoch.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_503_on_rest_writes_and_recovers() {
    let mut redis = Redis::start();
    let fx = instances(&redis, 1, &[]).await;
    let fx = &fx[0];
    let service = fx.service_token().await;
    let (mut ws, _) = fx.connect("alice").await;
    assert_eq!(fx.http.get(fx.url("/healthz")).send().await.unwrap().status(), 200);
    let port = redis.port;
    redis.stop();
    let res = fx
        .post_json("/api/notifications", Some(&service), json!({"user_id": "alice", "title": "t", "body": "b"}))
        .await;
    assert_eq!(res.status(), 503);
    assert!(res.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("unavailable"));
    assert_eq!(fx.ticket_for_token(&fx.token("alice").await).await.status(), 503);
    // The local connection stays open and answers pings meanwhile.
    ws.send(json!({"type": "ping", "id": "p"})).await;
    assert_eq!(ws.expect_type("pong").await["id"], "p");
    let health = fx.http.get(fx.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    // Redis back (empty: no persistence): the connection that stayed is asked to reconnect and
    // resume (1012), since what was published meanwhile never reached this instance.
    let _redis = Redis::on(port);
    assert_eq!(ws.expect_close().await.0, 1012);
    let (mut ws, _) = fx.connect("alice").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = fx
            .post_json("/api/notifications", Some(&service), json!({"user_id": "alice", "title": "t", "body": "b"}))
            .await;
        if res.status() == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", res.status());
        sleep(Duration::from_millis(100)).await;
    }
    let got = ws.expect_type("new_notification").await;
    assert_eq!(got["payload"]["title"], "t");
    let deadline = Instant::now() + Duration::from_secs(10);
    while fx.http.get(fx.url("/healthz")).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "/healthz did not recover");
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_connection_cap_counts_every_instance() {
    let redis = Redis::start();
    let url = redis.url();
    let a = Fx::start(&["--redis", &url, "--max-connections-per-user", "2"]).await;
    let b = Fx::start(&["--redis", &url, "--max-connections-per-user", "2"]).await;
    let (one, _) = a.connect("alice").await;
    let (_two, _) = b.connect("alice").await;
    let ticket = a.ticket("alice").await;
    let mut third = Ws::connect(&a.ws_url(&format!("/ws?ticket={ticket}"))).await.unwrap();
    assert_eq!(third.expect_close().await, (1013, "Too many connections for this user".into()));
    // One closes: a place is free again, on either instance.
    one.close().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let ticket = b.ticket("alice").await;
        let mut ws = Ws::connect(&b.ws_url(&format!("/ws?ticket={ticket}"))).await.unwrap();
        match ws.next().await {
            Seen::Json(v) if v["type"] == "welcome" => break,
            _ => assert!(Instant::now() < deadline, "the closed connection was never uncounted"),
        }
        sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_on_one_instance_streams_pushes_from_another_and_resumes_from_last_event_id() {
    let redis = Redis::start();
    let fx = instances(&redis, 2, &[]).await;
    let service = fx[0].service_token().await;
    let alice = fx[1].token("alice").await;
    let mut res = fx[1].http.get(fx[1].url(&format!("/sse/notifications?token={alice}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    fx[1].wait_stats("the SSE subscriber", |s| s["sse_subscribers"] == 1).await;
    fx[0].notify(&service, "alice", "one").await;
    fx[0].notify(&service, "alice", "two").await;
    let (events, _) = sse_events(&mut res, 2).await;
    let ids: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(ids, ["1", "2"]);
    drop(res);
    fx[0].notify(&service, "alice", "three").await;
    // Resumed on the other instance: 2 and 3, from Redis's history.
    let mut res = fx[0]
        .http
        .get(fx[0].url(&format!("/sse/notifications?token={alice}")))
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    let (events, _) = sse_events(&mut res, 2).await;
    let ids: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(ids, ["2", "3"]);
    assert_eq!(serde_json::from_str::<Value>(&events[1].2).unwrap()["title"], "three");
}

/// An SSE session on one instance: room messages from a socket on another reach it, its POSTs
/// reach that socket, a POST to the other instance is refused `410` (sessions are per instance),
/// and it resumes on the other instance with the shared epoch, complete; after a Redis reset
/// the same resume is incomplete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_session_works_across_instances_and_resumes_on_another() {
    let redis = Redis::start();
    let fx = instances(&redis, 2, &[]).await;
    let service = fx[0].service_token().await;
    let (mut bob, _) = fx[0].connect("bob").await;
    bob.send(json!({"type": "join", "id": "j", "payload": {"room": "r"}})).await;
    bob.expect_type("joined").await;
    let (mut sse, welcome) = Sse::session(&fx[1], "alice", None).await;
    let (session, epoch) = (welcome["session"].as_str().unwrap(), welcome["epoch"].as_str().unwrap().to_owned());
    let join = json!({"type": "join", "id": "j", "payload": {"room": "r"}}).to_string();
    assert_eq!(post_frame(&fx[1], session, join).await.1["type"], "joined");
    assert_eq!(post_frame(&fx[0], session, r#"{"type":"ping","id":"p"}"#).await.0, 410, "another instance");
    let send = json!({"type": "room_message", "id": "m", "payload": {"room": "r", "data": 1}});
    assert_eq!(post_frame(&fx[1], session, send.to_string()).await.1["type"], "ack");
    assert_eq!(bob.expect_type("room_message").await["payload"]["from"], "alice");
    bob.send(json!({"type": "room_message", "id": "b", "payload": {"room": "r", "data": 2}})).await;
    assert_eq!(sse.expect("room_message").await.data["from"], "bob");

    fx[0].notify(&service, "alice", "one").await;
    assert_eq!(sse.expect("new_notification").await.seq(), 1);
    drop(sse);
    fx[0].notify(&service, "alice", "two").await;
    let (mut again, w) = Sse::session(&fx[0], "alice", Some((&epoch, 1))).await;
    assert_eq!((w["epoch"].as_str(), w["seq"].as_u64()), (Some(epoch.as_str()), Some(2)), "one stream, any instance");
    assert_eq!(again.expect("new_notification").await.data["title"], "two");
    assert_eq!(again.expect("resumed").await.data, json!({"replayed": 1, "complete": true}));
    drop(again);

    let (mut old, _) = Sse::session(&fx[1], "alice", Some((&epoch, 2))).await;
    assert_eq!(old.expect("resumed").await.data["complete"], true);
    assert_eq!(redis.cli(&["FLUSHALL"]), "OK");
    let (mut reset, w) = Sse::session(&fx[0], "alice", Some((&epoch, 2))).await;
    assert_ne!(w["epoch"].as_str(), Some(epoch.as_str()), "the data is gone: a new epoch");
    assert_eq!(reset.expect("resumed").await.data, json!({"replayed": 0, "complete": false}));
    // The first message of the new epoch ends the session welcomed in the old one, as a socket.
    fx[0].notify(&service, "alice", "new").await;
    assert_eq!(reset.expect("new_notification").await.seq(), 1);
    let end = old.until_end().await;
    let close = json!({"code": 1012, "reason": "Stream reset: reconnect and resume"});
    assert_eq!(end.iter().map(|e| (e.event.as_str(), &e.data)).collect::<Vec<_>>(), [("close", &close)]);
}
