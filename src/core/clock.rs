//! Time: attempts, stability, liveness, probes, retries and deadlines due at `now`, and the
//! one wake-up the shell is asked to schedule.

use super::machine::{Machine, CLOSE_LIVENESS};
use super::phase::Phase;
use super::requests::Expired;
use super::share::Role;
use super::types::{Action, Error, ErrorKind, State};
use crate::protocol::CloseCode;

impl<P: Clone> Machine<P> {
    /// Everything due at `now`: attempts, stability, liveness, probes, retries, deadlines.
    pub(super) fn check_clock(&mut self, now: u64) {
        if self.state == State::Closed {
            return;
        }
        if self.phase.attempt_deadline().is_some_and(|t| now >= t) && self.role() == Some(Role::Follower) {
            // No leader answered the relay's hello: ask again later, quietly (no server involved).
            self.give_up_connection("Relay timeout");
            self.retry(now, None);
        }
        if self.phase.attempt_deadline().is_some_and(|t| now >= t) {
            let stalled = self.phase.has_socket(); // credentials came; the socket never opened
            if stalled {
                self.push(Action::CloseSocket { code: CLOSE_LIVENESS, reason: "Connect timeout" });
            }
            self.connection_lost();
            self.emit_error(Error::new(ErrorKind::ConnectTimeout, "the attempt took longer than connectTimeoutMs"));
            // A stalled upgrade is a broken path as a cut one is (a proxy that holds it).
            if !(stalled && self.transport_failed(now, CloseCode::Abnormal.as_u16(), false)) {
                self.retry(now, None);
            }
        }
        if let Phase::Open(open) = &mut self.phase {
            if open.stable_at.is_some_and(|t| now >= t) {
                open.stable_at = None;
                self.failures = 0;
                self.auth_failures = 0;
            }
        }
        let grace = self.cfg.heartbeat_grace_ms;
        if let Phase::Open(open) = &self.phase {
            if open.probe_deadline.is_some_and(|t| now >= t) || now >= open.liveness_deadline(grace) {
                self.drop_dead(now);
            }
        }
        if matches!(self.phase, Phase::Waiting { retry_at: Some(t), .. } if now >= t) {
            self.start_attempt(now);
        }
        self.share_clock(now);
        self.transport_clock(now);
        let rejoin_deadline = now.saturating_add(self.cfg.request_timeout_ms);
        let (stream, sender, actions) = (&mut self.stream, &mut self.sender, &mut self.actions);
        self.requests.expire(now, rejoin_deadline, &mut |id, expired| {
            let text = match expired {
                // The app hears of the delay; the room stays wanted (until `leave`) and its join
                // still goes out, its reply now the machine's.
                Expired::Join => "not joined in time; the room stays wanted until leave()",
                Expired::Resume => return Self::resumed_into(stream, actions, false),
                Expired::Dropped => {
                    sender.remove_id(id);
                    "no reply in time"
                }
            };
            actions.push(Action::Settle { id, result: Err(Error::new(ErrorKind::Timeout, text)) });
        });
        for item in self.sender.expire(now) {
            let e = Error::new(ErrorKind::Expired, "dropped: not sent within outbox.ttlMs");
            self.app_failed(item.id, item.origin, e);
        }
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        if self.state == State::Closed {
            return None;
        }
        let mut next: Option<u64> = None;
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        match &self.phase {
            Phase::Waiting { retry_at, .. } => consider(*retry_at),
            Phase::Credentials { deadline } | Phase::Socket { deadline } => consider(Some(*deadline)),
            Phase::Open(open) => {
                consider(Some(open.liveness_deadline(self.cfg.heartbeat_grace_ms)));
                consider(open.probe_deadline);
                consider(open.stable_at);
                consider(self.sender.next_deadline());
                consider(self.fallback.as_ref().and_then(|f| f.next_deadline()));
            }
        }
        consider(self.requests.next_deadline());
        if self.state != State::Idle {
            consider(self.share.as_ref().map(|s| s.next_deadline()));
        }
        consider(self.sender.outbox().next_deadline());
        next
    }

    /// Asks the shell for a wake-up only when the earliest deadline moved earlier than the one
    /// armed (or none is armed). A deadline that moved later (liveness, on every frame received)
    /// keeps the armed timer: it fires early, `check_clock` finds nothing due, and the next
    /// `reschedule` arms the new deadline. So a busy connection re-arms its timer about once a
    /// heartbeat instead of on every frame. With no deadline left, an armed timer is cancelled.
    pub(super) fn reschedule(&mut self, now: u64) {
        let next = self.next_deadline().map(|t| t.max(now));
        let rearm = match (next, self.scheduled) {
            (Some(t), Some(armed)) => t < armed,
            (None, None) => false,
            _ => true,
        };
        if rearm {
            self.scheduled = next;
            self.actions.push(Action::Schedule(next));
        }
    }
}
