//! Logging to stderr (stdout carries only the `listening on` line). Set `RESOCK_LOG=quiet` to
//! silence it. Never pass a token or a ticket here.
//!
//! Callers may hold the hub's lock: a line is only formatted here and handed to a logging
//! thread through a bounded channel. A full channel (stderr not read) drops lines rather than
//! stall the server, and a closed stderr is ignored rather than panic.

use std::fmt::Arguments;
use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::OnceLock;

static TX: OnceLock<Option<SyncSender<String>>> = OnceLock::new();

/// Silences the log for this process (for tests, instead of setting `RESOCK_LOG` in a process
/// whose tests run in parallel). Without effect once something was logged.
pub fn quiet() {
    let _ = TX.set(None);
}

fn sender() -> Option<&'static SyncSender<String>> {
    TX.get_or_init(|| {
        if std::env::var("RESOCK_LOG").is_ok_and(|v| v == "quiet") {
            return None;
        }
        let (tx, rx) = sync_channel::<String>(4096);
        std::thread::Builder::new()
            .name("resock-log".into())
            .spawn(move || {
                let stderr = std::io::stderr();
                for line in rx {
                    let _ = writeln!(stderr.lock(), "[resock-fixture] {line}");
                }
            })
            .ok()?;
        Some(tx)
    })
    .as_ref()
}

pub fn info(args: Arguments<'_>) {
    if let Some(tx) = sender() {
        let _ = tx.try_send(args.to_string());
    }
}

/// Waits (briefly) until the lines logged so far are written: for shutdown.
pub fn flush() {
    if sender().is_some() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
