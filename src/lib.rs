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

/// lol_alloc's `FreeListAllocator` instead of std's dlmalloc in the browser: a free list in
/// address order whose neighbours merge on free, first fit. Smaller than talc, which it replaced
/// (-1.1 KB gzip, docs/SIZE.md); its O(free blocks) cost per call is small here because the
/// common message path allocates nothing. The 1 000-cycle browser test shows wasm memory flat
/// with it. Single-threaded wasm only.
#[cfg(all(target_arch = "wasm32", not(test)))]
#[global_allocator]
// SAFETY: `AssumeSingleThreaded` requires that the allocator is only used from one thread: a
// wasm32 module without shared memory (a browser page or worker) has exactly one.
static ALLOC: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };
