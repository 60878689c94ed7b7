//! The server's state: everything a request handler may touch. The bottom layer: it imports
//! no HTTP or route module (state <- HTTP helpers <- routes <- assembly in `server.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Jwt, Tickets};
use crate::config::Config;
use crate::engine::memory::{MemoryEngine, StreamLimits};
use crate::engine::redis::{RedisEngine, RedisSettings};
use crate::engine::Engine;
use crate::hub::{Hub, Limits};
use crate::store::Store;

/// Everything a request handler may touch.
pub struct App {
    pub cfg: Config,
    /// This instance's connections.
    pub hub: Arc<Hub>,
    /// What the instances share: memory, or Redis with `--redis`.
    pub engine: Arc<dyn Engine>,
    pub jwt: Jwt,
    live: AtomicUsize,
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
        Ok(App { hub, engine, jwt: Jwt::new(cfg.secret()), live: AtomicUsize::new(0), cfg })
    }

    pub fn live_guard(&self) -> LiveGuard<'_> {
        self.live.fetch_add(1, Ordering::SeqCst);
        LiveGuard(&self.live)
    }

    pub fn live_connections(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}
