//! What the machine's tests share: a simulator with a fake clock and a seeded random source,
//! and readers of the actions it returns.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{json, Value};

use super::classify::{classify, Fix, JsonView};
use super::*;

/// The native twin of the shell's view over `JsValue` (`src/web/parse.rs`).
impl JsonView for Value {
    fn is_object(&self) -> bool {
        self.is_object()
    }
    fn str(&self, key: &str) -> Option<String> {
        self.get(key)?.as_str().map(String::from)
    }
    fn u64(&self, key: &str) -> Option<u64> {
        classify::whole_number(self.get(key)?.as_f64()?)
    }
    fn bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }
    fn object(&self, key: &str) -> Option<Value> {
        self.get(key).filter(|v| v.is_object()).cloned()
    }
    fn has(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| !v.is_null())
    }
}

/// What the shell does with a text frame, natively: parse, classify, apply the fix. `Err` is the
/// `bad_frame` message.
pub(super) fn parse(text: &str) -> Result<Inbound<Value>, &'static str> {
    let mut msg: Value = serde_json::from_str(text).map_err(|_| classify::NOT_JSON)?;
    let c = classify(&msg)?;
    match c.fix {
        Fix::None => {}
        Fix::EmptyPayload => msg["payload"] = json!({}),
        Fix::PayloadFromData => msg["payload"] = msg["data"].clone(),
        Fix::LegacyError { code, message } => {
            msg["type"] = json!("error");
            msg["payload"] = json!({"code": code, "message": message});
        }
    }
    Ok(Inbound { kind: c.kind, id: c.id, seq: c.seq, msg, room: None })
}

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
    pub(super) fn send_id(&mut self, text: &str, ack: bool) -> (Id, Vec<Action<Value>>) {
        let id = self.m.next_id();
        let out = self.feed(Input::Send { id, text: frames::with_id(text, id), ack });
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
        let inbound = Inbound { kind, id: id.map(String::from), seq, msg, room: None };
        self.feed(Input::Frame { attempt: a, inbound })
    }

    /// A text frame from the server, through the same classification the shell uses.
    pub(super) fn text(&mut self, text: &str) -> Vec<Action<Value>> {
        let a = self.attempt;
        match parse(text) {
            Ok(inbound) => self.feed(Input::Frame { attempt: a, inbound }),
            Err(message) => self.feed(Input::BadFrame { attempt: a, message: message.into() }),
        }
    }

    /// Drops the connection with `code` and opens the next attempt when it is due: the
    /// close-wait-reopen sequence of reconnect tests. Returns what the reopen did.
    pub(super) fn reconnect(&mut self, code: u16) -> Vec<Action<Value>> {
        let out = self.closed(code, "");
        let delay = retry_delay(&out).expect("a retry is scheduled");
        self.advance(delay);
        self.reopen()
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

/// A frame id as the wire carries it (`"123"`).
pub(super) fn wire(id: Id) -> String {
    id.to_string()
}
