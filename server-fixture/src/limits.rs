//! Process limits and memory: enough open files for `--max-connections`, and freed memory
//! given back to the OS.

use crate::config::Config;
use crate::log;

/// File descriptors the server needs besides its WebSocket connections: the listener, HTTP
/// requests in flight (tickets, REST, SSE), logging and the runtime.
pub const SPARE_FDS: u64 = 256;

/// Raises the soft open-file limit to what `--max-connections` needs (up to the hard limit).
/// When even the hard limit is too low, lowers `max_connections` to fit and says so: past the
/// limit, `accept` fails and every new client, well-behaved or not, times out.
pub fn fit_open_files(cfg: &mut Config) {
    let want = (cfg.max_connections as u64).saturating_add(SPARE_FDS);
    let Some((soft, hard)) = open_files() else { return };
    let target = want.min(hard);
    if target > soft && !set_open_files(target, hard) {
        log::info(format_args!("cannot raise the open-file limit from {soft} to {target}"));
    }
    let have = open_files().map_or(soft, |(soft, _)| soft);
    if have < want {
        let fit = usize::try_from(have.saturating_sub(SPARE_FDS)).unwrap_or(0).max(1);
        log::info(format_args!(
            "warning: --max-connections {} needs {want} open files but the limit is {have}: serving at most {fit} \
             connections (raise `ulimit -n` to allow more)",
            cfg.max_connections
        ));
        cfg.max_connections = fit;
    }
}

#[cfg(unix)]
fn open_files() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    let pair = (lim.rlim_cur as u64, lim.rlim_max as u64);
    (rc == 0).then_some(pair)
}

#[cfg(unix)]
fn set_open_files(soft: u64, hard: u64) -> bool {
    let lim = libc::rlimit { rlim_cur: soft as libc::rlim_t, rlim_max: hard as libc::rlim_t };
    // SAFETY: setrlimit reads the struct we pass.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 }
}

#[cfg(not(unix))]
fn open_files() -> Option<(u64, u64)> {
    None
}

#[cfg(not(unix))]
fn set_open_files(_soft: u64, _hard: u64) -> bool {
    false
}

/// Gives memory freed by closed connections back to the OS. glibc's malloc keeps freed memory in
/// its arenas (after 10 000 connections closed, RSS stayed at its peak); `malloc_trim` returns
/// the free pages. Runs every 5 s, and trims only when the heap may have shrunk: when
/// connections closed since the last look. (mimalloc was measured too: 8 MB more at start,
/// more per connection, and it kept the memory as well; docs/BENCHMARKS.md.)
pub async fn return_freed_memory() {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(5));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = CLOSED.load(std::sync::atomic::Ordering::Relaxed);
    loop {
        interval.tick().await;
        let now = CLOSED.load(std::sync::atomic::Ordering::Relaxed);
        if now != last {
            let _ = tokio::task::spawn_blocking(trim).await;
        }
        last = now;
    }
}

/// WebSocket connections ended so far, all servers of this process together (for
/// [`return_freed_memory`]).
pub static CLOSED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
