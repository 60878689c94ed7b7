//! What the application sends: messages and requests into the outbox, joins and leaves, and the
//! pump that lets the sender's frames out on an open connection.

use alloc::string::String;

use super::frames;
use super::machine::Machine;
use super::outbox::{Origin, Queued};
use super::requests::Kind;
use super::types::{Action, Error, ErrorKind, Id};
use crate::protocol::is_valid_room_name;

impl<P: Clone> Machine<P> {
    pub(super) fn queue_app(&mut self, now: u64, text: String, id: Id, origin: Origin) {
        let expires_at = self.cfg.outbox_ttl_ms.map(|ttl| now.saturating_add(ttl));
        let item = Queued { expires_at, ..Queued::new(text, id, origin) };
        if self.sender.push_app(item).is_err() {
            self.send_refused = true;
            let msg = "the outbox is full (outbox.maxMessages or outbox.maxBytes): not queued";
            self.app_failed(id, origin, Error::new(ErrorKind::OutboxFull, msg));
        }
    }

    /// An application frame failed for good: its request or `ack` promise rejects, or the
    /// `error` event names it.
    pub(super) fn app_failed(&mut self, id: Id, origin: Origin, mut error: Error) {
        // The id on the wire: the application's own, or the number's digits.
        error.id = Some(self.forget_id(id).unwrap_or_else(|| frames::u64_to_string(id)));
        match origin {
            Origin::Request => {
                self.requests.remove(id);
                self.settle_err(id, error);
            }
            Origin::Send { ack: true } => self.settle_err(id, error),
            _ => self.emit_error(error),
        }
    }

    /// Sends what the sender lets through on an open connection.
    pub(super) fn pump(&mut self, now: u64) {
        if !self.phase.is_open() {
            return;
        }
        let (requests, actions) = (&mut self.requests, &mut self.actions);
        self.sender.pump_into(now, &mut |item| {
            requests.mark_sent(item.id);
            actions.push(Action::Send(item.text));
        });
    }

    pub(super) fn join(&mut self, now: u64, room: String, id: Id) {
        if !is_valid_room_name(&room) {
            let e = Error::new(ErrorKind::BadRoom, "room names are 1-64 characters of [A-Za-z0-9_.:-]");
            self.settle_err(id, e);
            return;
        }
        self.rooms.want(&room);
        let deadline = now.saturating_add(self.cfg.request_timeout_ms);
        let open = self.phase.is_open();
        self.requests.add(id, Kind::Join(room.clone()), deadline, false);
        if open {
            self.sender.push_control(frames::join(id, &room), id, false);
        }
    }

    pub(super) fn leave(&mut self, now: u64, room: String, id: Id) {
        self.rooms.unwant(&room);
        // A join of that room still waiting for a connection will never happen now.
        while let Some(wid) = self.requests.waiting_join(&room) {
            self.requests.remove(wid);
            self.sender.remove_id(wid);
            self.settle_err(wid, Error::new(ErrorKind::Closed, "left the room before it was joined"));
        }
        if self.phase.is_open() && !self.share_keeps_room(&room) {
            let deadline = now.saturating_add(self.cfg.request_timeout_ms);
            self.requests.add(id, Kind::Leave, deadline, false);
            self.sender.push_control(frames::leave(id, &room), id, false);
        } else {
            // Not connected (not in the room, and it will not be joined again), or another tab
            // still wants the room on the shared socket: done here.
            self.push(Action::Settle { id, result: Ok(None) });
        }
    }
}
