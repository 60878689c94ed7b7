//! End-to-end tests in headless Chromium (wasm-bindgen-test) against the real fixture server,
//! which `scripts/test.sh` starts under `scripts/fixture-supervisor.mjs` and names at compile
//! time: RESOCK_FIXTURE_URL (the fixture) and RESOCK_SUPERVISOR_URL (kill and restart it).
//! The tests drive the JavaScript API (`resock::bindings::Client`) exactly as a page would.
#![cfg(target_arch = "wasm32")]
#[cfg(not(feature = "test-hooks"))]
compile_error!("the browser tests read live handles: run them with `--features test-hooks`");

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::future::TimeoutFuture;
use js_sys::{Array, Function, Object, Promise, Reflect, JSON};
use resock::bindings::{live_handles_js, Client};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const FIXTURE: &str = match option_env!("RESOCK_FIXTURE_URL") {
    Some(u) => u,
    None => "http://127.0.0.1:18080",
};
const SUPERVISOR: &str = match option_env!("RESOCK_SUPERVISOR_URL") {
    Some(u) => u,
    None => "http://127.0.0.1:18079",
};

const SEED_FIXTURE: &str = match option_env!("RESOCK_SEED_FIXTURE_URL") {
    Some(u) => u,
    None => "http://127.0.0.1:18081",
};

// ---- helpers --------------------------------------------------------------------------------

thread_local! {
    static BUSY: RefCell<bool> = const { RefCell::new(false) };
}

/// wasm-bindgen-test runs async tests concurrently; these share one fixture and count live
/// handles, so each holds this for its whole run.
struct Serial;

impl Drop for Serial {
    fn drop(&mut self) {
        BUSY.with(|b| *b.borrow_mut() = false);
    }
}

async fn serial() -> Serial {
    loop {
        let got = BUSY.with(|b| {
            let mut b = b.borrow_mut();
            if *b {
                false
            } else {
                *b = true;
                true
            }
        });
        if got {
            // The last test's clients free their handles just after it returns: let them.
            for _ in 0..100 {
                if live_handles_js() == 0 {
                    break;
                }
                sleep(20).await;
            }
            return Serial;
        }
        sleep(20).await;
    }
}

fn ws_url() -> String {
    format!("{}/ws", FIXTURE.replacen("http://", "ws://", 1))
}

fn uid(name: &str) -> String {
    format!("{name}-{}", (js_sys::Math::random() * 1e9) as u64)
}

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

async fn sleep(ms: u32) {
    TimeoutFuture::new(ms).await;
}

/// fetch(url, {method, headers, body}) -> (status, parsed JSON or undefined).
async fn http(method: &str, url: &str, token: Option<&str>, body: Option<JsValue>) -> (u16, JsValue) {
    let headers = Object::new();
    Reflect::set(&headers, &"content-type".into(), &"application/json".into()).unwrap();
    if let Some(t) = token {
        Reflect::set(&headers, &"authorization".into(), &format!("Bearer {t}").into()).unwrap();
    }
    let init = obj(&[("method", method.into()), ("headers", headers.into())]);
    if let Some(b) = body {
        Reflect::set(&init, &"body".into(), &JSON::stringify(&b).unwrap()).unwrap();
    }
    let fetch: Function = get(&js_sys::global(), "fetch").dyn_into().unwrap();
    let res = JsFuture::from(fetch.call2(&JsValue::NULL, &url.into(), &init).unwrap().dyn_into::<Promise>().unwrap())
        .await
        .expect("the fixture is reachable");
    let status = get(&res, "status").as_f64().unwrap() as u16;
    let text: Function = get(&res, "text").dyn_into().unwrap();
    let text = JsFuture::from(text.call0(&res).unwrap().dyn_into::<Promise>().unwrap()).await.unwrap();
    let json = JSON::parse(&text.as_string().unwrap()).unwrap_or(JsValue::UNDEFINED);
    (status, json)
}

async fn dev_token(user: &str, role: Option<&str>) -> String {
    dev_token_on(FIXTURE, user, role).await
}

async fn dev_token_on(fixture: &str, user: &str, role: Option<&str>) -> String {
    let mut pairs = vec![("user_id", JsValue::from_str(user))];
    if let Some(r) = role {
        pairs.push(("role", r.into()));
    }
    let (status, body) = http("POST", &format!("{fixture}/dev/token"), None, Some(obj(&pairs))).await;
    assert_eq!(status, 200);
    get(&body, "token").as_string().unwrap()
}

async fn notify(service: &str, user: &str, title: &str) -> JsValue {
    let body = obj(&[("user_id", user.into()), ("title", title.into()), ("body", "b".into())]);
    let (status, n) = http("POST", &format!("{FIXTURE}/api/notifications"), Some(service), Some(body)).await;
    assert_eq!(status, 201);
    n
}

async fn stats() -> JsValue {
    http("GET", &format!("{FIXTURE}/dev/stats"), None, None).await.1
}

