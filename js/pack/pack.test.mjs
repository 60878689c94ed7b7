// The package as a frontend developer gets it: `npm pack` of pkg/, installed from the tarball
// (a copy, not a symlink) into a fresh Vite React TypeScript app, a plain webpack 5 app and a
// fresh Next.js app-router app under a temporary folder (templates: js/pack/vite-app,
// webpack-app, next-app; no resock configuration in any). All are built (Vite with tsc; Next
// with its own type-check) and served: Vite's and webpack's by a fixture (--static, webpack's
// under /webpack/), Next's by `next start` beside the fixture. Playwright
// (playwright-core, Debian's /usr/bin/chromium) checks in each that a notification posted over
// REST shows up, and that switching user on the mounted provider shows only the new user's data
// (and closes the old user's socket). Needs pkg/ (scripts/build-pkg.sh) and
// target/debug/resock-fixture. Logs: target/pack-e2e/. Screenshots: artifacts/pack-*.png.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const pkg = join(root, "pkg");
const fixtureBin = join(root, "target", "debug", "resock-fixture");
const logs = join(root, "target", "pack-e2e");
const artifacts = join(root, "artifacts");
mkdirSync(logs, { recursive: true });
mkdirSync(artifacts, { recursive: true });
for (const need of [join(pkg, "package.json"), join(pkg, "react.js"), fixtureBin]) {
  if (!existsSync(need)) throw new Error(`${need} is missing: run scripts/build-pkg.sh and cargo build -p resock-fixture first`);
}

const work = mkdtempSync(join(tmpdir(), "resock-pack-"));
const children = [];
let browser;
let fixture; // base URL
let nextUrl;

const step = (msg) => console.log(`[pack] ${msg}`);

function run(cmd, args, cwd, name, env = {}) {
  const started = Date.now();
  const log = join(logs, `${name}.log`);
  try {
    execFileSync(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", openSync(log, "w"), openSync(log, "a")], timeout: 600_000 });
  } catch (e) {
    throw new Error(`${name} failed (${e.message}); its log:\n${readFileSync(log, "utf8").slice(-4000)}`);
  }
  step(`${name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function start(cmd, args, cwd, name, env = {}) {
  const log = openSync(join(logs, `${name}.log`), "w");
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", log] });
  children.push(child);
  return child;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitHttp(url, ms) {
  const until = Date.now() + ms;
  for (let i = 0; Date.now() < until && i < 600; i++) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not answer within ${ms} ms`);
}

function app(name) {
  const dir = join(work, name);
  cpSync(join(here, name), dir, { recursive: true });
  const pj = join(dir, "package.json");
  writeFileSync(pj, readFileSync(pj, "utf8").replace("RESOCK_TGZ", tgz));
  return dir;
}

let tgz;
before(async () => {
  step(`working in ${work}`);
  run("npm", ["pack", pkg, "--pack-destination", work, "--silent"], work, "npm-pack");
  tgz = join(work, readdirSync(work).find((f) => f.endsWith(".tgz")));
  const npmInstall = ["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline"];

  const vite = app("vite-app");
  run("npm", npmInstall, vite, "vite-install");
  assert.equal(lstatSync(join(vite, "node_modules", "resock")).isSymbolicLink(), false, "installed from the tarball, not linked");
  run("npm", ["run", "build"], vite, "vite-build");

  // webpack 5, plain JS: its bundle is served by the same fixture under /webpack/.
  const webpack = app("webpack-app");
  run("npm", npmInstall, webpack, "webpack-install");
  assert.equal(lstatSync(join(webpack, "node_modules", "resock")).isSymbolicLink(), false);
  run("npm", ["run", "build"], webpack, "webpack-build");
  cpSync(join(webpack, "dist"), join(vite, "dist", "webpack"), { recursive: true });
  cpSync(join(webpack, "index.html"), join(vite, "dist", "webpack", "index.html"));

  const next = app("next-app");
  run("npm", npmInstall, next, "next-install");
  assert.equal(lstatSync(join(next, "node_modules", "resock")).isSymbolicLink(), false);
  run("npm", ["run", "build"], next, "next-build", { NEXT_TELEMETRY_DISABLED: "1" });

  const fx = start(fixtureBin, ["--addr", "127.0.0.1:0", "--dev", "--static", join(vite, "dist")], root, "fixture", { RESOCK_LOG: "quiet" });
  fixture = await new Promise((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => reject(new Error("the fixture did not start in 20 s")), 20_000);
    fx.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    });
    fx.once("exit", (code) => reject(new Error(`the fixture exited (${code})`)));
  });
  step(`fixture ${fixture}`);
  const port = await freePort();
  start(join(next, "node_modules", ".bin", "next"), ["start", "-p", String(port), "-H", "127.0.0.1"], next, "next-start", {
    RESOCK_FIXTURE_URL: fixture,
    NEXT_TELEMETRY_DISABLED: "1",
  }).stdout.resume();
  nextUrl = `http://127.0.0.1:${port}`;
  await waitHttp(`${nextUrl}/?user=warmup`, 60_000);
  step(`next ${nextUrl}`);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}, { timeout: 900_000 });

