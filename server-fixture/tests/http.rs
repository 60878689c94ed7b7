//! The HTTP side of PROTOCOL.md against the real fixture: REST routes, SSE, dev routes,
//! CORS and static files.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::time::Instant;

#[tokio::test]
async fn posting_a_notification_needs_a_service_token_and_pushes_it() {
    let fx = Fx::start(&[]).await;
    let service = fx.service_token().await;
    let user = fx.token("alice").await;
    let body = json!({"user_id": "alice", "title": "Hi", "body": "there"});
    assert_eq!(fx.post_json("/api/notifications", None, body.clone()).await.status(), 401);
    let res = fx.post_json("/api/notifications", Some(&user), body.clone()).await;
    assert_eq!(res.status(), 403);
    assert!(res.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("service"));
    let (mut ws, _) = fx.connect("alice").await;
    let res = fx.post_json("/api/notifications", Some(&service), body).await;
    assert_eq!(res.status(), 201);
    let n: Value = res.json().await.unwrap();
    assert_eq!(
        (n["title"].as_str(), n["body"].as_str(), n["read"].as_bool()),
        (Some("Hi"), Some("there"), Some(false))
    );
    assert!(n["id"].is_u64());
    assert!(n["created_at"].as_str().unwrap().ends_with('Z'));
    let pushed = ws.expect_type("new_notification").await;
    assert_eq!(pushed["payload"], n);
    assert_eq!(pushed["seq"], 1);
}

