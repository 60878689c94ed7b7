//! Client-supplied text on its way into replies and logs: clipped, so that an error reply never
//! costs much more than the request it answers, and escaped, so that a user id cannot forge a
//! log line.

use std::fmt;

/// The longest message an error reply carries, in bytes.
pub const MAX_MESSAGE: usize = 200;

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn clip_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An error message cut to [`MAX_MESSAGE`] bytes, with `…` where it was cut.
pub fn clip(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let keep = clip_str(&message, MAX_MESSAGE - '…'.len_utf8()).len();
        message.truncate(keep);
        message.push('…');
    }
    message
}

/// Shows a client-chosen string in a log line: bare when it is plain (letters, digits and
/// `_.:@-`), otherwise quoted with Rust's escapes (a newline cannot start a forged line); at most
/// 64 characters, then `…`.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = clip_str(self.0, 64);
        let more = if shown.len() < self.0.len() { "…" } else { "" };
        let plain = !shown.is_empty()
            && shown.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '@' | '-'));
        if plain {
            write!(f, "{shown}{more}")
        } else {
            write!(f, "{shown:?}{more}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_at_char_boundaries() {
        assert_eq!(clip_str("héllo", 2), "h");
        assert_eq!(clip_str("abc", 5), "abc");
        let long = clip("é".repeat(500));
        assert!(long.len() <= MAX_MESSAGE && long.ends_with('…'));
        assert_eq!(clip("short".into()), "short");
    }

    #[test]
    fn escapes_what_could_forge_a_log_line() {
        assert_eq!(Esc("alice").to_string(), "alice");
        let forged = Esc("x opened\n[resock-fixture] conn c1 user=admin").to_string();
        assert!(!forged.contains('\n') && forged.starts_with('"'), "{forged}");
        assert!(Esc(&"a".repeat(100)).to_string().ends_with('…'));
    }
}
