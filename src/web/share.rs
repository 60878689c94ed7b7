//! The browser side of cross-tab sharing (issue 12): the user's Web Lock and BroadcastChannel
//! (`share.js`), the messages between tabs as JS arrays, and a follower's relay, which stands
//! for a socket. It carries values: every decision is in `core/share.rs`.

use js_sys::{Array, Function};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

use super::socket::{Handler, Report, Slot};
use crate::core::share::{Peer, TabId, Welcomed};

#[wasm_bindgen(module = "/src/web/share.js")]
extern "C" {
    pub(crate) fn resock_share_supported() -> bool;
    fn resock_share_open(name: &str, me: f64, on_peer: &Function, on_lock: &Function) -> JsValue;
    fn resock_share_lock(h: &JsValue, steal: bool);
    fn resock_share_post(h: &JsValue, msg: &Array);
    fn resock_share_up(h: &JsValue, me: f64, text: &str);
    fn resock_share_relay(target: &JsValue, h: &JsValue, me: f64);
    fn resock_share_close(h: &JsValue);
}

/// The channel and lock of one client; both let go when dropped.
pub struct Tabs {
    handle: JsValue,
    _on_peer: Handler,
    _on_lock: Handler,
}

/// A message from another tab: a frame relayed down, or anything else for the core.
pub enum FromTab {
    Down { from: TabId, text: JsValue },
    Peer(Peer),
}

impl Tabs {
    pub fn open(
        name: &str,
        me: TabId,
        on_peer: impl FnMut(JsValue) + 'static,
        on_lock: impl FnMut(JsValue) + 'static,
    ) -> Tabs {
        let on_peer = Handler::new(on_peer);
        let on_lock = Handler::new(on_lock);
        let (peer, lock) = (on_peer.as_ref().unchecked_ref(), on_lock.as_ref().unchecked_ref());
        let handle = resock_share_open(name, me as f64, peer, lock);
        Tabs { handle, _on_peer: on_peer, _on_lock: on_lock }
    }

    pub fn lock(&self, steal: bool) {
        resock_share_lock(&self.handle, steal);
    }

    pub fn post(&self, peer: &Peer) {
        resock_share_post(&self.handle, &encode(peer));
    }

    /// A follower's frame, up to the leader.
    pub fn up(&self, me: TabId, text: &str) {
        resock_share_up(&self.handle, me as f64, text);
    }

    /// Every frame of the leader's socket goes down to the other tabs.
    pub fn relay(&self, target: &JsValue, me: TabId) {
        resock_share_relay(target, &self.handle, me as f64);
    }
}

impl Drop for Tabs {
    fn drop(&mut self) {
        resock_share_close(&self.handle);
    }
}

/// A follower's relay: its frames come through a slot of the socket table, as a socket's do.
pub struct Relay {
    slot: Slot,
}

impl Relay {
    pub fn new(report: Report) -> Result<Relay, JsValue> {
        Ok(Relay { slot: Slot::new(report)? })
    }

    pub fn slot(&self) -> u32 {
        self.slot.index()
    }

    /// A frame relayed down to the relay in `slot`: parsed and reported like a socket's.
    pub fn frame(slot: u32, text: &JsValue) {
        super::parse::resock_frame(text, slot);
    }
}

fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}

fn tab(v: TabId) -> JsValue {
    JsValue::from(v as f64)
}

fn opt(v: &Option<String>) -> JsValue {
    v.as_deref().map_or(JsValue::UNDEFINED, s)
}

fn encode(peer: &Peer) -> Array {
    match peer {
        Peer::Alive { from, open } => Array::of3(&JsValue::from(0), &tab(*from), &JsValue::from_bool(*open)),
        Peer::Hello { from } => Array::of2(&JsValue::from(1), &tab(*from)),
        Peer::Welcome { from, to, welcome } => {
            let a = Array::of3(&JsValue::from(2), &tab(*from), &tab(*to));
            if let Some(w) = welcome {
                a.push(&JsValue::from(w.heartbeat_ms as f64));
                a.push(&s(&w.epoch));
                a.push(&JsValue::from(w.seq as f64));
            }
            a
        }
        Peer::Up { from, text, kind, room, id } => {
            let a = Array::of4(&JsValue::from(3), &tab(*from), &s(text), &s(kind));
            a.push(&opt(room));
            a.push(&opt(id));
            a
        }
        Peer::Down { from, text } => Array::of3(&JsValue::from(4), &tab(*from), &s(text)),
        Peer::Closed { from } => Array::of2(&JsValue::from(5), &tab(*from)),
        Peer::Bye { from } => Array::of2(&JsValue::from(6), &tab(*from)),
        Peer::Here { from } => Array::of2(&JsValue::from(7), &tab(*from)),
        Peer::Ping { from } => Array::of2(&JsValue::from(9), &tab(*from)),
        Peer::Forget { from, to } => Array::of3(&JsValue::from(8), &tab(*from), &tab(*to)),
    }
}

fn num(v: JsValue) -> Option<u64> {
    crate::core::classify::whole_number(v.as_f64()?)
}

/// A message from another tab: `[tag, from, ...]`, the tag a number (0 Alive, 1 Hello, 2 Welcome,
/// 3 Up, 4 Down, 5 Closed, 6 Bye, 7 Here, 8 Forget, 9 Ping; share.js posts 3, 4 and 6 itself);
/// `None` for one this version does not know.
pub fn decode(msg: &JsValue) -> Option<FromTab> {
    let a: &Array = msg.dyn_ref()?;
    let tag = a.get(0).as_f64()? as u8;
    let from = num(a.get(1))?;
    let str_at = |i: u32| a.get(i).as_string();
    let peer = match tag {
        4 => return Some(FromTab::Down { from, text: a.get(2) }),
        0 => Peer::Alive { from, open: a.get(2).is_truthy() },
        1 => Peer::Hello { from },
        2 => {
            let welcome = match (num(a.get(3)), str_at(4), num(a.get(5))) {
                (Some(heartbeat_ms), Some(epoch), Some(seq)) => Some(Welcomed { heartbeat_ms, epoch, seq }),
                _ => None,
            };
            Peer::Welcome { from, to: num(a.get(2))?, welcome }
        }
        3 => Peer::Up { from, text: str_at(2)?, kind: str_at(3).unwrap_or_default(), room: str_at(4), id: str_at(5) },
        5 => Peer::Closed { from },
        6 => Peer::Bye { from },
        7 => Peer::Here { from },
        9 => Peer::Ping { from },
        8 => Peer::Forget { from, to: num(a.get(2))? },
        _ => return None,
    };
    Some(FromTab::Peer(peer))
}
