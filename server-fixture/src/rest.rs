//! The HTTP routes: the ticket endpoint, the notification / task / broadcast API, and the
//! development routes (`/dev/token`, `/dev/drop`, `/dev/stats`, only under `--dev`).

use std::sync::Arc;
use std::time::Duration;

use resock::protocol::{ServerMessage, TaskUpdate};
use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::auth::Identity;
use crate::http::{engine_error, json_body, json_status, ok_json, only_if, service, user, with_app, ApiError};
use crate::hub::{encode, Kill};
use crate::state::App;

/// Request bodies are small JSON documents: 1 MiB at most.
const BODY_LIMIT: u64 = 1 << 20;

/// `POST /ws/ticket` with `Authorization: Bearer <JWT>`.
pub fn ticket(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("ws" / "ticket").and(warp::post()).and(user(app.clone())).and(with_app(app)).and_then(
        |who: Identity, app: Arc<App>| async move {
            let ticket = app.engine.issue_ticket(who).await.map_err(engine_error)?;
            Ok::<_, Rejection>(ok_json(&json!({ "ticket": ticket, "expires_in_ms": app.cfg.ticket_ttl_ms })))
        },
    )
}

#[derive(Deserialize)]
struct NewNotification {
    user_id: String,
    title: String,
    body: String,
}

#[derive(Deserialize)]
struct MarkRead {
    notification_ids: Vec<u64>,
}

#[derive(Deserialize)]
struct TaskBody {
    user_id: String,
    action: String,
    task: Value,
}

#[derive(Deserialize)]
struct Broadcast {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    exclude_user: Option<String>,
}

/// The longest user id the fixture takes, in bytes: ids are map keys.
pub const MAX_USER_ID_BYTES: usize = 256;

fn non_empty(field: &str, value: &str) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        Err(ApiError::reject(StatusCode::BAD_REQUEST, format!("`{field}` must not be empty")))
    } else if field == "user_id" && value.len() > MAX_USER_ID_BYTES {
        Err(ApiError::reject(StatusCode::BAD_REQUEST, format!("`user_id` is over {MAX_USER_ID_BYTES} bytes")))
    } else {
        Ok(())
    }
}

/// The notification, task and broadcast routes.
pub fn api(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let post_notification = warp::path!("api" / "notifications")
        .and(warp::post())
        .and(service(app.clone()))
        .and(json_body::<NewNotification>(BODY_LIMIT, app.cfg.body_timeout()))
        .and(with_app(app.clone()))
        .and_then(|_: Identity, body: NewNotification, app: Arc<App>| async move {
            non_empty("user_id", &body.user_id)?;
            let n = app.engine.notify(&body.user_id, body.title, body.body).await.map_err(engine_error)?;
            Ok::<_, Rejection>(json_status(&n, StatusCode::CREATED))
        });
    let list = warp::path!("api" / "notifications")
        .and(warp::get())
        .and(user(app.clone()))
        .and(with_app(app.clone()))
        .and_then(|who: Identity, app: Arc<App>| async move {
            let list = app.engine.notifications(&who.user_id).await.map_err(engine_error)?;
            Ok::<_, Rejection>(ok_json(&list))
        });
    let mark_read = warp::path!("api" / "notifications" / "mark-read")
        .and(warp::post())
        .and(user(app.clone()))
        .and(json_body::<MarkRead>(BODY_LIMIT, app.cfg.body_timeout()))
        .and(with_app(app.clone()))
        .and_then(|who: Identity, body: MarkRead, app: Arc<App>| async move {
            let marked = app.engine.mark_read(&who.user_id, body.notification_ids).await.map_err(engine_error)?;
            Ok::<_, Rejection>(ok_json(&json!({ "marked": marked })))
        });
    let read_all = warp::path!("api" / "notifications" / "read-all")
        .and(warp::post())
        .and(user(app.clone()))
        .and(with_app(app.clone()))
        .and_then(|who: Identity, app: Arc<App>| async move {
            // Pushes `all_read` only when something changed: a read-all loop must not fill the
            // user's history.
            let marked = app.engine.mark_all_read(&who.user_id).await.map_err(engine_error)?;
            Ok::<_, Rejection>(ok_json(&json!({ "marked": marked })))
        });
    let task = warp::path!("api" / "tasks" / String)
        .and(warp::post())
        .and(service(app.clone()))
        .and(json_body::<TaskBody>(BODY_LIMIT, app.cfg.body_timeout()))
        .and(with_app(app.clone()))
        .and_then(|task_id: String, _: Identity, body: TaskBody, app: Arc<App>| async move {
            non_empty("user_id", &body.user_id)?;
            non_empty("action", &body.action)?;
            let mut task = body.task;
            // The task carries its id: the one in the path unless the body names one.
            if let Value::Object(obj) = &mut task {
                obj.entry("id").or_insert_with(|| Value::String(task_id.clone()));
            }
            let msg = ServerMessage::TaskUpdate(TaskUpdate { action: body.action, task });
            let seq = app.engine.push(&body.user_id, msg).await.map_err(engine_error)?;
            Ok::<_, Rejection>(ok_json(&json!({ "task_id": task_id, "seq": seq })))
        });
    let broadcast = warp::path!("api" / "broadcast")
        .and(warp::post())
        .and(service(app.clone()))
        .and(json_body::<Broadcast>(BODY_LIMIT, app.cfg.body_timeout()))
        .and(with_app(app))
        .and_then(|_: Identity, body: Broadcast, app: Arc<App>| async move {
            non_empty("type", &body.kind)?;
            // Every type of the protocol means something to every client: reserved.
            if resock::protocol::audience(&body.kind).is_some() {
                return Err(ApiError::reject(
                    StatusCode::BAD_REQUEST,
                    format!("`type` {:?} is reserved by the protocol: broadcast an application type", body.kind),
                ));
            }
            let payload = body.payload.unwrap_or_else(|| json!({}));
            if !payload.is_object() {
                return Err(ApiError::reject(StatusCode::BAD_REQUEST, "`payload` must be a JSON object"));
            }
            let msg = ServerMessage::Unknown { kind: body.kind, payload };
            let delivered = app
                .engine
                .broadcast(encode(&msg, None, None), body.exclude_user.as_deref())
                .await
                .map_err(engine_error)?;
            Ok(ok_json(&json!({ "delivered": delivered })))
        });
    post_notification.or(list).or(mark_read).or(read_all).or(task).or(broadcast)
}