/// Records every value an event delivers.
#[derive(Clone, Default)]
struct Recorder(Rc<RefCell<Vec<JsValue>>>);

impl Recorder {
    fn listen(&self, client: &Client, event: &str) {
        let rec = self.0.clone();
        let f = Closure::<dyn FnMut(JsValue)>::new(move |v| rec.borrow_mut().push(v)).into_js_value();
        client.on(event.into(), f).unwrap();
    }
    fn values(&self) -> Vec<JsValue> {
        self.0.borrow().clone()
    }
    fn len(&self) -> usize {
        self.0.borrow().len()
    }
    fn strings(&self) -> Vec<String> {
        self.values().iter().filter_map(JsValue::as_string).collect()
    }
}

/// Polls `cond` every 10 ms for at most `ms`.
async fn wait_for(what: &str, ms: u32, mut cond: impl FnMut() -> bool) {
    let mut waited = 0;
    while !cond() {
        assert!(waited < ms, "timed out after {ms} ms waiting for {what}");
        sleep(10).await;
        waited += 10;
    }
}

struct Rig {
    client: Client,
    messages: Recorder,
    states: Recorder,
    errors: Recorder,
    resyncs: Recorder,
    retries: Recorder,
}

impl Rig {
    fn new(options: JsValue) -> Rig {
        let client = Client::new(options).expect("valid options");
        let rig = Rig {
            client,
            messages: Recorder::default(),
            states: Recorder::default(),
            errors: Recorder::default(),
            resyncs: Recorder::default(),
            retries: Recorder::default(),
        };
        rig.messages.listen(&rig.client, "message");
        rig.states.listen(&rig.client, "state");
        rig.errors.listen(&rig.client, "error");
        rig.resyncs.listen(&rig.client, "resync");
        rig.retries.listen(&rig.client, "retry");
        rig
    }

    /// A client for `user` with a ticket URL and a token function that counts its calls.
    async fn with_ticket(user: &str) -> (Rig, Rc<RefCell<u32>>) {
        Self::with_ticket_on(FIXTURE, user, 100, 1000).await
    }

    /// The same against any fixture, with its own backoff.
    async fn with_ticket_on(fixture: &str, user: &str, initial_ms: u32, max_ms: u32) -> (Rig, Rc<RefCell<u32>>) {
        let token = dev_token_on(fixture, user, None).await;
        let calls = Rc::new(RefCell::new(0u32));
        let c = calls.clone();
        let provider = Closure::<dyn FnMut() -> JsValue>::new(move || {
            *c.borrow_mut() += 1;
            JsValue::from_str(&token)
        })
        .into_js_value();
        let opts = obj(&[
            ("url", format!("{}/ws", fixture.replacen("http://", "ws://", 1)).into()),
            ("ticketUrl", format!("{fixture}/ws/ticket").into()),
            ("token", provider),
            ("reconnect", obj(&[("initialDelayMs", initial_ms.into()), ("maxDelayMs", max_ms.into())])),
        ]);
        (Rig::new(opts), calls)
    }

    async fn open(&self) {
        self.client.connect();
        wait_for("state open", 5000, || self.client.state() == "open").await;
    }

    fn of_type(&self, kind: &str) -> Vec<JsValue> {
        self.messages.values().into_iter().filter(|m| get(m, "type").as_string().as_deref() == Some(kind)).collect()
    }

    fn error_codes(&self) -> Vec<String> {
        self.errors.values().iter().filter_map(|e| get(e, "code").as_string()).collect()
    }
}

// ---- tests ----------------------------------------------------------------------------------

#[wasm_bindgen_test]
async fn connects_with_a_ticket_and_typed_messages_reach_js() {
    let _serial = serial().await;
    let user = uid("typed");
    let (rig, calls) = Rig::with_ticket(&user).await;
    rig.open().await;
    assert_eq!(*calls.borrow(), 1, "the token provider is asked once per attempt");
    assert_eq!(rig.states.strings(), ["connecting", "open"]);
    let service = dev_token("svc", Some("service")).await;
    let n = notify(&service, &user, "hello").await;
    let body = obj(&[
        ("user_id", user.as_str().into()),
        ("action", "created".into()),
        ("task", obj(&[("title", "t".into())])),
    ]);
    http("POST", &format!("{FIXTURE}/api/tasks/7"), Some(&service), Some(body)).await;
    wait_for("two messages", 3000, || rig.messages.len() >= 2).await;
    let m = &rig.messages.values()[0];
    assert_eq!(get(m, "type"), "new_notification");
    assert_eq!(get(m, "seq"), 1);
    assert_eq!(get(&get(m, "payload"), "id"), get(&n, "id"));
    assert_eq!(get(&get(m, "payload"), "title"), "hello");
    let t = &rig.messages.values()[1];
    assert_eq!(get(t, "type"), "task_update");
    assert_eq!(get(&get(&get(t, "payload"), "task"), "id"), "7");
    // Protocol traffic never reaches the app: no welcome, no ping.
    assert!(rig.of_type("welcome").is_empty() && rig.of_type("ping").is_empty());
    rig.client.close();
}

