//! Credentials for one attempt: the token from the provider (called every attempt), then a
//! fresh one-time ticket from `ticketUrl` (POST, `Authorization: Bearer`), or the token in the
//! URL when there is no ticket URL. Returns the socket URL to open.

use js_sys::{Function, Promise};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::options::{Options, TokenSource};
use super::parse::get;
use crate::core::frames::concat;

/// Why credentials could not be had: the ticket URL's HTTP status when it answered with one that
/// is not a 2xx (the core decides what it means), or what else went wrong.
pub(crate) struct CredentialError {
    pub status: Option<u16>,
    pub message: String,
}

fn failed(message: impl Into<String>) -> CredentialError {
    CredentialError { status: None, message: message.into() }
}

fn js_message(e: &JsValue) -> String {
    e.as_string().or_else(|| get(e, "message").as_string()).unwrap_or_else(|| String::from("unknown error"))
}

async fn token(source: &TokenSource) -> Result<Option<String>, CredentialError> {
    match source {
        TokenSource::None => Ok(None),
        TokenSource::Fixed(t) => Ok(Some(t.clone())),
        TokenSource::Provider(f) => {
            let mut v = f
                .call0(&JsValue::NULL)
                .map_err(|e| failed(concat(&["the token provider threw: ", &js_message(&e)])))?;
            if let Some(p) = v.dyn_ref::<Promise>() {
                v = JsFuture::from(p.clone())
                    .await
                    .map_err(|e| failed(concat(&["the token provider rejected: ", &js_message(&e)])))?;
            }
            match v.as_string() {
                Some(t) => Ok(Some(t)),
                None if v.is_null() || v.is_undefined() => Ok(None),
                None => Err(failed("the token provider must return a string")),
            }
        }
    }
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { "&" } else { "?" };
    let value: String = js_sys::encode_uri_component(value).into();
    concat(&[url, sep, key, "=", &value])
}

/// Calls `fn_name` on `target` with `args`, awaiting the result when it is a promise.
async fn call_await(target: &JsValue, fn_name: &str, args: &js_sys::Array) -> Result<JsValue, JsValue> {
    let f: Function = get(target, fn_name).dyn_into().map_err(|_| JsValue::from_str(fn_name))?;
    let v = f.apply(target, args)?;
    match v.dyn_into::<Promise>() {
        Ok(p) => JsFuture::from(p).await,
        Err(v) => Ok(v),
    }
}

/// POSTs to the ticket URL with the token. Plain objects and `Reflect`, no `Request` or
/// `Response` bindings: each binding is an import, and imports weigh on the package.
async fn fetch_ticket(ticket_url: &str, token: Option<&str>) -> Result<String, CredentialError> {
    let init = js_sys::Object::new();
    super::parse::set(&init, "method", &JsValue::from_str("POST"));
    if let Some(t) = token {
        let headers = js_sys::Object::new();
        super::parse::set(&headers, "authorization", &JsValue::from_str(&concat(&["Bearer ", t])));
        super::parse::set(&init, "headers", &headers);
    }
    let global = js_sys::global();
    let response = call_await(&global, "fetch", &js_sys::Array::of2(&JsValue::from_str(ticket_url), &init))
        .await
        .map_err(|e| failed(concat(&["the ticket request failed: ", &js_message(&e)])))?;
    if !get(&response, "ok").is_truthy() {
        let status = get(&response, "status").as_f64().unwrap_or(0.0) as u16;
        return Err(CredentialError { status: Some(status), message: String::new() });
    }
    let body = call_await(&response, "json", &js_sys::Array::new())
        .await
        .map_err(|_| failed("the ticket URL did not answer JSON"))?;
    get(&body, "ticket").as_string().ok_or_else(|| failed("the ticket URL's answer has no string `ticket`"))
}

/// The URL to open for one attempt.
pub(crate) async fn socket_url(opts: &Options) -> Result<String, CredentialError> {
    let token = token(&opts.token).await?;
    match (&opts.ticket_url, token) {
        (Some(ticket_url), token) => {
            let ticket = fetch_ticket(ticket_url, token.as_deref()).await?;
            Ok(with_query(&opts.url, "ticket", &ticket))
        }
        (None, Some(token)) => Ok(with_query(&opts.url, "token", &token)),
        (None, None) => Ok(opts.url.clone()),
    }
}

/// The SSE session URL of an attempt: `sse_url` with the credentials the socket URL `with_creds`
/// got (its query), the epoch it knows (empty: none yet) and, to resume, the last seq it has.
pub(crate) fn sse_url(sse_url: &str, with_creds: &str, resume: Option<&(String, u64)>) -> String {
    let mut url = String::from(sse_url);
    if let Some((_, query)) = with_creds.split_once('?') {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(query);
    }
    match resume {
        Some((epoch, seq)) => {
            url = with_query(&url, "epoch", epoch);
            with_query(&url, "last_event_id", &crate::core::frames::u64_to_string(*seq))
        }
        None => with_query(&url, "epoch", ""),
    }
}
