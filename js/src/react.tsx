// resock/react: React bindings on useSyncExternalStore.
//
// - <ResockProvider options={...}> owns one Client per URL (shared by every provider with the
//   same URL). Under <StrictMode> the mount/unmount/mount of effects reuses the same client:
//   one socket, not two. The last release closes it.
// - useConnectionState(): {state, retryAt}
// - useMessages(select): the selected messages; re-renders only when a message is selected.
// - useRoom(room): joins on mount, leaves on unmount; the room's messages and a send function.
// - useNotifications(): the user's notifications over REST, kept live by the socket.
import {
  createContext,
  createElement,
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
  type ResockError,
  type RoomMessage,
  type ServerMessage,
  type UnknownMessage,
} from "./resock.js";

export type AnyMessage = ServerMessage | UnknownMessage;

/** The connection as the UI shows it. `retryAt` is the wall-clock time of the next attempt. */
export interface ConnectionSnapshot {
  state: ConnectionState;
  retryAt: number | null;
  attempt: number;
  lastError: ResockError | null;
}

let ready: Promise<unknown> | null = null;
/** Loads the wasm module once (`init()` of the package). Safe to call many times. */
export function initResock(): Promise<unknown> {
  ready ??= init();
  return ready;
}

type TokenSource = ClientOptions["token"];

async function resolveToken(token: TokenSource): Promise<string | null> {
  const t = typeof token === "function" ? await token() : token;
  return t ?? null;
}

/** One shared client and what the hooks read from it. */
class Entry {
  readonly client: Client;
  refs = 0;
  closed = false;
  /** The latest provider's token: read at every attempt, so a refreshed token is used. */
  token: TokenSource;
  private closeTimer: ReturnType<typeof setTimeout> | null = null;
  private connection: ConnectionSnapshot = { state: "idle", retryAt: null, attempt: 0, lastError: null };
  private readonly connectionListeners = new Set<() => void>();
  private readonly rooms = new Map<string, { refs: number; leaveTimer: ReturnType<typeof setTimeout> | null }>();

