//! What goes out, in what order, and how fast: the machine's own frames (resume, re-joins)
//! before the application's, the application's outbox bounded, everything paced under the
//! server's rate limit, held back after `rate_limited` and until a `welcome` when one is due.
//! Pongs do not pass through here: they go out at once and the server does not count them.
//!
//! Pacing is clocked by the server's answers, so no phase of the server's window and no network
//! delay can make it collide: every counted frame carries an id and gets exactly one answer,
//! and the server handles a connection's frames in order, so when the answer to frame `k`
//! arrives, frames `..=k` have all reached the server. Frame `i` goes out only once
//! `window + margin` has passed since the answer covering frame `i - max` arrived: then at most
//! `max` frames ever reach the server within one window, whether its windows are fixed (starting
//! anywhere) or sliding. A frame with no answer after [`UNANSWERED_MS`] is taken as arrived then.
//!
//! Sent application frames stay here until answered: a `rate_limited` refusal puts a frame back
//! in its queued order (and halves the pace from then on); a cut puts back
//! every `send` not answered (it may reach the server twice: the server can tell by its id).

use alloc::string::String;
use alloc::vec::Vec;

use super::outbox::{take_id, Origin, Outbox, OutboxLimits, Queued, Refused};
use super::types::Id;

/// At most `max` frames per `window_ms` at the server (its rate limit, or under it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRate {
    pub max: u32,
    pub window_ms: u64,
}

impl Default for SendRate {
    /// 9 frames a second: under the protocol's default server limit of 10, with one to spare for
    /// a server that counted the pongs answering its pings.
    fn default() -> Self {
        SendRate { max: 9, window_ms: 1_000 }
    }
}

/// Added to the window: clock granularity and drift between the client and the server.
pub const MARGIN_MS: u64 = 25;
/// A frame unanswered this long is taken as arrived at the server (pacing only).
pub const UNANSWERED_MS: u64 = 10_000;

/// One counted frame sent on this connection: when, and when its answer (or a later frame's)
/// showed it had reached the server.
#[derive(Debug)]
struct Slot {
    id: Id,
    sent_at: u64,
    arrived_by: Option<u64>,
}

#[derive(Debug)]
pub struct Sender {
    control: Vec<Queued>,
    outbox: Outbox,
    rate: Option<SendRate>,
    /// Frames per window: `rate.max`, halved after a refusal (once per throttle) for the rest of
    /// the client's life: this server is stricter than `rate`.
    budget: u32,
    /// The last counted frames sent on this connection, oldest first (at most `budget` kept).
    window: Vec<Slot>,
    /// Frames sent and not answered yet, in the order sent.
    inflight: InFlight,
    next_seq: u64,
    throttled_until: Option<u64>,
    held_until: Option<u64>,
}

/// Frames sent and not answered yet, in the order sent, with the count and bytes of the
/// application's sends among them: the outbox's bounds count those, and a loop of `send()`s
/// must not walk the whole list each time (it did: 10 µs a call at 10 000 in flight).
#[derive(Debug, Default)]
struct InFlight {
    items: Vec<Queued>,
    sends: usize,
    send_bytes: usize,
}

impl InFlight {
    fn counted(q: &Queued) -> bool {
        matches!(q.origin, Origin::Send { .. })
    }

    fn push(&mut self, q: Queued) {
        if Self::counted(&q) {
            self.sends += 1;
            self.send_bytes += q.text.len();
        }
        self.items.push(q);
    }

    /// Takes out the frame carrying `id` (ids are unique among frames in flight).
    fn remove(&mut self, id: Id) -> Option<Queued> {
        let q = take_id(&mut self.items, id)?;
        if Self::counted(&q) {
            self.sends -= 1;
            self.send_bytes -= q.text.len();
        }
        Some(q)
    }

    fn take(&mut self) -> Vec<Queued> {
        self.sends = 0;
        self.send_bytes = 0;
        core::mem::take(&mut self.items)
    }
}

/// What an answer meant for the frame it names.
#[derive(Debug, PartialEq, Eq)]
pub enum Answered {
    /// Not a frame sent from here (or answered already).
    Unknown,
    /// Done: it was accepted, or refused for good.
    Done(Queued),
    /// Refused by the rate limit: queued again, in its order.
    Requeued(Origin),
}

