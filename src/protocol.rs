//! Wire types of the resock protocol (`docs/PROTOCOL.md`), shared by the SDK and the fixture server.
//!
//! Every frame is one JSON object `{"type": str, "payload": object?, "id": str?, "seq": int?}`.
//! This module holds the typed payloads, the message enums and the close-code table. It depends
//! on `serde` only (no `serde_json`), so it compiles natively and to wasm32 alike: the payload of
//! an application-defined message is a type parameter `D` (`serde_json::Value` on a server,
//! a JS value or your own type in a browser).
//!
//! Decoding is two-step, because the envelope's `type` decides the payload's shape and unknown
//! types must not fail: read the envelope's `type`, then call [`ClientMessage::decode`] or
//! [`ServerMessage::decode`] with a deserializer over the `payload`.

use alloc::string::String;
use alloc::vec::Vec;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Longest room name, in characters.
pub const MAX_ROOM_NAME_LEN: usize = 64;

/// True when `name` is a valid room name: 1–64 characters of `[A-Za-z0-9_.:-]`.
pub fn is_valid_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROOM_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// An empty payload object, `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `welcome`: the first message on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub user_id: String,
    pub connection_id: String,
    pub heartbeat_ms: u64,
    /// Names the generation of the user's history: an opaque string.
    pub epoch: String,
    /// The last seq assigned in this epoch (0 before the first message).
    pub seq: u64,
}

/// The payload of `join`, `leave` and `left`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRef {
    pub room: String,
}

/// The payload of `joined`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    pub room: String,
    pub members: u64,
}

/// The payload of a client's `room_message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSend<D> {
    pub room: String,
    pub data: D,
}

/// The payload of a `room_message` the server delivers to the other members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomMessage<D> {
    pub room: String,
    pub from: String,
    pub data: D,
}

/// The payload of `resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub epoch: String,
    pub since: u64,
}

/// The payload of `resumed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    pub replayed: u64,
    /// False when the history no longer reaches `since + 1`, or the epoch was wrong.
    pub complete: bool,
}

/// A stored notification, as in `new_notification` and `GET /api/notifications`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: u64,
    pub title: String,
    pub body: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub read: bool,
}

/// The payload of `notification_read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRead {
    pub notification_ids: Vec<u64>,
}

/// The payload of `task_update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUpdate<D> {
    pub action: String,
    pub task: D,
}

/// The server's error codes: one table, from which the enum and its wire names are made.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = $code:literal;)*) => {
        /// The error codes a server sends in an `error` message. The client keeps them apart from
        /// its own (`core::ErrorKind::Server`), and as strings: codes added later still parse.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),*];

            /// The code as it stands on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $code,)*
                }
            }
        }
    };
}

error_codes! {
    /// The frame was not a JSON object.
    BadJson = "bad_json";
    /// The `type` is not one the server handles.
    UnknownType = "unknown_type";
    /// The payload lacks a field or has a wrong one (a bad room name, say).
    BadPayload = "bad_payload";
    /// Over the rate limit: the message was refused.
    RateLimited = "rate_limited";
    /// A `room_message` to a room this connection has not joined.
    NotMember = "not_member";
    /// The connection is in as many rooms as it may be.
    RoomLimit = "room_limit";
    /// Not allowed for this user.
    Forbidden = "forbidden";
}

/// The payload of `error`. `code` stays a string so that codes added later still parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientMessage<D> {
    Pong,
    Ping,
    Join(RoomRef),
    Leave(RoomRef),
    /// Asks for the room's member count now and whenever it changes (`presence` messages).
    Presence(RoomRef),
    RoomMessage(RoomSend<D>),
    Resume(Resume),
    /// Any other type: a server may answer `unknown_type`.
    Custom {
        kind: String,
        payload: D,
    },
}

