// Playwright (playwright-core driving Debian's /usr/bin/chromium, never a downloaded browser)
// against the demo served by the fixture (scripts/with-fixture.sh starts it with --static and
// --dev and exports RESOCK_FIXTURE_URL and RESOCK_SUPERVISOR_URL). Each test saves a screenshot
// into artifacts/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { api, BASE, launchChromium, uid } from "./fixture.mjs";

const SUPERVISOR = process.env.RESOCK_SUPERVISOR_URL;
if (!SUPERVISOR) throw new Error("run under scripts/with-fixture.sh (RESOCK_SUPERVISOR_URL)");
const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "artifacts");
mkdirSync(ARTIFACTS, { recursive: true });

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

async function serviceToken() {
  return (await api("POST", "/dev/token", { body: { user_id: "e2e-backend", role: "service" } })).body.token;
}

async function notify(user, title) {
  const res = await api("POST", "/api/notifications", { token: await serviceToken(), body: { user_id: user, title, body: "e2e" } });
  assert.equal(res.status, 201);
  return res.body;
}

/** Opens the demo in `context`, signs in as `user` and waits for the connection. */
async function signIn(context, user, room) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[page ${user}] ${e.message}`));
  await page.goto(`${BASE}/?user=${encodeURIComponent(user)}${room ? `&room=${encodeURIComponent(room)}` : ""}`);
  await page.getByTestId("sign-in").click();
  await page.locator('[data-testid="connection"][data-state="open"]').waitFor({ timeout: 10_000 });
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

test("two users in two browser contexts chat in a room", async () => {
  const [a, b] = [await browser.newContext(), await browser.newContext()];
  try {
    const alice = await signIn(a, uid("alice"));
    const bob = await signIn(b, uid("bob"));
    for (const p of [alice, bob]) await p.locator('[data-testid="room-status"]', { hasText: "joined" }).waitFor();
    await alice.getByTestId("chat-input").fill("hello bob");
    await alice.getByTestId("chat-send").click();
    await bob.getByTestId("chat-message").filter({ hasText: "hello bob" }).waitFor({ timeout: 5000 });
    await bob.getByTestId("chat-input").fill("hi alice");
    await bob.getByTestId("chat-send").click();
    await alice.getByTestId("chat-message").filter({ hasText: "hi alice" }).waitFor({ timeout: 5000 });
    assert.equal(await alice.getByTestId("chat-message").count(), 2);
    await shot(alice, "chat-alice");
    await shot(bob, "chat-bob");
  } finally {
    await a.close();
    await b.close();
  }
});

test("a notification posted over REST shows in the bell within a second; mark-read updates every tab", async () => {
  const context = await browser.newContext();
  try {
    const user = uid("carol");
    const tab1 = await signIn(context, user);
    const tab2 = await signIn(context, user);
    const started = Date.now();
    await notify(user, "Build finished");
    for (const tab of [tab1, tab2]) {
      await tab.locator('[data-testid="unread"]', { hasText: "1" }).waitFor({ timeout: 1000 });
    }
    console.log(`notification shown in both tabs ${Date.now() - started} ms after the POST`);
    await shot(tab1, "bell-unread");
    await tab1.getByTestId("mark-read").first().click();
    for (const tab of [tab1, tab2]) {
      await tab.locator('[data-testid="unread"]', { hasText: "0" }).waitFor({ timeout: 3000 });
      await tab.locator('[data-testid="notification"][data-read="true"]').waitFor();
    }
    await notify(user, "Second");
    await notify(user, "Third");
    await tab2.locator('[data-testid="unread"]', { hasText: "2" }).waitFor({ timeout: 3000 });
    await tab2.getByTestId("mark-all-read").click();
    await tab1.locator('[data-testid="unread"]', { hasText: "0" }).waitFor({ timeout: 3000 });
    await shot(tab2, "bell-all-read");
  } finally {
    await context.close();
  }
});

test("the demo's two tabs of one user share one socket: one leads, the server sees one socket", async () => {
  const context = await browser.newContext();
  try {
    const user = uid("tess");
    const tab1 = await signIn(context, user);
    const tab2 = await signIn(context, user);
    for (const tab of [tab1, tab2]) await tab.locator('[data-testid="sharing"][data-sockets="1"]').waitFor({ timeout: 5000 });
    const roles = [];
    for (const tab of [tab1, tab2]) {
      await tab.locator('[data-testid="sharing"][data-role="leader"], [data-testid="sharing"][data-role="follower"]').waitFor();
      roles.push(await tab.getByTestId("sharing").getAttribute("data-role"));
    }
    assert.deepEqual(roles.sort(), ["follower", "leader"]);
    await shot(tab2, "sharing-follower");
    // The leader tab closes: the other takes over, still one socket.
    const leader = roles[0] === "leader" ? tab1 : tab2;
    const other = leader === tab1 ? tab2 : tab1;
    await leader.close();
    await other.locator('[data-testid="sharing"][data-role="leader"][data-sockets="1"]').waitFor({ timeout: 5000 });
    await other.locator('[data-testid="connection"][data-state="open"]').waitFor();
  } finally {
    await context.close();
  }
});

test("the fixture restarted mid-session: reconnecting, then connected; a notification posted meanwhile appears once", async () => {
  const context = await browser.newContext();
  try {
    const user = uid("dave");
    const page = await signIn(context, user);
    await notify(user, "before the restart");
    await page.getByText("before the restart").waitFor({ timeout: 3000 });
    const restart = fetch(`${SUPERVISOR}/restart`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ down_ms: 1500 }),
    });
    await page.locator('[data-testid="connection"][data-state="reconnecting"]').waitFor({ timeout: 5000 });
    await shot(page, "restart-reconnecting");
    assert.equal((await restart).status, 200);
    // Keep the client out a little longer, so the notification is surely posted while it is
    // not connected: the restarted fixture refuses upgrades for 2 s.
    assert.equal((await api("POST", "/dev/drop", { body: { refuse_ms: 2000 } })).status, 200);
    const title = `posted while reconnecting ${Date.now()}`;
    await notify(user, title);
    assert.equal(
      await page.locator('[data-testid="connection"]').getAttribute("data-state"),
      "reconnecting",
      "the notification was posted while the client was not connected",
    );
    await page.locator('[data-testid="connection"][data-state="open"]').waitFor({ timeout: 15_000 });
    await page.getByText(title).waitFor({ timeout: 5000 });
    await page.waitForTimeout(500); // a duplicate would show up by now
    assert.equal(await page.getByText(title).count(), 1, "exactly once");
    await shot(page, "restart-connected");
  } finally {
    await context.close();
  }
});

test("under StrictMode the fixture sees one connection per page", async () => {
  const context = await browser.newContext();
  try {
    const user = uid("erin");
    const page = await signIn(context, user);
    await page.waitForTimeout(500);
    const stats = (await api("GET", "/dev/stats")).body;
    assert.deepEqual(
      { open: stats.users[user].open, opened_total: stats.users[user].opened_total },
      { open: 1, opened_total: 1 },
    );
    await shot(page, "strictmode-one-connection");
  } finally {
    await context.close();
  }
});

test("useMessages re-renders its component only for the messages it selects", async () => {
  const context = await browser.newContext();
  try {
    const user = uid("frank");
    const page = await signIn(context, user);
    const tasks = page.getByTestId("tasks");
    const renders = async () => Number(await tasks.getAttribute("data-renders"));
    await page.waitForTimeout(300);
    const before = await renders();
    await notify(user, "not a task");
    await page.getByText("not a task").waitFor();
    await page.getByTestId("chat-input").fill("not a task either");
    await page.getByTestId("chat-send").click();
    await page.getByTestId("chat-message").filter({ hasText: "not a task either" }).waitFor();
    assert.equal(await renders(), before, "no re-render for a notification or a chat message");
    const res = await api("POST", "/api/tasks/t-1", {
      token: await serviceToken(),
      body: { user_id: user, action: "started", task: { title: "Render check" } },
    });
    assert.equal(res.status, 200);
    await page.getByTestId("task-update").filter({ hasText: "Render check" }).waitFor({ timeout: 3000 });
    assert.equal(await renders(), before + 1, "one re-render for the selected message");
    await shot(page, "use-messages-selector");
  } finally {
    await context.close();
  }
});

/** The demo's page of the SDK alone (`js/demo/sdk.html`), with the package as `window.resock`. */
async function sdkPage(context) {
  const page = await context.newPage();
  await page.goto(`${BASE}/sdk.html`);
  await page.waitForFunction(() => window.resock !== undefined);
  return page;
}

test("the SDK alone: clear errors before init() and after free(); relative and http(s) URLs; heartbeat: false", async () => {
  const context = await browser.newContext();
  try {
    const page = await sdkPage(context);
    const r = await page.evaluate(async () => {
      const { init, Client } = window.resock;
      const out = {};
      try {
        new Client({ url: "/ws" });
      } catch (e) {
        out.beforeInit = e.message;
      }
      await init();
      const res = await fetch("/dev/token", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user_id: `sdk-${Math.random().toString(36).slice(2, 8)}` }),
      });
      const { token } = await res.json();
      const opened = (c) =>
        new Promise((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`not open in 5 s: ${c.state}`)), 5000);
          c.on("state", (s) => s === "open" && (clearTimeout(t), resolve()));
          c.connect();
        });
      const relative = new Client({ url: "/ws", ticketUrl: "/ws/ticket", token, heartbeat: false });
      await opened(relative);
      const http = new Client({ url: `${location.origin}/ws`, ticketUrl: `${location.origin}/ws/ticket`, token });
      await opened(http);
      relative.close();
      http.close();
      out.sendAfterClose = relative.send({ type: "x" });
      relative.free();
      relative.free(); // twice: nothing
      try {
        relative.send({ type: "x" });
      } catch (e) {
        out.afterFree = e.message;
      }
      http.free();
      // The lean build (this page imports "resock") refuses the full build's options by name.
      out.lean = [{ share: "u" }, { sseUrl: "/sse/notifications" }, { share: undefined }].map((opt) => {
        try {
          new Client({ url: "/ws", ...opt }).free();
          return "accepted";
        } catch (e) {
          return `${e.name}: ${e.message}`;
        }
      });
      return out;
    });
    assert.match(r.beforeInit, /^resock: await init\(\) before new Client\(\)/);
    assert.equal(r.sendAfterClose, false);
    assert.equal(r.afterFree, "resock: Client.send() after free()");
    assert.deepEqual(r.lean, [
      'TypeError: resock: option share is in the full build: import from "resock/full"',
      'TypeError: resock: option sseUrl is in the full build: import from "resock/full"',
      "accepted",
    ]);
  } finally {
    await context.close();
  }
});

test("the page's offline, online and visibilitychange events reach the client (fast.js resock_lifecycle)", async () => {
  const context = await browser.newContext();
  try {
    const page = await sdkPage(context);
    const r = await page.evaluate(async () => {
      const { init, Client } = window.resock;
      await init();
      const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
      const retries = [];
      const until = async (what, ok, ms) => {
        for (let i = 0; i < ms / 20 && !ok(); i++) await sleep(20);
        if (!ok()) throw new Error(`no ${what} in ${ms} ms: ${JSON.stringify(retries)}`);
      };
      // No socket at that path: every attempt fails, and the next waits up to a minute (jitter).
      const url = location.origin.replace(/^http/, "ws") + "/no-socket-here";
      const c = new Client({ url, reconnect: { initialDelayMs: 60000, maxDelayMs: 60000 } });
      c.on("retry", (r) => retries.push(r));
      c.connect(); // the page listeners are added here
      window.dispatchEvent(new Event("offline")); // before the first attempt has failed
      await until("first retry", () => retries.length === 1, 2000);
      await sleep(300);
      const out = { pausedWhileOffline: retries.length === 1 };
      // Offline paused the retry: only `online` starts the next attempt.
      window.dispatchEvent(new Event("online"));
      await until("attempt after online", () => retries.length === 2, 2000);
      // A page made visible retries at once (skipped when the jitter drew a short wait).
      if (retries[1].delayMs > 3000) {
        document.dispatchEvent(new Event("visibilitychange"));
        await until("attempt after visibilitychange", () => retries.length === 3, 500);
      }
      c.close();
      out.state = c.state;
      c.free();
      return out;
    });
    assert.equal(r.pausedWhileOffline, true, "no attempt while offline");
    assert.equal(r.state, "closed");
  } finally {
    await context.close();
  }
});

// ---- issue 14: the demo as a product (each at 1280x800 and 390x844, screenshots in artifacts/)

const VIEWPORTS = [
  { name: "desktop", width: 1280, height: 800 },
  { name: "phone", width: 390, height: 844 },
];

for (const vp of VIEWPORTS) {
  test(`[${vp.name}] a 404 on the .wasm shows an error with a retry, not a blank page; the retry connects`, async () => {
    const context = await browser.newContext({ viewport: vp });
    try {
      const page = await context.newPage();
      await page.route("**/*.wasm", (route) => route.fulfill({ status: 404, body: "not found" }));
      await page.goto(`${BASE}/?user=${uid("gina")}`);
      // The sign-in form itself fits the viewport (no horizontal scroll), phone included.
      await page.getByTestId("sign-in").waitFor();
      assert.equal(await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth), false, "sign-in form: no horizontal scroll");
      await shot(page, `sign-in-${vp.name}`);
      await page.getByTestId("sign-in").click();
      const err = page.getByTestId("load-error");
      await err.waitFor({ timeout: 10_000 });
      assert.match(await err.innerText(), /404/);
      await shot(page, `wasm-404-${vp.name}`);
      await page.unroute("**/*.wasm");
      await err.getByRole("button", { name: "Try again" }).click();
      await page.locator('[data-testid="connection"][data-state="open"]').waitFor({ timeout: 10_000 });
    } finally {
      await context.close();
    }
  });

  test(`[${vp.name}] closed by the server: the reason and a Reconnect button that connects again`, async () => {
    const context = await browser.newContext({ viewport: vp });
    try {
      const user = uid("hank");
      const page = await signIn(context, user);
      assert.equal((await api("POST", "/dev/drop", { body: { user_id: user, close_code: 1000 } })).status, 200);
      await page.locator('[data-testid="connection"][data-state="closed"]').waitFor({ timeout: 5000 });
      const reason = await page.getByTestId("closed-reason").innerText();
      assert.ok(reason.length > 0, "a reason is shown");
      await shot(page, `closed-${vp.name}`);
      await page.getByTestId("reconnect").click();
      await page.locator('[data-testid="connection"][data-state="open"]').waitFor({ timeout: 10_000 });
      // The new client works: a notification posted now shows.
      await notify(user, "after reconnect");
      await page.getByText("after reconnect").waitFor({ timeout: 3000 });
    } finally {
      await context.close();
    }
  });

  test(`[${vp.name}] a message sent while reconnecting shows a pending mark until the server took it`, async () => {
    const context = await browser.newContext({ viewport: vp });
    try {
      const user = uid("ivy");
      const page = await signIn(context, user);
      await page.locator('[data-testid="room-status"]', { hasText: "joined" }).waitFor();
      assert.equal((await api("POST", "/dev/drop", { body: { user_id: user, refuse_ms: 2500 } })).status, 200);
      await page.locator('[data-testid="connection"][data-state="reconnecting"]').waitFor({ timeout: 5000 });
      // The header keeps its height while the countdown ticks (no reflow on a phone).
      const header = page.locator("header");
      const heights = new Set();
      for (let i = 0; i < 5; i++) {
        heights.add((await header.boundingBox()).height);
        await page.waitForTimeout(120);
      }
      assert.equal(heights.size, 1, `header height changed while counting down: ${[...heights]}`);
      await page.getByTestId("chat-input").fill("sent while offline");
      await page.getByTestId("chat-send").click();
      const msg = page.getByTestId("chat-message").filter({ hasText: "sent while offline" });
      assert.equal(await msg.getAttribute("data-status"), "pending");
      await msg.getByTestId("pending").waitFor();
      await shot(page, `pending-${vp.name}`);
      await page.locator('[data-testid="connection"][data-state="open"]').waitFor({ timeout: 15_000 });
      await page.locator('[data-testid="chat-message"][data-status="sent"]', { hasText: "sent while offline" }).waitFor({ timeout: 5000 });
    } finally {
      await context.close();
    }
  });

  test(`[${vp.name}] the member count in two contexts stays current (presence); the send button stays in its card; long words wrap`, async () => {
    const [a, b] = [await browser.newContext({ viewport: vp }), await browser.newContext({ viewport: vp })];
    try {
      // A room of this test's own, so that other tests' members do not count.
      const room = uid("room");
      const pa = await signIn(a, uid("jay"), room);
      const count = (p) => p.locator('[data-testid="room-status"]');
      await count(pa).filter({ hasText: "joined, 1 here" }).waitFor({ timeout: 5000 });
      const pb = await signIn(b, uid("kim"), room);
      for (const p of [pa, pb]) await count(p).filter({ hasText: "joined, 2 here" }).waitFor({ timeout: 5000 });
      await shot(pa, `members-a-${vp.name}`);
      const long = "x".repeat(300);
      await pa.getByTestId("chat-input").fill(long);
      await pa.getByTestId("chat-send").click();
      await pb.getByTestId("chat-message").filter({ hasText: long }).waitFor({ timeout: 5000 });
      for (const p of [pa, pb]) {
        const card = await p.locator("section.chat").boundingBox();
        const button = await p.getByTestId("chat-send").boundingBox();
        assert.ok(button.x + button.width <= card.x + card.width + 0.5, "the Send button inside its card");
        const item = await p.getByTestId("chat-message").filter({ hasText: long }).boundingBox();
        assert.ok(item.x + item.width <= card.x + card.width + 0.5, "a long word wraps inside the card");
        const overflow = await p.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
        assert.equal(overflow, false, "no horizontal scroll");
      }
      await shot(pa, `room-a-${vp.name}`);
      await shot(pb, `room-b-${vp.name}`);
      await b.close();
      await count(pa).filter({ hasText: "joined, 1 here" }).waitFor({ timeout: 5000 });
    } finally {
      await a.close();
      await b.close();
    }
  });
}

test("sign-out returns to the sign-in form and closes the socket", async () => {
  const context = await browser.newContext();
  try {
    const user = uid("lou");
    const page = await signIn(context, user);
    await page.getByTestId("sign-out").click();
    await page.getByTestId("sign-in").waitFor();
    await page.waitForTimeout(300);
    assert.equal((await api("GET", "/dev/stats")).body.users[user]?.open ?? 0, 0);
  } finally {
    await context.close();
  }
});
