// Served by the fixture (--static): same origin. ?user=A&next=B signs in as A; "switch" signs in
// as B on the same mounted provider (a new token, whose `sub` names the new user).
import { useEffect, useState } from "react";
import { ResockProvider, useConnectionState, useNotifications } from "resock/react";

const params = new URLSearchParams(location.search);
const origin = location.origin;

async function devToken(user: string): Promise<string> {
  const res = await fetch(`${origin}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_id: user }),
  });
  return ((await res.json()) as { token: string }).token;
}

export function App() {
  const [session, setSession] = useState<{ user: string; token: string } | null>(null);
  useEffect(() => {
    const user = params.get("user") ?? "alice";
    void devToken(user).then((token) => setSession({ user, token }));
  }, []);
  if (!session) return <p>signing in</p>;
  const next = params.get("next") ?? "bob";
  return (
    <ResockProvider options={{ url: origin.replace(/^http/, "ws") + "/ws", ticketUrl: `${origin}/ws/ticket`, token: session.token }}>
      <h1 data-testid="user">{session.user}</h1>
      <button data-testid="switch" onClick={() => void devToken(next).then((token) => setSession({ user: next, token }))}>
        switch to {next}
      </button>
      <Notes />
    </ResockProvider>
  );
}

function Notes() {
  const { state } = useConnectionState();
  const { items, loading } = useNotifications();
  return (
    <section data-testid="notes" data-state={state} data-loading={loading}>
      <ul>
        {items.map((n) => (
          <li key={n.id} data-testid="note">
            {n.title}
          </li>
        ))}
      </ul>
    </section>
  );
}
