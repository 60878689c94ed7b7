//! `GET /ws` and `GET /ws/notifications`: origin check (the CORS layer's, 403), `/dev/drop`
//! refusal (503), the credentials (a failure still upgrades, then closes 4001), and the
//! upgrade itself.
//!
//! The handshake is ours rather than `warp::ws()`, because warp's `Ws` cannot set tungstenite's
//! read buffer: its default is 128 KiB, zero-filled on a connection's first read, which made an
//! idle connection cost 138 KB. Here it is [`READ_BUFFER`] and the write buffer has a cap.

use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderMap, Response, StatusCode};
use warp::{Filter, Rejection, Reply};

use crate::http::{authenticate, query, with_app, ApiError, CredentialQuery};
use crate::state::App;
use crate::ws::Socket;

/// tungstenite's read buffer per connection. Messages larger than it are still read whole (the
/// buffer grows for one frame, up to `--max-message-bytes`); it only sets what an idle
/// connection holds.
const READ_BUFFER: usize = 1024;

/// Outgoing frames are written once this many bytes are buffered, or at every flush.
const WRITE_BUFFER: usize = 4 * 1024;

/// The most tungstenite may buffer for writing when the client does not read: its own pong and
/// close replies past the bounded send queue. Over it, the connection fails and is dropped.
const MAX_WRITE_BUFFER: usize = 2 << 20;

pub fn ws_route(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let path = warp::path("ws").and(warp::path::end()).or(warp::path!("ws" / "notifications")).unify();
    path.and(with_app(app))
        .and_then(|app: Arc<App>| async move {
            if app.hub.refusing() {
                Err(ApiError::reject(StatusCode::SERVICE_UNAVAILABLE, "not accepting connections right now"))
            } else {
                Ok(app)
            }
        })
        .and(query::<CredentialQuery>())
        .and(handshake())
        .then(|app: Arc<App>, creds: CredentialQuery, hs: Handshake| async move {
            // Redeem before the upgrade so that a ticket is taken exactly once.
            let who = authenticate(&app, creds.ticket.as_deref(), creds.token.as_deref()).await;
            // tungstenite refuses anything over the limit; the limit itself is allowed.
            let limit = usize::try_from(app.cfg.max_message_bytes).unwrap_or(usize::MAX);
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER)
                .write_buffer_size(WRITE_BUFFER)
                .max_write_buffer_size(MAX_WRITE_BUFFER.max(limit.saturating_mul(2)))
                .max_message_size(Some(limit))
                .max_frame_size(Some(limit));
            let accept = derive_accept_key(hs.key.as_bytes());
            tokio::spawn(async move {
                let _live = app.live_guard();
                // Boxed: the switch's state would otherwise take room in the task for the
                // connection's whole life (docs/BENCHMARKS.md, memory per connection).
                let within = app.cfg.header_timeout();
                let Some(socket) = Box::pin(switch(hs.on_upgrade, config, within)).await else { return };
                crate::ws::run(socket, app.clone(), who).await;
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "upgrade")
                .header(header::UPGRADE, "websocket")
                .header(header::SEC_WEBSOCKET_ACCEPT, accept)
                .body(warp::hyper::body::Bytes::new())
                .map(Reply::into_response)
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        })
}

/// Waits (at most `within`: `--header-timeout-ms`) for hyper to hand over the connection once
/// the 101 is sent, and wraps it.
async fn switch(on_upgrade: OnUpgrade, config: WebSocketConfig, within: Duration) -> Option<Socket> {
    let upgraded = match tokio::time::timeout(within, on_upgrade).await {
        Ok(Ok(upgraded)) => upgraded,
        _ => return None, // the client went away (or stalled) before the switch
    };
    Some(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await)
}

/// A valid WebSocket upgrade request (RFC 6455 §4.2.1).
struct Handshake {
    key: String,
    on_upgrade: OnUpgrade,
}

fn handshake() -> impl Filter<Extract = (Handshake,), Error = Rejection> + Clone {
    warp::get().and(warp::header::headers_cloned()).and(warp::ext::optional::<OnUpgrade>()).and_then(
        |headers: HeaderMap, on_upgrade: Option<OnUpgrade>| async move {
            let has = |name: header::HeaderName, token: &str| {
                headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
            };
            let expected = || ApiError::reject(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade");
            if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
                return Err(expected());
            }
            if headers.get(header::SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok()) != Some("13") {
                return Err(ApiError::reject(StatusCode::BAD_REQUEST, "Sec-WebSocket-Version must be 13"));
            }
            let key = headers
                .get(header::SEC_WEBSOCKET_KEY)
                .and_then(|v| v.to_str().ok())
                .filter(|k| !k.is_empty())
                .ok_or_else(|| ApiError::reject(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing"))?;
            let on_upgrade = on_upgrade.ok_or_else(expected)?;
            Ok(Handshake { key: key.to_owned(), on_upgrade })
        },
    )
}
