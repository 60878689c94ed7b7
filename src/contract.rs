//! The contract between the code's vocabularies and `bindings.d.ts`: each literal union the
//! TypeScript declarations spell out is compared with the one table it must match. A message
//! type, error code, state, resync reason or event name added on one side only fails here.

use std::collections::BTreeSet;

use crate::core::types::EVENT_NAMES;
use crate::core::{ErrorKind, ResyncReason, State};
use crate::protocol::{is_app_kind, SERVER_TYPES};

const DTS: &str = include_str!("bindings.d.ts");
const FAST_JS: &str = include_str!("web/fast.js");

/// The text from `start` to the first `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("bindings.d.ts has no `{start}`")) + start.len();
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap_or_else(|| panic!("no `{end}` after `{start}`"))]
}

/// Every `"literal"` in `text`.
fn literals(text: &str) -> BTreeSet<String> {
    text.split('"').skip(1).step_by(2).map(String::from).collect()
}

fn set<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    items.into_iter().map(String::from).collect()
}

/// The `T` of `export type NAME... = Envelope<"T", ...>`.
fn envelope_type(name: &str) -> String {
    let decl = between(DTS, &format!("export type {name}"), "\n");
    literals(between(decl, "Envelope<", ",")).into_iter().next().unwrap_or_else(|| panic!("{name} is no Envelope"))
}

#[test]
fn the_message_event_union_names_the_app_types() {
    let union = between(DTS, "export type ServerMessage =", ";");
    let names: Vec<&str> = union.split('|').map(str::trim).filter(|n| !n.is_empty()).collect();
    let dts: BTreeSet<String> = names.iter().map(|n| envelope_type(n)).collect();
    let code = set(SERVER_TYPES.iter().map(|(t, _)| *t).filter(|t| is_app_kind(t)));
    assert_eq!(dts, code, "ServerMessage in bindings.d.ts vs protocol::SERVER_TYPES (Room, UserStream)");
}

#[test]
fn every_envelope_in_the_declarations_is_a_server_type() {
    let code = set(SERVER_TYPES.iter().map(|(t, _)| *t));
    for decl in DTS.split("Envelope<\"").skip(1) {
        let t = &decl[..decl.find('"').unwrap_or(0)];
        assert!(code.contains(t), "bindings.d.ts declares Envelope<\"{t}\">, not in protocol::SERVER_TYPES");
    }
}

#[test]
fn the_error_code_union_is_the_error_kind_table() {
    let union = between(DTS, "export interface ResockError {\n  code:", "(string & {})");
    let code = set(ErrorKind::ALL.iter().map(|k| k.code()));
    assert_eq!(literals(union), code, "ResockError.code in bindings.d.ts vs core::ErrorKind::ALL");
}

#[test]
fn states_resync_reasons_and_event_names_match() {
    let states = literals(between(DTS, "export type ConnectionState =", ";"));
    assert_eq!(states, set(State::ALL.iter().map(|s| s.as_str())), "ConnectionState");
    let reasons = literals(between(DTS, "export interface ResyncEvent {", "}"));
    assert_eq!(reasons, set(ResyncReason::ALL.iter().map(|r| r.as_str())), "ResyncEvent.reason");
    let events: BTreeSet<String> = between(DTS, "export interface ClientEvents {", "}")
        .lines()
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.to_string()))
        .collect();
    assert_eq!(events, set(EVENT_NAMES), "ClientEvents");
}

/// `fast.js` writes out the core's special message types and event names, in their order.
#[test]
fn fast_js_lists_the_cores_types_and_events() {
    let types: Vec<&str> = crate::core::classify::Special::ALL.iter().map(|s| s.as_str()).collect();
    let line = format!("const types = \"{}\".split(\" \");", types.join(" "));
    assert!(FAST_JS.contains(&line), "fast.js needs `{line}`");
    let line = format!("const events = \"{}\".split(\" \");", EVENT_NAMES.join(" "));
    assert!(FAST_JS.contains(&line), "fast.js needs `{line}`");
}

/// `fast.js` lists the types `isKnownMessage` knows: `SERVER_TYPES`' room and user-stream ones.
#[test]
fn fast_js_lists_the_app_types() {
    let line = between(FAST_JS, "const appTypes = \"", "\"");
    assert_eq!(set(line.split(' ')), set(SERVER_TYPES.iter().map(|(t, _)| *t).filter(|t| is_app_kind(t))));
}
