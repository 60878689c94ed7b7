//! The options object of `new Client({...})`, read with `Reflect` and checked: a bad option
//! throws a `TypeError` that names it.

use js_sys::{Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};

#[cfg(feature = "sse")]
use crate::core::config::check_url;
use crate::core::config::{check_urls, ConfigError};
use crate::core::frames::concat;
use crate::core::{Backoff, Config, OutboxLimits};

/// Where the token comes from: none, a fixed string, or a function called per attempt.
#[derive(Clone)]
pub enum TokenSource {
    None,
    Fixed(String),
    Provider(Function),
}

#[derive(Clone)]
pub struct Options {
    pub url: String,
    pub ticket_url: Option<String>,
    pub token: TokenSource,
    pub config: Config,
    /// The name of the lock and channel the tabs sharing a socket use (option `share`).
    #[cfg_attr(not(feature = "share"), allow(dead_code))]
    pub share: Option<String>,
    /// The SSE fallback's stream and send URLs (option `sseUrl`; `sseSendUrl`, else `send` beside it).
    #[cfg_attr(not(feature = "sse"), allow(dead_code))]
    pub sse: Option<(String, String)>,
}

fn type_error(msg: &str) -> JsValue {
    js_sys::TypeError::new(msg).into()
}

/// The one pattern of an option's `TypeError`: "resock: option X must be …".
pub fn bad(path: &str, what: &str) -> JsValue {
    type_error(&concat(&["resock: option ", path, " must be ", what]))
}

/// What a number option must be.
pub const NUMBER: &str = "a number >= 0";

fn refused(e: ConfigError) -> JsValue {
    type_error(&concat(&["resock: ", &e.0]))
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A whole number of milliseconds or counts, if given.
fn number(obj: &JsValue, key: &str, path: &str) -> Result<Option<u64>, JsValue> {
    let v = get(obj, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(f) if (0.0..=9_007_199_254_740_991.0).contains(&f) => Ok(Some(f as u64)),
        _ => Err(bad(path, NUMBER)),
    }
}

fn string(obj: &JsValue, key: &str) -> Result<Option<String>, JsValue> {
    let v = get(obj, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string().map(Some).ok_or_else(|| bad(key, "a string"))
}

impl Options {
    pub fn from_js(opts: &JsValue) -> Result<Options, JsValue> {
        if !opts.is_object() {
            return Err(type_error("resock: new Client needs an options object"));
        }
        let url = string(opts, "url")?.ok_or_else(|| bad("url", "set"))?;
        let ticket_url = string(opts, "ticketUrl")?;
        check_urls(&url, ticket_url.as_deref()).map_err(refused)?;
        let token = match get(opts, "token") {
            v if v.is_undefined() || v.is_null() => TokenSource::None,
            v if v.is_function() => TokenSource::Provider(v.unchecked_into()),
            v => match v.as_string() {
                Some(s) => TokenSource::Fixed(s),
                None => return Err(bad("token", "a string or function")),
            },
        };
        let mut config = Config::default();
        let reconnect = get(opts, "reconnect");
        if reconnect.is_object() {
            let b = &mut config.backoff;
            *b = Backoff {
                initial_ms: number(&reconnect, "initialDelayMs", "reconnect.initialDelayMs")?.unwrap_or(b.initial_ms),
                max_ms: number(&reconnect, "maxDelayMs", "reconnect.maxDelayMs")?.unwrap_or(b.max_ms),
            };
            config.max_attempts = number(&reconnect, "maxAttempts", "reconnect.maxAttempts")?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        } else if !reconnect.is_undefined() {
            return Err(bad("reconnect", "an object"));
        }
        let set = |v: Option<u64>, slot: &mut u64| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(number(opts, "heartbeatGraceMs", "heartbeatGraceMs")?, &mut config.heartbeat_grace_ms);
        // `heartbeat: false`: a server that never pings (the core's `Config::NO_HEARTBEAT`).
        if get(opts, "heartbeat").as_bool() == Some(false) {
            config.heartbeat_grace_ms = Config::NO_HEARTBEAT;
        }
        set(number(opts, "requestTimeoutMs", "requestTimeoutMs")?, &mut config.request_timeout_ms);
        set(number(opts, "stableAfterMs", "stableAfterMs")?, &mut config.stable_after_ms);
        set(number(opts, "connectTimeoutMs", "connectTimeoutMs")?, &mut config.connect_timeout_ms);
        let rate = get(opts, "sendRate");
        if rate.is_null() {
            config.send_rate = None;
        } else if rate.is_object() {
            let d = config.send_rate.unwrap_or_default();
            let max = number(&rate, "max", "sendRate.max")?.map_or(d.max, |n| u32::try_from(n).unwrap_or(u32::MAX));
            let window_ms = number(&rate, "windowMs", "sendRate.windowMs")?.unwrap_or(d.window_ms);
            config.send_rate = Some(crate::core::SendRate { max, window_ms });
        } else if !rate.is_undefined() {
            return Err(bad("sendRate", "{max, windowMs} or null"));
        }
        let outbox = get(opts, "outbox");
        if outbox.is_object() {
            let d = OutboxLimits::default();
            config.outbox = OutboxLimits {
                max_messages: number(&outbox, "maxMessages", "outbox.maxMessages")?
                    .map_or(d.max_messages, |n| n as usize),
                max_bytes: number(&outbox, "maxBytes", "outbox.maxBytes")?.map_or(d.max_bytes, |n| n as usize),
            };
            config.outbox_ttl_ms = number(&outbox, "ttlMs", "outbox.ttlMs")?;
        }
        // `share: "<user key>"`: one socket for the tabs of this origin with the same URL and key;
        // one per tab where the browser has no Web Locks or BroadcastChannel.
        #[cfg(feature = "share")]
        let share = {
            let share = string(opts, "share")?;
            if share.as_deref() == Some("") {
                return Err(bad("share", "the user's id, not empty"));
            }
            share.filter(|_| super::share::resock_share_supported()).map(|key| concat(&["resock\n", &url, "\n", &key]))
        };
        #[cfg(not(feature = "share"))]
        let share = not_in_this_build(opts, "share")?;
        config.share = share.is_some();
        #[cfg(feature = "sse")]
        let sse = {
            let sse = match string(opts, "sseUrl")? {
                Some(sse_url) => {
                    check_url(&sse_url, "sseUrl", "http").map_err(refused)?;
                    let send = string(opts, "sseSendUrl")?.unwrap_or_else(|| String::from("send"));
                    Some((sse_url, send))
                }
                None => None,
            };
            if let Some(ms) = number(opts, "sseProbeMs", "sseProbeMs")? {
                config.sse_probe_ms = ms;
            }
            sse
        };
        #[cfg(not(feature = "sse"))]
        let sse = not_in_this_build(opts, "sseUrl")?;
        config.sse = sse.is_some();
        config.validate().map_err(refused)?;
        Ok(Options { url, ticket_url, token, config, share, sse })
    }
}

/// An option of a feature this build was made without (the lean package leaves out `share` and
/// `sseUrl`): refused with the entry point that has it, rather than ignored.
#[cfg(not(all(feature = "share", feature = "sse")))]
fn not_in_this_build<T>(opts: &JsValue, name: &str) -> Result<Option<T>, JsValue> {
    if get(opts, name).is_undefined() {
        Ok(None)
    } else {
        Err(type_error(&concat(&["resock: option ", name, " is in the full build: import from \"resock/full\""])))
    }
}
