//! What a server frame means to the machine, decided here from a read-only view of the decoded
//! JSON object: the shell only parses (`JSON.parse`) and carries values. The legacy shapes of the
//! seeds, the rate-limit wording, the default error code, when a `welcome` counts and the
//! default payload are all decided in [`classify`], tested natively over `serde_json::Value`.

use alloc::string::String;

use super::types::InKind;
use crate::protocol::ErrorCode;

/// A read-only view of one decoded JSON value: the shell implements it for `JsValue` (with
/// `Reflect`), the native tests for `serde_json::Value`. Each read answers `None` when the key
/// is absent or its value has another JSON type.
///
/// A faster view (issue 11: one JS helper that returns the envelope's fields at once) fits
/// here: it overrides [`JsonView::envelope`] and answers the other reads from what it holds.
pub trait JsonView: Sized {
    /// True for a JSON object (not an array, not `null`).
    fn is_object(&self) -> bool;
    /// The string at `key`.
    fn str(&self, key: &str) -> Option<String>;
    /// The whole number at `key` (0 ..= 2⁵³ − 1).
    fn u64(&self, key: &str) -> Option<u64>;
    /// The boolean at `key`.
    fn bool(&self, key: &str) -> Option<bool>;
    /// The object at `key`.
    fn object(&self, key: &str) -> Option<Self>;
    /// True when `key` is present and not `null`.
    fn has(&self, key: &str) -> bool;
    /// The envelope's `type`, `id` and `seq`, read together.
    fn envelope(&self) -> (Option<String>, Option<String>, Option<u64>) {
        (self.str("type"), self.str("id"), self.u64("seq"))
    }
}

/// What the shell must change in the object before the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Nothing: it has a `payload`.
    None,
    /// `payload` absent or `null`: set it to `{}`.
    EmptyPayload,
    /// The legacy `{"type": "error", "data": {...}}`: set `payload` to `data`.
    PayloadFromData,
    /// The legacy `{"error": "..."}` with no `type`: set `type` to `"error"` and `payload` to
    /// `{code, message}`.
    LegacyError { code: &'static str, message: String },
}

/// A frame classified: what the machine needs, and the fix for the application's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub kind: InKind,
    pub id: Option<String>,
    pub seq: Option<u64>,
    pub fix: Fix,
}

/// The `bad_frame` message for text that is not JSON (the shell's parser says so).
pub const NOT_JSON: &str = "the server sent a frame that is not JSON";
/// The `bad_frame` message for a binary frame: the protocol has text frames only.
pub const BINARY: &str = "the server sent a binary frame";
const NOT_OBJECT: &str = "the server sent a frame that is not a JSON object";
const NO_TYPE: &str = "the server sent a frame with no `type`";
/// The code of a server error that names none.
const DEFAULT_CODE: &str = "server_error";

/// True when a legacy error text speaks of the rate limit ("Rate limit exceeded").
fn mentions_rate_limit(text: &str) -> bool {
    text.as_bytes().windows(10).any(|w| w.eq_ignore_ascii_case(b"rate limit"))
}

/// Classifies one decoded frame. `Err` carries the message of a `bad_frame` error.
pub fn classify<V: JsonView>(msg: &V) -> Result<Classified, &'static str> {
    if !msg.is_object() {
        return Err(NOT_OBJECT);
    }
    let (kind, id, seq) = msg.envelope();
    let Some(kind) = kind else {
        // Legacy shape seen in the seeds: {"error": "Rate limit exceeded"}.
        let message = msg.str("error").ok_or(NO_TYPE)?;
        let code = if mentions_rate_limit(&message) { ErrorCode::RateLimited.as_str() } else { DEFAULT_CODE };
        let kind = InKind::Error { code: code.into(), message: message.clone() };
        return Ok(Classified { kind, id, seq, fix: Fix::LegacyError { code, message } });
    };
    let payload = msg.object("payload");
    let mut fix = if msg.has("payload") { Fix::None } else { Fix::EmptyPayload };
    let kind = match kind.as_str() {
        "ping" => InKind::Ping,
        "pong" => InKind::Pong,
        // A welcome counts only whole: without its fields it is an ordinary message.
        "welcome" => payload
            .and_then(|p| {
                Some(InKind::Welcome {
                    heartbeat_ms: p.u64("heartbeat_ms")?,
                    epoch: p.str("epoch")?,
                    seq: p.u64("seq")?,
                })
            })
            .unwrap_or(InKind::Other),
        "resumed" => InKind::Resumed { complete: payload.and_then(|p| p.bool("complete")).unwrap_or(false) },
        "error" => {
            // Legacy shape: {"type": "error", "data": {...}}.
            let body = match payload {
                Some(p) => Some(p),
                None => {
                    let data = msg.object("data");
                    if data.is_some() {
                        fix = Fix::PayloadFromData;
                    }
                    data
                }
            };
            let code = body.as_ref().and_then(|b| b.str("code")).unwrap_or_else(|| DEFAULT_CODE.into());
            let message = body.as_ref().and_then(|b| b.str("message")).unwrap_or_default();
            InKind::Error { code, message }
        }
        _ => InKind::Other,
    };
    Ok(Classified { kind, id, seq, fix })
}
