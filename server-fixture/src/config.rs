//! The fixture's command line: every flag also reads `RESOCK_<NAME>` from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

/// The secret `--dev` uses when no `--jwt-secret` is given. Never use it outside development.
pub const DEV_JWT_SECRET: &str = "resock-dev-secret-do-not-use-in-production";

/// resock-fixture: the reference server of the resock wire protocol.
#[derive(Debug, Clone, Parser)]
#[command(name = "resock-fixture", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "RESOCK_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// HS256 secret for JWTs. Required unless --dev (which then uses a fixed dev secret).
    #[arg(long, env = "RESOCK_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Interval between the server's pings.
    #[arg(long, env = "RESOCK_HEARTBEAT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub heartbeat_ms: u64,

    /// How long a client has to answer a ping before the server closes 1001.
    #[arg(long, env = "RESOCK_PONG_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub pong_timeout_ms: u64,

    /// Close 1001 when nothing at all arrived from a client for this long.
    #[arg(long, env = "RESOCK_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub idle_timeout_ms: u64,

    /// How long a ticket from POST /ws/ticket stays valid.
    #[arg(long, env = "RESOCK_TICKET_TTL_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ticket_ttl_ms: u64,

    /// Largest client message, in bytes; a larger one closes 1009.
    #[arg(long, env = "RESOCK_MAX_MESSAGE_BYTES", default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(16..=(64 << 20)))]
    pub max_message_bytes: u64,

    /// Messages a connection may send per window, as COUNT/WINDOW (e.g. 10/1s, 100/500ms).
    #[arg(long, env = "RESOCK_RATE_LIMIT", default_value = "10/1s")]
    pub rate_limit: RateLimit,

    /// Refusals in one rate-limit window after which the connection is closed 1008.
    #[arg(long, env = "RESOCK_RATE_LIMIT_CLOSE_AFTER", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_close_after: u32,

    /// An allowed Origin (scheme://host[:port]); repeatable. None given: any origin.
    #[arg(long = "allowed-origin", env = "RESOCK_ALLOWED_ORIGIN", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Most WebSocket connections at once, all users together; over it: close 1013.
    #[arg(long, env = "RESOCK_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most WebSocket connections one user may hold; over it: close 1013.
    #[arg(long, env = "RESOCK_MAX_CONNECTIONS_PER_USER", default_value_t = 16)]
    pub max_connections_per_user: usize,

    /// One connection per user: a new one closes the older with 1000 "Replaced by new connection".
    #[arg(long, env = "RESOCK_SINGLE_CONNECTION_PER_USER")]
    pub single_connection_per_user: bool,

    /// Rooms one connection may be in at once; a join past it gets error `room_limit`.
    #[arg(long, env = "RESOCK_MAX_ROOMS_PER_CONNECTION", default_value_t = 128)]
    pub max_rooms_per_connection: usize,

    /// Frames queued for one connection before it counts as not reading and is closed 1008.
    #[arg(long, env = "RESOCK_SEND_QUEUE", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub send_queue: u64,

    /// User-stream messages kept per user for resume and SSE Last-Event-ID.
    #[arg(long, env = "RESOCK_HISTORY", default_value_t = 1000)]
    pub history: usize,

    /// User-stream bytes kept per user (whole frames), besides --history messages.
    #[arg(long, env = "RESOCK_HISTORY_BYTES", default_value_t = 256 * 1024)]
    pub history_bytes: usize,

    /// Drop a user's stream (its history, seq and epoch) once it has had no connection, no SSE
    /// stream and no new message for this long; a later resume gets `complete: false`.
    #[arg(long, env = "RESOCK_STREAM_TTL_MS", default_value_t = 3_600_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub stream_ttl_ms: u64,

    /// Notifications kept per user by the REST store (oldest dropped first).
    #[arg(long, env = "RESOCK_STORE_MAX", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub store_max: u64,

    /// Bytes of notifications (title + body) kept per user by the REST store.
    #[arg(long, env = "RESOCK_STORE_BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub store_bytes: u64,

    /// Unredeemed tickets one user may hold; past it POST /ws/ticket answers 429.
    #[arg(long, env = "RESOCK_MAX_TICKETS_PER_USER", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tickets_per_user: u64,

    /// SSE streams one user may hold open; past it: 429.
    #[arg(long, env = "RESOCK_MAX_SSE_PER_USER", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sse_per_user: u64,

    /// SSE streams open at once, all users together; past it: 503.
    #[arg(long, env = "RESOCK_MAX_SSE", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sse: u64,

    /// How long a client has to send a request head; also how long a keep-alive connection may
    /// wait for its next request, and an accepted upgrade to complete.
    #[arg(long, env = "RESOCK_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub header_timeout_ms: u64,

    /// How long a request body may take to arrive, whole; slower: 408.
    #[arg(long, env = "RESOCK_BODY_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub body_timeout_ms: u64,

    /// Interval of the SSE keep-alive comment.
    #[arg(long, env = "RESOCK_SSE_KEEPALIVE_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub sse_keepalive_ms: u64,

    /// Serve the files of this folder at / (index.html for /).
    #[arg(long = "static", env = "RESOCK_STATIC")]
    pub static_dir: Option<PathBuf>,

    /// Send no `welcome` on open, like the seeds' FastAPI servers (to test clients against them).
    #[arg(long, env = "RESOCK_NO_WELCOME")]
    pub no_welcome: bool,

    /// Development mode: /dev/token and /dev/drop, and a fixed JWT secret unless --jwt-secret.
    #[arg(long, env = "RESOCK_DEV")]
    pub dev: bool,

    /// Kafka brokers (HOST:PORT[,...]) to consume --kafka-topics from, as group --kafka-group.
    #[arg(long, env = "RESOCK_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Kafka topics whose records become pushes (docs/PROTOCOL.md "Kafka records").
    #[arg(long, env = "RESOCK_KAFKA_TOPICS", value_delimiter = ',')]
    pub kafka_topics: Vec<String>,

    /// The Kafka consumer group (instances in one group share the partitions).
    #[arg(long, env = "RESOCK_KAFKA_GROUP", default_value = "resock")]
    pub kafka_group: String,

    /// The longest a Kafka fetch waits for records (librdkafka's fetch.wait.max.ms): a floor on
    /// the latency with brokers that answer a fetch only when its wait is over (tansu 0.6).
    #[arg(long, env = "RESOCK_KAFKA_FETCH_WAIT_MS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub kafka_fetch_wait_ms: u64,

    /// Redis URL (redis://HOST:PORT): share tickets, streams, the store and fan-out with every
    /// instance on the same Redis. Without it, all of that stays in this process.
    #[arg(long, env = "RESOCK_REDIS")]
    pub redis: Option<String>,
}

