//! The bounded queue of frames the application sent while not connected (or throttled).
//! Bounded in messages and bytes; a frame that does not fit is refused, never an old one
//! silently dropped. Frames may carry a deadline after which they are dropped and reported.

use alloc::string::String;
use alloc::vec::Vec;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub text: String,
    /// Drop (and report) the frame if it is still queued at this time.
    pub expires_at: Option<u64>,
    /// The request id carried by the frame, if any.
    pub id: Option<String>,
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

impl Outbox {
    pub fn new(limits: OutboxLimits) -> Self {
        Outbox { limits, queue: Vec::new(), bytes: 0 }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn limits(&self) -> OutboxLimits {
        self.limits
    }

    /// Queues a frame at the back, or refuses it when it would pass either bound.
    pub fn push(&mut self, item: Queued) -> Result<(), Refused> {
        let size = item.text.len();
        if self.queue.len() >= self.limits.max_messages || self.bytes.saturating_add(size) > self.limits.max_bytes {
            return Err(Refused::Full { max_messages: self.limits.max_messages, max_bytes: self.limits.max_bytes });
        }
        self.bytes += size;
        self.queue.push(item);
        Ok(())
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
        let (expired, kept): (Vec<Queued>, Vec<Queued>) =
            core::mem::take(&mut self.queue).into_iter().partition(|item| item.expires_at.is_some_and(|t| t <= now));
        self.queue = kept;
        self.bytes -= expired.iter().map(|q| q.text.len()).sum::<usize>();
        expired
    }

    /// Removes the queued frame of request `id` (a request that timed out before it was sent).
    pub fn remove_id(&mut self, id: &str) -> bool {
        let before = self.queue.len();
        let mut bytes = self.bytes;
        self.queue.retain(|q| {
            let keep = q.id.as_deref() != Some(id);
            if !keep {
                bytes -= q.text.len();
            }
            keep
        });
        self.bytes = bytes;
        self.queue.len() != before
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
        Queued { text: text.into(), expires_at: None, id: None }
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
        o.push(Queued { text: "aa".into(), expires_at: Some(10), id: None }).unwrap();
        o.push(Queued { text: "bbb".into(), expires_at: None, id: Some("7".into()) }).unwrap();
        o.push(Queued { text: "c".into(), expires_at: Some(30), id: None }).unwrap();
        assert_eq!(o.next_deadline(), Some(10));
        assert_eq!(o.expire(10).len(), 1);
        assert_eq!(o.bytes(), 4);
        assert!(o.remove_id("7"));
        assert_eq!(o.bytes(), 1);
        assert_eq!(o.drain()[0].text, "c");
    }
}
