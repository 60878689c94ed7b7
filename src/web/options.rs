//! The options object of `new Client({...})`: read and type-checked by `resock_options` in
//! `fast.js` (a bad option throws a `TypeError` that names it), its URLs and limits checked here
//! by the core. Read in Rust, option by option, it was most of `new Client`'s 4 KB of wasm.

use js_sys::Array;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

#[cfg(feature = "sse")]
use crate::core::config::check_url;
use crate::core::config::{check_urls, ConfigError};
use crate::core::frames::concat;
use crate::core::gated::{Gated, SHARE, SSE};
use crate::core::{Backoff, Config};

pub struct Options {
    pub url: String,
    pub ticket_url: Option<String>,
    /// The token: `undefined`, a string, or a function called per attempt (`fast.js` calls it).
    pub token: JsValue,
    pub config: Config,
    /// The name of the lock and channel the tabs sharing a socket use (option `share`).
    /// (`Gated`: no drop code for it in a build without the feature.)
    #[cfg_attr(not(feature = "share"), allow(dead_code))]
    pub share: Gated<String, SHARE>,
    /// The SSE fallback's stream and send URLs (option `sseUrl`; `sseSendUrl`, else `send` beside it).
    #[cfg_attr(not(feature = "sse"), allow(dead_code))]
    pub sse: Gated<(String, String), SSE>,
}

/// A JS `TypeError` with `msg` (the options' and the API's misuse errors).
pub(crate) fn type_error(msg: &str) -> JsValue {
    js_sys::TypeError::new(msg).into()
}

fn refused(e: ConfigError) -> JsValue {
    type_error(&concat(&["resock: ", &e.0]))
}

#[wasm_bindgen(module = "/src/web/fast.js")]
extern "C" {
    /// Reads and type-checks the options (a `TypeError` naming a bad one): `[url, ticketUrl,
    /// token, share, sseUrl, sseSendUrl, ...numbers]`, see `fast.js`.
    #[wasm_bindgen(catch)]
    fn resock_options(opts: &JsValue, share: bool, sse: bool) -> Result<Array, JsValue>;
}

impl Options {
    pub fn from_js(opts: &JsValue) -> Result<Options, JsValue> {
        let a = resock_options(opts, SHARE, SSE)?;
        let text = |i: u32| a.get(i).as_string();
        // The numbers after the six values: -1 when not given, -2 for `null` / `false` (below).
        let raw = |i: u32| a.get(6 + i).as_f64().unwrap_or(-1.0);
        let num = |i: u32| Some(raw(i)).filter(|f| *f >= 0.0).map(|f| f as u64);
        let count = |i: u32| num(i).map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        let url = text(0).unwrap_or_default();
        let ticket_url = text(1);
        check_urls(&url, ticket_url.as_deref()).map_err(refused)?;
        let token = a.get(2);
        let mut config = Config::default();
        let b = &mut config.backoff;
        *b = Backoff { initial_ms: num(0).unwrap_or(b.initial_ms), max_ms: num(1).unwrap_or(b.max_ms) };
        config.max_attempts = count(2);
        let set = |v: Option<u64>, slot: &mut u64| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(num(3), &mut config.heartbeat_grace_ms);
        // `heartbeat: false`: a server that never pings (the core's `Config::NO_HEARTBEAT`).
        if raw(3) == -2.0 {
            config.heartbeat_grace_ms = Config::NO_HEARTBEAT;
        }
        set(num(4), &mut config.request_timeout_ms);
        set(num(5), &mut config.stable_after_ms);
        set(num(6), &mut config.connect_timeout_ms);
        // `sendRate: null`: no pacing.
        if raw(7) == -2.0 {
            config.send_rate = None;
        } else if let Some(d) = &mut config.send_rate {
            d.max = count(7).unwrap_or(d.max);
            d.window_ms = num(8).unwrap_or(d.window_ms);
        }
        let d = &mut config.outbox;
        d.max_messages = num(9).map_or(d.max_messages, |n| n as usize);
        d.max_bytes = num(10).map_or(d.max_bytes, |n| n as usize);
        config.outbox_ttl_ms = num(11);
        // `share: "<user key>"`: one socket for the tabs of this origin with the same URL and key;
        // one per tab where the browser has no Web Locks or BroadcastChannel.
        #[cfg(feature = "share")]
        let share = text(3)
            .filter(|_| super::share::resock_share_supported())
            .map(|key| concat(&["resock\n", &url, "\n", &key]));
        #[cfg(not(feature = "share"))]
        let share: Option<String> = None;
        config.share = share.is_some();
        let share = Gated::new(share);
        #[cfg(feature = "sse")]
        let sse = match text(4) {
            Some(sse_url) => {
                check_url(&sse_url, "sseUrl", "http").map_err(refused)?;
                Some((sse_url, text(5).unwrap_or_default()))
            }
            None => None,
        };
        #[cfg(feature = "sse")]
        set(num(12), &mut config.sse_probe_ms);
        #[cfg(not(feature = "sse"))]
        let sse: Option<(String, String)> = None;
        config.sse = sse.is_some();
        let sse = Gated::new(sse);
        config.validate().map_err(refused)?;
        Ok(Options { url, ticket_url, token, config, share, sse })
    }
}
