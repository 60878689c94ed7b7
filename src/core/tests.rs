//! Tests of the connection machine, one per policy of the close-code table and the rest.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{json, Value};

use super::config::ConfigError;
use super::testkit::*;
use super::*;

// ---- the life of a connection --------------------------------------------------------------------

#[test]
fn connect_fetches_credentials_then_opens() {
    let mut s = Sim::new(Config::default());
    let out = s.feed(Input::Connect);
    assert_eq!(out.first(), Some(&Action::Emit(Event::State(State::Connecting))));
    assert_eq!(fetches(&out), 1);
    assert!(s.feed(Input::Connect).is_empty(), "connect is idempotent");
    let out = s.feed(Input::CredentialsReady { attempt: 1 });
    assert!(out.contains(&Action::OpenSocket { attempt: 1 }));
    let out = s.feed(Input::SocketOpened { attempt: 1 });
    assert!(events(&out).contains(&Event::State(State::Open)));
}

#[test]
fn pings_are_answered_and_never_reach_the_app() {
    let mut s = Sim::new(Config::default());
    s.open();
    let out = s.frame(InKind::Ping, None, None, json!({"type": "ping"}));
    assert_eq!(sends(&out), [json!({"type": "pong", "payload": {}})]);
    assert!(messages(&out).is_empty());
}

#[test]
fn app_messages_and_unknown_types_reach_the_app() {
    let mut s = Sim::new(Config::default());
    s.open();
    let out = s.frame(InKind::Other, None, None, json!({"type": "brand_new_type", "payload": {"x": 1}}));
    assert_eq!(messages(&out), [json!({"type": "brand_new_type", "payload": {"x": 1}})]);
}

// ---- the close-code table ----------------------------------------------------------------------

#[test]
fn close_codes_that_stop() {
    for (code, reason, expected) in [
        (1000, "Replaced by new connection", "replaced"),
        (1000, "", "server_closed"),
        (1003, "", "unsupported_data"),
        (1007, "", "invalid_payload"),
        (1009, "", "message_too_big"),
    ] {
        let mut s = Sim::new(Config::default());
        s.open();
        let out = s.closed(code, reason);
        assert_eq!(s.m.state(), State::Closed, "code {code}");
        assert!(error_codes(&out).contains(&expected.to_string()), "code {code}: {out:?}");
        assert_eq!(fetches(&s.advance(120_000)), 0, "code {code}: no further attempt");
    }
}

#[test]
fn close_codes_that_retry_with_backoff() {
    for code in [1001, 1006, 1008, 1011, 1005, 1012, 4999] {
        let mut s = Sim::new(Config::default());
        s.open();
        let out = s.closed(code, "");
        assert_eq!(s.m.state(), State::Reconnecting, "code {code}");
        let delay = retry_delay(&out).expect("a retry is scheduled");
        assert!(delay <= 500, "first retry within the initial delay: {delay}");
        assert_eq!(fetches(&out), 0, "not at once");
        let out = s.advance(delay);
        assert_eq!(fetches(&out), 1, "code {code}: retried after {delay} ms");
    }
}

#[test]
fn too_many_connections_waits_the_maximum_delay() {
    let mut s = Sim::new(Config::default());
    s.open();
    let out = s.closed(1013, "Too many connections");
    assert_eq!(retry_delay(&out), Some(30_000));
    assert_eq!(fetches(&s.advance(29_999)), 0);
    assert_eq!(fetches(&s.advance(1)), 1);
}

#[test]
fn one_4001_retries_at_once_with_fresh_credentials_and_two_stop() {
    let mut s = Sim::new(Config::default());
    s.open();
    let out = s.closed(4001, "Unauthorized");
    assert_eq!(fetches(&out), 1, "fresh credentials at once");
    assert_eq!(s.m.state(), State::Reconnecting);
    s.reopen();
    let out = s.closed(4001, "Unauthorized");
    assert_eq!(s.m.state(), State::Closed);
    assert_eq!(error_codes(&out), ["auth_failed"]);
    assert_eq!(fetches(&s.advance(120_000)), 0);
}

#[test]
fn ticket_url_auth_failures_count_like_4001() {
    let mut s = Sim::new(Config::default());
    s.feed(Input::Connect);
    let out = s.feed(Input::CredentialsFailed { attempt: 1, status: Some(401), message: String::new() });
    assert_eq!(fetches(&out), 1);
    let out = s.feed(Input::CredentialsFailed { attempt: 2, status: Some(401), message: String::new() });
    assert_eq!(error_codes(&out), ["auth_failed"]);
    assert_eq!(s.m.state(), State::Closed);
}

#[test]
fn a_frame_from_the_server_resets_the_auth_failure_count() {
    let mut s = Sim::new(Config::default());
    s.open();
    s.closed(4001, "");
    s.reopen();
    s.welcome("e", 0);
    s.closed(4001, "");
    assert_eq!(s.m.state(), State::Reconnecting, "not two failures in a row");
}

#[test]
fn ticket_network_failures_retry_with_backoff() {
    let mut s = Sim::new(Config::default());
    s.feed(Input::Connect);
    let out = s.feed(Input::CredentialsFailed { attempt: 1, status: None, message: "fetch failed".into() });
    assert_eq!(error_codes(&out), ["ticket_failed"]);
    assert!(retry_delay(&out).is_some());
    assert_eq!(s.m.state(), State::Reconnecting);
}

#[test]
fn backoff_grows_then_resets_once_a_connection_stayed_open() {
    let cfg = Config::default();
    let mut s = Sim::new(cfg);
    s.feed(Input::Connect);
    let mut ceilings = Vec::new();
    for n in 0..8u32 {
        let a = s.attempt;
        let out = s.feed(Input::CredentialsFailed { attempt: a, status: None, message: String::new() });
        let d = retry_delay(&out).unwrap();
        assert!(d <= cfg.backoff.ceiling(n), "attempt {n}: {d}");
        ceilings.push(cfg.backoff.ceiling(n));
        s.advance(d);
    }
    s.reopen();
    s.advance(cfg.stable_after_ms);
    let out = s.closed(1006, "");
    assert!(retry_delay(&out).unwrap() <= cfg.backoff.initial_ms, "reset after a stable connection");
}

