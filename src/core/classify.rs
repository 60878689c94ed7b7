//! What a server frame means to the machine, decided here from a read-only view of the decoded
//! JSON object: the shell only parses (`JSON.parse`) and carries values. The legacy shapes of the
//! seeds, the rate-limit wording, the default error code, when a `welcome` counts and the
//! default payload are all decided in [`classify`], tested natively over `serde_json::Value`.

use alloc::string::String;

use super::types::InKind;
use crate::protocol::ErrorCode;

/// The frame types whose meaning the machine decides itself; every other `type` is the
/// application's ([`InKind::Other`]). A view reads `type` as an index into [`Special::ALL`]
/// (by [`Special::as_str`]), so the fast view in the shell never copies the type string into
/// wasm memory: it looks the JS string up in a table made once from this list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    Ping,
    Pong,
    Welcome,
    Resumed,
    Error,
}

impl Special {
    pub const ALL: [Special; 5] = [Special::Ping, Special::Pong, Special::Welcome, Special::Resumed, Special::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Special::Ping => "ping",
            Special::Pong => "pong",
            Special::Welcome => "welcome",
            Special::Resumed => "resumed",
            Special::Error => "error",
        }
    }

    /// The type named `name`, if the machine decides it.
    pub fn from_name(name: &str) -> Option<Special> {
        Special::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// The envelope's `type`, as far as the machine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeTag {
    /// No `type`, or not a string.
    Missing,
    Special(Special),
    /// Any other string: the application's.
    Other,
}

/// The envelope's fields, read together: everything [`classify`] needs of a common frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub kind: TypeTag,
    /// `id`, when it is a string.
    pub id: Option<String>,
    /// `seq`, when it is a whole number (see [`whole_number`]).
    pub seq: Option<u64>,
    /// `payload` is present and not `null`.
    pub has_payload: bool,
}

/// A JSON number as a `seq` or a count: a whole number 0 ..= 2⁵³ − 1, else `None`.
pub fn whole_number(f: f64) -> Option<u64> {
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_991.0).then_some(f as u64)
}

/// A read-only view of one decoded JSON value: the shell implements it for `JsValue` (with
/// `Reflect`, and a faster one for a whole frame in `web/parse.rs`), the native tests for
/// `serde_json::Value`. Each read answers `None` when the key is absent or its value has
/// another JSON type.
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
    /// The envelope's fields, read together. This default reads them one by one; the shell's
    /// fast view (issue 11) has them from one JS call that parsed the frame.
    fn envelope(&self) -> Envelope {
        read_envelope(self)
    }
}

/// The envelope read field by field (what [`JsonView::envelope`] does unless a view knows better).
pub fn read_envelope<V: JsonView>(v: &V) -> Envelope {
    let kind = match v.str("type") {
        None => TypeTag::Missing,
        Some(t) => Special::from_name(&t).map_or(TypeTag::Other, TypeTag::Special),
    };
    Envelope { kind, id: v.str("id"), seq: v.u64("seq"), has_payload: v.has("payload") }
}

impl Envelope {
    /// The envelope as the shell's one-call reader reports it (`src/web/fast.js`), three numbers:
    /// `what` 0 no string `type`, 1 another type, 2 + i the i-th of [`Special::ALL`]; `seq` the
    /// `seq` number (NaN when absent or not a number); `flags` bit 1 a non-null `payload`, bit 2 a
    /// string `id` (read by `id` only then: replies are the rare frames).
    pub fn from_numbers(what: f64, seq: f64, flags: f64, id: impl FnOnce() -> Option<String>) -> Envelope {
        let flags = flags as u32;
        let kind = if what < 1.0 {
            TypeTag::Missing
        } else {
            Special::ALL.get((what as usize).wrapping_sub(2)).copied().map_or(TypeTag::Other, TypeTag::Special)
        };
        Envelope {
            kind,
            id: if flags & 2 != 0 { id() } else { None },
            seq: whole_number(seq),
            has_payload: flags & 1 != 0,
        }
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
///
/// The common frame (an application type with a payload) costs the envelope read and nothing
/// else: the payload is read only for the types the machine decides.
pub fn classify<V: JsonView>(msg: &V) -> Result<Classified, &'static str> {
    if !msg.is_object() {
        return Err(NOT_OBJECT);
    }
    let Envelope { kind, id, seq, has_payload } = msg.envelope();
    let special = match kind {
        TypeTag::Other => {
            let fix = if has_payload { Fix::None } else { Fix::EmptyPayload };
            return Ok(Classified { kind: InKind::Other, id, seq, fix });
        }
        TypeTag::Special(s) => s,
        TypeTag::Missing => {
            // Legacy shape seen in the seeds: {"error": "Rate limit exceeded"}.
            let message = msg.str("error").ok_or(NO_TYPE)?;
            let code = if mentions_rate_limit(&message) { ErrorCode::RateLimited.as_str() } else { DEFAULT_CODE };
            let kind = InKind::Error { code: code.into(), message: message.clone() };
            return Ok(Classified { kind, id, seq, fix: Fix::LegacyError { code, message } });
        }
    };
    let payload = msg.object("payload");
    let mut fix = if has_payload { Fix::None } else { Fix::EmptyPayload };
    let kind = match special {
        Special::Ping => InKind::Ping,
        Special::Pong => InKind::Pong,
        // A welcome counts only whole: without its fields it is an ordinary message.
        Special::Welcome => payload
            .and_then(|p| {
                Some(InKind::Welcome {
                    heartbeat_ms: p.u64("heartbeat_ms")?,
                    epoch: p.str("epoch")?,
                    seq: p.u64("seq")?,
                })
            })
            .unwrap_or(InKind::Other),
        Special::Resumed => InKind::Resumed { complete: payload.and_then(|p| p.bool("complete")).unwrap_or(false) },
        Special::Error => {
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
    };
    Ok(Classified { kind, id, seq, fix })
}
