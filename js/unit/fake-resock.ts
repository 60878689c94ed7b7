// A fake of the wasm package's JS API for the hooks' unit tests: a Client that records what is
// asked of it and emits what a test tells it to, and an `init` whose outcome a test decides.
type Listener = (value: unknown) => void;

export const fake = {
  clients: [] as Client[],
  initCalls: 0,
  /** What the next `init()` does; default: resolves. */
  nextInit: (): Promise<unknown> => Promise.resolve({}),
  /** How joins answer; default: joined with 1 member. */
  joinAnswer: (room: string): Promise<unknown> => Promise.resolve({ type: "joined", payload: { room, members: 1 } }),
  /** How requests answer; default: a server without presence (`unknown_type`). */
  requestAnswer: (type: string, _payload: { room?: string }): Promise<unknown> =>
    Promise.reject(Object.assign(new Error(`unknown message type ${type}`), { code: "unknown_type" })),
  reset() {
    fake.requestAnswer = (type) =>
      Promise.reject(Object.assign(new Error(`unknown message type ${type}`), { code: "unknown_type" }));
    fake.clients = [];
    fake.initCalls = 0;
    fake.nextInit = () => Promise.resolve({});
    fake.joinAnswer = (room) => Promise.resolve({ type: "joined", payload: { room, members: 1 } });
  },
};

export default function init(): Promise<unknown> {
  fake.initCalls += 1;
  return fake.nextInit();
}

export function isKnownMessage(m: { type: string }): boolean {
  return ["new_notification", "notification_read", "all_read", "task_update", "room_message", "presence"].includes(m.type);
}

export class Client {
  readonly options: Record<string, unknown>;
  readonly listeners = new Map<string, Set<Listener>>();
  state = "idle";
  transport = "websocket";
  role = "solo";
  connects = 0;
  closes = 0;
  freed = false;
  readonly joins: string[] = [];
  readonly leaves: string[] = [];
  readonly sent: unknown[] = [];
  constructor(options: Record<string, unknown>) {
    this.options = options;
    fake.clients.push(this);
  }
  private live() {
    if (this.freed) throw new Error("null pointer passed to rust (the fake: used after free)");
  }
  on(event: string, listener: Listener): () => void {
    this.live();
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }
  emit(event: string, value: unknown) {
    if (event === "state") this.state = value as string;
    for (const l of [...(this.listeners.get(event) ?? [])]) l(value);
  }
  listenerCount(event: string): number {
    return this.listeners.get(event)?.size ?? 0;
  }
  connect() {
    this.live();
    this.connects += 1;
  }
  /** The acks not given yet, by frame id: a test resolves or rejects them. */
  readonly acks = new Map<string, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  send(message: { id?: string }, options?: { ack?: boolean }): string | false | Promise<unknown> {
    this.live();
    this.sent.push(message);
    const id = message.id ?? String(this.sent.length);
    if (options?.ack) return new Promise((resolve, reject) => this.acks.set(id, { resolve, reject }));
    return id;
  }
  join(room: string): Promise<unknown> {
    this.live();
    this.joins.push(room);
    return fake.joinAnswer(room);
  }
  readonly requests: { type: string; payload: unknown }[] = [];
  request(type: string, payload: { room?: string }): Promise<unknown> {
    this.live();
    this.requests.push({ type, payload });
    return fake.requestAnswer(type, payload);
  }
  leave(room: string): Promise<unknown> {
    this.live();
    this.leaves.push(room);
    return Promise.resolve(undefined);
  }
  close() {
    this.live();
    this.closes += 1;
    this.emit("state", "closed");
  }
  free() {
    this.live();
    this.freed = true;
  }
}
