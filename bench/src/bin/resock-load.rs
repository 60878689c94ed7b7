//! resock-load: memory and throughput figures of a resock-fixture binary, on 127.0.0.1.
//!
//!   resock-load BIN idle N        RSS per idle authenticated connection at N connections
//!   resock-load BIN fanout R M    M broadcasts to R receivers: deliveries per second, p99 latency
//!   resock-load BIN churn SECS    ticket + connect + welcome + close cycles per second
//!
//! Each run starts its own fixture (killed at the end) and prints one line of figures,
//! prefixed with `RESULT`, for scripts/bench.sh to collect. Every loop is bounded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, SinkExt, StreamExt};
use resock_bench::*;
use serde_json::{json, Value};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    raise_open_files();
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: resock-load BIN (idle N | fanout RECEIVERS MESSAGES | churn SECONDS)";
    let (Some(bin), Some(cmd)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let num = |i: usize, default: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let res = match cmd.as_str() {
        "idle" => idle(bin, num(3, 1000) as usize).await,
        "fanout" => fanout(bin, num(3, 1000) as usize, num(4, 200) as usize).await,
        "churn" => churn(bin, num(3, 3)).await,
        _ => Err(usage.to_owned()),
    };
    if let Err(e) = res {
        eprintln!("resock-load: {e}");
        std::process::exit(1);
    }
}

const CAPS: &[&str] = &["--max-connections", "20000", "--max-connections-per-user", "20000"];

async fn idle(bin: &str, n: usize) -> Result<(), String> {
    let fx = Fixture::start(bin, CAPS).await?;
    // Warm up: one connection and close, so that lazily built state is not charged to the N.
    let tok = token("idle", false);
    drop(connect_token(&fx, &tok).await?);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = fx.rss_kib();
    let started = Instant::now();
    let conns: Vec<Result<Ws, String>> =
        stream::iter(0..n).map(|_| connect_token(&fx, &tok)).buffer_unordered(64).collect().await;
    let failed = conns.iter().filter(|c| c.is_err()).count();
    if failed > 0 {
        let first = conns.iter().find_map(|c| c.as_ref().err()).cloned().unwrap_or_default();
        return Err(format!("{failed} of {n} connects failed, first: {first}"));
    }
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = fx.rss_kib();
    let per_conn = (during.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    drop(conns);
    tokio::time::sleep(Duration::from_secs(7)).await;
    let after = fx.rss_kib();
    println!(
        "RESULT idle n={n} rss_before_kib={before} rss_open_kib={during} per_conn_bytes={per_conn:.0} \
         rss_after_close_kib={after} opened_in_s={:.2}",
        opened_in.as_secs_f64()
    );
    fx.stop().await;
    Ok(())
}

async fn fanout(bin: &str, receivers: usize, messages: usize) -> Result<(), String> {
    let fx = Fixture::start(bin, CAPS).await?;
    let tok = token("receiver", false);
    let conns: Vec<Result<Ws, String>> =
        stream::iter(0..receivers).map(|_| connect_token(&fx, &tok)).buffer_unordered(64).collect().await;
    let conns: Vec<Ws> = conns.into_iter().collect::<Result<_, _>>()?;
    let delivered = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(receivers * messages)));
    let epoch = Instant::now();
    let mut tasks = Vec::new();
    for mut ws in conns {
        let delivered = delivered.clone();
        let latencies = latencies.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = 0;
            let mut local = Vec::with_capacity(messages);
            while seen < messages {
                match timeout(Duration::from_secs(30), ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => {
                        let v: Value = serde_json::from_str(&t).unwrap_or_default();
                        if v["type"] == "bench" {
                            seen += 1;
                            let sent_us = v["payload"]["t"].as_u64().unwrap_or(0);
                            let now_us = epoch.elapsed().as_micros() as u64;
                            local.push(now_us.saturating_sub(sent_us) as f64 / 1e3);
                        } else if v["type"] == "ping" {
                            let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            delivered.fetch_add(seen as u64, Ordering::Relaxed);
            if let Ok(mut l) = latencies.lock() {
                l.extend(local);
            }
        }));
    }
    let http = reqwest::Client::new();
    let service = token("bench-service", true);
    let started = Instant::now();
    for _ in 0..messages {
        let t = epoch.elapsed().as_micros() as u64;
        let body = json!({"type": "bench", "payload": {"t": t, "pad": "x".repeat(64)}});
        let res = http
            .post(fx.http("/api/broadcast"))
            .bearer_auth(&service)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("broadcast: HTTP {}", res.status()));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let total = delivered.load(Ordering::Relaxed);
    let lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    println!(
        "RESULT fanout receivers={receivers} messages={messages} delivered={total} of {} in {secs:.2}s \
         deliveries_per_s={:.0} p50_ms={:.1} p99_ms={:.1}",
        receivers * messages,
        total as f64 / secs,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    fx.stop().await;
    Ok(())
}

async fn churn(bin: &str, seconds: u64) -> Result<(), String> {
    let fx = Fixture::start(bin, CAPS).await?;
    let http = reqwest::Client::new();
    let tok = token("churn", false);
    let end = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let rss_start = fx.rss_kib();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (http, tok, ok, failed) = (http.clone(), tok.clone(), ok.clone(), failed.clone());
            let fx_addr = fx.addr.clone();
            tokio::spawn(async move {
                let fx = FixtureRef(fx_addr);
                while Instant::now() < end {
                    match fx.cycle(&http, &tok).await {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "RESULT churn seconds={secs:.1} cycles={} failed={} cycles_per_s={:.0} rss_start_kib={rss_start} rss_end_kib={}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        ok.load(Ordering::Relaxed) as f64 / secs,
        fx.rss_kib()
    );
    fx.stop().await;
    Ok(())
}

/// The address of a fixture, for worker tasks.
struct FixtureRef(String);

impl FixtureRef {
    async fn cycle(&self, http: &reqwest::Client, tok: &str) -> Result<(), String> {
        let res = http
            .post(format!("http://{}/ws/ticket", self.0))
            .bearer_auth(tok)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let v: Value = res.json().await.map_err(|e| e.to_string())?;
        let ticket = v["ticket"].as_str().ok_or("no ticket")?;
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws?ticket={ticket}", self.0))
            .await
            .map_err(|e| e.to_string())?;
        expect_type(&mut ws, "welcome", Duration::from_secs(5)).await?;
        ws.close(None).await.map_err(|e| e.to_string())?;
        // Read until the server's close reply (bounded), as a browser would.
        let _ = timeout(Duration::from_secs(2), async { while let Some(Ok(_)) = ws.next().await {} }).await;
        Ok(())
    }
}
