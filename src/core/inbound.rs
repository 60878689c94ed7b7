//! Frames from the server: pings, the welcome and the resume it decides, replies to requests,
//! errors, and the user stream.

use alloc::string::String;

use super::frames;
use super::machine::Machine;
use super::outbox::{Origin, Queued};
use super::phase::Phase;
use super::requests::Kind;
use super::sender::Answered;
use super::stream::{OnWelcome, Stream};
use super::transport::Transport;
use super::types::{Action, Error, ErrorKind, Event, Id, InKind, Inbound};
use crate::protocol::ErrorCode;

/// The server's refusal by its rate limit: the one server code the client acts on.
fn is_rate_limited(code: &str) -> bool {
    code == ErrorCode::RateLimited.as_str()
}

/// Delivers the user stream's messages to the app: one closure type for every caller (one copy).
fn deliver<P>(actions: &mut Vec<Action<P>>) -> impl FnMut(P) + '_ {
    move |m| actions.push(Action::Emit(Event::Message(m)))
}

impl<P: Clone> Machine<P> {
    pub(super) fn on_frame(&mut self, now: u64, inbound: Inbound<P>) {
        if let Phase::Open(open) = &mut self.phase {
            open.last_received = now;
            open.probe_deadline = None;
        }
        if self.auth_failures > 0 {
            self.auth_failures = 0; // the server spoke to us: the credentials were good
        }
        let Inbound { kind, id, seq, msg, room } = inbound;
        if matches!(kind, InKind::Ping) {
            // Over SSE a ping is the server's keep-alive: it wants no answer.
            if self.transport() == Transport::WebSocket {
                self.push(Action::Send(String::from(frames::PONG)));
            }
            return;
        }
        // The id as the machine keys it: parsed once here (`None`: not one of this client's).
        let key = id.as_deref().and_then(|id| self.key_of(id));
        if self.share.is_some() && !self.takes_shared(id.is_some(), key, room.as_deref()) {
            return;
        }
        if let Some(seq) = seq {
            self.share_saw_seq(seq);
        }
        if let Some(fid) = key {
            // The answer to a frame sent from here: done, or refused by the rate limit and
            // queued again (nothing to report: it goes out again after the window).
            let rate_limited = matches!(&kind, InKind::Error { code, .. } if is_rate_limited(code));
            match self.sender.on_answer(fid, rate_limited, now, self.cfg.throttle_ms) {
                Answered::Requeued(_) => {
                    self.requests.requeued(fid);
                    return;
                }
                Answered::Done(Queued { origin: Origin::Send { ack }, .. }) => {
                    match kind {
                        InKind::Error { code, message } => {
                            let e = Error::new(ErrorKind::Server(code), message);
                            self.app_failed(fid, Origin::Send { ack }, e);
                        }
                        _ => {
                            if ack {
                                self.push(Action::Settle { id: fid, result: Ok(Some(msg)) });
                            }
                            self.forget_id(fid);
                        }
                    }
                    return;
                }
                Answered::Done(_) | Answered::Unknown => {}
            }
        }
        match kind {
            InKind::Welcome { heartbeat_ms, epoch, seq } => {
                self.on_welcome(now, heartbeat_ms, &epoch, seq);
                return;
            }
            InKind::Resumed { complete } => {
                self.requests.resumed();
                self.resumed(complete);
                return;
            }
            _ => {}
        }
        let kind = match kind {
            InKind::Error { code, message } => {
                self.on_error_frame(now, id.as_deref(), key, code, message);
                return;
            }
            other => other,
        };
        if let Some(id) = key {
            let actions = &mut self.actions;
            if self.requests.reply(id, |id| actions.push(Action::Settle { id, result: Ok(Some(msg.clone())) })) {
                return;
            }
        }
        if matches!(kind, InKind::Pong) {
            return; // the answer to a liveness probe
        }
        match seq {
            Some(seq) if self.stream.epoch().is_some() => {
                let actions = &mut self.actions;
                let resync = self.stream.on_message_into(seq, msg, &mut deliver(actions));
                if let Some(reason) = resync {
                    self.push(Action::Emit(Event::Resync(reason)));
                }
            }
            _ => self.push(Action::Emit(Event::Message(msg))),
        }
    }

