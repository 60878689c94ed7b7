// A scale-out cluster on 127.0.0.1 for the end-to-end tests: one redis-server (persistence off),
// optionally a Kafka-protocol broker (tansu) the instances consume from as one group,
// N resock-fixture instances on it (`--redis`, each on its own fixed port), and nginx in front
// of them with deploy/nginx.conf (its @DIR@, @PORT@ and @UPSTREAMS@ filled in). Instances can
// be SIGKILLed and restarted on the same port, and Redis restarted empty. Every process is
// started here and stopped by its PID in `stop()`, also from a process `exit` handler when the
// test runner dies first. Readiness is awaited on events (the `listening on` line, Redis's
// `Ready to accept connections`), and /healthz or a TCP connect where there is no event.
import { spawn } from "node:child_process";
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join, resolve } from "node:path";

/**
 * A test file's hard cap: exits the process `capMs` + 30 s after start (which stops every process
 * a cluster started, by the `exit` handler below), also for a hang outside the test's own
 * timeout; and an `after` hook that closes `resources()`'s browser and cluster.
 */
export function bounded(tag, capMs, after, resources) {
  setTimeout(() => {
    console.error(`[${tag}] hard cap of ${capMs + 30_000} ms reached: exiting`);
    process.exit(1);
  }, capMs + 30_000).unref();
  after(async () => {
    const { browser, cluster } = resources();
    await browser?.close().catch(() => {});
    await cluster?.stop();
  });
}

/**
 * A fresh folder `work`/site for the fixtures' `--static`: the app page `page` as index.html and
 * the built package (pkg/resock.js and resock_bg.wasm) beside it. Returns its path.
 */
export function appSite(root, work, page) {
  rmSync(work, { recursive: true, force: true });
  const site = join(work, "site");
  mkdirSync(site, { recursive: true });
  copyFileSync(page, join(site, "index.html"));
  for (const f of ["resock.js", "resock_bg.wasm"]) copyFileSync(join(root, "pkg", f), join(site, f));
  return site;
}

/** A free TCP port on 127.0.0.1 (bound then released; the caller binds it at once). */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = net.createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const live = new Set(); // every child process not yet seen exiting, for the exit handler
// Interrupted (Ctrl-C, or the test runner stopping this file): exit, so the handler below runs.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.once(signal, () => process.exit(130));
process.on("exit", () => {
  for (const c of live) {
    try {
      process.kill(c.pid, c.resockStopSignal ?? "SIGKILL");
    } catch {
      /* already gone */
    }
  }
});

/** Spawns `cmd args`, stdout piped, stderr to `log`; resolves once `ready(stdoutSoFar)` holds. */
function launch(cmd, args, { log, ready, what, stopSignal = "SIGKILL", timeoutMs = 20_000 }) {
  const fd = openSync(log, "a");
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", fd] });
  closeSync(fd);
  child.resockStopSignal = stopSignal;
  live.add(child);
  child.exited = new Promise((ok) => child.once("exit", (code, signal) => {
    live.delete(child);
    ok(code ?? signal);
  }));
  return new Promise((ok, fail) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`${what} not ready within ${timeoutMs} ms (log: ${log})`));
    }, timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      fail(new Error(`${what}: cannot start ${cmd}: ${e.message}`));
    });
    child.stdout.on("data", (chunk) => {
      if (ready === null) return; // nothing to wait for: just drained
      out += chunk;
      const r = ready(out);
      if (r) {
        clearTimeout(timer);
        child.stdout.resume(); // keep draining
        ok({ child, ready: r });
      }
    });
    child.exited.then((code) => {
      clearTimeout(timer);
      fail(new Error(`${what} exited (${code}) before it was ready (log: ${log})`));
    });
    if (ready === null) {
      clearTimeout(timer);
      ok({ child });
    }
  });
}

/** Waits (bounded) until `probe()` resolves true; `probe` is a cheap request, tried every 50 ms. */
async function until(probe, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const connects = (port) =>
  new Promise((ok) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      ok(true);
    });
    s.once("error", () => ok(false));
  });

export class Cluster {
  /**
   * @param {object} o
   * @param {string} o.root  the repository root (for deploy/nginx.conf)
   * @param {string} o.dir   a folder for logs, nginx's files and temp paths
   * @param {string} o.fixtureBin
   * @param {number} o.instances
   * @param {string[]} o.fixtureArgs  extra flags for every instance
   */
  constructor({ root, dir, fixtureBin, instances, fixtureArgs = [], kafka = null }) {
    Object.assign(this, { root, dir: resolve(dir), fixtureBin, n: instances, fixtureArgs, kafka });
    this.redis = null;
    this.nginx = null;
    this.broker = null;
    this.instances = []; // {port, url, child, restarts}
  }

  async start() {
    mkdirSync(this.dir, { recursive: true });
    this.redisPort = await freePort();
    await this.startRedis();
    if (this.kafka) {
      await this.startBroker();
      const { topic, group } = this.kafka;
      this.fixtureArgs = [...this.fixtureArgs, "--kafka-brokers", this.brokerAddr, "--kafka-topics", topic, "--kafka-group", group];
    }
    for (let i = 0; i < this.n; i++) {
      const port = await freePort();
      this.instances.push({ port, url: `http://127.0.0.1:${port}`, child: null, restarts: 0 });
      await this.startInstance(i);
    }
    await this.startNginx();
    return this;
  }

  get redisUrl() {
    return `redis://127.0.0.1:${this.redisPort}`;
  }

