//! Property tests of cross-tab sharing (issue 12): up to five tabs, each its own [`Machine`] with
//! `share` on, a Web Lock (queue, release on close or crash, steal), a BroadcastChannel (each
//! tab's messages in order), and a server with a user stream, history and resume. Random
//! events: tabs open, close, crash, freeze and thaw; the server pushes; time passes; each tab
//! handles what is waiting for it in its own order. Checked after every event:
//! - no tab is given a seq twice, and none skips one without a `resync`;
//! - never two tabs that run (are not frozen) lead with a socket at once, counting a thawed tab
//!   whose lock was taken while it was frozen as a follower: the news is its first task, and
//!   it closes its socket then (the server sees its socket until that, or its pong timeout).
//!
//! Run natively (`cargo test --lib share_sim`).

use std::collections::VecDeque;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::machine::Machine;
use super::share::{Peer, Role, ShareInput, TabId};
use super::testkit::{parse, rng};
use super::types::{Action, Event, Input};
use super::Config;

/// What waits for a tab: its socket's frames, the channel's messages, the lock's news.
#[derive(Debug)]
enum Item {
    Input(Input<Value>),
    SocketFrame { attempt: u32, text: String },
    Down { from: TabId, text: String },
}

struct Tab {
    m: Machine<Value>,
    running: bool, // false: frozen
    inbox: VecDeque<Item>,
    /// The server socket this tab has, with its attempt.
    socket: Option<u32>,
    relay: Option<u32>,
    wake: Option<u64>,
    delivered: Vec<u64>,
    resynced: bool,
}

#[derive(Default)]
struct Server {
    last: u64,
    history: Vec<String>,
    /// The rooms the sockets joined and left, in order (`+room`, `-room`).
    rooms: Vec<String>,
}

struct Sim {
    now: u64,
    tabs: Vec<Option<Tab>>,
    lock_holder: Option<usize>,
    lock_queue: Vec<usize>,
    server: Server,
    seed: u64,
}

#[derive(Debug, Clone)]
enum Op {
    Open,
    Push,
    Step(usize),
    Advance(u64),
    Close(usize),
    Crash(usize),
    Freeze(usize),
    Thaw(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Open),
        4 => Just(Op::Push),
        12 => (0..5usize).prop_map(Op::Step),
        3 => (1..1500u64).prop_map(Op::Advance),
        1 => (0..5usize).prop_map(Op::Close),
        1 => (0..5usize).prop_map(Op::Crash),
        1 => (0..5usize).prop_map(Op::Freeze),
        2 => (0..5usize).prop_map(Op::Thaw),
    ]
}

fn notification(seq: u64) -> String {
    json!({"type": "new_notification", "seq": seq, "payload": {"id": seq}}).to_string()
}

impl Sim {
    fn new(seed: u64) -> Sim {
        Sim { now: 1_000, tabs: Vec::new(), lock_holder: None, lock_queue: Vec::new(), server: Server::default(), seed }
    }

    fn open_tab(&mut self) {
        if self.tabs.len() >= 5 {
            return;
        }
        self.seed += 1;
        let cfg = Config { share: true, ..Config::default() };
        let tab = Tab {
            m: Machine::new(cfg, rng(self.seed.wrapping_mul(7919))),
            running: true,
            inbox: VecDeque::new(),
            socket: None,
            relay: None,
            wake: None,
            delivered: Vec::new(),
            resynced: false,
        };
        self.tabs.push(Some(tab));
        let i = self.tabs.len() - 1;
        self.feed(i, Input::Connect);
    }

    fn tab(&mut self, i: usize) -> Option<&mut Tab> {
        self.tabs.get_mut(i).and_then(Option::as_mut)
    }

    fn me(&self, i: usize) -> TabId {
        self.tabs[i].as_ref().and_then(|t| t.m.tab_id()).unwrap_or_default()
    }

    fn post(&mut self, from: usize, item: impl Fn() -> Item) {
        for (j, t) in self.tabs.iter_mut().enumerate() {
            if let (true, Some(t)) = (j != from, t.as_mut()) {
                t.inbox.push_back(item());
            }
        }
    }

    fn grant(&mut self, i: usize) {
        self.lock_holder = Some(i);
        if let Some(t) = self.tab(i) {
            t.inbox.push_back(Item::Input(Input::Share(ShareInput::LockGranted)));
        }
    }

