//! One socket for every tab of a user (issue 12): the tab that holds the user's Web Lock (the
//! leader) keeps the WebSocket; every other tab (a follower) reaches the server through it, over
//! a BroadcastChannel. Every decision of that is here; the shell only holds the lock, posts and
//! receives [`Peer`] messages, and tells which tab a relayed frame came from.
//!
//! Each tab keeps its own [`Machine`]: its own stream position (epoch, last seq), rooms, outbox
//! and requests. A follower's "socket" is a relay to the leader: it opens with `Hello`, the leader
//! answers `Welcome` with what the server's welcome said (epoch, last seq), and the follower's
//! machine resumes from its own last seq exactly as after a reconnect; the replay reaches every
//! tab, which drops what it has seen. Frames a follower sends go up to the leader, which writes
//! them on its socket; every frame the socket receives goes down to every tab, which keeps the
//! replies to its own ids and the room messages of its own rooms. So a tab never sees a seq twice,
//! and a leader change is a reconnect for each tab: the new leader resumes from its last seq, every
//! follower from its own, with no gap and no duplicate.
//!
//! Rooms are counted across tabs at the leader: a `leave` of a room another tab still wants is
//! answered by the leader and not sent.
//!
//! Leadership: the Web Lock is released by the browser when the leader's tab closes or crashes,
//! and the next tab in its queue is granted it. A frozen leader keeps its lock: it posts `Alive`
//! every [`ALIVE_EVERY_MS`], and a follower that heard no leader for [`LEADER_SILENT_MS`] (plus a
//! random part, so that one follower goes first) steals the lock. A tab that loses the lock
//! closes its socket before anything else.

use alloc::string::String;

use super::frames;
use super::machine::Machine;
use super::phase::Phase;
use super::rooms::Rooms;
use super::types::{Action, State};
use super::vecmap::VecMap;

/// The leader says it is alive this often.
pub const ALIVE_EVERY_MS: u64 = 1_000;
/// A follower that heard no leader this long asks (`Ping`); the leader answers from its message
/// handler, which a hidden tab runs at once (its timers may run once a minute). No answer within
/// [`PING_WAIT_MS`] (plus up to [`STEAL_JITTER_MS`], so that one follower goes first): the leader
/// is frozen or hung, and the follower takes the lock.
pub const LEADER_SILENT_MS: u64 = 1_000;
pub const PING_WAIT_MS: u64 = 500;
pub const STEAL_JITTER_MS: u64 = 500;
/// A follower with an open relay answers each `Alive` with `Here` (from its message handler, so a
/// hidden tab answers too); the leader forgets a follower that answered none of its last
/// [`MISSED_ALIVES`] (a tab closed, crashed or frozen: nothing else says so) and leaves the rooms
/// only it wanted.
pub const MISSED_ALIVES: u32 = 3;
/// A follower's relay waits this long for the leader's `Welcome` before trying again.
pub const RELAY_TIMEOUT_MS: u64 = 2_000;
/// The close reason of a socket given up because another tab leads now.
pub const REASON_ANOTHER_TAB: &str = "Another tab leads";

/// A tab's id: random below 2⁵³ (a JS number), unique among the tabs.
pub type TabId = u64;

/// A tab's part in the sharing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the lock and the socket.
    Leader,
    /// Reaches the server through the leader.
    Follower,
}

/// What the server's `welcome` said, passed on to a follower whose relay opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcomed {
    pub heartbeat_ms: u64,
    pub epoch: String,
    /// The highest seq the leader's socket has seen (the welcome's, or a later message's).
    pub seq: u64,
}

