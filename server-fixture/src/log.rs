//! Minimal logging to stderr (stdout carries only the `listening on` line).
//! Set `RESOCK_LOG=quiet` to silence it. Never pass a token or a ticket here.

use std::fmt::Arguments;
use std::sync::OnceLock;

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("RESOCK_LOG").map_or(true, |v| v != "quiet"))
}

pub fn info(args: Arguments<'_>) {
    if enabled() {
        eprintln!("[resock-fixture] {args}");
    }
}
