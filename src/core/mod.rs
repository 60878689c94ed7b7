//! The sans-IO core: every decision about the connection (when to reconnect, which close
//! codes stop, when a connection is dead, what is replayed, what a full outbox refuses) as
//! plain data in, plain actions out. No `web_sys`, no clock, no randomness of its own.

pub mod backoff;
mod clock;
pub mod frames;
mod inbound;
pub mod machine;
pub mod outbox;
mod outgoing;
pub mod rooms;
pub mod sender;
pub mod stream;
pub mod types;
pub mod vecmap;

#[cfg(all(test, not(target_arch = "wasm32")))]
mod delivery;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod proptests;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod testkit;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

pub use backoff::{Backoff, Random};
pub use machine::{Machine, CLOSE_LIVENESS};
pub use outbox::OutboxLimits;
pub use sender::SendRate;
pub use stream::ResyncReason;
pub use types::{Action, Config, Error, ErrorKind, Event, InKind, Inbound, Input, State};