/// A message between the tabs of one user (a BroadcastChannel message). `from` is the sending
/// tab's id. Frames the leader's socket receives go down as `Down` too, posted by the shell as
/// they arrive (the shell sets that up on a socket the leader opens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// The leader is alive; `open`: its socket is open (a follower may open its relay).
    Alive { from: TabId, open: bool },
    /// A follower opens its relay.
    Hello { from: TabId },
    /// The leader opened `to`'s relay.
    Welcome { from: TabId, to: TabId, welcome: Option<Welcomed> },
    /// A frame a follower sends, with what the leader needs of it (read by the shell).
    Up { from: TabId, text: String, kind: String, room: Option<String>, id: Option<String> },
    /// A frame for the followers: from the server, or the leader's own answer.
    Down { from: TabId, text: String },
    /// The leader's socket ended: every relay through it is closed.
    Closed { from: TabId },
    /// A tab is going away (closed, or its page hidden for good).
    Bye { from: TabId },
    /// A follower's relay is open and its tab alive (the answer to each `Alive`).
    Here { from: TabId },
    /// A follower heard no leader for a while: is it there? (Answered with `Alive`.)
    Ping { from: TabId },
    /// The leader does not know `to` (forgotten after a silence, a frozen tab say): its relay
    /// must open again (and re-join its rooms).
    Forget { from: TabId, to: TabId },
}

/// What the shell reports about the lock and the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareInput {
    LockGranted,
    /// The lock was taken from this tab (stolen by a follower that thought it frozen).
    LockLost,
    Peer(Peer),
}

/// A follower as its leader knows it.
#[derive(Debug, Default)]
struct Follower {
    rooms: Rooms,
    /// `Alive`s since it last answered (or sent anything).
    missed: u32,
}

/// A tab's sharing state.
#[derive(Debug)]
pub struct Share {
    /// This tab's id: random, unique among the tabs.
    pub me: TabId,
    pub role: Role,
    /// Follower: the leader its relay goes through.
    relay_leader: Option<TabId>,
    /// Follower: when a leader was last heard, and when it was asked (`Ping`) since; the lock is
    /// stolen `steal_after` after an unanswered ping.
    heard_at: u64,
    ping_at: Option<u64>,
    steal_after: u64,
    /// Follower: a steal was asked for and not granted yet.
    stealing: bool,
    /// Leader: when to say `Alive` next.
    alive_at: u64,
    /// Leader: what the server's welcome said, with the highest seq seen since.
    welcomed: Option<Welcomed>,
    /// Leader: the followers, with the rooms each wants (from the joins and leaves it sent up)
    /// and when it was last heard.
    tabs: VecMap<TabId, Follower>,
}

impl Share {
    pub fn new(me: TabId, now: u64, jitter: f64) -> Share {
        Share {
            me,
            role: Role::Follower,
            relay_leader: None,
            heard_at: now,
            ping_at: None,
            steal_after: steal_after(jitter),
            stealing: false,
            alive_at: now,
            welcomed: None,
            tabs: VecMap::new(),
        }
    }

    /// Another tab (a follower) wants `room`.
    fn others_want(&self, room: &str) -> bool {
        self.tabs.values().any(|t| t.rooms.contains(room))
    }

    /// The leader's next wake-up; the follower's next `Here`, or its steal time.
    pub(super) fn next_deadline(&self) -> u64 {
        match self.role {
            Role::Leader => self.alive_at,
            Role::Follower => match self.ping_at {
                Some(at) => at.saturating_add(self.steal_after),
                None => self.heard_at.saturating_add(LEADER_SILENT_MS),
            },
        }
    }

    /// A follower heard its leader (or any leader): no ping is out.
    fn heard(&mut self, now: u64) {
        self.heard_at = now;
        self.ping_at = None;
        self.stealing = false;
    }

    /// The leader said `Alive`: one more unanswered for each follower; those silent too long.
    fn alive_said(&mut self) -> alloc::vec::Vec<TabId> {
        let mut silent = alloc::vec::Vec::new();
        for (id, t) in self.tabs.iter_mut() {
            t.missed += 1;
            if t.missed > MISSED_ALIVES {
                silent.push(*id);
            }
        }
        silent
    }
}

fn steal_after(jitter: f64) -> u64 {
    PING_WAIT_MS + (jitter * STEAL_JITTER_MS as f64) as u64
}

impl<P: Clone> Machine<P> {
    /// This tab's id, when it shares.
    pub fn tab_id(&self) -> Option<TabId> {
        self.share.as_ref().map(|s| s.me)
    }

    /// This tab's role, when it shares.
    pub fn role(&self) -> Option<Role> {
        self.share.as_ref().map(|s| s.role)
    }

