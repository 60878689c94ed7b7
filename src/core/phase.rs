//! Where the current attempt stands, each step carrying its own deadlines and flags: a retry
//! time exists only while waiting, an attempt deadline only while getting credentials or opening,
//! liveness, probe and stability only on an open connection. Impossible combinations (a probe
//! while connecting, a retry time while open) cannot be written.

/// The connection's phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    /// No attempt in flight (idle, closed, or between attempts). `retry_at`: when the next attempt
    /// starts (`None`: none scheduled, or paused while offline). `server_hold`: the server asked
    /// to wait (1013), so neither online nor visible shortens the wait.
    Waiting {
        retry_at: Option<u64>,
        server_hold: bool,
    },
    /// Getting credentials; the attempt is abandoned at `deadline`.
    Credentials {
        deadline: u64,
    },
    /// Opening the socket; the attempt is abandoned at `deadline`.
    Socket {
        deadline: u64,
    },
    Open(Open),
}

/// What only an open connection has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Open {
    /// When this connection will have stayed open long enough to reset the backoff and the
    /// auth-failure count; `None` once it has.
    pub(super) stable_at: Option<u64>,
    pub(super) last_received: u64,
    /// The server's heartbeat (from its `welcome`, else the default).
    pub(super) heartbeat_ms: u64,
    /// This connection got its `welcome`.
    pub(super) welcomed: bool,
    /// A liveness probe (a `ping`) is out: any frame before this time answers it.
    pub(super) probe_deadline: Option<u64>,
}

impl Phase {
    /// No attempt and none scheduled.
    pub(super) const IDLE: Phase = Phase::Waiting { retry_at: None, server_hold: false };

    pub(super) fn is_open(&self) -> bool {
        matches!(self, Phase::Open(_))
    }

    /// A socket exists (opening or open): it must be closed on the way out.
    pub(super) fn has_socket(&self) -> bool {
        matches!(self, Phase::Socket { .. } | Phase::Open(_))
    }

    /// The deadline of an attempt still getting credentials or opening.
    pub(super) fn attempt_deadline(&self) -> Option<u64> {
        match self {
            Phase::Credentials { deadline } | Phase::Socket { deadline } => Some(*deadline),
            _ => None,
        }
    }
}

impl Open {
    pub(super) fn new(now: u64, heartbeat_ms: u64, stable_after_ms: u64) -> Open {
        Open {
            stable_at: Some(now.saturating_add(stable_after_ms)),
            last_received: now,
            heartbeat_ms,
            welcomed: false,
            probe_deadline: None,
        }
    }

    /// Nothing received by then (heartbeat + grace after the last frame): the connection is dead.
    pub(super) fn liveness_deadline(&self, grace_ms: u64) -> u64 {
        self.last_received.saturating_add(self.heartbeat_ms).saturating_add(grace_ms)
    }
}