impl Config {
    /// Checks what clap cannot: a secret is given or --dev is on; no --redis yet.
    pub fn validate(&self) -> Result<(), String> {
        if self.jwt_secret.is_none() && !self.dev {
            return Err("--jwt-secret (or RESOCK_JWT_SECRET) is required unless --dev is given".into());
        }
        if matches!(&self.jwt_secret, Some(s) if s.is_empty()) {
            return Err("--jwt-secret must not be empty".into());
        }
        if let Some(url) = &self.redis {
            if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://")) {
                return Err(format!("--redis {url:?}: expected redis://HOST:PORT"));
            }
        }
        if self.kafka_brokers.is_some() == self.kafka_topics.is_empty() {
            return Err("--kafka-brokers and --kafka-topics go together".into());
        }
        for origin in &self.allowed_origins {
            if !is_bare_origin(origin) {
                return Err(format!(
                    "--allowed-origin {origin:?} must be http(s)://host[:port], with no path, query or trailing slash"
                ));
            }
        }
        if let Some(dir) = &self.static_dir {
            if !dir.is_dir() {
                return Err(format!("--static {}: not a folder", dir.display()));
            }
        }
        Ok(())
    }

    /// The HS256 secret in force.
    pub fn secret(&self) -> &str {
        self.jwt_secret.as_deref().unwrap_or(DEV_JWT_SECRET)
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }
    pub fn pong_timeout(&self) -> Duration {
        Duration::from_millis(self.pong_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    /// A configuration for tests: dev mode on 127.0.0.1:0 with every default.
    pub fn for_tests() -> Self {
        Config::parse_from(["resock-fixture", "--addr", "127.0.0.1:0", "--dev"])
    }
}

/// `http(s)://host[:port]` and nothing else, as a browser sends it in `Origin` (and as the CORS
/// layer accepts it: a value it cannot parse would otherwise stop the server at start).
fn is_bare_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return false;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok && warp::http::HeaderValue::from_str(origin).is_ok()
}