    /// True for a frame relayed down by `from` that this tab must take: the leader its open relay
    /// goes through.
    pub fn accepts_down(&self, from: TabId) -> bool {
        matches!(self.share.as_ref(), Some(s) if s.role == Role::Follower && s.relay_leader == Some(from))
            && self.phase.is_open()
    }

    /// The leader can open relays: its socket is open and welcomed (or open a while without a
    /// welcome: a server that sends none), so a follower learns where the stream stands.
    fn relays_ready(&self) -> bool {
        match &self.phase {
            Phase::Open(open) => open.welcomed || open.stable_at.is_none(),
            _ => false,
        }
    }

    /// The leader saw a frame carrying `seq` on its socket.
    pub(super) fn share_saw_seq(&mut self, seq: u64) {
        if let Some(Share { role: Role::Leader, welcomed: Some(w), .. }) = self.share.as_mut() {
            w.seq = w.seq.max(seq);
        }
    }

    pub(super) fn share_welcomed(&mut self, heartbeat_ms: u64, epoch: &str, seq: u64) {
        if let Some(s @ Share { role: Role::Leader, .. }) = self.share.as_mut() {
            s.welcomed = Some(Welcomed { heartbeat_ms, epoch: epoch.into(), seq });
            s.alive_at = 0; // say so now: followers waiting may open their relays
        }
    }

    /// A follower's attempt: open the relay (no credentials: the leader has the socket).
    pub(super) fn start_relay(&mut self, now: u64) {
        let Some(s) = self.share.as_ref() else { return };
        let hello = Peer::Hello { from: s.me };
        self.phase = Phase::Socket { deadline: now.saturating_add(RELAY_TIMEOUT_MS) };
        self.push(Action::OpenRelay { attempt: self.attempt });
        self.push(Action::Post(hello));
    }

    /// The leader's socket (or a follower's relay) ended: the followers' relays through it end.
    pub(super) fn share_connection_lost(&mut self) {
        if let Some(s) = self.share.as_mut() {
            if s.role == Role::Leader {
                s.tabs = VecMap::new();
                s.welcomed = None;
                let closed = Peer::Closed { from: s.me };
                self.push(Action::Post(closed));
            }
        }
    }

    /// A `leave` of a room a follower still wants: answered here, not sent.
    pub(super) fn share_keeps_room(&self, room: &str) -> bool {
        matches!(self.share.as_ref(), Some(s) if s.role == Role::Leader && s.others_want(room))
    }

    /// Everything due at `now`: the leader's `Alive` (and followers silent too long forgotten), a
    /// follower's `Here`, and its steal.
    pub(super) fn share_clock(&mut self, now: u64) {
        let open = self.relays_ready();
        let idle = self.state == State::Idle;
        let Some(s) = self.share.as_mut() else { return };
        if idle {
            return;
        }
        let mut posts = alloc::vec::Vec::new();
        let mut silent = alloc::vec::Vec::new();
        let mut steal = false;
        match s.role {
            Role::Leader if now >= s.alive_at => {
                s.alive_at = now.saturating_add(ALIVE_EVERY_MS);
                posts.push(Peer::Alive { from: s.me, open });
                silent.extend(s.alive_said());
            }
            Role::Follower if !s.stealing => match s.ping_at {
                Some(at) if now >= at.saturating_add(s.steal_after) => {
                    s.stealing = true;
                    steal = true;
                }
                None if now >= s.heard_at.saturating_add(LEADER_SILENT_MS) => {
                    s.ping_at = Some(now);
                    posts.push(Peer::Ping { from: s.me });
                }
                _ => {}
            },
            _ => {}
        }
        for peer in posts {
            self.push(Action::Post(peer));
        }
        if steal {
            self.push(Action::StealLock);
        }
        for tab in silent {
            self.forget_tab(tab);
        }
    }

    /// The leader forgets a follower (gone, or silent too long): the rooms only it wanted are left.
    fn forget_tab(&mut self, tab: TabId) {
        let Some(s) = self.share.as_mut() else { return };
        let rooms = s.tabs.remove(&tab).map(|t| t.rooms).unwrap_or_default();
        for room in rooms.iter() {
            if !self.rooms.contains(room) && !self.share_keeps_room(room) && self.phase.is_open() {
                let id = self.next_id();
                self.push(Action::Send(frames::leave(id, room)));
            }
        }
    }

