// resock/react: React bindings on useSyncExternalStore. The built entry starts with "use client".
//
// - <ResockProvider options={...}> loads the wasm module and owns one Client per URL and user
//   (shared by every provider with the same URL and user). Its children render at once; until
//   the client exists the hooks report it (useResockStatus: "loading", useConnectionState:
//   "idle", useNotifications: loading). Under <StrictMode> the mount/unmount/mount of effects
//   reuses the same client: one socket, not two. The last release closes it.
// - A new user (the `userKey` prop, else the `sub` of a string JWT token) gets a new client.
// - Nothing touches the wasm module during render: clients are made in effects.
// - useConnectionState(): {state, retryAt, attempt, lastError, transport, role}
// - useMessages(select) / useMessages(type, map?): the selected messages; re-renders only when a
//   message is selected. Messages that arrive between a render and its subscription are replayed.
// - useRoom(room): joins on mount, leaves on unmount; the room's messages and a send function.
// - useNotifications(): the user's notifications over REST, kept live by the socket.
import {
  createContext,
  createElement,
  Fragment,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from "react";
import init, {
  Client,
  type ClientOptions,
  type ConnectionState,
  type Notification,
  type PresenceMessage,
  type ResockError,
  type RoomMessage,
  type ServerMessage,
  type UnknownMessage,
} from "./resock.js";

export type AnyMessage = ServerMessage | UnknownMessage;
/** The known message types (`ServerMessage["type"]`). */
export type MessageType = ServerMessage["type"];
/** The message of one known type. */
export type MessageOf<K extends MessageType> = Extract<ServerMessage, { type: K }>;

/** Narrows a message to one known type: `isMessage(m, "task_update") && m.payload.task`. */
export function isMessage<K extends MessageType>(message: AnyMessage, type: K): message is MessageOf<K> {
  return message.type === type;
}

/** The connection as the UI shows it. `retryAt` is the wall-clock time of the next attempt. */
export interface ConnectionSnapshot {
  state: ConnectionState;
  retryAt: number | null;
  /** The reconnect attempt in a row (0 once open). */
  attempt: number;
  /** The last error since the connection was last open (null once open). `load_failed`: the wasm module did not load. */
  lastError: ResockError | null;
  /** `"sse"` while the SSE fallback carries the connection (`sseUrl`), else `"websocket"`. */
  transport: "websocket" | "sse";
  /** With `share`: whether this tab holds the socket (`"leader"`) or goes through another (`"follower"`). */
  role: "solo" | "leader" | "follower";
}

let ready: Promise<unknown> | null = null;
/**
 * Loads the wasm module once (`init()` of the package). Safe to call many times; after a failure
 * the next call tries again (a rejected load is not kept). The provider calls it for you.
 */
export function initResock(): Promise<unknown> {
  if (!ready) {
    const p = init().catch((e: unknown) => {
      if (ready === p) ready = null;
      throw e;
    });
    ready = p;
  }
  return ready;
}

type TokenSource = ClientOptions["token"];

async function resolveToken(token: TokenSource): Promise<string | null> {
  const t = typeof token === "function" ? await token() : token;
  return t ?? null;
}

/** The `sub` claim of a JWT, or null when `token` is not one. */
export function tokenSubject(token: TokenSource): string | null {
  if (typeof token !== "string") return null;
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (part.length % 4)) % 4));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === "string" ? sub : null;
  } catch {
    return null;
  }
}

const IDLE: ConnectionSnapshot = { state: "idle", retryAt: null, attempt: 0, lastError: null, transport: "websocket", role: "solo" };
/** How many recent messages a client keeps to replay to a subscription made after its render. */
const REPLAY = 256;

