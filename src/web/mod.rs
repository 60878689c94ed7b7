//! The browser shell: the only code that touches `web_sys` / `js_sys`. It performs what the
//! core decides and feeds events back; it holds no policy.

pub(crate) mod client;
pub(crate) mod credentials;
pub(crate) mod driver;
pub(crate) mod lifecycle;
pub(crate) mod oneshot;
pub(crate) mod options;
pub(crate) mod parse;
// In a build without `share` / `sse` (the lean package) only their types are used, always empty.
#[cfg_attr(not(feature = "share"), allow(dead_code))]
pub(crate) mod share;
pub(crate) mod socket;
#[cfg_attr(not(feature = "sse"), allow(dead_code))]
pub(crate) mod sse;

pub use client::{Client, ClientOptions, Subscription};
