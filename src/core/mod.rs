//! The sans-IO core: every decision about the connection (when to reconnect, which close
//! codes stop, when a connection is dead, what is replayed, what a full outbox refuses, what a
//! frame from the server means, whether a configuration holds) as plain data in, plain
//! actions out. No `web_sys`, no clock, no randomness of its own. `docs/ARCHITECTURE.md` maps it.
//!
//! Its modules are the crate's own; what the Rust API shows is re-exported here. Dead code is
//! checked where the core is used: the wasm32 build (the shell) and the tests, with every feature
//! on (a lean build leaves the sharing and SSE parts unused, `gated`).
#![cfg_attr(not(any(target_arch = "wasm32", test)), allow(dead_code, unused_imports))]
#![cfg_attr(not(all(feature = "share", feature = "sse")), allow(dead_code))]

pub(crate) mod backoff;
pub(crate) mod classify;
mod clock;
pub(crate) mod config;
pub(crate) mod frames;
pub(crate) mod gated;
mod inbound;
pub(crate) mod machine;
pub(crate) mod outbox;
mod outgoing;
mod phase;
mod requests;
pub(crate) mod rooms;
pub(crate) mod sender;
pub(crate) mod share;
pub(crate) mod stream;
pub(crate) mod transport;
pub(crate) mod types;
pub(crate) mod vecmap;

// Native only: proptest is a native dev-dependency (`wasm-pack test` builds the unit tests for
// wasm32 too).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod delivery;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod proptests;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod share_sim;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

pub use backoff::Backoff;
pub use config::{Config, ConfigError};
pub use outbox::OutboxLimits;
pub use sender::SendRate;
pub use stream::ResyncReason;
pub use types::{Error, ErrorKind, Event, State};

#[cfg(test)]
pub(crate) use backoff::Random;
pub(crate) use machine::Machine;
#[cfg(test)]
pub(crate) use machine::CLOSE_LIVENESS;
#[cfg(test)]
pub(crate) use types::InKind;
pub(crate) use types::{Action, Id, Inbound, Input};