    /// The lock is let go by `i` (closed or crashed): the next in the queue gets it.
    fn release_lock(&mut self, i: usize) {
        self.lock_queue.retain(|&q| q != i);
        if self.lock_holder == Some(i) {
            self.lock_holder = None;
            if !self.lock_queue.is_empty() {
                let next = self.lock_queue.remove(0);
                self.grant(next);
            }
        }
    }

    /// The server's side of a frame from `i`'s socket.
    fn server_frame(&mut self, i: usize, text: &str) {
        let Some(attempt) = self.tabs[i].as_ref().and_then(|t| t.socket) else { return };
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let id = v["id"].clone();
        let reply = |t: &str, p: Value| json!({"type": t, "id": id, "payload": p}).to_string();
        let mut out = Vec::new();
        match v["type"].as_str().unwrap_or("") {
            "resume" => {
                let since = v["payload"]["since"].as_u64().unwrap_or(0);
                let replay: Vec<String> = self.server.history.iter().skip(since as usize).cloned().collect();
                let n = replay.len();
                out.extend(replay);
                out.push(reply("resumed", json!({"replayed": n, "complete": true})));
            }
            "join" => {
                self.server.rooms.push(format!("+{}", v["payload"]["room"].as_str().unwrap_or("")));
                out.push(reply("joined", json!({"room": v["payload"]["room"], "members": 1})));
            }
            "leave" => {
                self.server.rooms.push(format!("-{}", v["payload"]["room"].as_str().unwrap_or("")));
                out.push(reply("left", json!({"room": v["payload"]["room"]})));
            }
            "ping" => out.push(reply("pong", json!({}))),
            "pong" => {}
            _ if id.is_string() => out.push(reply("ack", json!({}))),
            _ => {}
        }
        if let Some(t) = self.tab(i) {
            for text in out {
                t.inbox.push_back(Item::SocketFrame { attempt, text });
            }
        }
    }

    fn push(&mut self) {
        self.server.last += 1;
        let text = notification(self.server.last);
        self.server.history.push(text.clone());
        for t in self.tabs.iter_mut().flatten() {
            if let Some(attempt) = t.socket {
                t.inbox.push_back(Item::SocketFrame { attempt, text: text.clone() });
            }
        }
    }

    fn feed(&mut self, i: usize, input: Input<Value>) {
        let now = self.now;
        let Some(t) = self.tab(i) else { return };
        let actions = t.m.handle(input, now);
        for a in actions {
            self.perform(i, a);
        }
    }

    fn perform(&mut self, i: usize, a: Action<Value>) {
        match a {
            Action::FetchCredentials { attempt } => {
                if let Some(t) = self.tab(i) {
                    t.inbox.push_back(Item::Input(Input::CredentialsReady { attempt }));
                }
            }
            Action::OpenSocket { attempt } => {
                let welcome = json!({"type": "welcome", "payload": {"heartbeat_ms": 30000, "epoch": "e", "seq": self.server.last}});
                if let Some(t) = self.tab(i) {
                    t.socket = Some(attempt);
                    t.inbox.push_back(Item::Input(Input::SocketOpened { attempt }));
                    t.inbox.push_back(Item::SocketFrame { attempt, text: welcome.to_string() });
                }
            }
            Action::CloseSocket { .. } => {
                if let Some(t) = self.tab(i) {
                    t.socket = None;
                    t.relay = None;
                }
            }
            Action::OpenRelay { attempt } => {
                if let Some(t) = self.tab(i) {
                    t.relay = Some(attempt);
                }
            }
            Action::Send(text) => {
                let (socket, relay) = self.tabs[i].as_ref().map_or((None, None), |t| (t.socket, t.relay));
                if socket.is_some() {
                    self.server_frame(i, &text);
                } else if relay.is_some() {
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let from = self.me(i);
                    let up = Peer::Up {
                        from,
                        kind: v["type"].as_str().unwrap_or("").into(),
                        room: v["payload"]["room"].as_str().map(String::from),
                        id: v["id"].as_str().map(String::from),
                        text,
                    };
                    self.post(i, || Item::Input(Input::Share(ShareInput::Peer(up.clone()))));
                }
            }
            Action::Post(peer) => self.post(i, || Item::Input(Input::Share(ShareInput::Peer(peer.clone())))),
            Action::RequestLock => {
                if self.lock_holder.is_none() {
                    self.grant(i);
                } else if self.lock_holder != Some(i) && !self.lock_queue.contains(&i) {
                    self.lock_queue.push(i);
                }
            }
            Action::StealLock => {
                if self.lock_holder == Some(i) {
                    return; // held already (the grant is on its way): share.js does nothing
                }
                self.lock_queue.retain(|&q| q != i);
                if let Some(h) = self.lock_holder {
                    // Handled before what else waits for that tab (a thawed page's first task),
                    // but after the grant it had.
                    if let Some(t) = self.tab(h) {
                        let granted = |it: &Item| matches!(it, Item::Input(Input::Share(ShareInput::LockGranted)));
                        let at = t.inbox.iter().rposition(granted).map_or(0, |p| p + 1);
                        t.inbox.insert(at, Item::Input(Input::Share(ShareInput::LockLost)));
                    }
                }
                self.grant(i);
            }
            Action::Schedule(t) => {
                if let Some(tab) = self.tab(i) {
                    tab.wake = t;
                }
            }
            Action::Emit(Event::Message(v)) => {
                if let (Some(seq), Some(t)) = (v["seq"].as_u64(), self.tab(i)) {
                    t.delivered.push(seq);
                }
            }
            Action::Emit(Event::Resync(_)) => {
                if let Some(t) = self.tab(i) {
                    t.resynced = true;
                }
            }
            Action::Emit(_) | Action::Settle { .. } | Action::OpenSse { .. } => {}
        }
    }

