//! Credentials for one attempt: the token from the provider (called every attempt), then a
//! fresh one-time ticket from `ticketUrl` (POST, `Authorization: Bearer`), or the token in the
//! URL when there is no ticket URL. Gives the socket URL to open.
//!
//! The browser calls (the provider, `fetch`, `json()`) and the URL's query are
//! `resock_credentials` in `src/web/fast.js`, which calls back once with the URL or what went
//! wrong: a Rust `async` chain over `JsFuture` and `spawn_local` cost about 7 KB of the wasm
//! (issue 11, docs/SIZE.md).

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

use super::options::Options;
use super::parse::get;
use super::socket::Handler;

#[wasm_bindgen(module = "/src/web/fast.js")]
extern "C" {
    fn resock_credentials(url: &JsValue, token: &JsValue, ticket_url: &JsValue, done: &JsValue);
}

/// Why credentials could not be had: the ticket URL's HTTP status when it answered with one that
/// is not a 2xx (the core decides what it means), or what else went wrong.
pub(crate) struct CredentialError {
    pub status: Option<u16>,
    pub message: String,
}

/// Gets one attempt's credentials and calls `done` once, later (never before this returns),
/// with the URL to open. The callback is the shell's one closure type ([`Handler`]), which the
/// caller holds until the next attempt or the end (a call after it is freed does nothing:
/// `fast.js` catches it).
pub(crate) fn socket_url(opts: &Options, done: impl FnOnce(Result<String, CredentialError>) + 'static) -> Handler {
    let ticket_url = opts.ticket_url.as_deref().map_or(JsValue::UNDEFINED, JsValue::from_str);
    let mut done = Some(done);
    let f = Handler::new(move |got: JsValue| {
        if let Some(done) = done.take() {
            done(outcome(&got));
        }
    });
    resock_credentials(&JsValue::from_str(&opts.url), &opts.token, &ticket_url, f.as_ref());
    f
}

/// The URL (a string), or the status (a number: not a 2xx), or `{message}` (see `fast.js`).
fn outcome(got: &JsValue) -> Result<String, CredentialError> {
    got.as_string().ok_or_else(|| CredentialError {
        status: got.as_f64().map(|s| s as u16),
        message: get(got, "message").as_string().unwrap_or_default(),
    })
}

/// The SSE session URL of an attempt: `sse_url` with the credentials the socket URL `with_creds`
/// got (its query), the epoch it knows (empty: none yet) and, to resume, the last seq it has.
#[cfg(feature = "sse")]
pub(crate) fn sse_url(sse_url: &str, with_creds: &str, resume: Option<&(String, u64)>) -> String {
    let mut url = String::from(sse_url);
    let mut param = |key: &str, value: &str| {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(key);
        url.push_str(value);
    };
    if let Some((_, query)) = with_creds.split_once('?') {
        param("", query);
    }
    match resume {
        Some((epoch, seq)) => {
            param("epoch=", &String::from(js_sys::encode_uri_component(epoch)));
            param("last_event_id=", &crate::core::frames::u64_to_string(*seq));
        }
        None => param("epoch=", ""),
    }
    url
}
