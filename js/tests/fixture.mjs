// What the Playwright files of js/tests/ share: the fixture's URL (scripts/with-fixture.sh
// exports it), Debian's Chromium launched headless (playwright-core, never a downloaded
// browser), unique user ids and the fixture's REST API. Not a test file (node --test runs
// *.test.mjs).
import { chromium } from "playwright-core";

export const BASE = process.env.RESOCK_FIXTURE_URL;
if (!BASE) throw new Error("run under scripts/with-fixture.sh (RESOCK_FIXTURE_URL)");

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export const uid = (name) => `${name}-${Math.random().toString(36).slice(2, 8)}`;

/** A request to the fixture: `{status, body}` with the body parsed as JSON (undefined when empty). */
export async function api(method, path, { token, body } = {}) {
  const res = await fetch(`${BASE}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
