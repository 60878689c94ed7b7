//! The server's state: everything a request handler may touch. The bottom layer: it imports
//! no HTTP or route module (state <- HTTP helpers <- routes <- assembly in `server.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::auth::{Jwt, Tickets};
use crate::config::Config;
use crate::hub::{Hub, Limits};
use crate::store::Store;

/// Everything a request handler may touch.
pub struct App {
    pub cfg: Config,
    pub hub: Hub,
    pub jwt: Jwt,
    pub tickets: Tickets,
    pub store: Store,
    /// Held while a REST route changes the store and pushes the change, so that the order of
    /// user-stream seqs is the order of the changes (an `all_read` never overtakes a newer
    /// notification).
    pub write_order: std::sync::Mutex<()>,
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
    pub fn new(cfg: Config) -> Self {
        let limits = Limits {
            max_connections: cfg.max_connections,
            max_connections_per_user: cfg.max_connections_per_user,
            single_connection_per_user: cfg.single_connection_per_user,
            max_rooms_per_connection: cfg.max_rooms_per_connection,
            send_queue: usize::try_from(cfg.send_queue).unwrap_or(usize::MAX),
            history: cfg.history,
            history_bytes: cfg.history_bytes,
            stream_ttl: Duration::from_millis(cfg.stream_ttl_ms),
            max_sse_per_user: usize::try_from(cfg.max_sse_per_user).unwrap_or(usize::MAX),
            max_sse: usize::try_from(cfg.max_sse).unwrap_or(usize::MAX),
            heartbeat_ms: cfg.heartbeat_ms,
            send_welcome: !cfg.no_welcome,
        };
        App {
            hub: Hub::new(limits),
            jwt: Jwt::new(cfg.secret()),
            tickets: Tickets::new(
                Duration::from_millis(cfg.ticket_ttl_ms),
                usize::try_from(cfg.max_tickets_per_user).unwrap_or(usize::MAX),
            ),
            store: Store::new(
                usize::try_from(cfg.store_max).unwrap_or(usize::MAX),
                usize::try_from(cfg.store_bytes).unwrap_or(usize::MAX),
            ),
            write_order: std::sync::Mutex::new(()),
            live: AtomicUsize::new(0),
            cfg,
        }
    }

    pub fn live_guard(&self) -> LiveGuard<'_> {
        self.live.fetch_add(1, Ordering::SeqCst);
        LiveGuard(&self.live)
    }

    pub fn live_connections(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}
