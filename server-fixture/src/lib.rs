//! resock-fixture: the reference server of the resock wire protocol (`docs/PROTOCOL.md`).
//!
//! Tickets and JWT auth, a connection manager with several connections per user, rooms,
//! heartbeat, a per-user stream with history and resume, the notification REST API, SSE,
//! limits and close codes. Start it with [`start`]; the binary `resock-fixture` wraps it.

pub mod auth;
pub mod config;
pub mod engine;
pub mod http;
pub mod hub;
pub mod kafka;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod rest;
pub mod serve;
pub mod server;
pub mod session;
pub mod sse;
pub mod state;
pub mod store;
pub mod text;
pub mod upgrade;
pub mod ws;

pub use config::Config;
pub use server::{start, Running};
pub use state::App;
