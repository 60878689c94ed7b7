//! resock-abuse BIN: the robustness suite. Starts the fixture binary BIN on 127.0.0.1 and runs
//! each attack of issue 7 against it, bounded in time and count, while a well-behaved client (on
//! its own thread and runtime) measures its ping round trip and connects every 250 ms. Asserts,
//! per attack: the server's peak RSS growth under a stated bound per attacker, the good client's
//! p99 round trip under 50 ms and every connect of it successful, and (slowloris) every slow
//! socket closed within the header timeout. Prints one line per attack and exits 1 on a miss.

use std::time::Duration;

use futures_util::{stream, SinkExt, StreamExt};
use resock_bench::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

/// How long each attack runs.
const ATTACK: Duration = Duration::from_secs(3);
/// The good client's p99 round-trip bound.
const P99_MS: f64 = 50.0;
/// `--header-timeout-ms` and `--body-timeout-ms` for this suite.
const HEADER_TIMEOUT_MS: u64 = 1500;

struct Attack {
    name: &'static str,
    /// Attacking connections or sockets at once.
    attackers: usize,
    /// Peak RSS growth allowed per attacker, KiB.
    kib_per_attacker: u64,
}

#[tokio::main]
async fn main() {
    raise_open_files();
    let Some(bin) = std::env::args().nth(1) else {
        eprintln!("usage: resock-abuse FIXTURE_BINARY");
        std::process::exit(2);
    };
    let header = HEADER_TIMEOUT_MS.to_string();
    let fx = match Fixture::start(
        &bin,
        &["--header-timeout-ms", &header, "--body-timeout-ms", &header, "--max-connections-per-user", "4096"],
    )
    .await
    {
        Ok(fx) => fx,
        Err(e) => {
            eprintln!("resock-abuse: {e}");
            std::process::exit(1);
        }
    };
    let attacks: Vec<(Attack, AttackFn)> = vec![
        (Attack { name: "ws ping flood, never reading", attackers: 4, kib_per_attacker: 4096 }, |fx| {
            Box::pin(flood(fx, 4, || Message::Ping(vec![7u8; 125].into())))
        }),
        (Attack { name: "57 KB application pongs", attackers: 4, kib_per_attacker: 4096 }, |fx| {
            Box::pin(flood(fx, 4, || Message::text(json!({"type": "pong", "pad": "p".repeat(57_000)}).to_string())))
        }),
        (Attack { name: "frames past the rate limit", attackers: 4, kib_per_attacker: 4096 }, |fx| {
            Box::pin(flood(fx, 4, || Message::text(r#"{"type":"ping","id":"x"}"#)))
        }),
        (Attack { name: "1 MB messages (over the size limit)", attackers: 4, kib_per_attacker: 4096 }, |fx| {
            Box::pin(flood(fx, 4, || Message::text("x".repeat(1 << 20))))
        }),
        (
            Attack { name: "slowloris: 800 slow heads, upgrades and bodies", attackers: 800, kib_per_attacker: 40 },
            |fx| Box::pin(slowloris(fx, 800)),
        ),
        (Attack { name: "ticket flood from one user", attackers: 8, kib_per_attacker: 1024 }, |fx| {
            Box::pin(ticket_flood(fx, 8))
        }),
        (Attack { name: "SSE streams from one token", attackers: 200, kib_per_attacker: 40 }, |fx| {
            Box::pin(sse_flood(fx, 200))
        }),
        (Attack { name: "64 KB junk bodies", attackers: 8, kib_per_attacker: 1024 }, |fx| Box::pin(junk_bodies(fx, 8))),
    ];
    let mut failed = 0;
    for (attack, run) in attacks {
        match run_one(&fx, &attack, run).await {
            Ok(line) => println!("ok    {:<46} {line}", attack.name),
            Err(why) => {
                failed += 1;
                println!("FAIL  {:<46} {why}", attack.name);
            }
        }
    }
    fx.stop().await;
    let total = 8;
    println!("{} passed, {failed} failed", total - failed);
    std::process::exit(i32::from(failed > 0));
}

type AttackFn =
    for<'a> fn(&'a Fixture) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + 'a>>;

/// Runs one attack next to the good client and checks the bounds.
async fn run_one(fx: &Fixture, attack: &Attack, run: AttackFn) -> Result<String, String> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = fx.rss_kib();
    // The good client on its own thread and runtime, so the attackers' tasks cannot delay it.
    let addr = fx.addr.clone();
    let pid = fx.pid;
    let good = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        let fx = Fixture::borrowed(addr, pid);
        Some(rt.block_on(good_client(&fx, ATTACK + Duration::from_millis(500))))
    });
    // Peak RSS, sampled every 20 ms while the attack runs.
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        let end = Instant::now() + ATTACK + Duration::from_secs(2);
        while Instant::now() < end {
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    });
    let detail = run(fx).await?;
    let good = good.join().ok().flatten().ok_or("the good client could not run")?;
    let peak = sampler.await.unwrap_or(0);
    let grown = peak.saturating_sub(base);
    let bound = attack.kib_per_attacker * attack.attackers as u64;
    let line = format!(
        "rss +{grown} KiB (bound {bound}); good client p99 {:.1} ms, max {:.1} ms over {} pings, {} connects ok; {detail}",
        good.p99_ms(),
        good.max_ms(),
        good.rtts_ms.len(),
        good.connects_ok
    );
    if grown > bound {
        return Err(format!("RSS grew {grown} KiB, over {bound}: {line}"));
    }
    if !good.connects_failed.is_empty() || good.connects_ok == 0 {
        return Err(format!("good client failures {:?}: {line}", good.connects_failed));
    }
    if good.rtts_ms.len() < 10 || good.p99_ms() > P99_MS {
        return Err(format!("good client p99 over {P99_MS} ms: {line}"));
    }
    Ok(line)
}

