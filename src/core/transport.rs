//! The SSE fallback (issue 12): when WebSocket upgrades keep failing in a way that points to the
//! network path (a proxy or an antivirus that breaks upgrades: 1006 before open, while the
//! ticket URL answers), the next attempts receive over the server's SSE session route and send
//! with HTTP POST; a while after each SSE connection opens, the machine tries WebSocket again
//! and stays there when it opens. Every decision of it is here; `web/` carries the stream and
//! the POSTs. The frames are the same either way: the shell turns each SSE event into the
//! frame a socket would have carried.

use super::machine::Machine;
use super::phase::Phase;
use super::types::State;
use crate::protocol::CloseCode;

/// WebSocket attempts cut (1006) before they opened, in a row, after which SSE is used.
pub const SSE_AFTER_CUTS: u32 = 3;
/// The close reason when an SSE connection is given up to try WebSocket again.
pub const REASON_PROBING: &str = "Probing WebSocket";

/// What an HTTP answer of the SSE fallback means, as the close a socket would have had: an
/// answer to the stream's `GET` (`post` false) or to a sent frame's `POST` (`post` true), with
/// its `status` (0: no answer, a network error). A refusal keeps a socket's meaning (the stream's
/// 401 is 4001, bad credentials; 403 is 1008, the origin refused; 429 and 503 are 1013, the server
/// is full; a POST's 413 is 1009, a message too big); anything else is a broken path, 1006, and
/// what was not answered is sent again on the next connection (410 too: the session is gone).
/// The shell reports the status; this decides (issue 12's review: it was in `fast.js`).
pub fn sse_refusal(post: bool, status: u16) -> (u16, alloc::string::String) {
    let code = match (post, status) {
        (false, 401) => CloseCode::Unauthorized,
        (false, 403) => CloseCode::Policy,
        (false, 429 | 503) => CloseCode::TryAgainLater,
        // The reason a socket's close carries for it (docs/PROTOCOL.md).
        (true, 413) => return (CloseCode::TooBig.as_u16(), alloc::string::String::from("Message too big")),
        _ => return (CloseCode::Abnormal.as_u16(), alloc::string::String::new()),
    };
    let mut reason = alloc::string::String::from("HTTP ");
    super::frames::push_u64(&mut reason, status.into());
    (code.as_u16(), reason)
}

/// How the connection reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    /// Server-Sent Events to receive, HTTP POST to send.
    Sse,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Sse => "sse",
        }
    }
}

/// The fallback's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub transport: Transport,
    /// WebSocket attempts cut before open, in a row.
    cuts: u32,
    /// The current WebSocket attempt is a probe from SSE: one cut sends it back.
    probing: bool,
    /// When the open SSE connection is given up to probe WebSocket.
    probe_at: Option<u64>,
}

impl Fallback {
    pub fn new() -> Fallback {
        Fallback { transport: Transport::WebSocket, cuts: 0, probing: false, probe_at: None }
    }

    /// When the open SSE connection will be given up to probe WebSocket.
    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.probe_at
    }
}

impl<P: Clone> Machine<P> {
    pub fn transport(&self) -> Transport {
        self.fallback.as_ref().map_or(Transport::WebSocket, |f| f.transport)
    }

    /// Back to WebSocket, with nothing counted (a tab that became a follower: its leader's path
    /// is what counts).
    pub(super) fn transport_reset(&mut self) {
        if let Some(f) = self.fallback.as_mut() {
            *f = Fallback::new();
        }
    }

    /// A connection opened: over WebSocket, the cuts are forgotten; over SSE, the probe is due
    /// `sse_probe_ms` later.
    pub(super) fn transport_opened(&mut self, now: u64) {
        let probe_ms = self.cfg.sse_probe_ms;
        if let Some(f) = self.fallback.as_mut() {
            f.cuts = 0;
            f.probing = false;
            f.probe_at = (f.transport == Transport::Sse).then(|| now.saturating_add(probe_ms));
        }
    }