#[wasm_bindgen_test]
async fn pings_are_answered_so_the_connection_outlives_the_pong_timeout() {
    let _serial = serial().await;
    // The fixture runs with --heartbeat-ms 500 --pong-timeout-ms 500.
    let user = uid("ping");
    let (rig, _) = Rig::with_ticket(&user).await;
    rig.open().await;
    sleep(2500).await;
    assert_eq!(rig.client.state(), "open");
    assert_eq!(rig.states.strings(), ["connecting", "open"], "never dropped");
    assert!(rig.of_type("ping").is_empty());
    let s = stats().await;
    assert_eq!(get(&get(&get(&s, "users"), &user), "opened_total"), 1);
    rig.client.close();
}

#[wasm_bindgen_test]
async fn two_clients_chat_in_a_room() {
    let _serial = serial().await;
    let (alice, _) = Rig::with_ticket(&uid("alice")).await;
    let (bob, _) = Rig::with_ticket(&uid("bob")).await;
    alice.open().await;
    bob.open().await;
    let room = uid("room");
    let joined = JsFuture::from(alice.client.join(room.clone())).await.unwrap();
    assert_eq!(get(&joined, "type"), "joined");
    let joined = JsFuture::from(bob.client.join(room.clone())).await.unwrap();
    assert_eq!(get(&get(&joined, "payload"), "members"), 2);
    let msg = obj(&[
        ("type", "room_message".into()),
        ("payload", obj(&[("room", room.as_str().into()), ("data", "hi bob".into())])),
    ]);
    let id = alice.client.send(msg, JsValue::UNDEFINED).unwrap().as_string().expect("send returns the frame's id");
    wait_for("bob's room message", 3000, || !bob.of_type("room_message").is_empty()).await;
    let got = &bob.of_type("room_message")[0];
    assert_eq!(get(&get(got, "payload"), "data"), "hi bob");
    assert!(get(&get(got, "payload"), "from").as_string().unwrap().starts_with("alice"));
    assert!(id.parse::<u64>().is_ok_and(|n| n > 1_000), "a frame id from a random start: {id}");
    // Opted in, a send settles with the server's answer: its `ack`, or the refusal and its id.
    let ack_opts = || obj(&[("ack", true.into())]);
    let acked = alice.client.send(msg_to(&room, "again"), ack_opts()).unwrap();
    let ack = JsFuture::from(Promise::from(acked)).await.unwrap();
    assert_eq!(get(&ack, "type"), "ack");
    let refused = alice.client.send(msg_to("not-joined", "x"), ack_opts()).unwrap();
    let e = JsFuture::from(Promise::from(refused)).await.unwrap_err();
    assert_eq!(get(&e, "code"), "not_member");
    assert!(get(&e, "id").as_string().is_some_and(|i| i.parse::<u64>().is_ok()));
    // The message's own string id is the frame's.
    let own = obj(&[
        ("type", "room_message".into()),
        ("id", "mine-1".into()),
        ("payload", obj(&[("room", room.as_str().into()), ("data", 3.into())])),
    ]);
    assert_eq!(alice.client.send(own, JsValue::UNDEFINED).unwrap(), "mine-1");
    // Without the promise, the error event names the frame.
    let id = alice.client.send(msg_to("not-joined", "y"), JsValue::UNDEFINED).unwrap().as_string().unwrap();
    wait_for("the not_member error", 3000, || !alice.errors.values().is_empty()).await;
    let e = &alice.errors.values()[0];
    assert_eq!((get(e, "code").as_string(), get(e, "id").as_string()), (Some("not_member".into()), Some(id)));
    // A request gets its reply by id.
    let reply = JsFuture::from(bob.client.request("ping".into(), JsValue::UNDEFINED, JsValue::UNDEFINED).unwrap())
        .await
        .unwrap();
    assert_eq!(get(&reply, "type"), "pong");
    // An error reply rejects with its code.
    let bad =
        JsFuture::from(bob.client.request("no_such_type".into(), Object::new().into(), JsValue::UNDEFINED).unwrap())
            .await;
    assert_eq!(get(&bad.unwrap_err(), "code"), "unknown_type");
    alice.client.close();
    bob.client.close();
}