/// `n` attackers, each connecting, then sending `frame()` without reading until the server
/// closes it, and connecting again, for [`ATTACK`]. Returns what closed them.
async fn flood(fx: &Fixture, n: usize, frame: fn() -> Message) -> Result<String, String> {
    let end = Instant::now() + ATTACK;
    let results: Vec<(usize, usize)> = stream::iter(0..n)
        .map(|i| async move {
            let tok = token(&format!("attacker{i}"), false);
            let (mut rounds, mut frames) = (0, 0);
            while Instant::now() < end && rounds < 1000 {
                let Ok(ws) = connect_token(fx, &tok).await else { break };
                rounds += 1;
                let (mut sink, _unread) = ws.split();
                let mut sent = 0;
                while Instant::now() < end && sent < 100_000 {
                    match timeout(Duration::from_millis(500), sink.send(frame())).await {
                        Ok(Ok(())) => sent += 1,
                        _ => break, // closed by the server, or its socket stopped taking bytes
                    }
                }
                frames += sent;
            }
            (rounds, frames)
        })
        .buffer_unordered(n)
        .collect()
        .await;
    let rounds: usize = results.iter().map(|r| r.0).sum();
    let frames: usize = results.iter().map(|r| r.1).sum();
    if rounds < n {
        return Err(format!("attackers could not connect ({rounds} connections)"));
    }
    Ok(format!("{rounds} attacking connections closed by the server, {frames} frames sent"))
}

/// Slow sockets of four kinds; each must be closed by the server within the header (or body)
/// timeout plus one second.
async fn slowloris(fx: &Fixture, n: usize) -> Result<String, String> {
    let service = token("svc", true);
    // Each kind: the bytes sent at once, and the bytes dripped every 300 ms after that.
    type Kind = fn(&str) -> (Vec<u8>, Vec<u8>);
    let kinds: [Kind; 4] = [
        // Half a request line.
        |_| (b"GET /api/notificati".to_vec(), Vec::new()),
        // A request line, then one header line per 300 ms, never the blank line.
        |_| (b"GET /ws HTTP/1.1\r\n".to_vec(), b"X-Slow: 1\r\n".to_vec()),
        // An upgrade request missing its final blank line.
        |_| {
            (
                b"GET /ws?token=x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                  Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    .to_vec(),
                Vec::new(),
            )
        },
        // A body at one byte per 300 ms.
        |svc| {
            (
                format!(
                    "POST /api/broadcast HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {svc}\r\n\
                     Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
                )
                .into_bytes(),
                b" ".to_vec(),
            )
        },
    ];
    let limit = Duration::from_millis(HEADER_TIMEOUT_MS + 1000);
    let addr = fx.addr.clone();
    let results: Vec<Result<Duration, String>> = stream::iter(0..n)
        .map(|i| {
            let (first, drip) = kinds[i % 4](&service);
            let addr = addr.clone();
            async move {
                let mut tcp = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
                tcp.write_all(&first).await.map_err(|e| e.to_string())?;
                let started = Instant::now();
                let mut buf = [0u8; 512];
                loop {
                    if started.elapsed() > limit + Duration::from_secs(2) {
                        return Err(format!("kind {} still open after {:?}", i % 4, started.elapsed()));
                    }
                    match timeout(Duration::from_millis(300), tcp.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => return Ok(started.elapsed()),
                        Ok(Ok(_)) => {} // a 408 answer before the close
                        Err(_) => {
                            if !drip.is_empty() && tcp.write_all(&drip).await.is_err() {
                                return Ok(started.elapsed());
                            }
                        }
                    }
                }
            }
        })
        .buffer_unordered(n)
        .collect()
        .await;
    let mut worst = Duration::ZERO;
    for r in results {
        let t = r?;
        worst = worst.max(t);
    }
    if worst > limit {
        return Err(format!("a slow socket was closed only after {worst:?} (limit {limit:?})"));
    }
    Ok(format!(
        "{n} slow sockets all closed, the last after {:.2} s (timeout {HEADER_TIMEOUT_MS} ms)",
        worst.as_secs_f64()
    ))
}