    /// With tabs sharing one socket, every tab gets every frame: it takes the replies to its own
    /// frames and its own rooms' messages; the rest is another tab's.
    fn takes_shared(&self, has_id: bool, key: Option<Id>, room: Option<&str>) -> bool {
        if has_id {
            return key.is_some_and(|id| self.sender.tracks(id) || self.requests.contains(id));
        }
        room.is_none_or(|r| self.rooms.contains(r))
    }

    #[inline(never)]
    pub(super) fn on_welcome(&mut self, now: u64, heartbeat_ms: u64, epoch: &str, seq: u64) {
        self.share_welcomed(heartbeat_ms, epoch, seq);
        self.expect_welcome = true;
        if let Phase::Open(open) = &mut self.phase {
            open.welcomed = true;
            if heartbeat_ms > 0 {
                open.heartbeat_ms = heartbeat_ms;
            }
        }
        let actions = &mut self.actions;
        let welcome = self.stream.on_welcome(epoch, seq, &mut deliver(actions));
        match welcome {
            OnWelcome::Nothing => {}
            OnWelcome::Resume { epoch, since } => {
                let rid = self.next_id();
                let deadline = now.saturating_add(self.cfg.request_timeout_ms);
                self.requests.add(rid, Kind::Resume, deadline, true);
                // Over SSE the stream's URL asked for the replay: its `resumed` comes by itself.
                if self.transport() == Transport::WebSocket {
                    self.sender.push_control(frames::resume(rid, &epoch, since), rid, true);
                }
            }
            OnWelcome::Resync(reason) => self.push(Action::Emit(Event::Resync(reason))),
        }
        self.sender.release();
    }

    /// An error that is not the answer to a frame still queued here: a request's or join's
    /// refusal for good, a refusal of a frame this client no longer tracks, or none at all.
    #[inline(never)]
    pub(super) fn on_error_frame(
        &mut self,
        now: u64,
        id: Option<&str>,
        key: Option<Id>,
        code: String,
        message: String,
    ) {
        let rate_limited = is_rate_limited(&code);
        if rate_limited {
            self.sender.throttle(now, self.cfg.throttle_ms);
        }
        let kind = if rate_limited { ErrorKind::RateLimited } else { ErrorKind::Server(code) };
        let error = Error::new(kind, message);
        let error = match id {
            Some(id) => error.with_id(id),
            None => error,
        };
        let Some((id, kind)) = key.and_then(|id| self.requests.remove(id).map(|k| (id, k))) else {
            self.emit_error(error);
            return;
        };
        match kind {
            Kind::Join(room) => {
                self.rooms.unwant(&room);
                self.settle_err(id, error);
            }
            Kind::Rejoin(room) => {
                // A room the app wanted can no longer be joined: say so, once.
                self.rooms.unwant(&room);
                self.emit_error(error);
            }
            Kind::Resume => {
                // The server could not replay: the app must reload.
                self.resumed(false);
            }
            _ => self.settle_err(id, error),
        }
    }

    /// The user stream's `resumed` (or a resume that failed: not `complete`): what it held is
    /// delivered, then a resync if one is due.
    pub(super) fn resumed(&mut self, complete: bool) {
        Self::resumed_into(&mut self.stream, &mut self.actions, complete);
    }

    /// [`Machine::resumed`], on the two parts it needs (for a caller that holds others).
    pub(super) fn resumed_into(stream: &mut Stream<P>, actions: &mut Vec<Action<P>>, complete: bool) {
        let resync = stream.on_resumed(complete, &mut deliver(actions));
        if let Some(reason) = resync {
            actions.push(Action::Emit(Event::Resync(reason)));
        }
    }
}