impl Sender {
    pub fn new(limits: OutboxLimits, rate: Option<SendRate>) -> Self {
        Sender {
            control: Vec::new(),
            outbox: Outbox::new(limits),
            budget: rate.map_or(0, |r| r.max.max(1)),
            rate,
            window: Vec::new(),
            inflight: InFlight::default(),
            next_seq: 0,
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

    #[cfg(test)]
    /// Frames sent on this connection and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.inflight.items.len()
    }

    fn stamp(&mut self, mut item: Queued) -> Queued {
        self.next_seq += 1;
        item.seq = self.next_seq;
        item
    }

    /// Queues one of the machine's own frames; `front` puts it before every other.
    pub fn push_control(&mut self, text: String, id: Id, front: bool) {
        let mut item = self.stamp(Queued::new(text, id, Origin::Control));
        if front {
            item.seq = 0;
            self.control.insert(0, item);
        } else {
            self.control.push(item);
        }
    }

    /// Queues an application frame, or refuses it when the outbox is full. The bounds count the
    /// application's frames sent and not answered too: a cut may put them back.
    pub fn push_app(&mut self, item: Queued) -> Result<(), Refused> {
        let item = self.stamp(item);
        self.outbox.push_beside(item, self.inflight.sends, self.inflight.send_bytes)
    }

    /// Holds everything back until `until` (or [`Sender::release`]): a `welcome` is due.
    pub fn hold(&mut self, until: u64) {
        self.held_until = Some(until);
    }

    pub fn release(&mut self) {
        self.held_until = None;
    }

    /// A connection ended: its own frames (resume, re-joins) are void; every `send` not
    /// answered goes back to the outbox in its order; the new connection has a new window.
    pub fn on_connection_lost(&mut self) {
        self.control.clear();
        self.held_until = None;
        self.throttled_until = None;
        self.window.clear();
        for item in self.inflight.take() {
            if matches!(item.origin, Origin::Send { .. }) {
                self.outbox.requeue(item);
            }
        }
    }

    /// The server refused a frame this sender does not know: send nothing for `ms`.
    pub fn throttle(&mut self, now: u64, ms: u64) {
        self.throttled_until = Some(now.saturating_add(ms));
    }

    /// A counted frame went out at `now` without passing through [`Sender::pump_into`] (a probe).
    pub fn record(&mut self, id: Id, now: u64) {
        if self.rate.is_some() {
            self.window.push(Slot { id, sent_at: now, arrived_by: None });
        }
    }

    /// True for a frame sent from here and not answered yet.
    pub fn tracks(&self, id: Id) -> bool {
        self.inflight.items.iter().any(|q| q.id == id)
    }

    /// A frame carrying `id` came from the server at `now`: it answers the frame sent with that
    /// id, which (and every frame sent before it) has reached the server. `rate_limited` puts
    /// the frame back in its order and slows down.
    pub fn on_answer(&mut self, id: Id, rate_limited: bool, now: u64, throttle_ms: u64) -> Answered {
        if let Some(last) = self.window.iter().rposition(|s| s.id == id) {
            for slot in self.window.iter_mut().take(last + 1) {
                slot.arrived_by.get_or_insert(now);
            }
        }
        let Some(item) = self.inflight.remove(id) else {
            return Answered::Unknown;
        };
        if !rate_limited {
            return Answered::Done(item);
        }
        if self.throttled_until.is_none() {
            self.budget = (self.budget / 2).max(1);
        }
        let until = now.saturating_add(throttle_ms);
        self.throttled_until = Some(self.throttled_until.map_or(until, |t| t.max(until)));
        let origin = item.origin;
        if origin == Origin::Control {
            super::outbox::insert_in_order(&mut self.control, item);
        } else {
            self.outbox.requeue(item);
        }
        Answered::Requeued(origin)
    }

    /// When the oldest slot stops counting; `None` when it has no answer yet.
    fn slot_free_at(&self, slot: &Slot) -> u64 {
        let window = self.rate.map_or(0, |r| r.window_ms);
        let arrived = slot.arrived_by.unwrap_or_else(|| slot.sent_at.saturating_add(UNANSWERED_MS));
        arrived.saturating_add(window).saturating_add(MARGIN_MS)
    }

    fn take_slot(&mut self, now: u64) -> bool {
        if self.rate.is_none() {
            return true;
        }
        while self.window.len() >= self.budget as usize {
            match self.window.first() {
                Some(oldest) if now >= self.slot_free_at(oldest) => {
                    self.window.remove(0);
                }
                _ => return false,
            }
        }
        true
    }

    /// The frames that may go out now on an open connection, in order, to `send`.
    pub fn pump_into(&mut self, now: u64, send: &mut dyn FnMut(Queued)) {
        if self.held_until.is_some_and(|t| now >= t) {
            self.held_until = None; // no welcome came: go on without one
        }
        if self.throttled_until.is_some_and(|t| now >= t) {
            self.throttled_until = None;
        }
        if self.held_until.is_some() || self.throttled_until.is_some() {
            return;
        }
        while self.backlog() > 0 && self.take_slot(now) {
            let next = if self.control.is_empty() { self.outbox.pop_front() } else { Some(self.control.remove(0)) };
            let Some(item) = next else { break };
            self.record(item.id, now);
            self.inflight.push(item.clone());
            send(item);
        }
    }

    /// [`Sender::pump_into`], as a list.
    #[cfg(test)]
    pub fn pump(&mut self, now: u64) -> Vec<Queued> {
        let mut out = Vec::new();
        self.pump_into(now, &mut |q| out.push(q));
        out
    }

    /// When the backlog can move again (hold, throttle or an earlier frame leaving the window).
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
        self.window.first().filter(|_| self.window.len() >= self.budget as usize).map(|s| self.slot_free_at(s))
    }

