//! The few frames the machine writes itself, built without `serde_json` or `core::fmt`
//! (both would weigh on the wasm build).

use alloc::string::String;

use super::types::Id;

pub const PONG: &str = r#"{"type":"pong","payload":{}}"#;

/// Appends the decimal digits of `n`.
pub fn push_u64(out: &mut String, n: u64) {
    let mut unit = 1;
    while n / unit >= 10 {
        unit *= 10;
    }
    while unit > 0 {
        out.push(char::from(b'0' + (n / unit % 10) as u8));
        unit /= 10;
    }
}

/// Decimal digits of `n`.
pub fn u64_to_string(n: u64) -> String {
    let mut s = String::new();
    push_u64(&mut s, n);
    s
}

/// Keys of ids the application chose that are not numbers (see [`parse_id`]) have this bit set:
/// the machine's own ids stay below 2⁵³, the decimal ids read by [`parse_id`] below 10¹⁸.
pub const APP_ID: Id = 1 << 63;

/// The id a frame's `id` string names when it is a number as the client writes ids: 1 to 18
/// decimal digits, no leading zero. Any other string (`"0123"`, `"mine"`) is `None`.
pub fn parse_id(s: &str) -> Option<Id> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 18 || matches!(b, [b'0', _, ..]) {
        return None;
    }
    let mut n: Id = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + Id::from(d);
    }
    Some(n)
}

/// The frame id `id` as a JSON string literal: `"123"`.
fn push_id(out: &mut String, id: Id) {
    out.push('"');
    push_u64(out, id);
    out.push('"');
}

/// `text` (a JSON object as `JSON.stringify` or serde write it: `{` first, no blanks) with
/// `"id": "<id>"` added first.
pub fn with_id(text: &str, id: Id) -> String {
    let rest = text.get(1..).unwrap_or("}");
    let mut s = String::with_capacity(text.len() + 30);
    s.push_str(r#"{"id":"#);
    push_id(&mut s, id);
    if rest.as_bytes().first() != Some(&b'}') {
        s.push(',');
    }
    s.push_str(rest);
    s
}

/// A `ping` with an id: its `pong` carries the id back.
pub fn ping(id: Id) -> String {
    with_id(r#"{"type":"ping","payload":{}}"#, id)
}

/// Joins string pieces.
pub fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// Appends `value` as a JSON string literal (quoted and escaped).
pub fn push_json_str(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let b = c as u32 as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX.get(b >> 4).copied().unwrap_or(b'0')));
                out.push(char::from(HEX.get(b & 15).copied().unwrap_or(b'0')));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn room_frame(kind: &str, id: Id, room: &str) -> String {
    let mut s = concat(&[r#"{"type":""#, kind, r#"","id":"#]);
    push_id(&mut s, id);
    s.push_str(r#","payload":{"room":"#);
    push_json_str(&mut s, room);
    s.push_str("}}");
    s
}

pub fn join(id: Id, room: &str) -> String {
    room_frame("join", id, room)
}

pub fn leave(id: Id, room: &str) -> String {
    room_frame("leave", id, room)
}

/// `resumed {complete: false}` for `id`: a leader over SSE cannot replay for a follower.
pub fn resumed_incomplete(id: &str) -> String {
    let mut s = String::from(r#"{"type":"resumed","id":"#);
    push_json_str(&mut s, id);
    s.push_str(r#","payload":{"replayed":0,"complete":false}}"#);
    s
}

/// The server's answer to a `leave`, as a leader sharing its socket answers it itself.
pub fn left(id: &str, room: &str) -> String {
    let mut s = String::from(r#"{"type":"left","id":"#);
    push_json_str(&mut s, id);
    s.push_str(r#","payload":{"room":"#);
    push_json_str(&mut s, room);
    s.push_str("}}");
    s
}

pub fn resume(id: Id, epoch: &str, since: u64) -> String {
    let mut s = String::from(r#"{"type":"resume","id":"#);
    push_id(&mut s, id);
    s.push_str(r#","payload":{"epoch":"#);
    push_json_str(&mut s, epoch);
    s.push_str(r#","since":"#);
    push_u64(&mut s, since);
    s.push_str("}}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        for n in [0, 7, 10, 99, 12_345, u64::MAX] {
            assert_eq!(u64_to_string(n), n.to_string());
        }
    }

    #[test]
    fn ids_read_back_as_written() {
        for n in [0, 7, 10, 123_456, (1 << 53) + 1, 999_999_999_999_999_999] {
            assert_eq!(parse_id(&u64_to_string(n)), Some(n));
        }
        for s in [
            "",
            "0123",
            "00",
            "-1",
            "+1",
            "1.0",
            "1e3",
            " 1",
            "mine",
            "1000000000000000000",
            "99999999999999999999",
            "1/",
            "1:",
        ] {
            assert_eq!(parse_id(s), None, "{s}");
        }
    }

    #[test]
    fn frames_are_valid_json() {
        let v: serde_json::Value = serde_json::from_str(&resume(3, "ep\"o\\ch\n\u{1}", 42)).unwrap();
        assert_eq!(v["payload"]["epoch"], "ep\"o\\ch\n\u{1}");
        assert_eq!(v["payload"]["since"], 42);
        assert_eq!(v["id"], "3");
        let v: serde_json::Value = serde_json::from_str(&join(1, "general")).unwrap();
        assert_eq!(v, serde_json::json!({"type": "join", "id": "1", "payload": {"room": "general"}}));
        let v: serde_json::Value = serde_json::from_str(&leave(2, "a:b")).unwrap();
        assert_eq!(v["type"], "leave");
        for s in [&ping(7), PONG, &left("k\"1", "r")] {
            serde_json::from_str::<serde_json::Value>(s).unwrap();
        }
        let v: serde_json::Value = serde_json::from_str(&with_id(r#"{"type":"x","payload":[1]}"#, u64::MAX)).unwrap();
        assert_eq!(v, serde_json::json!({"id": "18446744073709551615", "type": "x", "payload": [1]}));
        let v: serde_json::Value = serde_json::from_str(&with_id("{}", 1)).unwrap();
        assert_eq!(v, serde_json::json!({"id": "1"}));
    }
}