/** One shared client and what the hooks read from it. */
export class Entry {
  readonly client: Client;
  refs = 0;
  closed = false;
  /** The latest provider's token: read at every attempt, so a refreshed token is used. */
  token: TokenSource;
  private closeTimer: ReturnType<typeof setTimeout> | null = null;
  private connection: ConnectionSnapshot = IDLE;
  private readonly connectionListeners = new Set<() => void>();
  private readonly messageListeners = new Set<(m: AnyMessage) => void>();
  /** The last REPLAY messages; `seen` counts every message so far. */
  private recent: AnyMessage[] = [];
  private seen = 0;
  private readonly rooms = new Map<string, { refs: number; leaveTimer: ReturnType<typeof setTimeout> | null }>();

  constructor(
    readonly key: string,
    options: ClientOptions,
  ) {
    this.token = options.token;
    this.client = new Client({ ...options, token: () => resolveToken(this.token) });
    this.client.on("state", (state) => {
      // Which transport and role the connection has is read when its state changes.
      const { transport, role } = this.client;
      if (state === "open") this.setConnection({ state, retryAt: null, attempt: 0, lastError: null, transport, role });
      else this.setConnection({ ...this.connection, state, retryAt: state === "reconnecting" ? this.connection.retryAt : null, transport, role });
    });
    this.client.on("retry", ({ attempt, delayMs }) => {
      this.setConnection({ ...this.connection, attempt, retryAt: Date.now() + delayMs });
    });
    this.client.on("error", (lastError) => this.setConnection({ ...this.connection, lastError }));
    this.client.on("message", (m) => {
      this.seen += 1;
      this.recent.push(m);
      if (this.recent.length > REPLAY) this.recent.shift();
      for (const l of this.messageListeners) l(m);
    });
  }

  private setConnection(next: ConnectionSnapshot) {
    this.connection = next;
    for (const l of this.connectionListeners) l();
  }

  getConnection = () => this.connection;

  subscribeConnection = (listener: () => void) => {
    this.connectionListeners.add(listener);
    return () => {
      this.connectionListeners.delete(listener);
    };
  };

  /** A mark taken at render: `onMessage(listener, mark)` replays what came after it. */
  mark(): number {
    return this.seen;
  }

  /** Listens to messages; with `since` (a `mark()`), first replays those that came after it. */
  onMessage(listener: (m: AnyMessage) => void, since?: number): () => void {
    if (since !== undefined && since < this.seen) {
      const missed = this.recent.slice(Math.max(0, this.recent.length - (this.seen - since)));
      for (const m of missed) listener(m);
    }
    this.messageListeners.add(listener);
    return () => {
      this.messageListeners.delete(listener);
    };
  }

  currentToken(): Promise<string | null> {
    return resolveToken(this.token);
  }

  acquire() {
    this.refs += 1;
    if (this.closeTimer !== null) {
      clearTimeout(this.closeTimer);
      this.closeTimer = null;
    }
  }

  connect() {
    if (!this.closed) this.client.connect();
  }

  /** Closes after the current task when nobody re-acquired it (StrictMode remounts do). */
  release(onClosed: () => void) {
    this.refs -= 1;
    if (this.refs > 0) return;
    this.closeTimer = setTimeout(() => {
      this.closeTimer = null;
      if (this.refs === 0 && !this.closed) {
        this.closed = true;
        this.client.close();
        this.client.free();
        this.messageListeners.clear();
        this.recent = [];
        onClosed();
      }
    }, 0);
  }

  /** Joins a room for one more user of it (the first one sends the join). */
  joinRoom(room: string) {
    const r = this.rooms.get(room) ?? { refs: 0, leaveTimer: null };
    this.rooms.set(room, r);
    r.refs += 1;
    if (r.leaveTimer !== null) {
      clearTimeout(r.leaveTimer); // a StrictMode remount: still joined
      r.leaveTimer = null;
    }
    return this.client.join(room);
  }

