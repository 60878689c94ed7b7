//! What the machine's tests share: a simulator with a fake clock and a seeded random source,
//! and readers of the actions it returns.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{json, Value};

use super::*;

/// A tiny deterministic PRNG (xorshift64*).
pub(super) fn rng(seed: u64) -> Box<dyn Random> {
    let mut s = seed.max(1);
    Box::new(move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    })
}

pub(super) struct Sim {
    pub(super) m: Machine<Value>,
    pub(super) now: u64,
    pub(super) attempt: u32,
    pub(super) log: Vec<Action<Value>>,
}

impl Sim {
    pub(super) fn new(cfg: Config) -> Sim {
        Sim { m: Machine::new(cfg, rng(7)), now: 1_000_000, attempt: 0, log: Vec::new() }
    }

    pub(super) fn feed(&mut self, input: Input<Value>) -> Vec<Action<Value>> {
        let out = self.m.handle(input, self.now);
        for a in &out {
            if let Action::FetchCredentials { attempt } | Action::OpenSocket { attempt } = a {
                self.attempt = *attempt;
            }
        }
        self.log.extend(out.iter().cloned());
        out
    }

    pub(super) fn advance(&mut self, ms: u64) -> Vec<Action<Value>> {
        self.now += ms;
        self.feed(Input::Tick)
    }

    /// An application `send` of `text` (a JSON object), with a fresh id; returns the id.
    pub(super) fn send_id(&mut self, text: &str, ack: bool) -> (String, Vec<Action<Value>>) {
        let id = self.m.next_id();
        let out = self.feed(Input::Send { id: id.clone(), text: frames::with_id(text, &id), ack });
        (id, out)
    }

    pub(super) fn send(&mut self, text: &str) -> Vec<Action<Value>> {
        self.send_id(text, false).1
    }

    /// Connect and open, with no welcome.
    pub(super) fn open(&mut self) -> Vec<Action<Value>> {
        self.feed(Input::Connect);
        self.reopen()
    }

    /// Credentials and socket for the current attempt.
    pub(super) fn reopen(&mut self) -> Vec<Action<Value>> {
        let a = self.attempt;
        let mut out = self.feed(Input::CredentialsReady { attempt: a });
        out.extend(self.feed(Input::SocketOpened { attempt: a }));
        out
    }

    pub(super) fn closed(&mut self, code: u16, reason: &str) -> Vec<Action<Value>> {
        let a = self.attempt;
        self.feed(Input::SocketClosed { attempt: a, code, reason: reason.into() })
    }

    pub(super) fn frame(&mut self, kind: InKind, id: Option<&str>, seq: Option<u64>, msg: Value) -> Vec<Action<Value>> {
        let a = self.attempt;
        let inbound = Inbound { kind, id: id.map(String::from), seq, msg };
        self.feed(Input::Frame { attempt: a, inbound })
    }

    pub(super) fn welcome(&mut self, epoch: &str, seq: u64) -> Vec<Action<Value>> {
        let kind = InKind::Welcome { heartbeat_ms: 30_000, epoch: epoch.into(), seq };
        self.frame(kind, None, None, json!({"type": "welcome"}))
    }

    pub(super) fn note(&mut self, seq: u64) -> Vec<Action<Value>> {
        self.frame(InKind::Other, None, Some(seq), json!({"type": "new_notification", "seq": seq}))
    }
}

pub(super) fn sends(actions: &[Action<Value>]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(t) => Some(serde_json::from_str(t).unwrap()),
            _ => None,
        })
        .collect()
}

/// The frames sent, without their ids.
pub(super) fn bare(actions: &[Action<Value>]) -> Vec<Value> {
    sends(actions)
        .into_iter()
        .map(|mut f| {
            if let Some(o) = f.as_object_mut() {
                o.remove("id");
            }
            f
        })
        .collect()
}

pub(super) fn events(actions: &[Action<Value>]) -> Vec<Event<Value>> {
    actions.iter().filter_map(|a| if let Action::Emit(e) = a { Some(e.clone()) } else { None }).collect()
}

pub(super) fn messages(actions: &[Action<Value>]) -> Vec<Value> {
    events(actions).into_iter().filter_map(|e| if let Event::Message(m) = e { Some(m) } else { None }).collect()
}

pub(super) fn error_codes(actions: &[Action<Value>]) -> Vec<String> {
    events(actions)
        .into_iter()
        .filter_map(|e| if let Event::Error(e) = e { Some(e.kind.code().to_string()) } else { None })
        .collect()
}

pub(super) fn retry_delay(actions: &[Action<Value>]) -> Option<u64> {
    events(actions).into_iter().find_map(|e| if let Event::Retry { delay_ms, .. } = e { Some(delay_ms) } else { None })
}

pub(super) fn fetches(actions: &[Action<Value>]) -> usize {
    actions.iter().filter(|a| matches!(a, Action::FetchCredentials { .. })).count()
}
