//! The connection policy's knobs and the checks on them, shared by the JavaScript API and the
//! Rust API: a configuration is refused in one place, with a message that names what to fix.

use alloc::string::String;

use super::backoff::Backoff;
use super::frames::concat;
use super::outbox::OutboxLimits;
use super::sender::SendRate;

/// Every knob of the connection policy, with the defaults of `SDK-API.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    pub backoff: Backoff,
    /// Consecutive failed attempts before giving up; `None` retries forever.
    pub max_attempts: Option<u32>,
    /// Added to the heartbeat interval: nothing received for `heartbeat + grace` means dead.
    pub heartbeat_grace_ms: u64,
    /// The heartbeat assumed until (or unless) a `welcome` names one.
    pub default_heartbeat_ms: u64,
    /// How long `request`, `join` and `leave` wait for their reply.
    pub request_timeout_ms: u64,
    /// How long a liveness probe (sent when the page comes back) waits for any frame.
    pub probe_timeout_ms: u64,
    /// A connection open this long resets the backoff and the auth-failure count.
    pub stable_after_ms: u64,
    /// How long sends are held back after the server answered `rate_limited`.
    pub throttle_ms: u64,
    pub outbox: OutboxLimits,
    /// Drop (and report) a queued frame still unsent after this long; `None` keeps it.
    pub outbox_ttl_ms: Option<u64>,
    /// User-stream messages held ahead of a gap while a resume fills it.
    pub max_ahead: usize,
    /// At most `max` frames reach the server per window (its rate limit, or under it), clocked by
    /// the server's answers; `None` sends without pacing.
    pub send_rate: Option<SendRate>,
    /// How long an attempt may take to get credentials and open the socket.
    pub connect_timeout_ms: u64,
    /// After a reconnect to a server that sent a `welcome` before, how long to wait for the new
    /// one (which decides the resume) before sending anything.
    pub welcome_timeout_ms: u64,
    /// Share one socket among the tabs of one user (`core::share`).
    pub share: bool,
    /// Fall back to SSE when WebSocket upgrades keep failing (`core::transport`).
    pub sse: bool,
    /// Over SSE this long, try WebSocket again.
    pub sse_probe_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backoff: Backoff::default(),
            max_attempts: None,
            heartbeat_grace_ms: 15_000,
            default_heartbeat_ms: 30_000,
            request_timeout_ms: 10_000,
            probe_timeout_ms: 5_000,
            stable_after_ms: 5_000,
            throttle_ms: 1_000,
            outbox: OutboxLimits::default(),
            outbox_ttl_ms: None,
            max_ahead: 1_000,
            send_rate: Some(SendRate::default()),
            connect_timeout_ms: 10_000,
            welcome_timeout_ms: 2_000,
            share: false,
            sse: false,
            sse_probe_ms: 60_000,
        }
    }
}

impl Config {
    /// The `heartbeat_grace_ms` of a client that never drops a silent connection (`heartbeat:
    /// false` in JavaScript), for servers that never ping: the liveness deadline never comes, so
    /// a dead connection is noticed only when the browser reports the socket closed (or on a
    /// `ping` probe when the page comes back online or visible, against a server that answers).
    pub const NO_HEARTBEAT: u64 = u64::MAX;

    /// Refuses a configuration the machine cannot follow: a maximum reconnect delay below the
    /// initial one, or a send rate of 0 frames or a 0 ms window.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.backoff.max_ms < self.backoff.initial_ms {
            return Err(ConfigError::new("reconnect.maxDelayMs must be >= reconnect.initialDelayMs"));
        }
        if self.send_rate.is_some_and(|r| r.max == 0 || r.window_ms == 0) {
            return Err(ConfigError::new("sendRate.max and sendRate.windowMs must be > 0 (or sendRate: null)"));
        }
        Ok(())
    }
}

/// Checks the socket URL (`ws://` or `wss://`) and the ticket URL (`http://` or `https://`),
/// without the platform's `URL` (to stay small): the browser refuses anything else when the
/// socket opens, which is reported then (`bad_url`). In the npm package the JS glue resolves
/// relative and `http(s)://` URLs against the page before they get here (scripts/finish-pkg.mjs).
pub fn check_urls(url: &str, ticket_url: Option<&str>) -> Result<(), ConfigError> {
    check_url(url, "url", "ws")?;
    match ticket_url {
        Some(t) => check_url(t, "ticketUrl", "http"),
        None => Ok(()),
    }
}

/// `url` is `<scheme>://…` or `<scheme>s://…` (any case) with something after the `://`.
pub fn check_url(url: &str, what: &str, scheme: &str) -> Result<(), ConfigError> {
    let (b, n) = (url.as_bytes(), scheme.len());
    let rest = match b.get(..n) {
        Some(p) if p.eq_ignore_ascii_case(scheme.as_bytes()) => b.get(n..).unwrap_or_default(),
        _ => &[],
    };
    let rest = match rest {
        [b's' | b'S', rest @ ..] => rest,
        rest => rest,
    };
    if rest.len() > 3 && rest.starts_with(b"://") {
        return Ok(());
    }
    Err(ConfigError(concat(&[what, " must be a ", scheme, ":// or ", scheme, "s:// URL, got ", url])))
}

/// A configuration refused, and why (the option's JavaScript name first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl ConfigError {
    fn new(message: &str) -> Self {
        ConfigError(String::from(message))
    }
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "resock: {}", self.0)
    }
}

impl core::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::super::testkit::Sim;
    use super::super::Action;
    use super::Config;

    #[test]
    fn without_heartbeat_a_silent_connection_is_kept() {
        let mut s = Sim::new(Config { heartbeat_grace_ms: Config::NO_HEARTBEAT, ..Config::default() });
        s.open();
        // A day of silence (a server that never pings): still open, nothing closed.
        for _ in 0..24 {
            let out = s.advance(3_600_000);
            assert!(out.iter().all(|a| !matches!(a, Action::CloseSocket { .. })), "{out:?}");
        }
        assert_eq!(s.m.state(), super::super::State::Open);
    }
}
