// Cross-tab sharing's browser side (issue 12): the user's Web Lock and a BroadcastChannel.
// It carries values; every decision is in src/core/share.rs. Messages between tabs are short
// arrays: [tag, from, ...], the tag a number (encoded and decoded in src/web/share.rs).

// False where either is missing or refused (an opaque origin: a sandboxed iframe, say).
export function resock_share_supported() {
  try {
    new BroadcastChannel("resock-probe").close();
    return typeof navigator === "object" && typeof navigator.locks.request === "function";
  } catch {
    return false;
  }
}

// One handle per client: the channel, and the lock request it holds or waits for.
// onPeer(array) gets every message of the other tabs; onLock(true) when the lock is granted,
// onLock(false) when it is taken away (stolen by a tab that found this one silent).
// A page going away (closed, or into the back/forward cache) says `Bye` ([6, me]) so that the
// leader leaves its rooms now; one that comes back is told to open its relay again.
export function resock_share_open(name, me, onPeer, onLock) {
  const h = { name, ch: new BroadcastChannel(name), onLock, grant: 0, held: 0, release: null, ctl: null, closed: false };
  h.ch.onmessage = (e) => {
    if (!h.closed && Array.isArray(e.data)) onPeer(e.data);
  };
  h.hide = () => h.ch.postMessage([6, me]); // Bye
  addEventListener("pagehide", h.hide);
  return h;
}

// Asks for the lock (queued behind the tab holding it), or takes it (`steal`).
export function resock_share_lock(h, steal) {
  if (h.closed || h.held) return;
  if (h.ctl) h.ctl.abort();
  const grant = ++h.grant;
  let opts;
  if (steal) {
    h.ctl = null;
    opts = { steal: true };
  } else {
    h.ctl = new AbortController();
    opts = { signal: h.ctl.signal };
  }
  navigator.locks
    .request(h.name, opts, () => {
      if (h.closed || grant !== h.grant) return undefined; // a request given up meanwhile
      h.held = grant;
      h.ctl = null;
      h.onLock(true);
      return new Promise((resolve) => (h.release = resolve));
    })
    .catch(() => {
      // Aborted while queued (given up), or held and stolen: only the latter is news.
      if (!h.closed && h.held === grant) {
        h.held = 0;
        h.release = null;
        h.onLock(false);
      }
    });
}

export function resock_share_post(h, msg) {
  if (!h.closed) h.ch.postMessage(msg);
}

// A follower's frame for the leader, with what the leader needs of it read here.
export function resock_share_up(h, me, text) {
  if (h.closed) return;
  let m = null;
  try {
    m = JSON.parse(text);
  } catch {}
  const p = m && m.payload;
  const room = p && typeof p.room === "string" ? p.room : undefined;
  const id = m && typeof m.id === "string" ? m.id : undefined;
  h.ch.postMessage([3, me, text, m && typeof m.type === "string" ? m.type : "", room, id]);
}

// The leader's socket: every frame goes down to the other tabs as it comes, before it is parsed.
export function resock_share_relay(ws, h, me) {
  ws.resockRelay = (data) => {
    if (!h.closed && typeof data === "string") h.ch.postMessage([4, me, data]); // Down
  };
}

// Lets go of the lock (another tab is granted it at once) and closes the channel.
export function resock_share_close(h) {
  h.closed = true;
  removeEventListener("pagehide", h.hide);
  if (h.ctl) h.ctl.abort();
  if (h.release) h.release();
  h.ch.close();
}
