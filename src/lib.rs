//! resock: a realtime WebSocket client for the browser.
//!
//! - [`protocol`]: the wire types, shared with the fixture server; compiles natively.
//! - [`core`]: the sans-IO connection machine (backoff, close-code policy, liveness, outbox,
//!   rooms, resume); compiles natively and is tested there.
//! - `web` and `bindings` (wasm32 only): the browser shell and the JavaScript API.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

extern crate alloc;

pub mod core;
pub mod protocol;

#[cfg(target_arch = "wasm32")]
pub mod bindings;
#[cfg(target_arch = "wasm32")]
pub mod web;