  async startRedis() {
    const args = ["--port", String(this.redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"];
    const { child } = await launch("redis-server", args, {
      log: join(this.dir, "redis.log"),
      what: "redis-server",
      ready: (out) => /Ready to accept connections/.test(out),
    });
    this.redis = child;
  }

  /** SIGKILLs redis-server, waits for its exit, and starts an empty one on the same port. */
  async restartRedis() {
    this.redis.kill("SIGKILL");
    await this.redis.exited;
    await this.startRedis();
  }

  /**
   * A Kafka-protocol broker (tansu, in-memory storage) on a free port, for `kafka: {topic,
   * group, partitions, producerBin}`: the instances consume `topic` as `group` from it (the
   * topic is created with `producerBin`, resock-produce, before the instances start).
   */
  async startBroker() {
    const port = await freePort();
    this.brokerAddr = `127.0.0.1:${port}`;
    const url = `tcp://${this.brokerAddr}`;
    const home = process.env.HOME ?? "";
    const tansu = existsSync(join(home, ".cargo", "bin", "tansu")) ? join(home, ".cargo", "bin", "tansu") : "tansu";
    const { child } = await launch(tansu, ["broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"], {
      log: join(this.dir, "tansu.log"),
      what: "tansu (scripts/setup.sh kafka installs it)",
      ready: null,
    });
    this.broker = child;
    await until(() => connects(port), "tansu listening");
    // The topic, created by the producer tool (`+N:TOPIC`; no stdin, so it produces nothing).
    const { topic, partitions = 2, producerBin } = this.kafka;
    const made = spawn(producerBin, [this.brokerAddr, `+${partitions}:${topic}`, "--lines"], { stdio: ["ignore", "ignore", "inherit"] });
    const code = await new Promise((ok) => made.once("exit", ok));
    if (code !== 0) throw new Error(`creating the topic ${topic}: ${producerBin} exited ${code}`);
  }

  /** `resock-produce BROKER TOPIC --lines` as a child (stopped with the cluster), for `produce`. */
  producer() {
    const child = spawn(this.kafka.producerBin, [this.brokerAddr, this.kafka.topic, "--lines"], { stdio: ["pipe", "pipe", "inherit"] });
    live.add(child);
    child.once("exit", () => live.delete(child));
    return child;
  }

  async startInstance(i) {
    const inst = this.instances[i];
    const args = ["--addr", `127.0.0.1:${inst.port}`, "--dev", "--redis", this.redisUrl, ...this.fixtureArgs];
    const { child } = await launch(this.fixtureBin, args, {
      log: join(this.dir, `instance-${i}.log`),
      what: `instance ${i}`,
      ready: (out) => out.includes("listening on "),
    });
    inst.child = child;
    await until(async () => (await fetch(`${inst.url}/healthz`)).status === 200, `instance ${i} /healthz`);
  }

  /** SIGKILLs instance i (a crash: no close frames) and resolves once it has exited. */
  async kill(i) {
    const c = this.instances[i].child;
    c.kill("SIGKILL");
    await c.exited;
  }

  /** Starts instance i again on its port and waits for /healthz. */
  async restart(i) {
    await this.startInstance(i);
    this.instances[i].restarts += 1;
  }

  async startNginx() {
    this.nginxPort = await freePort();
    const ndir = join(this.dir, "nginx");
    mkdirSync(ndir, { recursive: true });
    const upstreams = this.instances.map((x) => `server 127.0.0.1:${x.port} max_fails=1 fail_timeout=2s;`).join("\n        ");
    const conf = readFileSync(join(this.root, "deploy", "nginx.conf"), "utf8")
      .replaceAll("@DIR@", ndir)
      .replaceAll("@PORT@", String(this.nginxPort))
      .replaceAll("@UPSTREAMS@", upstreams);
    if (/@[A-Z]+@/.test(conf)) throw new Error("deploy/nginx.conf has a placeholder this harness does not fill");
    writeFileSync(join(ndir, "nginx.conf"), conf);
    const { child } = await launch("nginx", ["-p", ndir, "-c", join(ndir, "nginx.conf"), "-g", "daemon off;"], {
      log: join(this.dir, "nginx.stderr.log"),
      what: "nginx",
      ready: null,
      stopSignal: "SIGTERM", // the master stops its workers; SIGKILL would orphan them
    });
    this.nginx = child;
    const exitedEarly = child.exited.then((code) => {
      throw new Error(`nginx exited (${code}) at start: ${join(this.dir, "nginx.stderr.log")}, ${join(ndir, "error.log")}`);
    });
    await Promise.race([until(() => connects(this.nginxPort), "nginx listening"), exitedEarly]);
    exitedEarly.catch(() => {});
  }

  get url() {
    return `http://127.0.0.1:${this.nginxPort}`;
  }

  /** Stops every process this cluster started, by PID: nginx (SIGTERM), instances, Redis and the broker (SIGKILL). */
  async stop() {
    const waits = [];
    const stopOne = (c, signal) => {
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      try {
        process.kill(c.pid, signal);
      } catch {
        return;
      }
      waits.push(
        Promise.race([
          c.exited,
          new Promise((r) => setTimeout(r, 5000).unref()).then(() => {
            try {
              process.kill(c.pid, "SIGKILL");
            } catch {
              /* gone */
            }
          }),
        ]),
      );
    };
    stopOne(this.nginx, "SIGTERM");
    for (const x of this.instances) stopOne(x.child, "SIGKILL");
    stopOne(this.redis, "SIGKILL");
    stopOne(this.broker, "SIGKILL");
    await Promise.all(waits);
  }
}