    pub fn expire(&mut self, now: u64) -> Vec<Queued> {
        self.outbox.expire(now)
    }

    pub fn remove_id(&mut self, id: Id) {
        take_id(&mut self.control, id);
        self.inflight.remove(id);
        self.outbox.remove_id(id);
    }

    /// Drops everything still queued or unanswered, for `close()`.
    pub fn clear(&mut self) {
        self.control.clear();
        self.held_until = None;
        self.throttled_until = None;
        self.window.clear();
        self.inflight.take();
        self.outbox.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame's id in these tests: its text's first letter.
    fn id(t: &str) -> Id {
        Id::from(t.as_bytes()[0])
    }

    fn q(t: &str) -> Queued {
        Queued::new(t.into(), id(t), Origin::Send { ack: false })
    }

    fn texts(v: Vec<Queued>) -> Vec<String> {
        v.into_iter().map(|q| q.text).collect()
    }

    #[test]
    fn control_frames_go_first_and_answers_clock_the_rate() {
        let mut s = Sender::new(OutboxLimits::default(), Some(SendRate { max: 3, window_ms: 1000 }));
        for t in ["a", "b", "c", "d"] {
            s.push_app(q(t)).unwrap();
        }
        s.push_control("join".into(), id("j"), false);
        s.push_control("resume".into(), id("r"), true);
        assert_eq!(texts(s.pump(0)), ["resume", "join", "a"]);
        assert!(s.pump(2000).is_empty(), "no answer yet: the server may not have seen them");
        assert_eq!(s.next_deadline(), Some(UNANSWERED_MS + 1000 + MARGIN_MS));
        // The answer to `join` shows `resume` and `join` arrived by 300.
        assert!(matches!(s.on_answer(id("j"), false, 300, 1000), Answered::Done(q) if q.text == "join"));
        assert_eq!(s.next_deadline(), Some(300 + 1000 + MARGIN_MS));
        assert!(s.pump(1324).is_empty());
        assert_eq!(texts(s.pump(1325)), ["b", "c"]);
        assert_eq!(s.next_deadline(), Some(UNANSWERED_MS + 1000 + MARGIN_MS), "then `a`, unanswered");
        assert!(matches!(s.on_answer(id("a"), false, 1400, 1000), Answered::Done(_)));
        assert_eq!(texts(s.pump(2425)), ["d"]);
        assert_eq!(s.next_deadline(), None);
        assert_eq!(s.in_flight(), 4, "resume, b, c, d");
    }

    #[test]
    fn a_refused_frame_goes_back_in_order_and_the_pace_halves() {
        let mut s = Sender::new(OutboxLimits::default(), Some(SendRate { max: 4, window_ms: 1000 }));
        for t in ["a", "b", "c", "d", "e"] {
            s.push_app(q(t)).unwrap();
        }
        assert_eq!(texts(s.pump(0)), ["a", "b", "c", "d"]);
        assert!(matches!(s.on_answer(id("a"), false, 10, 1000), Answered::Done(_)));
        assert_eq!(s.on_answer(id("c"), true, 10, 1000), Answered::Requeued(Origin::Send { ack: false }));
        assert_eq!(s.on_answer(id("b"), true, 11, 1000), Answered::Requeued(Origin::Send { ack: false }));
        assert!(s.pump(500).is_empty(), "throttled");
        assert_eq!(s.next_deadline(), Some(1011));
        assert!(matches!(s.on_answer(id("d"), false, 12, 1000), Answered::Done(_)));
        // Budget 2 now; the window holds a..d (arrived by 10..12).
        assert_eq!(texts(s.pump(1011 + MARGIN_MS)), ["b"], "a's and b's slots are free");
        assert_eq!(texts(s.pump(1012 + MARGIN_MS)), ["c"]);
        s.on_connection_lost();
        assert_eq!(texts(s.pump(5000)), ["b", "c"], "sent, unanswered, then queued (budget 2)");
        s.clear();
        assert_eq!((s.backlog(), s.in_flight()), (0, 0));
    }

    #[test]
    fn a_cut_puts_back_unanswered_sends_only() {
        let mut s = Sender::new(OutboxLimits::default(), None);
        s.push_app(Queued::new("req".into(), id("q"), Origin::Request)).unwrap();
        s.push_app(q("a")).unwrap();
        s.push_app(q("b")).unwrap();
        s.push_control("join".into(), id("j"), false);
        assert_eq!(texts(s.pump(0)), ["join", "req", "a", "b"]);
        assert!(matches!(s.on_answer(id("a"), false, 5, 1000), Answered::Done(_)));
        s.push_app(q("c")).unwrap();
        s.on_connection_lost();
        assert_eq!(texts(s.pump(10)), ["b", "c"]);
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
        assert!(matches!(s.on_answer(id("a"), true, 200, 1000), Answered::Requeued(_)));
        assert!(s.pump(500).is_empty());
        assert_eq!(texts(s.pump(1200)), ["a", "b"]);
    }
}
