//! Shared pieces of the load and abuse tools: the fixture as a child process on 127.0.0.1, its
//! RSS, dev tokens signed here, WebSocket clients, and a well-behaved client that measures its
//! ping round trip and its connects while an attack runs.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The secret of `resock-fixture --dev` (config.rs `DEV_JWT_SECRET`).
pub const DEV_SECRET: &str = "resock-dev-secret-do-not-use-in-production";

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A fixture process, killed when dropped (or, from [`Fixture::borrowed`], one started elsewhere).
pub struct Fixture {
    pub child: Option<Child>,
    pub addr: String,
    pub pid: u32,
}

impl Fixture {
    /// Starts `bin --addr 127.0.0.1:0 --dev <args>` and waits for its `listening on` line.
    pub async fn start(bin: &str, args: &[&str]) -> Result<Fixture, String> {
        let mut child = Command::new(bin)
            .args(["--addr", "127.0.0.1:0", "--dev"])
            .args(args)
            .env("RESOCK_LOG", "quiet")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {bin}: {e}"))?;
        let pid = child.id().ok_or("no pid")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(Duration::from_secs(20), lines.next_line())
            .await
            .map_err(|_| format!("{bin} did not start within 20 s"))?
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{bin} exited before listening"))?;
        let addr =
            line.trim().strip_prefix("listening on http://").ok_or(format!("unexpected line {line:?}"))?.to_owned();
        Ok(Fixture { child: Some(child), addr, pid })
    }

    /// The same fixture seen from another thread: not killed when dropped.
    pub fn borrowed(addr: String, pid: u32) -> Fixture {
        Fixture { child: None, addr, pid }
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Resident set size in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid)
    }

    /// Sends SIGKILL and waits.
    pub async fn stop(mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill().await;
        }
    }
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// An HS256 dev token for `user` (role `service` when `service`), valid one hour.
pub fn token(user: &str, service: bool) -> String {
    let exp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + 3600;
    let mut claims = json!({ "sub": user, "exp": exp });
    if service {
        claims["role"] = json!("service");
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(DEV_SECRET.as_bytes()),
    )
    .unwrap_or_default()
}

/// Connects with a token in the query and reads the `welcome`.
pub async fn connect_token(fx: &Fixture, token: &str) -> Result<Ws, String> {
    open(fx.ws(&format!("/ws?token={token}"))).await
}

/// Connects to `url` and reads the `welcome` (10 s for each).
async fn open(url: String) -> Result<Ws, String> {
    let (mut ws, _) = timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    expect_type(&mut ws, "welcome", Duration::from_secs(10)).await?;
    Ok(ws)
}

/// Fetches a ticket over HTTP, connects with it and reads the `welcome`.
pub async fn connect_ticket(http: &reqwest::Client, fx: &Fixture, token: &str) -> Result<Ws, String> {
    let res = http.post(fx.http("/ws/ticket")).bearer_auth(token).send().await.map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("ticket: HTTP {}", res.status()));
    }
    let v: Value = res.json().await.map_err(|e| e.to_string())?;
    let ticket = v["ticket"].as_str().ok_or("no ticket")?;
    open(fx.ws(&format!("/ws?ticket={ticket}"))).await
}

/// Reads until a text frame of `kind` (answering pings), within `within`.
pub async fn expect_type(ws: &mut Ws, kind: &str, within: Duration) -> Result<Value, String> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, ws.next()).await {
            Err(_) => return Err(format!("no {kind} within {within:?}")),
            Ok(None) | Ok(Some(Err(_))) => return Err(format!("closed before {kind}")),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
                if v["type"] == kind {
                    return Ok(v);
                }
                if v["type"] == "ping" {
                    let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                }
            }
            Ok(Some(Ok(Message::Close(f)))) => return Err(format!("closed {f:?} before {kind}")),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Raises this process's open-file limit to its hard limit (the tools hold many sockets).
pub fn raise_open_files() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// What the well-behaved client saw during an attack.
#[derive(Debug, Default, Clone)]
pub struct GoodClient {
    pub rtts_ms: Vec<f64>,
    pub connects_ok: usize,
    pub connects_failed: Vec<String>,
}

impl GoodClient {
    pub fn p99_ms(&self) -> f64 {
        percentile(&self.rtts_ms, 0.99)
    }
    pub fn max_ms(&self) -> f64 {
        self.rtts_ms.iter().copied().fold(0.0, f64::max)
    }
}