  /** One user of the room fewer; the last one leaves it (after the current task). */
  leaveRoom(room: string) {
    const r = this.rooms.get(room);
    if (!r) return;
    r.refs -= 1;
    if (r.refs > 0) return;
    r.leaveTimer = setTimeout(() => {
      if (r.refs === 0 && !this.closed) {
        this.rooms.delete(room);
        this.client.leave(room).catch(() => {});
      }
    }, 0);
  }
}

const registry = new Map<string, Entry>();

/** The client for `key`, made when missing (in an effect, never during render). */
function acquireEntry(key: string, options: ClientOptions): Entry {
  let entry = registry.get(key);
  if (!entry || entry.closed) {
    entry = new Entry(key, options);
    registry.set(key, entry);
  }
  entry.acquire();
  return entry;
}

function releaseEntry(entry: Entry) {
  entry.release(() => {
    if (registry.get(entry.key) === entry) registry.delete(entry.key);
  });
}

/** Where the provider stands: loading the wasm module, ready (a client exists), or failed. */
export interface ResockStatus {
  status: "loading" | "ready" | "error";
  /** Why the wasm module did not load. */
  error: Error | null;
  /**
   * After a failed load: loads the wasm module again. After the client closed for good (auth
   * failed, the server closed it, max attempts): a new client connects. Otherwise nothing.
   */
  retry: () => void;
}

interface ResockContextValue {
  entry: Entry | null;
  apiBase: string;
  status: ResockStatus;
}

const ResockContext = createContext<ResockContextValue | null>(null);

export interface ResockProviderProps {
  /**
   * The client's options; one client is kept per `options.url` and user. The options are read
   * when the client is made; later changes to them are not applied, except `token` (read at
   * every attempt) and the user (a new user gets a new client).
   */
  options: ClientOptions;
  /**
   * Who is signed in. A change closes the client and makes a new one: no data of the previous
   * user stays. Default: the `sub` claim of `options.token` when it is a JWT string; with a token
   * function, pass it (else a user change keeps the socket until it reconnects).
   */
  userKey?: string;
  /** Base URL of the REST API for useNotifications (default: derived from `options.url`). */
  apiBase?: string;
  /** Called when the wasm module fails to load (a 404 on the `.wasm`, offline...). */
  onError?: (error: Error) => void;
  /**
   * Rendered instead of the children when the wasm module failed to load; a function gets the
   * error and a `retry`. Without it the children stay, and `useResockStatus()` /
   * `useConnectionState().lastError` (code `load_failed`) tell them.
   */
  errorFallback?: ReactNode | ((error: Error, retry: () => void) => ReactNode);
  children?: ReactNode;
}

/**
 * Loads the wasm module and shares one connected client per URL and user with its children.
 * The children render at once; no wrapper element.
 */
