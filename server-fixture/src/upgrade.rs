//! `GET /ws` and `GET /ws/notifications`: origin check (403), `/dev/drop` refusal (503), the
//! credentials (a failure still upgrades, then closes 4001), and the upgrade itself.

use std::sync::Arc;

use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::auth::authenticate;
use crate::http::{query, with_app, ApiError, CredentialQuery};
use crate::server::App;

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
        .and(warp::ws())
        .map(|app: Arc<App>, creds: CredentialQuery, ws: warp::ws::Ws| {
            // Redeem before the upgrade so that a ticket is taken exactly once.
            let who = authenticate(&app.jwt, &app.tickets, creds.ticket.as_deref(), creds.token.as_deref());
            // tungstenite refuses anything over the limit; the limit itself is allowed.
            let limit = usize::try_from(app.cfg.max_message_bytes).unwrap_or(usize::MAX);
            ws.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| async move {
                let _live = app.live_guard();
                crate::ws::run(socket, app.clone(), who).await;
            })
        })
}
