// Served by the fixture under /webpack/ (same origin). ?user=A&next=B signs in as A; "switch"
// signs in as B on the same mounted provider (a new token, whose `sub` names the new user).
import { createElement as h, StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
// The full build (resock/full: with `share` and `sseUrl`) through webpack; the Vite and Next apps
// use the default one.
import { ResockProvider, useConnectionState, useNotifications } from "resock/full/react";

const params = new URLSearchParams(location.search);
const origin = location.origin;

async function devToken(user) {
  const res = await fetch(`${origin}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_id: user }),
  });
  return (await res.json()).token;
}

function Notes() {
  const { state } = useConnectionState();
  const { items, loading } = useNotifications();
  return h(
    "section",
    { "data-testid": "notes", "data-state": state, "data-loading": String(loading) },
    h("ul", null, items.map((n) => h("li", { key: n.id, "data-testid": "note" }, n.title))),
  );
}

function App() {
  const [session, setSession] = useState(null);
  useEffect(() => {
    const user = params.get("user") ?? "alice";
    void devToken(user).then((token) => setSession({ user, token }));
  }, []);
  if (!session) return h("p", null, "signing in");
  const next = params.get("next") ?? "bob";
  return h(
    ResockProvider,
    { options: { url: origin.replace(/^http/, "ws") + "/ws", ticketUrl: `${origin}/ws/ticket`, token: session.token } },
    h("h1", { "data-testid": "user" }, session.user),
    h("button", { "data-testid": "switch", onClick: () => void devToken(next).then((token) => setSession({ user: next, token })) }, `switch to ${next}`),
    h(Notes),
  );
}

createRoot(document.getElementById("root")).render(h(StrictMode, null, h(App)));
