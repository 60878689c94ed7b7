//! Turns a text frame into what the core needs ([`Inbound`]) and what the app sees, with
//! `JSON.parse` and no serde_json. The core decides what the frame means
//! ([`crate::core::classify`]); this file reads values for it and applies the fix it names.

use js_sys::{Object, Reflect, JSON};
use wasm_bindgen::JsValue;

use crate::core::classify::{classify, Fix, JsonView, NOT_JSON};
use crate::core::Inbound;

pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

pub(crate) fn set(obj: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

fn is_object(v: &JsValue) -> bool {
    v.is_object() && !js_sys::Array::is_array(v)
}

impl JsonView for JsValue {
    fn is_object(&self) -> bool {
        is_object(self)
    }
    fn str(&self, key: &str) -> Option<String> {
        get(self, key).as_string()
    }
    fn u64(&self, key: &str) -> Option<u64> {
        let f = get(self, key).as_f64()?;
        (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_991.0).then_some(f as u64)
    }
    fn bool(&self, key: &str) -> Option<bool> {
        get(self, key).as_bool()
    }
    fn object(&self, key: &str) -> Option<JsValue> {
        Some(get(self, key)).filter(is_object)
    }
    fn has(&self, key: &str) -> bool {
        let v = get(self, key);
        !(v.is_undefined() || v.is_null())
    }
}

/// Parses one frame. `Err` carries a message for a `bad_frame` error.
pub(crate) fn parse(text: &str) -> Result<Inbound<JsValue>, &'static str> {
    let msg = JSON::parse(text).map_err(|_| NOT_JSON)?;
    let c = classify(&msg)?;
    match c.fix {
        Fix::None => {}
        Fix::EmptyPayload => set(&msg, "payload", &Object::new()),
        Fix::PayloadFromData => set(&msg, "payload", &get(&msg, "data")),
        Fix::LegacyError { code, message } => {
            set(&msg, "type", &JsValue::from_str("error"));
            let p = Object::new();
            set(&p, "code", &JsValue::from_str(code));
            set(&p, "message", &JsValue::from_str(&message));
            set(&msg, "payload", &p);
        }
    }
    Ok(Inbound { kind: c.kind, id: c.id, seq: c.seq, msg })
}
