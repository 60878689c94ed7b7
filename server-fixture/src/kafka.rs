//! Kafka as an event source (`--kafka-brokers`, `--kafka-topics`, `--kafka-group`): the server
//! joins consumer group G and turns each record into a push, exactly once.
//!
//! A record's value is JSON, one of (docs/PROTOCOL.md "Kafka records"):
//! - `{"user_id": U, "type": T, "payload": {...}}`: a message on U's stream (T a user-stream
//!   type; `new_notification` with `{title, body}` is also stored, as the REST route does);
//! - `{"room": R, "data": ..., "from"?: F}`: a `room_message` to every member of R.
//!
//! Exactly once: a record is applied through `Engine::record`, which skips a record whose
//! partition already applied its offset (the check and the push are one step, in Redis with
//! `--redis`), and its offset is stored for the group's commit only after that. A crash between
//! the push and the commit, or a rebalance, redelivers records the engine then skips. A record
//! the engine cannot take now (Redis down) is retried, in order, until it can.
//!
//! Bad records (not JSON, an unknown type, no user, over the size limit) are counted, logged
//! without their payload and skipped. Kafka down at start or later: WebSockets and REST go on,
//! and the consumer resumes from the committed offset when the broker is back.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::TopicPartitionList;
use resock::protocol::{is_user_stream_kind, RoomMessage, ServerMessage};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::engine::{Applied, RecordAction, RecordId};
use crate::hub::encode;
use crate::log;
use crate::state::{App, SourceStats};
use crate::text::Esc;

/// The largest record value taken, in bytes.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// A running consumer: [`Source::stop`] leaves the group (a graceful shutdown).
pub struct Source {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Arc<StreamConsumer>>,
}

impl Source {
    /// Stops after the record being applied, commits the applied offsets and leaves the group,
    /// so that the other members get this one's partitions at once (not after the session
    /// timeout). Bounded by `within`; a consumer not closed by then is left to the process exit.
    pub async fn stop(self, within: Duration) {
        let _ = self.stop.send(true);
        let closing = async move {
            let Ok(consumer) = self.task.await else { return };
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                // Nothing stored since the last commit, or the broker is away: the next
                // owner of the partitions skips what the engine applied (exactly once).
                log::info(format_args!("kafka: final commit: {e}"));
            }
            // Dropping the last reference closes the consumer: it leaves the group (blocking).
            let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        };
        match tokio::time::timeout(within, closing).await {
            Ok(()) => log::info(format_args!("kafka: left the group")),
            Err(_) => log::info(format_args!("kafka: did not leave the group within {within:?}")),
        }
    }
}

/// Starts the consumer when the configuration names brokers and topics.
pub fn start(app: &Arc<App>) -> Result<Option<Source>, String> {
    let cfg = &app.cfg;
    let (Some(brokers), false) = (cfg.kafka_brokers.as_deref(), cfg.kafka_topics.is_empty()) else {
        return Ok(None);
    };
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &cfg.kafka_group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        // Offsets are stored only once a record is applied (below), then committed.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        // Incremental rebalances: with the eager default, the survivor of a killed member was
        // assigned its partitions but did not fetch them in about half the runs against tansu.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("heartbeat.interval.ms", "1000")
        // A fetch with nothing to return waits at most this long. tansu 0.6 answers a fetch
        // only when the wait is over, also when records arrive during it: in the browser test
        // the median produce-to-listener latency followed it (librdkafka's default 500 ms: 375
        // ms; 50: 80 ms; 10: 18 ms). Apache Kafka answers as soon as records arrive, where a
        // short wait only means more (tiny) fetches while idle.
        .set("fetch.wait.max.ms", cfg.kafka_fetch_wait_ms.to_string())
        .set("reconnect.backoff.max.ms", "2000")
        .create()
        .map_err(|e| format!("--kafka-brokers {brokers}: {e}"))?;
    let topics: Vec<&str> = cfg.kafka_topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|e| format!("--kafka-topics: {e}"))?;
    let consumer = Arc::new(consumer);
    log::info(format_args!("kafka: consuming {:?} as group {:?} from {brokers}", cfg.kafka_topics, cfg.kafka_group));
    tokio::spawn(measure_lag(Arc::downgrade(app), Arc::downgrade(&consumer)));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(consume(app.clone(), consumer, stopping));
    Ok(Some(Source { stop, task }))
}

/// Records fetched but not yet applied, per partition (each lane's queue).
const LANE_QUEUE: usize = 512;

