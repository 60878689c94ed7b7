//! Test helpers: the real fixture on 127.0.0.1:0, a real HTTP client (reqwest) and a real
//! WebSocket client (tokio-tungstenite). Every wait is bounded.
#![allow(dead_code)]

use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use resock_fixture::{start, Config, Running};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct Fx {
    pub server: Running,
    pub http: reqwest::Client,
}

impl Fx {
    /// Starts the fixture with `--addr 127.0.0.1:0 --dev` and `extra` flags.
    pub async fn start(extra: &[&str]) -> Fx {
        resock_fixture::log::quiet();
        let mut args = vec!["resock-fixture", "--addr", "127.0.0.1:0", "--dev"];
        args.extend_from_slice(extra);
        let cfg = Config::try_parse_from(args).expect("valid flags");
        let server = start(cfg).await.expect("fixture starts");
        Fx { server, http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.http_url(), path)
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.server.ws_url(), path_and_query)
    }

    pub async fn token(&self, user: &str) -> String {
        self.token_with(json!({ "user_id": user })).await
    }

    pub async fn service_token(&self) -> String {
        self.token_with(json!({ "user_id": "backend", "role": "service" })).await
    }

    async fn token_with(&self, body: Value) -> String {
        let v: Value = self.http.post(self.url("/dev/token")).json(&body).send().await.unwrap().json().await.unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    pub async fn ticket_for_token(&self, token: &str) -> reqwest::Response {
        self.http.post(self.url("/ws/ticket")).bearer_auth(token).send().await.unwrap()
    }

    pub async fn ticket(&self, user: &str) -> String {
        let token = self.token(user).await;
        let v: Value = self.ticket_for_token(&token).await.json().await.unwrap();
        v["ticket"].as_str().unwrap().to_owned()
    }

    /// Connects `user` with a fresh ticket and reads its `welcome`.
    pub async fn connect(&self, user: &str) -> (Ws, Value) {
        let ticket = self.ticket(user).await;
        let mut ws = Ws::connect(&self.ws_url(&format!("/ws?ticket={ticket}"))).await.expect("upgrade");
        let welcome = ws.expect_type("welcome").await;
        (ws, welcome)
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub async fn notify(&self, service: &str, user: &str, title: &str) -> Value {
        let res = self
            .post_json("/api/notifications", Some(service), json!({"user_id": user, "title": title, "body": "b"}))
            .await;
        assert_eq!(res.status(), 201);
        res.json().await.unwrap()
    }

    pub async fn stats(&self) -> Value {
        self.http.get(self.url("/dev/stats")).send().await.unwrap().json().await.unwrap()
    }

    /// Waits (bounded) until `pred` holds for `/dev/stats`.
    pub async fn wait_stats(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.stats().await;
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; stats: {s}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What a client saw next.
#[derive(Debug, PartialEq)]
pub enum Seen {
    Json(Value),
    Close(u16, String),
    /// The stream ended or failed without a close frame.
    Dropped,
    Timeout,
}

pub struct Ws {
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn connect(url: &str) -> Result<Ws, tungstenite::Error> {
        Self::connect_with(url, &[]).await
    }

    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Result<Ws, tungstenite::Error> {
        let mut req = url.into_client_request()?;
        for (k, v) in headers {
            req.headers_mut()
                .insert(tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let (inner, _) = timeout(WAIT, tokio_tungstenite::connect_async(req)).await.expect("connect in time")?;
        Ok(Ws { inner })
    }

    pub async fn send(&mut self, v: Value) {
        self.inner.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.inner.send(m).await.unwrap();
    }

    /// The next frame, within `within`. Pings are returned like any message.
    pub async fn next_within(&mut self, within: Duration) -> Seen {
        loop {
            match timeout(within, self.inner.next()).await {
                Err(_) => return Seen::Timeout,
                Ok(None) => return Seen::Dropped,
                Ok(Some(Err(_))) => return Seen::Dropped,
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Seen::Json(serde_json::from_str(&t).expect("server sends JSON"))
                }
                Ok(Some(Ok(Message::Close(Some(f))))) => return Seen::Close(u16::from(f.code), f.reason.to_string()),
                Ok(Some(Ok(Message::Close(None)))) => return Seen::Close(1005, String::new()),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn next(&mut self) -> Seen {
        self.next_within(WAIT).await
    }

    /// The next message that is not a ping (pings are answered), within [`WAIT`].
    pub async fn next_app(&mut self) -> Seen {
        loop {
            match self.next().await {
                Seen::Json(v) if v["type"] == "ping" => self.send(json!({"type": "pong", "payload": {}})).await,
                other => return other,
            }
        }
    }

    /// The next message of type `kind`, answering pings and failing on anything else.
    pub async fn expect_type(&mut self, kind: &str) -> Value {
        match self.next_app().await {
            Seen::Json(v) if v["type"] == kind => v,
            other => panic!("expected a {kind:?} message, saw {other:?}"),
        }
    }

    /// The next message that is not a ping, whatever its type.
    pub async fn expect_any(&mut self) -> Value {
        match self.next_app().await {
            Seen::Json(v) => v,
            other => panic!("expected a message, saw {other:?}"),
        }
    }

    /// Waits for the server's close frame and returns its code and reason, skipping messages.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.next().await {
                Seen::Json(_) => continue,
                Seen::Close(code, reason) => return (code, reason),
                other => panic!("expected a close frame, saw {other:?}"),
            }
        }
    }

    /// Asserts nothing but pings arrives for `within`.
    pub async fn expect_quiet(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_within(left).await {
                Seen::Timeout => return,
                Seen::Json(v) if v["type"] == "ping" => self.send(json!({"type": "pong"})).await,
                other => panic!("expected quiet, saw {other:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .inner
            .close(Some(tungstenite::protocol::CloseFrame { code: CloseCode::Normal, reason: "".into() }))
            .await;
    }
}

/// Signs a JWT with any header and claims (for the bad-token tests).
pub fn sign(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A token with `alg: none` and no signature.
pub fn alg_none(user: &str) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&format!(r#"{{"sub":"{user}","exp":{}}}"#, now_s() + 600))
    )
}

/// An SSE event's `id`, `event` and `data` lines.
type SseEvent = (String, String, String);

/// Takes the first whole SSE block (ended by a blank line) off `buf`: its `(id, event, data)`
/// when it names an event, and how many comment lines it had.
fn next_sse_block(buf: &mut String) -> Option<(Option<SseEvent>, usize)> {
    let end = buf.find("\n\n")?;
    let block: String = buf.drain(..end + 2).collect();
    let (mut id, mut event, mut data, mut comments) = (String::new(), String::new(), String::new(), 0);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data = v.trim().to_owned();
        } else if line.starts_with(':') {
            comments += 1;
        }
    }
    Some(((!event.is_empty()).then_some((id, event, data)), comments))
}

/// Reads SSE events (blocks separated by a blank line) until `n` events or a deadline.
pub async fn sse_events(res: &mut reqwest::Response, n: usize) -> (Vec<SseEvent>, usize) {
    let mut buf = String::new();
    let mut events = Vec::new();
    let mut comments = 0;
    let deadline = Instant::now() + WAIT;
    while events.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk =
            tokio::time::timeout(left, res.chunk()).await.expect("events in time").unwrap().expect("stream open");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some((block, c)) = next_sse_block(&mut buf) {
            comments += c;
            events.extend(block);
        }
    }
    (events, comments)
}

/// A `redis-server` on 127.0.0.1, killed when dropped.
pub struct Redis {
    child: std::process::Child,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Redis::on(port)
    }

    pub fn on(port: u16) -> Redis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; scripts/setup.sh installs it)");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Redis { child, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out =
            std::process::Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The seqs replayed after a `resume`, then the `resumed` message.
pub async fn seqs_until_resumed(ws: &mut Ws) -> (Vec<u64>, Value) {
    let mut seqs = Vec::new();
    loop {
        match ws.next_app().await {
            Seen::Json(v) if v["type"] == "resumed" => return (seqs, v),
            Seen::Json(v) => seqs.push(v["seq"].as_u64().expect("stream messages carry seq")),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A `/dev/token` for `user` from the fixture at `url` (a child process, not an [`Fx`]).
pub async fn dev_token(http: &reqwest::Client, url: &str, user: &str) -> String {
    let v: Value = http
        .post(format!("{url}/dev/token"))
        .json(&json!({"user_id": user}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// One SSE event: its `id:` (empty when none), `event:` and `data:` (parsed as JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    pub id: String,
    pub event: String,
    pub data: Value,
}

impl Ev {
    /// The event's id as a seq (user-stream events carry one).
    pub fn seq(&self) -> u64 {
        self.id.parse().unwrap_or_else(|_| panic!("a seq in {self:?}"))
    }
}

/// What an SSE client saw next.
#[derive(Debug, PartialEq)]
pub enum SseSeen {
    Event(Ev),
    /// The response body ended (or failed).
    Ended,
    Timeout,
}

/// An SSE client over a reqwest response: events parsed as they arrive, the rest of a chunk
/// kept for the next call.
pub struct Sse {
    pub res: reqwest::Response,
    buf: String,
    queue: std::collections::VecDeque<Ev>,
    /// Comment lines seen (keep-alives of the plain stream).
    pub comments: usize,
    ended: bool,
}

impl Sse {
    pub fn new(res: reqwest::Response) -> Sse {
        assert_eq!(res.status(), 200, "an event stream");
        Sse { res, buf: String::new(), queue: Default::default(), comments: 0, ended: false }
    }

    /// `GET /sse/notifications?{query}`, with `Last-Event-ID` when given.
    pub async fn open(fx: &Fx, query: &str, last_event_id: Option<u64>) -> reqwest::Response {
        let mut req = fx.http.get(fx.url(&format!("/sse/notifications?{query}")));
        if let Some(last) = last_event_id {
            req = req.header("last-event-id", last.to_string());
        }
        timeout(WAIT, req.send()).await.expect("answered in time").unwrap()
    }

    /// Opens an SSE session of `user` (a token in the query), resuming from `resume` = (epoch,
    /// last seen seq) when given, and reads its welcome.
    pub async fn session(fx: &Fx, user: &str, resume: Option<(&str, u64)>) -> (Sse, Value) {
        let token = fx.token(user).await;
        let (epoch, last) = resume.map_or(("", None), |(e, n)| (e, Some(n)));
        let mut sse = Sse::new(Sse::open(fx, &format!("token={token}&epoch={epoch}"), last).await);
        let welcome = sse.expect("welcome").await;
        (sse, welcome.data)
    }

    /// The next event (pings included), within `within`.
    pub async fn next_within(&mut self, within: Duration) -> SseSeen {
        let deadline = Instant::now() + within;
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return SseSeen::Event(ev);
            }
            if self.ended {
                return SseSeen::Ended;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.res.chunk()).await {
                Err(_) => return SseSeen::Timeout,
                Ok(Ok(Some(chunk))) => self.buf.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(_) => self.ended = true,
            }
            while let Some((block, c)) = next_sse_block(&mut self.buf) {
                self.comments += c;
                if let Some((id, event, data)) = block {
                    let data = serde_json::from_str(&data).unwrap_or_else(|e| panic!("JSON data {data:?}: {e}"));
                    self.queue.push_back(Ev { id, event, data });
                }
            }
        }
    }

    /// The next event that is not a `ping`, within [`WAIT`] in all.
    pub async fn next_app(&mut self) -> SseSeen {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.next_within(deadline.saturating_duration_since(Instant::now())).await {
                SseSeen::Event(ev) if ev.event == "ping" => continue,
                other => return other,
            }
        }
    }

    /// The next event but pings, which must be a `kind`.
    pub async fn expect(&mut self, kind: &str) -> Ev {
        match self.next_app().await {
            SseSeen::Event(ev) if ev.event == kind => ev,
            other => panic!("expected a {kind:?} event, saw {other:?}"),
        }
    }

    /// Asserts that nothing but pings arrives for `within`.
    pub async fn expect_quiet(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left).await {
                SseSeen::Timeout => return,
                SseSeen::Event(ev) if ev.event == "ping" => {}
                other => panic!("expected quiet, saw {other:?}"),
            }
        }
    }

    /// Reads until the stream ends (within [`WAIT`]); returns the events but pings.
    pub async fn until_end(&mut self) -> Vec<Ev> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            match self.next_within(deadline.saturating_duration_since(Instant::now())).await {
                SseSeen::Event(ev) if ev.event == "ping" => {}
                SseSeen::Event(ev) => seen.push(ev),
                SseSeen::Ended => return seen,
                SseSeen::Timeout => panic!("the stream did not end; saw {seen:?}"),
            }
        }
    }
}

/// `POST /sse/send?session={session}` with `body`: the status and the answer's JSON (`Null`
/// for an empty body).
pub async fn post_frame(fx: &Fx, session: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let req = fx.http.post(fx.url(&format!("/sse/send?session={session}"))).body(body);
    let res = timeout(WAIT, req.send()).await.expect("answered in time").unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
    (status, v)
}