export function ResockProvider({ options, userKey, apiBase, onError, errorFallback, children }: ResockProviderProps) {
  if (typeof useSyncExternalStore !== "function") throw new Error("resock/react needs React 18 or newer (the client itself, `resock`, needs no React)");
  const [load, setLoad] = useState<{ status: "loading" | "ready" | "error"; error: Error | null; attempt: number }>({
    status: "loading",
    error: null,
    attempt: 0,
  });
  const onErrorRef = useRef(onError);
  onErrorRef.current = onError;
  useEffect(() => {
    let live = true;
    initResock().then(
      () => live && setLoad((l) => ({ ...l, status: "ready", error: null })),
      (e: unknown) => {
        if (!live) return;
        const error = e instanceof Error ? e : new Error(String(e));
        setLoad((l) => ({ ...l, status: "error", error }));
        onErrorRef.current?.(error);
      },
    );
    return () => {
      live = false;
    };
  }, [load.attempt]);
  // A new client after the last one closed for good: a generation in the key.
  const [generation, setGeneration] = useState(0);
  const key = `${options.url}\n${userKey ?? tokenSubject(options.token) ?? ""}\n${generation}`;
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const [entry, setEntry] = useState<Entry | null>(null);
  useEffect(() => {
    if (load.status !== "ready") return;
    const e = acquireEntry(key, optionsRef.current);
    setEntry(e);
    return () => releaseEntry(e);
  }, [key, load.status]);
  // An entry of another user (before the effect above ran for the new one) is not shown.
  const current = entry && entry.key === key && !entry.closed ? entry : null;
  const currentRef = useRef(current);
  currentRef.current = current;
  const retry = useCallback(() => {
    const c = currentRef.current;
    if (c && c.getConnection().state === "closed") setGeneration((g) => g + 1);
    else setLoad((l) => (l.status === "error" ? { status: "loading", error: null, attempt: l.attempt + 1 } : l));
  }, []);
  useEffect(() => {
    if (current) current.token = options.token;
  });
  // Connects after the children's effects of this commit subscribed (children's effects run first).
  useEffect(() => current?.connect(), [current]);

  const base = apiBase ?? defaultApiBase(options.url);
  const status = useMemo<ResockStatus>(
    () => ({ status: current ? "ready" : load.status === "error" ? "error" : "loading", error: load.error, retry }),
    [current, load.status, load.error, retry],
  );
  const value = useMemo<ResockContextValue>(() => ({ entry: current, apiBase: base, status }), [current, base, status]);
  const shown =
    load.status === "error" && errorFallback !== undefined && load.error
      ? typeof errorFallback === "function"
        ? errorFallback(load.error, retry)
        : errorFallback
      : children;
  return createElement(ResockContext.Provider, { value }, createElement(Fragment, null, shown));
}

function defaultApiBase(wsUrl: string): string {
  try {
    const base = typeof location === "undefined" ? undefined : location.href;
    const u = new URL(wsUrl, base);
    u.protocol = u.protocol === "wss:" || u.protocol === "https:" ? "https:" : "http:";
    return u.origin;
  } catch {
    return "";
  }
}

function useResock(): ResockContextValue {
  const ctx = useContext(ResockContext);
  if (!ctx) throw new Error("resock/react: wrap your components in <ResockProvider options={...}>");
  return ctx;
}

/** Whether the wasm module is loaded and the client made; after a failed load, its error and a retry. */
export function useResockStatus(): ResockStatus {
  return useResock().status;
}

/** The shared client, for `send`, `request` and friends; null until the wasm module is loaded. */
export function useClient(): Client | null {
  return useResock().entry?.client ?? null;
}

const noSubscribe = () => () => {};

/** The connection state, and when the next attempt starts while reconnecting. */
export function useConnectionState(): ConnectionSnapshot {
  const { entry, status } = useResock();
  const failed = useMemo<ConnectionSnapshot | null>(
    () =>
      status.error
        ? { ...IDLE, state: "closed", lastError: { code: "load_failed", message: status.error.message } }
        : null,
    [status.error],
  );
  const get = entry ? entry.getConnection : () => failed ?? IDLE;
  return useSyncExternalStore(entry ? entry.subscribeConnection : noSubscribe, get, get);
}

export interface UseMessagesOptions {
  /** Keep at most this many selected values (default 100). */
  limit?: number;
}

const NONE: readonly never[] = [];

/** The messages of one known type, typed: `useMessages("task_update")`. */
export function useMessages<K extends MessageType>(type: K, options?: UseMessagesOptions): readonly MessageOf<K>[];
/** What `map` returns for the messages of one known type (undefined skips one). */
export function useMessages<K extends MessageType, T>(
  type: K,
  map: (message: MessageOf<K>) => T | undefined,
  options?: UseMessagesOptions,
): readonly T[];
/**
 * The messages `select` picks (it returns a value to keep, or undefined to skip). The component
 * re-renders only when a message is selected; the last `limit` values are kept. `select` may be a
 * new function at every render. Narrow inside it with `isMessage(m, "task_update")`.
 */
