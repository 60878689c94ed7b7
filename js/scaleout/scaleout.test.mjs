// Issue 8, end to end: the SDK in headless Chromium (two clients of one user on one page),
// connected through a real nginx (deploy/nginx.conf) to two fixture instances on one
// redis-server, all started here on 127.0.0.1 (js/scaleout/cluster.mjs) and stopped by PID.
//
// Once both clients are welcomed (a `ping` request answered: the server reads a connection's
// frames only after its welcome), 2 000 notifications are posted round-robin to the two instances, on their own ports, four
// requests in flight, while the instances are SIGKILLed and restarted on the same port one at a
// time (six kills, each landing while posts are in flight; the next kill waits until the last
// restarted instance answers /healthz). A post answered 503 or refused (instance down) was not
// stored and is sent to the other instance; a post cut without an answer (its instance killed
// under it) is looked up in the store once its instance has exited, and sent again only if
// absent. Then:
//   - the store holds exactly the 2 000 titles, each once;
//   - each client received every notification exactly once and in order (seq 1..2000, ids
//     increasing), with no `resync` (Redis kept its data);
//   - Redis is restarted empty: each client gets exactly one `resync`, and a notification
//     posted afterwards arrives once.
// Bounded: the test has a hard cap of 3 minutes; every wait has its own timeout.
//
//   node --test js/scaleout/      (needs pkg/ from scripts/build-pkg.sh and a release fixture;
//                                  RESOCK_FIXTURE_BIN overrides target/release/resock-fixture)
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { appSite, bounded, Cluster } from "./cluster.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..");
const WORK = join(ROOT, "target", "scaleout-e2e");
const FIXTURE = process.env.RESOCK_FIXTURE_BIN ?? join(ROOT, "target", "release", "resock-fixture");
const TOTAL = 2000;
const KILLS = 6;
const EVERY = 250; // kill k is made once post (k + 1) * EVERY has started
const IN_FLIGHT = 4;
const HARD_CAP_MS = 180_000;

let cluster;
let browser;
bounded("scale-out", HARD_CAP_MS, after, () => ({ browser, cluster }));

/** A promise with its resolve function. */
function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

