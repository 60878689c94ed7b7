//! Turns a text frame into what the core needs ([`Inbound`]) and what the app sees (the
//! parsed object, with `payload` defaulted to `{}`), with `JSON.parse` and no serde_json.

use js_sys::{Object, Reflect, JSON};
use wasm_bindgen::JsValue;

use crate::core::{InKind, Inbound};

pub fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

pub fn set(obj: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

fn as_u64(v: &JsValue) -> Option<u64> {
    let f = v.as_f64()?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_991.0).then_some(f as u64)
}

fn is_object(v: &JsValue) -> bool {
    v.is_object() && !js_sys::Array::is_array(v)
}

/// Parses one frame. `Err` carries a message for a `bad_frame` error.
pub fn parse(text: &str) -> Result<Inbound<JsValue>, &'static str> {
    let msg = JSON::parse(text).map_err(|_| "the server sent a frame that is not JSON")?;
    if !is_object(&msg) {
        return Err("the server sent a frame that is not a JSON object");
    }
    let id = get(&msg, "id").as_string();
    let seq = as_u64(&get(&msg, "seq"));
    let mut payload = get(&msg, "payload");
    let kind = match get(&msg, "type").as_string() {
        None => {
            // Legacy shape seen in the seeds: {"error": "Rate limit exceeded"}.
            let Some(message) = get(&msg, "error").as_string() else {
                return Err("the server sent a frame with no `type`");
            };
            let rate = message.as_bytes().windows(10).any(|w| w.eq_ignore_ascii_case(b"rate limit"));
            let code = if rate { "rate_limited" } else { "server_error" };
            set(&msg, "type", &JsValue::from_str("error"));
            let p = Object::new();
            set(&p, "code", &JsValue::from_str(code));
            set(&p, "message", &JsValue::from_str(&message));
            payload = p.into();
            InKind::Error { code: code.into(), message }
        }
        Some(kind) => match kind.as_str() {
            "ping" => InKind::Ping,
            "pong" => InKind::Pong,
            "welcome" => {
                let hb = as_u64(&get(&payload, "heartbeat_ms"));
                let epoch = get(&payload, "epoch").as_string();
                let seq = as_u64(&get(&payload, "seq"));
                match (hb, epoch, seq) {
                    (Some(heartbeat_ms), Some(epoch), Some(seq)) => InKind::Welcome { heartbeat_ms, epoch, seq },
                    _ => InKind::Other,
                }
            }
            "resumed" => InKind::Resumed { complete: get(&payload, "complete").as_bool().unwrap_or(false) },
            "error" => {
                // Legacy shape: {"type": "error", "data": {...}}.
                if !is_object(&payload) && is_object(&get(&msg, "data")) {
                    payload = get(&msg, "data");
                }
                let code = get(&payload, "code").as_string().unwrap_or_else(|| "server_error".into());
                let message = get(&payload, "message").as_string().unwrap_or_default();
                InKind::Error { code, message }
            }
            _ => InKind::Other,
        },
    };
    if payload.is_undefined() || payload.is_null() {
        payload = Object::new().into(); // absent or null both mean {}
    }
    set(&msg, "payload", &payload);
    Ok(Inbound { kind, id, seq, msg })
}
