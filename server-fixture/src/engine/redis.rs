//! The Redis engine (`--redis redis://HOST:PORT`): several instances share tickets, user streams,
//! the notification store, room-message dedupe and fan-out through one Redis.
//!
//! Keys (all under `resock:`):
//! - `s:{user}` a hash `{epoch, seq}` and `x:{user}` a Redis stream of the user's frames with
//!   entry ids `{seq}-1`, trimmed to `--history`. Every append is one Lua script (next seq,
//!   XADD, PUBLISH), so two instances posting for the same user never reuse, skip or reorder a
//!   seq. The epoch is drawn when the hash is created: if Redis loses it (restart without
//!   persistence, FLUSHALL, eviction, or `--stream-ttl-ms` without use) the next append or
//!   welcome starts a new epoch and resumes answer `complete: false`, never a silent gap. Both
//!   keys expire after `--stream-ttl-ms`; each instance refreshes those of its connected users.
//! - `t:{ticket}` the ticket's user (SET PX, taken with GETDEL: once, whatever the race) and
//!   `tu:{user}` a sorted set of the user's live tickets, for `--max-tickets-per-user`.
//! - `n:{user}` the user's notifications (a list of JSON, trimmed to `--store-max`) and `nid` the
//!   id counter; a change and its push are one script, so seqs follow the order of changes.
//! - `m:{user}:{hash of the frame id}` a room-message id seen in the last 10 minutes.
//!
//! Channels: `u:{user}` (`{epoch}\n{frame}`: a connection welcomed in another epoch is closed
//! 1012, so it reconnects and learns of the gap), `r:{room}` (`{instance} {conn}\n{frame}`: the
//! sending connection is skipped on its own instance), `all` (`{exclude_user}\n{frame}`). An
//! instance subscribes to a user's channel at the user's first local connection or SSE stream,
//! and to a room's at its first local member, and unsubscribes at the last: at 100 000 users
//! spread over N instances, each instance holds about 100 000 / N subscriptions, and a message
//! reaches only the instances that have its user or room.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushKind, Script, ScriptInvocation, Value as RValue};
use resock::protocol::{Notification, ServerMessage};
use serde_json::Value;
use tokio::sync::Mutex;

use super::memory::{id_hash, StreamLimits};
use super::{
    payload_json, queue_resume, Applied, Engine, EngineError, EngineFuture, Found, Health, RecordAction, RecordId,
    ResumeResult,
};
use crate::auth::{Identity, Role};
use crate::hub::{new_epoch, ConnId, Hub, Kill, StreamItem, STREAM_RESET_REASON};
use crate::log;

/// What the Redis engine needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct RedisSettings {
    pub streams: StreamLimits,
    pub max_connections_per_user: usize,
    pub ticket_ttl: Duration,
    pub max_tickets: usize,
    pub store_max: usize,
}

/// How long a room-message id is remembered for dedupe.
const DEDUPE_MS: u64 = 600_000;

pub struct RedisEngine {
    hub: Arc<Hub>,
    cmd: ConnectionManager,
    subs: Mutex<Subscriptions>,
    settings: RedisSettings,
    /// This instance's name in room-message payloads (random per start).
    instance: String,
    /// The last command reached Redis.
    up: AtomicBool,
    /// The subscription connection is up (false from a disconnect until it is renewed).
    subscribed: Arc<AtomicBool>,
    scripts: Scripts,
}

struct Subscriptions {
    conn: ConnectionManager,
    channels: HashSet<String>,
}

struct Scripts {
    append: Script,
    welcome: Script,
    history: Script,
    notify: Script,
    mark_read: Script,
    mark_all: Script,
    issue: Script,
    room: Script,
    count: Script,
    uncount: Script,
    append_once: Script,
    notify_once: Script,
    room_once: Script,
}

