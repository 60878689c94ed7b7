//! The user stream: epoch + last delivered seq, duplicates dropped, gaps filled by `resume`
//! or reported as a resync, never skipped silently.

use alloc::string::String;
#[cfg(test)]
use alloc::vec::Vec;

use super::vecmap::VecMap;

/// Why the application should reload its state over REST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// The server's history is a new generation (a restart without persistence).
    NewEpoch,
    /// The server could not replay everything missed (`resumed.complete == false`).
    Incomplete,
    /// A seq was skipped outside a resume.
    Gap,
}

impl ResyncReason {
    pub const ALL: [ResyncReason; 3] = [ResyncReason::NewEpoch, ResyncReason::Incomplete, ResyncReason::Gap];

    pub fn as_str(self) -> &'static str {
        match self {
            ResyncReason::NewEpoch => "new_epoch",
            ResyncReason::Incomplete => "incomplete",
            ResyncReason::Gap => "gap",
        }
    }
}

/// What the stream decided about one message or event (the tests' view: the machine gets the
/// messages through a callback, no `Vec`).
#[cfg(test)]
#[derive(Debug, PartialEq)]
pub struct Outcome<P> {
    /// Deliver these to the application, in order.
    pub deliver: Vec<P>,
    pub resync: Option<ResyncReason>,
}

/// What to do after a `welcome`.
#[derive(Debug, Clone, PartialEq)]
pub enum OnWelcome {
    Nothing,
    /// Send `resume` with this epoch and since.
    Resume {
        epoch: String,
        since: u64,
    },
    /// What was held from before went to `deliver`: report a resync (the epoch changed, or the
    /// server is behind us).
    Resync(ResyncReason),
}

#[derive(Debug)]
pub struct Stream<P> {
    epoch: Option<String>,
    last: u64,
    resuming: bool,
    /// Messages that arrived ahead of a gap while a resume fills it.
    ahead: VecMap<u64, P>,
    max_ahead: usize,
}

impl<P> Stream<P> {
    pub fn new(max_ahead: usize) -> Self {
        Stream { epoch: None, last: 0, resuming: false, ahead: VecMap::new(), max_ahead }
    }

    pub fn epoch(&self) -> Option<&str> {
        self.epoch.as_deref()
    }

    pub fn last_seq(&self) -> u64 {
        self.last
    }

    /// The connection ended. Messages held ahead of a gap stay held: the next connection's
    /// resume replays the gap (duplicates are dropped), so nothing is skipped that could be had.
    pub fn on_connection_lost(&mut self) {
        self.resuming = false;
    }

    /// The server's `welcome`: its epoch and the last seq it assigned. Messages held from
    /// before go to `deliver` when the stream starts over.
    pub fn on_welcome(&mut self, epoch: &str, seq: u64, deliver: &mut dyn FnMut(P)) -> OnWelcome {
        match &self.epoch {
            None => {
                self.epoch = Some(epoch.into());
                self.last = seq;
                OnWelcome::Nothing
            }
            Some(e) if e == epoch => {
                if seq > self.last {
                    self.resuming = true;
                    OnWelcome::Resume { epoch: epoch.into(), since: self.last }
                } else if seq < self.last {
                    // The server is behind us (it lost history): start over from its count.
                    self.flush_ahead(deliver);
                    self.last = seq;
                    OnWelcome::Resync(ResyncReason::Gap)
                } else {
                    OnWelcome::Nothing
                }
            }
            Some(_) => {
                // A new generation: what was held from the old one is delivered (it is real),
                // and the app reloads anyway.
                self.flush_ahead(deliver);
                self.epoch = Some(epoch.into());
                self.last = seq;
                OnWelcome::Resync(ResyncReason::NewEpoch)
            }
        }
    }

    /// A message carrying `seq`.
    #[cfg(test)]
    pub fn on_message(&mut self, seq: u64, msg: P) -> Outcome<P> {
        let mut deliver = Vec::new();
        let resync = self.on_message_into(seq, msg, &mut |m| deliver.push(m));
        Outcome { deliver, resync }
    }

    /// A message carrying `seq`: what is to be delivered goes to `deliver`, in order, and the
    /// answer says whether the app must resync. The common case (the next seq, nothing held)
    /// allocates nothing.
    pub fn on_message_into(&mut self, seq: u64, msg: P, deliver: &mut dyn FnMut(P)) -> Option<ResyncReason> {
        if seq <= self.last || self.ahead.contains_key(&seq) {
            return None; // a duplicate: delivered already
        }
        if seq == self.last + 1 {
            self.last = seq;
            deliver(msg);
            while let Some(next) = self.ahead.remove(&(self.last + 1)) {
                self.last += 1;
                deliver(next);
            }
            return None;
        }
        if self.resuming && self.ahead.len() < self.max_ahead {
            self.ahead.insert(seq, msg);
            return None;
        }
        // A gap no resume will fill: deliver what is held, then this, and say so.
        self.flush_ahead(deliver);
        if seq > self.last {
            self.last = seq;
            deliver(msg);
        }
        Some(ResyncReason::Gap)
    }

