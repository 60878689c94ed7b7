//! The application state, the route table, start-up and shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::auth::{Jwt, Tickets};
use crate::config::Config;
use crate::hub::{Hub, Limits};
use crate::store::Store;
use crate::{http, log, rest, sse};

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

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// `http://HOST:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://HOST:PORT`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Closes every socket with 1001, waits for the connection tasks (at most 3 s) and stops.
    pub async fn shutdown(mut self) {
        let closed = self.app.hub.shutdown();
        log::info(format_args!("shutting down: closing {closed} connections with 1001"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.app.live_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(Duration::from_secs(3), &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

/// Validates the configuration, binds, and serves in the background.
pub async fn start(cfg: Config) -> Result<Running, String> {
    cfg.validate()?;
    let listener =
        tokio::net::TcpListener::bind(cfg.addr).await.map_err(|e| format!("cannot listen on {}: {e}", cfg.addr))?;
    let addr = listener.local_addr().map_err(|e| format!("cannot read the bound address: {e}"))?;
    let app = Arc::new(App::new(cfg));
    tokio::spawn(sweep_streams(Arc::downgrade(&app)));
    let routes = routes(app.clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let stop = async move {
        let _ = stop_rx.await;
    };
    let header_timeout = app.cfg.header_timeout();
    let task = tokio::spawn(crate::serve::serve(listener, routes, stop, header_timeout, Duration::from_secs(3)));
    Ok(Running { addr, app, stop: Some(stop_tx), task })
}

/// Drops idle user streams (`--stream-ttl-ms`) every quarter of the TTL (at most every minute),
/// until the app is gone.
async fn sweep_streams(app: std::sync::Weak<App>) {
    let every = app.upgrade().map_or(Duration::from_secs(60), |a| {
        (Duration::from_millis(a.cfg.stream_ttl_ms) / 4).clamp(Duration::from_millis(10), Duration::from_secs(60))
    });
    loop {
        tokio::time::sleep(every).await;
        let Some(app) = app.upgrade() else { return };
        let dropped = app.hub.sweep(std::time::Instant::now());
        if dropped > 0 {
            log::info(format_args!("dropped {dropped} idle user streams"));
        }
    }
}

/// The whole route table.
pub fn routes(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    // The origin allowlist lives here: a request whose `Origin` is present and not allowed is
    // refused 403 before any route runs (a WebSocket upgrade included).
    let cors = {
        let base = warp::cors()
            .allow_methods(["GET", "POST", "OPTIONS"])
            .allow_headers(["authorization", "content-type", "last-event-id"])
            .max_age(600);
        if app.cfg.allowed_origins.is_empty() {
            base.allow_any_origin()
        } else {
            base.allow_origins(app.cfg.allowed_origins.iter().map(String::as_str))
        }
    };
    let api = rest::ticket(app.clone())
        .or(crate::upgrade::ws_route(app.clone()))
        .or(sse::route(app.clone()))
        .or(rest::api(app.clone()))
        .or(rest::dev(app.clone()));
    let static_files = only_if(app.cfg.static_dir.is_some())
        .and(warp::get())
        .and(warp::fs::dir(app.cfg.static_dir.clone().unwrap_or_default()));
    // CORS outside the error handler, so that error answers carry CORS headers too; and the
    // error handler once more outside CORS, so that its own refusals are JSON as well.
    api.or(static_files).recover(http::recover).with(cors).recover(http::recover)
}

/// A JSON body with a status.
pub fn json_status<T: serde::Serialize>(body: &T, status: StatusCode) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// Rejects every request but those this filter lets through: the shared 404 for routes that
/// exist only under `--dev`.
pub fn only_if(on: bool) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::any()
        .and_then(move || async move {
            if on {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
}