pub fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Runs a well-behaved client for `dur`: an application ping every 50 ms on one connection
/// (round trip measured; pings in a 10/s window: 8 per second, under the limit), and a fresh
/// ticket + connect + welcome + close every 250 ms.
pub async fn good_client(fx: &Fixture, dur: Duration) -> GoodClient {
    let http = reqwest::Client::new();
    let mut out = GoodClient::default();
    let tok = token("good", false);
    let mut ws = match connect_ticket(&http, fx, &tok).await {
        Ok(ws) => ws,
        Err(e) => {
            out.connects_failed.push(e);
            return out;
        }
    };
    let end = Instant::now() + dur;
    let mut next_connect = Instant::now();
    let mut n = 0u64;
    while Instant::now() < end {
        n += 1;
        let id = n.to_string();
        let sent = Instant::now();
        if ws.send(Message::text(json!({"type": "ping", "id": id}).to_string())).await.is_err() {
            out.connects_failed.push("the measuring connection was lost".into());
            return out;
        }
        loop {
            match timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or_default();
                    if v["type"] == "pong" && v["id"] == id.as_str() {
                        out.rtts_ms.push(sent.elapsed().as_secs_f64() * 1e3);
                        break;
                    }
                    if v["type"] == "ping" {
                        let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                    }
                }
                Ok(Some(Ok(_))) => {}
                other => {
                    out.connects_failed.push(format!("the measuring connection failed: {other:?}"));
                    return out;
                }
            }
        }
        if Instant::now() >= next_connect {
            next_connect = Instant::now() + Duration::from_millis(250);
            match connect_ticket(&http, fx, &tok).await {
                Ok(mut c) => {
                    out.connects_ok += 1;
                    let _ = c.close(None).await;
                }
                Err(e) => out.connects_failed.push(e),
            }
        }
        tokio::time::sleep(Duration::from_millis(125)).await;
    }
    let _ = ws.close(None).await;
    out
}

/// A `redis-server` on a free 127.0.0.1 port, persistence off; killed by its PID when dropped.
pub struct Redis {
    child: std::process::Child,
    pub port: u16,
}

impl Redis {
    pub async fn start() -> Result<Redis, String> {
        let port = free_port()?;
        let args = ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        let child = spawn_quiet("redis-server", &args, "scripts/setup.sh installs it")?;
        let redis = Redis { child, port };
        wait_listening(port, "redis-server").await?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx with `deploy/nginx.conf` (its placeholders filled in) in front of `upstreams`, on a free
/// 127.0.0.1 port, its files in a temporary folder. Stopped by its master's PID when dropped
/// (SIGTERM: the master stops its workers).
pub struct Nginx {
    child: std::process::Child,
    dir: std::path::PathBuf,
    pub addr: String,
}

impl Nginx {
    pub async fn start(upstreams: &[String]) -> Result<Nginx, String> {
        let template_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nginx.conf");
        let template = std::fs::read_to_string(template_path).map_err(|e| format!("{template_path}: {e}"))?;
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("resock-bench-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let lines: Vec<String> = upstreams.iter().map(|u| format!("server {u} max_fails=1 fail_timeout=2s;")).collect();
        let conf = template
            .replace("@DIR@", &dir.to_string_lossy())
            .replace("@PORT@", &port.to_string())
            .replace("@UPSTREAMS@", &lines.join("\n        "));
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let child = std::process::Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start nginx (scripts/setup.sh installs it): {e}"))?;
        let nginx = Nginx { child, dir, addr: format!("127.0.0.1:{port}") };
        wait_listening(port, "nginx").await?;
        Ok(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `bin args` with its output discarded (a server the tools wait on by its port).
fn spawn_quiet(bin: &str, args: &[&str], install_hint: &str) -> Result<std::process::Child, String> {
    std::process::Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {bin} ({install_hint}): {e}"))
}

/// A free TCP port on 127.0.0.1 (bound, then released for the caller to bind at once).
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Waits (at most 10 s) until something accepts connections on 127.0.0.1:`port`.
async fn wait_listening(port: u16, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not listen on {port} within 10 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// CPU time (user + system) of a process and all its descendants still alive, in seconds
/// (`/proc/PID/stat`; 0 for a PID that is gone).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = |pid: u32| -> Option<(u32, u64)> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command's closing parenthesis: state ppid ... utime(14) stime(15).
        let rest: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
        let ppid = rest.get(1)?.parse().ok()?;
        let ticks = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
        Some((ppid, ticks))
    };
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut ticks = stat(pid).map(|s| s.1).unwrap_or(0);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                if let Some((ppid, t)) = stat(child) {
                    if ppid == pid {
                        ticks += t;
                    }
                }
            }
        }
    }
    ticks as f64 / hz
}

impl Redis {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A Kafka-protocol broker (`tansu`, in-memory storage) on a free 127.0.0.1 port; killed by its
/// PID when dropped.
pub struct Broker {
    child: std::process::Child,
    pub addr: String,
}

impl Broker {
    pub async fn start() -> Result<Broker, String> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let home = std::env::var("HOME").unwrap_or_default();
        let installed = format!("{home}/.cargo/bin/tansu");
        let bin = if std::path::Path::new(&installed).exists() { installed.as_str() } else { "tansu" };
        let args = [
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ];
        let child = spawn_quiet(bin, &args, "scripts/setup.sh kafka installs it")?;
        let broker = Broker { child, addr };
        wait_listening(port, "tansu").await?;
        Ok(broker)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