#[test]
fn max_attempts_gives_up() {
    let cfg = Config { max_attempts: Some(2), ..Config::default() };
    let mut s = Sim::new(cfg);
    s.feed(Input::Connect);
    for _ in 0..2 {
        let a = s.attempt;
        let out = s.feed(Input::CredentialsFailed { attempt: a, status: None, message: String::new() });
        s.advance(retry_delay(&out).unwrap());
    }
    let a = s.attempt;
    let out = s.feed(Input::CredentialsFailed { attempt: a, status: None, message: String::new() });
    assert!(error_codes(&out).contains(&"max_attempts".to_string()));
    assert_eq!(s.m.state(), State::Closed);
}

// ---- liveness, offline, visibility ---------------------------------------------------------------

#[test]
fn silence_past_heartbeat_plus_grace_drops_and_reconnects() {
    let cfg = Config { heartbeat_grace_ms: 1_000, ..Config::default() };
    let mut s = Sim::new(cfg);
    s.open();
    let kind = InKind::Welcome { heartbeat_ms: 2_000, epoch: "e".into(), seq: 0 };
    s.frame(kind, None, None, json!({}));
    assert!(s.advance(2_999).iter().all(|a| !matches!(a, Action::CloseSocket { .. })));
    let out = s.advance(1);
    assert!(out.contains(&Action::CloseSocket { code: CLOSE_LIVENESS, reason: "Heartbeat timeout" }));
    assert_eq!(s.m.state(), State::Reconnecting);
}

#[test]
fn a_wall_clock_jump_is_noticed_on_the_next_tick() {
    let mut s = Sim::new(Config::default());
    s.open();
    // A laptop slept for an hour: timers did not fire; the first tick after sees it.
    let out = s.advance(3_600_000);
    assert!(out.iter().any(|a| matches!(a, Action::CloseSocket { code: CLOSE_LIVENESS, .. })));
}

#[test]
fn offline_pauses_retries_until_online() {
    let mut s = Sim::new(Config::default());
    s.open();
    s.feed(Input::Offline);
    s.closed(1006, "");
    assert_eq!(fetches(&s.advance(600_000)), 0, "no attempt while offline");
    let out = s.feed(Input::Online);
    assert_eq!(fetches(&out), 1, "at once when online");
}

#[test]
fn visible_again_probes_a_welcomed_connection() {
    let mut s = Sim::new(Config::default());
    s.open();
    s.welcome("e", 0);
    let out = s.feed(Input::Visible);
    assert_eq!(bare(&out), [json!({"type": "ping", "payload": {}})]);
    let id = sends(&out)[0]["id"].as_str().unwrap().to_owned();
    let out = s.frame(InKind::Pong, Some(&id), None, json!({"type": "pong", "id": id}));
    assert!(events(&out).is_empty(), "the probe's pong is the client's own");
    s.feed(Input::Visible);
    let probe = Config::default().probe_timeout_ms;
    let out = s.advance(probe);
    assert!(out.iter().any(|a| matches!(a, Action::CloseSocket { code: CLOSE_LIVENESS, .. })));
}

#[test]
fn a_probe_answered_keeps_the_connection() {
    let mut s = Sim::new(Config::default());
    s.open();
    s.welcome("e", 0);
    s.feed(Input::Visible);
    s.frame(InKind::Pong, None, None, json!({"type": "pong"}));
    let out = s.advance(Config::default().probe_timeout_ms);
    assert!(!out.iter().any(|a| matches!(a, Action::CloseSocket { .. })));
}

#[test]
fn visible_while_waiting_to_retry_tries_at_once() {
    let mut s = Sim::new(Config::default());
    s.open();
    s.closed(1006, "");
    let out = s.feed(Input::Visible);
    assert_eq!(fetches(&out), 1);
}

#[test]
fn nothing_shortens_the_wait_a_server_asked_for() {
    let mut s = Sim::new(Config::default());
    s.open();
    s.feed(Input::Offline);
    s.closed(1013, "");
    for input in [Input::Visible, Input::Online] {
        assert_eq!(fetches(&s.feed(input)), 0);
    }
    assert_eq!(fetches(&s.advance(30_000)), 1, "after the maximum delay, online or not");
}

#[test]
fn an_attempt_that_hangs_times_out_and_retries() {
    let mut s = Sim::new(Config::default());
    s.feed(Input::Connect);
    // Credentials never come.
    let out = s.advance(Config::default().connect_timeout_ms);
    assert_eq!(error_codes(&out), ["connect_timeout"]);
    let d = retry_delay(&out).unwrap();
    s.advance(d);
    let a = s.attempt;
    s.feed(Input::CredentialsReady { attempt: a });
    // The socket never opens.
    let out = s.advance(Config::default().connect_timeout_ms);
    assert!(out.iter().any(|a| matches!(a, Action::CloseSocket { .. })));
    assert_eq!(error_codes(&out), ["connect_timeout"]);
}

#[test]
fn a_malformed_url_is_fatal() {
    let mut s = Sim::new(Config::default());
    s.feed(Input::Connect);
    s.feed(Input::CredentialsReady { attempt: 1 });
    let out = s.feed(Input::SocketRefused { attempt: 1, message: "SyntaxError".into() });
    assert_eq!(error_codes(&out), ["bad_url"]);
    assert_eq!(s.m.state(), State::Closed);
}