    /// The server's `resumed`: what was held goes to `deliver`; the answer says whether the app
    /// must resync.
    pub fn on_resumed(&mut self, complete: bool, deliver: &mut dyn FnMut(P)) -> Option<ResyncReason> {
        self.resuming = false;
        let gap = self.flush_ahead(deliver);
        if !complete {
            Some(ResyncReason::Incomplete)
        } else {
            gap.then_some(ResyncReason::Gap)
        }
    }

    /// Delivers everything held ahead, in order; true when there was a hole in it (a gap).
    fn flush_ahead(&mut self, deliver: &mut dyn FnMut(P)) -> bool {
        let mut gap = false;
        for (seq, msg) in self.ahead.take_all() {
            if seq <= self.last {
                continue;
            }
            if seq != self.last + 1 {
                gap = true;
            }
            self.last = seq;
            deliver(msg);
        }
        gap
    }

    /// [`Stream::on_resumed`] into an [`Outcome`].
    #[cfg(test)]
    pub fn resumed(&mut self, complete: bool) -> Outcome<P> {
        let mut deliver = Vec::new();
        let resync = self.on_resumed(complete, &mut |m| deliver.push(m));
        Outcome { deliver, resync }
    }

    /// [`Stream::on_welcome`], with what it delivered.
    #[cfg(test)]
    pub fn welcome(&mut self, epoch: &str, seq: u64) -> (OnWelcome, Vec<P>) {
        let mut deliver = Vec::new();
        let w = self.on_welcome(epoch, seq, &mut |m| deliver.push(m));
        (w, deliver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_duplicates() {
        let mut s = Stream::new(100);
        assert_eq!(s.welcome("e", 0).0, OnWelcome::Nothing);
        assert_eq!(s.on_message(1, "a").deliver, ["a"]);
        assert!(s.on_message(1, "a").deliver.is_empty());
        assert_eq!(s.on_message(2, "b").deliver, ["b"]);
        assert_eq!(s.last_seq(), 2);
    }

    #[test]
    fn resume_fills_a_gap_in_order() {
        let mut s = Stream::new(100);
        s.welcome("e", 0);
        s.on_message(1, 1);
        s.on_connection_lost();
        assert_eq!(s.welcome("e", 4).0, OnWelcome::Resume { epoch: "e".into(), since: 1 });
        // A live message overtakes the replay: held.
        assert!(s.on_message(5, 5).deliver.is_empty());
        assert_eq!(s.on_message(2, 2).deliver, [2]);
        assert_eq!(s.on_message(3, 3).deliver, [3]);
        assert_eq!(s.on_message(4, 4).deliver, [4, 5]);
        let done = s.resumed(true);
        assert!(done.deliver.is_empty() && done.resync.is_none());
        assert_eq!(s.last_seq(), 5);
    }

    #[test]
    fn incomplete_resume_reports_and_delivers_what_it_holds() {
        let mut s = Stream::new(100);
        s.welcome("e", 0);
        s.welcome("e", 10);
        assert!(s.on_message(8, 8).deliver.is_empty());
        assert!(s.on_message(9, 9).deliver.is_empty());
        let out = s.resumed(false);
        assert_eq!(out.deliver, [8, 9]);
        assert_eq!(out.resync, Some(ResyncReason::Incomplete));
    }

    #[test]
    fn a_new_epoch_is_a_resync() {
        let mut s = Stream::<u8>::new(100);
        s.welcome("a", 3);
        assert_eq!(s.welcome("b", 0), (OnWelcome::Resync(ResyncReason::NewEpoch), vec![]));
        assert_eq!(s.epoch(), Some("b"));
        assert_eq!(s.last_seq(), 0);
    }

    #[test]
    fn a_connection_lost_mid_resume_keeps_the_gap_for_the_next_resume() {
        let mut s = Stream::new(100);
        s.welcome("e", 0);
        s.on_message(1, 1);
        s.on_connection_lost();
        s.welcome("e", 5);
        assert!(s.on_message(4, 4).deliver.is_empty(), "held: 2 and 3 are missing");
        s.on_connection_lost();
        assert_eq!(s.last_seq(), 1, "not moved past the gap");
        assert_eq!(s.welcome("e", 5).0, OnWelcome::Resume { epoch: "e".into(), since: 1 });
        assert_eq!(s.on_message(2, 2).deliver, [2]);
        assert_eq!(s.on_message(3, 3).deliver, [3, 4]);
        assert_eq!(s.on_message(4, 4).deliver, Vec::<i32>::new());
        assert_eq!(s.on_message(5, 5).deliver, [5]);
    }

    #[test]
    fn a_gap_outside_resume_is_reported_not_hidden() {
        let mut s = Stream::new(100);
        s.welcome("e", 0);
        s.on_message(1, 1);
        let out = s.on_message(3, 3);
        assert_eq!(out.deliver, [3]);
        assert_eq!(out.resync, Some(ResyncReason::Gap));
    }
}
