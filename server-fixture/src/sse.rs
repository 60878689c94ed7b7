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

use crate::auth::authenticate;
use crate::http::{query, with_app, ApiError, CredentialQuery};
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
            let who = authenticate(&app.jwt, &app.tickets, creds.ticket.as_deref(), creds.token.as_deref())
                .map_err(|e| ApiError::reject(StatusCode::UNAUTHORIZED, e.describe()))?;
            let (id, replay, rx) = app.hub.subscribe_sse(&who.user_id, last_event_id).map_err(|e| match e {
                SseRefused::PerUser => ApiError::reject(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("at most {} SSE streams per user: close one first", app.cfg.max_sse_per_user),
                ),
                SseRefused::Total => {
                    ApiError::reject(StatusCode::SERVICE_UNAVAILABLE, "too many SSE streams: try again later")
                }
            })?;
            let keepalive = Duration::from_millis(app.cfg.sse_keepalive_ms);
            let sub = Subscription { app, user: who.user_id, id };
            let live = futures_util::stream::unfold((rx, sub), |(mut rx, sub)| async move {
                rx.recv().await.map(|item| (item, (rx, sub)))
            });
            let events = futures_util::stream::iter(replay).chain(live).map(|item| {
                Ok::<_, Infallible>(Event::default().id(item.seq.to_string()).event(item.kind()).data(item.payload()))
            });
            Ok::<_, Rejection>(warp::sse::reply(warp::sse::keep_alive().interval(keepalive).stream(events)))
        })
}
