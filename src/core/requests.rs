//! The frames waiting for their one reply: the application's requests, joins and leaves, and the
//! machine's own re-joins and resume. One table, and every rule of its life in one place: what a
//! reply settles, what a cut does to each kind, what a deadline does, what `close()` settles.

use alloc::string::String;
use alloc::vec::Vec;

use super::types::{Error, ErrorKind, Id};

// No `PartialEq`: kinds are told apart with `matches!` (a derived `==` compared the rooms' strings).
#[derive(Debug)]
pub(super) enum Kind {
    Request,
    Join(String),
    Leave,
    /// A re-join the machine sent itself after a reconnect (or a join whose app promise timed
    /// out): its reply is not the app's.
    Rejoin(String),
    /// The machine's own `resume`.
    Resume,
}

impl Kind {
    /// The machine's own: no application promise waits for it.
    fn is_own(&self) -> bool {
        matches!(self, Kind::Rejoin(_) | Kind::Resume)
    }
}

#[derive(Debug)]
struct Pending {
    kind: Kind,
    deadline: u64,
    /// Sent on the current connection (not just queued).
    sent: bool,
}

/// What a pending frame's deadline calls for.
pub(super) enum Expired {
    /// An application join: its promise rejects with `timeout`; the room stays wanted and its
    /// join is now the machine's own.
    Join,
    /// The resume got no answer: the stream must resync.
    Resume,
    /// A request or leave: it rejects with `timeout`, and its frame is dropped if still queued.
    Dropped,
}

/// The pending frames in the order added, which is their ids' order: every id is a fresh one
/// from [`super::Machine::next_id`] (a list: no sorted map's code for a handful of entries).
#[derive(Debug, Default)]
pub(super) struct Requests(Vec<(Id, Pending)>);

impl Requests {
    /// Waits for `id`'s reply until `deadline`. `sent`: already on the wire.
    pub(super) fn add(&mut self, id: Id, kind: Kind, deadline: u64, sent: bool) {
        self.0.push((id, Pending { kind, deadline, sent }));
    }

    /// From the newest: what is marked sent is mostly what was just added.
    fn get_mut(&mut self, id: Id) -> Option<&mut Pending> {
        self.0.iter_mut().rev().find(|(i, _)| *i == id).map(|(_, p)| p)
    }

    /// The id of an application `join` of `room` not sent yet.
    pub(super) fn waiting_join(&self, room: &str) -> Option<Id> {
        for (id, p) in &self.0 {
            if !p.sent && matches!(&p.kind, Kind::Join(r) if r == room) {
                return Some(*id);
            }
        }
        None
    }

    pub(super) fn contains(&self, id: Id) -> bool {
        self.0.iter().any(|(i, _)| *i == id)
    }

    pub(super) fn mark_sent(&mut self, id: Id) {
        if let Some(p) = self.get_mut(id) {
            p.sent = true;
        }
    }

    /// The frame was refused by the rate limit and queued again: the app's wait for it to go out
    /// again (the machine's own stay counted as sent: they go first).
    pub(super) fn requeued(&mut self, id: Id) {
        if let Some(p) = self.get_mut(id) {
            p.sent = p.kind.is_own();
        }
    }

    /// Forgets `id` (refused before it went out), returning its kind.
    pub(super) fn remove(&mut self, id: Id) -> Option<Kind> {
        let at = self.0.iter().position(|(i, _)| *i == id)?;
        Some(self.0.remove(at).1.kind)
    }

    /// The `resumed` came (it answers the resume whatever its id).
    pub(super) fn resumed(&mut self) {
        self.0.retain(|(_, p)| !matches!(p.kind, Kind::Resume));
    }

    /// A reply (not an error) to `id`: false when nothing waits for it. `settle` gets each
    /// application id it answers: a join's answers every join of that room still waiting.
    pub(super) fn reply(&mut self, id: Id, mut settle: impl FnMut(Id)) -> bool {
        let Some(kind) = self.remove(id) else { return false };
        if let Kind::Join(room) | Kind::Rejoin(room) = &kind {
            while let Some(other) = self.waiting_join(room) {
                self.remove(other);
                settle(other);
            }
        }
        if matches!(kind, Kind::Join(_) | Kind::Request | Kind::Leave) {
            settle(id);
        }
        true
    }

    /// A connection that was open is lost: what was sent is answered never. A request rejects
    /// with `disconnected` (`settle` gets an `Err`); a leave is done (a closed connection is in no
    /// room: `Ok`); a join waits for the next connection; the machine's own frames are forgotten
    /// (sent again on the next open).
    pub(super) fn connection_lost(&mut self, mut settle: impl FnMut(Id, Result<(), Error>)) {
        self.0.retain_mut(|(id, p)| {
            let id = *id;
            if !p.sent && !matches!(p.kind, Kind::Leave) {
                return true;
            }
            match p.kind {
                Kind::Join(_) => {
                    p.sent = false;
                    return true;
                }
                Kind::Leave => settle(id, Ok(())),
                Kind::Request => {
                    settle(id, Err(Error::new(ErrorKind::Disconnected, "connection lost before the reply")))
                }
                Kind::Rejoin(_) | Kind::Resume => {}
            }
            false
        });
    }

