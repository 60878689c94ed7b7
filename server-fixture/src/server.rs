//! Assembly: the route table, start-up and shutdown (the top layer: state <- HTTP helpers <-
//! routes <- here).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warp::{Filter, Reply};

use crate::config::Config;
use crate::state::App;
use crate::{http, log, rest, sse};

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    kafka: Option<crate::kafka::Source>,
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

    /// Leaves the Kafka group (at most 3 s), closes every socket with 1001, waits for the
    /// connection tasks (at most 3 s) and stops.
    pub async fn shutdown(mut self) {
        if let Some(kafka) = self.kafka.take() {
            kafka.stop(Duration::from_secs(3)).await;
        }
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
    let app = Arc::new(App::build(cfg).await?);
    let kafka = crate::kafka::start(&app)?;
    tokio::spawn(sweep_streams(Arc::downgrade(&app)));
    let routes = routes(app.clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let stop = async move {
        let _ = stop_rx.await;
    };
    let header_timeout = app.cfg.header_timeout();
    let task = tokio::spawn(crate::serve::serve(listener, routes, stop, header_timeout, Duration::from_secs(3)));
    Ok(Running { addr, app, stop: Some(stop_tx), task, kafka })
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
        let dropped = app.engine.sweep().await.unwrap_or(0);
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
        .or(rest::dev(app.clone()))
        .or(rest::health(app.clone()))
        .or(crate::metrics::route(app.clone()));
    let static_files = http::only_if(app.cfg.static_dir.is_some())
        .and(warp::get())
        .and(warp::fs::dir(app.cfg.static_dir.clone().unwrap_or_default()));
    // CORS outside the error handler, so that error answers carry CORS headers too; and the
    // error handler once more outside CORS, so that its own refusals are JSON as well.
    api.or(static_files).recover(http::recover).with(cors).recover(http::recover)
}