#[tokio::test]
async fn bad_bodies_get_400_with_an_error() {
    let fx = Fx::start(&[]).await;
    let service = fx.service_token().await;
    for (path, body) in [
        ("/api/notifications", "{not json"),
        ("/api/notifications", r#"{"user_id": "a", "title": "t"}"#),
        ("/api/notifications", ""),
        ("/api/tasks/1", r#"{"user_id": "a", "task": {}}"#),
        ("/api/broadcast", r#"{"payload": {}}"#),
        ("/api/broadcast", r#"{"type": "ping"}"#),
        ("/api/broadcast", r#"{"type": "new_notification"}"#),
        ("/api/broadcast", r#"{"type": "x", "payload": 3}"#),
    ] {
        let res = fx.http.post(fx.url(path)).bearer_auth(&service).body(body).send().await.unwrap();
        assert_eq!(res.status(), 400, "{path} {body}");
        let v: Value = res.json().await.unwrap();
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{path} {body}: {v}");
    }
    let user = fx.token("alice").await;
    let res = fx
        .http
        .post(fx.url("/api/notifications/mark-read"))
        .bearer_auth(&user)
        .body(r#"{"ids": [1]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn listing_shows_only_the_callers_notifications_oldest_first() {
    let fx = Fx::start(&[]).await;
    let service = fx.service_token().await;
    fx.notify(&service, "alice", "one").await;
    fx.notify(&service, "bob", "bobs").await;
    fx.notify(&service, "alice", "two").await;
    let alice = fx.token("alice").await;
    let list: Value =
        fx.http.get(fx.url("/api/notifications")).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    let titles: Vec<&str> = list.as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["one", "two"]);
    assert_eq!(fx.http.get(fx.url("/api/notifications")).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn mark_read_marks_only_the_callers_own_and_pushes_the_ids() {
    let fx = Fx::start(&[]).await;
    let service = fx.service_token().await;
    let a1 = fx.notify(&service, "alice", "a1").await["id"].as_u64().unwrap();
    let b1 = fx.notify(&service, "bob", "b1").await["id"].as_u64().unwrap();
    let (mut alice_ws, _) = fx.connect("alice").await;
    let (mut bob_ws, _) = fx.connect("bob").await;
    let alice = fx.token("alice").await;
    let res = fx.post_json("/api/notifications/mark-read", Some(&alice), json!({"notification_ids": [a1, b1]})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["marked"], json!([a1]));
    let pushed = alice_ws.expect_type("notification_read").await;
    assert_eq!(pushed["payload"], json!({"notification_ids": [a1]}));
    assert_eq!(pushed["seq"], 2);
    bob_ws.expect_quiet(Duration::from_millis(150)).await;
    let bob = fx.token("bob").await;
    let list: Value =
        fx.http.get(fx.url("/api/notifications")).bearer_auth(&bob).send().await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["read"], false);
}

#[tokio::test]
async fn read_all_pushes_all_read() {
    let fx = Fx::start(&[]).await;
    let service = fx.service_token().await;
    fx.notify(&service, "alice", "a").await;
    fx.notify(&service, "alice", "b").await;
    let (mut ws, _) = fx.connect("alice").await;
    let alice = fx.token("alice").await;
    let res = fx.post_json("/api/notifications/read-all", Some(&alice), json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["marked"], 2);
    let pushed = ws.expect_type("all_read").await;
    assert_eq!(pushed["payload"], json!({}));
    assert_eq!(pushed["seq"], 3);
    let list: Value =
        fx.http.get(fx.url("/api/notifications")).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    assert!(list.as_array().unwrap().iter().all(|n| n["read"] == true));
}

#[tokio::test]
async fn a_task_update_is_pushed_to_its_user() {
    let fx = Fx::start(&[]).await;
    let service = fx.service_token().await;
    let (mut ws, _) = fx.connect("alice").await;
    let user = fx.token("alice").await;
    let body = json!({"user_id": "alice", "action": "completed", "task": {"title": "Build"}});
    assert_eq!(fx.post_json("/api/tasks/t-9", Some(&user), body.clone()).await.status(), 403);
    let res = fx.post_json("/api/tasks/t-9", Some(&service), body).await;
    assert_eq!(res.status(), 200);
    let m = ws.expect_type("task_update").await;
    assert_eq!(m["payload"], json!({"action": "completed", "task": {"id": "t-9", "title": "Build"}}));
    assert_eq!(m["seq"], 1);
}

#[tokio::test]
async fn a_broadcast_reaches_every_connection_but_the_excluded_user() {
    let fx = Fx::start(&[]).await;
    let service = fx.service_token().await;
    let (mut a, _) = fx.connect("alice").await;
    let (mut b, _) = fx.connect("bob").await;
    let (mut c, _) = fx.connect("carol").await;
    let res = fx
        .post_json(
            "/api/broadcast",
            Some(&service),
            json!({"type": "maintenance", "payload": {"in": 5}, "exclude_user": "carol"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["delivered"], 2);
    for ws in [&mut a, &mut b] {
        let m = ws.expect_type("maintenance").await;
        assert_eq!(m["payload"], json!({"in": 5}));
        assert!(m.get("seq").is_none(), "broadcasts are not in the user stream");
    }
    c.expect_quiet(Duration::from_millis(150)).await;
    let user = fx.token("alice").await;
    assert_eq!(fx.post_json("/api/broadcast", Some(&user), json!({"type": "x"})).await.status(), 403);
}

// ---- SSE -----------------------------------------------------------------------------------

#[tokio::test]
async fn sse_streams_the_user_stream_and_resumes_from_last_event_id() {
    let fx = Fx::start(&[]).await;
    let service = fx.service_token().await;
    let alice = fx.token("alice").await;
    let ticket = fx.ticket("alice").await;
    let mut res = fx.http.get(fx.url(&format!("/sse/notifications?ticket={ticket}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    fx.wait_stats("the SSE subscriber", |s| s["sse_subscribers"] == 1).await;
    let n1 = fx.notify(&service, "alice", "one").await;
    fx.notify(&service, "bob", "not alice's").await;
    fx.notify(&service, "alice", "two").await;
    let (events, _) = sse_events(&mut res, 2).await;
    assert_eq!(events[0].0, "1");
    assert_eq!(events[0].1, "new_notification");
    assert_eq!(serde_json::from_str::<Value>(&events[0].2).unwrap(), n1);
    assert_eq!((events[1].0.as_str(), events[1].1.as_str()), ("2", "new_notification"));
    drop(res);
    fx.notify(&service, "alice", "three").await;
    // Resume from Last-Event-ID: 1 -> 2 and 3, in order.
    let mut res = fx
        .http
        .get(fx.url(&format!("/sse/notifications?token={alice}")))
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    let (events, _) = sse_events(&mut res, 2).await;
    let ids: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(ids, ["2", "3"]);
    // The same through the query parameter, for clients that cannot set the header.
    let mut res =
        fx.http.get(fx.url(&format!("/sse/notifications?token={alice}&last_event_id=2"))).send().await.unwrap();
    let (events, _) = sse_events(&mut res, 1).await;
    assert_eq!(events[0].0, "3");
}

#[tokio::test]
async fn sse_refuses_bad_credentials_and_sends_keep_alives() {
    let fx = Fx::start(&["--sse-keepalive-ms", "50"]).await;
    let res = fx.http.get(fx.url("/sse/notifications?ticket=nope")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = fx.http.get(fx.url("/sse/notifications?token=nope")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let token = fx.token("alice").await;
    let res = fx
        .http
        .get(fx.url(&format!("/sse/notifications?token={token}")))
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let mut res = fx.http.get(fx.url(&format!("/sse/notifications?token={token}"))).send().await.unwrap();
    let mut text = String::new();
    let deadline = Instant::now() + WAIT;
    while text.matches(':').count() < 2 && Instant::now() < deadline {
        let chunk = tokio::time::timeout(WAIT, res.chunk()).await.unwrap().unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.lines().filter(|l| l.starts_with(':')).count() >= 2, "{text:?}");
}

#[tokio::test]
async fn sse_follows_the_origin_allowlist() {
    let fx = Fx::start(&["--allowed-origin", "http://app.test"]).await;
    let token = fx.token("alice").await;
    let res = fx
        .http
        .get(fx.url(&format!("/sse/notifications?token={token}")))
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.json::<Value>().await.unwrap()["error"].is_string(), "refusals are JSON too");
    let res = fx
        .http
        .get(fx.url(&format!("/sse/notifications?token={token}")))
        .header("origin", "http://app.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

// ---- dev routes, CORS, static ----------------------------------------------------------------

#[tokio::test]
async fn dev_routes_are_404_without_dev() {
    resock_fixture::log::quiet();
    let cfg =
        <resock_fixture::Config as clap::Parser>::try_parse_from(["x", "--addr", "127.0.0.1:0", "--jwt-secret", "s"])
            .unwrap();
    let server = resock_fixture::start(cfg).await.unwrap();
    let http = reqwest::Client::new();
    for (method, path) in [("POST", "/dev/token"), ("POST", "/dev/drop"), ("GET", "/dev/stats")] {
        let res = http
            .request(method.parse().unwrap(), format!("{}{path}", server.http_url()))
            .body(r#"{"user_id":"a"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{method} {path}");
    }
    // The given secret is in force.
    let token = sign("s", json!({"sub": "alice", "exp": now_s() + 60}));
    let res = http.post(format!("{}/ws/ticket", server.http_url())).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let fx = Fx::start(&[]).await;
    for res in [fx.http.get(fx.url("/nope")).send().await.unwrap(), fx.http.post(fx.url("/nope")).send().await.unwrap()]
    {
        assert_eq!(res.status(), 404);
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "not found");
    }
}

#[tokio::test]
async fn cors_preflight_allows_the_ticket_request() {
    let fx = Fx::start(&[]).await;
    let res = fx
        .http
        .request(reqwest::Method::OPTIONS, fx.url("/ws/ticket"))
        .header("origin", "http://127.0.0.1:9999")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn static_files_are_served_from_the_static_folder() {
    let dir = std::env::temp_dir().join(format!("resock-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>demo</h1>").unwrap();
    let fx = Fx::start(&["--static", dir.to_str().unwrap()]).await;
    let res = fx.http.get(fx.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "<h1>demo</h1>");
    assert_eq!(fx.http.get(fx.url("/missing.js")).send().await.unwrap().status(), 404);
    // The API still wins over the folder.
    assert_eq!(fx.http.get(fx.url("/api/notifications")).send().await.unwrap().status(), 401);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn metrics_are_in_the_prometheus_text_format() {
    let fx = Fx::start(&[]).await;
    let (_ws, _) = fx.connect("metrics-user").await;
    let res = fx.http.get(fx.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = res.text().await.unwrap();
    for line in [
        "resock_engine_up 1",
        "resock_connections 1",
        "resock_connections_opened_total 1",
        "# TYPE resock_connections gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    assert!(!text.contains("resock_kafka"), "no Kafka lines without --kafka-brokers");
}
