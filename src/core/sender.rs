//! What goes out, in what order, and how fast: the machine's own frames (resume, re-joins)
//! before the application's, the application's outbox bounded, everything paced under the
//! server's rate limit, held back after `rate_limited` and until a `welcome` when one is due.
//! Pongs do not pass through here: they go out at once.

use alloc::string::String;
use alloc::vec::Vec;

use super::outbox::{Outbox, OutboxLimits, Queued, Refused};

/// At most `max` frames per `window_ms` (a fixed window, as the server counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRate {
    pub max: u32,
    pub window_ms: u64,
}

impl Default for SendRate {
    /// 8 frames a second: under the protocol's default server limit of 10, with room for pongs.
    fn default() -> Self {
        SendRate { max: 8, window_ms: 1_000 }
    }
}

#[derive(Debug)]
pub struct Sender {
    control: Vec<Queued>,
    outbox: Outbox,
    rate: Option<SendRate>,
    window_start: u64,
    window_sent: u32,
    throttled_until: Option<u64>,
    held_until: Option<u64>,
}

impl Sender {
    pub fn new(limits: OutboxLimits, rate: Option<SendRate>) -> Self {
        Sender {
            control: Vec::new(),
            outbox: Outbox::new(limits),
            rate,
            window_start: 0,
            window_sent: 0,
            throttled_until: None,
            held_until: None,
        }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn backlog(&self) -> usize {
        self.control.len() + self.outbox.len()
    }

    /// Queues one of the machine's own frames; `front` puts it before every other.
    pub fn push_control(&mut self, text: String, id: Option<String>, front: bool) {
        let item = Queued { text, expires_at: None, id };
        if front {
            self.control.insert(0, item);
        } else {
            self.control.push(item);
        }
    }

    /// Queues an application frame, or refuses it when the outbox is full.
    pub fn push_app(&mut self, item: Queued) -> Result<(), Refused> {
        self.outbox.push(item)
    }

    /// Holds everything back until `until` (or [`Sender::release`]): a `welcome` is due.
    pub fn hold(&mut self, until: u64) {
        self.held_until = Some(until);
    }

    pub fn release(&mut self) {
        self.held_until = None;
    }

    pub fn is_held(&self) -> bool {
        self.held_until.is_some()
    }

    /// The server refused a frame over its rate limit: send nothing for `ms`.
    pub fn throttle(&mut self, now: u64, ms: u64) {
        self.throttled_until = Some(now.saturating_add(ms));
    }

    /// A connection ended: its own frames (resume, re-joins) are void; the outbox stays.
    pub fn on_connection_lost(&mut self) {
        self.control.clear();
        self.held_until = None;
    }

    fn take_slot(&mut self, now: u64) -> bool {
        let Some(rate) = self.rate else { return true };
        if now >= self.window_start.saturating_add(rate.window_ms) {
            self.window_start = now;
            self.window_sent = 0;
        }
        if self.window_sent < rate.max {
            self.window_sent += 1;
            true
        } else {
            false
        }
    }

    /// The frames that may go out now on an open connection, in order.
    pub fn pump(&mut self, now: u64) -> Vec<Queued> {
        let mut out = Vec::new();
        if self.held_until.is_some_and(|t| now >= t) {
            self.held_until = None; // no welcome came: go on without one
        }
        if self.throttled_until.is_some_and(|t| now >= t) {
            self.throttled_until = None;
        }
        if self.held_until.is_some() || self.throttled_until.is_some() {
            return out;
        }
        while self.backlog() > 0 && self.take_slot(now) {
            let next = if self.control.is_empty() { self.outbox.pop_front() } else { Some(self.control.remove(0)) };
            match next {
                Some(item) => out.push(item),
                None => break,
            }
        }
        out
    }

    /// When the backlog can move again (hold, throttle or rate window ending).
    pub fn next_deadline(&self) -> Option<u64> {
        if self.backlog() == 0 {
            return None;
        }
        if let Some(t) = self.held_until {
            return Some(t);
        }
        if let Some(t) = self.throttled_until {
            return Some(t);
        }
        self.rate.map(|r| self.window_start.saturating_add(r.window_ms))
    }

    pub fn expire(&mut self, now: u64) -> Vec<Queued> {
        self.outbox.expire(now)
    }

    pub fn remove_id(&mut self, id: &str) {
        self.control.retain(|q| q.id.as_deref() != Some(id));
        self.outbox.remove_id(id);
    }

    /// Everything still queued, for `close()`.
    pub fn clear(&mut self) -> Vec<Queued> {
        self.control.clear();
        self.held_until = None;
        self.throttled_until = None;
        self.outbox.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(t: &str) -> Queued {
        Queued { text: t.into(), expires_at: None, id: None }
    }

    fn texts(v: Vec<Queued>) -> Vec<String> {
        v.into_iter().map(|q| q.text).collect()
    }

    #[test]
    fn control_frames_go_first_and_the_rate_is_kept() {
        let mut s = Sender::new(OutboxLimits::default(), Some(SendRate { max: 3, window_ms: 1000 }));
        for t in ["a", "b", "c", "d"] {
            s.push_app(q(t)).unwrap();
        }
        s.push_control("join".into(), None, false);
        s.push_control("resume".into(), None, true);
        assert_eq!(texts(s.pump(0)), ["resume", "join", "a"]);
        assert!(s.pump(999).is_empty());
        assert_eq!(s.next_deadline(), Some(1000));
        assert_eq!(texts(s.pump(1000)), ["b", "c", "d"]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn hold_and_throttle_stop_everything_until_they_end() {
        let mut s = Sender::new(OutboxLimits::default(), None);
        s.push_app(q("a")).unwrap();
        s.hold(100);
        assert!(s.pump(50).is_empty());
        assert_eq!(s.next_deadline(), Some(100));
        assert_eq!(texts(s.pump(100)), ["a"]);
        s.push_app(q("b")).unwrap();
        s.throttle(200, 1000);
        assert!(s.pump(500).is_empty());
        assert_eq!(texts(s.pump(1200)), ["b"]);
    }
}