/// `n` concurrent ticket requests from one user for [`ATTACK`].
async fn ticket_flood(fx: &Fixture, n: usize) -> Result<String, String> {
    let http = reqwest::Client::new();
    let tok = token("hoarder", false);
    let end = Instant::now() + ATTACK;
    let counts: Vec<(u64, u64)> = stream::iter(0..n)
        .map(|_| {
            let (http, tok) = (http.clone(), tok.clone());
            let url = fx.http("/ws/ticket");
            async move {
                let (mut ok, mut refused) = (0, 0);
                while Instant::now() < end && ok + refused < 200_000 {
                    match http.post(&url).bearer_auth(&tok).send().await {
                        Ok(r) if r.status() == 200 => ok += 1,
                        Ok(r) if r.status() == 429 => refused += 1,
                        _ => break,
                    }
                }
                (ok, refused)
            }
        })
        .buffer_unordered(n)
        .collect()
        .await;
    let ok: u64 = counts.iter().map(|c| c.0).sum();
    let refused: u64 = counts.iter().map(|c| c.1).sum();
    if ok > 64 {
        return Err(format!("{ok} tickets issued to one user (cap 64)"));
    }
    Ok(format!("{ok} tickets issued, {refused} refused 429"))
}

/// `n` SSE streams opened with one token, held open.
async fn sse_flood(fx: &Fixture, n: usize) -> Result<String, String> {
    let http = reqwest::Client::new();
    let tok = token("streamer", false);
    let mut held = Vec::new();
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..n {
        match http.get(fx.http(&format!("/sse/notifications?token={tok}"))).send().await {
            Ok(r) if r.status() == 200 => {
                ok += 1;
                held.push(r);
            }
            Ok(r) if r.status() == 429 => refused += 1,
            other => return Err(format!("unexpected answer {other:?}")),
        }
    }
    tokio::time::sleep(ATTACK).await;
    if ok > 8 {
        return Err(format!("{ok} SSE streams for one user (cap 8)"));
    }
    Ok(format!("{ok} streams opened, {refused} refused 429"))
}

/// `n` workers posting 64 KB bodies that do not parse; the answers must stay small.
async fn junk_bodies(fx: &Fixture, n: usize) -> Result<String, String> {
    let http = reqwest::Client::new();
    let svc = token("svc", true);
    let body = format!("{{\"user_id\": {}}}", "9".repeat(64 * 1024));
    let end = Instant::now() + ATTACK;
    let results: Vec<(u64, u64, usize)> = stream::iter(0..n)
        .map(|_| {
            let (http, svc, body) = (http.clone(), svc.clone(), body.clone());
            let url = fx.http("/api/notifications");
            async move {
                let (mut sent, mut answered, mut biggest) = (0, 0u64, 0usize);
                while Instant::now() < end && sent < 100_000 {
                    sent += 1;
                    let Ok(r) = http.post(&url).bearer_auth(&svc).body(body.clone()).send().await else { break };
                    let text = r.text().await.unwrap_or_default();
                    answered += text.len() as u64;
                    biggest = biggest.max(text.len());
                }
                (sent, answered, biggest)
            }
        })
        .buffer_unordered(n)
        .collect()
        .await;
    let sent: u64 = results.iter().map(|r| r.0).sum();
    let biggest = results.iter().map(|r| r.2).max().unwrap_or(0);
    if biggest > 1024 {
        return Err(format!("a 64 KB request got a {biggest} B answer"));
    }
    Ok(format!("{sent} requests of 64 KB, the largest answer {biggest} B"))
}
