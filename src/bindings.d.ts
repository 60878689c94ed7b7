/** The connection state. */
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** A stored notification (`GET /api/notifications`, `new_notification`). */
export interface Notification {
  id: number;
  title: string;
  body: string;
  /** RFC 3339, UTC. */
  created_at: string;
  read: boolean;
}

interface Envelope<T extends string, P> {
  type: T;
  payload: P;
  /** Set on replies: the `id` of the request they answer. */
  id?: string;
  /** Set on user-stream messages: 1, 2, 3... within an epoch. */
  seq?: number;
}

export type NewNotificationMessage = Envelope<"new_notification", Notification>;
export type NotificationReadMessage = Envelope<"notification_read", { notification_ids: number[] }>;
export type AllReadMessage = Envelope<"all_read", Record<string, never>>;
export type TaskUpdateMessage<Task = unknown> = Envelope<"task_update", { action: string; task: Task }>;
export type RoomMessage<Data = unknown> = Envelope<"room_message", { room: string; from: string; data: Data }>;
export type JoinedMessage = Envelope<"joined", { room: string; members: number }>;
/** A room's member count: the answer to `request("presence", {room})`, then pushed whenever it changes. */
export type PresenceMessage = Envelope<"presence", { room: string; members: number }>;
export type LeftMessage = Envelope<"left", { room: string }>;
export type AckMessage = Envelope<"ack", Record<string, never>>;
export type PongMessage = Envelope<"pong", Record<string, never>>;
export type ErrorMessage = Envelope<"error", { code: string; message: string }>;
/** A message of a type this version does not know: servers add types before clients learn them. */
export interface UnknownMessage {
  type: string;
  payload: unknown;
  id?: string;
  seq?: number;
}

/**
 * The message types the `message` event delivers, discriminated on `type`. (Errors go to the
 * `error` event; `joined`, `left`, `ack` and `pong` replies go to the promise of their request.)
 */
export type ServerMessage =
  | NewNotificationMessage
  | NotificationReadMessage
  | AllReadMessage
  | TaskUpdateMessage
  | RoomMessage
  | PresenceMessage;

/** What a client sends: any `{type, payload?}` object. */
export interface ClientMessage {
  type: string;
  payload?: unknown;
  id?: string;
}

/** `code` names what went wrong; `closeCode` the WebSocket close code that caused it, if any. */
export interface ResockError {
  code:
    | "auth_failed" | "replaced" | "server_closed" | "unsupported_data" | "invalid_payload"
    | "message_too_big" | "policy_violation" | "server_error" | "try_again_later" | "max_attempts"
    | "connect_timeout" | "bad_url"
    | "ticket_failed" | "rate_limited" | "outbox_full" | "expired" | "timeout" | "disconnected"
    | "closed" | "bad_room" | "bad_frame" | (string & {});
  message: string;
  closeCode?: number;
  /**
   * The id of the frame it is about: a `send` the server refused for good (`not_member`,
   * `bad_payload`, ...), or one dropped from the outbox (`outbox_full`, `expired`, `closed`).
   */
  id?: string;
}

/** Reload state over REST: messages may have been missed. */
export interface ResyncEvent {
  reason: "new_epoch" | "incomplete" | "gap";
}

/** The next attempt starts in `delayMs`. */
export interface RetryEvent {
  attempt: number;
  delayMs: number;
}

export interface ClientEvents {
  message: ServerMessage | UnknownMessage;
  state: ConnectionState;
  error: ResockError;
  resync: ResyncEvent;
  retry: RetryEvent;
}

