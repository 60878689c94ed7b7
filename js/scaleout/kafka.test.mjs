// Issue 9, end to end: a record produced to Kafka shows up in the SDK's `message` listener in
// headless Chromium. Everything is started here on 127.0.0.1 (js/scaleout/cluster.mjs) and
// stopped by PID: a Kafka-protocol broker (tansu, in-memory), one redis-server, two fixture
// instances consuming the topic as one group (`--kafka-*`, `--redis`), nginx in front
// (deploy/nginx.conf). The page connects through nginx.
//
// 300 `task_update` records for the page's user are produced by `resock-produce --lines`, one
// every 10 ms, each stamped with its send time just before it is sent; the page records each
// arrival in the same clock. Then: every record arrived exactly once, in order (seq and record
// number), with no resync; the produce-to-listener latency's p50/p99 are printed.
// Bounded: a hard cap of 2 minutes; every wait has its own timeout.
//
//   node --test js/scaleout/   (needs pkg/, a release fixture and resock-produce:
//                               cargo build --release -p resock-fixture -p resock-bench; tansu)
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { appSite, bounded, Cluster } from "./cluster.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..");
const WORK = join(ROOT, "target", "kafka-e2e");
const FIXTURE = process.env.RESOCK_FIXTURE_BIN ?? join(ROOT, "target", "release", "resock-fixture");
const PRODUCE = join(ROOT, "target", "release", "resock-produce");
const TOTAL = 300;
const EVERY_MS = 10;
const HARD_CAP_MS = 120_000;

let cluster;
let browser;
bounded("kafka-e2e", HARD_CAP_MS, after, () => ({ browser, cluster }));

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

test("a record produced to Kafka reaches the SDK's message listener once, in order; produce-to-listener p50/p99", { timeout: HARD_CAP_MS }, async () => {
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  assert.ok(existsSync(join(ROOT, "pkg", "resock_bg.wasm")), "pkg/ is missing: run scripts/build-pkg.sh first");
  for (const bin of [FIXTURE, PRODUCE]) assert.ok(existsSync(bin), `${bin} is missing: cargo build --release -p resock-fixture -p resock-bench`);
  const site = appSite(ROOT, WORK, join(HERE, "kafka.html"));

  cluster = new Cluster({
    root: ROOT,
    dir: WORK,
    fixtureBin: FIXTURE,
    instances: 2,
    fixtureArgs: ["--static", site],
    kafka: { topic: "events", group: "e2e", partitions: 2, producerBin: PRODUCE },
  });
  await cluster.start();
  console.log(`[kafka-e2e] tansu ${cluster.brokerAddr}, redis ${cluster.redisUrl}, instances ${cluster.instances.map((x) => x.url).join(" ")}, nginx ${cluster.url} (${elapsed()})`);

  // The group has settled once each instance holds one of the two partitions (the first to
  // join takes both, and hands one over when the second joins).
  const partitions = () => Promise.all(cluster.instances.map(async (x) => (await (await fetch(`${x.url}/healthz`)).json()).kafka?.partitions ?? 0));
  for (const deadline = Date.now() + 30_000; !(await partitions()).every((p) => p === 1); ) {
    assert.ok(Date.now() < deadline, `the two instances did not split the topic's 2 partitions within 30 s: ${JSON.stringify(await partitions())}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking"],
  });
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error(`[page] ${e.message}`));
  const user = `kafka-${Math.random().toString(36).slice(2, 8)}`;
  await page.goto(`${cluster.url}/?user=${user}`);
  await page.waitForFunction(() => window.resockApp?.failed || window.resockApp?.welcomed, null, { timeout: 15_000 });
  assert.equal(await page.evaluate(() => window.resockApp.failed), null);
  console.log(`[kafka-e2e] page welcomed as ${user} (${elapsed()})`);

  // Produce: one line per record, one every 10 ms (the producer stamps each as it sends it).
  const producer = cluster.producer();
  const acks = createInterface({ input: producer.stdout });
  let acked = 0;
  acks.on("line", (l) => l.startsWith("ok ") && (acked += 1));
  for (let n = 0; n < TOTAL; n++) {
    const record = { user_id: user, type: "task_update", payload: { action: "updated", task: { id: `t${n}`, n, produced_us: "@PRODUCED_US@" } } };
    producer.stdin.write(`${user}\t${JSON.stringify(record)}\n`);
    await new Promise((r) => setTimeout(r, EVERY_MS));
  }
  producer.stdin.end();
  const code = await new Promise((ok) => producer.once("exit", ok));
  assert.equal(code, 0, "resock-produce exited cleanly");
  assert.equal(acked, TOTAL, "every record acknowledged by the broker");
  console.log(`[kafka-e2e] ${TOTAL} records produced (${elapsed()})`);

  try {
    await page.waitForFunction((total) => window.resockApp.got.length >= total, TOTAL, { timeout: 30_000, polling: 100 });
  } catch (e) {
    const health = await Promise.all(cluster.instances.map((x) => fetch(`${x.url}/healthz`).then((r) => r.json())));
    console.error(`[kafka-e2e] the page has ${await page.evaluate(() => window.resockApp.got.length)} of ${TOTAL}; instances: ${JSON.stringify(health)}`);
    throw e;
  }
  await new Promise((r) => setTimeout(r, 300)); // a duplicate would land now
  const app = await page.evaluate(() => window.resockApp);
  assert.deepEqual(app.got.map((g) => g.n), Array.from({ length: TOTAL }, (_, i) => i), "each record once, in produce order");
  assert.deepEqual(app.got.map((g) => g.seq), Array.from({ length: TOTAL }, (_, i) => i + 1), "seq 1..300 on the user's stream");
  assert.equal(app.resyncs, 0, "no resync");
  const lat = app.got.map((g) => (g.atUs - g.producedUs) / 1000).sort((a, b) => a - b);
  assert.ok(lat[0] > -5, `arrivals before their produce stamp (${lat[0]} ms): the clocks disagree`);
  const health = await Promise.all(cluster.instances.map((x) => fetch(`${x.url}/healthz`).then((r) => r.json())));
  const pushed = health.map((h) => h.kafka.pushed);
  assert.equal(pushed.reduce((a, b) => a + b, 0), TOTAL, `pushed by the instances: ${JSON.stringify(pushed)}`);
  console.log(`[kafka-e2e] produce -> Kafka -> fixture -> nginx -> SDK message listener, ${TOTAL} records at ${1000 / EVERY_MS}/s: p50 ${pct(lat, 50).toFixed(1)} ms, p99 ${pct(lat, 99).toFixed(1)} ms, max ${lat.at(-1).toFixed(1)} ms (pushed per instance ${JSON.stringify(pushed)}; ${elapsed()})`);
});
