//! The bounded queue of frames the application sent while not connected (or throttled).
//! Bounded in messages and bytes; a frame that does not fit is refused, never an old one
//! silently dropped. Frames may carry a deadline after which they are dropped and reported.

use alloc::string::String;
use alloc::vec::Vec;

use super::types::Id;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits { max_messages: 1000, max_bytes: 1 << 20 }
    }
}

/// Who a queued frame belongs to, which decides what a cut or a refusal does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The machine's own (resume, join, leave): void after a cut, the machine makes them again.
    Control,
    /// An application request: a cut before its reply rejects it (`disconnected`).
    Request,
    /// An application `send`: after a cut it is sent again (same id) until answered; `ack`
    /// settles a promise with the answer.
    Send { ack: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub text: String,
    /// Drop (and report) the frame if it is still queued at this time.
    pub expires_at: Option<u64>,
    /// The id carried by the frame.
    pub id: Id,
    /// The order it was queued in (set by the sender): a refused frame goes back in this order.
    pub seq: u64,
    pub origin: Origin,
}

impl Queued {
    pub fn new(text: String, id: Id, origin: Origin) -> Self {
        Queued { text, expires_at: None, id, seq: 0, origin }
    }
}

/// Takes out the first frame of `queue` carrying `id` (ids are unique in a queue).
pub fn take_id(queue: &mut Vec<Queued>, id: Id) -> Option<Queued> {
    let at = queue.iter().position(|q| q.id == id)?;
    Some(queue.remove(at))
}

#[derive(Debug, Default)]
pub struct Outbox {
    limits: OutboxLimits,
    queue: Vec<Queued>,
    bytes: usize,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Full { max_messages: usize, max_bytes: usize },
}

/// Puts `item` back into `queue` in its queued order (`seq`): the outbox's and the sender's
/// control queue's one copy of it.
pub fn insert_in_order(queue: &mut Vec<Queued>, item: Queued) {
    let at = queue.partition_point(|q| q.seq < item.seq);
    queue.insert(at, item);
}

impl Outbox {
    pub fn new(limits: OutboxLimits) -> Self {
        Outbox { limits, queue: Vec::new(), bytes: 0 }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    /// Queues a frame at the back, or refuses it when it would pass either bound.
    pub fn push(&mut self, item: Queued) -> Result<(), Refused> {
        self.push_beside(item, 0, 0)
    }

    /// [`Outbox::push`], counting `messages` and `bytes` held elsewhere (sent, not answered yet,
    /// and put back here after a cut) against the bounds too.
    pub fn push_beside(&mut self, item: Queued, messages: usize, bytes: usize) -> Result<(), Refused> {
        let size = item.text.len();
        if self.queue.len().saturating_add(messages) >= self.limits.max_messages
            || self.bytes.saturating_add(bytes).saturating_add(size) > self.limits.max_bytes
        {
            return Err(Refused::Full { max_messages: self.limits.max_messages, max_bytes: self.limits.max_bytes });
        }
        self.bytes += size;
        self.queue.push(item);
        Ok(())
    }

    /// Puts back a frame that was taken (refused, or lost in a cut) in its queued order, whatever
    /// the bounds: it was accepted once (and counted by the sender while away).
    pub fn requeue(&mut self, item: Queued) {
        self.bytes += item.text.len();
        insert_in_order(&mut self.queue, item);
    }

    /// Takes the oldest frame.
    pub fn pop_front(&mut self) -> Option<Queued> {
        if self.queue.is_empty() {
            return None;
        }
        let item = self.queue.remove(0);
        self.bytes -= item.text.len();
        Some(item)
    }

    /// Takes every frame, oldest first.
    pub fn drain(&mut self) -> Vec<Queued> {
        self.bytes = 0;
        core::mem::take(&mut self.queue)
    }

    /// Removes and returns the frames whose deadline has passed.
    pub fn expire(&mut self, now: u64) -> Vec<Queued> {
        // Checked on every input: nothing due (the usual case) touches nothing.
        if !self.queue.iter().any(|item| item.expires_at.is_some_and(|t| t <= now)) {
            return Vec::new();
        }
        let mut expired = Vec::new();
        for item in core::mem::take(&mut self.queue) {
            if item.expires_at.is_some_and(|t| t <= now) {
                self.bytes -= item.text.len();
                expired.push(item);
            } else {
                self.queue.push(item);
            }
        }
        expired
    }

    /// Removes the queued frame of request `id` (a request that timed out before it was sent).
    pub fn remove_id(&mut self, id: Id) -> bool {
        let Some(q) = take_id(&mut self.queue, id) else { return false };
        self.bytes -= q.text.len();
        true
    }

    /// The earliest deadline among queued frames.
    pub fn next_deadline(&self) -> Option<u64> {
        self.queue.iter().filter_map(|q| q.expires_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Queued {
        Queued::new(text.into(), 0, Origin::Control)
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let mut o = Outbox::new(OutboxLimits { max_messages: 2, max_bytes: 10 });
        assert!(o.push(q("12345")).is_ok());
        assert!(o.push(q("123456")).is_err(), "11 bytes");
        assert!(o.push(q("12345")).is_ok());
        assert!(o.push(q("")).is_err(), "3 messages");
        assert_eq!(o.bytes(), 10);
        let all = o.drain();
        assert_eq!(all.len(), 2);
        assert_eq!(o.bytes(), 0);
    }

    #[test]
    fn expiry_and_removal_keep_the_byte_count() {
        let mut o = Outbox::new(OutboxLimits::default());
        o.push(Queued { expires_at: Some(10), ..q("aa") }).unwrap();
        o.push(Queued { id: 7, ..q("bbb") }).unwrap();
        o.push(Queued { expires_at: Some(30), ..q("c") }).unwrap();
        assert_eq!(o.next_deadline(), Some(10));
        assert_eq!(o.expire(10).len(), 1);
        assert_eq!(o.bytes(), 4);
        assert!(o.remove_id(7));
        assert_eq!(o.bytes(), 1);
        assert_eq!(o.drain()[0].text, "c");
    }

    #[test]
    fn requeue_keeps_the_queued_order() {
        let mut o = Outbox::new(OutboxLimits { max_messages: 2, max_bytes: 100 });
        o.push(Queued { seq: 3, ..q("c") }).unwrap();
        o.push(Queued { seq: 5, ..q("e") }).unwrap();
        o.requeue(Queued { seq: 4, ..q("d") });
        o.requeue(Queued { seq: 1, ..q("a") });
        assert_eq!(o.len(), 4, "past the bound: they were accepted once");
        assert_eq!(o.bytes(), 4);
        let order: Vec<String> = o.drain().into_iter().map(|q| q.text).collect();
        assert_eq!(order, ["a", "c", "d", "e"]);
    }
}
