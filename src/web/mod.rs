//! The browser shell: the only code that touches `web_sys` / `js_sys`. It performs what the
//! core decides and feeds events back; it holds no policy.

pub mod client;
pub mod credentials;
pub mod driver;
pub mod lifecycle;
pub mod options;
pub mod parse;
pub mod socket;

pub use client::Client;
