//! Which transport carries the connection (issue 12): the WebSocket, or the SSE fallback
//! (`GET /sse/notifications?epoch=` to receive, `POST /sse/send` to send; docs/PROTOCOL.md,
//! "SSE") when upgrades fail in a way that points at the network path. A pure decision: the
//! inputs are what the machine already knows (how an attempt ended, whether the ticket endpoint
//! answered, online and offline), the outputs a switch and a deadline for the next probe.
//!
//! - Fall back after [`TransportPolicy::failures`] WebSocket attempts in a row that ended with
//!   1006 before open while an HTTP request to the server (the ticket) answered in the same
//!   attempt: the server is up, yet no upgrade gets through (a proxy or an antivirus that breaks
//!   them). A close with a code before open (4001, 1013...) proves that upgrades get through and
//!   resets the count, as does an attempt that opened; a 1006 while nothing over HTTP answered
//!   either (offline, the server down) says nothing about upgrades: not counted. Online and
//!   offline reset the count (the path changed).
//! - While on SSE, probe the WebSocket [`TransportPolicy::probe_initial_ms`] after the switch,
//!   then twice as long after each failed probe, up to [`TransportPolicy::probe_max_ms`]; at once
//!   when the browser comes back online. A probe is a WebSocket attempt made beside the SSE
//!   stream: when it opens (or the server closes it with a code, which proves the path), move
//!   back to the WebSocket; a probe that ends 1006 before open waits for the next one.
//! - Against flapping: when the WebSocket that a probe brought back fails again within
//!   [`TransportPolicy::stable_ms`] of opening, the next fallback keeps the probe delay where it
//!   was instead of starting again from the first.

/// What carries the connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    Sse,
}

/// The numbers of the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportPolicy {
    /// WebSocket attempts in a row that ended 1006 before open, the ticket endpoint answering,
    /// that switch to SSE.
    pub failures: u32,
    /// The first probe of the WebSocket after a switch to SSE, in ms.
    pub probe_initial_ms: u64,
    /// The longest wait between probes, in ms.
    pub probe_max_ms: u64,
    /// A WebSocket open for this long counts as working: the probe delay starts again from the
    /// first at the next fallback.
    pub stable_ms: u64,
}

impl Default for TransportPolicy {
    fn default() -> Self {
        TransportPolicy { failures: 3, probe_initial_ms: 10_000, probe_max_ms: 300_000, stable_ms: 60_000 }
    }
}

/// What the shell must do after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Nothing changes.
    Stay,
    /// Close nothing more; open the SSE stream (resuming from the last seq) and send over POST.
    ToSse,
    /// The WebSocket works: carry on over it (resuming from the last seq) and close the SSE stream
    /// once the socket's resume is answered.
    ToWebSocket,
}

/// The close code of a connection that ended without a close frame.
const ABNORMAL: u16 = 1006;

/// The transport decision's state.
#[derive(Debug, Clone)]
pub struct TransportChoice {
    policy: TransportPolicy,
    current: Transport,
    /// Attempts in a row that ended 1006 before open with HTTP answering.
    blocked: u32,
    /// Probes that failed since the last fallback (the exponent of the probe delay).
    probes_failed: u32,
    /// When the next probe is due (on SSE, no probe running).
    next_probe_at: Option<u64>,
    /// A probe socket is out.
    probing: bool,
    /// When the current WebSocket opened.
    opened_at: Option<u64>,
}

impl TransportChoice {
    pub fn new(policy: TransportPolicy) -> Self {
        TransportChoice {
            policy,
            current: Transport::WebSocket,
            blocked: 0,
            probes_failed: 0,
            next_probe_at: None,
            probing: false,
            opened_at: None,
        }
    }

    pub fn transport(&self) -> Transport {
        self.current
    }

    /// When the shell must call [`TransportChoice::probe_due`] next (`None`: no probe pending).
    pub fn deadline(&self) -> Option<u64> {
        if self.probing {
            None
        } else {
            self.next_probe_at
        }
    }