/// Messages a server sends.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerMessage<D> {
    Welcome(Welcome),
    Ping,
    Pong,
    Joined(Joined),
    Left(RoomRef),
    /// A room's member count: the answer to a `presence` request, then whenever it changes.
    Presence(Joined),
    RoomMessage(RoomMessage<D>),
    Ack,
    Error(ErrorBody),
    Resumed(Resumed),
    NewNotification(Notification),
    NotificationRead(NotificationRead),
    AllRead,
    TaskUpdate(TaskUpdate<D>),
    /// A type this version does not know: servers add types before clients learn them.
    Unknown {
        kind: String,
        payload: D,
    },
}

impl<D: DeserializeOwned> ClientMessage<D> {
    /// Decodes the payload of a client frame whose envelope `type` is `kind`.
    /// A `kind` this protocol does not name becomes [`ClientMessage::Custom`].
    pub fn decode<'de, Z: Deserializer<'de>>(kind: &str, payload: Z) -> Result<Self, Z::Error> {
        Ok(match kind {
            "pong" => {
                IgnoredAny::deserialize(payload)?;
                ClientMessage::Pong
            }
            "ping" => {
                IgnoredAny::deserialize(payload)?;
                ClientMessage::Ping
            }
            "join" => ClientMessage::Join(RoomRef::deserialize(payload)?),
            "leave" => ClientMessage::Leave(RoomRef::deserialize(payload)?),
            "presence" => ClientMessage::Presence(RoomRef::deserialize(payload)?),
            "room_message" => ClientMessage::RoomMessage(RoomSend::deserialize(payload)?),
            "resume" => ClientMessage::Resume(Resume::deserialize(payload)?),
            other => ClientMessage::Custom { kind: other.into(), payload: D::deserialize(payload)? },
        })
    }
}

impl<D> ClientMessage<D> {
    /// The envelope `type` of this message.
    pub fn kind(&self) -> &str {
        match self {
            ClientMessage::Pong => "pong",
            ClientMessage::Ping => "ping",
            ClientMessage::Join(_) => "join",
            ClientMessage::Leave(_) => "leave",
            ClientMessage::Presence(_) => "presence",
            ClientMessage::RoomMessage(_) => "room_message",
            ClientMessage::Resume(_) => "resume",
            ClientMessage::Custom { kind, .. } => kind,
        }
    }
}

impl<D: DeserializeOwned> ServerMessage<D> {
    /// Decodes the payload of a server frame whose envelope `type` is `kind`.
    /// A `kind` this version does not know becomes [`ServerMessage::Unknown`], never an error.
    pub fn decode<'de, Z: Deserializer<'de>>(kind: &str, payload: Z) -> Result<Self, Z::Error> {
        Ok(match kind {
            "welcome" => ServerMessage::Welcome(Welcome::deserialize(payload)?),
            "ping" => {
                IgnoredAny::deserialize(payload)?;
                ServerMessage::Ping
            }
            "pong" => {
                IgnoredAny::deserialize(payload)?;
                ServerMessage::Pong
            }
            "joined" => ServerMessage::Joined(Joined::deserialize(payload)?),
            "left" => ServerMessage::Left(RoomRef::deserialize(payload)?),
            "presence" => ServerMessage::Presence(Joined::deserialize(payload)?),
            "room_message" => ServerMessage::RoomMessage(RoomMessage::deserialize(payload)?),
            "ack" => {
                IgnoredAny::deserialize(payload)?;
                ServerMessage::Ack
            }
            "error" => ServerMessage::Error(ErrorBody::deserialize(payload)?),
            "resumed" => ServerMessage::Resumed(Resumed::deserialize(payload)?),
            "new_notification" => ServerMessage::NewNotification(Notification::deserialize(payload)?),
            "notification_read" => ServerMessage::NotificationRead(NotificationRead::deserialize(payload)?),
            "all_read" => {
                IgnoredAny::deserialize(payload)?;
                ServerMessage::AllRead
            }
            "task_update" => ServerMessage::TaskUpdate(TaskUpdate::deserialize(payload)?),
            other => ServerMessage::Unknown { kind: other.into(), payload: D::deserialize(payload)? },
        })
    }
}

