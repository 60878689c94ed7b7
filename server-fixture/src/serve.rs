//! Serving warp's routes over HTTP/1.1 on a listener, with the timeouts `warp::serve` lacks:
//! a request's head must arrive within `--header-timeout-ms` (hyper's header-read timeout, which
//! also ends a keep-alive connection that sends no next request), bodies are read under
//! `--body-timeout-ms` (`http::json_body`), and an accepted upgrade must complete within the
//! header timeout too (`upgrade.rs`). Graceful shutdown waits for the HTTP connections in flight (an
//! upgraded connection is no longer one: the hub closes those).

use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use warp::{Filter, Reply};

use crate::log;

/// The largest request head hyper buffers (request line and headers together); more: 431.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Accepts connections until `stop` resolves, then waits (at most `drain`) for the HTTP
/// connections in flight. Upgraded WebSocket connections are not waited for here: they run
/// in their own tasks and end through the hub.
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    stop: impl std::future::Future<Output = ()>,
    header_timeout: Duration,
    drain: Duration,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    // Every HTTP connection task holds a receiver: `closed()` tells when the last one ended.
    let (shutdown, watch) = tokio::sync::watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    if !is_connection_error(&e) {
                        log::info(format_args!("accept failed: {e}; retrying in 100 ms"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(warp::service(filter.clone()));
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let mut watch = watch.clone();
        tokio::spawn(async move {
            // A client that times out, resets or sends garbage ends only its own connection.
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = watch.wait_for(|stopping| *stopping) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    drop(watch);
    let _ = shutdown.send(true);
    let _ = tokio::time::timeout(drain, shutdown.closed()).await;
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}