/// `body` run only for a record not applied yet: the last KEYS is the partition's applied-offset
/// key, the last ARGV the record's offset; the check, the change and the new offset are one step.
fn once(body: &str) -> Script {
    Script::new(&format!(
        r#"{APPEND_FN}
local done = redis.call('GET', KEYS[#KEYS])
if done and tonumber(ARGV[#ARGV]) <= tonumber(done) then return 'duplicate' end
local function body()
{body}
end
body()
redis.call('SET', KEYS[#KEYS], ARGV[#ARGV])
return 'done'
"#
    ))
}

/// Appends a message to a user's stream (KEYS[1] the hash, KEYS[2] the stream; ARGV: channel,
/// new epoch, history, ttl ms, kind, payload). Shared by every script that pushes.
const APPEND_FN: &str = r#"
local function append(skey, xkey, chan, epoch, hist, ttl, kind, payload)
  local e = redis.call('HGET', skey, 'epoch')
  if not e then
    e = epoch
    redis.call('DEL', xkey)
    redis.call('HSET', skey, 'epoch', e, 'seq', 0)
  end
  local seq = redis.call('HINCRBY', skey, 'seq', 1)
  local frame = '{"type":"' .. kind .. '","payload":' .. payload .. ',"seq":' .. seq .. '}'
  redis.call('XADD', xkey, 'MAXLEN', hist, seq .. '-1', 'f', frame)
  redis.call('PEXPIRE', skey, ttl)
  redis.call('PEXPIRE', xkey, ttl)
  redis.call('PUBLISH', chan, e .. '\n' .. frame)
  return seq
end
"#;

const APPEND_BODY: &str = "return append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])";

const NOTIFY_BODY: &str = r#"
local id = redis.call('INCR', KEYS[4])
local n = cjson.encode({id = id, title = ARGV[5], body = ARGV[6], created_at = ARGV[7], read = false})
redis.call('RPUSH', KEYS[3], n)
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[8]), -1)
append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'new_notification', n)
return n
"#;

fn scripts() -> Scripts {
    let with_append = |body: &str| Script::new(&format!("{APPEND_FN}{body}"));
    Scripts {
        append_once: once(APPEND_BODY),
        notify_once: once(NOTIFY_BODY),
        room_once: once("redis.call('PUBLISH', ARGV[1], ARGV[2])"),
        append: with_append(APPEND_BODY),
        welcome: Script::new(
            r#"
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', 0)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return redis.call('HMGET', KEYS[1], 'epoch', 'seq')
"#,
        ),
        // {epoch|false, seq, oldest stored seq (0: none), frames after ARGV[1]...}
        history: Script::new(
            r#"
local h = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
if not h[1] then return {false} end
local out = {h[1], h[2], '0'}
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if first[1] then out[3] = string.match(first[1][1], '^(%d+)') end
for _, e in ipairs(redis.call('XRANGE', KEYS[2], '(' .. ARGV[1] .. '-1', '+')) do
  out[#out + 1] = e[2][2]
end
return out
"#,
        ),
        notify: with_append(NOTIFY_BODY),
        mark_read: with_append(
            r#"
local list = redis.call('LRANGE', KEYS[3], 0, -1)
local at = {}
for i, raw in ipairs(list) do at[cjson.decode(raw).id] = i end
local marked, seen = {}, {}
for _, id in ipairs(cjson.decode(ARGV[5])) do
  local i = at[id]
  if i and not seen[id] then
    seen[id] = true
    local n = cjson.decode(list[i])
    n.read = true
    redis.call('LSET', KEYS[3], i - 1, cjson.encode(n))
    marked[#marked + 1] = id
  end
end
if #marked == 0 then return '[]' end
local ids = cjson.encode(marked)
append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'notification_read', '{"notification_ids":' .. ids .. '}')
return ids
"#,
        ),
        mark_all: with_append(
            r#"
local count = 0
for i, raw in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  local n = cjson.decode(raw)
  if not n.read then
    n.read = true
    redis.call('LSET', KEYS[3], i - 1, cjson.encode(n))
    count = count + 1
  end
end
if count > 0 then append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'all_read', '{}') end
return count
"#,
        ),
        issue: Script::new(
            r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"#,
        ),
        // Counts a connection of this instance (ARGV[1]) against the per-user cap (ARGV[2]), over
        // the instances that are alive (their `i:` key refreshed every 5 s, kept 15 s).
        count: Script::new(
            r#"
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local total, h = 0, redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  if redis.call('EXISTS', 'resock:i:' .. h[i]) == 1 then total = total + tonumber(h[i + 1])
  else redis.call('HDEL', KEYS[1], h[i]) end
end
if total > tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
  return 0
end
return 1
"#,
        ),
        uncount: Script::new(
            r#"
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
"#,
        ),
        room: Script::new(
            r#"
if ARGV[3] ~= '' and not redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[3]) then return 0 end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"#,
        ),
    }
}

fn key(kind: &str, name: &str) -> String {
    format!("resock:{kind}:{name}")
}

fn unavailable(e: redis::RedisError) -> EngineError {
    EngineError::Unavailable(e.to_string())
}

impl RedisEngine {
    /// Connects (twice: commands, and RESP3 subscriptions that are renewed after a reconnect)
    /// and checks that Redis answers. An unreachable Redis is an error: the server must not
    /// start without the state it shares.
    pub async fn connect(url: &str, hub: Arc<Hub>, settings: RedisSettings) -> Result<RedisEngine, String> {
        let bad = |e: redis::RedisError| format!("--redis {url}: {e}");
        let client = redis::Client::open(url).map_err(bad)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let mut cmd =
            tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager_with_config(config.clone()))
                .await
                .map_err(|_| format!("--redis {url}: no answer within 5 s"))?
                .map_err(bad)?;
        let _: String = redis::cmd("PING").query_async(&mut cmd).await.map_err(bad)?;
        let sub_url = if url.contains('?') { format!("{url}&protocol=resp3") } else { format!("{url}?protocol=resp3") };
        let sub_client = redis::Client::open(sub_url.as_str()).map_err(bad)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let sub_config = config.set_push_sender(tx).set_automatic_resubscription();
        let mut sub = sub_client.get_connection_manager_with_config(sub_config).await.map_err(bad)?;
        sub.subscribe(key("all", "")).await.map_err(bad)?;
        let instance = new_epoch();
        let subscribed = Arc::new(AtomicBool::new(true));
        tokio::spawn(pump(rx, hub.clone(), instance.clone(), subscribed.clone(), sub.clone()));
        let channels = HashSet::from([key("all", "")]);
        // Alive before the first connection is counted (see `alive`).
        let _: () = redis::cmd("SET")
            .arg(key("i", &instance))
            .arg(1)
            .arg("PX")
            .arg(15_000)
            .query_async(&mut cmd)
            .await
            .map_err(bad)?;
        tokio::spawn(alive(cmd.clone(), instance.clone()));
        Ok(RedisEngine {
            hub,
            cmd,
            subs: Mutex::new(Subscriptions { conn: sub, channels }),
            settings,
            instance,
            up: AtomicBool::new(true),
            subscribed,
            scripts: scripts(),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.cmd.clone()
    }

    fn ok<T>(&self, r: redis::RedisResult<T>) -> Result<T, EngineError> {
        self.up.store(r.is_ok() || self.up.load(Ordering::Relaxed), Ordering::Relaxed);
        r.map_err(|e| {
            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal() {
                self.up.store(false, Ordering::Relaxed);
            }
            unavailable(e)
        })
    }

    /// Subscribes this instance to `channel` unless it is already.
    async fn subscribe(&self, channel: String) -> Result<(), EngineError> {
        let mut subs = self.subs.lock().await;
        if subs.channels.contains(&channel) {
            return Ok(());
        }
        let r = subs.conn.subscribe(&channel).await;
        self.ok(r)?;
        subs.channels.insert(channel);
        Ok(())
    }

    /// Unsubscribes from `channel` when `still_used` says no local connection needs it (checked
    /// under the subscription lock, so a connection arriving meanwhile resubscribes after).
    async fn unsubscribe_unless(&self, channel: String, still_used: impl Fn() -> bool) -> Result<(), EngineError> {
        let mut subs = self.subs.lock().await;
        if still_used() || !subs.channels.remove(&channel) {
            return Ok(());
        }
        let r = subs.conn.unsubscribe(&channel).await;
        self.ok(r)
    }

    /// An invocation of a script that appends to `user`'s stream (APPEND_FN): KEYS the stream's
    /// hash and entries (then, with `store`, the user's notification list and the id counter),
    /// ARGV the channel, a new epoch in case the stream is created, the history and the TTL.
    fn on_stream<'s>(&self, script: &'s Script, user: &str, store: bool) -> ScriptInvocation<'s> {
        let limits = self.settings.streams;
        let mut inv = script.key(key("s", user));
        inv.key(key("x", user));
        if store {
            inv.key(key("n", user)).key(key("nid", ""));
        }
        inv.arg(key("u", user)).arg(new_epoch()).arg(limits.history).arg(limits.ttl.as_millis() as u64);
        inv
    }

    /// NOTIFY_BODY's own arguments.
    fn notification_args(&self, inv: &mut ScriptInvocation<'_>, title: &str, body: &str) {
        let created_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        inv.arg(title).arg(body).arg(created_at).arg(self.settings.store_max);
    }

    async fn history(&self, user: &str, since: u64) -> Result<Option<(String, u64, u64, Vec<Arc<str>>)>, EngineError> {
        let r: redis::RedisResult<Vec<RValue>> = self
            .scripts
            .history
            .key(key("s", user))
            .key(key("x", user))
            .arg(since)
            .invoke_async(&mut self.conn())
            .await;
        let mut values = self.ok(r)?.into_iter();
        let text = |v: Option<RValue>| -> Option<String> { redis::from_redis_value(v?).ok() };
        let Some(epoch) = text(values.next()) else { return Ok(None) };
        let seq = text(values.next()).and_then(|s| s.parse().ok()).unwrap_or(0);
        let oldest = text(values.next()).and_then(|s| s.parse().ok()).unwrap_or(0);
        let frames = values.filter_map(|v| text(Some(v))).map(Arc::from).collect();
        Ok(Some((epoch, seq, oldest, frames)))
    }
}

/// Delivers what Redis publishes to this instance's connections.
async fn pump(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
    hub: Arc<Hub>,
    instance: String,
    up: Arc<AtomicBool>,
    sub: ConnectionManager,
) {
    let (users, rooms, all) = (key("u", ""), key("r", ""), key("all", ""));
    while let Some(push) = rx.recv().await {
        match push.kind {
            PushKind::Disconnection => {
                log::info(format_args!("redis: subscription connection lost; reconnecting"));
                up.store(false, Ordering::Relaxed);
                reconnect(sub.clone()).await;
                // Whatever was published meanwhile did not reach this instance: its
                // connections reconnect and resume (exactly once), rather than miss it.
                let n = hub.drop_connections(None, Duration::ZERO, Kill::Close(1012, STREAM_RESET_REASON));
                log::info(format_args!("redis: subscriptions renewed; {n} connections asked to resume (1012)"));
                up.store(true, Ordering::Relaxed);
                continue;
            }
            PushKind::Message => {}
            PushKind::Subscribe => continue,
            _ => continue,
        }
        let mut data = push.data.into_iter();
        let (Some(channel), Some(payload)) = (data.next(), data.next()) else { continue };
        let (Ok(channel), Ok(payload)) =
            (redis::from_redis_value::<String>(channel), redis::from_redis_value::<String>(payload))
        else {
            continue;
        };
        if let Some(user) = channel.strip_prefix(&users) {
            let Some((epoch, frame)) = payload.split_once('\n') else { continue };
            if let Some(item) = StreamItem::parse(Arc::from(frame)) {
                hub.deliver_user(user, Some(epoch), &Arc::new(item));
            }
        } else if let Some(room) = channel.strip_prefix(&rooms) {
            let Some((from, frame)) = payload.split_once('\n') else { continue };
            let except = from
                .split_once(' ')
                .filter(|(inst, _)| *inst == instance)
                .and_then(|(_, conn)| conn.parse::<ConnId>().ok());
            hub.deliver_room(room, &Arc::from(frame), except);
        } else if channel == all {
            let Some((exclude, frame)) = payload.split_once('\n') else { continue };
            hub.deliver_all(&Arc::from(frame), (!exclude.is_empty()).then_some(exclude));
        }
    }
}

/// Keeps this instance's `i:{instance}` key alive (15 s, refreshed every 5 s): connections are
/// counted against the per-user cap only for instances whose key exists, so an instance that
/// died stops counting within 15 s.
async fn alive(mut cmd: ConnectionManager, instance: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let _: redis::RedisResult<()> =
            redis::cmd("SET").arg(key("i", &instance)).arg(1).arg("PX").arg(15_000).query_async(&mut cmd).await;
    }
}

