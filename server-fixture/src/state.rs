//! The server's state: everything a request handler may touch. The bottom layer: it imports
//! no HTTP or route module (state <- HTTP helpers <- routes <- assembly in `server.rs`); the
//! frame handler (`session.rs`) sits under it, with the hub and the engine.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Jwt, Tickets};
use crate::config::Config;
use crate::engine::memory::{MemoryEngine, StreamLimits};
use crate::engine::redis::{RedisEngine, RedisSettings};
use crate::engine::Engine;
use crate::hub::{Hub, Limits};
use crate::session::{Ctx, Sessions};
use crate::store::Store;

/// Everything a request handler may touch.
pub struct App {
    pub cfg: Config,
    /// This instance's connections.
    pub hub: Arc<Hub>,
    /// What the instances share: memory, or Redis with `--redis`.
    pub engine: Arc<dyn Engine>,
    pub jwt: Jwt,
    /// The event source's counters (Kafka; all zero without it), for `/healthz`.
    pub source: SourceStats,
    /// The open SSE sessions, by secret (`POST /sse/send` finds its session here).
    pub sessions: Sessions,
    live: AtomicUsize,
}

/// What the event source (Kafka) did so far.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub consumed: AtomicU64,
    pub pushed: AtomicU64,
    /// Redelivered records the engine had applied already.
    pub duplicates: AtomicU64,
    /// Bad records: not JSON, an unknown type, no user, too large.
    pub skipped: AtomicU64,
    /// Records in the assigned partitions not consumed yet (measured every 2 s).
    pub lag: AtomicI64,
    /// Partitions assigned to this instance (read every 250 ms).
    pub partitions: AtomicU64,
    pub state: std::sync::Mutex<String>,
}

impl SourceStats {
    pub fn snapshot(&self) -> serde_json::Value {
        let state = self.state.lock().map(|s| s.clone()).unwrap_or_default();
        serde_json::json!({
            "state": if state.is_empty() { "starting" } else { state.as_str() },
            "consumed": self.consumed.load(Ordering::Relaxed),
            "pushed": self.pushed.load(Ordering::Relaxed),
            "duplicates": self.duplicates.load(Ordering::Relaxed),
            "skipped": self.skipped.load(Ordering::Relaxed),
            "lag": self.lag.load(Ordering::Relaxed),
            "partitions": self.partitions.load(Ordering::Relaxed),
        })
    }
}

/// Counts a live connection task until dropped (shutdown waits for them).
pub struct LiveGuard<'a>(&'a AtomicUsize);

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        crate::limits::CLOSED.fetch_add(1, Ordering::Relaxed);
    }
}

impl App {
    /// The state of a server with this configuration: connects to Redis with `--redis` (an
    /// unreachable Redis is an error: the server must not start without the state it shares).
    pub async fn build(cfg: Config) -> Result<App, String> {
        let limits = Limits {
            max_connections: cfg.max_connections,
            max_connections_per_user: cfg.max_connections_per_user,
            single_connection_per_user: cfg.single_connection_per_user,
            max_rooms_per_connection: cfg.max_rooms_per_connection,
            send_queue: usize::try_from(cfg.send_queue).unwrap_or(usize::MAX),
            max_sse_per_user: usize::try_from(cfg.max_sse_per_user).unwrap_or(usize::MAX),
            max_sse: usize::try_from(cfg.max_sse).unwrap_or(usize::MAX),
            heartbeat_ms: cfg.heartbeat_ms,
            send_welcome: !cfg.no_welcome,
        };
        let hub = Arc::new(Hub::new(limits));
        let streams = StreamLimits {
            history: cfg.history,
            history_bytes: cfg.history_bytes,
            ttl: Duration::from_millis(cfg.stream_ttl_ms),
        };
        let max_tickets = usize::try_from(cfg.max_tickets_per_user).unwrap_or(usize::MAX);
        let ticket_ttl = Duration::from_millis(cfg.ticket_ttl_ms);
        let store_max = usize::try_from(cfg.store_max).unwrap_or(usize::MAX);
        let engine: Arc<dyn Engine> = match &cfg.redis {
            Some(url) => {
                let max_connections_per_user = cfg.max_connections_per_user;
                let settings = RedisSettings { streams, ticket_ttl, max_tickets, store_max, max_connections_per_user };
                Arc::new(RedisEngine::connect(url, hub.clone(), settings).await?)
            }
            None => Arc::new(MemoryEngine::new(
                hub.clone(),
                Tickets::new(ticket_ttl, max_tickets),
                Store::new(store_max, usize::try_from(cfg.store_bytes).unwrap_or(usize::MAX)),
                streams,
            )),
        };
        Ok(App {
            hub,
            engine,
            jwt: Jwt::new(cfg.secret()),
            source: SourceStats::default(),
            sessions: Sessions::default(),
            live: AtomicUsize::new(0),
            cfg,
        })
    }

    /// What the frame handler (`session.rs`) needs of the state.
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx { hub: &self.hub, engine: &*self.engine, cfg: &self.cfg }
    }

    pub fn live_guard(&self) -> LiveGuard<'_> {
        self.live.fetch_add(1, Ordering::SeqCst);
        LiveGuard(&self.live)
    }

    pub fn live_connections(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}
