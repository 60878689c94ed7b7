//! The browser shell: the only code that touches `web_sys` / `js_sys`. It performs what the
//! core decides and feeds events back; it holds no policy.

pub(crate) mod client;
pub(crate) mod credentials;
pub(crate) mod driver;
pub(crate) mod lifecycle;
pub(crate) mod oneshot;
pub(crate) mod options;
pub(crate) mod parse;
pub(crate) mod share;
pub(crate) mod socket;
pub(crate) mod sse;

pub use client::{Client, ClientOptions, Subscription};