after(async () => {
  await browser?.close();
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 200));
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
});

const uid = (name) => `${name}-${Math.random().toString(36).slice(2, 8)}`;

async function api(method, path, { token, body } = {}) {
  const res = await fetch(`${fixture}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function notify(user, title) {
  const token = (await api("POST", "/dev/token", { body: { user_id: "pack-backend", role: "service" } })).body.token;
  const res = await api("POST", "/api/notifications", { token, body: { user_id: user, title, body: "pack" } });
  assert.equal(res.status, 201);
}

async function check(base, label) {
  const context = await browser.newContext();
  const errors = [];
  try {
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(e.message));
    const [a, b] = [uid("ann"), uid("ben")];
    await page.goto(`${base}?user=${a}&next=${b}`);
    const open = page.locator('[data-testid="notes"][data-state="open"]');
    await open.waitFor({ state: "attached", timeout: 20_000 });
    await notify(a, `hello ${a}`);
    await page.getByTestId("note").filter({ hasText: `hello ${a}` }).waitFor({ timeout: 5000 });

    await page.getByTestId("switch").click();
    await page.getByTestId("user").filter({ hasText: b }).waitFor({ timeout: 10_000 });
    await open.waitFor({ state: "attached", timeout: 20_000 });
    await notify(b, `hello ${b}`);
    await notify(a, `late for ${a}`);
    await page.getByTestId("note").filter({ hasText: `hello ${b}` }).waitFor({ timeout: 5000 });
    await page.waitForTimeout(500); // anything of the old user would show by now
    assert.deepEqual(await page.getByTestId("note").allTextContents(), [`hello ${b}`], "only the new user's data");
    const stats = (await api("GET", "/dev/stats")).body;
    assert.equal(stats.users[a]?.open ?? 0, 0, "the old user's socket is closed");
    assert.equal(stats.users[b]?.open, 1, "one socket for the new user");
    await page.screenshot({ path: join(artifacts, `pack-${label}.png`), fullPage: true });
    assert.deepEqual(errors, [], "no page errors");
  } finally {
    await context.close();
  }
}

test("a fresh Vite React TS app with the packed tarball: a notification shows; a user switch shows only the new user's", async () => {
  await check(`${fixture}/`, "vite");
});

test("a plain webpack 5 app with the packed tarball: a notification shows; a user switch shows only the new user's", async () => {
  await check(`${fixture}/webpack/index.html`, "webpack");
});

test("a fresh Next.js app-router app (provider in a Server Component): a notification shows; a user switch shows only the new user's", async () => {
  await check(`${nextUrl}/`, "next");
});