#[test]
fn after_a_reconnect_the_resume_goes_before_the_rejoins_and_the_outbox() {
    let mut s = Sim::new(Config::default());
    s.open();
    s.welcome("e", 0);
    let id = s.m.next_id();
    s.feed(Input::Join { room: "r".into(), id });
    s.frame(InKind::Other, Some(&wire(id)), None, json!({"type": "joined"}));
    s.note(1);
    let out = s.closed(1006, "");
    s.advance(retry_delay(&out).unwrap());
    s.send(r#"{"type":"queued"}"#);
    let out = s.reopen();
    assert!(sends(&out).is_empty(), "held until the welcome decides the resume");
    let out = s.welcome("e", 3);
    let kinds: Vec<Value> = sends(&out).into_iter().map(|f| f["type"].clone()).collect();
    assert_eq!(kinds, [json!("resume"), json!("join"), json!("queued")]);
}

#[test]
fn without_the_welcome_it_waited_for_it_goes_on_after_the_timeout() {
    let mut s = Sim::new(Config::default());
    s.open();
    s.welcome("e", 0);
    let out = s.closed(1006, "");
    s.advance(retry_delay(&out).unwrap());
    s.send(r#"{"type":"queued"}"#);
    s.reopen();
    let out = s.advance(Config::default().welcome_timeout_ms);
    assert_eq!(bare(&out), [json!({"type": "queued"})]);
}

#[test]
fn sends_are_paced_by_the_answers_under_the_rate_limit() {
    let mut s = Sim::new(Config::default());
    s.open();
    let mut ids = Vec::new();
    for i in 0..20 {
        let out = s.send(&format!("{{\"type\":\"n\",\"payload\":{i}}}"));
        ids.extend(sends(&out).into_iter().map(|f| f["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(ids.len(), 9, "9 frames a window by default");
    assert!(sends(&s.advance(5_000)).is_empty(), "unanswered: they may all reach the server later");
    for id in &ids[..3] {
        s.frame(InKind::Other, Some(id), None, json!({"type": "ack"}));
    }
    assert!(sends(&s.advance(999)).is_empty(), "a window after the answers, plus a margin");
    assert_eq!(sends(&s.advance(1 + sender::MARGIN_MS)).len(), 3);
    assert_eq!(s.m.in_flight(), 9);
}

#[test]
fn a_rate_limited_resume_goes_out_again_after_the_window() {
    let mut s = Sim::new(Config::default());
    s.open();
    s.welcome("e", 0);
    s.reconnect(1006);
    let out = s.welcome("e", 4);
    let first = sends(&out)[0].clone();
    let rid = first["id"].as_str().unwrap().to_owned();
    let out = s.frame(InKind::Error { code: "rate_limited".into(), message: "".into() }, Some(&rid), None, json!({}));
    assert!(events(&out).is_empty(), "nothing lost, nothing to report");
    let out = s.advance(Config::default().throttle_ms + sender::MARGIN_MS);
    assert_eq!(sends(&out), [first]);
    let out = s.frame(InKind::Resumed { complete: true }, Some(&rid), None, json!({}));
    assert!(events(&out).is_empty());
    let out = s.note(5);
    assert_eq!(messages(&out).len(), 1, "the stream goes on");
}

// ---- outbox, rooms, requests -------------------------------------------------------------------

#[test]
fn sends_while_not_open_are_queued_and_flushed_in_order_after_the_joins() {
    let mut s = Sim::new(Config::default());
    s.send(r#"{"type":"a"}"#);
    s.feed(Input::Connect);
    let id = s.m.next_id();
    s.feed(Input::Join { room: "general".into(), id });
    s.send(r#"{"type":"b"}"#);
    let out = s.reopen();
    let sent = sends(&out);
    assert_eq!(sent[0], json!({"type": "join", "id": wire(id), "payload": {"room": "general"}}));
    assert_eq!(bare(&out)[1..], [json!({"type": "a"}), json!({"type": "b"})]);
    assert_eq!(s.m.outbox_len(), 0);
}

#[test]
fn a_full_outbox_refuses_and_reports() {
    let cfg = Config { outbox: OutboxLimits { max_messages: 2, max_bytes: 1000 }, ..Config::default() };
    let mut s = Sim::new(cfg);
    s.send(r#"{"type":"1"}"#);
    s.send(r#"{"type":"2"}"#);
    let out = s.send(r#"{"type":"3"}"#);
    assert_eq!(error_codes(&out), ["outbox_full"]);
    assert_eq!(s.m.outbox_len(), 2);
}

#[test]
fn queued_messages_expire_when_a_ttl_is_set() {
    let cfg = Config { outbox_ttl_ms: Some(1_000), ..Config::default() };
    let mut s = Sim::new(cfg);
    let (id, _) = s.send_id(r#"{"type":"1"}"#, false);
    let out = s.advance(1_000);
    assert_eq!(error_codes(&out), ["expired"]);
    assert!(
        matches!(&events(&out)[0], Event::Error(e) if e.id.as_deref() == Some(wire(id).as_str())),
        "it names the frame"
    );
    assert_eq!(s.m.outbox_len(), 0);
}

#[test]
fn wanted_rooms_are_joined_again_after_every_reconnect() {
    let mut s = Sim::new(Config::default());
    s.open();
    for room in ["a", "b"] {
        let id = s.m.next_id();
        s.feed(Input::Join { room: room.into(), id });
        let out = s.frame(InKind::Other, Some(&wire(id)), None, json!({"type": "joined"}));
        assert!(out.iter().any(|a| matches!(a, Action::Settle { result: Ok(Some(_)), .. })));
    }
    for _ in 0..3 {
        let out = s.reconnect(1006);
        let joined: Vec<Value> =
            sends(&out).into_iter().filter(|f| f["type"] == "join").map(|f| f["payload"]["room"].clone()).collect();
        assert_eq!(joined, [json!("a"), json!("b")]);
        // Re-join replies are not the app's messages.
        for f in sends(&out) {
            let id = f["id"].as_str().unwrap().to_owned();
            let out = s.frame(InKind::Other, Some(&id), None, json!({"type": "joined"}));
            assert!(messages(&out).is_empty());
        }
    }
    let id = s.m.next_id();
    s.feed(Input::Leave { room: "a".into(), id });
    let joined: Vec<Value> = sends(&s.reconnect(1006)).into_iter().map(|f| f["payload"]["room"].clone()).collect();
    assert_eq!(joined, [json!("b")]);
}

#[test]
fn a_refused_join_rejects_and_is_not_retried() {
    let mut s = Sim::new(Config::default());
    s.open();
    let id = s.m.next_id();
    s.feed(Input::Join { room: "x".into(), id });
    let out =
        s.frame(InKind::Error { code: "room_limit".into(), message: "full".into() }, Some(&wire(id)), None, json!({}));
    match out.iter().find(|a| matches!(a, Action::Settle { .. })) {
        Some(Action::Settle { result: Err(e), .. }) => assert_eq!(e.kind.code(), "room_limit"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.m.rooms().count(), 0);
    let bad = s.m.next_id();
    let out = s.feed(Input::Join { room: "no spaces".into(), id: bad });
    assert!(matches!(out.first(), Some(Action::Settle { result: Err(e), .. }) if e.kind == ErrorKind::BadRoom));
}

#[test]
fn requests_resolve_reject_time_out_and_fail_on_loss() {
    let mut s = Sim::new(Config::default());
    s.open();
    let ok = s.m.next_id();
    s.feed(Input::Request { id: ok, text: "{}".into(), timeout_ms: Some(1_000) });
    let out = s.frame(InKind::Other, Some(&wire(ok)), None, json!({"type": "reply"}));
    assert_eq!(out[0], Action::Settle { id: ok, result: Ok(Some(json!({"type": "reply"}))) });
    assert!(messages(&out).is_empty(), "a reply goes to its promise only");

    let bad = s.m.next_id();
    s.feed(Input::Request { id: bad, text: "{}".into(), timeout_ms: None });
    let out =
        s.frame(InKind::Error { code: "unknown_type".into(), message: "no".into() }, Some(&wire(bad)), None, json!({}));
    assert!(matches!(&out[0], Action::Settle { result: Err(e), .. } if e.kind.code() == "unknown_type"));

    let slow = s.m.next_id();
    s.feed(Input::Request { id: slow, text: "{}".into(), timeout_ms: Some(500) });
    let out = s.advance(500);
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Settle { id, result: Err(e) } if *id == slow && e.kind == ErrorKind::Timeout)));

    let lost = s.m.next_id();
    s.feed(Input::Request { id: lost, text: "{}".into(), timeout_ms: None });
    let out = s.closed(1006, "");
    assert!(out.iter().any(
        |a| matches!(a, Action::Settle { id, result: Err(e) } if *id == lost && e.kind == ErrorKind::Disconnected)
    ));
}

#[test]
fn rate_limited_holds_sends_back_then_flushes_them() {
    let mut s = Sim::new(Config::default());
    s.open();
    let out =
        s.frame(InKind::Error { code: "rate_limited".into(), message: "slow down".into() }, None, None, json!({}));
    assert_eq!(error_codes(&out), ["rate_limited"]);
    let out = s.send(r#"{"type":"x"}"#);
    assert!(sends(&out).is_empty(), "held back");
    let out = s.advance(Config::default().throttle_ms);
    assert_eq!(bare(&out), [json!({"type": "x"})]);
}

// ---- the user stream ---------------------------------------------------------------------------

#[test]
fn resume_after_reconnect_delivers_each_missed_seq_once_in_order() {
    let mut s = Sim::new(Config::default());
    s.open();
    s.welcome("e", 0);
    s.note(1);
    s.note(2);
    s.reconnect(1001);
    let out = s.welcome("e", 5);
    let resume = sends(&out);
    assert_eq!(resume[0]["type"], "resume");
    assert_eq!(resume[0]["payload"], json!({"epoch": "e", "since": 2}));
    let mut got = Vec::new();
    for seq in [5, 3, 3, 4, 5, 2] {
        got.extend(messages(&s.note(seq)).into_iter().map(|m| m["seq"].as_u64().unwrap()));
    }
    let out = s.frame(InKind::Resumed { complete: true }, None, None, json!({}));
    got.extend(messages(&out).into_iter().map(|m| m["seq"].as_u64().unwrap()));
    assert_eq!(got, [3, 4, 5]);
    assert!(!events(&out).iter().any(|e| matches!(e, Event::Resync(_))));
}

#[test]
fn a_new_epoch_or_an_incomplete_resume_reports_resync() {
    let mut s = Sim::new(Config::default());
    s.open();
    s.welcome("e1", 3);
    s.reconnect(1006);
    let out = s.welcome("e2", 0);
    assert!(events(&out).contains(&Event::Resync(ResyncReason::NewEpoch)));
    s.note(1);
    s.reconnect(1006);
    s.welcome("e2", 9);
    let out = s.frame(InKind::Resumed { complete: false }, None, None, json!({}));
    assert!(events(&out).contains(&Event::Resync(ResyncReason::Incomplete)));
}

// ---- close() ------------------------------------------------------------------------------------

#[test]
fn close_ends_everything() {
    let mut s = Sim::new(Config::default());
    s.open();
    let id = s.m.next_id();
    s.feed(Input::Request { id, text: "{}".into(), timeout_ms: None });
    let out = s.feed(Input::Close);
    assert_eq!(out[0], Action::CloseSocket { code: 1000, reason: "Client closed" });
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Settle { id: i, result: Err(e) } if *i == id && e.kind == ErrorKind::Closed)));
    assert!(events(&out).contains(&Event::State(State::Closed)));
    assert!(out.contains(&Action::Schedule(None)));
    for input in [
        Input::Tick,
        Input::Connect,
        Input::Online,
        Input::Visible,
        Input::SocketClosed { attempt: 1, code: 1006, reason: String::new() },
    ] {
        assert!(s.feed(input).is_empty());
    }
    assert!(s.advance(10_000_000).is_empty());
}

#[test]
fn every_error_code_maps_back_to_its_kind_and_codes_are_unique() {
    assert_eq!(ErrorKind::ALL.len(), 21);
    for (i, kind) in ErrorKind::ALL.iter().enumerate() {
        assert_eq!(ErrorKind::from_code(kind.code()).as_ref(), Some(kind));
        assert!(ErrorKind::ALL.iter().skip(i + 1).all(|k| k.code() != kind.code()), "{} twice", kind.code());
    }
    // A server's code stays the server's, even one that reads like the SDK's own.
    assert_eq!(ErrorKind::from_code("not_member"), None);
    assert_eq!(ErrorKind::Server("timeout".into()).code(), "timeout");
    assert_ne!(ErrorKind::Server("timeout".into()), ErrorKind::Timeout);
}

#[test]
fn errors_display_their_code_message_close_code_and_id() {
    let e = Error::new(ErrorKind::PolicyViolation, "Rate limit exceeded").with_close(1008).with_id("7");
    assert_eq!(e.to_string(), "policy_violation: Rate limit exceeded (close code 1008) (frame 7)");
    let boxed: Box<dyn std::error::Error> = Box::new(Error::new(ErrorKind::Timeout, "no reply in time"));
    assert_eq!(boxed.to_string(), "timeout: no reply in time");
}

// ---- delivery of the application's frames (issue 13) -------------------------------------------

fn ids(actions: &[Action<Value>]) -> Vec<Id> {
    sends(actions).into_iter().filter_map(|f| f["id"].as_str().and_then(frames::parse_id)).collect()
}

fn rate_limited() -> InKind {
    InKind::Error { code: "rate_limited".into(), message: "Rate limit exceeded".into() }
}

#[test]
fn every_frame_gets_an_id_unique_to_the_client() {
    let mut a = Sim::new(Config::default());
    let mut b = Machine::<Value>::new(Config::default(), testkit::rng(8));
    let (x, y) = (a.m.next_id(), b.next_id());
    assert_ne!(x, y, "two clients, two starting points");
    assert!(x.abs_diff(y) > 1_000_000_000 && x < 1 << 53 && y < 1 << 53, "{x} {y}");
    a.open();
    let (id, out) = a.send_id(r#"{"type":"room_message","payload":{"room":"r","data":1}}"#, false);
    assert_eq!(ids(&out), [id]);
}

#[test]
fn a_rate_limited_send_is_sent_again_first_and_not_reported() {
    let mut s = Sim::new(Config::default());
    s.open();
    let (a, _) = s.send_id(r#"{"type":"a"}"#, false);
    let (b, _) = s.send_id(r#"{"type":"b"}"#, false);
    let out = s.frame(rate_limited(), Some(&wire(a)), None, json!({}));
    assert!(events(&out).is_empty(), "nothing is lost: nothing to report");
    s.frame(InKind::Other, Some(&wire(b)), None, json!({"type": "ack"}));
    let (c, out) = s.send_id(r#"{"type":"c"}"#, false);
    assert!(sends(&out).is_empty(), "held back for the window");
    let out = s.advance(Config::default().throttle_ms + sender::MARGIN_MS);
    assert_eq!(ids(&out), [a, c], "the refused one first, in its order");
}

#[test]
fn a_send_refused_for_good_is_reported_with_its_id_or_rejects_its_promise() {
    let mut s = Sim::new(Config::default());
    s.open();
    let (plain, _) = s.send_id(r#"{"type":"room_message"}"#, false);
    let not_member = || InKind::Error { code: "not_member".into(), message: "join first".into() };
    let out = s.frame(not_member(), Some(&wire(plain)), None, json!({}));
    match &events(&out)[..] {
        [Event::Error(e)] => {
            assert_eq!((e.kind.code(), e.id.as_deref()), ("not_member", Some(wire(plain).as_str())));
        }
        other => panic!("{other:?}"),
    }
    let (acked, _) = s.send_id(r#"{"type":"room_message"}"#, true);
    let out = s.frame(not_member(), Some(&wire(acked)), None, json!({}));
    assert!(events(&out).is_empty());
    assert!(matches!(&out[0], Action::Settle { id, result: Err(e) } if *id == acked && e.kind.code() == "not_member"));
    let (ok, _) = s.send_id(r#"{"type":"room_message"}"#, true);
    let out = s.frame(InKind::Other, Some(&wire(ok)), None, json!({"type": "ack"}));
    assert_eq!(out[0], Action::Settle { id: ok, result: Ok(Some(json!({"type": "ack"}))) });
    assert!(messages(&out).is_empty(), "an ack is not an app message");
}

#[test]
fn after_a_cut_unanswered_sends_go_again_with_their_ids_and_requests_fail() {
    let mut s = Sim::new(Config::default());
    s.open();
    let (a, _) = s.send_id(r#"{"type":"a"}"#, false);
    let (b, _) = s.send_id(r#"{"type":"b"}"#, false);
    let req = s.m.next_id();
    s.feed(Input::Request { id: req, text: "{}".into(), timeout_ms: None });
    let leave = s.m.next_id();
    s.feed(Input::Leave { room: "r".into(), id: leave });
    s.frame(InKind::Other, Some(&wire(a)), None, json!({"type": "ack"}));
    let out = s.closed(1006, "");
    assert!(out.iter().any(
        |x| matches!(x, Action::Settle { id, result: Err(e) } if *id == req && e.kind == ErrorKind::Disconnected)
    ));
    assert!(out.contains(&Action::Settle { id: leave, result: Ok(None) }), "a closed connection is in no room");
    let (c, _) = s.send_id(r#"{"type":"c"}"#, false);
    s.advance(retry_delay(&out).unwrap());
    let out = s.reopen();
    assert_eq!(ids(&out), [b, c], "b was not answered: it goes again, before c");
}

#[test]
fn rate_limited_requests_leaves_and_joins_are_sent_again() {
    let mut s = Sim::new(Config::default());
    s.open();
    let req = s.m.next_id();
    s.feed(Input::Request { id: req, text: frames::with_id(r#"{"type":"q"}"#, req), timeout_ms: None });
    let join = s.m.next_id();
    s.feed(Input::Join { room: "r".into(), id: join });
    let leave = s.m.next_id();
    s.feed(Input::Leave { room: "old".into(), id: leave });
    for id in [&req, &join, &leave] {
        let out = s.frame(rate_limited(), Some(&wire(*id)), None, json!({}));
        assert!(!out.iter().any(|a| matches!(a, Action::Settle { .. } | Action::Emit(Event::Error(_)))));
    }
    let out = s.advance(Config::default().throttle_ms + sender::MARGIN_MS);
    assert_eq!(ids(&out), [join, leave, req], "the machine's own frames first, then the outbox");
}

/// An application's own id (`send({type, id: "mine"})`): its frame carries it as it is, and the
/// machine tracks it like its own: refusals matched by it, sent again with it after a cut, its
/// errors and promise name it. The machine remembers the string only while the frame lives.
#[test]
fn an_id_the_application_chose_is_tracked_like_the_clients_own() {
    let mut s = Sim::new(Config::default());
    s.open();
    let mine = s.m.app_id("mine".into());
    let out = s.feed(Input::Send { id: mine, text: r#"{"type":"a","id":"mine"}"#.into(), ack: false });
    assert_eq!(sends(&out), [json!({"type": "a", "id": "mine"})]);
    // Refused by the rate limit: not reported, sent again with its id after the window.
    let out = s.frame(rate_limited(), Some("mine"), None, json!({}));
    assert!(events(&out).is_empty(), "nothing is lost: nothing to report");
    let out = s.advance(Config::default().throttle_ms + sender::MARGIN_MS);
    assert_eq!(sends(&out), [json!({"type": "a", "id": "mine"})]);
    // Not answered before a cut: sent again with its id.
    let out = s.closed(1006, "");
    s.advance(retry_delay(&out).unwrap());
    let out = s.reopen();
    assert_eq!(sends(&out), [json!({"type": "a", "id": "mine"})]);
    // Refused for good: the error names it.
    let not_member = || InKind::Error { code: "not_member".into(), message: "join first".into() };
    let out = s.frame(not_member(), Some("mine"), None, json!({}));
    match &events(&out)[..] {
        [Event::Error(e)] => assert_eq!((e.kind.code(), e.id.as_deref()), ("not_member", Some("mine"))),
        other => panic!("{other:?}"),
    }
    assert!(s.m.app_ids.is_empty(), "done: forgotten");
    // Its answer again, or an id this client never sent: an ordinary message.
    for id in ["mine", "yours", "0123"] {
        let out = s.frame(InKind::Other, Some(id), None, json!({"type": "x"}));
        assert_eq!(messages(&out), [json!({"type": "x"})], "{id}");
    }
    // With `{ack: true}`: the promise settles with the answer.
    let acked = s.m.app_id("mine".into());
    assert_ne!(acked, mine, "a new frame, a new key");
    s.feed(Input::Send { id: acked, text: r#"{"type":"a","id":"mine"}"#.into(), ack: true });
    let out = s.frame(InKind::Other, Some("mine"), None, json!({"type": "ack"}));
    assert_eq!(out[0], Action::Settle { id: acked, result: Ok(Some(json!({"type": "ack"}))) });
    assert!(s.m.app_ids.is_empty());
    // An id that reads as one of the client's numbers is that number: nothing to remember.
    assert_eq!(s.m.app_id("42".into()), 42);
    assert!(s.m.app_ids.is_empty());
    let zero = s.m.app_id("042".into());
    assert_ne!(zero, 42);
    s.feed(Input::Send { id: zero, text: r#"{"type":"a","id":"042"}"#.into(), ack: true });
    let out = s.frame(InKind::Other, Some("42"), None, json!({"type": "x"}));
    assert_eq!(messages(&out).len(), 1, "\"42\" is not \"042\"");
    let out = s.frame(InKind::Other, Some("042"), None, json!({"type": "ack"}));
    assert!(matches!(&out[0], Action::Settle { id, result: Ok(_) } if *id == zero));
}

#[test]
fn an_app_id_refused_before_it_is_sent_is_named_and_forgotten() {
    let cfg = Config { outbox: OutboxLimits { max_messages: 1, max_bytes: 1000 }, ..Config::default() };
    let mut s = Sim::new(cfg);
    let first = s.m.app_id("first".into());
    s.feed(Input::Send { id: first, text: r#"{"type":"a","id":"first"}"#.into(), ack: false });
    let full = s.m.app_id("full".into());
    let out = s.feed(Input::Send { id: full, text: r#"{"type":"a","id":"full"}"#.into(), ack: true });
    assert!(matches!(&out[0], Action::Settle { id, result: Err(e) }
        if *id == full && e.kind == ErrorKind::OutboxFull && e.id.as_deref() == Some("full")));
    assert_eq!(s.m.app_ids.len(), 1, "only the queued one is remembered");
    s.feed(Input::Close);
    assert!(s.m.app_ids.is_empty());
    let late = s.m.app_id("late".into());
    let out = s.feed(Input::Send { id: late, text: r#"{"type":"a","id":"late"}"#.into(), ack: false });
    assert!(
        matches!(&events(&out)[..], [Event::Error(e)] if e.kind == ErrorKind::Closed && e.id.as_deref() == Some("late"))
    );
    assert!(s.m.app_ids.is_empty());
}

// ---- what a frame means (decided in core::classify; the shell only parses) --------------------

fn kind_of(text: &str) -> Result<InKind, &'static str> {
    testkit::parse(text).map(|i| i.kind)
}

#[test]
fn legacy_error_frames_map_to_typed_errors() {
    let i = testkit::parse(r#"{"error": "Rate limit exceeded"}"#).unwrap();
    assert_eq!(i.kind, InKind::Error { code: "rate_limited".into(), message: "Rate limit exceeded".into() });
    assert_eq!(
        i.msg,
        json!({"error": "Rate limit exceeded", "type": "error", "payload": {"code": "rate_limited", "message": "Rate limit exceeded"}})
    );
    assert_eq!(
        kind_of(r#"{"error": "too many RATE LIMIT hits"}"#).unwrap(),
        InKind::Error { code: "rate_limited".into(), message: "too many RATE LIMIT hits".into() }
    );
    assert_eq!(
        kind_of(r#"{"error": "boom"}"#).unwrap(),
        InKind::Error { code: "server_error".into(), message: "boom".into() }
    );
    let i = testkit::parse(r#"{"type": "error", "data": {"code": "not_member", "message": "join first"}}"#).unwrap();
    assert_eq!(i.kind, InKind::Error { code: "not_member".into(), message: "join first".into() });
    assert_eq!(i.msg["payload"], json!({"code": "not_member", "message": "join first"}));
}

#[test]
fn an_error_without_code_or_message_gets_the_defaults() {
    let i = testkit::parse(r#"{"type": "error"}"#).unwrap();
    assert_eq!(i.kind, InKind::Error { code: "server_error".into(), message: String::new() });
    assert_eq!(i.msg["payload"], json!({}));
    assert_eq!(
        kind_of(r#"{"type": "error", "payload": {"code": "x"}}"#).unwrap(),
        InKind::Error { code: "x".into(), message: String::new() }
    );
}

#[test]
fn a_welcome_counts_only_whole() {
    let whole = r#"{"type": "welcome", "payload": {"user_id": "u", "connection_id": "c1", "heartbeat_ms": 500, "epoch": "e", "seq": 3}}"#;
    assert_eq!(kind_of(whole).unwrap(), InKind::Welcome { heartbeat_ms: 500, epoch: "e".into(), seq: 3 });
    for partial in [
        r#"{"type": "welcome", "payload": {"heartbeat_ms": 500, "seq": 3}}"#,
        r#"{"type": "welcome", "payload": {"heartbeat_ms": 500, "epoch": "e", "seq": -1}}"#,
        r#"{"type": "welcome", "payload": {"heartbeat_ms": 1.5, "epoch": "e", "seq": 3}}"#,
        r#"{"type": "welcome"}"#,
    ] {
        assert_eq!(kind_of(partial).unwrap(), InKind::Other, "{partial}");
    }
}

#[test]
fn envelopes_payload_defaults_and_bad_frames() {
    let i = testkit::parse(r#"{"type": "joined", "id": "4", "seq": 2, "payload": null}"#).unwrap();
    assert_eq!((i.kind, i.id.as_deref(), i.seq), (InKind::Other, Some("4"), Some(2)));
    assert_eq!(i.msg["payload"], json!({}));
    let i = testkit::parse(r#"{"type": "x", "id": 4, "seq": "2"}"#).unwrap();
    assert_eq!((i.id, i.seq), (None, None), "an id that is not a string, a seq that is not a number: ignored");
    assert_eq!(kind_of(r#"{"type": "resumed", "payload": {}}"#).unwrap(), InKind::Resumed { complete: false });
    assert_eq!(
        kind_of(r#"{"type": "resumed", "payload": {"complete": true}}"#).unwrap(),
        InKind::Resumed { complete: true }
    );
    assert_eq!(kind_of(r#"{"type": "ping"}"#).unwrap(), InKind::Ping);
    assert_eq!(kind_of("not json"), Err(classify::NOT_JSON));
    for bad in ["[1]", "\"x\"", "null", "{}", r#"{"type": 5}"#] {
        assert!(kind_of(bad).is_err(), "{bad}");
    }
}

/// The shell's one-call envelope reader (`src/web/fast.js`), mirrored over `serde_json`: the
/// numbers it answers, decoded by the core, classify every frame as the field-by-field reads do.
struct FastView(Value);

impl classify::JsonView for FastView {
    fn is_object(&self) -> bool {
        self.0.is_object()
    }
    fn str(&self, key: &str) -> Option<String> {
        self.0.str(key)
    }
    fn u64(&self, key: &str) -> Option<u64> {
        classify::JsonView::u64(&self.0, key)
    }
    fn bool(&self, key: &str) -> Option<bool> {
        self.0.bool(key)
    }
    fn object(&self, key: &str) -> Option<FastView> {
        classify::JsonView::object(&self.0, key).map(FastView)
    }
    fn has(&self, key: &str) -> bool {
        self.0.has(key)
    }
    fn envelope(&self) -> classify::Envelope {
        let names: Vec<&str> = classify::Special::ALL.iter().map(|s| s.as_str()).collect();
        let what = match self.0.get("type").and_then(Value::as_str) {
            None => 0.0,
            Some(t) => names.iter().position(|n| *n == t).map_or(1.0, |i| i as f64 + 2.0),
        };
        let seq = self.0.get("seq").and_then(Value::as_f64).unwrap_or(f64::NAN);
        let payload = self.0.get("payload").is_some_and(|p| !p.is_null());
        let id = self.0.get("id").is_some_and(Value::is_string);
        let flags = f64::from(u8::from(payload) | (u8::from(id) << 1));
        classify::Envelope::from_numbers(what, seq, flags, || self.0.str("id"))
    }
}

#[test]
fn the_one_call_envelope_reader_classifies_like_field_reads() {
    use classify::JsonView;
    for text in [
        r#"{"type": "new_notification", "seq": 7, "payload": {"id": "n1"}}"#,
        r#"{"type": "room_message", "payload": {"room": "r", "data": 1}}"#,
        r#"{"type": "joined", "id": "4", "seq": 2, "payload": null}"#,
        r#"{"type": "x", "id": 4, "seq": "2"}"#,
        r#"{"type": "x", "seq": -1}"#,
        r#"{"type": "x", "seq": 1.5}"#,
        r#"{"type": "x", "seq": 9007199254740992}"#,
        r#"{"type": "ping"}"#,
        r#"{"type": "pong", "id": "9"}"#,
        r#"{"type": "resumed", "id": "3", "payload": {"complete": true}}"#,
        r#"{"type": "welcome", "payload": {"heartbeat_ms": 500, "epoch": "e", "seq": 3}}"#,
        r#"{"type": "welcome", "payload": {"heartbeat_ms": 500, "seq": 3}}"#,
        r#"{"type": "error", "id": "5", "payload": {"code": "not_member", "message": "m"}}"#,
        r#"{"type": "error", "data": {"code": "x"}}"#,
        r#"{"error": "Rate limit exceeded"}"#,
        r#"{"type": 5}"#,
        r#"{}"#,
    ] {
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(FastView(v.clone()).envelope(), v.envelope(), "{text}");
        assert_eq!(classify::classify(&FastView(v.clone())), classify::classify(&v), "{text}");
    }
}

#[test]
fn a_busy_connection_re_arms_its_timer_only_when_a_deadline_moves_earlier() {
    let cfg = Config { heartbeat_grace_ms: 1_000, ..Config::default() };
    let mut s = Sim::new(cfg);
    s.open();
    s.welcome("e", 0);
    let schedules = |out: &[Action<Value>]| {
        out.iter().filter_map(|a| if let Action::Schedule(t) = a { Some(*t) } else { None }).collect::<Vec<_>>()
    };
    // Every frame moves the liveness deadline later: the armed timer is kept.
    let mut armed = 0;
    for seq in 1..=1_000 {
        s.now += 1;
        let out = s.note(seq);
        assert_eq!(messages(&out).len(), 1);
        armed += schedules(&out).len();
    }
    assert_eq!(armed, 0, "no timer re-armed for frames that only push liveness later");
    // A request's deadline is earlier than liveness: armed at once.
    let id = s.m.next_id();
    let out = s.feed(Input::Request { id, text: "{}".into(), timeout_ms: Some(500) });
    assert_eq!(schedules(&out), [Some(s.now + 500)]);
    // The timer fires early for liveness (traffic moved it): nothing is due, the next deadline
    // is armed, and silence after the last frame still drops the connection in time.
    let mut s = Sim::new(Config { heartbeat_grace_ms: 1_000, ..Config::default() });
    s.open();
    let kind = InKind::Welcome { heartbeat_ms: 2_000, epoch: "e".into(), seq: 0 };
    let out = s.frame(kind, None, None, json!({}));
    let first = s.now + 3_000;
    assert!(schedules(&s.log).contains(&Some(first)) || schedules(&out).contains(&Some(first)));
    s.now += 1_500;
    assert!(schedules(&s.note(1)).is_empty());
    let last_frame = s.now;
    let out = s.advance(1_500); // the armed timer, at the old deadline
    assert!(!out.iter().any(|a| matches!(a, Action::CloseSocket { .. })), "not due yet: the frame moved it");
    assert_eq!(schedules(&out), [Some(last_frame + 3_000)]);
    let out = s.advance(1_500);
    assert!(out.contains(&Action::CloseSocket { code: CLOSE_LIVENESS, reason: "Heartbeat timeout" }));
}

#[test]
fn a_bad_frame_is_reported_and_counts_as_life() {
    let mut s = Sim::new(Config::default());
    s.open();
    s.advance(40_000);
    let out = s.text("[1, 2]");
    assert_eq!(error_codes(&out), ["bad_frame"]);
    assert_eq!(s.m.state(), State::Open);
    assert!(s.advance(40_000).iter().all(|a| !matches!(a, Action::CloseSocket { .. })), "it was a frame: alive");
    let out = s.text(r#"{"error": "Rate limit exceeded"}"#);
    assert_eq!(error_codes(&out), ["rate_limited"], "a legacy refusal nobody can match is reported");
    let a = s.attempt;
    let out = s.feed(Input::BadFrame { attempt: a, message: classify::BINARY.into() });
    assert_eq!(error_codes(&out), ["bad_frame"], "a binary frame (the shell sees it, the core names it)");
}

// ---- the credentials outcome and the configuration (decided here, not in the shell) ----------

#[test]
fn the_ticket_urls_http_status_decides() {
    // 403 like 401: fresh credentials at once, then auth_failed.
    let mut s = Sim::new(Config::default());
    s.feed(Input::Connect);
    let out = s.feed(Input::CredentialsFailed { attempt: 1, status: Some(403), message: String::new() });
    assert_eq!((fetches(&out), error_codes(&out).len()), (1, 0));
    let out = s.feed(Input::CredentialsFailed { attempt: 2, status: Some(403), message: String::new() });
    assert_eq!(error_codes(&out), ["auth_failed"]);
    // Any other status: retried with backoff, and said.
    for status in [500, 429, 404] {
        let mut s = Sim::new(Config::default());
        s.feed(Input::Connect);
        let out = s.feed(Input::CredentialsFailed { attempt: 1, status: Some(status), message: String::new() });
        let e = events(&out).into_iter().find_map(|e| if let Event::Error(e) = e { Some(e) } else { None }).unwrap();
        assert_eq!(e.kind, ErrorKind::TicketFailed);
        assert_eq!(e.message, ["the ticket URL answered HTTP ", &status.to_string()].concat());
        assert!(retry_delay(&out).is_some());
    }
}

#[test]
fn config_validate_refuses_what_the_machine_cannot_follow() {
    assert_eq!(Config::default().validate(), Ok(()));
    let c = Config { backoff: Backoff { initial_ms: 500, max_ms: 100 }, ..Config::default() };
    assert!(c.validate().unwrap_err().0.contains("maxDelayMs"));
    let mut c = Config { send_rate: Some(SendRate { max: 0, window_ms: 1000 }), ..Config::default() };
    assert!(c.validate().unwrap_err().0.contains("sendRate"));
    c.send_rate = Some(SendRate { max: 3, window_ms: 0 });
    assert!(c.validate().is_err());
    c.send_rate = None;
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(ConfigError("x".into()).to_string(), "resock: x");
}

#[test]
fn urls_need_their_schemes() {
    use super::config::check_urls;
    assert_eq!(check_urls("ws://h/ws", None), Ok(()));
    assert_eq!(check_urls("WSS://h/ws", Some("https://h/t")), Ok(()));
    assert!(check_urls("http://h/ws", None).unwrap_err().0.starts_with("url must be"));
    assert!(check_urls("ws://", None).is_err());
    assert!(check_urls("ws://h", Some("ws://h/t")).unwrap_err().0.starts_with("ticketUrl must be"));
    assert_eq!(check_urls("http://h/ws", None).unwrap_err().0, "url must be a ws:// or wss:// URL, got http://h/ws");
    assert_eq!(
        check_urls("ws://h", Some("ftp://t")).unwrap_err().0,
        "ticketUrl must be a http:// or https:// URL, got ftp://t"
    );
    assert_eq!(check_urls("wS://h", Some("HTTP://t")), Ok(()));
    for bad in ["wsx://h", "ws:/h", "wss:/", "w", "", "é://h", "wsss://h"] {
        assert!(check_urls(bad, None).is_err(), "{bad}");
    }
}

#[test]
fn actions_decided_before_close_are_stale_after_it() {
    let mut s = Sim::new(Config::default());
    let out = s.feed(Input::Connect);
    let fetch = out.iter().find(|a| matches!(a, Action::FetchCredentials { .. })).unwrap().clone();
    assert!(!s.m.is_stale(&fetch));
    s.feed(Input::Close);
    assert!(s.m.is_stale(&fetch));
    assert!(s.m.is_stale(&Action::OpenSocket { attempt: 1 }));
    assert!(!s.m.is_stale(&Action::Send(String::new())), "only attempts are dropped");
}

#[test]
fn send_refused_tells_the_shell_when_a_send_was_not_queued() {
    let cfg = Config { outbox: OutboxLimits { max_messages: 1, max_bytes: 1_000 }, ..Config::default() };
    let mut s = Sim::new(cfg);
    s.send(r#"{"type":"a"}"#);
    assert!(!s.m.send_refused());
    s.send(r#"{"type":"b"}"#);
    assert!(s.m.send_refused(), "outbox full");
    s.feed(Input::Tick);
    assert!(!s.m.send_refused(), "it is about the last input only");
    s.feed(Input::Close);
    s.send(r#"{"type":"c"}"#);
    assert!(s.m.send_refused(), "closed");
}
