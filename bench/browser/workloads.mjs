// The four dispatch workloads of issue 11, shared by the benchmark server (Node) and the page
// (Chromium): the same frames, byte for byte, over the network and handed in-page.
//   notifications: the user stream (`new_notification` with `seq`, after a `welcome`), 137 B / 1 000 B
//   room: `room_message` frames (no `seq`, no `id`), 100 B / 1 000 B
// Every frame carries its position (seq, or data.i) so that each variant checks exactly-once
// delivery in order.

export const WORKLOADS = [
  { name: "notifications 137 B", kind: "notifications", bytes: 137 },
  { name: "notifications 1 000 B", kind: "notifications", bytes: 1000 },
  { name: "room 100 B", kind: "room", bytes: 100 },
  { name: "room 1 000 B", kind: "room", bytes: 1000 },
];

export function welcome() {
  return JSON.stringify({
    type: "welcome",
    payload: { user_id: "u1", connection_id: "c1", heartbeat_ms: 30000, epoch: "bench", seq: 0 },
  });
}

function pad(build, bytes) {
  const bare = build("");
  const n = bytes - bare.length; // ASCII only: characters are bytes
  return build("x".repeat(Math.max(0, n)));
}

// Frame i (1-based) of a workload, padded to `bytes` (frames with long counters can be a few
// bytes over a small target: the padding cannot go below empty).
export function frame(kind, bytes, i) {
  if (kind === "notifications") {
    return pad(
      (body) =>
        `{"type":"new_notification","seq":${i},"payload":{"id":"n${i}","title":"t","body":"${body}","read":false}}`,
      bytes,
    );
  }
  return pad((text) => `{"type":"room_message","payload":{"room":"general","from":"u2","data":{"i":${i},"t":"${text}"}}}`, bytes);
}

// The position a delivered message carries, or -1 when it is not a workload frame.
export function position(m) {
  if (m.type === "new_notification") return m.seq;
  if (m.type === "room_message") return m.payload.data.i;
  return -1;
}