export function useMessages<T = AnyMessage>(select: (message: AnyMessage) => T | undefined, options?: UseMessagesOptions): readonly T[];
export function useMessages(
  a: string | ((message: AnyMessage) => unknown),
  b?: ((message: never) => unknown) | UseMessagesOptions,
  c?: UseMessagesOptions,
): readonly unknown[] {
  const { entry } = useResock();
  let select: (m: AnyMessage) => unknown;
  let opts: UseMessagesOptions | undefined;
  if (typeof a === "string") {
    const map = typeof b === "function" ? (b as (m: AnyMessage) => unknown) : undefined;
    opts = typeof b === "function" ? c : b;
    select = (m) => (m.type === a ? (map ? map(m) : m) : undefined);
  } else {
    select = a;
    opts = typeof b === "function" ? undefined : b;
  }
  const limit = opts?.limit ?? 100;
  const selectRef = useRef(select);
  selectRef.current = select;
  const store = useMemo(() => {
    if (!entry) return { subscribe: noSubscribe, get: () => NONE };
    let values: readonly unknown[] = NONE;
    const since = entry.mark();
    return {
      subscribe(onChange: () => void) {
        return entry.onMessage((msg) => {
          const v = selectRef.current(msg);
          if (v === undefined) return;
          values = [...values, v].slice(-limit);
          onChange();
        }, since);
      },
      get: () => values,
    };
  }, [entry, limit]);
  return useSyncExternalStore(store.subscribe, store.get, store.get);
}

/** A message in a room: from another member, or sent from here (`mine`). */
export interface RoomEntry<Data = unknown> {
  room: string;
  /** The sender's user id (empty for messages sent from here). */
  from: string;
  data: Data;
  mine: boolean;
  /**
   * Messages sent from here: `pending` until the server's `ack` (queued while reconnecting),
   * then `sent`; `failed` when refused for good or dropped (the outbox full, the client closed).
   * Messages from others: `sent`.
   */
  status: "pending" | "sent" | "failed";
  /** The frame's id, for messages sent from here. */
  id?: string;
}

export interface RoomState<Data = unknown> {
  /** True once the server answered `joined`. */
  joined: boolean;
  /**
   * The room's members (connections): counted when joined, then kept current from the server's
   * `presence` messages when it sends them (the resock fixture does).
   */
  members: number | null;
  /** The room's messages in the order this client saw them, its own included (last 200). */
  messages: readonly RoomEntry<Data>[];
  /**
   * Sends `data` to the room's other members (queued while reconnecting): the frame's id, its
   * entry in `messages` `pending` until the server's ack; false before the client exists.
   */
  send: (data: Data) => string | false;
  error: ResockError | null;
}

let sendCount = 0;

