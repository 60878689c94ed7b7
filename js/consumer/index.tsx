// Type-checked with `tsc --noEmit --strict` against the built package installed by path.
import init, {
  Client,
  isKnownMessage,
  type ConnectionState,
  type JoinedMessage,
  type ResockError,
  type ServerMessage,
} from "resock";
import { isMessage, ResockProvider, useConnectionState, useMessages, useNotifications, useRoom } from "resock/react";

function assertNever(x: never): never {
  throw new Error(`unhandled message ${JSON.stringify(x)}`);
}

/** The compiler checks this switch covers every known message type. */
export function describe(msg: ServerMessage): string {
  switch (msg.type) {
    case "new_notification":
      return `notification ${msg.payload.id}: ${msg.payload.title} (${msg.payload.read ? "read" : "unread"})`;
    case "notification_read":
      return `read ${msg.payload.notification_ids.join(",")}`;
    case "all_read":
      return "all read";
    case "task_update":
      return `task ${msg.payload.action}`;
    case "room_message":
      return `${msg.payload.from} in ${msg.payload.room}`;
    case "presence":
      return `${msg.payload.members} in ${msg.payload.room}`;
    default:
      return assertNever(msg);
  }
}

/** Replies are typed too: `join` resolves with the `joined` message. */
export function describeJoined(m: JoinedMessage): string {
  return `joined ${m.payload.room} (${m.payload.members})`;
}

export async function main(): Promise<void> {
  await init();
  const client = new Client({
    url: "ws://127.0.0.1:8080/ws",
    ticketUrl: "http://127.0.0.1:8080/ws/ticket",
    token: async () => "token",
    reconnect: { initialDelayMs: 500, maxDelayMs: 30000, maxAttempts: null },
    heartbeatGraceMs: 15000,
    connectTimeoutMs: 10000,
    sendRate: { max: 8, windowMs: 1000 },
  });
  const off: () => void = client.on("message", (msg) => {
    if (isKnownMessage(msg)) console.log(describe(msg));
    else console.log("unknown type", msg.type, msg.payload);
  });
  client.on("state", (s: ConnectionState) => console.log(s));
  client.on("error", (e: ResockError) => console.log(e.code, e.message, e.closeCode));
  client.on("retry", ({ attempt, delayMs }) => console.log(attempt, delayMs));
  client.connect();
  const sent: string | false = client.send({ type: "room_message", payload: { room: "general", data: "hi" } });
  const joined = await client.join("general");
  const members: number = joined.payload.members;
  console.log(describeJoined(joined));
  const reply = await client.request("some_type", { a: 1 }, { timeoutMs: 5000 });
  console.log(sent, members, reply, client.state, client.queued);
  off();
  client.close();
  // @ts-expect-error: unknown event names are refused by the types
  client.on("nope", () => {});
}

export function Panel() {
  const { state, retryAt } = useConnectionState();
  const tasks = useMessages((m) => (m.type === "task_update" ? m : undefined));
  // Typed selectors: by type, by type with a map, and narrowed with isMessage; no cast.
  const updates = useMessages("task_update");
  const actions: readonly string[] = useMessages("task_update", (m) => m.payload.action);
  const titles: readonly string[] = useMessages((m) => (isMessage(m, "new_notification") ? m.payload.title : undefined));
  // @ts-expect-error: not a known message type
  useMessages("nope");
  console.log(updates.map((u) => u.payload.task), actions, titles);
  const room = useRoom<string>("general");
  const { items, unread, markRead, markAllRead } = useNotifications();
  return (
    <div>
      {state} {retryAt} {tasks.length} {room.joined ? room.members : "-"} {unread}
      {room.messages.map((m) => (
        <p key={m.from}>{m.data}</p>
      ))}
      {items.map((n) => (
        <button key={n.id} onClick={() => void markRead([n.id])}>
          {n.title}
        </button>
      ))}
      <button onClick={() => void markAllRead()}>all</button>
      <button onClick={() => room.send("hi")}>send</button>
    </div>
  );
}

export function App() {
  return (
    <ResockProvider options={{ url: "ws://127.0.0.1:8080/ws", token: "t" }}>
      <Panel />
    </ResockProvider>
  );
}