    /// True once a probe is due: the shell opens a probe WebSocket beside the SSE stream and
    /// reports how it ends with [`TransportChoice::on_socket_open`] or
    /// [`TransportChoice::on_socket_closed`].
    pub fn probe_due(&mut self, now: u64) -> bool {
        match self.deadline() {
            Some(at) if now >= at && self.current == Transport::Sse => {
                self.probing = true;
                self.next_probe_at = None;
                true
            }
            _ => false,
        }
    }

    /// A WebSocket (the connection's, or a probe) opened.
    pub fn on_socket_open(&mut self, now: u64) -> Switch {
        self.blocked = 0;
        self.opened_at = Some(now);
        match self.current {
            Transport::WebSocket => Switch::Stay,
            Transport::Sse => self.back_to_websocket(),
        }
    }

    /// A WebSocket (the connection's, or a probe) closed with `code`. `opened`: it had opened;
    /// `http_answered`: an HTTP request to the server (the ticket) answered in this attempt.
    pub fn on_socket_closed(&mut self, now: u64, code: u16, opened: bool, http_answered: bool) -> Switch {
        if opened {
            // A cut of an open socket is the reconnect policy's business, not the path's.
            self.blocked = 0;
            return Switch::Stay;
        }
        let path_blocked = code == ABNORMAL;
        match self.current {
            Transport::WebSocket if path_blocked => {
                if !http_answered {
                    return Switch::Stay;
                }
                self.blocked = self.blocked.saturating_add(1);
                if self.blocked < self.policy.failures {
                    return Switch::Stay;
                }
                self.fall_back(now);
                Switch::ToSse
            }
            Transport::WebSocket => {
                self.blocked = 0;
                Switch::Stay
            }
            Transport::Sse if !self.probing => Switch::Stay,
            Transport::Sse if path_blocked => {
                self.probing = false;
                self.probes_failed = self.probes_failed.saturating_add(1);
                self.next_probe_at = Some(now.saturating_add(self.probe_delay()));
                Switch::Stay
            }
            // The server answered the upgrade with a close frame: upgrades get through.
            Transport::Sse => self.back_to_websocket(),
        }
    }

    /// The browser went online (`true`) or offline: the path may have changed.
    pub fn on_network(&mut self, now: u64, online: bool) {
        self.blocked = 0;
        if online && self.current == Transport::Sse && !self.probing {
            self.next_probe_at = Some(now);
        }
    }

    fn fall_back(&mut self, now: u64) {
        let flapping = self.opened_at.is_some_and(|at| now.saturating_sub(at) < self.policy.stable_ms);
        if !flapping {
            self.probes_failed = 0;
        }
        self.current = Transport::Sse;
        self.blocked = 0;
        self.probing = false;
        self.opened_at = None;
        self.next_probe_at = Some(now.saturating_add(self.probe_delay()));
    }

    fn back_to_websocket(&mut self) -> Switch {
        self.current = Transport::WebSocket;
        self.probing = false;
        self.next_probe_at = None;
        Switch::ToWebSocket
    }