impl<D> ServerMessage<D> {
    /// The envelope `type` of this message.
    pub fn kind(&self) -> &str {
        match self {
            ServerMessage::Welcome(_) => "welcome",
            ServerMessage::Ping => "ping",
            ServerMessage::Pong => "pong",
            ServerMessage::Joined(_) => "joined",
            ServerMessage::Left(_) => "left",
            ServerMessage::Presence(_) => "presence",
            ServerMessage::RoomMessage(_) => "room_message",
            ServerMessage::Ack => "ack",
            ServerMessage::Error(_) => "error",
            ServerMessage::Resumed(_) => "resumed",
            ServerMessage::NewNotification(_) => "new_notification",
            ServerMessage::NotificationRead(_) => "notification_read",
            ServerMessage::AllRead => "all_read",
            ServerMessage::TaskUpdate(_) => "task_update",
            ServerMessage::Unknown { kind, .. } => kind,
        }
    }
}

/// Who a server message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The client's own business: `welcome`, `ping`, `pong`, `resumed`.
    Client,
    /// The answer to a frame the client sent (`joined`, `left`, `ack`, `error`): it settles
    /// that frame's promise, or is reported as an error.
    Reply,
    /// Delivered to the application's `message` event: room messages.
    Room,
    /// Delivered to the application too, with a `seq`, and replayed by `resume`.
    UserStream,
}

/// Every message type a server sends, in the order of [`ServerMessage`]: the one list of them
/// (`bindings.d.ts` names the same; the contract test compares them).
pub const SERVER_TYPES: [(&str, Audience); 14] = [
    ("welcome", Audience::Client),
    ("ping", Audience::Client),
    ("pong", Audience::Client),
    ("joined", Audience::Reply),
    ("left", Audience::Reply),
    ("room_message", Audience::Room),
    ("presence", Audience::Room),
    ("ack", Audience::Reply),
    ("error", Audience::Reply),
    ("resumed", Audience::Client),
    ("new_notification", Audience::UserStream),
    ("notification_read", Audience::UserStream),
    ("all_read", Audience::UserStream),
    ("task_update", Audience::UserStream),
];

/// Who a message of type `kind` is for; `None` for a type this version does not know.
pub fn audience(kind: &str) -> Option<Audience> {
    SERVER_TYPES.iter().find(|(t, _)| *t == kind).map(|(_, a)| *a)
}

/// True for the user-stream message types: `new_notification`, `notification_read`,
/// `all_read` and `task_update`.
pub fn is_user_stream_kind(kind: &str) -> bool {
    audience(kind) == Some(Audience::UserStream)
}

/// True for the types the application's `message` event delivers and this version knows (room
/// messages and the user stream).
pub fn is_app_kind(kind: &str) -> bool {
    matches!(audience(kind), Some(Audience::Room | Audience::UserStream))
}

/// Serializes the payload of a message alone (the `payload` field of its envelope).
pub struct PayloadOf<'a, M>(pub &'a M);

impl<D: Serialize> Serialize for PayloadOf<'_, ServerMessage<D>> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ServerMessage::Welcome(p) => p.serialize(s),
            ServerMessage::Ping | ServerMessage::Pong | ServerMessage::Ack | ServerMessage::AllRead => {
                Empty {}.serialize(s)
            }
            ServerMessage::Joined(p) | ServerMessage::Presence(p) => p.serialize(s),
            ServerMessage::Left(p) => p.serialize(s),
            ServerMessage::RoomMessage(p) => p.serialize(s),
            ServerMessage::Error(p) => p.serialize(s),
            ServerMessage::Resumed(p) => p.serialize(s),
            ServerMessage::NewNotification(p) => p.serialize(s),
            ServerMessage::NotificationRead(p) => p.serialize(s),
            ServerMessage::TaskUpdate(p) => p.serialize(s),
            ServerMessage::Unknown { payload, .. } => payload.serialize(s),
        }
    }
}