/// A fixed-window rate limit: `count` messages per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub window: Duration,
}

impl FromStr for RateLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("rate limit {s:?}: expected COUNT/WINDOW such as 10/1s or 100/500ms");
        let (count, window) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let window = if window.is_empty() || window == "s" { "1s" } else { window };
        let window = humantime::parse_duration(window).map_err(|_| bad())?;
        if count == 0 || window.is_zero() {
            return Err(bad());
        }
        Ok(RateLimit { count, window })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_parses() {
        assert_eq!("10/1s".parse::<RateLimit>().unwrap(), RateLimit { count: 10, window: Duration::from_secs(1) });
        assert_eq!("5/250ms".parse::<RateLimit>().unwrap().window, Duration::from_millis(250));
        assert_eq!("3/s".parse::<RateLimit>().unwrap().window, Duration::from_secs(1));
        assert!("0/1s".parse::<RateLimit>().is_err());
        assert!("ten".parse::<RateLimit>().is_err());
        assert!("10/0s".parse::<RateLimit>().is_err());
    }

    #[test]
    fn secret_required_unless_dev() {
        let c = Config::parse_from(["x"]);
        assert!(c.validate().unwrap_err().contains("--jwt-secret"));
        let c = Config::parse_from(["x", "--dev"]);
        assert!(c.validate().is_ok());
        assert_eq!(c.secret(), DEV_JWT_SECRET);
        let c = Config::parse_from(["x", "--dev", "--jwt-secret", "s3"]);
        assert_eq!(c.secret(), "s3");
    }

    #[test]
    fn redis_urls_are_checked() {
        let c = Config::parse_from(["x", "--dev", "--redis", "127.0.0.1:6379"]);
        assert!(c.validate().unwrap_err().contains("redis://"));
        let c = Config::parse_from(["x", "--dev", "--redis", "redis://127.0.0.1:6379"]);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn malformed_origins_are_refused_not_panicked_on() {
        for bad in
            ["http://a.test/app", "http://a.test:99999", "http://", "ftp://a.test", "http://a b", "http://a.test:"]
        {
            let c = Config::parse_from(["x", "--dev", "--allowed-origin", bad]);
            assert!(c.validate().is_err(), "{bad}");
        }
        for good in ["http://localhost:5173", "https://app.example.com", "http://127.0.0.1:8080"] {
            let c = Config::parse_from(["x", "--dev", "--allowed-origin", good]);
            assert!(c.validate().is_ok(), "{good}");
        }
    }

    #[test]
    fn origins_must_be_bare() {
        let c = Config::parse_from(["x", "--dev", "--allowed-origin", "http://a.test/"]);
        assert!(c.validate().is_err());
        let c = Config::parse_from([
            "x",
            "--dev",
            "--allowed-origin",
            "http://a.test:3000",
            "--allowed-origin",
            "https://b.test",
        ]);
        assert!(c.validate().is_ok());
        assert_eq!(c.allowed_origins.len(), 2);
    }
}