    /// The wait before the next probe: doubled per failed probe, capped.
    fn probe_delay(&self) -> u64 {
        let factor = 1u64.checked_shl(self.probes_failed.min(63)).unwrap_or(u64::MAX);
        self.policy.probe_initial_ms.saturating_mul(factor).min(self.policy.probe_max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> TransportPolicy {
        TransportPolicy { failures: 3, probe_initial_ms: 1_000, probe_max_ms: 5_000, stable_ms: 10_000 }
    }

    /// Three attempts blocked at 1006 with the ticket answering: on SSE at `now`.
    fn on_sse(t: &mut TransportChoice, now: u64) {
        assert_eq!(t.on_socket_closed(now, 1006, false, true), Switch::Stay);
        assert_eq!(t.on_socket_closed(now, 1006, false, true), Switch::Stay);
        assert_eq!(t.on_socket_closed(now, 1006, false, true), Switch::ToSse);
        assert_eq!(t.transport(), Transport::Sse);
    }

    #[test]
    fn three_blocked_upgrades_with_the_ticket_answering_switch_to_sse() {
        let mut t = TransportChoice::new(policy());
        assert_eq!((t.transport(), t.deadline()), (Transport::WebSocket, None));
        on_sse(&mut t, 100);
        assert_eq!(t.deadline(), Some(1_100), "the first probe");
    }

    #[test]
    fn what_does_not_point_at_the_path_does_not_count_or_resets_the_count() {
        let mut t = TransportChoice::new(policy());
        // Nothing answered over HTTP either (offline, server down): not counted.
        for _ in 0..10 {
            assert_eq!(t.on_socket_closed(0, 1006, false, false), Switch::Stay);
        }
        // Two blocked, then a close frame before open (the server refused: 1013): upgrades get
        // through, the count starts again.
        t.on_socket_closed(0, 1006, false, true);
        t.on_socket_closed(0, 1006, false, true);
        assert_eq!(t.on_socket_closed(0, 1013, false, true), Switch::Stay);
        t.on_socket_closed(0, 1006, false, true);
        t.on_socket_closed(0, 1006, false, true);
        // A socket that opened and was then cut: not the path's fault, and it resets.
        assert_eq!(t.on_socket_open(0), Switch::Stay);
        assert_eq!(t.on_socket_closed(0, 1006, true, true), Switch::Stay);
        t.on_socket_closed(0, 1006, false, true);
        t.on_socket_closed(0, 1006, false, true);
        // The network changed: the count starts again.
        t.on_network(0, false);
        t.on_network(0, true);
        t.on_socket_closed(0, 1006, false, true);
        t.on_socket_closed(0, 1006, false, true);
        assert_eq!(t.transport(), Transport::WebSocket);
        assert_eq!(t.on_socket_closed(0, 1006, false, true), Switch::ToSse);
    }

    #[test]
    fn probes_back_off_to_the_cap_and_a_probe_that_opens_moves_back() {
        let mut t = TransportChoice::new(policy());
        on_sse(&mut t, 0);
        assert!(!t.probe_due(999));
        let mut now = 1_000;
        let mut waits = Vec::new();
        for _ in 0..5 {
            assert!(t.probe_due(now));
            assert_eq!(t.deadline(), None, "one probe at a time");
            assert!(!t.probe_due(now));
            assert_eq!(t.on_socket_closed(now, 1006, false, true), Switch::Stay);
            let next = t.deadline().unwrap();
            waits.push(next - now);
            now = next;
        }
        assert_eq!(waits, [2_000, 4_000, 5_000, 5_000, 5_000]);
        assert!(t.probe_due(now));
        assert_eq!(t.on_socket_open(now), Switch::ToWebSocket);
        assert_eq!((t.transport(), t.deadline()), (Transport::WebSocket, None));
    }

    #[test]
    fn a_probe_closed_by_the_server_proves_the_path() {
        let mut t = TransportChoice::new(policy());
        on_sse(&mut t, 0);
        assert!(t.probe_due(1_000));
        assert_eq!(t.on_socket_closed(1_000, 4001, false, true), Switch::ToWebSocket);
    }

    #[test]
    fn a_socket_event_on_sse_without_a_probe_changes_nothing() {
        let mut t = TransportChoice::new(policy());
        on_sse(&mut t, 0);
        assert_eq!(t.on_socket_closed(10, 4001, false, true), Switch::Stay);
        assert_eq!((t.transport(), t.deadline()), (Transport::Sse, Some(1_000)));
    }

    #[test]
    fn coming_online_probes_at_once() {
        let mut t = TransportChoice::new(policy());
        on_sse(&mut t, 0);
        t.on_network(400, true);
        assert_eq!(t.deadline(), Some(400));
        assert!(t.probe_due(400));
    }

    #[test]
    fn a_websocket_that_fails_again_soon_keeps_the_probe_delay() {
        let mut t = TransportChoice::new(policy());
        on_sse(&mut t, 0);
        // Two failed probes: the next wait is 4 s.
        for now in [1_000, 3_000] {
            assert!(t.probe_due(now));
            t.on_socket_closed(now, 1006, false, true);
        }
        assert_eq!(t.deadline(), Some(7_000));
        assert!(t.probe_due(7_000));
        assert_eq!(t.on_socket_open(7_000), Switch::ToWebSocket);
        // Cut 2 s later, and blocked again: back on SSE, the probe wait stays at 4 s.
        t.on_socket_closed(9_000, 1006, true, true);
        on_sse(&mut t, 9_500);
        assert_eq!(t.deadline(), Some(13_500));
        // Back again, open for longer than stable_ms this time: the next fallback starts over.
        assert!(t.probe_due(13_500));
        t.on_socket_open(13_500);
        t.on_socket_closed(30_000, 1006, true, true);
        on_sse(&mut t, 30_100);
        assert_eq!(t.deadline(), Some(31_100));
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Closed { code: u16, opened: bool, http: bool },
        Open,
        Probe,
        Network(bool),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (prop_oneof![Just(1006u16), Just(1000), Just(1013), Just(4001)], any::<bool>(), any::<bool>())
                .prop_map(|(code, opened, http)| Op::Closed { code, opened, http }),
            Just(Op::Open),
            Just(Op::Probe),
            any::<bool>().prop_map(Op::Network),
            (0u64..20_000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// Over random events: a switch to SSE follows exactly `failures` blocked attempts in a row
        /// (nothing resetting between them); on SSE a probe is always scheduled or out; on the
        /// WebSocket none is; probe waits stay within [initial, max].
        #[test]
        fn the_switch_follows_the_rules(ops in proptest::collection::vec(op(), 0..200)) {
            let p = TransportPolicy { failures: 3, probe_initial_ms: 1_000, probe_max_ms: 8_000, stable_ms: 5_000 };
            let mut t = TransportChoice::new(p);
            let mut now = 0u64;
            let mut streak = 0u32;
            for op in ops {
                let before = t.transport();
                let switch = match op {
                    Op::Closed { code, opened, http } => {
                        let counts = before == Transport::WebSocket && !opened && code == 1006 && http;
                        let resets = before == Transport::WebSocket && (opened || code != 1006);
                        let s = t.on_socket_closed(now, code, opened, http);
                        if counts { streak += 1 } else if resets { streak = 0 }
                        if s == Switch::ToSse {
                            prop_assert_eq!(streak, p.failures);
                            streak = 0;
                        }
                        s
                    }
                    Op::Open => { streak = 0; t.on_socket_open(now) }
                    Op::Probe => { t.probe_due(now); Switch::Stay }
                    Op::Network(online) => { streak = 0; t.on_network(now, online); Switch::Stay }
                    Op::Advance(ms) => { now += ms; Switch::Stay }
                };
                prop_assert!(streak < p.failures || t.transport() == Transport::Sse);
                match (before, switch) {
                    (Transport::WebSocket, Switch::ToSse) | (Transport::Sse, Switch::ToWebSocket) | (_, Switch::Stay) => {}
                    other => prop_assert!(false, "impossible switch {:?}", other),
                }
                match t.transport() {
                    Transport::WebSocket => prop_assert_eq!(t.deadline(), None),
                    Transport::Sse => {
                        if let Some(at) = t.deadline() {
                            prop_assert!(at <= now.saturating_add(p.probe_max_ms));
                        } else {
                            prop_assert!(t.probing, "on SSE: a probe is scheduled or out");
                        }
                    }
                }
            }
        }
    }
}
