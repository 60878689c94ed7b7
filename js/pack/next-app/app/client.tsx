"use client";
import { useRouter } from "next/navigation";
import { useConnectionState, useNotifications } from "resock/react";

export function Switch({ to }: { to: string }) {
  const router = useRouter();
  return (
    <button data-testid="switch" onClick={() => router.push(`/?user=${encodeURIComponent(to)}&next=${encodeURIComponent(to)}`)}>
      switch to {to}
    </button>
  );
}

export function Notes() {
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
