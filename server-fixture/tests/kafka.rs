//! Kafka as the event source, against a real Kafka-protocol broker (`tansu`, started by each test
//! on a free loopback port with in-memory storage, killed at the end; `scripts/setup.sh`
//! installs it) and, where instances must share state, a real redis-server.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_resock-fixture");

/// A tansu broker on 127.0.0.1, killed when dropped.
struct Broker {
    child: Child,
    addr: String,
}

impl Broker {
    fn start() -> Broker {
        Broker::on(std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port())
    }

    /// A broker on `port` (a fresh one, in-memory storage: no topics, no offsets).
    fn on(port: u16) -> Broker {
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let child = Command::new(tansu())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu (cargo install tansu --features dynostore; scripts/setup.sh does it)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "tansu did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker { child, addr }
    }

    fn signal(&self, sig: &str) {
        Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu() -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_bin = format!("{home}/.cargo/bin/tansu");
    if std::path::Path::new(&cargo_bin).exists() {
        cargo_bin
    } else {
        "tansu".into()
    }
}

async fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &broker.addr).create().unwrap();
    let topics = [NewTopic::new(topic, partitions, TopicReplication::Fixed(1))];
    let res = admin.create_topics(&topics, &AdminOptions::new()).await.unwrap();
    for r in res {
        r.unwrap();
    }
}

fn producer(broker: &Broker) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

async fn produce(p: &FutureProducer, topic: &str, key: &str, value: &Value) {
    let body = value.to_string();
    p.send(FutureRecord::to(topic).key(key).payload(&body), Duration::from_secs(10)).await.unwrap();
}

/// A fixture binary as a child process (so it can be SIGKILLed), killed when dropped.
struct Instance {
    child: Child,
    url: String,
}