    /// `i` handles the next thing waiting for it.
    fn step(&mut self, i: usize) {
        let Some(t) = self.tab(i) else { return };
        if !t.running {
            return;
        }
        let Some(item) = t.inbox.pop_front() else { return };
        match item {
            Item::Input(input) => self.feed(i, input),
            Item::SocketFrame { attempt, text } => {
                if self.tabs[i].as_ref().and_then(|t| t.socket) != Some(attempt) {
                    return; // a closed socket's
                }
                if self.tabs[i].as_ref().and_then(|t| t.m.role()) == Some(Role::Leader) {
                    let from = self.me(i);
                    self.post(i, || Item::Down { from, text: text.clone() });
                }
                if let Ok(inbound) = parse(&text) {
                    self.feed(i, Input::Frame { attempt, inbound });
                }
            }
            Item::Down { from, text } => {
                let Some(t) = self.tab(i) else { return };
                if let (true, Some(attempt)) = (t.m.accepts_down(from), t.relay) {
                    if let Ok(inbound) = parse(&text) {
                        self.feed(i, Input::Frame { attempt, inbound });
                    }
                }
            }
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
        for i in 0..self.tabs.len() {
            let due = self.tabs[i].as_ref().is_some_and(|t| t.running && t.wake.is_some_and(|w| w <= self.now));
            if due {
                self.feed(i, Input::Tick);
            }
        }
    }

    fn close(&mut self, i: usize) {
        if self.tabs.get(i).and_then(Option::as_ref).is_some_and(|t| t.running) {
            self.feed(i, Input::Close);
            self.tabs[i] = None;
            self.release_lock(i);
        }
    }

    /// The tab is gone without a word: the browser lets go of its lock and its socket.
    fn crash(&mut self, i: usize) {
        if self.tabs.get(i).and_then(Option::as_ref).is_some() {
            self.tabs[i] = None;
            self.release_lock(i);
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let mut leaders = 0;
        for (i, t) in self.tabs.iter().enumerate() {
            let Some(t) = t else { continue };
            for w in t.delivered.windows(2) {
                prop_assert!(w[1] > w[0], "tab {i} was given seq {} after {}: {:?}", w[1], w[0], t.delivered);
                prop_assert!(
                    w[1] == w[0] + 1 || t.resynced,
                    "tab {i} skipped from {} to {} without a resync",
                    w[0],
                    w[1]
                );
            }
            // A tab whose lock was taken while it was frozen still thinks it leads until it
            // handles that news, its first step once thawed: it then closes its socket.
            let lost = t.inbox.iter().any(|it| matches!(it, Item::Input(Input::Share(ShareInput::LockLost))));
            if t.running && !lost && t.socket.is_some() && t.m.role() == Some(Role::Leader) {
                leaders += 1;
            }
        }
        prop_assert!(leaders <= 1, "{leaders} running tabs lead with a socket");
        Ok(())
    }

    /// Everyone thawed and every inbox handled, time passing: each open tab ends with every
    /// message pushed since it started, once.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        for t in self.tabs.iter_mut().flatten() {
            t.running = true;
        }
        for _ in 0..400 {
            for i in 0..self.tabs.len() {
                while self.tabs[i].as_ref().is_some_and(|t| !t.inbox.is_empty()) {
                    self.step(i);
                }
            }
            self.advance(100);
        }
        self.check()?;
        let leaders =
            self.tabs.iter().flatten().filter(|t| t.m.role() == Some(Role::Leader) && t.socket.is_some()).count();
        let tabs = self.tabs.iter().flatten().count();
        prop_assert_eq!(leaders, usize::from(tabs > 0), "one leader with a socket when tabs are left");
        for (i, t) in self.tabs.iter().enumerate() {
            let Some(t) = t else { continue };
            if let (Some(&last), false) = (t.delivered.last(), t.resynced) {
                prop_assert_eq!(last, self.server.last, "tab {} has every message in the end", i);
            }
        }
        Ok(())
    }
}