/// Pings the subscription connection until Redis answers (with backoff, 100 ms to 2 s), which
/// reconnects it and renews its subscriptions.
async fn reconnect(mut sub: ConnectionManager) {
    let mut delay = Duration::from_millis(100);
    loop {
        tokio::time::sleep(delay).await;
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut sub).await;
        if pong.is_ok() {
            return;
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

impl Engine for RedisEngine {
    fn issue_ticket(&self, who: Identity) -> EngineFuture<'_, String> {
        Box::pin(async move {
            let ticket = crate::auth::new_ticket();
            let role = if who.role == Role::Service { "service" } else { "user" };
            let r: redis::RedisResult<i64> = self
                .scripts
                .issue
                .key(key("t", &ticket))
                .key(key("tu", &who.user_id))
                .arg(format!("{role}\n{}", who.user_id))
                .arg(self.settings.ticket_ttl.as_millis() as u64)
                .arg(self.settings.max_tickets)
                .invoke_async(&mut self.conn())
                .await;
            match self.ok(r)? {
                1 => Ok(ticket),
                _ => Err(EngineError::TooManyTickets(self.settings.max_tickets)),
            }
        })
    }

    fn redeem_ticket<'a>(&'a self, ticket: &'a str) -> EngineFuture<'a, Identity> {
        Box::pin(async move {
            let tkey = key("t", ticket);
            let r: redis::RedisResult<Option<String>> =
                redis::cmd("GETDEL").arg(&tkey).query_async(&mut self.conn()).await;
            let value = self.ok(r)?.ok_or(EngineError::BadTicket)?;
            let (role, user) = value.split_once('\n').ok_or(EngineError::BadTicket)?;
            let _: redis::RedisResult<i64> =
                redis::cmd("ZREM").arg(key("tu", user)).arg(&tkey).query_async(&mut self.conn()).await;
            let role = if role == "service" { Role::Service } else { Role::User };
            Ok(Identity { user_id: user.to_owned(), role })
        })
    }

    fn welcome<'a>(&'a self, conn: ConnId, user: &'a str, counted: bool) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            if counted {
                let r: redis::RedisResult<i64> = self
                    .scripts
                    .count
                    .key(key("c", user))
                    .arg(&self.instance)
                    .arg(self.settings.max_connections_per_user)
                    .invoke_async(&mut self.conn())
                    .await;
                if self.ok(r)? == 0 {
                    return Err(EngineError::TooManyConnections);
                }
            }
            // Subscribed before the seq is read: every later message reaches this connection
            // (held until the welcome; those the welcome's seq covers are dropped there).
            self.subscribe(key("u", user)).await?;
            let r: redis::RedisResult<(String, u64)> = self
                .scripts
                .welcome
                .key(key("s", user))
                .key(key("x", user))
                .arg(new_epoch())
                .arg(self.settings.streams.ttl.as_millis() as u64)
                .invoke_async(&mut self.conn())
                .await;
            let (epoch, seq) = self.ok(r)?;
            self.hub.welcome(conn, &epoch, seq);
            Ok(())
        })
    }

    fn connection_closed<'a>(&'a self, user: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            let r: redis::RedisResult<i64> =
                self.scripts.uncount.key(key("c", user)).arg(&self.instance).invoke_async(&mut self.conn()).await;
            self.ok(r).map(|_| ())
        })
    }

    fn user_gone<'a>(&'a self, user: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move { self.unsubscribe_unless(key("u", user), || self.hub.has_user(user)).await })
    }

    fn user_watched<'a>(&'a self, user: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move { self.subscribe(key("u", user)).await })
    }

    fn push<'a>(&'a self, user: &'a str, msg: ServerMessage<Value>) -> EngineFuture<'a, u64> {
        Box::pin(async move {
            let mut inv = self.on_stream(&self.scripts.append, user, false);
            inv.arg(msg.kind()).arg(payload_json(&msg));
            let r: redis::RedisResult<u64> = inv.invoke_async(&mut self.conn()).await;
            self.ok(r)
        })
    }

    fn resume<'a>(
        &'a self,
        conn: ConnId,
        user: &'a str,
        epoch: &'a str,
        since: u64,
        reply_id: Option<&'a str>,
    ) -> EngineFuture<'a, ResumeResult> {
        Box::pin(async move {
            let found = match self.history(user, since).await? {
                Some((e, last, oldest, frames)) if e == epoch => {
                    Some(Found { last, oldest: (oldest > 0).then_some(oldest), frames })
                }
                _ => None,
            };
            Ok(queue_resume(&self.hub, conn, found, since, reply_id))
        })
    }

    fn replay<'a>(&'a self, user: &'a str, since: u64) -> EngineFuture<'a, Vec<Arc<StreamItem>>> {
        Box::pin(async move {
            let frames = self.history(user, since).await?.map(|h| h.3).unwrap_or_default();
            Ok(frames.into_iter().filter_map(StreamItem::parse).map(Arc::new).collect())
        })
    }

    fn room_joined<'a>(&'a self, room: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move { self.subscribe(key("r", room)).await })
    }

    fn room_left<'a>(&'a self, room: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move { self.unsubscribe_unless(key("r", room), || self.hub.has_room(room)).await })
    }

    fn room_message<'a>(
        &'a self,
        room: &'a str,
        from: ConnId,
        user: &'a str,
        frame_id: Option<&'a str>,
        frame: Arc<str>,
    ) -> EngineFuture<'a, bool> {
        Box::pin(async move {
            let dedupe = frame_id.map(|id| key("m", &format!("{user}:{:016x}", id_hash(id))));
            let r: redis::RedisResult<i64> = self
                .scripts
                .room
                .key(dedupe.clone().unwrap_or_else(|| key("m", "-")))
                .arg(key("r", room))
                .arg(format!("{} {from}\n{frame}", self.instance))
                .arg(if dedupe.is_some() { DEDUPE_MS.to_string() } else { String::new() })
                .invoke_async(&mut self.conn())
                .await;
            Ok(self.ok(r)? == 1)
        })
    }

    fn broadcast<'a>(&'a self, frame: Arc<str>, exclude_user: Option<&'a str>) -> EngineFuture<'a, usize> {
        Box::pin(async move {
            let payload = format!("{}\n{frame}", exclude_user.unwrap_or(""));
            let r: redis::RedisResult<usize> =
                redis::cmd("PUBLISH").arg(key("all", "")).arg(payload).query_async(&mut self.conn()).await;
            self.ok(r)
        })
    }

    fn notify<'a>(&'a self, user: &'a str, title: String, body: String) -> EngineFuture<'a, Notification> {
        Box::pin(async move {
            let mut inv = self.on_stream(&self.scripts.notify, user, true);
            self.notification_args(&mut inv, &title, &body);
            let r: redis::RedisResult<String> = inv.invoke_async(&mut self.conn()).await;
            let json = self.ok(r)?;
            serde_json::from_str(&json).map_err(|e| EngineError::Unavailable(format!("a stored notification: {e}")))
        })
    }

    fn notifications<'a>(&'a self, user: &'a str) -> EngineFuture<'a, Vec<Notification>> {
        Box::pin(async move {
            let r: redis::RedisResult<Vec<String>> =
                redis::cmd("LRANGE").arg(key("n", user)).arg(0).arg(-1).query_async(&mut self.conn()).await;
            Ok(self.ok(r)?.iter().filter_map(|raw| serde_json::from_str(raw).ok()).collect())
        })
    }

    fn mark_read<'a>(&'a self, user: &'a str, ids: Vec<u64>) -> EngineFuture<'a, Vec<u64>> {
        Box::pin(async move {
            let mut inv = self.on_stream(&self.scripts.mark_read, user, true);
            inv.arg(serde_json::to_string(&ids).unwrap_or_default());
            let r: redis::RedisResult<String> = inv.invoke_async(&mut self.conn()).await;
            let json = self.ok(r)?;
            // cjson encodes an empty table as an object: `[]` is returned as a literal then.
            Ok(serde_json::from_str(&json).unwrap_or_default())
        })
    }

    fn mark_all_read<'a>(&'a self, user: &'a str) -> EngineFuture<'a, usize> {
        Box::pin(async move {
            let r: redis::RedisResult<usize> =
                self.on_stream(&self.scripts.mark_all, user, true).invoke_async(&mut self.conn()).await;
            self.ok(r)
        })
    }

    fn record<'a>(&'a self, id: &'a RecordId, action: RecordAction) -> EngineFuture<'a, Applied> {
        Box::pin(async move {
            let applied = key("k", &format!("{}:{}", id.topic, id.partition));
            let mut invocation = match &action {
                RecordAction::Push { user, msg } => {
                    let mut inv = self.on_stream(&self.scripts.append_once, user, false);
                    inv.arg(msg.kind()).arg(payload_json(msg));
                    inv
                }
                RecordAction::Notify { user, title, body } => {
                    let mut inv = self.on_stream(&self.scripts.notify_once, user, true);
                    self.notification_args(&mut inv, title, body);
                    inv
                }
                RecordAction::Room { room, frame } => {
                    let mut inv = self.scripts.room_once.key(key("r", room));
                    inv.arg(key("r", room)).arg(format!("- 0\n{frame}"));
                    inv
                }
            };
            invocation.key(applied).arg(id.offset);
            let r: redis::RedisResult<String> = invocation.invoke_async(&mut self.conn()).await;
            Ok(if self.ok(r)? == "duplicate" { Applied::Duplicate } else { Applied::Done })
        })
    }

    fn sweep(&self) -> EngineFuture<'_, usize> {
        Box::pin(async move {
            // Redis expires idle streams itself; keep those of the users connected here.
            let ttl = self.settings.streams.ttl.as_millis() as u64;
            let mut pipe = redis::pipe();
            for user in self.hub.local_users() {
                pipe.cmd("PEXPIRE").arg(key("s", &user)).arg(ttl).ignore();
                pipe.cmd("PEXPIRE").arg(key("x", &user)).arg(ttl).ignore();
            }
            let r: redis::RedisResult<()> = pipe.query_async(&mut self.conn()).await;
            self.ok(r)?;
            self.hub.forget_users(|_| false);
            Ok(0)
        })
    }

    fn health(&self) -> Health {
        let (up, subscribed) = (self.up.load(Ordering::Relaxed), self.subscribed.load(Ordering::Relaxed));
        let detail = match (up, subscribed) {
            (true, true) => None,
            (false, _) => Some("Redis unreachable: reconnecting".to_owned()),
            (true, false) => Some("Redis subscriptions being renewed".to_owned()),
        };
        Health { engine: "redis", ok: up && subscribed, detail }
    }
}
