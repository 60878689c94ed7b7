//! resock: a realtime WebSocket client for the browser.
//!
//! - [`protocol`]: the wire types, shared with the fixture server; compiles natively.
//! - [`core`]: the sans-IO connection machine (backoff, close-code policy, liveness, outbox,
//!   rooms, resume, what each frame means, the checks on a configuration); compiles natively and
//!   is tested there. Its configuration and error types are re-exported here.
//! - `web` and `bindings` (wasm32 only): the browser shell and the JavaScript API.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

extern crate alloc;

pub mod core;
pub mod protocol;

pub use crate::core::{Config, ConfigError, Error, ErrorKind, Event, State};

#[cfg(test)]
mod contract;

#[cfg(target_arch = "wasm32")]
pub mod bindings;
#[cfg(target_arch = "wasm32")]
pub mod web;

/// talc instead of std's dlmalloc in the browser: about 1.8 KB gzip less in the package, and the
/// 1 000-cycle browser test shows wasm memory flat with it. Single-threaded wasm only.
#[cfg(all(target_arch = "wasm32", not(test)))]
#[global_allocator]
// SAFETY: `new_global` is meant for exactly this: the one global allocator of a wasm32 module
// that runs on one thread (a browser page or worker without shared memory).
static ALLOC: talc::TalckWasm = unsafe { talc::TalckWasm::new_global() };