    /// A socket (or SSE stream) closed with `code` (`opened`: it had opened; an attempt that
    /// timed out counts as cut). True when the next attempt goes over the other transport,
    /// started already.
    pub(super) fn transport_failed(&mut self, now: u64, code: u16, opened: bool) -> bool {
        let Some(f) = self.fallback.as_mut() else { return false };
        f.probe_at = None;
        if opened || code != CloseCode::Abnormal.as_u16() {
            f.cuts = 0;
            f.probing = false;
            return false;
        }
        f.cuts += 1;
        let to = match f.transport {
            // The SSE route fails too (down, 404, refused): WebSocket again, after as many.
            Transport::Sse if f.cuts >= SSE_AFTER_CUTS => Transport::WebSocket,
            Transport::WebSocket if f.probing || f.cuts >= SSE_AFTER_CUTS => Transport::Sse,
            _ => return false,
        };
        f.transport = to;
        f.cuts = 0;
        f.probing = false;
        self.set_state(State::Reconnecting);
        self.start_attempt(now);
        true
    }

    /// Over SSE for `sse_probe_ms`: give it up and try WebSocket (a cut brings it back at once).
    pub(super) fn transport_clock(&mut self, now: u64) {
        let due = matches!(self.fallback.as_ref(), Some(f) if f.probe_at.is_some_and(|t| now >= t));
        if !due || !self.phase.is_open() {
            return;
        }
        self.give_up_connection(REASON_PROBING);
        if let Some(f) = self.fallback.as_mut() {
            f.transport = Transport::WebSocket;
            f.probing = true;
            f.probe_at = None;
        }
        self.set_state(State::Reconnecting);
        self.phase = Phase::IDLE;
        self.start_attempt(now);
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_sse_refusal_closes_as_a_socket_would_and_any_other_failure_is_a_cut() {
        use super::sse_refusal;
        assert_eq!(sse_refusal(false, 401), (4001, "HTTP 401".into()));
        assert_eq!(sse_refusal(false, 403), (1008, "HTTP 403".into()));
        assert_eq!(sse_refusal(false, 429), (1013, "HTTP 429".into()));
        assert_eq!(sse_refusal(false, 503), (1013, "HTTP 503".into()));
        assert_eq!(sse_refusal(true, 413), (1009, "Message too big".into()));
        for (post, status) in
            [(false, 0), (false, 500), (false, 404), (false, 413), (true, 0), (true, 410), (true, 401), (true, 500)]
        {
            assert_eq!(sse_refusal(post, status), (1006, String::new()), "{post} {status}");
        }
    }

    use alloc::string::String;
    use serde_json::json;

    use super::super::testkit::*;
    use super::super::*;
    use super::*;

    fn sse_config() -> Config {
        Config { sse: true, sse_probe_ms: 10_000, ..Config::default() }
    }

    /// A WebSocket attempt whose credentials came and whose socket is cut before it opens.
    fn cut_before_open(s: &mut Sim) -> alloc::vec::Vec<Action<serde_json::Value>> {
        let a = s.attempt;
        s.feed(Input::CredentialsReady { attempt: a });
        let out = s.closed(1006, "");
        if let Some(delay) = retry_delay(&out) {
            s.advance(delay);
        }
        out
    }

    fn opens_sse(out: &[Action<serde_json::Value>]) -> Option<Option<(String, u64)>> {
        out.iter().find_map(|a| if let Action::OpenSse { resume, .. } = a { Some(resume.clone()) } else { None })
    }

    #[test]
    fn three_cuts_before_open_switch_to_sse_and_the_stream_resumes_from_where_it_was() {
        let mut s = Sim::new(sse_config());
        s.open();
        s.welcome("e", 4);
        s.note(5);
        s.closed(1006, ""); // was open: not a blocked upgrade
        s.advance(60_000);
        for _ in 0..2 {
            cut_before_open(&mut s);
            assert_eq!(s.m.transport(), Transport::WebSocket);
        }
        let a = s.attempt;
        s.feed(Input::CredentialsReady { attempt: a });
        s.closed(1006, "");
        assert_eq!(s.m.transport(), Transport::Sse);
        let out = s.feed(Input::CredentialsReady { attempt: s.attempt });
        assert_eq!(opens_sse(&out), Some(Some((String::from("e"), 5))), "resumes after seq 5 of epoch e");
        s.feed(Input::SocketOpened { attempt: s.attempt });
        // The welcome decides a resume, but its frame is not sent: the URL asked for it.
        let out = s.welcome("e", 7);
        assert!(sends(&out).is_empty(), "{out:?}");
        assert_eq!(messages(&s.text(r#"{"type":"new_notification","seq":6,"payload":{}}"#)).len(), 1);
        s.text(r#"{"type":"new_notification","seq":7,"payload":{}}"#);
        let out = s.text(r#"{"type":"resumed","payload":{"replayed":2,"complete":true}}"#);
        assert!(!events(&out).iter().any(|e| matches!(e, Event::Resync(_))));
        // Pings are keep-alives: no pong by POST.
        assert!(sends(&s.frame(InKind::Ping, None, None, json!({"type": "ping"}))).is_empty());
    }

    #[test]
    fn other_failures_do_not_count_and_an_open_socket_resets_the_count() {
        let mut s = Sim::new(sse_config());
        s.feed(Input::Connect);
        cut_before_open(&mut s);
        cut_before_open(&mut s);
        // A close with a code is the server's answer, not a broken path.
        let a = s.attempt;
        s.feed(Input::CredentialsReady { attempt: a });
        let out = s.closed(1011, "");
        s.advance(retry_delay(&out).unwrap());
        cut_before_open(&mut s);
        assert_eq!(s.m.transport(), Transport::WebSocket, "1011 broke the run");
        s.reopen();
        s.closed(1006, "");
        assert_eq!(s.m.transport(), Transport::WebSocket, "opened: the path works");
    }

    #[test]
    fn over_sse_websocket_is_probed_and_one_cut_brings_it_back_at_once() {
        let mut s = Sim::new(sse_config());
        s.feed(Input::Connect);
        for _ in 0..3 {
            cut_before_open(&mut s);
        }
        assert_eq!(s.m.transport(), Transport::Sse);
        s.reopen();
        assert_eq!(s.m.state(), State::Open);
        // The probe: the SSE stream is closed and a WebSocket attempt starts.
        let out = s.advance(10_000);
        assert!(out.contains(&Action::CloseSocket { code: 1000, reason: REASON_PROBING }), "{out:?}");
        assert_eq!(s.m.transport(), Transport::WebSocket);
        assert_eq!(fetches(&out), 1, "credentials for the probe");
        // Still blocked: back to SSE without a backoff wait.
        let a = s.attempt;
        s.feed(Input::CredentialsReady { attempt: a });
        let out = s.closed(1006, "");
        assert_eq!(s.m.transport(), Transport::Sse);
        assert_eq!(fetches(&out), 1, "the SSE attempt starts now");
        // The next probe opens: WebSocket it is.
        s.reopen();
        s.advance(10_000);
        let out = s.reopen();
        assert!(out.contains(&Action::Emit(Event::State(State::Open))) || s.m.state() == State::Open);
        assert_eq!(s.m.transport(), Transport::WebSocket);
        let probe = Action::CloseSocket { code: 1000, reason: REASON_PROBING };
        assert!(!s.advance(20_000).contains(&probe), "no more probes");
    }

    #[test]
    fn an_sse_route_that_fails_too_sends_it_back_to_websocket() {
        let mut s = Sim::new(sse_config());
        s.feed(Input::Connect);
        for _ in 0..3 {
            cut_before_open(&mut s);
        }
        assert_eq!(s.m.transport(), Transport::Sse);
        for _ in 0..3 {
            cut_before_open(&mut s); // the SSE route answers 404, or is down
        }
        assert_eq!(s.m.transport(), Transport::WebSocket, "not stuck on a route that never opens");
    }

    #[test]
    fn an_upgrade_that_stalls_until_the_connect_timeout_counts_as_cut() {
        let mut s = Sim::new(Config { connect_timeout_ms: 1_000, ..sse_config() });
        s.feed(Input::Connect);
        for _ in 0..3 {
            let a = s.attempt;
            s.feed(Input::CredentialsReady { attempt: a });
            let out = s.advance(1_000);
            if let Some(delay) = retry_delay(&out) {
                s.advance(delay);
            }
        }
        assert_eq!(s.m.transport(), Transport::Sse);
    }

    #[test]
    fn transports_are_named_as_the_js_api_says() {
        assert_eq!([Transport::WebSocket.as_str(), Transport::Sse.as_str()], ["websocket", "sse"]);
    }

    #[test]
    fn without_the_option_cuts_never_switch() {
        let mut s = Sim::new(Config::default());
        s.feed(Input::Connect);
        for _ in 0..6 {
            cut_before_open(&mut s);
        }
        assert_eq!(s.m.transport(), Transport::WebSocket);
    }
}
