//! resock: a realtime WebSocket client for the browser.
//!
//! - [`protocol`]: the wire types, shared with the fixture server; compiles natively.
extern crate alloc;

pub mod protocol;
