//! Frames from the server: pings, the welcome and the resume it decides, replies to requests,
//! errors, and the user stream.

use alloc::string::String;

use super::frames;
use super::machine::{Machine, Pending, PendingKind};
use super::stream::{OnWelcome, Outcome};
use super::types::{Action, Error, ErrorKind, Event, InKind, Inbound};

impl<P: Clone> Machine<P> {
    pub(super) fn on_frame(&mut self, now: u64, inbound: Inbound<P>) {
        self.last_received = now;
        self.probe_deadline = None;
        if self.auth_failures > 0 {
            self.auth_failures = 0; // the server spoke to us: the credentials were good
        }
        let Inbound { kind, id, seq, msg } = inbound;
        match kind {
            InKind::Ping => {
                self.push(Action::Send(String::from(frames::PONG)));
                return;
            }
            InKind::Welcome { heartbeat_ms, epoch, seq } => {
                self.on_welcome(now, heartbeat_ms, &epoch, seq);
                return;
            }
            InKind::Resumed { complete } => {
                self.pending.retain_values(|p| p.kind != PendingKind::Resume);
                let out = self.stream.on_resumed(complete);
                self.apply_outcome(out);
                return;
            }
            InKind::Error { code, message } => {
                self.on_error_frame(now, id.as_deref(), code, message);
                return;
            }
            InKind::Pong if id.is_none() => return, // the answer to a liveness probe
            InKind::Pong | InKind::Other => {}
        }
        if let Some(id) = id.as_deref() {
            if let Some(p) = self.pending.remove(id) {
                let is_app_join = matches!(p.kind, PendingKind::Join(_));
                match p.kind {
                    PendingKind::Rejoin(room) | PendingKind::Join(room) => {
                        // One reply answers every join of that room still waiting.
                        while let Some(other) = self.waiting_join(&room) {
                            self.pending.remove(&other);
                            self.push(Action::Settle { id: other, result: Ok(Some(msg.clone())) });
                        }
                        if is_app_join {
                            self.push(Action::Settle { id: String::from(id), result: Ok(Some(msg)) });
                        }
                    }
                    PendingKind::Resume => {}
                    _ => self.push(Action::Settle { id: String::from(id), result: Ok(Some(msg)) }),
                }
                return;
            }
        }
        match seq {
            Some(seq) if self.stream.epoch().is_some() => {
                let out = self.stream.on_message(seq, msg);
                self.apply_outcome(out);
            }
            _ => self.push(Action::Emit(Event::Message(msg))),
        }
    }

    pub(super) fn on_welcome(&mut self, now: u64, heartbeat_ms: u64, epoch: &str, seq: u64) {
        self.welcomed = true;
        self.expect_welcome = true;
        if heartbeat_ms > 0 {
            self.heartbeat_ms = heartbeat_ms;
        }
        match self.stream.on_welcome(epoch, seq) {
            OnWelcome::Nothing => {}
            OnWelcome::Resume { epoch, since } => {
                let rid = self.next_id();
                let deadline = now.saturating_add(self.cfg.request_timeout_ms);
                self.pending.insert(rid.clone(), Pending { kind: PendingKind::Resume, deadline, sent: true });
                self.sender.push_control(frames::resume(&rid, &epoch, since), None, true);
            }
            OnWelcome::Resync { reason, deliver } => {
                for msg in deliver {
                    self.push(Action::Emit(Event::Message(msg)));
                }
                self.push(Action::Emit(Event::Resync(reason)));
            }
        }
        self.sender.release();
    }

    pub(super) fn on_error_frame(&mut self, now: u64, id: Option<&str>, code: String, message: String) {
        let rate_limited = code == "rate_limited";
        if rate_limited {
            self.sender.throttle(now, self.cfg.throttle_ms);
        }
        let error = if rate_limited {
            Error::new(ErrorKind::RateLimited, message)
        } else {
            Error::new(ErrorKind::Server(code), message)
        };
        let Some((id, p)) = id.and_then(|id| self.pending.remove(id).map(|p| (String::from(id), p))) else {
            self.emit_error(error);
            return;
        };
        if rate_limited {
            if let PendingKind::Join(room) | PendingKind::Rejoin(room) = &p.kind {
                // Refused for now, not for good: send the join again once the throttle ends.
                let frame = frames::join(&id, room);
                self.sender.push_control(frame, Some(id.clone()), true);
                self.pending.insert(id, Pending { sent: false, ..p });
                return;
            }
        }
        match p.kind {
            PendingKind::Join(room) => {
                self.rooms.unwant(&room);
                self.settle_err(id, error);
            }
            PendingKind::Rejoin(room) => {
                // A room the app wanted can no longer be joined: say so, once.
                self.rooms.unwant(&room);
                self.emit_error(error);
            }
            PendingKind::Resume => {
                // The server could not replay: the app must reload.
                let out = self.stream.on_resumed(false);
                self.apply_outcome(out);
            }
            _ => self.settle_err(id, error),
        }
    }

    pub(super) fn apply_outcome(&mut self, out: Outcome<P>) {
        for msg in out.deliver {
            self.push(Action::Emit(Event::Message(msg)));
        }
        if let Some(reason) = out.resync {
            self.push(Action::Emit(Event::Resync(reason)));
        }
    }
}
