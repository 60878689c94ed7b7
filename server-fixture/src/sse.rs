//! `GET /sse/notifications`: the user stream as Server-Sent Events, resumable with
//! `Last-Event-ID`, with a keep-alive comment. Same credentials and origin rules as `/ws`;
//! refused credentials get 401 (an event stream has no close codes).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use warp::http::StatusCode;
use warp::sse::Event;
use warp::{Filter, Rejection, Reply};

use crate::auth::AuthError;
use crate::http::{authenticate, query, with_app, ApiError, CredentialQuery};
use crate::hub::SseRefused;
use crate::state::App;

/// Removes the subscriber from the hub when the response stream is dropped.
struct Subscription {
    app: Arc<App>,
    user: String,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.app.hub.unsubscribe_sse(&self.user, self.id);
        // Let the engine drop what this instance no longer needs (a Redis subscription).
        let (app, user) = (self.app.clone(), std::mem::take(&mut self.user));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = app.engine.user_gone(&user).await;
            });
        }
    }
}

pub fn route(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("sse" / "notifications")
        .and(warp::get())
        .and(with_app(app))
        .and(query::<CredentialQuery>())
        .and(warp::header::optional::<String>("last-event-id"))
        .and_then(|app: Arc<App>, creds: CredentialQuery, last: Option<String>| async move {
            // Checked before the credentials, so that a bad header does not spend a ticket.
            let last_event_id = match last.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() => Some(s.parse::<u64>().map_err(|_| {
                    ApiError::reject(StatusCode::BAD_REQUEST, "Last-Event-ID must be a seq (a whole number)")
                })?),
                _ => creds.last_event_id,
            };
            if app.hub.refusing_sse() {
                return Err(ApiError::reject(StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
            }
            let who = authenticate(&app, creds.ticket.as_deref(), creds.token.as_deref()).await.map_err(|e| {
                let status = if e == AuthError::Unavailable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::UNAUTHORIZED
                };
                ApiError::reject(status, e.describe())
            })?;
            let (id, rx) = app.hub.subscribe_sse(&who.user_id).map_err(|e| match e {
                SseRefused::PerUser => ApiError::reject(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("at most {} SSE streams per user: close one first", app.cfg.max_sse_per_user),
                ),
                SseRefused::Total => {
                    ApiError::reject(StatusCode::SERVICE_UNAVAILABLE, "too many SSE streams: try again later")
                }
            })?;
            let sub = Subscription { app: app.clone(), user: who.user_id.clone(), id };
            // Subscribed first, then the replay read: a message pushed in between arrives live
            // (and maybe in the replay too); the filter below sends each seq once, in order.
            app.engine.user_watched(&who.user_id).await.map_err(crate::http::engine_error)?;
            let replay = match last_event_id {
                Some(since) => app.engine.replay(&who.user_id, since).await.map_err(crate::http::engine_error)?,
                None => Vec::new(),
            };
            let keepalive = Duration::from_millis(app.cfg.sse_keepalive_ms);
            let live = futures_util::stream::unfold((rx, sub), |(mut rx, sub)| async move {
                rx.recv().await.map(|item| (item, (rx, sub)))
            });
            let mut last_sent = 0u64;
            let events = futures_util::stream::iter(replay).chain(live).filter_map(move |item| {
                let fresh = item.seq > last_sent;
                last_sent = last_sent.max(item.seq);
                std::future::ready(fresh.then(|| {
                    Ok::<_, Infallible>(
                        Event::default().id(item.seq.to_string()).event(item.kind()).data(item.payload()),
                    )
                }))
            });
            Ok::<_, Rejection>(warp::sse::reply(warp::sse::keep_alive().interval(keepalive).stream(events)))
        })
}
