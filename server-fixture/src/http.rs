//! HTTP plumbing shared by the routes: typed rejections answered as `{"error": "..."}`,
//! bearer-token auth, JSON bodies and the query string. (The origin allowlist is the CORS
//! layer's, in `server.rs`: it refuses a disallowed `Origin` on every route, upgrades included.)

use std::convert::Infallible;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::auth::{bearer, AuthError, Identity, Role};
use crate::engine::EngineError;
use crate::state::App;

/// A request refused with a status and a message a person can act on.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    pub fn reject(status: StatusCode, message: impl Into<String>) -> Rejection {
        warp::reject::custom(ApiError { status, message: message.into() })
    }
}

/// Answers every rejection with a JSON body `{"error": "..."}` and the right status.
pub async fn recover(err: Rejection) -> Result<warp::reply::Response, Infallible> {
    let (status, message) = if let Some(e) = err.find::<ApiError>() {
        (e.status, e.message.clone())
    } else if err.is_not_found() {
        (StatusCode::NOT_FOUND, "not found".to_owned())
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed".to_owned())
    } else if err.find::<warp::reject::PayloadTooLarge>().is_some() {
        (StatusCode::PAYLOAD_TOO_LARGE, "request body too large".to_owned())
    } else if err.find::<warp::reject::LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "a Content-Length is required".to_owned())
    } else if let Some(e) = err.find::<warp::filters::cors::CorsForbidden>() {
        (StatusCode::FORBIDDEN, e.to_string())
    } else {
        (StatusCode::BAD_REQUEST, format!("bad request: {err:?}"))
    };
    // Client input in a message (a serde error quoting the body, say) is clipped.
    Ok(json_status(&serde_json::json!({ "error": crate::text::clip(message) }), status))
}

pub fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// Resolves the credentials of a `/ws` or `/sse` request: a ticket, a token, or both (then they
/// must name the same user, so that a ticket cannot be used under another user's token).
pub async fn authenticate(app: &App, ticket: Option<&str>, token: Option<&str>) -> Result<Identity, AuthError> {
    let redeem = |t| async move {
        app.engine.redeem_ticket(t).await.map_err(|e| match e {
            EngineError::Unavailable(_) => AuthError::Unavailable,
            _ => AuthError::BadTicket,
        })
    };
    match (ticket, token) {
        (Some(t), None) => redeem(t).await,
        (None, Some(tok)) => app.jwt.verify(tok),
        (Some(t), Some(tok)) => {
            let by_ticket = redeem(t).await?;
            let by_token = app.jwt.verify(tok)?;
            if by_ticket.user_id == by_token.user_id {
                Ok(by_ticket)
            } else {
                Err(AuthError::Mismatch)
            }
        }
        (None, None) => Err(AuthError::Missing),
    }
}

/// An engine refusal as an HTTP answer: 503 when the shared store is unreachable (nothing was
/// done), 429 for too many tickets.
pub fn engine_error(e: EngineError) -> Rejection {
    let status = match e {
        EngineError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        EngineError::TooManyTickets(_) | EngineError::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
        EngineError::BadTicket => StatusCode::UNAUTHORIZED,
    };
    ApiError::reject(status, e.to_string())
}

/// The caller named by `Authorization: Bearer <JWT>`: 401 when missing or invalid.
pub fn user(app: Arc<App>) -> impl Filter<Extract = (Identity,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization").and(with_app(app)).and_then(
        |header: Option<String>, app: Arc<App>| async move {
            let token = bearer(header.as_deref())
                .ok_or_else(|| ApiError::reject(StatusCode::UNAUTHORIZED, "missing Authorization: Bearer <JWT>"))?;
            app.jwt.verify(token).map_err(|e| ApiError::reject(StatusCode::UNAUTHORIZED, e.describe()))
        },
    )
}

/// Like [`user`], and the token must carry `"role": "service"` (403 otherwise).
pub fn service(app: Arc<App>) -> impl Filter<Extract = (Identity,), Error = Rejection> + Clone {
    user(app).and_then(|who: Identity| async move {
        if who.role == Role::Service {
            Ok(who)
        } else {
            Err(ApiError::reject(
                StatusCode::FORBIDDEN,
                "this route needs a service token (claim \"role\": \"service\")",
            ))
        }
    })
}

/// A JSON body of type `T`: 400 with the parser's words when it does not fit, 413 over
/// `limit` bytes, 408 when it has not arrived whole within `within` (`--body-timeout-ms`: a
/// body sent a byte every few seconds would otherwise hold its connection forever). An empty
/// body parses as `{}` (so a missing field is named).
pub fn json_body<T: DeserializeOwned + Send>(
    limit: u64,
    within: std::time::Duration,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    raw_body(limit, within).and_then(|bytes: Vec<u8>| async move {
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        serde_json::from_slice::<T>(bytes)
            .map_err(|e| ApiError::reject(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
    })
}

/// The body's bytes: 413 over `limit` bytes, 408 when it has not arrived whole within `within`.
pub fn raw_body(
    limit: u64,
    within: std::time::Duration,
) -> impl Filter<Extract = (Vec<u8>,), Error = Rejection> + Clone {
    warp::body::stream().and_then(move |body| async move {
        tokio::time::timeout(within, read_limited(body, limit)).await.map_err(|_| {
            ApiError::reject(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body took over {} ms", within.as_millis()),
            )
        })?
    })
}

/// Reads a body, refusing it (413) once it passes `limit` bytes.
async fn read_limited<S, B>(body: S, limit: u64) -> Result<Vec<u8>, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use futures_util::StreamExt;
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::reject(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}")))?;
        if (bytes.len() + chunk.remaining()) as u64 > limit {
            return Err(ApiError::reject(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {limit} bytes")));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            bytes.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(bytes)
}

/// The query string parsed into `T` (an absent query string parses as empty).
pub fn query<T: DeserializeOwned + Send + 'static>() -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify().and_then(|raw: String| async move {
        serde_urlencoded::from_str::<T>(&raw)
            .map_err(|e| ApiError::reject(StatusCode::BAD_REQUEST, format!("bad query string: {e}")))
    })
}

/// The `ticket` / `token` query of `/ws` and `/sse`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CredentialQuery {
    pub ticket: Option<String>,
    pub token: Option<String>,
    /// For SSE clients that cannot set the `Last-Event-ID` header.
    pub last_event_id: Option<u64>,
    /// SSE only: the epoch the client knows (empty: none yet); its presence asks for an SSE
    /// session (welcome, `resumed`, `POST /sse/send`).
    pub epoch: Option<String>,
}

pub fn ok_json<T: serde::Serialize>(body: &T) -> warp::reply::Response {
    warp::reply::json(body).into_response()
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
