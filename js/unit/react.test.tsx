// Unit tests of resock/react's provider and hooks against a fake Client (unit/fake-resock.ts):
// children at once, StrictMode, a user switch, a failed wasm load and its retry, reload after
// open, stale error fields, selector stability, messages between render and subscribe.
import { StrictMode, useRef, type ReactNode } from "react";
import { act, cleanup, render, renderHook, screen, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

type R = typeof import("../src/react.tsx");
type F = typeof import("./fake-resock.ts");
let R: R;
let F: F;

beforeEach(async () => {
  vi.resetModules();
  F = await import("./fake-resock.ts");
  R = await import("../src/react.tsx");
  F.fake.reset();
  vi.stubGlobal("fetch", vi.fn(async () => json(200, [])));
});
afterEach(async () => {
  cleanup();
  await tick(); // the provider closes its client after a timer
  vi.unstubAllGlobals();
});

const tick = () => act(() => new Promise<void>((r) => setTimeout(r, 5)));
const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const b64url = (s: string) => btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const jwt = (sub: string) => `${b64url('{"alg":"HS256"}')}.${b64url(JSON.stringify({ sub, exp: 9e9 }))}.sig`;
const URL_ = "ws://127.0.0.1:9/ws";

function note(id: number, title: string, read = false) {
  return { id, title, body: "", created_at: "2026-01-01T00:00:00.000Z", read };
}

function wrapper(props: Partial<Parameters<R["ResockProvider"]>[0]> = {}, strict = false) {
  return ({ children }: { children: ReactNode }) => {
    const p = <R.ResockProvider options={{ url: URL_, token: jwt("alice") }} {...props}>{children}</R.ResockProvider>;
    return strict ? <StrictMode>{p}</StrictMode> : p;
  };
}

describe("provider", () => {
  test("children render at once, with no wrapper element; hooks report loading until the client exists", async () => {
    let resolve!: () => void;
    F.fake.nextInit = () => new Promise<unknown>((r) => (resolve = () => r({})));
    function Probe() {
      const s = R.useResockStatus();
      const c = R.useConnectionState();
      const n = R.useNotifications();
      return <span data-testid="probe">{`${s.status} ${c.state} ${n.loading} ${R.useClient() === null}`}</span>;
    }
    const { container } = render(
      <R.ResockProvider options={{ url: URL_, token: jwt("alice") }}>
        <Probe />
      </R.ResockProvider>,
    );
    expect(container.innerHTML).toBe('<span data-testid="probe">loading idle true true</span>');
    expect(F.fake.clients).toHaveLength(0); // no wasm object before init, and none during render
    await act(async () => resolve());
    await waitFor(() => expect(screen.getByTestId("probe").textContent).toBe("ready idle false false"));
    expect(F.fake.clients).toHaveLength(1);
    expect(F.fake.clients[0].connects).toBe(1);
  });

  test("under StrictMode one client, connected, and closed and freed after the last unmount", async () => {
    const { result, unmount } = renderHook(() => R.useClient(), { wrapper: wrapper({}, true) });
    await waitFor(() => expect(result.current).not.toBeNull());
    await tick();
    expect(F.fake.clients).toHaveLength(1);
    const c = F.fake.clients[0];
    expect(c.connects).toBeGreaterThanOrEqual(1);
    expect(c.closes).toBe(0);
    unmount();
    await tick();
    expect(c.closes).toBe(1);
    expect(c.freed).toBe(true);
  });

  test("a failed wasm load calls onError, shows errorFallback, and retry loads again", async () => {
    F.fake.nextInit = () => Promise.reject(new Error("404 resock_bg.wasm"));
    const onError = vi.fn();
    render(
      <R.ResockProvider
        options={{ url: URL_, token: "t" }}
        onError={onError}
        errorFallback={(e, retry) => (
          <button data-testid="retry" onClick={retry}>
            {e.message}
          </button>
        )}
      >
        <span data-testid="child">child</span>
      </R.ResockProvider>,
    );
    await waitFor(() => expect(screen.getByTestId("retry").textContent).toBe("404 resock_bg.wasm"));
    expect(onError).toHaveBeenCalledTimes(1);
    expect(screen.queryByTestId("child")).toBeNull();
    F.fake.nextInit = () => Promise.resolve({});
    await act(async () => screen.getByTestId("retry").click());
    await waitFor(() => expect(screen.getByTestId("child")).toBeTruthy());
    expect(F.fake.initCalls).toBe(2); // the rejected load was not kept
    await waitFor(() => expect(F.fake.clients).toHaveLength(1));
  });

  test("without errorFallback the children stay and useConnectionState reports load_failed", async () => {
    F.fake.nextInit = () => Promise.reject(new Error("offline"));
    const { result } = renderHook(() => [R.useConnectionState(), R.useResockStatus()] as const, { wrapper: wrapper() });
    await waitFor(() => expect(result.current[1].status).toBe("error"));
    expect(result.current[0].state).toBe("closed");
    expect(result.current[0].lastError).toEqual({ code: "load_failed", message: "offline" });
    F.fake.nextInit = () => Promise.resolve({});
    act(() => result.current[1].retry());
    await waitFor(() => expect(result.current[1].status).toBe("ready"));
    expect(result.current[0]).toEqual({ state: "idle", retryAt: null, attempt: 0, lastError: null, transport: "websocket", role: "solo" });
  });

  test("a new user (token subject, or userKey) gets a new client and only the new user's data", async () => {
    const fetchMock = vi.fn(async (_url: string, init: RequestInit) => {
      const auth = (init.headers as Record<string, string>).authorization;
      return json(200, auth === `Bearer ${jwt("alice")}` ? [note(1, "for alice")] : [note(2, "for bob")]);
    });
    vi.stubGlobal("fetch", fetchMock);
    let token = jwt("alice");
    function Wrapper({ children }: { children: ReactNode }) {
      return <R.ResockProvider options={{ url: URL_, token }}>{children}</R.ResockProvider>;
    }
    const { result, rerender } = renderHook(() => R.useNotifications(), { wrapper: Wrapper });
    await waitFor(() => expect(result.current.items.map((n) => n.title)).toEqual(["for alice"]));
    const alice = F.fake.clients[0];
    token = jwt("bob");
    rerender();
    // Never alice's list under bob's name, not even for one render.
    expect(result.current.items.map((n) => n.title)).not.toContain("for alice");
    await waitFor(() => expect(result.current.items.map((n) => n.title)).toEqual(["for bob"]));
    await tick();
    expect(F.fake.clients).toHaveLength(2);
    expect(alice.closes).toBe(1);
    expect(alice.freed).toBe(true);
    const bob = F.fake.clients[1];
    act(() => bob.emit("message", { type: "new_notification", seq: 1, payload: note(3, "bob live") }));
    expect(result.current.items.map((n) => n.title)).toEqual(["bob live", "for bob"]);
  });

  test("userKey decides the identity when the token is a function", async () => {
    let user = "alice";
    function Wrapper({ children }: { children: ReactNode }) {
      return (
        <R.ResockProvider options={{ url: URL_, token: () => user }} userKey={user}>
          {children}
        </R.ResockProvider>
      );
    }
    const { result, rerender } = renderHook(() => R.useClient(), { wrapper: Wrapper });
    await waitFor(() => expect(result.current).not.toBeNull());
    const first = result.current;
    rerender(); // same user: same client
    expect(result.current).toBe(first);
    user = "bob";
    rerender();
    await waitFor(() => expect(result.current).not.toBe(first));
    expect(result.current).not.toBeNull();
    await tick();
    expect(F.fake.clients[0].freed).toBe(true);
  });

  test("retry() after the client closed for good makes a new client", async () => {
    const { result } = renderHook(() => [R.useResockStatus(), R.useConnectionState(), R.useClient()] as const, { wrapper: wrapper() });
    await waitFor(() => expect(result.current[2]).not.toBeNull());
    const first = F.fake.clients[0];
    act(() => {
      first.emit("error", { code: "auth_failed", message: "refused twice" });
      first.emit("state", "closed");
    });
    expect(result.current[1].state).toBe("closed");
    expect(result.current[1].lastError?.code).toBe("auth_failed");
    act(() => result.current[0].retry());
    await waitFor(() => expect(F.fake.clients).toHaveLength(2));
    await waitFor(() => expect(result.current[2]).toBe(F.fake.clients[1] as unknown));
    expect(F.fake.clients[1].connects).toBe(1);
    await tick();
    expect(first.freed).toBe(true);
    expect(result.current[1].state).toBe("idle");
  });

  test("tokenSubject reads the sub of a JWT and nothing else", () => {
    expect(R.tokenSubject(jwt("carol"))).toBe("carol");
    expect(R.tokenSubject("not-a-jwt")).toBeNull();
    expect(R.tokenSubject(() => "x")).toBeNull();
  });
});

describe("hooks", () => {
  async function ready<T>(hook: () => T) {
    const r = renderHook(hook, { wrapper: wrapper() });
    await waitFor(() => expect(F.fake.clients).toHaveLength(1));
    await tick();
    return { ...r, client: F.fake.clients[0] };
  }

  test("useConnectionState clears attempt and lastError once open", async () => {
    const { result, client } = await ready(() => R.useConnectionState());
    act(() => {
      client.emit("state", "reconnecting");
      client.emit("retry", { attempt: 5, delayMs: 1000 });
      client.emit("error", { code: "server_closed", message: "bye", closeCode: 1011 });
    });
    expect(result.current.attempt).toBe(5);
    expect(result.current.lastError?.code).toBe("server_closed");
    expect(result.current.retryAt).not.toBeNull();
    act(() => client.emit("state", "open"));
    expect(result.current).toEqual({ state: "open", retryAt: null, attempt: 0, lastError: null, transport: "websocket", role: "solo" });
  });

  test("useNotifications reloads on the first open after a failed load, and clears its error", async () => {
    const fetchMock = vi.fn(async () => {
      throw new TypeError("Failed to fetch");
    });
    vi.stubGlobal("fetch", fetchMock);
    const { result, client } = await ready(() => R.useNotifications());
    await waitFor(() => expect(result.current.error).toMatch(/Failed to fetch/));
    expect(result.current.loading).toBe(false);
    fetchMock.mockImplementation(async () => json(200, [note(1, "hello")]));
    act(() => client.emit("state", "open"));
    await waitFor(() => expect(result.current.items.map((n) => n.title)).toEqual(["hello"]));
    expect(result.current.error).toBeNull();
    const calls = fetchMock.mock.calls.length;
    act(() => {
      client.emit("state", "reconnecting");
      client.emit("state", "open");
    });
    await tick();
    expect(fetchMock.mock.calls.length).toBe(calls); // a good load is not repeated on every open
  });

  test("useNotifications shows the server's own error message", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json(401, { error: "token expired" })));
    const { result } = await ready(() => R.useNotifications());
    await waitFor(() => expect(result.current.error).toBe("GET /api/notifications: HTTP 401: token expired"));
  });

  test("useNotifications: after a reload the list is what the server says (updates between reloads are not replayed on it)", async () => {
    const fetchMock = vi.fn(async () => json(200, []));
    vi.stubGlobal("fetch", fetchMock);
    const { result, client } = await ready(() => R.useNotifications());
    await waitFor(() => expect(result.current.loading).toBe(false));
    act(() => client.emit("message", { type: "new_notification", seq: 1, payload: note(7, "live") }));
    expect(result.current.items.map((n) => n.id)).toEqual([7]);
    // The server no longer has it (say the store dropped it): the reload shows what it says.
    await act(() => result.current.reload());
    expect(result.current.items).toEqual([]);
  });

  test("useNotifications: a message during a reload is applied on top of its response", async () => {
    let answer!: (r: Response) => void;
    vi.stubGlobal("fetch", vi.fn(() => new Promise<Response>((r) => (answer = r))));
    const { result, client } = await ready(() => R.useNotifications());
    act(() => client.emit("message", { type: "new_notification", seq: 2, payload: note(2, "during") }));
    await act(async () => answer(json(200, [note(1, "stored")])));
    await waitFor(() => expect(result.current.items.map((n) => n.id)).toEqual([2, 1]));
    expect(result.current.unread).toBe(2);
  });

  test("useMessages keeps its values and subscription across renders with a new selector each time", async () => {
    const renders = { n: 0 };
    const { result, rerender, client } = await ready(() => {
      renders.n += 1;
      return R.useMessages((m) => (R.isMessage(m, "task_update") ? m.payload.action : undefined));
    });
    const listeners = client.listenerCount("message");
    act(() => client.emit("message", { type: "task_update", seq: 1, payload: { action: "a", task: {} } }));
    rerender();
    rerender();
    expect(client.listenerCount("message")).toBe(listeners);
    const before = renders.n;
    act(() => client.emit("message", { type: "new_notification", seq: 2, payload: note(1, "x") }));
    expect(renders.n).toBe(before); // not selected: no render
    act(() => client.emit("message", { type: "task_update", seq: 3, payload: { action: "b", task: {} } }));
    expect(renders.n).toBe(before + 1);
    expect(result.current).toEqual(["a", "b"]);
  });

  test("useMessages(type) selects one type, typed", async () => {
    const { result, client } = await ready(() => R.useMessages("task_update", { limit: 2 }));
    act(() => {
      for (const action of ["a", "b", "c"]) client.emit("message", { type: "task_update", payload: { action, task: null } });
      client.emit("message", { type: "all_read", payload: {} });
    });
    expect(result.current.map((m) => m.payload.action)).toEqual(["b", "c"]);
  });

  test("a message that arrives between a render and its subscription is not missed", async () => {
    const { client } = await ready(() => null);
    let emitted = false;
    function Emitter() {
      // Emits during the first render that has the client: after Listener rendered with it,
      // before either subscribed.
      if (R.useClient() && !emitted) {
        emitted = true;
        client.emit("message", { type: "task_update", payload: { action: "early", task: null } });
      }
      return null;
    }
    function Listener() {
      const r = useRef(0);
      r.current += 1;
      const tasks = R.useMessages("task_update");
      return <span data-testid="tasks">{tasks.map((t) => t.payload.action).join(",")}</span>;
    }
    const Wrapper = wrapper();
    // Not the same provider tree: reuse the client of the URL and user (the registry shares it).
    render(
      <Wrapper>
        <Listener />
        <Emitter />
      </Wrapper>,
    );
    await waitFor(() => expect(screen.getByTestId("tasks").textContent).toBe("early"));
    expect(F.fake.clients).toHaveLength(1);
  });

  test("useRoom joins once per room, takes its messages and its own sends, leaves after the last user of the room", async () => {
    let show = 2;
    const { result, client, rerender } = await ready(() => {
      const a = R.useRoom<string>("general");
      return [a, useRoomMaybe(show >= 2), useRoomMaybe(show >= 1)] as const;
    });
    await waitFor(() => expect(result.current[0].joined).toBe(true));
    expect(result.current[0].members).toBe(1);
    act(() => client.emit("message", { type: "room_message", payload: { room: "general", from: "bob", data: "hi" } }));
    act(() => client.emit("message", { type: "room_message", payload: { room: "other", from: "bob", data: "no" } }));
    let id: string | false = false;
    act(() => void (id = result.current[0].send("hey")));
    expect(result.current[0].messages.map((m) => [m.from, m.data, m.mine, m.status])).toEqual([
      ["bob", "hi", false, "sent"],
      ["", "hey", true, "pending"],
    ]);
    expect(client.sent).toEqual([{ type: "room_message", id, payload: { room: "general", data: "hey" } }]);
    await act(async () => client.acks.get(id as string)?.resolve({ type: "ack", payload: {} }));
    expect(result.current[0].messages[1].status).toBe("sent");
    act(() => void (id = result.current[0].send("lost")));
    await act(async () => client.acks.get(id as string)?.reject(Object.assign(new Error("closed"), { code: "closed" })));
    expect(result.current[0].messages[2].status).toBe("failed");
    show = 1;
    rerender();
    await tick();
    expect(client.leaves).toEqual([]); // "lobby" still has a user
    show = 0;
    rerender();
    await tick();
    expect(client.leaves).toEqual(["lobby"]);
  });

  test("useRoom keeps members current from the server's presence messages", async () => {
    F.fake.requestAnswer = (type, payload) =>
      type === "presence" ? Promise.resolve({ type: "presence", id: "x", payload: { room: payload.room, members: 2 } }) : Promise.reject(new Error("no"));
    const { result, client } = await ready(() => R.useRoom("general"));
    await waitFor(() => expect(result.current.members).toBe(2)); // joined said 1; presence answered 2
    expect(client.requests).toEqual([{ type: "presence", payload: { room: "general" } }]);
    act(() => client.emit("message", { type: "presence", payload: { room: "general", members: 3 } }));
    expect(result.current.members).toBe(3);
    act(() => client.emit("message", { type: "presence", payload: { room: "other", members: 9 } }));
    expect(result.current.members).toBe(3);
    // A new connection: asked again.
    act(() => {
      client.emit("state", "reconnecting");
      client.emit("state", "open");
    });
    await waitFor(() => expect(client.requests).toHaveLength(2));
  });

  test("useRoom against a server without presence keeps the count from the join", async () => {
    const { result, client } = await ready(() => R.useRoom("general"));
    await waitFor(() => expect(result.current.joined).toBe(true));
    await tick();
    expect(client.requests).toHaveLength(1);
    expect(result.current.members).toBe(1);
    expect(result.current.error).toBeNull();
  });

  test("useRoom asks again on the next open after a failed join", async () => {
    F.fake.joinAnswer = () => Promise.reject(Object.assign(new Error("timed out"), { code: "timeout" }));
    const { result, client } = await ready(() => R.useRoom("general"));
    await waitFor(() => expect(result.current.error?.code).toBe("timeout"));
    expect(result.current.joined).toBe(false);
    F.fake.joinAnswer = (room) => Promise.resolve({ type: "joined", payload: { room, members: 3 } });
    act(() => client.emit("state", "open"));
    await waitFor(() => expect(result.current.joined).toBe(true));
    expect(result.current.members).toBe(3);
    expect(result.current.error).toBeNull();
  });
});

/** Rooms in a hook whose users come and go: "lobby" used by one or two calls (hook order fixed). */
function useRoomMaybe(on: boolean) {
  return R.useRoom(on ? "lobby" : "lobby-off");
}
