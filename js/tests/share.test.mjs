// Cross-tab sharing and the SSE fallback (issue 12) in headless Chromium: five tabs (pages of
// one context) of one user share one socket; 1 000 notifications reach every tab exactly once,
// in order, while the leader tab is closed twice; a follower's room message reaches another
// user; a room joined in two tabs and left in one stays joined. A page whose WebSocket always
// fails with 1006 receives 1 000 notifications over SSE, sends over POST, and moves back to
// WebSocket when it is allowed again, without a gap. Runs under scripts/with-fixture.sh (RESOCK_FIXTURE_URL),
// whose fixture serves js/demo/dist: the page and the built package are copied there.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { api, BASE, launchChromium, uid } from "./fixture.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SITE = join(ROOT, "js", "demo", "dist", "share-e2e");

let browser;
before(async () => {
  mkdirSync(SITE, { recursive: true });
  copyFileSync(join(ROOT, "js", "tests", "share.html"), join(SITE, "index.html"));
  for (const f of ["resock.js", "resock_bg.wasm"]) copyFileSync(join(ROOT, "pkg", "full", f), join(SITE, f));
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

async function sockets(user) {
  const stats = (await api("GET", "/dev/stats")).body;
  return stats.users[user]?.open ?? 0;
}

/** Polls `f` every 25 ms until it returns a truthy value or `ms` pass (then fails with `what`). */
async function until(what, f, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function openTab(context, user, query = "") {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[tab ${user}] ${e.message}`));
  await page.goto(`${BASE}/share-e2e/index.html?user=${encodeURIComponent(user)}${query}`);
  await page.waitForFunction(() => window.app && (window.app.ready || window.app.failed));
  const failed = await page.evaluate(() => window.app.failed);
  assert.equal(failed, null);
  return page;
}

const role = (p) => p.evaluate(() => window.client.role);
const state = (p) => p.evaluate(() => window.client.state);

async function leaderOf(tabs) {
  for (const p of tabs) if ((await role(p)) === "leader" && (await state(p)) === "open") return p;
  return null;
}

async function allOpen(tabs) {
  for (const p of tabs) if ((await state(p)) !== "open") return false;
  return true;
}

test("five tabs share one socket: 1 000 notifications exactly once in every tab, the leader closed twice", async () => {
  const user = uid("share");
  const context = await browser.newContext();
  try {
    const tabs = [];
    for (let i = 0; i < 5; i++) tabs.push(await openTab(context, user));
    await until("every tab open", () => allOpen(tabs));
    assert.ok(await leaderOf(tabs), "one tab leads");
    const roles = await Promise.all(tabs.map(role));
    assert.equal(roles.filter((r) => r === "leader").length, 1, `roles: ${roles}`);
    await until("one socket for the user", async () => (await sockets(user)) === 1);

    const service = (await api("POST", "/dev/token", { body: { user_id: "e2e-backend", role: "service" } })).body.token;
    const first = (await api("GET", "/dev/stats")).body.users[user]?.seq ?? 0;
    const N = 1000;
    let closing = Promise.resolve();
    const takeovers = [];
    for (let i = 1; i <= N; i++) {
      const res = await api("POST", "/api/notifications", { token: service, body: { user_id: user, title: `n${i}`, body: "share" } });
      assert.equal(res.status, 201);
      if (i === 300 || i === 650) {
        // Close the leader mid-stream; the stream goes on while another tab takes over.
        const leader = await leaderOf(tabs);
        assert.ok(leader, "a leader before the close");
        tabs.splice(tabs.indexOf(leader), 1);
        const t0 = Date.now();
        await leader.close();
        closing = until("another tab leads", () => leaderOf(tabs), 5_000).then(() => takeovers.push(Date.now() - t0));
        await closing;
      }
    }
    await closing;
    const want = Array.from({ length: N }, (_, i) => first + i + 1);
    for (const [i, p] of tabs.entries()) {
      await until(`tab ${i} has ${N} messages`, () => p.evaluate((n) => window.app.messages.length >= n, N), 30_000);
      const app = await p.evaluate(() => window.app);
      assert.deepEqual(app.messages, want, `tab ${i}: every message once, in order`);
      assert.deepEqual(app.resyncs, [], `tab ${i}: no resync`);
    }
    console.log(`[share] takeovers after closing the leader: ${takeovers.join(" ms, ")} ms`);
    for (const ms of takeovers) assert.ok(ms < 2_000, `another tab led within 2 s (${ms} ms)`);
    await until("one socket for the user again", async () => (await sockets(user)) === 1);
    assert.equal(tabs.length, 3);
  } finally {
    await context.close();
  }
});

test("without the Web Locks API each tab keeps its own socket, and sharing says so (role solo)", async () => {
  const user = uid("nolocks");
  const context = await browser.newContext();
  try {
    const tabs = [await openTab(context, user, "&nolocks=1"), await openTab(context, user, "&nolocks=1")];
    await until("every tab open", () => allOpen(tabs));
    assert.deepEqual(await Promise.all(tabs.map(role)), ["solo", "solo"]);
    await until("two sockets for the user", async () => (await sockets(user)) === 2);
  } finally {
    await context.close();
  }
});

test("a follower's room message reaches another user; a room joined in two tabs and left in one stays joined", async () => {
  const alice = uid("alice");
  const bob = uid("bob");
  const [ca, cb] = [await browser.newContext(), await browser.newContext()];
  try {
    const tabs = [await openTab(ca, alice), await openTab(ca, alice), await openTab(ca, alice)];
    const bobTab = await openTab(cb, bob);
    await until("every tab open", () => allOpen([...tabs, bobTab]));
    await until("one socket for alice", async () => (await sockets(alice)) === 1);
    const followers = [];
    for (const p of tabs) if ((await role(p)) === "follower") followers.push(p);
    assert.equal(followers.length, 2);
    const [f1, f2] = followers;

    await bobTab.evaluate(() => window.client.join("lobby"));
    await f1.evaluate(() => window.client.join("lobby"));
    await f1.evaluate(() => window.client.send({ type: "room_message", payload: { room: "lobby", data: "from a follower" } }, { ack: true }));
    await until("bob got the follower's message", () => bobTab.evaluate(() => (window.app.rooms.lobby ?? []).includes("from a follower")));

    // Joined in both followers, left in one: still joined for the other.
    await f1.evaluate(() => window.client.join("shared"));
    await f2.evaluate(() => window.client.join("shared"));
    await f1.evaluate(() => window.client.leave("shared"));
    await bobTab.evaluate(() => window.client.join("shared"));
    await bobTab.evaluate(() => window.client.send({ type: "room_message", payload: { room: "shared", data: "still here?" } }, { ack: true }));
    await until("the tab still in the room got it", () => f2.evaluate(() => (window.app.rooms.shared ?? []).includes("still here?")));
    assert.deepEqual(await f1.evaluate(() => window.app.rooms.shared ?? []), [], "the tab that left gets nothing of the room");
    const stats = (await api("GET", "/dev/stats")).body;
    assert.equal(stats.rooms.shared, 2, "alice's one socket and bob's");
  } finally {
    await ca.close();
    await cb.close();
  }
});

test("WebSocket blocked (always 1006): 1 000 notifications over SSE exactly once, sends over POST, back to WebSocket without a gap", async () => {
  const user = uid("sse");
  const bob = uid("bob");
  const [ca, cb] = [await browser.newContext(), await browser.newContext()];
  try {
    const page = await openTab(ca, user, "&share=0&sse=1&blockws=1&probe=3000");
    let posts = 0;
    page.on("request", (r) => {
      if (r.method() === "POST" && r.url().includes("/sse/send?session=")) posts++;
    });
    const bobTab = await openTab(cb, bob, "&share=0");
    await until("the blocked page is open over SSE", async () => (await state(page)) === "open" && (await page.evaluate(() => window.client.transport)) === "sse");
    assert.ok((await page.evaluate(() => window.blockedSockets)) >= 3, "WebSocket was tried first");
    assert.equal(await sockets(user), 0, "no socket: the stream is an SSE session");

    const service = (await api("POST", "/dev/token", { body: { user_id: "e2e-backend", role: "service" } })).body.token;
    const first = (await api("GET", "/dev/stats")).body.users[user]?.seq ?? 0;
    const N = 1000;
    const post = async (from, to) => {
      for (let i = from; i <= to; i++) {
        const res = await api("POST", "/api/notifications", { token: service, body: { user_id: user, title: `n${i}`, body: "sse" } });
        assert.equal(res.status, 201);
      }
    };
    await post(1, N);
    await until(`${N} messages over SSE`, () => page.evaluate((n) => window.app.messages.length >= n, N), 30_000);

    // Sends go by POST: a room joined, a message to bob, and bob's back.
    await bobTab.evaluate(() => window.client.join("sse-room"));
    await page.evaluate(() => window.client.join("sse-room"));
    await page.evaluate(() => window.client.send({ type: "room_message", payload: { room: "sse-room", data: "over POST" } }, { ack: true }));
    await until("bob got the POSTed message", () => bobTab.evaluate(() => (window.app.rooms["sse-room"] ?? []).includes("over POST")));
    await bobTab.evaluate(() => window.client.send({ type: "room_message", payload: { room: "sse-room", data: "to the SSE page" } }, { ack: true }));
    await until("the SSE page got bob's message", () => page.evaluate(() => (window.app.rooms["sse-room"] ?? []).includes("to the SSE page")));
    assert.ok(posts >= 2, `the join and the message went by POST (${posts} POSTs)`);
    // Probes every 3 s meanwhile (WebSocket still blocked): each falls back to SSE at once.
    await until("over SSE", async () => (await page.evaluate(() => window.client.transport)) === "sse" && (await state(page)) === "open");

    // WebSocket allowed again: the next probe moves the page back, while notifications go on.
    await page.evaluate(() => window.allowWebSocket());
    const more = post(N + 1, N + 300);
    await until("back on WebSocket", async () => (await page.evaluate(() => window.client.transport)) === "websocket" && (await state(page)) === "open", 15_000);
    await more;
    await until("one socket for the user", async () => (await sockets(user)) === 1);
    await until(`${N + 300} messages`, () => page.evaluate((n) => window.app.messages.length >= n, N + 300), 30_000);
    const app = await page.evaluate(() => window.app);
    assert.deepEqual(app.messages, Array.from({ length: N + 300 }, (_, i) => first + i + 1), "every message once, in order, across both switches");
    assert.deepEqual(app.resyncs, []);
  } finally {
    await ca.close();
    await cb.close();
  }
});

test("the leader tab frozen, then another crashed: a follower takes over each time, every tab keeps every message once", async () => {
  const user = uid("freeze");
  const context = await browser.newContext();
  try {
    const tabs = [];
    for (let i = 0; i < 3; i++) tabs.push(await openTab(context, user));
    await until("every tab open", () => allOpen(tabs));
    const service = (await api("POST", "/dev/token", { body: { user_id: "e2e-backend", role: "service" } })).body.token;
    const first = (await api("GET", "/dev/stats")).body.users[user]?.seq ?? 0;
    let n = 0;
    const post = async (count) => {
      for (let i = 0; i < count; i++) {
        n++;
        const res = await api("POST", "/api/notifications", { token: service, body: { user_id: user, title: `n${n}`, body: "freeze" } });
        assert.equal(res.status, 201);
      }
    };
    await post(50);

    // Frozen: its JavaScript stops (paused in the debugger, as a hung or frozen tab's does; CDP's
    // Page.setWebLifecycleState does not stop a visible page's timers), its lock stays held, so a
    // follower must notice the silence and take the lock.
    const frozen = await leaderOf(tabs);
    const cdp = await context.newCDPSession(frozen);
    await cdp.send("Debugger.enable");
    const t0 = Date.now();
    await cdp.send("Debugger.pause");
    const others = tabs.filter((p) => p !== frozen);
    const next = await until("a follower took over from the frozen leader", () => leaderOf(others), 5_000);
    const tookOver = Date.now() - t0;
    await post(100);
    await cdp.send("Debugger.resume");
    await until("the thawed tab follows", async () => (await role(frozen)) === "follower" && (await state(frozen)) === "open");

    // Crashed: the browser releases its lock; the third tab takes over.
    const crashed = next;
    const t1 = Date.now();
    const crashCdp = await context.newCDPSession(crashed);
    crashCdp.send("Page.crash").catch(() => {});
    const survivors = tabs.filter((p) => p !== crashed);
    await until("a tab took over from the crashed leader", () => leaderOf(survivors), 5_000);
    const tookOverCrash = Date.now() - t1;
    await post(100);
    console.log(`[share] took over from a frozen leader in ${tookOver} ms, from a crashed one in ${tookOverCrash} ms`);
    // Measured about 1.0–1.4 s frozen (1 s of silence, then an unanswered ping) and 0.05–1.2 s
    // crashed; bounded at 3 s each so that a loaded machine does not fail the run.
    assert.ok(tookOver < 3_000 && tookOverCrash < 3_000, `${tookOver} ms, ${tookOverCrash} ms`);

    const want = Array.from({ length: n }, (_, i) => first + i + 1);
    for (const [i, p] of survivors.entries()) {
      await until(`tab ${i} has ${n} messages`, () => p.evaluate((k) => window.app.messages.length >= k, n), 20_000);
      const app = await p.evaluate(() => window.app);
      assert.deepEqual(app.messages, want, `tab ${i}: every message once, in order`);
      assert.deepEqual(app.resyncs, [], `tab ${i}: no resync`);
    }
    await until("one socket for the user", async () => (await sockets(user)) === 1, 15_000);
  } finally {
    await context.close();
  }
});
