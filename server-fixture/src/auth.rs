//! Credentials: HS256 JWTs (algorithm pinned, `exp` required) and single-use tickets.
//!
//! Neither tokens nor tickets are ever logged: errors name what was wrong, not the value.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Who a credential names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    /// A back-end service: may post notifications, tasks and broadcasts.
    Service,
}

/// The claims the fixture reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    /// `"service"` makes a service token; anything else (or nothing) a user token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<serde_json::Value>,
}

/// Why a credential was refused. Carries no part of the credential itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    /// Bad signature, wrong algorithm, malformed, missing `exp` or `sub`.
    Invalid,
    Expired,
    /// Unknown, already used or expired ticket.
    BadTicket,
    /// A ticket and a token that name different users.
    Mismatch,
    /// The ticket could not be checked: the shared store is unreachable (close 1013 / 503).
    Unavailable,
}

impl AuthError {
    pub fn describe(self) -> &'static str {
        match self {
            AuthError::Missing => "no credentials",
            AuthError::Invalid => "invalid token",
            AuthError::Expired => "expired token",
            AuthError::BadTicket => "unknown, used or expired ticket",
            AuthError::Mismatch => "ticket and token name different users",
            AuthError::Unavailable => "tickets cannot be checked: the shared store is unreachable",
        }
    }
}

/// Verifies and issues HS256 JWTs.
pub struct Jwt {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

impl Jwt {
    pub fn new(secret: &str) -> Self {
        // Pinned to HS256: a token with `alg: none`, RS256 or anything else is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 0;
        validation.validate_nbf = true;
        // The fixture names no audience: a token that carries one is not refused for it.
        validation.validate_aud = false;
        Jwt {
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// Checks a token and returns who it names.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES || has_crit(token) {
            return Err(AuthError::Invalid);
        }
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.sub.len() > MAX_SUB_BYTES {
            return Err(AuthError::Invalid);
        }
        let service = claims.role.as_ref().and_then(|r| r.as_str()) == Some("service");
        let role = if service { Role::Service } else { Role::User };
        Ok(Identity { user_id: claims.sub, role })
    }

    /// Issues a token for `user_id` valid for `ttl` (used by `/dev/token` and the tests).
    pub fn issue(&self, user_id: &str, role: Option<&str>, ttl: Duration) -> String {
        let claims = Claims {
            sub: user_id.to_owned(),
            exp: unix_now() + ttl.as_secs().max(1),
            role: role.map(|r| serde_json::Value::String(r.to_owned())),
        };
        // Encoding with an HMAC key cannot fail for these claims.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).unwrap_or_default()
    }
}

/// The longest token taken, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The longest `sub` (user id) taken, in bytes: user ids are map keys (as in the REST bodies).
pub const MAX_SUB_BYTES: usize = 256;

/// True when the JWT header has a `crit` member. RFC 7515 §4.1.11: a recipient that does not
/// understand the listed extensions must reject the token, and this server understands none.
/// (jsonwebtoken ignores `crit`.) A header that does not decode is left to jsonwebtoken.
fn has_crit(token: &str) -> bool {
    let Some(head) = token.split('.').next() else { return false };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head) else { return false };
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes).is_ok_and(|h| h.contains_key("crit"))
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Single-use tickets bound to a user, each with a deadline, at most `per_user` unredeemed
/// ones per user.
///
/// Every ticket lives for the same TTL, so deadlines are issued in order: expiry is a queue,
/// purged from its front on every issue (O(1) amortized), never a scan of the live map.
pub struct Tickets {
    ttl: Duration,
    per_user: usize,
    inner: Mutex<TicketState>,
}

#[derive(Default)]
struct TicketState {
    live: HashMap<String, (Identity, Instant)>,
    /// Issue order: (deadline, ticket). A redeemed ticket stays here until its deadline.
    expiry: VecDeque<(Instant, String)>,
    /// Unredeemed, unexpired tickets per user.
    per_user: HashMap<String, usize>,
}

impl TicketState {
    fn forget(&mut self, who: &Identity) {
        if let Some(n) = self.per_user.get_mut(&who.user_id) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(&who.user_id);
            }
        }
    }
}

/// A fresh ticket: 256 random bits, URL-safe base64 without padding.
pub fn new_ticket() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Why no ticket was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyTickets(pub usize);

