//! resock-kafka-load BIN SETUP [RECORDS]: issue 9's benchmark, records per second from Kafka to
//! pushes. SETUP: `memory` (one instance, in-memory engine), `redis` (one instance on Redis) or
//! `redis2` (two instances on one Redis, one consumer group). A tansu broker, redis-server and
//! the instances are started here on free 127.0.0.1 ports and stopped by PID at the end.
//!
//! 100 users, one WebSocket each (spread over the instances); a topic of 4 partitions, records
//! keyed by user (a user's records in one partition, in order). Once the group has settled
//! (every partition assigned; with two instances, two each):
//! - saturated: RECORDS (default 20 000) `task_update` records, 1/100 per user, produced as
//!   fast as the producer goes; throughput = RECORDS / (last delivery - first send);
//! - paced: 1 000 records/s for 3 s, for the latency (from the producer's send call to the
//!   frame read by the user's client, all in this process).
//!
//! Every client checks its records arrive once each and in order (fails otherwise). Prints one
//! `RESULT` line for scripts/bench.sh. Every loop is bounded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, SinkExt, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use resock_bench::*;
use serde_json::Value;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

const USERS: usize = 100;
const PARTITIONS: i32 = 4;
const PACED_PER_S: usize = 1000;
const PACED_SECS: usize = 3;

#[tokio::main]
async fn main() {
    raise_open_files();
    let args: Vec<String> = std::env::args().collect();
    let (Some(bin), Some(setup)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: resock-kafka-load BIN (memory|redis|redis2) [RECORDS]");
        std::process::exit(2);
    };
    let records = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20_000usize);
    if let Err(e) = run(bin, setup, records - records % USERS).await {
        eprintln!("resock-kafka-load: {e}");
        std::process::exit(1);
    }
}

/// What one user's client saw: latencies (ms) per phase, the last arrival (µs), and the record
/// numbers in arrival order.
#[derive(Default)]
struct Seen {
    lat: [Vec<f64>; 2],
    last_us: [u64; 2],
    ns: Vec<u64>,
}