async function json(url, { method = "GET", token, body } = {}) {
  const res = await fetch(url, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

test("two instances behind nginx on one Redis: a rolling restart loses and repeats nothing; a Redis reset is one resync", { timeout: HARD_CAP_MS }, async () => {
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  assert.ok(existsSync(join(ROOT, "pkg", "resock_bg.wasm")), "pkg/ is missing: run scripts/build-pkg.sh first");
  assert.ok(existsSync(FIXTURE), `${FIXTURE} is missing: cargo build --release -p resock-fixture`);
  const site = appSite(ROOT, WORK, join(HERE, "index.html"));

  cluster = new Cluster({
    root: ROOT,
    dir: WORK,
    fixtureBin: FIXTURE,
    instances: 2,
    // History and store above the 2 000 posted, so that only a Redis reset can make a gap.
    fixtureArgs: ["--static", site, "--history", "5000", "--history-bytes", "4194304", "--store-max", "5000", "--store-bytes", "4194304"],
  });
  await cluster.start();
  const [a, b] = cluster.instances;
  console.log(`[scale-out] redis ${cluster.redisUrl}, instances ${a.url} ${b.url}, nginx ${cluster.url} (${elapsed()})`);

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking"],
  });
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error(`[page] ${e.message}`));
  // For the diagnosis of a failure only: what each socket carried (welcome, resume, resumed, seqs).
  await page.addInitScript(() => {
    const Native = window.WebSocket;
    window.socketLog = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        const log = { opened: performance.now() | 0, welcome: null, sent: [], resumed: [], seqs: [], close: null };
        window.socketLog.push(log);
        this.resockLog = log;
        this.addEventListener("message", (e) => {
          const m = JSON.parse(e.data);
          if (m.type === "welcome") log.welcome = m.payload;
          else if (m.type === "resumed") log.resumed.push(m.payload);
          else if (m.seq !== undefined) log.seqs.push(m.seq);
        });
        this.addEventListener("close", (e) => (log.close = [e.code, performance.now() | 0]));
      }
      send(data) {
        if (!String(data).includes('"pong"')) this.resockLog.sent.push(String(data).slice(0, 200));
        return super.send(data);
      }
    };
  });
  const user = `scaleout-${Math.random().toString(36).slice(2, 8)}`;
  await page.goto(`${cluster.url}/?user=${user}&clients=2`);
  await page.waitForFunction(() => window.resockApp?.failed || window.resockApp?.welcomed, null, { timeout: 15_000 });
  assert.equal(await page.evaluate(() => window.resockApp.failed), null);
  const app = () => page.evaluate(() => window.resockApp.clients);
  /** page.waitForFunction, printing what each client holds when it times out. */
  const waitApp = async (fn, arg, timeout) => {
    try {
      await page.waitForFunction(fn, arg, { timeout, polling: 100 });
    } catch (e) {
      for (const [i, c] of (await app()).entries()) {
        const last = c.messages.at(-1);
        const have = new Set(c.messages.map((m) => m.seq));
        const missing = Array.from({ length: last?.seq ?? 0 }, (_, j) => j + 1).filter((q) => !have.has(q));
        console.error(`[scale-out] client ${i}: state ${c.state}, ${c.opens} opens, ${c.messages.length} messages (last ${JSON.stringify(last)}), missing seqs ${JSON.stringify(missing.slice(0, 50))}, resyncs ${JSON.stringify(c.resyncs)}, errors ${JSON.stringify(c.errors.slice(-10))}`);
      }
      const sockets = await page.evaluate(() => window.socketLog);
      for (const [j, x] of sockets.entries()) {
        const ranges = [];
        for (const q of x.seqs) {
          const r = ranges.at(-1);
          if (r && q === r[1] + 1) r[1] = q;
          else ranges.push([q, q]);
        }
        console.error(`[scale-out] socket ${j}: opened ${x.opened} ms, welcome ${JSON.stringify(x.welcome)}, sent ${JSON.stringify(x.sent.slice(0, 4))}, resumed ${JSON.stringify(x.resumed)}, seqs ${JSON.stringify(ranges.slice(0, 20))}, close ${JSON.stringify(x.close)}`);
      }
      throw e;
    }
  };

  const service = (await json(`${a.url}/dev/token`, { method: "POST", body: { user_id: "svc", role: "service" } })).body.token;
  const userToken = (await json(`${a.url}/dev/token`, { method: "POST", body: { user_id: user } })).body.token;

  // --- the rolling restart, driven by the posts' progress -----------------------------------
  const down = [false, false];
  const exited = [null, null]; // the exit of a killed instance, awaited before a lookup
  const reached = Array.from({ length: KILLS }, deferred); // post (k + 1) * EVERY has started
  const restarted = Array.from({ length: KILLS }, deferred);
  const stats = { created: 0, on: [0, 0], status503: 0, refused: 0, cut: 0, cutFoundStored: 0, cutResent: 0 };

  const killer = (async () => {
    for (let k = 0; k < KILLS; k++) {
      await reached[k].promise;
      const i = k % 2;
      down[i] = true;
      exited[i] = cluster.kill(i);
      await exited[i];
      await cluster.restart(i);
      down[i] = false;
      console.log(`[scale-out] kill ${k + 1}/${KILLS}: instance ${i} killed and back after post ${(k + 1) * EVERY} (${elapsed()})`);
      restarted[k].resolve();
    }
  })();

  const stored = async (title) => {
    const other = cluster.instances.find((_, j) => !down[j]) ?? a;
    const res = await json(`${other.url}/api/notifications`, { token: userToken });
    assert.equal(res.status, 200, `GET /api/notifications: ${res.status}`);
    return res.body.some((n) => n.title === title);
  };

  const postOne = async (n) => {
    const title = `n-${n}`;
    let target = n % 2;
    for (let attempt = 0; attempt < 20; attempt++) {
      if (down[target]) target = 1 - target;
      let res;
      try {
        res = await fetch(`${cluster.instances[target].url}/api/notifications`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${service}` },
          body: JSON.stringify({ user_id: user, title, body: "e2e" }),
          signal: AbortSignal.timeout(10_000),
        });
        await res.arrayBuffer();
      } catch (e) {
        if (e.cause?.code === "ECONNREFUSED") {
          stats.refused += 1; // never reached the instance: not stored
        } else {
          // Cut without an answer: stored or not. Look once the instance is surely gone.
          stats.cut += 1;
          await exited[target];
          if (await stored(title)) {
            stats.cutFoundStored += 1;
            return;
          }
          stats.cutResent += 1;
        }
        target = 1 - target;
        continue;
      }
      if (res.status === 201) {
        stats.created += 1;
        stats.on[target] += 1;
        return;
      }
      assert.equal(res.status, 503, `POST /api/notifications on instance ${target}: HTTP ${res.status}`);
      stats.status503 += 1; // not stored (instance or Redis down)
      target = 1 - target;
    }
    assert.fail(`${title}: not stored after 20 attempts`);
  };

  let next = 0;
  const poster = async () => {
    for (;;) {
      const n = next++;
      if (n >= TOTAL) return;
      const k = Math.floor(n / EVERY) - 1; // the kill this post's block follows
      if (k >= 1 && k <= KILLS) await restarted[k - 1].promise; // rolling: one down at a time
      if (k >= 0 && k < KILLS && n % EVERY === 0) reached[k].resolve();
      await postOne(n);
    }
  };
  await Promise.all([...Array.from({ length: IN_FLIGHT }, poster), killer]);
  console.log(`[scale-out] ${TOTAL} posted (${elapsed()}): ${JSON.stringify(stats)}`);
  assert.equal(cluster.instances.reduce((s, x) => s + x.restarts, 0), KILLS);

  // --- what the store and the app hold --------------------------------------------------------
  const list = (await json(`${a.url}/api/notifications`, { token: userToken })).body;
  const titles = list.map((x) => x.title);
  assert.equal(titles.length, TOTAL, "the store holds exactly 2 000 notifications");
  assert.equal(new Set(titles).size, TOTAL, "each title once in the store");

  await waitApp((total) => window.resockApp.clients.every((c) => c.messages.at(-1)?.seq >= total), TOTAL, 30_000);
  const clients = await app();
  clients.forEach((c, i) => {
    const seqs = c.messages.map((m) => m.seq);
    assert.equal(c.messages.length, TOTAL, `client ${i}: ${c.messages.length} messages, not ${TOTAL}`);
    assert.deepEqual(seqs, Array.from({ length: TOTAL }, (_, j) => j + 1), `client ${i}: seq 1..${TOTAL} in order`);
    assert.ok(c.messages.every((m, j) => j === 0 || m.id > c.messages[j - 1].id), `client ${i}: notification ids increase`);
    assert.deepEqual([...c.messages.map((m) => m.title)].sort(), [...titles].sort(), `client ${i}: every stored notification once`);
    assert.deepEqual(c.resyncs, [], `client ${i}: no resync while Redis kept its data`);
    assert.ok(c.opens >= 2, `client ${i}: cut by a kill and reconnected at least once (${c.opens} opens)`);
    console.log(`[scale-out] client ${i}: ${c.messages.length} messages in order, ${c.opens} opens, no resync; errors ${JSON.stringify(c.errors.slice(0, 5))}`);
  });

  // --- Redis restarted empty: exactly one resync ----------------------------------------------
  await cluster.restartRedis();
  console.log(`[scale-out] redis restarted empty (${elapsed()})`);
  await waitApp(() => window.resockApp.clients.every((c) => c.resyncs.length >= 1), null, 30_000);
  // Both instances renewed their subscriptions (so any 1012 they owe has been sent) ...
  for (const x of cluster.instances) {
    const deadline = Date.now() + 20_000;
    while ((await fetch(`${x.url}/healthz`).then((r) => r.status, () => 0)) !== 200) {
      assert.ok(Date.now() < deadline, `${x.url}/healthz after the Redis restart`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  // ... and a notification posted now reaches both clients once, in the new epoch.
  const lastTitle = `after-reset-${Date.now()}`;
  let posted = false;
  for (let attempt = 0; attempt < 50 && !posted; attempt++) {
    const res = await json(`${cluster.instances[attempt % 2].url}/api/notifications`, { method: "POST", token: service, body: { user_id: user, title: lastTitle, body: "e2e" } });
    posted = res.status === 201;
    if (!posted) assert.equal(res.status, 503);
  }
  assert.ok(posted, "the notification after the Redis reset was stored");
  await waitApp((t) => window.resockApp.clients.every((c) => c.messages.some((m) => m.title === t)), lastTitle, 15_000);
  for (const [i, c] of (await app()).entries()) {
    const late = c.messages.slice(TOTAL);
    assert.deepEqual(late.map((m) => m.title), [lastTitle], `client ${i}: the post-reset notification once, nothing else`);
    assert.equal(late[0].seq, 1, `client ${i}: a new epoch starts at seq 1`);
    assert.equal(c.resyncs.length, 1, `client ${i}: exactly one resync, got ${JSON.stringify(c.resyncs)}`);
    console.log(`[scale-out] client ${i}: one resync (${c.resyncs[0].reason}) after the Redis reset, then the new notification once`);
  }
  console.log(`[scale-out] done in ${elapsed()}`);
});
