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

#[cfg(any(test, target_arch = "wasm32"))]
mod allocator;

/// Our own allocator in the browser (`allocator.rs`: a free list per power-of-two size class,
/// O(1) on every path) instead of std's dlmalloc or a crate: about 1 KB gzip less in the package
/// than talc, without the slower `send()` of lol_alloc's first-fit list, and the 1 000-cycle
/// browser test shows wasm memory flat with it (docs/SIZE.md). Single-threaded wasm only.
#[cfg(all(target_arch = "wasm32", not(test)))]
#[global_allocator]
static ALLOC: allocator::Allocator = allocator::Allocator::new();
