// The official phoenix client, set up the way every integration test needs
// it: over the `ws` transport, never reconnecting or rejoining on its own (a
// test that loses its socket must fail), and recording what it receives.

import { Socket } from "phoenix";

import { trustingWebSocket, WebSocket, withTimeout } from "./server.mjs";

const WAIT = 5000;

/** Opens a phoenix Socket to srv (a server from startServer; over wss://,
 * trusting its certificate, when it serves TLS) and resolves once it is open.
 * Every message it receives is kept in socket.seen; it is disconnected when
 * test t ends. opts override the Socket options. */
export async function phoenixSocket(t, srv, opts = {}) {
  const socket = new Socket(srv.socketBase, {
    transport: srv.ca ? trustingWebSocket(srv.ca) : WebSocket,
    timeout: WAIT,
    heartbeatIntervalMs: 30000,
    reconnectAfterMs: () => 60000,
    rejoinAfterMs: () => 60000,
    ...opts,
  });
  socket.seen = [];
  socket.onMessage((msg) => socket.seen.push(msg));
  const opened = new Promise((resolve, reject) => {
    socket.onOpen(resolve);
    socket.onError((e) => reject(new Error(`phoenix socket error: ${e?.message ?? e}`)));
  });
  socket.connect();
  t.after(() => socket.disconnect());
  await withTimeout(opened, WAIT, "phoenix socket open");
  return socket;
}