impl Tickets {
    pub fn new(ttl: Duration, per_user: usize) -> Self {
        Tickets { ttl, per_user, inner: Mutex::new(TicketState::default()) }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TicketState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a fresh ticket: 256 random bits, URL-safe base64. Refused when the user already
    /// holds `per_user` unredeemed ones.
    pub fn issue(&self, who: Identity) -> Result<String, TooManyTickets> {
        let ticket = new_ticket();
        let now = Instant::now();
        let mut st = self.lock();
        while st.expiry.front().is_some_and(|(deadline, _)| *deadline <= now) {
            let Some((_, old)) = st.expiry.pop_front() else { break };
            if let Some((owner, _)) = st.live.remove(&old) {
                st.forget(&owner);
            }
        }
        let held = st.per_user.get(&who.user_id).copied().unwrap_or(0);
        if held >= self.per_user {
            return Err(TooManyTickets(self.per_user));
        }
        *st.per_user.entry(who.user_id.clone()).or_default() += 1;
        st.expiry.push_back((now + self.ttl, ticket.clone()));
        st.live.insert(ticket.clone(), (who, now + self.ttl));
        Ok(ticket)
    }

    /// Takes a ticket: it works once, before its deadline.
    pub fn redeem(&self, ticket: &str) -> Result<Identity, AuthError> {
        let mut st = self.lock();
        let Some((who, deadline)) = st.live.remove(ticket) else { return Err(AuthError::BadTicket) };
        st.forget(&who);
        if deadline > Instant::now() {
            Ok(who)
        } else {
            Err(AuthError::BadTicket)
        }
    }

    /// Tickets issued and not yet purged (redeemed ones included until their deadline).
    pub fn queued(&self) -> usize {
        self.lock().expiry.len()
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_pinning() {
        let jwt = Jwt::new("s");
        let tok = jwt.issue("alice", None, Duration::from_secs(60));
        assert_eq!(jwt.verify(&tok).unwrap().user_id, "alice");
        assert_eq!(Jwt::new("other").verify(&tok), Err(AuthError::Invalid));
        // alg: none
        let none = format!(
            "{}.{}.",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!(r#"{{"sub":"alice","exp":{}}}"#, unix_now() + 60))
        );
        assert_eq!(jwt.verify(&none), Err(AuthError::Invalid));
    }

    #[test]
    fn odd_claims_do_not_refuse_a_token() {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let jwt = Jwt::new("s");
        let sign =
            |claims: serde_json::Value| encode(&Header::default(), &claims, &EncodingKey::from_secret(b"s")).unwrap();
        let exp = unix_now() + 60;
        let aud = sign(serde_json::json!({"sub": "a", "exp": exp, "aud": "elsewhere"}));
        assert_eq!(jwt.verify(&aud).map(|w| w.role), Ok(Role::User));
        let odd_role = sign(serde_json::json!({"sub": "a", "exp": exp, "role": ["x"]}));
        assert_eq!(jwt.verify(&odd_role).map(|w| w.role), Ok(Role::User));
        let not_yet = sign(serde_json::json!({"sub": "a", "exp": exp, "nbf": exp}));
        assert_eq!(jwt.verify(&not_yet), Err(AuthError::Invalid));
        let empty_sub = sign(serde_json::json!({"sub": "", "exp": exp}));
        assert_eq!(jwt.verify(&empty_sub), Err(AuthError::Invalid));
    }

    #[test]
    fn tickets_are_single_use_and_expire() {
        let t = Tickets::new(Duration::from_millis(30), 8);
        let who = Identity { user_id: "a".into(), role: Role::User };
        let ticket = t.issue(who.clone()).unwrap();
        assert!(ticket.len() >= 22);
        assert_eq!(t.redeem(&ticket), Ok(who.clone()));
        assert_eq!(t.redeem(&ticket), Err(AuthError::BadTicket));
        let late = t.issue(who).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(t.redeem(&late), Err(AuthError::BadTicket));
    }

    #[test]
    fn tickets_per_user_are_capped_and_expiry_purges_the_queue() {
        let t = Tickets::new(Duration::from_millis(30), 3);
        let a = Identity { user_id: "a".into(), role: Role::User };
        let b = Identity { user_id: "b".into(), role: Role::User };
        let held: Vec<String> = (0..3).map(|_| t.issue(a.clone()).unwrap()).collect();
        assert_eq!(t.issue(a.clone()), Err(TooManyTickets(3)));
        assert!(t.issue(b.clone()).is_ok(), "another user is not affected");
        // Redeeming one frees a place.
        assert_eq!(t.redeem(&held[0]), Ok(a.clone()));
        assert!(t.issue(a.clone()).is_ok());
        // After the TTL, the next issue purges everything expired: the queue does not grow.
        std::thread::sleep(Duration::from_millis(40));
        assert!(t.issue(a.clone()).is_ok());
        assert_eq!(t.queued(), 1);
        for _ in 0..2 {
            assert!(t.issue(a.clone()).is_ok());
        }
        assert_eq!(t.issue(a), Err(TooManyTickets(3)));
    }

    #[test]
    fn crit_headers_and_long_subjects_are_refused() {
        let jwt = Jwt::new("s");
        let exp = unix_now() + 60;
        let mut header = Header::new(Algorithm::HS256);
        header.cty = None;
        let with_crit = {
            let head = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(br#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#);
            let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"a","exp":{exp}}}"#));
            let signing = format!("{head}.{body}");
            let sig = jsonwebtoken::crypto::sign(signing.as_bytes(), &EncodingKey::from_secret(b"s"), Algorithm::HS256)
                .unwrap();
            format!("{signing}.{sig}")
        };
        assert_eq!(jwt.verify(&with_crit), Err(AuthError::Invalid));
        let long = jsonwebtoken::encode(
            &header,
            &serde_json::json!({"sub": "x".repeat(MAX_SUB_BYTES + 1), "exp": exp}),
            &EncodingKey::from_secret(b"s"),
        )
        .unwrap();
        assert_eq!(jwt.verify(&long), Err(AuthError::Invalid));
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(None), None);
    }
}