/** Joins `room` on mount (and after every reconnect), leaves on unmount. */
export function useRoom<Data = unknown>(room: string): RoomState<Data> {
  const { entry } = useResock();
  const [joined, setJoined] = useState<{ entry: Entry; members: number } | null>(null);
  const [error, setError] = useState<ResockError | null>(null);
  useEffect(() => {
    if (!entry) return;
    let live = true;
    setJoined(null);
    setError(null);
    let failed = false;
    const setMembers = (members: number) => live && setJoined((j) => (j && j.entry === entry ? { entry, members } : j));
    // The live member count, from a server that has `presence` (else the count at join time).
    const watch = () =>
      entry.client.request<PresenceMessage>("presence", { room }).then(
        (m) => setMembers(m.payload.members),
        () => {},
      );
    const settle = (p: Promise<{ payload: { members: number } }>) =>
      p.then(
        (m) => {
          if (!live) return;
          failed = false;
          setJoined({ entry, members: m.payload.members });
          setError(null);
          void watch();
        },
        (e: ResockError) => {
          failed = true;
          if (live) setError({ code: e.code, message: e.message });
        },
      );
    settle(entry.joinRoom(room));
    // A join that failed (a timeout while offline) is asked again on the next open.
    let was = entry.getConnection().state;
    const off = entry.subscribeConnection(() => {
      const now = entry.getConnection().state;
      if (now === "open" && was !== "open" && !entry.closed) {
        if (failed) settle(entry.client.join(room));
        else void watch(); // a new connection: ask again (after the SDK's re-join)
      }
      was = now;
    });
    const offPresence = entry.onMessage((m) => {
      if (isMessage(m, "presence") && m.payload.room === room) setMembers(m.payload.members);
    });
    return () => {
      live = false;
      offPresence();
      off();
      entry.leaveRoom(room); // the last useRoom of this room leaves it
    };
  }, [entry, room]);
  const store = useMemo(() => {
    let entries: readonly RoomEntry<Data>[] = NONE;
    const listeners = new Set<() => void>();
    const changed = (next: readonly RoomEntry<Data>[]) => {
      entries = next;
      for (const l of listeners) l();
    };
    const add = (e: RoomEntry<Data>) => changed([...entries, e].slice(-200));
    const settle = (id: string, status: RoomEntry["status"]) =>
      changed(entries.map((e) => (e.id === id && e.mine ? { ...e, status } : e)));
    if (!entry) return { add, settle, subscribe: noSubscribe, get: () => entries };
    const since = entry.mark();
    return {
      subscribe(onChange: () => void) {
        listeners.add(onChange);
        const off = entry.onMessage((m) => {
          if (m.type !== "room_message") return;
          const p = (m as RoomMessage<Data>).payload;
          if (p.room === room) add({ room, from: p.from, data: p.data, mine: false, status: "sent" });
        }, since);
        return () => {
          listeners.delete(onChange);
          off();
        };
      },
      add,
      settle,
      get: () => entries,
    };
  }, [entry, room]);
  const messages = useSyncExternalStore(store.subscribe, store.get, store.get);
  const send = useCallback(
    (data: Data) => {
      if (!entry || entry.closed) return false;
      const id = `${room}:${(sendCount += 1)}:${Math.random().toString(36).slice(2, 10)}`;
      store.add({ room, from: "", data, mine: true, status: "pending", id });
      entry.client.send({ type: "room_message", id, payload: { room, data } }, { ack: true }).then(
        () => store.settle(id, "sent"),
        () => store.settle(id, "failed"),
      );
      return id;
    },
    [entry, room, store],
  );
  const current = joined && joined.entry === entry ? joined : null;
  return { joined: current !== null, members: current?.members ?? null, messages, send, error };
}

export interface NotificationsState {
  items: readonly Notification[];
  unread: number;
  /** Loading the list over REST (until the client exists, the first load, and after a resync). */
  loading: boolean;
  /** Why the last load failed (the server's own `error` message when it sent one); null once loaded. */
  error: string | null;
  markRead: (ids: number[]) => Promise<void>;
  markAllRead: () => Promise<void>;
  /** Reloads the list over REST. */
  reload: () => Promise<void>;
}

type Op = (list: readonly Notification[]) => readonly Notification[];

/**
 * The user's notifications: loaded over REST (`GET /api/notifications`), kept live by
 * `new_notification`, `notification_read` and `all_read`, reloaded after a resync and on the
 * first `open` after a failed load. Marking read goes over REST
 * (`POST /api/notifications/mark-read`, `POST /api/notifications/read-all`); every tab of the
 * user updates from the pushed message.
 */