    /// The frames whose deadline is at or before `now`, to `expired` with what each calls for,
    /// in the table's order (no list: nothing allocated). An application join becomes the
    /// machine's own, due again at `rejoin_deadline`; the others are forgotten; a re-join is not
    /// reported (its frame stays queued, the room is still wanted).
    pub(super) fn expire(&mut self, now: u64, rejoin_deadline: u64, expired: &mut dyn FnMut(Id, Expired)) {
        // Checked on every input: a plain walk, nothing moved unless something is due.
        let mut at = 0;
        while let Some((id, p)) = self.0.get_mut(at) {
            let id = *id;
            if now < p.deadline {
                at += 1;
                continue;
            }
            if let Kind::Join(room) = &mut p.kind {
                let room = core::mem::take(room);
                p.kind = Kind::Rejoin(room);
                p.deadline = rejoin_deadline;
                at += 1;
                expired(id, Expired::Join);
                continue;
            }
            let what = match self.0.remove(at).1.kind {
                Kind::Rejoin(_) => continue,
                Kind::Resume => Expired::Resume,
                Kind::Join(_) | Kind::Request | Kind::Leave => Expired::Dropped,
            };
            expired(id, what);
        }
    }

    /// [`Requests::expire`], as a list.
    #[cfg(test)]
    pub(super) fn expire_list(&mut self, now: u64, rejoin_deadline: u64) -> Vec<(Id, Expired)> {
        let mut out = Vec::new();
        self.expire(now, rejoin_deadline, &mut |id, what| out.push((id, what)));
        out
    }

    /// `close()`: forgets everything; `closed` gets each application id, to reject.
    pub(super) fn close(&mut self, mut closed: impl FnMut(Id)) {
        for (id, p) in core::mem::take(&mut self.0) {
            if !p.kind.is_own() {
                closed(id);
            }
        }
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        let mut next = None;
        for (_, p) in &self.0 {
            next = Some(next.map_or(p.deadline, |t: u64| t.min(p.deadline)));
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fresh ids, in the order added: the table's order.
    const JOIN: Id = 1;
    const LEAVE: Id = 2;
    const REJOIN: Id = 3;
    const REQ: Id = 4;
    const RESUME: Id = 5;

    fn closed(r: &mut Requests) -> Vec<Id> {
        let mut ids = Vec::new();
        r.close(|id| ids.push(id));
        ids
    }

    fn table() -> Requests {
        let mut r = Requests::default();
        r.add(JOIN, Kind::Join("a".into()), 100, true);
        r.add(LEAVE, Kind::Leave, 100, false);
        r.add(REJOIN, Kind::Rejoin("b".into()), 100, true);
        r.add(REQ, Kind::Request, 100, true);
        r.add(RESUME, Kind::Resume, 100, true);
        r
    }

    #[test]
    fn a_cut_settles_requests_and_leaves_and_keeps_joins_waiting() {
        let mut r = table();
        let mut settled = Vec::new();
        r.connection_lost(|id, res| settled.push((id, res.is_ok())));
        assert_eq!(settled, [(LEAVE, true), (REQ, false)]);
        assert_eq!(r.waiting_join("a"), Some(JOIN), "sent again on the next open");
        assert_eq!(closed(&mut r), [JOIN], "the machine's own frames were forgotten");
    }

    #[test]
    fn one_joined_answers_every_join_of_the_room_still_waiting() {
        let mut r = Requests::default();
        r.add(1, Kind::Join("a".into()), 100, true);
        r.add(2, Kind::Join("a".into()), 100, false);
        r.add(3, Kind::Join("b".into()), 100, false);
        let mut ids = Vec::new();
        assert!(r.reply(1, |id| ids.push(id)));
        assert_eq!(ids, [2, 1]);
        assert!(!r.reply(1, |_| panic!("once")));
        assert_eq!(closed(&mut r), [3]);
    }

    #[test]
    fn deadlines_turn_an_app_join_into_the_machines_own() {
        let mut r = table();
        assert!(r.expire_list(99, 150).is_empty(), "nothing due yet");
        let expired = r.expire_list(100, 150);
        assert!(
            matches!(
                expired.as_slice(),
                [(JOIN, Expired::Join), (LEAVE, Expired::Dropped), (REQ, Expired::Dropped), (RESUME, Expired::Resume)]
            ),
            "the re-join is forgotten, not listed"
        );
        assert_eq!(r.next_deadline(), Some(150), "the join, now a re-join");
        assert!(closed(&mut r).is_empty(), "nothing left of the app's");
    }
}
