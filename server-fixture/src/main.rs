//! `resock-fixture`: see `--help`, and "The fixture's command line" in docs/PROTOCOL.md.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use resock_fixture::{limits, start, Config};

#[tokio::main]
async fn main() -> ExitCode {
    let mut cfg = Config::parse();
    limits::fit_open_files(&mut cfg);
    tokio::spawn(limits::return_freed_memory());
    let running = match start(cfg).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("resock-fixture: {e}");
            return ExitCode::from(2);
        }
    };
    // Exactly one line on stdout, once ready: scripts wait for it and read the port from it.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {}", running.http_url());
    let _ = out.flush();
    drop(out);
    wait_for_signal().await;
    running.shutdown().await;
    resock_fixture::log::flush();
    ExitCode::SUCCESS
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