#[wasm_bindgen_test]
async fn cut_connections_reconnect_with_fresh_tickets_rejoin_and_lose_nothing() {
    let _serial = serial().await;
    let user = uid("drop");
    let (rig, calls) = Rig::with_ticket(&user).await;
    rig.open().await;
    let room = uid("r");
    JsFuture::from(rig.client.join(room.clone())).await.unwrap();
    let service = dev_token("svc", Some("service")).await;
    const N: u32 = 40;
    let done = Rc::new(RefCell::new(false));
    let d = done.clone();
    let (svc, u) = (service.clone(), user.clone());
    wasm_bindgen_futures::spawn_local(async move {
        for i in 0..N {
            notify(&svc, &u, &format!("n{i}")).await;
            sleep(15).await;
        }
        *d.borrow_mut() = true;
    });
    // Cut every connection twice mid-stream, refusing upgrades for a while each time.
    for _ in 0..2 {
        sleep(150).await;
        let body = obj(&[("refuse_ms", 300.into())]);
        let (status, _) = http("POST", &format!("{FIXTURE}/dev/drop"), None, Some(body)).await;
        assert_eq!(status, 200);
    }
    wait_for("every notification posted", 10_000, || *done.borrow()).await;
    wait_for("all notifications delivered", 10_000, || rig.of_type("new_notification").len() >= N as usize).await;
    sleep(300).await; // time for a duplicate to show up, if there were one
    let seqs: Vec<u64> =
        rig.of_type("new_notification").iter().map(|m| get(m, "seq").as_f64().unwrap() as u64).collect();
    assert_eq!(seqs, (1..=u64::from(N)).collect::<Vec<_>>(), "each once, in order");
    assert!(rig.retries.len() >= 2, "reconnected after each cut");
    assert!(*calls.borrow() >= 3, "a fresh token and ticket for every attempt: {}", calls.borrow());
    assert!(rig.resyncs.values().is_empty(), "nothing was missed: no resync");
    // Re-joined: the room has the client again, and room messages reach it.
    wait_for("state open", 5000, || rig.client.state() == "open").await;
    let s = stats().await;
    assert_eq!(get(&get(&s, "rooms"), &room), 1);
    rig.client.close();
}

fn msg_to(room: &str, data: impl Into<JsValue>) -> JsValue {
    obj(&[("type", "room_message".into()), ("payload", obj(&[("room", room.into()), ("data", data.into())]))])
}

async fn rate_limited_total() -> f64 {
    get(&stats().await, "rate_limited_total").as_f64().expect("/dev/stats has rate_limited_total")
}

