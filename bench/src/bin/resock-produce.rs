//! resock-produce: produces records to Kafka (for the demo, the tests and by hand).
//!
//!   resock-produce BROKERS [+N:]TOPIC KEY JSON   one record, e.g. `resock-produce 127.0.0.1:9092
//!       events alice '{"user_id":"alice","type":"task_update","payload":{"action":"updated",
//!       "task":{"id":"t1","title":"from Kafka"}}}'`
//!   resock-produce BROKERS [+N:]TOPIC --lines    one record per stdin line `KEY<TAB>JSON`, sent
//!       one after the other (each acked before the next, so a key's records stay in order);
//!       `"@PRODUCED_US@"` (with its quotes) in JSON becomes the send time, µs since the Unix
//!       epoch, taken just before the send; prints `ok PARTITION OFFSET` per record
//!
//! The record schema: docs/PROTOCOL.md, "Kafka records". With TOPIC prefixed by `+N:` it first
//! creates the topic with N partitions (an existing topic is fine).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Replaced by the send time in `--lines` mode.
const STAMP: &str = "\"@PRODUCED_US@\"";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.as_slice() {
        [brokers, topic, flag] if flag == "--lines" => lines(brokers, topic).await,
        [brokers, topic, key, json] => one(brokers, topic, key, json).await,
        _ => {
            eprintln!("usage: resock-produce BROKERS [+PARTITIONS:]TOPIC (KEY JSON | --lines)");
            std::process::exit(2);
        }
    };
    if let Err(e) = res {
        eprintln!("resock-produce: {e}");
        std::process::exit(1);
    }
}

async fn one(brokers: &str, topic: &str, key: &str, json: &str) -> Result<(), String> {
    serde_json::from_str::<Value>(json).map_err(|e| format!("the record is not JSON: {e}"))?;
    let (producer, topic) = connect(brokers, topic).await?;
    let (partition, offset) = send(&producer, topic, key, json).await?;
    println!("produced to {topic} partition {partition} offset {offset}");
    Ok(())
}

async fn lines(brokers: &str, topic: &str) -> Result<(), String> {
    let (producer, topic) = connect(brokers, topic).await?;
    let mut input = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let mut n = 0u64;
    while let Some(line) = input.next_line().await.map_err(|e| format!("stdin: {e}"))? {
        n += 1;
        let (key, json) = line.split_once('\t').ok_or(format!("line {n}: not KEY<TAB>JSON"))?;
        serde_json::from_str::<Value>(json).map_err(|e| format!("line {n}: not JSON: {e}"))?;
        let now_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let record = json.replace(STAMP, &now_us.to_string());
        let (partition, offset) = send(&producer, topic, key, &record).await?;
        out.write_all(format!("ok {partition} {offset}\n").as_bytes()).await.map_err(|e| e.to_string())?;
        out.flush().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A producer, after creating the topic when TOPIC is `+N:NAME`; returns the topic's name.
async fn connect<'a>(brokers: &str, topic: &'a str) -> Result<(FutureProducer, &'a str), String> {
    let topic = match topic.strip_prefix('+').and_then(|t| t.split_once(':')) {
        Some((n, name)) => {
            let partitions: i32 = n.parse().map_err(|_| format!("+{n}: not a partition count"))?;
            let admin: AdminClient<DefaultClientContext> =
                ClientConfig::new().set("bootstrap.servers", brokers).create().map_err(|e| e.to_string())?;
            let new = [NewTopic::new(name, partitions, TopicReplication::Fixed(1))];
            let _ = admin.create_topics(&new, &AdminOptions::new()).await.map_err(|e| e.to_string())?;
            name
        }
        None => topic,
    };
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "10000")
        // Each record is sent on its own (the latency test stamps it just before): no batching wait.
        .set("linger.ms", "0")
        .create()
        .map_err(|e| e.to_string())?;
    Ok((producer, topic))
}

async fn send(producer: &FutureProducer, topic: &str, key: &str, json: &str) -> Result<(i32, i64), String> {
    let delivered = producer
        .send(FutureRecord::to(topic).key(key).payload(json), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e.to_string())?;
    Ok((delivered.partition, delivered.offset))
}