  constructor(options: ClientOptions) {
    this.token = options.token;
    this.client = new Client({ ...options, token: () => resolveToken(this.token) });
    this.client.on("state", (state) => {
      const retryAt = state === "reconnecting" ? this.connection.retryAt : null;
      this.setConnection({ ...this.connection, state, retryAt });
    });
    this.client.on("retry", ({ attempt, delayMs }) => {
      this.setConnection({ ...this.connection, attempt, retryAt: Date.now() + delayMs });
    });
    this.client.on("error", (lastError) => this.setConnection({ ...this.connection, lastError }));
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

  currentToken(): Promise<string | null> {
    return resolveToken(this.token);
  }

  acquire() {
    if (this.closed) throw new Error("resock/react: internal error: acquiring a closed client");
    this.refs += 1;
    if (this.closeTimer !== null) {
      clearTimeout(this.closeTimer);
      this.closeTimer = null;
    }
    this.client.connect();
  }

  /** Closes after the current task when nobody re-acquired it (StrictMode remounts do). */
  release(onClosed: () => void) {
    this.refs -= 1;
    if (this.refs > 0) return;
    this.closeTimer = setTimeout(() => {
      this.closeTimer = null;
      if (this.refs === 0) {
        this.closed = true;
        this.client.close();
        this.client.free();
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

function entryFor(options: ClientOptions): Entry {
  let entry = registry.get(options.url);
  if (!entry || entry.closed) {
    entry = new Entry(options);
    registry.set(options.url, entry);
  }
  return entry;
}

interface ResockContextValue {
  entry: Entry;
  apiBase: string;
}

const ResockContext = createContext<ResockContextValue | null>(null);

export interface ResockProviderProps {
  /** The client's options; one client is kept per `options.url`. */
  options: ClientOptions;
  /** Base URL of the REST API for useNotifications (default: derived from `options.url`). */
  apiBase?: string;
  /** Shown until the wasm module is loaded. */
  fallback?: ReactNode;
  children?: ReactNode;
}

/** Loads the wasm module, then shares one connected client per URL with its children. */
export function ResockProvider({ options, apiBase, fallback = null, children }: ResockProviderProps) {
  const [loaded, setLoaded] = useState(false);
  useEffect(() => {
    let live = true;
    initResock().then(() => live && setLoaded(true));
    return () => {
      live = false;
    };
  }, []);
  if (!loaded) return createElement("div", { "data-resock": "loading" }, fallback);
  return createElement(ConnectedProvider, { options, apiBase, children });
}

function ConnectedProvider({ options, apiBase, children }: ResockProviderProps) {
  // The registry makes a second render (StrictMode) find the same client. One client per URL:
  // the latest provider's token is the one used.
  const entry = entryFor(options);
  entry.token = options.token;
  const [, retry] = useState(0);
  useEffect(() => {
    if (entry.closed) {
      // Closed between this render and its commit: render again for a fresh client.
      retry((n) => n + 1);
      return;
    }
    entry.acquire();
    return () =>
      entry.release(() => {
        if (registry.get(options.url) === entry) registry.delete(options.url);
      });
  }, [entry, options.url]);
  const base = apiBase ?? defaultApiBase(options.url);
  const value = useMemo<ResockContextValue>(() => ({ entry, apiBase: base }), [entry, base]);
  return createElement(ResockContext.Provider, { value }, children);
}

function defaultApiBase(wsUrl: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  return u.origin;
}

function useResock(): ResockContextValue {
  const ctx = useContext(ResockContext);
  if (!ctx) throw new Error("resock/react: wrap your components in <ResockProvider options={...}>");
  return ctx;
}

/** The shared client, for `send`, `request` and friends. */
export function useClient(): Client {
  return useResock().entry.client;
}

/** The connection state, and when the next attempt starts while reconnecting. */
export function useConnectionState(): ConnectionSnapshot {
  const { entry } = useResock();
  return useSyncExternalStore(entry.subscribeConnection, entry.getConnection, entry.getConnection);
}

export interface UseMessagesOptions {
  /** Keep at most this many selected values (default 100). */
  limit?: number;
}

/**
 * The messages `select` picks (it returns a value to keep, or undefined to skip). The component
 * re-renders only when a message is selected; the last `limit` values are kept.
 */
export function useMessages<T = AnyMessage>(
  select: (message: AnyMessage) => T | undefined,
  { limit = 100 }: UseMessagesOptions = {},
): readonly T[] {
  const { entry } = useResock();
  const selectRef = useRef(select);
  selectRef.current = select;
  const store = useMemo(() => {
    let values: readonly T[] = [];
    return {
      subscribe(onChange: () => void) {
        return entry.client.on("message", (msg) => {
          const v = selectRef.current(msg);
          if (v === undefined) return;
          values = [...values, v].slice(-limit);
          onChange();
        });
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
}

export interface RoomState<Data = unknown> {
  /** True once the server answered `joined`. */
  joined: boolean;
  /** Members when joined (as the server counted them then). */
  members: number | null;
  /** The room's messages in the order this client saw them, its own included (last 200). */
  messages: readonly RoomEntry<Data>[];
  /** Sends `data` to the room's other members (queued while reconnecting). */
  send: (data: Data) => string | false;
  error: ResockError | null;
}

/** Joins `room` on mount (and after every reconnect), leaves on unmount. */
export function useRoom<Data = unknown>(room: string): RoomState<Data> {
  const { entry } = useResock();
  const client = entry.client;
  const [joined, setJoined] = useState<{ members: number } | null>(null);
  const [error, setError] = useState<ResockError | null>(null);
  useEffect(() => {
    let live = true;
    setJoined(null);
    setError(null);
    entry.joinRoom(room).then(
      (m) => live && setJoined({ members: m.payload.members }),
      (e: ResockError) => live && setError({ code: e.code, message: e.message }),
    );
    return () => {
      live = false;
      entry.leaveRoom(room); // the last useRoom of this room leaves it
    };
  }, [entry, room]);
  const store = useMemo(() => {
    let entries: readonly RoomEntry<Data>[] = [];
    const listeners = new Set<() => void>();
    const add = (e: RoomEntry<Data>) => {
      entries = [...entries, e].slice(-200);
      for (const l of listeners) l();
    };
    return {
      add,
      subscribe(onChange: () => void) {
        listeners.add(onChange);
        const off = client.on("message", (m) => {
          if (m.type !== "room_message") return;
          const p = (m as RoomMessage<Data>).payload;
          if (p.room === room) add({ room, from: p.from, data: p.data, mine: false });
        });
        return () => {
          listeners.delete(onChange);
          off();
        };
      },
      get: () => entries,
    };
  }, [client, room]);
  const messages = useSyncExternalStore(store.subscribe, store.get, store.get);
  const send = useCallback(
    (data: Data) => {
      const ok = client.send({ type: "room_message", payload: { room, data } });
      if (ok) store.add({ room, from: "", data, mine: true });
      return ok;
    },
    [client, room, store],
  );
  return { joined: joined !== null, members: joined?.members ?? null, messages, send, error };
}

export interface NotificationsState {
  items: readonly Notification[];
  unread: number;
  /** Loading the list over REST (first load, and after a resync). */
  loading: boolean;
  error: string | null;
  markRead: (ids: number[]) => Promise<void>;
  markAllRead: () => Promise<void>;
  /** Reloads the list over REST. */
  reload: () => Promise<void>;
}

/**
 * The user's notifications: loaded over REST (`GET /api/notifications`), kept live by
 * `new_notification`, `notification_read` and `all_read`, and reloaded after a resync.
 * Marking read goes over REST; every tab of the user updates from the pushed message.
 */
export function useNotifications(): NotificationsState {
  const { entry, apiBase } = useResock();
  const [items, setItems] = useState<readonly Notification[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  // While a reload is in flight, live updates are applied to the current list and recorded,
  // then applied again on top of the reloaded list: none is lost to the response.
  const reloading = useRef<{ generation: number; ops: ((list: readonly Notification[]) => readonly Notification[])[] }>({
    generation: 0,
    ops: [],
  });

  const call = useCallback(
    async (method: string, path: string, body?: unknown) => {
      const t = await entry.currentToken();
      const res = await fetch(`${apiBase}${path}`, {
        method,
        headers: { "content-type": "application/json", ...(t ? { authorization: `Bearer ${t}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}`);
      return res.json();
    },
    [apiBase, entry],
  );

  const reload = useCallback(async () => {
    const generation = ++reloading.current.generation;
    reloading.current.ops = [];
    setLoading(true);
    try {
      const list = (await call("GET", "/api/notifications")) as Notification[];
      if (generation !== reloading.current.generation) return; // a newer reload wins
      const ops = reloading.current.ops;
      reloading.current.ops = [];
      setItems(ops.reduce<readonly Notification[]>((l, op) => op(l), list.slice().reverse())); // newest first
      setError(null);
    } catch (e) {
      if (generation === reloading.current.generation) setError(String(e));
    } finally {
      if (generation === reloading.current.generation) setLoading(false);
    }
  }, [call]);

  useEffect(() => {
    void reload();
    const apply = (op: (list: readonly Notification[]) => readonly Notification[]) => {
      reloading.current.ops.push(op);
      setItems(op);
    };
    const offMessage = entry.client.on("message", (msg) => {
      switch (msg.type) {
        case "new_notification": {
          const n = (msg as Extract<ServerMessage, { type: "new_notification" }>).payload;
          apply((list) => (list.some((x) => x.id === n.id) ? list : [n, ...list]));
          break;
        }
        case "notification_read": {
          const ids = new Set((msg as Extract<ServerMessage, { type: "notification_read" }>).payload.notification_ids);
          apply((list) => list.map((x) => (ids.has(x.id) && !x.read ? { ...x, read: true } : x)));
          break;
        }
        case "all_read":
          apply((list) => list.map((x) => (x.read ? x : { ...x, read: true })));
          break;
      }
    });
    // Messages may have been missed (a new epoch, an incomplete resume): reload.
    const offResync = entry.client.on("resync", () => void reload());
    return () => {
      offMessage();
      offResync();
    };
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

  const unread = useMemo(() => items.filter((n) => !n.read).length, [items]);
  return { items, unread, loading, error, markRead, markAllRead, reload };
}