/// Cuts every connection of `user` (no close frame), refusing upgrades for `refuse_ms`.
async fn cut(user: &str, refuse_ms: u32) {
    let body = obj(&[("user_id", user.into()), ("refuse_ms", refuse_ms.into())]);
    let (status, dropped) = http("POST", &format!("{FIXTURE}/dev/drop"), None, Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(get(&dropped, "dropped"), 1, "one connection cut");
}

/// Issue 13: 300 room messages, sent while alice's connection is cut three times, 120 of them
/// queued while she is offline: bob receives all 300, once, in order, and the server refused
/// none of them (its `rate_limited_total` does not move).
#[wasm_bindgen_test]
async fn three_hundred_room_messages_through_three_cuts_arrive_once_in_order_and_none_is_refused() {
    let _serial = serial().await;
    let (alice_user, room) = (uid("alice"), uid("outbox"));
    let (alice, _) = Rig::with_ticket(&alice_user).await;
    let (bob, _) = Rig::with_ticket(&uid("bob")).await;
    alice.open().await;
    bob.open().await;
    JsFuture::from(alice.client.join(room.clone())).await.unwrap();
    JsFuture::from(bob.client.join(room.clone())).await.unwrap();
    let refused_before = rate_limited_total().await;
    let started = js_sys::Date::now();
    let received = || bob.of_type("room_message").len();
    let mut n = 0u32;
    let mut send = |count: u32| {
        for _ in 0..count {
            let id = alice.client.send(msg_to(&room, n), JsValue::UNDEFINED).unwrap();
            assert!(id.as_string().is_some(), "message {n} queued");
            n += 1;
        }
    };
    // 1. 90 sent at once, online: the outbox drains at the paced rate; a cut in the middle.
    send(90);
    wait_for("bob receives 30", 20_000, || received() >= 30).await;
    cut(&alice_user, 0).await;
    // 2. Once they have all arrived, a cut that keeps alice offline while 120 are queued.
    wait_for("bob receives 90", 30_000, || received() >= 90).await;
    cut(&alice_user, 2_500).await;
    wait_for("alice sees the cut", 5_000, || alice.client.state() != "open").await;
    send(120);
    assert!(alice.client.queued() >= 120, "queued while offline: {}", alice.client.queued());
    assert_ne!(alice.client.state(), "open", "still offline after queueing");
    // 3. Back online with a full outbox, 90 more, and a third cut mid-drain.
    wait_for("alice reconnects", 10_000, || alice.client.state() == "open").await;
    send(90);
    wait_for("bob receives 150", 30_000, || received() >= 150).await;
    cut(&alice_user, 500).await;
    wait_for("bob receives all 300", 60_000, || received() >= 300).await;
    sleep(500).await; // time for a duplicate to show up, if there were one
    let data: Vec<u32> =
        bob.of_type("room_message").iter().map(|m| get(&get(m, "payload"), "data").as_f64().unwrap() as u32).collect();
    let refused = rate_limited_total().await - refused_before;
    web_sys::console::log_1(
        &format!(
            "300 room messages through 3 cuts in {:.1} s; alice reconnected {} times; rate_limited answers: {refused}",
            (js_sys::Date::now() - started) / 1000.0,
            alice.retries.len()
        )
        .into(),
    );
    assert_eq!(data, (0..300).collect::<Vec<u32>>(), "all 300, once, in order");
    assert_eq!(refused, 0.0, "the server refused none of alice's frames");
    assert!(alice.retries.len() >= 3, "reconnected after each cut");
    assert!(alice.error_codes().is_empty(), "nothing reported: {:?}", alice.error_codes());
    assert_eq!((alice.client.queued(), alice.client.state()), (0, "open".into()));
    alice.client.close();
    bob.client.close();
}

#[wasm_bindgen_test]
async fn a_restarted_fixture_is_a_new_epoch_and_the_client_reports_resync() {
    let _serial = serial().await;
    let user = uid("restart");
    let (rig, _) = Rig::with_ticket(&user).await;
    rig.open().await;
    let service = dev_token("svc", Some("service")).await;
    notify(&service, &user, "before").await;
    wait_for("the first notification", 3000, || rig.of_type("new_notification").len() == 1).await;
    let (status, _) = http("POST", &format!("{SUPERVISOR}/restart"), None, Some(obj(&[("down_ms", 300.into())]))).await;
    assert_eq!(status, 200);
    wait_for("a resync", 10_000, || !rig.resyncs.values().is_empty()).await;
    assert_eq!(get(&rig.resyncs.values()[0], "reason"), "new_epoch");
    assert!(rig.states.strings().contains(&"reconnecting".to_owned()));
    wait_for("open again", 5000, || rig.client.state() == "open").await;
    rig.client.close();
}

#[wasm_bindgen_test]
async fn two_4001s_in_a_row_end_in_closed_with_auth_failed() {
    let _serial = serial().await;
    let opts = obj(&[
        ("url", ws_url().into()),
        ("token", "not-a-valid-jwt".into()),
        ("reconnect", obj(&[("initialDelayMs", 50.into())])),
    ]);
    let rig = Rig::new(opts);
    rig.client.connect();
    wait_for("closed", 5000, || rig.client.state() == "closed").await;
    assert_eq!(rig.error_codes(), ["auth_failed"]);
    assert_eq!(get(&rig.errors.values()[0], "closeCode"), 4001);
    assert!(rig.retries.values().is_empty(), "the one retry is immediate, then it stops");
    sleep(500).await;
    assert_eq!(rig.client.state(), "closed");
}

#[wasm_bindgen_test]
async fn two_401s_from_the_ticket_url_end_in_closed_with_auth_failed() {
    let _serial = serial().await;
    let opts = obj(&[
        ("url", ws_url().into()),
        ("ticketUrl", format!("{FIXTURE}/ws/ticket").into()),
        ("token", "expired-or-bad".into()),
    ]);
    let rig = Rig::new(opts);
    rig.client.connect();
    wait_for("closed", 5000, || rig.client.state() == "closed").await;
    assert_eq!(rig.error_codes(), ["auth_failed"]);
}

#[wasm_bindgen_test]
async fn connects_with_a_query_token_when_there_is_no_ticket_url() {
    let _serial = serial().await;
    let user = uid("token");
    let token = dev_token(&user, None).await;
    let rig = Rig::new(obj(&[("url", ws_url().into()), ("token", token.into())]));
    rig.open().await;
    let service = dev_token("svc", Some("service")).await;
    notify(&service, &user, "x").await;
    wait_for("the notification", 3000, || rig.of_type("new_notification").len() == 1).await;
    rig.client.close();
}

/// The second fixture runs with --no-welcome --heartbeat-ms 300 --pong-timeout-ms 300: like
/// the seeds' FastAPI servers, it never sends a welcome.
#[wasm_bindgen_test]
async fn works_against_a_server_that_sends_no_welcome() {
    let _serial = serial().await;
    let user = uid("seed");
    let post = |path: &str| format!("{SEED_FIXTURE}{path}");
    let (rig, calls) = Rig::with_ticket_on(SEED_FIXTURE, &user, 50, 300).await;
    rig.open().await; // open is connected: no welcome to wait for
    let room = uid("seedroom");
    JsFuture::from(rig.client.join(room.clone())).await.unwrap();
    sleep(1200).await; // four pings of 300 ms, each answered within its 300 ms timeout
    assert_eq!(rig.states.strings(), ["connecting", "open"], "pings were answered");
    // A cut: a fresh ticket, and the room joined again.
    http("POST", &post("/dev/drop"), None, Some(obj(&[("user_id", user.as_str().into())]))).await;
    wait_for("reconnected", 5000, || rig.states.strings().len() >= 4 && rig.client.state() == "open").await;
    assert!(*calls.borrow() >= 2, "credentials fetched per attempt");
    // The room is joined again: the server counts this client in it.
    let mut members = JsValue::UNDEFINED;
    for _ in 0..100 {
        members = get(&get(&http("GET", &post("/dev/stats"), None, None).await.1, "rooms"), &room);
        if members == 1 {
            break;
        }
        sleep(20).await;
    }
    assert_eq!(members, 1);
    let svc = dev_token_on(SEED_FIXTURE, "svc", Some("service")).await;
    let body = obj(&[("user_id", user.as_str().into()), ("title", "t".into()), ("body", "b".into())]);
    http("POST", &post("/api/notifications"), Some(&svc), Some(body)).await;
    wait_for("the notification", 3000, || rig.of_type("new_notification").len() == 1).await;
    assert!(rig.resyncs.values().is_empty(), "no epoch to compare: no resync");
    rig.client.close();
}

#[wasm_bindgen_test]
async fn a_listener_that_sends_when_open_goes_after_the_room_join() {
    let _serial = serial().await;
    let room = uid("reentrant");
    let (alice, _) = Rig::with_ticket(&uid("alice")).await;
    alice.open().await;
    JsFuture::from(alice.client.join(room.clone())).await.unwrap();
    let token = dev_token(&uid("bob"), None).await;
    let opts =
        obj(&[("url", ws_url().into()), ("ticketUrl", format!("{FIXTURE}/ws/ticket").into()), ("token", token.into())]);
    let bob: JsValue = Client::new(opts).unwrap().into();
    // The listener runs while the client is still handling `open`: its send must follow the
    // re-join the client queued, or the server would answer not_member.
    let setup = Function::new_with_args(
        "c,room",
        "const errors = [];
         c.on('error', (e) => errors.push(e.code));
         c.join(room).catch((e) => errors.push('join ' + e.code));
         c.on('state', (s) => { if (s === 'open') c.send({ type: 'room_message', payload: { room, data: 'first words' } }); });
         c.connect();
         return errors;",
    );
    let errors: Array = setup.call2(&JsValue::NULL, &bob, &room.as_str().into()).unwrap().dyn_into().unwrap();
    wait_for("alice gets bob's first words", 5000, || !alice.of_type("room_message").is_empty()).await;
    assert_eq!(get(&get(&alice.of_type("room_message")[0], "payload"), "data"), "first words");
    assert_eq!(errors.length(), 0, "no error: {:?}", errors.to_vec());
    let close: Function = get(&bob, "close").dyn_into().unwrap();
    close.call0(&bob).unwrap();
    alice.client.close();
}

/// The Rust API for front ends compiled to wasm32: typed messages in and out, futures.
#[wasm_bindgen_test]
async fn the_rust_api_connects_joins_sends_and_decodes_typed_messages() {
    use resock::protocol::{ClientMessage, RoomSend, ServerMessage};
    use resock::web::{Client as RustClient, ClientOptions};
    let _serial = serial().await;
    let user = uid("rust");
    let mut options = ClientOptions::new(ws_url());
    options.ticket_url = Some(format!("{FIXTURE}/ws/ticket"));
    options.token = Some(dev_token(&user, None).await);
    let client = RustClient::new(options).expect("valid options");
    let got: Rc<RefCell<Vec<ServerMessage<serde_json::Value>>>> = Rc::default();
    let bad: Rc<RefCell<Vec<String>>> = Rc::default();
    let (g, b) = (got.clone(), bad.clone());
    let _sub = client.on_message(move |m| g.borrow_mut().push(m), move |_, e| b.borrow_mut().push(e));
    client.connect();
    wait_for("open", 5000, || client.state() == resock::core::State::Open).await;
    let room = uid("rustroom");
    let joined = client.join(&room).await.expect("joined");
    assert_eq!((joined.room.as_str(), joined.members), (room.as_str(), 1), "join gives the typed Joined");
    // Another client in the room sends; this one decodes a typed RoomMessage.
    let (other, _) = Rig::with_ticket(&uid("peer")).await;
    other.open().await;
    JsFuture::from(other.client.join(room.clone())).await.unwrap();
    client
        .send(&ClientMessage::RoomMessage(RoomSend { room: room.clone(), data: serde_json::json!({"n": 1}) }))
        .unwrap();
    wait_for("the peer gets the typed message", 3000, || !other.of_type("room_message").is_empty()).await;
    assert_eq!(get(&get(&get(&other.of_type("room_message")[0], "payload"), "data"), "n"), 1);
    let service = dev_token("svc", Some("service")).await;
    notify(&service, &user, "typed").await;
    wait_for("a typed notification", 3000, || !got.borrow().is_empty()).await;
    match &got.borrow()[0] {
        ServerMessage::NewNotification(n) => assert_eq!(n.title, "typed"),
        other => panic!("expected NewNotification, got {other:?}"),
    }
    assert!(bad.borrow().is_empty(), "{:?}", bad.borrow());
    let reply = client.request(&ClientMessage::<serde_json::Value>::Ping, Some(2000)).await.unwrap();
    assert_eq!(get(&reply, "type"), "pong");
    client.close();
    other.client.close();
}

#[wasm_bindgen_test]
async fn close_ends_every_event_and_timer() {
    let _serial = serial().await;
    let base = live_handles_js();
    let (rig, _) = Rig::with_ticket(&uid("close")).await;
    rig.open().await;
    assert!(live_handles_js() > base, "socket, timer and page listeners are live while open");
    rig.client.close();
    assert_eq!(rig.client.state(), "closed");
    sleep(50).await; // handles are freed after the current event handler returns
    assert_eq!(live_handles_js(), base, "everything freed");
    let events_at_close = rig.states.len() + rig.messages.len() + rig.errors.len() + rig.retries.len();
    sleep(1500).await;
    assert_eq!(rig.states.len() + rig.messages.len() + rig.errors.len() + rig.retries.len(), events_at_close);
    let refused = rig.client.send(obj(&[("type", "x".into())]), JsValue::UNDEFINED).unwrap();
    assert_eq!(refused, JsValue::FALSE, "a closed client refuses to send");
}

/// A client of `user` with the ticket URL and `extra` options.
async fn client_with(user: &str, extra: &[(&str, JsValue)]) -> Rig {
    let token = dev_token(user, None).await;
    let mut opts = vec![
        ("url", format!("{}/ws", FIXTURE.replacen("http://", "ws://", 1)).into()),
        ("ticketUrl", format!("{FIXTURE}/ws/ticket").into()),
        ("token", token.into()),
        ("reconnect", obj(&[("initialDelayMs", 50.into()), ("maxDelayMs", 500.into())])),
    ];
    opts.extend(extra.iter().cloned());
    Rig::new(obj(&opts))
}

fn role(rig: &Rig) -> String {
    rig.client.role().as_string().unwrap_or_default()
}

/// Two clients with one `share` key in one page stand for two tabs (a BroadcastChannel reaches
/// the other objects of its name in the same page; the Web Lock queues the second request).
#[wasm_bindgen_test]
async fn sharing_clients_hold_one_socket_hand_over_on_close_and_free_everything() {
    let _serial = serial().await;
    let base = live_handles_js();
    let user = uid("share");
    let a = client_with(&user, &[("share", user.clone().into())]).await;
    let b = client_with(&user, &[("share", user.clone().into())]).await;
    a.open().await;
    b.open().await;
    let mut roles = [role(&a), role(&b)];
    roles.sort();
    assert_eq!(roles, ["follower", "leader"]);
    let sockets = || async { get(&get(&get(&stats().await, "users"), &user), "open").as_f64() };
    assert_eq!(sockets().await, Some(1.0), "one socket for both");
    let (leader, follower) = if role(&a) == "leader" { (a, b) } else { (b, a) };
    leader.client.close();
    wait_for("the follower leads", 3000, || role(&follower) == "leader" && follower.client.state() == "open").await;
    follower.client.close();
    sleep(50).await;
    assert_eq!(live_handles_js(), base, "sockets, relays, channels, locks and timers freed");
}

/// The page's WebSocket fails with 1006 before it opens: the client goes over SSE; closed, it
/// leaves nothing behind (the stream's fetch is aborted).
#[wasm_bindgen_test]
async fn the_sse_fallback_connects_when_websocket_is_blocked_and_frees_everything() {
    let _serial = serial().await;
    let base = live_handles_js();
    Function::new_no_args(
        "globalThis.__realWebSocket = WebSocket;
         globalThis.WebSocket = class extends EventTarget {
           constructor(url) {
             super(); this.url = url; this.readyState = 0; this.binaryType = 'blob';
             setTimeout(() => { this.readyState = 3;
               this.onclose?.(new CloseEvent('close', { code: 1006, reason: '', wasClean: false })); }, 10);
           }
           send() { throw new DOMException('not open', 'InvalidStateError'); }
           close() { this.readyState = 3; }
         };",
    )
    .call0(&JsValue::NULL)
    .unwrap();
    let user = uid("sse");
    let rig = client_with(&user, &[("sseUrl", format!("{FIXTURE}/sse/notifications").into())]).await;
    rig.client.connect();
    wait_for("open over SSE", 5000, || rig.client.state() == "open").await;
    Function::new_no_args("globalThis.WebSocket = globalThis.__realWebSocket;").call0(&JsValue::NULL).unwrap();
    assert_eq!(rig.client.transport().as_string().as_deref(), Some("sse"));
    let service = dev_token("browser-backend", Some("service")).await;
    notify(&service, &user, "over SSE").await;
    wait_for("the notification over SSE", 3000, || !rig.of_type("new_notification").is_empty()).await;
    rig.client.close();
    sleep(50).await;
    assert_eq!(live_handles_js(), base, "the stream and its handlers freed");
}

#[wasm_bindgen_test]
async fn bad_options_throw_type_errors_that_name_the_option() {
    let _serial = serial().await;
    for (opts, words) in [
        (JsValue::UNDEFINED, "new Client needs an options object"),
        (obj(&[]), "option url must be set"),
        (obj(&[("url", "http://x".into())]), "url must be a ws:// or wss:// URL, got http://x"),
        (
            obj(&[("url", "ws://x".into()), ("ticketUrl", "ws://y".into())]),
            "ticketUrl must be a http:// or https:// URL, got ws://y",
        ),
        (obj(&[("url", "ws://x".into()), ("token", 5.into())]), "option token must be a string or function"),
        (
            obj(&[("url", "ws://x".into()), ("reconnect", obj(&[("initialDelayMs", (-1).into())]))]),
            "option reconnect.initialDelayMs must be a number >= 0",
        ),
    ] {
        let err = Client::new(opts).err().expect("throws");
        assert!(err.is_instance_of::<js_sys::TypeError>());
        let msg = get(&err, "message").as_string().unwrap();
        assert!(msg.contains(words), "{msg}");
    }
}

/// `on` and `request` refuse a non-string event or type with a `TypeError` of their own, and
/// `request` a payload JSON cannot hold (it used to send the frame without it).
#[wasm_bindgen_test]
fn on_and_request_refuse_a_non_string_with_a_type_error() {
    let client = Client::new(obj(&[("url", "ws://x".into())])).unwrap();
    let f: JsValue = Function::new_no_args("").into();
    let cycle = Object::new();
    js_sys::Reflect::set(&cycle, &"self".into(), &cycle).unwrap();
    for (err, text) in [
        (client.on(5.into(), f.clone()).err(), "resock: on(event, listener) needs a string event"),
        (client.on(JsValue::UNDEFINED, f).err(), "resock: on(event, listener) needs a string event"),
        (
            client.request(Object::new().into(), JsValue::UNDEFINED, JsValue::UNDEFINED).err(),
            "resock: request(type, payload) needs a string type",
        ),
        (
            client.request("echo".into(), cycle.into(), JsValue::UNDEFINED).err(),
            "resock: the message cannot be serialized to JSON",
        ),
    ] {
        let err = err.expect("throws");
        assert!(err.is_instance_of::<js_sys::TypeError>());
        assert_eq!(get(&err, "message").as_string().as_deref(), Some(text));
    }
    client.close();
}

/// Connects and closes a client from JavaScript, waiting for it to open.
fn cycle_fn() -> Function {
    Function::new_with_args(
        "c",
        "return new Promise((resolve, reject) => {
            const t = setTimeout(() => reject(new Error('not open in 5 s: ' + c.state)), 5000);
            const off = c.on('state', (s) => {
                if (s === 'open') { off(); clearTimeout(t); c.close(); c.free(); resolve(); }
            });
            c.connect();
        })",
    )
}