export interface ClientOptions {
  /**
   * The socket: `ws://` or `wss://`; on a page also relative (`/ws`) or `http(s)://`, resolved
   * against the page and made `ws(s)://`.
   */
  url: string;
  /** POSTed with `Authorization: Bearer <token>` for a fresh one-time ticket before every attempt (relative: against the page). */
  ticketUrl?: string;
  /** A token, or a function (sync or async) called before every attempt. Without `ticketUrl`, sent as `?token=`. */
  token?: string | (() => string | null | undefined | Promise<string | null | undefined>);
  /** Full-jitter exponential backoff. `maxAttempts`: reconnect attempts in a row before giving up; null retries forever. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number; maxAttempts?: number | null };
  /** Nothing received for heartbeat + this: the connection is dead. Default 15000. */
  heartbeatGraceMs?: number;
  /**
   * false: never drop a silent connection, for servers that never ping (a dead one is then
   * noticed only when the browser closes the socket). Default true.
   */
  heartbeat?: boolean;
  /** Default timeout of `request`, `join` and `leave`. Default 10000. */
  requestTimeoutMs?: number;
  /** A connection open this long resets the backoff. Default 5000. */
  stableAfterMs?: number;
  /** How long one attempt may take to get a ticket and open the socket. Default 10000. */
  connectTimeoutMs?: number;
  /**
   * The server's rate limit, or under it: at most `max` frames reach the server in any `windowMs`.
   * Paced by the server's answers (frame n goes out `windowMs` + 25 ms after the answer to
   * frame n - max came), so no network delay or phase of the server's window can make it
   * refused; the rest waits in the outbox. Default {max: 9, windowMs: 1000}; null sends
   * without pacing (refused frames are still sent again, but may then overtake others).
   */
  sendRate?: { max?: number; windowMs?: number } | null;
  /** The queue of messages sent while not connected. Defaults: 1000 messages, 1 MiB, no TTL. */
  outbox?: { maxMessages?: number; maxBytes?: number; ttlMs?: number };
  /**
   * One socket for every tab of this user: a key unique to the user (their id). Tabs of this
   * origin with the same `url` and `share` key elect one leader with the Web Locks API; it holds
   * the socket and the others reach the server through it over a BroadcastChannel. Every tab's
   * `message` listeners still get every message once, in order; `send`, `join`/`leave` (counted
   * across tabs), `request` and the outbox work from any tab; when the leader tab closes,
   * crashes or freezes, another takes over and resumes the stream. Where the browser has no
   * Web Locks or BroadcastChannel, each tab keeps its own socket. Default: off.
   * In the full build only (`import ... from "resock/full"`); the lean `resock` throws a
   * TypeError saying so.
   */
  share?: string;
  /**
   * The server's SSE session route (`GET /sse/notifications` on the fixture), to fall back to
   * where WebSocket upgrades fail on the network path (a proxy or antivirus that breaks them):
   * after 3 attempts in a row cut (1006) before they opened while the ticket URL answered, the
   * client receives over Server-Sent Events and sends with HTTP POST to `sseSendUrl` (default:
   * `send` beside `sseUrl`), with the same events, order and resume. It tries WebSocket again
   * `sseProbeMs` (default 60000) after each SSE connection opens and stays there when it opens.
   * `transport` says which is in use. Default: no fallback. In the full build only
   * (`resock/full`), like `share`.
   */
  sseUrl?: string;
  sseSendUrl?: string;
  sseProbeMs?: number;
}

/**
 * A realtime connection. Keep a reference while you use it: a `Client` that is garbage-collected
 * is freed, which closes its socket (1000) without a `state` event. Throws before `init()`.
 */
export class Client {
  constructor(options: ClientOptions);
  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof ClientEvents>(event: K, listener: (value: ClientEvents[K]) => void): () => void;
  /** Starts connecting. Idempotent. */
  connect(): void;
  /**
   * Sends now or queues while not open, with an id: the message's own `id` (a string), or a
   * fresh one unique to this client. Returns the id; false when refused (outbox full, or
   * closed: an `error` event says why). A frame the server's rate limit refuses, or that a cut leaves unanswered,
   * is sent again (same id, in its order); one refused for good (`not_member`, ...) comes as an
   * `error` event carrying its `id`. The server's answer (`ack`, or another reply) never reaches
   * the `message` event.
   */
  send(message: ClientMessage): string | false;
  /**
   * The same, opted in to the server's answer: resolves with its `ack` (or other reply), rejects
   * with an `Error` whose `code` and `id` say why when refused for good, dropped from the outbox,
   * or the client closed.
   */
  send(message: ClientMessage, options: { ack: true }): Promise<ServerMessage | UnknownMessage>;
  /**
   * Resolves on `joined`; rejects on an error (the room is then dropped) or a timeout (the room
   * stays wanted). The room is joined again after every reconnect until `leave`.
   */
  join(room: string): Promise<JoinedMessage>;
  /** Leaves the room and stops re-joining it. */
  leave(room: string): Promise<LeftMessage | undefined>;
  /** Sends `{type, id, payload}` and resolves with the reply carrying the same `id`. */
  request<R = ServerMessage | UnknownMessage>(type: string, payload?: unknown, options?: { timeoutMs?: number }): Promise<R>;
  /** The current state. */
  readonly state: ConnectionState;
  /** Messages waiting to be sent. */
  readonly queued: number;
  /**
   * With `share`: `"leader"` in the tab that holds the socket, `"follower"` in the others;
   * `"solo"` without sharing (or where the browser cannot share).
   */
  readonly role: "solo" | "leader" | "follower";
  /** `"websocket"`, or `"sse"` while the SSE fallback carries the connection (`sseUrl`). */
  readonly transport: "websocket" | "sse";
  /** Closes with 1000, never reconnects, frees every listener and timer. */
  close(): void;
  /** Frees the wasm object (after close); any later call throws. Calling it twice does nothing. */
  free(): void;
  /** `free()`, for `using client = new Client(...)` (TypeScript 5.2+). */
  [Symbol.dispose](): void;
}

declare global {
  // For libs older than ES2025 / esnext.disposable (the same declaration as @types/node's).
  interface SymbolConstructor {
    readonly dispose: unique symbol;
  }
}

/**
 * True for the message types this version knows. Narrow with it, then `switch` on `type`
 * with a `never` default: the compiler checks the switch is exhaustive.
 */
export function isKnownMessage(message: ServerMessage | UnknownMessage): message is ServerMessage;
