#!/usr/bin/env node
// Runs the fixture server on a fixed free port and lets tests running inside a browser kill and
// restart it: POST /restart {"down_ms": N} on the control address. Only 127.0.0.1.
//
//   node scripts/fixture-supervisor.mjs --env-file F -- target/debug/resock-fixture --dev ...
//
// Prints `fixture http://127.0.0.1:P` and `control http://127.0.0.1:C`, and writes them to
// --env-file as RESOCK_FIXTURE_URL / RESOCK_SUPERVISOR_URL lines. Stops the fixture and exits on
// SIGTERM, SIGINT, or when its parent's stdin closes (so a crashed test script leaves nothing).
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { writeFileSync } from "node:fs";
import net from "node:net";

const args = process.argv.slice(2);
const split = args.indexOf("--");
if (split < 0 || split === args.length - 1) {
  console.error("usage: fixture-supervisor.mjs [--env-file F] -- <fixture binary> [flags...]");
  process.exit(2);
}
const own = args.slice(0, split);
const [bin, ...flags] = args.slice(split + 1);
const envFile = own.includes("--env-file") ? own[own.indexOf("--env-file") + 1] : null;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const port = await freePort();
const addr = `127.0.0.1:${port}`;
let child = null;
let restarts = 0;

function start() {
  return new Promise((resolve, reject) => {
    const c = spawn(bin, ["--addr", addr, ...flags], { stdio: ["ignore", "pipe", "inherit"] });
    child = c;
    let buf = "";
    const timer = setTimeout(() => reject(new Error("the fixture printed no listening line in 20 s")), 20000);
    c.stdout.on("data", (chunk) => {
      buf += chunk;
      const line = buf.split("\n").find((l) => l.startsWith("listening on "));
      if (line) {
        clearTimeout(timer);
        resolve(line.slice("listening on ".length).trim());
      }
    });
    c.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (child === c) child = null;
      reject(new Error(`the fixture exited (${code ?? signal}) before listening`));
    });
  });
}

function stop(signal) {
  return new Promise((resolve) => {
    const c = child;
    if (!c || c.exitCode !== null) return resolve();
    c.once("exit", () => resolve());
    c.kill(signal);
  });
}

const fixtureUrl = await start();

const control = createServer(async (req, res) => {
  const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "content-type" };
  if (req.method === "OPTIONS") {
    res.writeHead(204, cors).end();
    return;
  }
  let body = "";
  for await (const chunk of req) body += chunk;
  try {
    if (req.method === "POST" && req.url === "/restart") {
      const { down_ms = 0 } = body ? JSON.parse(body) : {};
      await stop("SIGKILL"); // a crash: no close frames, clients see 1006
      await new Promise((r) => setTimeout(r, Math.min(Number(down_ms) || 0, 30000)));
      await start();
      restarts += 1;
      res.writeHead(200, { ...cors, "content-type": "application/json" }).end(JSON.stringify({ url: fixtureUrl, restarts }));
    } else if (req.method === "GET" && req.url === "/health") {
      res.writeHead(200, { ...cors, "content-type": "application/json" }).end(JSON.stringify({ url: fixtureUrl, restarts, running: !!child }));
    } else {
      res.writeHead(404, { ...cors, "content-type": "application/json" }).end('{"error":"not found"}');
    }
  } catch (e) {
    res.writeHead(500, { ...cors, "content-type": "application/json" }).end(JSON.stringify({ error: String(e) }));
  }
});
await new Promise((r) => control.listen(0, "127.0.0.1", r));
const controlUrl = `http://127.0.0.1:${control.address().port}`;
if (envFile) {
  writeFileSync(envFile, `RESOCK_FIXTURE_URL=${fixtureUrl}\nRESOCK_SUPERVISOR_URL=${controlUrl}\n`);
}
console.log(`fixture ${fixtureUrl}`);
console.log(`control ${controlUrl}`);

async function shutdown() {
  control.close();
  await stop("SIGTERM");
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
