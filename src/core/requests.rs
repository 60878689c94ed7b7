//! The frames waiting for their one reply: the application's requests, joins and leaves, and the
//! machine's own re-joins and resume. One table, and every rule of its life in one place: what a
//! reply settles, what a cut does to each kind, what a deadline does, what `close()` settles.

use alloc::string::String;
use alloc::vec::Vec;

use super::types::{Error, ErrorKind};
use super::vecmap::VecMap;

#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone)]
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

/// What a reply settles.
pub(super) enum Replied {
    /// These application promises, with the reply.
    Settle(Vec<String>),
    /// Nothing of the application's: the machine's own frame.
    Own,
}

#[derive(Debug, Default)]
pub(super) struct Requests {
    table: VecMap<String, Pending>,
}

impl Requests {
    /// Waits for `id`'s reply until `deadline`. `sent`: already on the wire.
    pub(super) fn add(&mut self, id: String, kind: Kind, deadline: u64, sent: bool) {
        self.table.insert(id, Pending { kind, deadline, sent });
    }

    /// The id of an application `join` of `room` not sent yet.
    pub(super) fn waiting_join(&self, room: &str) -> Option<String> {
        self.table
            .iter()
            .find(|(_, p)| !p.sent && matches!(&p.kind, Kind::Join(r) if r == room))
            .map(|(id, _)| id.clone())
    }

    pub(super) fn mark_sent(&mut self, id: &str) {
        if let Some(p) = self.table.get_mut(id) {
            p.sent = true;
        }
    }

    /// The frame was refused by the rate limit and queued again: the app's wait for it to go out
    /// again (the machine's own stay counted as sent: they go first).
    pub(super) fn requeued(&mut self, id: &str) {
        if let Some(p) = self.table.get_mut(id) {
            p.sent = p.kind.is_own();
        }
    }

    /// Forgets `id` (refused before it went out), returning its kind.
    pub(super) fn remove(&mut self, id: &str) -> Option<Kind> {
        self.table.remove(id).map(|p| p.kind)
    }

    /// The `resumed` came (it answers the resume whatever its id).
    pub(super) fn resumed(&mut self) {
        self.table.retain_values(|p| p.kind != Kind::Resume);
    }

    /// A reply (not an error) to `id`: a join's answers every join of that room still waiting.
    pub(super) fn reply(&mut self, id: &str) -> Option<Replied> {
        let kind = self.remove(id)?;
        Some(match kind {
            Kind::Join(ref room) | Kind::Rejoin(ref room) => {
                let mut ids = Vec::new();
                while let Some(other) = self.waiting_join(room) {
                    self.table.remove(&other);
                    ids.push(other);
                }
                if matches!(kind, Kind::Join(_)) {
                    ids.push(String::from(id));
                }
                Replied::Settle(ids)
            }
            Kind::Resume => Replied::Own,
            Kind::Request | Kind::Leave => Replied::Settle(alloc::vec![String::from(id)]),
        })
    }

    /// A connection that was open is lost: what was sent is answered never. Requests reject with
    /// `disconnected`; a leave is done (a closed connection is in no room); a join waits for the
    /// next connection; the machine's own frames are forgotten (sent again on the next open).
    /// Returns the settlements: `Ok` for a leave, `Err` for a request.
    pub(super) fn connection_lost(&mut self) -> Vec<(String, Result<(), Error>)> {
        let lost: Vec<String> = self
            .table
            .iter()
            .filter(|(_, p)| p.sent || matches!(p.kind, Kind::Leave))
            .map(|(id, _)| id.clone())
            .collect();
        let mut settle = Vec::new();
        for id in lost {
            let Some(p) = self.table.get_mut(&id) else { continue };
            match p.kind {
                Kind::Join(_) => p.sent = false,
                Kind::Leave => {
                    self.table.remove(&id);
                    settle.push((id, Ok(())));
                }
                Kind::Request => {
                    self.table.remove(&id);
                    let e = Error::new(ErrorKind::Disconnected, "the connection was lost before the reply");
                    settle.push((id, Err(e)));
                }
                Kind::Rejoin(_) | Kind::Resume => {
                    self.table.remove(&id);
                }
            }
        }
        settle
    }

    /// Everything due at `now`. An application join becomes the machine's own, due again after
    /// `rejoin_ms`; the others are forgotten.
    pub(super) fn expire(&mut self, now: u64, rejoin_ms: u64) -> Vec<(String, Expired)> {
        let due: Vec<String> = self.table.iter().filter(|(_, p)| now >= p.deadline).map(|(id, _)| id.clone()).collect();
        let mut out = Vec::new();
        for id in due {
            let Some(p) = self.table.remove(&id) else { continue };
            match p.kind {
                // The re-join frame stays queued: the room is still wanted.
                Kind::Rejoin(_) => {}
                Kind::Join(room) => {
                    let deadline = now.saturating_add(rejoin_ms);
                    self.table.insert(id.clone(), Pending { kind: Kind::Rejoin(room), deadline, sent: p.sent });
                    out.push((id, Expired::Join));
                }
                Kind::Resume => out.push((id, Expired::Resume)),
                Kind::Request | Kind::Leave => out.push((id, Expired::Dropped)),
            }
        }
        out
    }

    /// `close()`: forgets everything; returns the application's ids, to reject with `closed`.
    pub(super) fn close(&mut self) -> Vec<String> {
        self.table.take_all().into_iter().filter(|(_, p)| !p.kind.is_own()).map(|(id, _)| id).collect()
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.table.values().map(|p| p.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Requests {
        let mut r = Requests::default();
        r.add("req".into(), Kind::Request, 100, true);
        r.add("join".into(), Kind::Join("a".into()), 100, true);
        r.add("leave".into(), Kind::Leave, 100, false);
        r.add("rejoin".into(), Kind::Rejoin("b".into()), 100, true);
        r.add("resume".into(), Kind::Resume, 100, true);
        r
    }

    #[test]
    fn a_cut_settles_requests_and_leaves_and_keeps_joins_waiting() {
        let mut r = table();
        let settled = r.connection_lost();
        let ids: Vec<(&str, bool)> = settled.iter().map(|(id, res)| (id.as_str(), res.is_ok())).collect();
        assert_eq!(ids, [("leave", true), ("req", false)]);
        assert_eq!(r.waiting_join("a").as_deref(), Some("join"), "sent again on the next open");
        assert_eq!(r.close(), ["join"], "the machine's own frames were forgotten");
    }

    #[test]
    fn one_joined_answers_every_join_of_the_room_still_waiting() {
        let mut r = Requests::default();
        r.add("1".into(), Kind::Join("a".into()), 100, true);
        r.add("2".into(), Kind::Join("a".into()), 100, false);
        r.add("3".into(), Kind::Join("b".into()), 100, false);
        let Some(Replied::Settle(ids)) = r.reply("1") else { panic!("a join settles") };
        assert_eq!(ids, ["2", "1"]);
        assert!(r.reply("1").is_none(), "once");
        assert_eq!(r.close(), ["3"]);
    }

    #[test]
    fn deadlines_turn_an_app_join_into_the_machines_own() {
        let mut r = table();
        let due: Vec<String> = r.expire(100, 50).into_iter().map(|(id, _)| id).collect();
        assert_eq!(due, ["join", "leave", "req", "resume"]);
        assert_eq!(r.next_deadline(), Some(150), "the join, now a re-join");
        assert!(r.close().is_empty(), "nothing left of the app's");
    }
}