fn run(ops: Vec<Op>, seed: u64) -> Result<(), TestCaseError> {
    let mut sim = Sim::new(seed);
    sim.open_tab();
    sim.open_tab();
    for op in ops {
        match op {
            Op::Open => sim.open_tab(),
            Op::Push => sim.push(),
            Op::Step(i) => sim.step(i),
            Op::Advance(ms) => sim.advance(ms),
            Op::Close(i) => sim.close(i),
            Op::Crash(i) => sim.crash(i),
            Op::Freeze(i) => {
                if let Some(t) = sim.tab(i) {
                    t.running = false;
                }
            }
            Op::Thaw(i) => {
                if let Some(t) = sim.tab(i) {
                    t.running = true;
                }
            }
        }
        sim.check()?;
    }
    sim.settle()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn tabs_sharing_a_socket_never_see_a_seq_twice_nor_skip_one(ops in prop::collection::vec(op(), 1..200), seed in 1..u64::MAX / 8) {
        run(ops, seed)?;
    }
}

#[test]
fn a_leader_closed_mid_stream_hands_over_without_a_gap() {
    let mut ops = Vec::new();
    for round in 0..3 {
        ops.push(Op::Open);
        for _ in 0..20 {
            ops.extend([Op::Push, Op::Step(0), Op::Step(1), Op::Step(2), Op::Step(3), Op::Advance(50)]);
        }
        ops.push(Op::Close(round));
    }
    run(ops, 42).unwrap();
}

impl Sim {
    /// Every tab handles what waits for it, and time passes, `rounds` times.
    fn run_for(&mut self, rounds: usize, ms: u64) {
        for _ in 0..rounds {
            for i in 0..self.tabs.len() {
                while self.tabs[i].as_ref().is_some_and(|t| t.running && !t.inbox.is_empty()) {
                    self.step(i);
                }
            }
            self.advance(ms);
        }
    }
}

#[test]
fn rooms_are_counted_across_tabs_and_a_crashed_followers_rooms_are_left() {
    let mut sim = Sim::new(9);
    for _ in 0..3 {
        sim.open_tab();
    }
    sim.run_for(20, 100);
    let leader = (0..3).find(|&i| sim.tabs[i].as_ref().unwrap().m.role() == Some(Role::Leader)).unwrap();
    let [a, b] = [(leader + 1) % 3, (leader + 2) % 3];
    for (tab, id) in [(a, 1), (b, 2)] {
        sim.feed(tab, Input::Join { room: "both".into(), id });
    }
    sim.feed(a, Input::Join { room: "only-a".into(), id: 3 });
    sim.run_for(10, 100);
    assert_eq!(sim.server.rooms, ["+both", "+both", "+only-a"]);
    // Left in one tab: still joined for the other, answered by the leader.
    sim.feed(b, Input::Leave { room: "both".into(), id: 4 });
    sim.run_for(10, 100);
    assert_eq!(sim.server.rooms.len(), 3, "no leave reached the server: {:?}", sim.server.rooms);
    // The tab with both rooms crashes: the leader hears nothing from it and leaves them.
    sim.crash(a);
    sim.run_for(50, 100);
    assert_eq!(sim.server.rooms[3..], ["-both".to_string(), "-only-a".to_string()]);
}