    pub(super) fn on_share(&mut self, now: u64, input: ShareInput) {
        if !self.share.is_some() {
            return;
        }
        match input {
            ShareInput::LockGranted => self.become_leader(now),
            ShareInput::LockLost => self.become_follower(now),
            ShareInput::Peer(peer) => self.on_peer(now, peer),
        }
    }

    fn become_leader(&mut self, now: u64) {
        if self.role() == Some(Role::Leader) {
            return;
        }
        // The relay (if any) ends as a follower's would: no `Closed` to anyone.
        if self.phase.has_socket() {
            self.give_up_connection(REASON_ANOTHER_TAB);
        }
        if let Some(s) = self.share.as_mut() {
            s.role = Role::Leader;
            s.stealing = false;
            s.relay_leader = None;
            s.alive_at = now;
            s.tabs = VecMap::new();
        }
        if matches!(self.state, State::Connecting | State::Open | State::Reconnecting) {
            if self.state == State::Open {
                self.set_state(State::Reconnecting);
            }
            self.start_attempt(now);
        }
    }

    fn become_follower(&mut self, now: u64) {
        if self.role() != Some(Role::Leader) {
            return;
        }
        if self.phase.has_socket() {
            self.give_up_connection(REASON_ANOTHER_TAB); // tells the followers: `Closed`
        }
        if let Some(s) = self.share.as_mut() {
            s.role = Role::Follower;
            s.heard(now);
            s.tabs = VecMap::new();
            s.welcomed = None;
        }
        // A follower reaches the server through the leader, whatever this tab's own path was;
        // and it waits in the lock's queue again, to lead when the leader goes.
        self.transport_reset();
        self.push(Action::RequestLock);
        if matches!(self.state, State::Connecting | State::Open | State::Reconnecting) {
            if self.state == State::Open {
                self.set_state(State::Reconnecting);
            }
            self.phase = Phase::IDLE;
            self.attempt = self.attempt.wrapping_add(1);
            self.start_relay(now);
        }
    }

    fn on_peer(&mut self, now: u64, peer: Peer) {
        let ready = self.relays_ready();
        let Some(s) = self.share.as_mut() else { return };
        let leader = s.role == Role::Leader;
        match peer {
            Peer::Alive { from, open } if !leader => {
                s.heard(now);
                let relay_to_other = s.relay_leader.is_some_and(|l| l != from);
                if relay_to_other && self.phase.has_socket() {
                    // The leader this relay went through is gone: another one speaks.
                    self.relay_lost(now);
                } else if s.relay_leader == Some(from) && self.phase.is_open() {
                    let here = Peer::Here { from: s.me };
                    self.push(Action::Post(here));
                } else if open {
                    match self.phase {
                        // Opening, and the leader may not have been open when it was asked.
                        Phase::Socket { .. } => {
                            let hello = Peer::Hello { from: s.me };
                            self.push(Action::Post(hello));
                        }
                        Phase::Waiting { .. }
                            if self.state == State::Reconnecting || self.state == State::Connecting =>
                        {
                            self.attempt = self.attempt.wrapping_add(1);
                            self.start_relay(now);
                        }
                        _ => {}
                    }
                }
            }
            Peer::Ping { .. } if leader => {
                let alive = Peer::Alive { from: s.me, open: ready };
                self.push(Action::Post(alive));
            }
            Peer::Hello { from } if leader && ready => {
                // A follower known already opens again: the rooms it had are its rejoins' now.
                let welcome = Peer::Welcome { from: s.me, to: from, welcome: s.welcomed.clone() };
                self.forget_tab(from);
                if let Some(s) = self.share.as_mut() {
                    s.tabs.insert(from, Follower::default());
                }
                self.push(Action::Post(welcome));
            }
            Peer::Welcome { from, to, welcome } if !leader && to == s.me => {
                s.heard(now);
                if !matches!(self.phase, Phase::Socket { .. }) {
                    return; // a second answer to a hello sent twice
                }
                s.relay_leader = Some(from);
                self.on_open(now);
                if let Some(w) = welcome {
                    self.on_welcome(now, w.heartbeat_ms, &w.epoch, w.seq);
                }
            }
            Peer::Up { from, text, kind, room, id } if leader && self.phase.is_open() => {
                self.on_up(from, text, &kind, room, id);
            }
            Peer::Closed { from } if !leader && s.relay_leader == Some(from) && self.phase.has_socket() => {
                self.relay_lost(now);
            }
            Peer::Bye { from } if leader => self.forget_tab(from),
            Peer::Here { from } if leader && self.phase.is_open() => match s.tabs.get_mut(&from) {
                Some(t) => t.missed = 0,
                None => {
                    let forget = Peer::Forget { from: s.me, to: from };
                    self.push(Action::Post(forget));
                }
            },
            Peer::Forget { from, to }
                if !leader && to == s.me && s.relay_leader == Some(from) && self.phase.has_socket() =>
            {
                self.relay_lost(now);
            }
            _ => {}
        }
    }

