//! `GET /metrics`: the counters of `/healthz` and the hub's totals in the Prometheus text
//! exposition format (version 0.0.4), for a scraper.
//!
//! Written here rather than with a metrics crate: the values already live in atomics and the
//! hub; a registry would keep a second copy of each, and the format is one line per value.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use warp::http::header::CONTENT_TYPE;
use warp::{Filter, Rejection, Reply};

use crate::http::with_app;
use crate::state::App;

pub fn route(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("metrics").and(warp::get()).and(with_app(app)).map(|app: Arc<App>| {
        warp::reply::with_header(render(&app), CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
    })
}

/// The exposition text.
pub fn render(app: &App) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    let health = app.engine.health();
    metric(
        "resock_engine_up",
        "gauge",
        "1 while the engine can serve (Redis reachable), else 0.",
        f64::from(u8::from(health.ok)),
    );
    let t = app.hub.totals();
    metric("resock_connections", "gauge", "Open WebSocket connections on this instance.", t.connections as f64);
    metric(
        "resock_connections_opened_total",
        "counter",
        "WebSocket connections welcomed since start.",
        t.opened_total as f64,
    );
    metric("resock_rooms", "gauge", "Rooms with a member on this instance.", t.rooms as f64);
    metric("resock_sse_subscribers", "gauge", "Open SSE streams on this instance.", t.sse_subscribers as f64);
    metric(
        "resock_rate_limited_total",
        "counter",
        "rate_limited answers sent since start.",
        t.rate_limited_total as f64,
    );
    if app.cfg.kafka_brokers.is_some() {
        let k = &app.source;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        metric("resock_kafka_records_consumed_total", "counter", "Kafka records read.", n(&k.consumed));
        metric("resock_kafka_records_pushed_total", "counter", "Kafka records applied (pushed).", n(&k.pushed));
        metric(
            "resock_kafka_records_duplicate_total",
            "counter",
            "Redelivered Kafka records skipped (applied before).",
            n(&k.duplicates),
        );
        metric("resock_kafka_records_skipped_total", "counter", "Bad Kafka records skipped.", n(&k.skipped));
        metric(
            "resock_kafka_lag",
            "gauge",
            "Records in the assigned partitions not consumed yet.",
            k.lag.load(Ordering::Relaxed) as f64,
        );
        metric("resock_kafka_partitions", "gauge", "Partitions assigned to this instance.", n(&k.partitions));
    }
    out
}
