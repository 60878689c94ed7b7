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

/** One shared client and what the hooks read from it. */
class Entry {
  readonly client: Client;
  refs = 0;
  private closeTimer: ReturnType<typeof setTimeout> | null = null;
  private connection: ConnectionSnapshot = { state: "idle", retryAt: null, attempt: 0, lastError: null };
  private readonly connectionListeners = new Set<() => void>();

  constructor(options: ClientOptions) {
    this.client = new Client(options);
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

  acquire() {
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
        this.client.close();
        this.client.free();
        onClosed();
      }
    }, 0);
  }
}

const registry = new Map<string, Entry>();

function entryFor(options: ClientOptions): Entry {
  let entry = registry.get(options.url);
  if (!entry) {
    entry = new Entry(options);
    registry.set(options.url, entry);
  }
  return entry;
}

interface ResockContextValue {
  entry: Entry;
  apiBase: string | null;
  token: ClientOptions["token"];
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
  // The registry makes a second render (StrictMode) find the same client.
  const entry = entryFor(options);
  useEffect(() => {
    entry.acquire();
    return () => entry.release(() => registry.delete(options.url));
  }, [entry, options.url]);
  const value = useMemo<ResockContextValue>(
    () => ({ entry, apiBase: apiBase ?? defaultApiBase(options.url), token: options.token }),
    [entry, apiBase, options.url, options.token],
  );
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
  send: (data: Data) => boolean;
  error: ResockError | null;
}

/** Joins `room` on mount (and after every reconnect), leaves on unmount. */
export function useRoom<Data = unknown>(room: string): RoomState<Data> {
  const client = useClient();
  const [joined, setJoined] = useState<{ members: number } | null>(null);
  const [error, setError] = useState<ResockError | null>(null);
  useEffect(() => {
    let live = true;
    setJoined(null);
    setError(null);
    client.join(room).then(
      (m) => live && setJoined({ members: m.payload.members }),
      (e: ResockError) => live && setError({ code: e.code, message: e.message }),
    );
    return () => {
      live = false;
      client.leave(room).catch(() => {});
    };
  }, [client, room]);
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

async function bearer(token: ClientOptions["token"]): Promise<string | null> {
  const t = typeof token === "function" ? await token() : token;
  return t ?? null;
}

/**
 * The user's notifications: loaded over REST (`GET /api/notifications`), kept live by
 * `new_notification`, `notification_read` and `all_read`, and reloaded after a resync.
 * Marking read goes over REST; every tab of the user updates from the pushed message.
 */
export function useNotifications(): NotificationsState {
  const { entry, apiBase, token } = useResock();
  const [items, setItems] = useState<readonly Notification[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);

  const call = useCallback(
    async (method: string, path: string, body?: unknown) => {
      const t = await bearer(token);
      const res = await fetch(`${apiBase}${path}`, {
        method,
        headers: { "content-type": "application/json", ...(t ? { authorization: `Bearer ${t}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}`);
      return res.json();
    },
    [apiBase, token],
  );

  const reload = useCallback(async () => {
    setLoading(true);
    try {
      const list = (await call("GET", "/api/notifications")) as Notification[];
      setItems(list.slice().reverse()); // newest first
      setError(null);
    } catch (e) {
      setError(String(e));
    } finally {
      setLoading(false);
    }
  }, [call]);

  useEffect(() => {
    void reload();
    const client = entry.client;
    const offMessage = client.on("message", (msg) => {
      switch (msg.type) {
        case "new_notification": {
          const n = (msg as Extract<ServerMessage, { type: "new_notification" }>).payload;
          setItems((list) => (list.some((x) => x.id === n.id) ? list : [n, ...list]));
          break;
        }
        case "notification_read": {
          const ids = new Set((msg as Extract<ServerMessage, { type: "notification_read" }>).payload.notification_ids);
          setItems((list) => list.map((x) => (ids.has(x.id) ? { ...x, read: true } : x)));
          break;
        }
        case "all_read":
          setItems((list) => list.map((x) => (x.read ? x : { ...x, read: true })));
          break;
      }
    });
    // Messages may have been missed (a new epoch, an incomplete resume): reload.
    const offResync = client.on("resync", () => void reload());
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
