// A Server Component that renders <ResockProvider> itself (resock/react is "use client"). It
// signs in as ?user= on the server (the fixture's /dev/token) and hands the token to the
// provider; "switch" navigates to ?user=<next>: the same mounted provider gets the new token.
import { ResockProvider } from "resock/react";
import { Notes, Switch } from "./client";

export const dynamic = "force-dynamic";

export default async function Page({ searchParams }: { searchParams: Promise<{ user?: string; next?: string }> }) {
  const { user = "alice", next = "bob" } = await searchParams;
  const fixture = process.env.RESOCK_FIXTURE_URL ?? "http://127.0.0.1:8080";
  const res = await fetch(`${fixture}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_id: user }),
    cache: "no-store",
  });
  const { token } = (await res.json()) as { token: string };
  return (
    <main>
      <h1 data-testid="user">{user}</h1>
      <ResockProvider options={{ url: fixture.replace(/^http/, "ws") + "/ws", ticketUrl: `${fixture}/ws/ticket`, token }}>
        <Switch to={next} />
        <Notes />
      </ResockProvider>
    </main>
  );
}