#[derive(Deserialize)]
struct DevToken {
    user_id: String,
    #[serde(default)]
    role: Option<String>,
    /// Lifetime of the token in seconds (default one hour).
    #[serde(default)]
    ttl_s: Option<u64>,
}

#[derive(Deserialize)]
struct DevDrop {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    refuse_ms: Option<u64>,
    /// Close with this code (and a close frame) instead of cutting: 1001, 1011, 1013, 4001...
    #[serde(default)]
    close_code: Option<u16>,
}

/// `GET /healthz`: 200 `{"engine", "ok": true}` while the engine can serve, 503 with
/// `"ok": false` and a `detail` while it cannot (Redis unreachable).
pub fn health(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("healthz").and(warp::get()).and(with_app(app)).map(|app: Arc<App>| {
        let health = app.engine.health();
        let status = if health.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        let mut body = serde_json::to_value(&health).unwrap_or_default();
        if app.cfg.kafka_brokers.is_some() {
            body["kafka"] = app.source.snapshot();
        }
        json_status(&body, status)
    })
}

/// `/dev/token`, `/dev/drop` and `/dev/stats`: 404 unless `--dev`.
pub fn dev(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let on = only_if(app.cfg.dev);
    let token = warp::path!("dev" / "token")
        .and(warp::post())
        .and(on.clone())
        .and(json_body::<DevToken>(BODY_LIMIT, app.cfg.body_timeout()))
        .and(with_app(app.clone()))
        .and_then(|body: DevToken, app: Arc<App>| async move {
            non_empty("user_id", &body.user_id)?;
            let ttl = Duration::from_secs(body.ttl_s.unwrap_or(3600).clamp(1, 86_400 * 30));
            let token = app.jwt.issue(&body.user_id, body.role.as_deref(), ttl);
            Ok::<_, Rejection>(ok_json(&json!({ "token": token })))
        });
    let drop = warp::path!("dev" / "drop")
        .and(warp::post())
        .and(on.clone())
        .and(json_body::<DevDrop>(BODY_LIMIT, app.cfg.body_timeout()))
        .and(with_app(app.clone()))
        .and_then(|body: DevDrop, app: Arc<App>| async move {
            let refuse = Duration::from_millis(body.refuse_ms.unwrap_or(0));
            let how = match body.close_code {
                Some(code @ (1000..=1003 | 1007..=1014 | 3000..=4999)) => Kill::Close(code, "Closed by /dev/drop"),
                Some(code) => {
                    return Err(ApiError::reject(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "close_code {code} cannot be sent in a close frame: use 1000-1003, 1007-1014 or 3000-4999"
                        ),
                    ))
                }
                None => Kill::Cut,
            };
            let dropped = app.hub.drop_connections(body.user_id.as_deref(), refuse, how);
            Ok::<_, Rejection>(ok_json(&json!({ "dropped": dropped })))
        });
    let stats = warp::path!("dev" / "stats")
        .and(warp::get())
        .and(on)
        .and(with_app(app))
        .map(|app: Arc<App>| ok_json(&app.hub.stats()));
    token.or(drop).or(stats)
}
