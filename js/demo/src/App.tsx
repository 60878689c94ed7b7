import { memo, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import type { ClientOptions } from "resock/full";
import {
  isMessage,
  ResockProvider,
  useClient,
  useConnectionState,
  useMessages,
  useNotifications,
  useResockStatus,
  useRoom,
  type NotificationsState,
} from "resock/full/react";

const origin = window.location.origin;
/** The chat room: ?room=NAME, default "general". */
const roomName = new URLSearchParams(window.location.search).get("room") ?? "general";
const wsUrl = origin.replace(/^http/, "ws") + "/ws";

async function devToken(userId: string, role?: string): Promise<string> {
  const res = await fetch(`${origin}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_id: userId, role }),
  });
  if (!res.ok) throw new Error(`could not sign in: ${await serverError(res)}`);
  return ((await res.json()) as { token: string }).token;
}

/** The server's own error message (`{"error": ...}`), with the status. */
async function serverError(res: Response): Promise<string> {
  let why = "";
  try {
    const body = (await res.json()) as { error?: unknown };
    if (typeof body.error === "string") why = `: ${body.error}`;
  } catch {
    // not JSON
  }
  const hint = res.status === 404 ? " (the server has no /dev routes: start the fixture with --dev)" : "";
  return `HTTP ${res.status}${why}${hint}`;
}

export function App() {
  const [session, setSession] = useState<{ user: string; token: string } | null>(null);
  const options = useMemo<ClientOptions | null>(
    // `share`: the user's tabs keep one socket between them (?share=0 for one per tab).
    () =>
      session && {
        url: wsUrl,
        ticketUrl: `${origin}/ws/ticket`,
        token: session.token,
        share: new URLSearchParams(window.location.search).get("share") === "0" ? undefined : session.user,
      },
    [session],
  );
  if (!session || !options) return <SignIn onSignIn={(user, token) => setSession({ user, token })} />;
  return (
    <ResockProvider
      options={options}
      userKey={session.user}
      errorFallback={(error, retry) => (
        <section className="load-error" role="alert" data-testid="load-error">
          <h2>Could not load the realtime client</h2>
          <p className="muted">{error.message}</p>
          <button className="primary" onClick={retry}>
            Try again
          </button>
        </section>
      )}
    >
      <Shell user={session.user} onSignOut={() => setSession(null)} />
    </ResockProvider>
  );
}

function SignIn({ onSignIn }: { onSignIn: (user: string, token: string) => void }) {
  const initial = new URLSearchParams(window.location.search).get("user") ?? "alice";
  const [user, setUser] = useState(initial);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      onSignIn(user, await devToken(user));
    } catch (err) {
      setError(String(err));
    }
  };
  return (
    <section className="signin">
      <h2>Sign in (dev token)</h2>
      <form className="row" onSubmit={submit}>
        <input data-testid="user" value={user} onChange={(e) => setUser(e.target.value)} aria-label="user id" />
        <button className="primary" data-testid="sign-in" type="submit">
          Sign in
        </button>
      </form>
      {error && <p className="muted">{error}</p>}
    </section>
  );
}

/** One notifications state for the bell and the list (one REST load, one listener). */
function Shell({ user, onSignOut }: { user: string; onSignOut: () => void }) {
  const notifications = useNotifications();
  return (
    <>
      <header>
        <h1>
          resock demo <span className="who">— {user}</span>
        </h1>
        <ConnectionIndicator />
        <Sharing user={user} />
        <Bell unread={notifications.unread} />
        <button className="signout" data-testid="sign-out" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main>
        <Notifications state={notifications} />
        <Tasks />
        <Chat user={user} />
        <DevTools user={user} />
      </main>
    </>
  );
}

/**
 * Which tab holds the socket, and how many sockets the server sees for this user (`/dev/stats`):
 * with `share`, one for all of the user's tabs.
 */
function Sharing({ user }: { user: string }) {
  const client = useClient();
  const [view, setView] = useState<{ role: string; sockets: number | null }>({ role: "solo", sockets: null });
  useEffect(() => {
    let live = true;
    const poll = async () => {
      let sockets: number | null = null;
      try {
        const res = await fetch(`${origin}/dev/stats`);
        if (res.ok) {
          const stats = (await res.json()) as { users: Record<string, { open: number }> };
          sockets = stats.users[user]?.open ?? 0;
        }
      } catch {
        // the fixture is restarting: shown as unknown
      }
      if (live) setView({ role: client?.role ?? "solo", sockets });
    };
    void poll();
    const t = setInterval(() => void poll(), 1000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [client, user]);
  const tab = view.role === "leader" ? "this tab holds the socket" : view.role === "follower" ? "via another tab" : "own socket";
  return (
    <span className="muted sharing" data-testid="sharing" data-role={view.role} data-sockets={view.sockets ?? ""}>
      {tab} · {view.sockets === null ? "?" : view.sockets} socket{view.sockets === 1 ? "" : "s"} for {user}
    </span>
  );
}

function ConnectionIndicator() {
  const { state, retryAt, lastError } = useConnectionState();
  const { retry } = useResockStatus();
  const [, tick] = useState(0);
  useEffect(() => {
    if (state !== "reconnecting") return;
    const t = setInterval(() => tick((n) => n + 1), 100);
    return () => clearInterval(t);
  }, [state]);
  let text: string = state;
  if (state === "open") text = "connected";
  if (state === "reconnecting") {
    // Read the clock at render: the first frame after a retry is scheduled is right too.
    const left = retryAt === null ? 0 : Math.max(0, retryAt - Date.now());
    text = left > 0 ? `reconnecting in ${(left / 1000).toFixed(1)} s` : "reconnecting…";
  }
  if (state === "closed") text = "disconnected";
  return (
    <span className="indicator" data-testid="connection" data-state={state}>
      <span className={`dot ${state}`} />
      <span className="state-text">{text}</span>
      {state === "closed" && (
        <>
          {lastError && (
            <span className="reason" data-testid="closed-reason" title={lastError.message}>
              {lastError.message || lastError.code}
            </span>
          )}
          <button className="primary" data-testid="reconnect" onClick={retry}>
            Reconnect
          </button>
        </>
      )}
    </span>
  );
}

function Bell({ unread }: { unread: number }) {
  return (
    <button className="bell" aria-label={`${unread} unread notifications`} onClick={() => document.getElementById("notifications")?.scrollIntoView()}>
      <svg width="18" height="18" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2" aria-hidden="true">
        <path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9" />
        <path d="M13.7 21a2 2 0 0 1-3.4 0" />
      </svg>
      <span className="badge" data-testid="unread">
        {unread}
      </span>
    </button>
  );
}

function Notifications({ state }: { state: NotificationsState }) {
  const { items, unread, loading, error, markRead, markAllRead } = state;
  return (
    <section id="notifications">
      <h2>
        Notifications <span className="muted">({unread} unread)</span>
      </h2>
      {loading && items.length === 0 && (
        <p className="muted loading" data-testid="notifications-loading">
          Loading notifications…
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {!loading && !error && items.length === 0 && <p className="muted empty">No notifications yet. Use “Notify me” below.</p>}
      <button data-testid="mark-all-read" onClick={() => void markAllRead()} disabled={unread === 0}>
        Mark all read
      </button>
      <ul>
        {items.map((n) => (
          <li key={n.id} className={n.read ? "read" : "unread"} data-testid="notification" data-read={n.read}>
            <span style={{ flex: 1 }}>
              <strong>{n.title}</strong> <span className="muted">{n.body}</span>
            </span>
            {!n.read && (
              <button data-testid="mark-read" onClick={() => void markRead([n.id])}>
                Mark read
              </button>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

/** Re-renders only when a task update arrives (useMessages' selector), not on other traffic. */
const Tasks = memo(function Tasks() {
  const renders = useRef(0);
  renders.current += 1;
  const updates = useMessages(
    (m) => (isMessage(m, "task_update") ? { seq: m.seq, action: m.payload.action, task: m.payload.task as { id?: string; title?: string } } : undefined),
    { limit: 20 },
  );
  return (
    <section data-testid="tasks" data-renders={renders.current}>
      <h2>Task updates</h2>
      {updates.length === 0 && <p className="muted">No task updates yet.</p>}
      <ul>
        {[...updates].reverse().map((u) => (
          <li key={u.seq} data-testid="task-update">
            <strong>{u.action}</strong> {u.task.title ?? u.task.id}
          </li>
        ))}
      </ul>
    </section>
  );
});

function Chat({ user }: { user: string }) {
  const room = useRoom<string>(roomName);
  const { state } = useConnectionState();
  const [text, setText] = useState("");
  const send = (e: FormEvent) => {
    e.preventDefault();
    if (!text.trim()) return;
    room.send(text);
    setText("");
  };
  return (
    <section className="chat">
      <h2>
        Chat: {roomName}{" "}
        <span className="muted" data-testid="room-status">
          {state !== "open"
            ? "offline: messages wait"
            : room.joined
              ? `joined, ${room.members} here`
              : room.error
                ? `not joined: ${room.error.message}`
                : "joining…"}
        </span>
      </h2>
      <ul data-testid="chat">
        {room.messages.length === 0 && <li className="muted empty">No messages yet. Say hello.</li>}
        {room.messages.map((m, i) => (
          <li key={m.id ?? i} data-testid="chat-message" data-status={m.status} className={`msg ${m.status}`}>
            <strong>{m.mine ? user : m.from}</strong> <span className="text">{m.data}</span>
            {m.status === "pending" && (
              <span className="mark" data-testid="pending" title="queued: sent when the connection is back">
                sending…
              </span>
            )}
            {m.status === "failed" && <span className="mark failed">not sent</span>}
          </li>
        ))}
      </ul>
      <form className="row" onSubmit={send}>
        <input data-testid="chat-input" value={text} onChange={(e) => setText(e.target.value)} placeholder="Say something" />
        <button className="primary" data-testid="chat-send" type="submit">
          Send
        </button>
      </form>
    </section>
  );
}

function DevTools({ user }: { user: string }) {
  const [status, setStatus] = useState("");
  const asService = async (path: string, body: unknown) => {
    const token = await devToken("demo-backend", "service");
    const res = await fetch(`${origin}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
    setStatus(res.ok ? `${path}: done` : `${path}: ${await serverError(res)}`);
  };
  const n = Math.floor(Math.random() * 1000);
  return (
    <section>
      <h2>Dev tools (what a back end would do)</h2>
      <div className="row" style={{ flexWrap: "wrap" }}>
        <button data-testid="send-notification" onClick={() => void asService("/api/notifications", { user_id: user, title: `Hello #${n}`, body: "from the demo" })}>
          Notify me
        </button>
        <button data-testid="send-task" onClick={() => void asService(`/api/tasks/task-${n}`, { user_id: user, action: "completed", task: { title: `Task ${n}` } })}>
          Update a task
        </button>
        <button
          data-testid="drop"
          onClick={() =>
            void fetch(`${origin}/dev/drop`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ user_id: user, refuse_ms: 3000 }) }).then(
              async (r) => setStatus(r.ok ? "/dev/drop: done (new connections refused for 3 s)" : `/dev/drop: ${await serverError(r)}`),
              (e: unknown) => setStatus(`/dev/drop: ${e instanceof Error ? e.message : String(e)}`),
            )
          }
        >
          Cut my connection
        </button>
      </div>
      <p className="muted">{status}</p>
    </section>
  );
}