async fn run(bin: &str, setup: &str, records: usize) -> Result<(), String> {
    let n_instances = match setup {
        "memory" | "redis" => 1,
        "redis2" => 2,
        _ => return Err(format!("unknown setup {setup}: memory, redis or redis2")),
    };
    let broker = Broker::start().await?;
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &broker.addr).create().map_err(|e| e.to_string())?;
    let topics = [NewTopic::new("events", PARTITIONS, TopicReplication::Fixed(1))];
    for r in admin.create_topics(&topics, &AdminOptions::new()).await.map_err(|e| e.to_string())? {
        r.map_err(|(t, e)| format!("creating {t}: {e}"))?;
    }
    let redis = if setup == "memory" { None } else { Some(Redis::start().await?) };
    let per_user = records / USERS + PACED_PER_S * PACED_SECS / USERS;
    let mut args: Vec<String> = ["--kafka-brokers", &broker.addr, "--kafka-topics", "events", "--kafka-group", "bench"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--history".into(), (per_user + 10).to_string(), "--history-bytes".into(), "67108864".into()]);
    if let Some(r) = &redis {
        args.extend(["--redis".into(), r.url()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut instances = Vec::new();
    for _ in 0..n_instances {
        instances.push(Fixture::start(bin, &refs).await?);
    }
    let http = reqwest::Client::new();
    // Settled: every partition assigned, evenly.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut held = Vec::new();
        for f in &instances {
            let h: Value = http
                .get(f.http("/healthz"))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            held.push(h["kafka"]["partitions"].as_u64().unwrap_or(0));
        }
        if held.iter().all(|&p| p == PARTITIONS as u64 / n_instances as u64) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the group did not settle within 60 s: partitions per instance {held:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut conns = Vec::new();
    for u in 0..USERS {
        let f = &instances[u % instances.len()];
        conns.push(connect_token(f, &token(&format!("k{u}"), false)).await?);
    }
    let epoch = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> =
        conns.into_iter().map(|ws| tokio::spawn(receive(ws, per_user, epoch, delivered.clone()))).collect();

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5")
        .create()
        .map_err(|e| e.to_string())?;
    let pids: Vec<u32> = instances.iter().map(|f| f.pid).collect();
    let cpu = || {
        [
            pids.iter().map(|&p| cpu_secs(p)).sum::<f64>(),
            redis.as_ref().map_or(0.0, |r| cpu_secs(r.pid())),
            cpu_secs(broker.pid()),
            cpu_secs(std::process::id()),
        ]
    };
    let record = |n: usize, phase: usize| {
        let user = format!("k{}", n % USERS);
        let t = epoch.elapsed().as_micros() as u64;
        let n_user = n / USERS;
        let value = format!(
            r#"{{"user_id":"{user}","type":"task_update","payload":{{"action":"updated","task":{{"n":{n_user},"t":"{phase}:{t}"}}}}}}"#
        );
        (user, value)
    };

    // Saturated.
    let cpu0 = cpu();
    let first_send_us = epoch.elapsed().as_micros() as u64;
    let sends = stream::iter(0..records)
        .map(|n| {
            let (user, value) = record(n, 0);
            let producer = &producer;
            async move {
                producer
                    .send(FutureRecord::to("events").key(&user).payload(&value), Duration::from_secs(30))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e.to_string())
            }
        })
        // In order per key: librdkafka keeps a partition's records in send order (no retries
        // here unless the broker fails, which fails the run through the order check).
        .buffered(1000);
    let acked: Vec<Result<(), String>> = sends.collect().await;
    acked.into_iter().collect::<Result<Vec<()>, String>>()?;
    let produced_s = (epoch.elapsed().as_micros() as u64 - first_send_us) as f64 / 1e6;
    wait_for(&delivered, records as u64, Duration::from_secs(120)).await?;
    let cpu1 = cpu();

    // Paced: one record per millisecond, each sent at its time.
    let start = Instant::now();
    let mut paced = Vec::new();
    for i in 0..PACED_PER_S * PACED_SECS {
        tokio::time::sleep_until(start + Duration::from_micros((i * 1_000_000 / PACED_PER_S) as u64)).await;
        let (user, value) = record(records + i, 1);
        paced.push(
            producer
                .send_result(FutureRecord::to("events").key(&user).payload(&value))
                .map_err(|(e, _)| e.to_string())?,
        );
    }
    for p in paced {
        p.await.map_err(|_| "a paced record was cancelled".to_string())?.map_err(|(e, _)| e.to_string())?;
    }
    wait_for(&delivered, (records + PACED_PER_S * PACED_SECS) as u64, Duration::from_secs(60)).await?;

    let mut lat = [Vec::new(), Vec::new()];
    let mut last_us = 0;
    for c in clients {
        let seen = c.await.map_err(|e| e.to_string())??;
        let want: Vec<u64> = (0..per_user as u64).collect();
        if seen.ns != want {
            return Err(format!(
                "a client got records {:?}… not 0..{per_user} once each in order",
                &seen.ns[..seen.ns.len().min(20)]
            ));
        }
        for (all, mine) in lat.iter_mut().zip(&seen.lat) {
            all.extend_from_slice(mine);
        }
        last_us = last_us.max(seen.last_us[0]);
    }
    let sat_s = (last_us - first_send_us) as f64 / 1e6;
    let d: Vec<f64> = (0..4).map(|i| cpu1[i] - cpu0[i]).collect();
    println!(
        "RESULT setup={setup} records={records} sat_records_per_s={:.0} produce_records_per_s={:.0} sat_p50_ms={:.1} sat_p99_ms={:.1} paced_p50_ms={:.1} paced_p99_ms={:.1} cpu_fixtures_s={:.2} cpu_redis_s={:.2} cpu_broker_s={:.2} cpu_load_s={:.2}",
        records as f64 / sat_s,
        records as f64 / produced_s,
        percentile(&lat[0], 0.5),
        percentile(&lat[0], 0.99),
        percentile(&lat[1], 0.5),
        percentile(&lat[1], 0.99),
        d[0],
        d[1],
        d[2],
        d[3],
    );
    drop(instances);
    Ok(())
}

/// Reads one user's frames until `expect` task updates arrived, answering pings; each carries
/// `"n":N` and `"t":"PHASE:SENT_µs"`, found by substring search (the load tool shares the
/// cores with the servers: no JSON parse per frame).
async fn receive(mut ws: Ws, expect: usize, epoch: Instant, delivered: Arc<AtomicU64>) -> Result<Seen, String> {
    let mut seen = Seen::default();
    while seen.ns.len() < expect {
        match timeout(Duration::from_secs(60), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let text = t.as_str();
                if text.contains(r#""type":"task_update""#) {
                    let now = epoch.elapsed().as_micros() as u64;
                    let field = |key: &str| text.split_once(key).map(|(_, rest)| rest);
                    let n = field(r#""n":"#)
                        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                        .and_then(|d| d.parse().ok())
                        .ok_or("a task_update without n")?;
                    let (phase, sent) = field(r#""t":""#)
                        .and_then(|r| r.split_once('"'))
                        .and_then(|(s, _)| s.split_once(':'))
                        .and_then(|(p, t)| Some((p.parse::<usize>().ok()?, t.parse::<u64>().ok()?)))
                        .ok_or("a task_update without t")?;
                    seen.ns.push(n);
                    seen.lat[phase.min(1)].push(now.saturating_sub(sent) as f64 / 1e3);
                    seen.last_us[phase.min(1)] = now;
                    delivered.fetch_add(1, Ordering::Relaxed);
                } else if text.contains(r#""type":"ping""#) {
                    let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("a client's socket ended after {} records: {other:?}", seen.ns.len())),
        }
    }
    Ok(seen)
}

/// Waits (bounded) until `delivered` reaches `target`.
async fn wait_for(delivered: &AtomicU64, target: u64, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while delivered.load(Ordering::Relaxed) < target {
        if Instant::now() > deadline {
            return Err(format!("{} of {target} deliveries within {within:?}", delivered.load(Ordering::Relaxed)));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