fn wasm_memory_bytes() -> f64 {
    let mem = wasm_bindgen::memory();
    get(&get(&mem, "buffer"), "byteLength").as_f64().unwrap()
}

#[wasm_bindgen_test]
async fn a_thousand_connect_close_cycles_leave_memory_and_listeners_flat() {
    let _serial = serial().await;
    let user = uid("cycles");
    let token = dev_token(&user, None).await;
    let opts = obj(&[("url", ws_url().into()), ("token", token.into())]);
    let cycle = cycle_fn();
    let run = |n: u32| {
        let cycle = cycle.clone();
        let opts = opts.clone();
        async move {
            for _ in 0..n {
                let c: JsValue = Client::new(opts.clone()).unwrap().into();
                JsFuture::from(cycle.call1(&JsValue::NULL, &c).unwrap().dyn_into::<Promise>().unwrap()).await.unwrap();
            }
            sleep(50).await;
        }
    };
    run(50).await; // warm up: allocator pools, JIT
    let (mem_before, live_before) = (wasm_memory_bytes(), live_handles_js());
    let started = js_sys::Date::now();
    run(1000).await;
    let (mem_after, live_after) = (wasm_memory_bytes(), live_handles_js());
    let secs = (js_sys::Date::now() - started) / 1000.0;
    web_sys::console::log_1(&JsValue::from_str(&format!(
        "1000 connect/close cycles in {secs:.1} s: wasm memory {mem_before} -> {mem_after} bytes, live handles {live_before} -> {live_after}"
    )));
    assert_eq!(live_after, live_before, "every socket, timer and listener freed");
    assert!(mem_after <= mem_before + 65_536.0, "wasm memory grew from {mem_before} to {mem_after}");
}