/// Consumes until `stopping` and hands each record to its partition's lane; returns the
/// consumer for its goodbye once every lane has stopped.
///
/// One lane (a task) per partition applies its records one after the other, so a partition's
/// order is kept while partitions are applied concurrently: with Redis each record is a round
/// trip, and one at a time over all partitions bounded the throughput by it (bench.sh --kafka).
async fn consume(
    app: Arc<App>,
    consumer: Arc<StreamConsumer>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Arc<StreamConsumer> {
    let stats = &app.source;
    let mut lanes: HashMap<(String, i32), mpsc::Sender<OwnedMessage>> = HashMap::new();
    let mut tasks = Vec::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = stopping.wait_for(|s| *s) => break,
            next = consumer.recv() => next,
        };
        let msg = match next {
            Ok(msg) => msg.detach(),
            Err(e) => {
                stats.set_state(&format!("error: {e}"));
                log::info(format_args!("kafka: {e}; retrying"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        stats.set_state("consuming");
        stats.consumed.fetch_add(1, Ordering::Relaxed);
        let lane = lanes.entry((msg.topic().to_owned(), msg.partition())).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(LANE_QUEUE);
            tasks.push(tokio::spawn(lane(app.clone(), consumer.clone(), rx, stopping.clone())));
            tx
        });
        // A full queue waits here (the lanes apply what they have); a stop ends the wait.
        tokio::select! {
            biased;
            _ = stopping.wait_for(|s| *s) => break,
            _ = lane.send(msg) => {}
        }
    }
    // Each lane stops after the record it is applying; what is queued was not stored, so the
    // partition's next owner gets it again.
    drop(lanes);
    for t in tasks {
        let _ = t.await;
    }
    consumer
}

/// Applies one partition's records in order until `stopping`, storing each one's offset for
/// the group's next commit once it is applied.
async fn lane(
    app: Arc<App>,
    consumer: Arc<StreamConsumer>,
    mut records: mpsc::Receiver<OwnedMessage>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let stats = &app.source;
    loop {
        let msg = tokio::select! {
            biased;
            _ = stopping.wait_for(|s| *s) => return,
            msg = records.recv() => match msg {
                Some(msg) => msg,
                None => return,
            },
        };
        let id = RecordId { topic: msg.topic().to_owned(), partition: msg.partition(), offset: msg.offset() };
        match parse(msg.payload()) {
            Ok(action) => apply(&app, &id, action).await,
            Err(why) => {
                stats.skipped.fetch_add(1, Ordering::Relaxed);
                log::info(format_args!("kafka: skipped {}:{}@{}: {why}", Esc(&id.topic), id.partition, id.offset));
            }
        }
        // librdkafka stores offset + 1 (the next to read). A partition revoked meanwhile
        // refuses it: its new owner starts from the last commit, and the engine skips what was
        // applied here.
        if let Err(e) = consumer.store_offset(&id.topic, id.partition, id.offset) {
            log::info(format_args!("kafka: cannot store the offset of {}:{}: {e}", id.partition, id.offset));
        }
    }
}

/// Applies a record, retrying (in order, with backoff) while the engine cannot take it.
async fn apply(app: &App, id: &RecordId, action: RecordAction) {
    let stats = &app.source;
    let mut delay = Duration::from_millis(100);
    loop {
        match app.engine.record(id, action.clone()).await {
            Ok(Applied::Done) => {
                stats.pushed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(Applied::Duplicate) => {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                stats.set_state(&format!("waiting for the engine: {e}"));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// What a record asks for, or why it is skipped (never with its payload).
pub fn parse(value: Option<&[u8]>) -> Result<RecordAction, String> {
    let value = value.ok_or("no value")?;
    if value.len() > MAX_RECORD_BYTES {
        return Err(format!("{} bytes, over {MAX_RECORD_BYTES}", value.len()));
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(value) else {
        return Err("not a JSON object".into());
    };
    if let Some(room) = obj.get("room").and_then(Value::as_str).map(str::to_owned) {
        if !resock::protocol::is_valid_room_name(&room) {
            return Err("`room` is not a room name".into());
        }
        let data = obj.remove("data").ok_or("a room record needs `data`")?;
        let from = obj.get("from").and_then(Value::as_str).unwrap_or("kafka").to_owned();
        let frame = encode(&ServerMessage::RoomMessage(RoomMessage { room: room.clone(), from, data }), None, None);
        return Ok(RecordAction::Room { room, frame });
    }
    let user = obj.get("user_id").and_then(Value::as_str).filter(|u| !u.is_empty() && u.len() <= 256);
    let user = user.ok_or("no `user_id` (or `room`)")?.to_owned();
    let kind = obj.get("type").and_then(Value::as_str).ok_or("no `type`")?.to_owned();
    if !is_user_stream_kind(&kind) {
        return Err(format!("`type` {:?} is not a user-stream type", crate::text::clip_str(&kind, 64)));
    }
    let payload = match obj.remove("payload") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(p @ Value::Object(_)) => p,
        Some(_) => return Err("`payload` is not an object".into()),
    };
    if kind == "new_notification" {
        // Stored like a REST notification: the server gives it its id, time and `read: false`.
        let text = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(title), Some(body)) = (text("title"), text("body")) else {
            return Err("new_notification needs `title` and `body` strings".into());
        };
        return Ok(RecordAction::Notify { user, title, body });
    }
    let msg = ServerMessage::<Value>::decode(&kind, payload).map_err(|e| format!("{kind}: {e}"))?;
    Ok(RecordAction::Push { user, msg })
}

/// The assigned partitions every 250 ms, and every 2 s the lag (high watermark minus committed
/// position, over them), until the app or the consumer is gone.
async fn measure_lag(app: std::sync::Weak<App>, consumer: std::sync::Weak<StreamConsumer>) {
    for tick in 1u64.. {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (Some(app), Some(consumer)) = (app.upgrade(), consumer.upgrade()) else { return };
        if tick % 8 != 0 {
            // Local state of the client, no request to the broker.
            if let Ok(assignment) = consumer.assignment() {
                app.source.partitions.store(assignment.count() as u64, Ordering::Relaxed);
            }
            continue;
        }
        let measured = tokio::task::spawn_blocking(move || lag_of(&consumer)).await.ok().flatten();
        if let Some((partitions, lag)) = measured {
            app.source.partitions.store(partitions, Ordering::Relaxed);
            app.source.lag.store(lag, Ordering::Relaxed);
        }
    }
}

/// (assigned partitions, lag).
fn lag_of(consumer: &StreamConsumer) -> Option<(u64, i64)> {
    let assignment: TopicPartitionList = consumer.assignment().ok()?;
    let partitions = assignment.count() as u64;
    let position = consumer.position().ok()?;
    let mut lag = 0;
    for el in assignment.elements() {
        let (_, high) = consumer.fetch_watermarks(el.topic(), el.partition(), Duration::from_secs(1)).ok()?;
        let at = position
            .find_partition(el.topic(), el.partition())
            .and_then(|p| p.offset().to_raw())
            .filter(|o| *o >= 0)
            .unwrap_or(0);
        lag += (high - at).max(0);
    }
    Some((partitions, lag))
}

impl SourceStats {
    /// Called once per record: allocates only when the state text changes.
    fn set_state(&self, state: &str) {
        if let Ok(mut s) = self.state.lock() {
            if *s != state {
                state.clone_into(&mut *s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_or_say_why_not() {
        let ok = |v: Value| parse(Some(v.to_string().as_bytes()));
        assert!(matches!(
            ok(serde_json::json!({"user_id": "a", "type": "task_update", "payload": {"action": "x", "task": {}}})),
            Ok(RecordAction::Push { .. })
        ));
        assert!(matches!(
            ok(serde_json::json!({"user_id": "a", "type": "new_notification", "payload": {"title": "t", "body": "b"}})),
            Ok(RecordAction::Notify { .. })
        ));
        assert!(matches!(ok(serde_json::json!({"room": "general", "data": 1})), Ok(RecordAction::Room { .. })));
        assert!(parse(Some(b"not json")).is_err());
        assert!(ok(serde_json::json!({"user_id": "a", "type": "welcome"})).is_err());
        assert!(ok(serde_json::json!({"type": "task_update"})).is_err());
        assert!(ok(serde_json::json!({"user_id": "a", "type": "task_update", "payload": {"task": 1}})).is_err());
        assert!(parse(Some(&vec![b' '; MAX_RECORD_BYTES + 1])).is_err());
        assert!(parse(None).is_err());
        let err = parse(Some(b"{\"user_id\": \"a\", \"type\": \"secret-payload-type\"}")).unwrap_err();
        assert!(err.contains("not a user-stream type"));
    }
}