export function useNotifications(): NotificationsState {
  const { entry, apiBase } = useResock();
  const [list, setList] = useState<{ entry: Entry | null; items: readonly Notification[] }>({ entry: null, items: NONE });
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  // While a reload is in flight, live updates are applied to the current list and recorded,
  // then applied again on top of the reloaded list: none is lost to the response. Between
  // reloads nothing is recorded.
  const reloading = useRef<{ generation: number; inFlight: boolean; failed: boolean; ops: Op[] }>({
    generation: 0,
    inFlight: false,
    failed: false,
    ops: [],
  });
  const since = useMemo(() => entry?.mark(), [entry]);

  const call = useCallback(
    async (method: string, path: string, body?: unknown) => {
      if (!entry) throw new Error("resock/react: the client is not ready yet");
      const t = await entry.currentToken();
      const res = await fetch(`${apiBase}${path}`, {
        method,
        headers: { "content-type": "application/json", ...(t ? { authorization: `Bearer ${t}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!res.ok) {
        let why = "";
        try {
          const j = (await res.json()) as { error?: unknown };
          if (typeof j.error === "string") why = `: ${j.error}`;
        } catch {
          // not JSON
        }
        throw new Error(`${method} ${path}: HTTP ${res.status}${why}`);
      }
      return res.json();
    },
    [apiBase, entry],
  );

  const reload = useCallback(async () => {
    if (!entry) return;
    const r = reloading.current;
    const generation = ++r.generation;
    r.ops = [];
    r.inFlight = true;
    setLoading(true);
    try {
      const fetched = (await call("GET", "/api/notifications")) as Notification[];
      if (generation !== r.generation) return; // a newer reload wins
      const ops = r.ops;
      const items = ops.reduce<readonly Notification[]>((l, op) => op(l), fetched.slice().reverse()); // newest first
      r.failed = false;
      setList({ entry, items });
      setError(null);
    } catch (e) {
      if (generation === r.generation) {
        r.failed = true;
        setError(e instanceof Error ? e.message : String(e));
      }
    } finally {
      if (generation === r.generation) {
        r.inFlight = false;
        r.ops = [];
        setLoading(false);
      }
    }
  }, [call, entry]);

  useEffect(() => {
    if (!entry) return;
    setList({ entry, items: NONE });
    setError(null);
    reloading.current.failed = false;
    const load = () => void reload();
    load();
    const apply = (op: Op) => {
      if (reloading.current.inFlight) reloading.current.ops.push(op);
      setList((l) => (l.entry === entry ? { entry, items: op(l.items) } : l));
    };
    const offMessage = entry.onMessage((msg) => {
      if (isMessage(msg, "new_notification")) {
        const n = msg.payload;
        apply((l) => (l.some((x) => x.id === n.id) ? l : [n, ...l]));
      } else if (isMessage(msg, "notification_read")) {
        const ids = new Set(msg.payload.notification_ids);
        apply((l) => l.map((x) => (ids.has(x.id) && !x.read ? { ...x, read: true } : x)));
      } else if (isMessage(msg, "all_read")) {
        apply((l) => l.map((x) => (x.read ? x : { ...x, read: true })));
      }
    }, since);
    // Messages may have been missed (a new epoch, an incomplete resume): reload.
    const offResync = entry.client.on("resync", load);
    // A load that failed (the server was down) is tried again when the socket opens.
    let was = entry.getConnection().state;
    const offState = entry.subscribeConnection(() => {
      const now = entry.getConnection().state;
      if (now === "open" && was !== "open" && reloading.current.failed && !reloading.current.inFlight) load();
      was = now;
    });
    return () => {
      reloading.current.generation += 1; // a reload in flight for this entry is dropped
      reloading.current.inFlight = false;
      reloading.current.ops = [];
      offMessage();
      offResync();
      offState();
    };
    // `since` changes with `entry`.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [entry, reload]);

  const markRead = useCallback(
    async (ids: number[]) => {
      await call("POST", "/api/notifications/mark-read", { notification_ids: ids });
    },
    [call],
  );
  const markAllRead = useCallback(async () => {
    await call("POST", "/api/notifications/read-all", {});
  }, [call]);

  const items = list.entry === entry ? list.items : NONE;
  const unread = useMemo(() => items.filter((n) => !n.read).length, [items]);
  return { items, unread, loading: loading || !entry, error, markRead, markAllRead, reload };
}