impl Instance {
    fn start(args: &[&str]) -> Instance {
        let mut child = Command::new(BIN)
            .args(["--addr", "127.0.0.1:0", "--dev"])
            .args(args)
            .env("RESOCK_LOG", "quiet")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").expect("a listening line").to_owned();
        Instance { child, url }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a graceful stop: the fixture leaves the group) and waits for the exit.
    fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap()
    }

    async fn health(&self) -> Value {
        reqwest::get(format!("{}/healthz", self.url)).await.unwrap().json().await.unwrap()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (bounded) until `/healthz`'s kafka counters satisfy `pred`.
async fn wait_kafka(i: &Instance, what: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let h = i.health().await;
        if pred(&h["kafka"]) {
            return h;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {h}");
        sleep(Duration::from_millis(100)).await;
    }
}

/// Every message of `user`'s stream, read by a resume from 0 on `fx` (history 10 000).
async fn stream_of(fx: &Fx, user: &str) -> Vec<Value> {
    let (mut ws, welcome) = fx.connect(user).await;
    let epoch = welcome["payload"]["epoch"].as_str().unwrap().to_owned();
    ws.send(json!({"type": "resume", "payload": {"epoch": epoch, "since": 0}})).await;
    let mut out = Vec::new();
    loop {
        let v = ws.expect_any().await;
        if v["type"] == "resumed" {
            assert_eq!(v["payload"]["complete"], true);
            return out;
        }
        out.push(v);
    }
}

fn ns(stream: &[Value]) -> Vec<u64> {
    stream.iter().map(|m| m["payload"]["task"]["n"].as_u64().unwrap()).collect()
}

fn record(user: &str, n: u64) -> Value {
    json!({"user_id": user, "type": "task_update", "payload": {"action": "updated", "task": {"n": n}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_records_for_ten_users_arrive_once_each_in_order_and_bad_ones_are_skipped() {
    let broker = Broker::start();
    create_topic(&broker, "events", 3).await;
    let p = producer(&broker);
    let fx = Fx::start(&[
        "--kafka-brokers",
        &broker.addr,
        "--kafka-topics",
        "events",
        "--kafka-group",
        "g1",
        "--send-queue",
        "2000",
    ])
    .await;
    let mut live = Vec::new();
    for u in 0..10 {
        live.push(fx.connect(&format!("user{u}")).await.0);
    }
    // 1 000 records, keyed by user (one user's records in one partition, in order), with bad
    // ones in between.
    for n in 0..100u64 {
        for u in 0..10 {
            let user = format!("user{u}");
            produce(&p, "events", &user, &record(&user, n)).await;
        }
        if n % 25 == 0 {
            produce(&p, "events", "bad", &json!({"user_id": "user0", "type": "no_such_type"})).await;
            p.send(FutureRecord::to("events").key("bad").payload("not json"), Duration::from_secs(10)).await.unwrap();
        }
    }
    produce(&p, "events", "room", &json!({"room": "lobby", "data": {"hello": 1}})).await;
    for (u, ws) in live.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < 100 {
            let m = ws.expect_type("task_update").await;
            got.push(m["payload"]["task"]["n"].as_u64().unwrap());
        }
        assert_eq!(got, (0..100).collect::<Vec<u64>>(), "user{u}: once each, in order");
        ws.expect_quiet(Duration::from_millis(100)).await;
    }
    let stats = fx.http.get(fx.url("/healthz")).send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(stats["kafka"]["pushed"], 1001, "{stats}");
    assert_eq!(stats["kafka"]["skipped"], 8, "{stats}");
    assert_eq!(stats["kafka"]["duplicates"], 0, "{stats}");
    let res = fx.http.get(fx.url("/metrics")).send().await.unwrap();
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let metrics = res.text().await.unwrap();
    for line in [
        "resock_kafka_records_pushed_total 1001",
        "resock_kafka_records_skipped_total 8",
        "resock_kafka_records_duplicate_total 0",
        "resock_connections 10",
        "resock_engine_up 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "/metrics has {line:?}:\n{metrics}");
    }
    // Stopped while the broker is up: the consumer leaves its group (at most 3 s). Otherwise the
    // broker is killed when this function returns but the consumer task lives on until the
    // runtime ends, and librdkafka's close then waited for the gone broker for ever (seen once
    // in a fresh-clone run).
    drop(live);
    let Fx { server, .. } = fx;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_mid_batch_and_restarted_neither_duplicates_nor_loses() {
    let broker = Broker::start();
    let redis = Redis::start();
    create_topic(&broker, "events", 2).await;
    let url = redis.url();
    let kafka = ["--kafka-brokers", &broker.addr, "--kafka-topics", "events", "--kafka-group", "g2"];
    let shared = ["--redis", url.as_str(), "--history", "10000", "--history-bytes", "100000000"];
    let consumer_args: Vec<&str> = kafka.iter().chain(shared.iter()).copied().collect();
    let mut consumer = Instance::start(&consumer_args);
    let p = producer(&broker);
    for n in 0..1000u64 {
        let user = format!("u{}", n % 4);
        produce(&p, "events", &user, &record(&user, n)).await;
    }
    // Killed once it is part-way through (as fast as it is, it may be anywhere in the batch).
    wait_kafka(&consumer, "a first push", Duration::from_secs(20), |k| k["pushed"].as_u64() >= Some(1)).await;
    consumer.kill();
    let consumer = Instance::start(&consumer_args);
    let h = wait_kafka(&consumer, "the rest", Duration::from_secs(30), |k| {
        k["lag"] == 0 && k["consumed"].as_u64() >= Some(1)
    })
    .await;
    eprintln!("after the restart: {}", h["kafka"]);
    // The streams, read on an instance that is not the consumer: each record exactly once.
    let reader = Fx::start(&shared).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut all = Vec::new();
        for u in 0..4 {
            let stream = stream_of(&reader, &format!("u{u}")).await;
            let got = ns(&stream);
            let want: Vec<u64> = (0..1000).filter(|n| n % 4 == u).collect();
            all.push((u, got == want, got.len()));
        }
        if all.iter().all(|(_, ok, _)| *ok) {
            break;
        }
        assert!(Instant::now() < deadline, "streams after the restart (user, exact, count): {all:?}");
        sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_in_one_group_share_the_partitions_and_a_rebalance_loses_nothing() {
    // A rolling restart: A is killed (SIGKILL, no goodbye to the group), records keep coming,
    // and A comes back; the rebalance its return starts hands its partitions out again. (tansu
    // 0.6 does not reliably reassign a dead member's partitions on its session timeout alone:
    // docs/PROTOCOL.md, "Kafka records".)
    let broker = Broker::start();
    let redis = Redis::start();
    create_topic(&broker, "events", 4).await;
    let url = redis.url();
    let args = [
        "--kafka-brokers",
        &broker.addr,
        "--kafka-topics",
        "events",
        "--kafka-group",
        "g3",
        "--redis",
        url.as_str(),
        "--history",
        "10000",
        "--history-bytes",
        "100000000",
    ];
    let mut a = Instance::start(&args);
    let b = Instance::start(&args);
    let p = producer(&broker);
    for n in 0..600u64 {
        let user = format!("u{}", n % 6);
        produce(&p, "events", &user, &record(&user, n)).await;
    }
    wait_kafka(&a, "a's share", Duration::from_secs(30), |k| k["pushed"].as_u64() >= Some(1)).await;
    // One dies: the other takes its partitions over (a rebalance) and catches up.
    a.kill();
    for n in 600..1200u64 {
        let user = format!("u{}", n % 6);
        produce(&p, "events", &user, &record(&user, n)).await;
    }
    let _a_again = Instance::start(&args);
    let reader = Fx::start(&["--redis", url.as_str(), "--history", "10000", "--history-bytes", "100000000"]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = Vec::new();
        for u in 0..6 {
            let got = ns(&stream_of(&reader, &format!("u{u}")).await);
            let want: Vec<u64> = (0..1200).filter(|n| n % 6 == u).collect();
            all.push((u, got == want, got.len()));
        }
        if all.iter().all(|(_, ok, _)| *ok) {
            break;
        }
        if Instant::now() >= deadline {
            let audit = audit(&broker, "events", 1200).await;
            let b = b.health().await;
            panic!("after the rebalance (user, exact, count): {all:?}; b: {b}; the broker holds, per user: {audit:?}");
        }
        sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_stopped_with_sigterm_leaves_the_group_and_the_other_takes_its_partitions() {
    // A rolling restart done the usual way (SIGTERM): the stopping instance commits what it
    // applied and leaves the group, so the survivor is assigned every partition at once and
    // goes on with the records produced after the stop, exactly once (no session timeout to
    // wait for, which tansu 0.6 does not reliably act on).
    let broker = Broker::start();
    let redis = Redis::start();
    create_topic(&broker, "events", 4).await;
    let url = redis.url();
    let args =
        ["--kafka-brokers", &broker.addr, "--kafka-topics", "events", "--kafka-group", "g5", "--redis", url.as_str()];
    let mut a = Instance::start(&args);
    let b = Instance::start(&args);
    // Both hold partitions, then 200 records, all applied by the two.
    let split = |k: &Value| k["partitions"].as_u64().unwrap_or(0);
    wait_kafka(&a, "a's partitions", Duration::from_secs(30), |k| split(k) >= 1).await;
    wait_kafka(&b, "b's partitions", Duration::from_secs(30), |k| split(k) >= 1).await;
    let p = producer(&broker);
    for n in 0..200u64 {
        let user = format!("u{}", n % 4);
        produce(&p, "events", &user, &record(&user, n)).await;
    }
    let total = || async { a_and_b_pushed(&[&a, &b]).await };
    let deadline = Instant::now() + Duration::from_secs(30);
    while total().await < 200 {
        assert!(Instant::now() < deadline, "200 records not applied by a and b");
        sleep(Duration::from_millis(100)).await;
    }
    assert!(a.terminate().success(), "a SIGTERMed exits 0");
    let gone = Instant::now();
    // Without a's goodbye the broker could tell only after the session timeout (6 s).
    let h = wait_kafka(&b, "b with all 4 partitions", Duration::from_secs(20), |k| split(k) == 4).await;
    let took = gone.elapsed();
    println!("b had all 4 partitions {} ms after a exited", took.as_millis());
    assert!(took < Duration::from_secs(5), "b got a's partitions after {took:?}: a did not leave the group");
    for n in 200..400u64 {
        let user = format!("u{}", n % 4);
        produce(&p, "events", &user, &record(&user, n)).await;
    }
    let reader = Fx::start(&["--redis", url.as_str()]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut exact = true;
        let mut got_all = Vec::new();
        for u in 0..4u64 {
            let got = ns(&stream_of(&reader, &format!("u{u}")).await);
            let want: Vec<u64> = (0..400).filter(|n| n % 4 == u).collect();
            exact &= got == want;
            got_all.push(got.len());
        }
        if exact {
            break;
        }
        assert!(Instant::now() < deadline, "after a's SIGTERM, per user {got_all:?} of 100; b: {h}");
        sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(b.health().await["kafka"]["duplicates"], 0, "a committed before leaving: nothing redelivered");
}

async fn a_and_b_pushed(instances: &[&Instance]) -> u64 {
    let mut sum = 0;
    for i in instances {
        sum += i.health().await["kafka"]["pushed"].as_u64().unwrap_or(0);
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_down_at_start_the_server_serves_and_consumes_once_the_broker_is_up() {
    // No broker yet: the server starts, answers /healthz (200, the Kafka state saying why it
    // waits) and welcomes a WebSocket client. Then a broker comes up with the topic, and the
    // records produced to it reach that client, once each and in order.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let quiet = ["--heartbeat-ms", "600000", "--idle-timeout-ms", "600000"];
    let fx = Instance::start(
        &[&["--kafka-brokers", &addr, "--kafka-topics", "events", "--kafka-group", "g6"], &quiet[..]].concat(),
    );
    sleep(Duration::from_millis(1500)).await;
    let h = fx.health().await;
    assert_eq!(h["ok"], true, "serving without a broker: {h}");
    assert_eq!(h["kafka"]["pushed"], 0);
    assert!(h["kafka"]["state"].as_str().unwrap().starts_with("error: "), "the state says why: {h}");
    let (mut ws, _) = connect_to(&fx, "u").await;

    let broker = Broker::on(port);
    create_topic(&broker, "events", 1).await;
    let p = producer(&broker);
    for n in 0..50u64 {
        produce(&p, "events", "u", &record("u", n)).await;
    }
    let h = wait_kafka(&fx, "the 50 records", Duration::from_secs(60), |k| k["pushed"] == 50).await;
    assert_eq!(h["kafka"]["state"], "consuming");
    let mut got = Vec::new();
    while got.len() < 50 {
        let v = ws.expect_type("task_update").await;
        got.push(v["payload"]["task"]["n"].as_u64().unwrap());
    }
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

/// Connects to a child-process instance as `user` (a dev token in the query) and reads the welcome.
async fn connect_to(i: &Instance, user: &str) -> (Ws, Value) {
    let token = dev_token(&reqwest::Client::new(), &i.url, user).await;
    let ws_url = format!("{}/ws?token={token}", i.url.replacen("http://", "ws://", 1));
    let mut ws = Ws::connect(&ws_url).await.unwrap();
    let welcome = ws.expect_type("welcome").await;
    (ws, welcome)
}

/// Counts the records per user that the broker holds, read from the start by a fresh group
/// (to tell a broker that lost records from a consumer that did).
async fn audit(broker: &Broker, topic: &str, expect: usize) -> std::collections::BTreeMap<String, usize> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "audit")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut per_user = std::collections::BTreeMap::new();
    let mut seen = 0;
    while seen < expect {
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(5), c.recv()).await else { break };
        let v: Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
        *per_user.entry(v["user_id"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        seen += 1;
    }
    per_user
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stops_answering_for_5_s_is_caught_up_with_afterwards() {
    // tansu's in-memory storage does not survive a restart, so the broker is paused (SIGSTOP)
    // and resumed (SIGCONT) instead: unreachable for 5 s, then back with its committed offsets.
    let broker = Broker::start();
    create_topic(&broker, "events", 1).await;
    let consumer =
        Instance::start(&["--kafka-brokers", &broker.addr, "--kafka-topics", "events", "--kafka-group", "g4"]);
    let p = producer(&broker);
    for n in 0..50u64 {
        produce(&p, "events", "u", &record("u", n)).await;
    }
    wait_kafka(&consumer, "the first 50", Duration::from_secs(20), |k| k["pushed"] == 50).await;
    broker.signal("-STOP");
    sleep(Duration::from_secs(5)).await;
    // The server serves meanwhile.
    assert!(reqwest::get(format!("{}/healthz", consumer.url)).await.unwrap().status().is_success());
    broker.signal("-CONT");
    for n in 50..100u64 {
        produce(&p, "events", "u", &record("u", n)).await;
    }
    let h = wait_kafka(&consumer, "the next 50", Duration::from_secs(30), |k| k["pushed"] == 100).await;
    assert_eq!(h["kafka"]["duplicates"], 0);
}