impl<D: Serialize> Serialize for PayloadOf<'_, ClientMessage<D>> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ClientMessage::Pong | ClientMessage::Ping => Empty {}.serialize(s),
            ClientMessage::Join(p) | ClientMessage::Leave(p) | ClientMessage::Presence(p) => p.serialize(s),
            ClientMessage::RoomMessage(p) => p.serialize(s),
            ClientMessage::Resume(p) => p.serialize(s),
            ClientMessage::Custom { payload, .. } => payload.serialize(s),
        }
    }
}

/// A whole frame ready to serialize: `{"type", "payload", "id"?, "seq"?}`.
pub struct Frame<'a, M> {
    pub message: &'a M,
    pub id: Option<&'a str>,
    pub seq: Option<u64>,
}

impl<'a, M> Frame<'a, M> {
    pub fn new(message: &'a M) -> Self {
        Frame { message, id: None, seq: None }
    }
    pub fn with_id(mut self, id: Option<&'a str>) -> Self {
        self.id = id;
        self
    }
    pub fn with_seq(mut self, seq: Option<u64>) -> Self {
        self.seq = seq;
        self
    }
}

macro_rules! frame_serialize {
    ($msg:ident) => {
        impl<D: Serialize> Serialize for Frame<'_, $msg<D>> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let len = 2 + usize::from(self.id.is_some()) + usize::from(self.seq.is_some());
                let mut map = s.serialize_map(Some(len))?;
                map.serialize_entry("type", self.message.kind())?;
                map.serialize_entry("payload", &PayloadOf(self.message))?;
                if let Some(id) = self.id {
                    map.serialize_entry("id", id)?;
                }
                if let Some(seq) = self.seq {
                    map.serialize_entry("seq", &seq)?;
                }
                map.end()
            }
        }
    };
}
frame_serialize!(ServerMessage);
frame_serialize!(ClientMessage);

/// The close codes: one table, from which the enum and both conversions are made.
macro_rules! close_codes {
    ($($(#[$doc:meta])* $name:ident = $code:literal;)*) => {
        /// WebSocket close codes the protocol uses, as an enum rather than bare integers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum CloseCode {
            $($(#[$doc])* $name,)*
            /// Any other code.
            Other(u16),
        }

        impl CloseCode {
            /// Every named code, in table order.
            pub const ALL: &'static [CloseCode] = &[$(CloseCode::$name),*];

            pub fn from_u16(code: u16) -> Self {
                match code {
                    $($code => CloseCode::$name,)*
                    other => CloseCode::Other(other),
                }
            }

            pub const fn as_u16(self) -> u16 {
                match self {
                    $(CloseCode::$name => $code,)*
                    CloseCode::Other(code) => code,
                }
            }
        }
    };
}

close_codes! {
    /// 1000: closed on purpose (by the client, or replaced by a newer connection).
    Normal = 1000;
    /// 1001: pong timeout, idle timeout or server shutdown.
    GoingAway = 1001;
    /// 1003: a binary frame.
    Unsupported = 1003;
    /// 1006: the connection was lost without a close frame (never sent on the wire).
    Abnormal = 1006;
    /// 1007: a text frame that is not UTF-8.
    InvalidPayload = 1007;
    /// 1008: a policy violation: too many refused messages, or a client too slow to read.
    Policy = 1008;
    /// 1009: a message over the size limit.
    TooBig = 1009;
    /// 1011: a server fault.
    ServerError = 1011;
    /// 1013: too many connections (global or per user): try again later.
    TryAgainLater = 1013;
    /// 4000: sent by the client when it drops a connection it believes dead (no frame for
    /// heartbeat + grace, a failed probe) or an attempt that took too long.
    Liveness = 4000;
    /// 4001: bad, missing, expired or reused credentials.
    Unauthorized = 4001;
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode::from_u16(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.as_u16()
    }
}

/// The close reason the server sends with 1000 in single-connection mode.
pub const REASON_REPLACED: &str = "Replaced by new connection";
/// The close reason the server sends with 4001.
pub const REASON_UNAUTHORIZED: &str = "Unauthorized";
