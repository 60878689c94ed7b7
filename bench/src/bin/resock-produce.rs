//! resock-produce BROKERS TOPIC KEY JSON: produces one record to Kafka (for the demo and by hand),
//! e.g. `resock-produce 127.0.0.1:9092 events alice '{"user_id":"alice","type":"task_update",
//! "payload":{"action":"updated","task":{"id":"t1","title":"from Kafka"}}}'`. The record schema:
//! docs/PROTOCOL.md, "Kafka records". With TOPIC prefixed by `+N:` it first creates the topic
//! with N partitions (an existing topic is fine).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, topic, key, json] = args.as_slice() else {
        eprintln!("usage: resock-produce BROKERS [+PARTITIONS:]TOPIC KEY JSON");
        std::process::exit(2);
    };
    if let Err(e) = run(brokers, topic, key, json).await {
        eprintln!("resock-produce: {e}");
        std::process::exit(1);
    }
}

async fn run(brokers: &str, topic: &str, key: &str, json: &str) -> Result<(), String> {
    serde_json::from_str::<serde_json::Value>(json).map_err(|e| format!("the record is not JSON: {e}"))?;
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
        .create()
        .map_err(|e| e.to_string())?;
    let delivered = producer
        .send(FutureRecord::to(topic).key(key).payload(json), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e.to_string())?;
    println!("produced to {topic} partition {} offset {}", delivered.partition, delivered.offset);
    Ok(())
}