    /// A follower's relay is gone (its leader closed its socket or went away): reconnect through
    /// whoever leads next, at once when one is open.
    fn relay_lost(&mut self, now: u64) {
        self.give_up_connection(REASON_ANOTHER_TAB);
        if let Some(s) = self.share.as_mut() {
            s.relay_leader = None;
        }
        self.set_state(State::Reconnecting);
        self.phase = Phase::Waiting { retry_at: Some(now.saturating_add(ALIVE_EVERY_MS)), server_hold: false };
    }

    /// A frame a follower sends up: the leader writes it on its socket, except what it answers
    /// itself (a `leave` of a room another tab wants) or drops (a `pong`: the leader answers
    /// the server's pings).
    fn on_up(&mut self, from: TabId, text: String, kind: &str, room: Option<String>, id: Option<String>) {
        let Some(s) = self.share.as_mut() else { return };
        let Some(tab) = s.tabs.get_mut(&from) else {
            // Not (or no longer) known here: its relay opens again, and its frames go then.
            let forget = Peer::Forget { from: s.me, to: from };
            self.push(Action::Post(forget));
            return;
        };
        tab.missed = 0;
        let sse = self.fallback.as_ref().is_some_and(|f| f.transport == super::transport::Transport::Sse);
        match (kind, room) {
            ("pong", _) => return,
            // Over SSE the server replays only when a stream opens: a follower's gap cannot be
            // filled, and it is told so (it reports a `resync`). (Issue 12's known limit.)
            ("resume", _) if sse => {
                let me = s.me;
                if let Some(id) = id {
                    let resumed = frames::resumed_incomplete(&id);
                    self.push(Action::Post(Peer::Down { from: me, text: resumed }));
                }
                return;
            }
            ("join", Some(room)) => {
                tab.rooms.want(&room);
            }
            ("leave", Some(room)) => {
                tab.rooms.unwant(&room);
                if self.rooms.contains(&room) || s.others_want(&room) {
                    let me = s.me;
                    if let Some(id) = id {
                        let left = frames::left(&id, &room);
                        self.push(Action::Post(Peer::Down { from: me, text: left }));
                    }
                    return;
                }
            }
            _ => {}
        }
        self.push(Action::Send(text));
    }
}

/// Seeds a tab's sharing state when the machine is made (`Config::share`).
pub(super) fn new_share(me_unit: f64, jitter: f64) -> Share {
    Share::new((me_unit * 9e15) as TabId, 0, jitter)
}

/// Starts the sharing part of `connect()`: ask for the lock, and open a relay meanwhile (the
/// lock, when granted, turns it into the leader's socket).
impl<P: Clone> Machine<P> {
    pub(super) fn share_connect(&mut self, now: u64) -> bool {
        let Some(s) = self.share.as_mut() else { return false };
        s.heard_at = now;
        self.push(Action::RequestLock);
        self.set_state(State::Connecting);
        self.attempt = self.attempt.wrapping_add(1);
        self.start_relay(now);
        true
    }
}
