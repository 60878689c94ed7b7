//! resock-load: memory and throughput figures of a resock-fixture binary, on 127.0.0.1.
//!
//!   resock-load BIN idle N        RSS per idle authenticated connection at N connections
//!   resock-load BIN fanout R M    M broadcasts to R receivers: deliveries per second, p99 latency
//!   resock-load BIN churn SECS    ticket + connect + welcome + close cycles per second
//!   resock-load BIN scale SETUP WORKLOAD
//!                                 issue 8: fan-out throughput and latency of SETUP (`memory`: one
//!                                 instance in memory; `redis`: one instance on Redis; `redis2`:
//!                                 two instances on Redis behind nginx) for WORKLOAD (`room`: 1 000
//!                                 clients in one room; `users`: 1 000 users, one notification each)
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
    let usage = "usage: resock-load BIN (idle N | fanout RECEIVERS MESSAGES | churn SECONDS | scale (memory|redis|redis2) (room|users))";
    let (Some(bin), Some(cmd)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let num = |i: usize, default: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let res = match cmd.as_str() {
        "idle" => idle(bin, num(3, 1000) as usize).await,
        "fanout" => fanout(bin, num(3, 1000) as usize, num(4, 200) as usize).await,
        "churn" => churn(bin, num(3, 3)).await,
        "scale" => match (args.get(3).map(String::as_str), args.get(4).map(String::as_str)) {
            (Some(setup), Some(workload)) => scale(bin, setup, workload).await,
            _ => Err(usage.to_owned()),
        },
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

// ---- issue 8: scale-out ---------------------------------------------------------------------

/// Receivers (room members, or users) per workload.
const SCALE_N: usize = 1000;
/// Room: messages sent in a row (each acked before the next) for the throughput figure; under
/// `--send-queue` (256), so no receiver can be closed for falling behind.
const ROOM_SATURATE: usize = 200;
/// Room: the paced phase, one message per second to the 1 000 members (1 000 deliveries/s).
const ROOM_PACED: usize = 5;
/// Users: rounds of one notification per user, posted as fast as 64 requests in flight allow.
const USERS_SATURATE_ROUNDS: usize = 10;
/// Users: rounds posted at 1 000 notifications/s (one per user per second).
const USERS_PACED_ROUNDS: usize = 3;

/// A setup's processes (dropped = stopped: nginx by SIGTERM to its PID, the rest SIGKILL) and
/// the address clients and posts go to (nginx's with two instances).
struct Setup {
    /// Where clients connect and posts go, round-robin: nginx, or the instances themselves.
    entries: Vec<Fixture>,
    nginx: Option<Nginx>,
    instances: Vec<Fixture>,
    redis: Option<Redis>,
}

async fn setup(bin: &str, kind: &str) -> Result<Setup, String> {
    // The room workload sends far above the default 10 frames/s per connection.
    let mut args: Vec<String> = CAPS.iter().map(|s| s.to_string()).collect();
    args.extend(["--rate-limit".into(), "100000/1s".into()]);
    let (redis, n) = match kind {
        "memory" => (None, 1),
        "redis" => (Some(Redis::start().await?), 1),
        "redis2" | "redis2direct" => (Some(Redis::start().await?), 2),
        _ => return Err(format!("unknown setup {kind}: memory, redis, redis2 or redis2direct")),
    };
    if let Some(r) = &redis {
        args.extend(["--redis".into(), r.url()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut instances = Vec::new();
    for _ in 0..n {
        instances.push(Fixture::start(bin, &refs).await?);
    }
    let nginx = if kind == "redis2" {
        Some(Nginx::start(&instances.iter().map(|f| f.addr.clone()).collect::<Vec<_>>()).await?)
    } else {
        None
    };
    let entries = match &nginx {
        Some(ng) => vec![Fixture::borrowed(ng.addr.clone(), ng.pid())],
        None => instances.iter().map(|f| Fixture::borrowed(f.addr.clone(), f.pid)).collect(),
    };
    Ok(Setup { entries, nginx, instances, redis })
}

impl Setup {
    fn entry(&self, i: usize) -> &Fixture {
        &self.entries[i % self.entries.len()]
    }

    /// CPU seconds so far of: the instances, redis-server, nginx (with its workers), this process.
    fn cpu(&self) -> [f64; 4] {
        [
            self.instances.iter().map(|f| cpu_secs(f.pid)).sum(),
            self.redis.as_ref().map(|r| cpu_secs(r.pid())).unwrap_or(0.0),
            self.nginx.as_ref().map(|n| cpu_secs(n.pid())).unwrap_or(0.0),
            cpu_secs(std::process::id()),
        ]
    }
}

/// What the receivers saw of one phase: latencies (ms) and the last arrival (µs since epoch).
#[derive(Default)]
struct Phase {
    lat: Vec<f64>,
    last_us: u64,
}

/// Reads `kind` frames on every connection until each has `expect`, answering pings; each frame
/// carries `{phase}:{sent µs}` as the string after `stamp` (found by a substring search, not a
/// JSON parse: on this 2-core machine the load generator shares the cores with the servers).
fn receive(
    conns: Vec<Ws>,
    kind: &'static str,
    stamp: &'static str,
    expect: usize,
    epoch: Instant,
    delivered: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<[Phase; 2]>> {
    conns
        .into_iter()
        .map(|mut ws| {
            let delivered = delivered.clone();
            tokio::spawn(async move {
                let mut phases = [Phase::default(), Phase::default()];
                let mut seen = 0;
                while seen < expect {
                    match timeout(Duration::from_secs(30), ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) => {
                            let text = t.as_str();
                            if text.contains(kind) {
                                let now = epoch.elapsed().as_micros() as u64;
                                let (p, sent) = text
                                    .split_once(stamp)
                                    .and_then(|(_, rest)| rest.split_once('"'))
                                    .and_then(|(s, _)| s.split_once(':'))
                                    .and_then(|(p, t)| Some((p.parse::<usize>().ok()?, t.parse::<u64>().ok()?)))
                                    .unwrap_or((0, now));
                                let ph = &mut phases[p.min(1)];
                                ph.lat.push(now.saturating_sub(sent) as f64 / 1e3);
                                ph.last_us = ph.last_us.max(now);
                                seen += 1;
                                delivered.fetch_add(1, Ordering::Relaxed);
                            } else if text.contains(r#""type":"ping""#) {
                                let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                            }
                        }
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
                phases
            })
        })
        .collect()
}

/// Waits (at most 60 s) until `delivered` reaches `target`.
async fn await_delivered(delivered: &AtomicU64, target: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered.load(Ordering::Relaxed) < target {
        if Instant::now() > deadline {
            return Err(format!("{} of {target} deliveries within 60 s", delivered.load(Ordering::Relaxed)));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

async fn scale(bin: &str, setup_kind: &str, workload: &str) -> Result<(), String> {
    let s = setup(bin, setup_kind).await?;
    let s = &s;
    let cpu_sat: [f64; 4];
    let epoch = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let (sat_total, sat_start_us, paced_total, rate, tasks) = match workload {
        "room" => {
            let conns: Vec<Result<Ws, String>> = stream::iter(0..SCALE_N)
                .map(|i| async move {
                    let mut ws = connect_token(s.entry(i), &token(&format!("member-{i}"), false)).await?;
                    join(&mut ws, "bench").await?;
                    Ok(ws)
                })
                .buffer_unordered(64)
                .collect()
                .await;
            let conns: Vec<Ws> = conns.into_iter().collect::<Result<_, _>>()?;
            let expect = ROOM_SATURATE + ROOM_PACED;
            let tasks = receive(conns, r#""type":"room_message""#, r#""t":""#, expect, epoch, delivered.clone());
            let mut sender = connect_token(s.entry(0), &token("sender", false)).await?;
            join(&mut sender, "bench").await?;
            let pad = "x".repeat(64);
            let cpu0 = s.cpu();
            let sat_start = epoch.elapsed().as_micros() as u64;
            for i in 0..ROOM_SATURATE {
                room_send(&mut sender, i, &format!("0:{}", epoch.elapsed().as_micros()), &pad).await?;
            }
            await_delivered(&delivered, (SCALE_N * ROOM_SATURATE) as u64).await?;
            cpu_sat = sub(s.cpu(), cpu0);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for i in 0..ROOM_PACED {
                tick.tick().await;
                room_send(&mut sender, ROOM_SATURATE + i, &format!("1:{}", epoch.elapsed().as_micros()), &pad).await?;
            }
            (SCALE_N * ROOM_SATURATE, sat_start, SCALE_N * ROOM_PACED, SCALE_N, tasks)
        }
        "users" => {
            let conns: Vec<Result<Ws, String>> = stream::iter(0..SCALE_N)
                .map(|i| async move { connect_token(s.entry(i), &token(&format!("user-{i}"), false)).await })
                .buffer_unordered(64)
                .collect()
                .await;
            let conns: Vec<Ws> = conns.into_iter().collect::<Result<_, _>>()?;
            let expect = USERS_SATURATE_ROUNDS + USERS_PACED_ROUNDS;
            let tasks =
                receive(conns, r#""type":"new_notification""#, r#""title":""#, expect, epoch, delivered.clone());
            let http = reqwest::Client::new();
            let service = token("bench-service", true);
            let urls: Vec<String> = s.entries.iter().map(|e| e.http("/api/notifications")).collect();
            let url = |i: usize| urls[i % urls.len()].clone();
            let cpu0 = s.cpu();
            let sat_start = epoch.elapsed().as_micros() as u64;
            let posts: Vec<Result<(), String>> = stream::iter(0..SCALE_N * USERS_SATURATE_ROUNDS)
                .map(|i| notify(&http, url(i), &service, i % SCALE_N, format!("0:{}", epoch.elapsed().as_micros())))
                .buffer_unordered(64)
                .collect()
                .await;
            posts.into_iter().collect::<Result<Vec<()>, String>>()?;
            await_delivered(&delivered, (SCALE_N * USERS_SATURATE_ROUNDS) as u64).await?;
            cpu_sat = sub(s.cpu(), cpu0);
            // 1 000 posts per second, each sent at its time (a task each, so a slow answer
            // does not delay the next).
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut paced = Vec::new();
            for i in 0..SCALE_N * USERS_PACED_ROUNDS {
                tick.tick().await;
                let (http, url, service) = (http.clone(), url(i), service.clone());
                let title = format!("1:{}", epoch.elapsed().as_micros());
                paced.push(tokio::spawn(async move { notify(&http, url, &service, i % SCALE_N, title).await }));
            }
            for p in paced {
                p.await.map_err(|e| e.to_string())??;
            }
            (SCALE_N * USERS_SATURATE_ROUNDS, sat_start, SCALE_N * USERS_PACED_ROUNDS, SCALE_N, tasks)
        }
        _ => return Err(format!("unknown workload {workload}: room or users")),
    };
    let mut phases = [Phase::default(), Phase::default()];
    for t in tasks {
        let [a, b] = t.await.map_err(|e| e.to_string())?;
        for (into, from) in phases.iter_mut().zip([a, b]) {
            into.lat.extend(from.lat);
            into.last_us = into.last_us.max(from.last_us);
        }
    }
    let [sat, paced] = phases;
    let sat_secs = sat.last_us.saturating_sub(sat_start_us) as f64 / 1e6;
    println!(
        "RESULT scale setup={setup_kind} workload={workload} receivers={SCALE_N} sat_delivered={} of {sat_total} \
         sat_deliveries_per_s={:.0} sat_p50_ms={:.1} sat_p99_ms={:.1} paced_rate={rate} paced_delivered={} of {paced_total} \
         paced_p50_ms={:.1} paced_p99_ms={:.1} cpu_fixtures_s={:.2} cpu_redis_s={:.2} cpu_nginx_s={:.2} cpu_load_s={:.2}",
        sat.lat.len(),
        sat.lat.len() as f64 / sat_secs.max(1e-6),
        percentile(&sat.lat, 0.5),
        percentile(&sat.lat, 0.99),
        paced.lat.len(),
        percentile(&paced.lat, 0.5),
        percentile(&paced.lat, 0.99),
        cpu_sat[0],
        cpu_sat[1],
        cpu_sat[2],
        cpu_sat[3],
    );
    if sat.lat.len() != sat_total || paced.lat.len() != paced_total {
        return Err(format!("lost deliveries: {} of {sat_total}, {} of {paced_total}", sat.lat.len(), paced.lat.len()));
    }
    Ok(())
}

/// Joins `room` and waits for `joined`.
async fn join(ws: &mut Ws, room: &str) -> Result<(), String> {
    let frame = json!({"type": "join", "id": "j", "payload": {"room": room}});
    ws.send(Message::text(frame.to_string())).await.map_err(|e| e.to_string())?;
    expect_type(ws, "joined", Duration::from_secs(10)).await.map(|_| ())
}

/// Sends one room message stamped `t` and waits for its `ack`.
async fn room_send(ws: &mut Ws, n: usize, t: &str, pad: &str) -> Result<(), String> {
    let frame = json!({"type": "room_message", "id": format!("m{n}"), "payload": {"room": "bench", "data": {"t": t, "pad": pad}}});
    ws.send(Message::text(frame.to_string())).await.map_err(|e| e.to_string())?;
    let ack = expect_type(ws, "ack", Duration::from_secs(10)).await?;
    if ack["id"] != format!("m{n}").as_str() {
        return Err(format!("ack for {} instead of m{n}", ack["id"]));
    }
    Ok(())
}

/// Posts one notification for `user-{user}` titled `title` (the stamp).
async fn notify(http: &reqwest::Client, url: String, service: &str, user: usize, title: String) -> Result<(), String> {
    let body = json!({"user_id": format!("user-{user}"), "title": title, "body": "bench"});
    let res = http.post(&url).bearer_auth(service).json(&body).send().await.map_err(|e| e.to_string())?;
    if res.status().as_u16() != 201 {
        return Err(format!("POST /api/notifications: HTTP {}", res.status()));
    }
    Ok(())
}

fn sub(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3]]
}
