//! Credentials for one attempt: the token from the provider (called every attempt), then a
//! fresh one-time ticket from `ticketUrl` (POST, `Authorization: Bearer`), or the token in the
//! URL when there is no ticket URL. Returns the socket URL to open.

use js_sys::{Function, Promise};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

use super::options::{Options, TokenSource};
use super::parse::get;
use crate::core::frames::concat;

/// Why credentials could not be had. `auth` when retrying with the same provider cannot help
/// (the ticket URL answered 401 or 403).
pub struct CredentialError {
    pub auth: bool,
    pub message: String,
}

fn failed(auth: bool, message: impl Into<String>) -> CredentialError {
    CredentialError { auth, message: message.into() }
}

fn js_message(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| get(e, "message").as_string())
        .unwrap_or_else(|| String::from("unknown error"))
}

async fn token(source: &TokenSource) -> Result<Option<String>, CredentialError> {
    match source {
        TokenSource::None => Ok(None),
        TokenSource::Fixed(t) => Ok(Some(t.clone())),
        TokenSource::Provider(f) => {
            let mut v = call(f).map_err(|e| failed(false, concat(&["the token provider threw: ", &js_message(&e)])))?;
            if let Some(p) = v.dyn_ref::<Promise>() {
                v = JsFuture::from(p.clone())
                    .await
                    .map_err(|e| failed(false, concat(&["the token provider rejected: ", &js_message(&e)])))?;
            }
            match v.as_string() {
                Some(t) => Ok(Some(t)),
                None if v.is_null() || v.is_undefined() => Ok(None),
                None => Err(failed(false, "the token provider must return a string")),
            }
        }
    }
}

fn call(f: &Function) -> Result<JsValue, JsValue> {
    f.call0(&JsValue::NULL)
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { "&" } else { "?" };
    let value: String = js_sys::encode_uri_component(value).into();
    concat(&[url, sep, key, "=", &value])
}

async fn fetch_ticket(ticket_url: &str, token: Option<&str>) -> Result<String, CredentialError> {
    let init = RequestInit::new();
    init.set_method("POST");
    let request = Request::new_with_str_and_init(ticket_url, &init)
        .map_err(|e| failed(false, concat(&["bad ticketUrl: ", &js_message(&e)])))?;
    if let Some(t) = token {
        let _ = request.headers().set("Authorization", &concat(&["Bearer ", t]));
    }
    let global = js_sys::global();
    let fetch: Function = get(&global, "fetch").dyn_into().map_err(|_| failed(false, "this environment has no fetch()"))?;
    let promise: Promise = fetch
        .call1(&global, &request)
        .map_err(|e| failed(false, js_message(&e)))?
        .dyn_into()
        .map_err(|_| failed(false, "fetch() did not return a promise"))?;
    let response: Response = JsFuture::from(promise)
        .await
        .map_err(|e| failed(false, concat(&["the ticket request failed: ", &js_message(&e)])))?
        .dyn_into()
        .map_err(|_| failed(false, "fetch() did not return a Response"))?;
    let status = response.status();
    if status == 401 || status == 403 {
        return Err(failed(true, concat(&["the ticket URL refused the token (HTTP ", if status == 401 { "401" } else { "403" }, ")"])));
    }
    if !response.ok() {
        return Err(failed(false, concat(&["the ticket URL answered HTTP ", &crate::core::frames::u64_to_string(u64::from(status))])));
    }
    let body = response.json().map_err(|e| failed(false, js_message(&e)))?;
    let body = JsFuture::from(body).await.map_err(|_| failed(false, "the ticket URL did not answer JSON"))?;
    get(&body, "ticket").as_string().ok_or_else(|| failed(false, "the ticket URL's answer has no string `ticket`"))
}

/// The URL to open for one attempt.
pub async fn socket_url(opts: &Options) -> Result<String, CredentialError> {
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
