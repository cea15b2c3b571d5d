// Helpers for the integration tests: parley-client sockets over the `ws`
// package against a real parley started with tests/js/lib/server.mjs, and
// promise wrappers for the callback API.

import WebSocket from "ws";

import { Socket } from "../../src/index.js";
import { withTimeout } from "../../../tests/js/lib/server.mjs";

export { startServer, stopAllServers, sleep, waitFor, withTimeout } from "../../../tests/js/lib/server.mjs";

export const WAIT = 5000;

/** A parley-client Socket to `srv`, opened; disconnected when test `t` ends.
 * Every message it receives is kept in socket.seen. */
export async function openSocket(t, srv, opts = {}) {
  const socket = new Socket(srv.socketBase, { transport: WebSocket, timeout: WAIT, ...opts });
  socket.seen = [];
  socket.onMessage((msg) => socket.seen.push(msg));
  const opened = new Promise((resolve) => socket.onOpen(resolve));
  socket.connect();
  t.after(() => socket.disconnect());
  await withTimeout(opened, WAIT, "socket open");
  return socket;
}

/** Resolves with the response when `push` ends "ok"; rejects on "error" or
 * "timeout". */
export function ok(push, what = "push") {
  return new Promise((resolve, reject) => {
    push
      .receive("ok", resolve)
      .receive("error", (r) => reject(new Error(`${what}: error ${JSON.stringify(r)}`)))
      .receive("timeout", () => reject(new Error(`${what}: timeout`)));
  });
}

/** Resolves with the response when `push` ends "error". */
export function error(push, what = "push") {
  return new Promise((resolve, reject) => {
    push
      .receive("error", resolve)
      .receive("ok", (r) => reject(new Error(`${what}: unexpected ok ${JSON.stringify(r)}`)))
      .receive("timeout", () => reject(new Error(`${what}: timeout`)));
  });
}

/** Resolves with the next payload of `event` on `channel` matching `pred`. */
export function nextEvent(channel, event, pred = () => true, timeoutMs = WAIT) {
  let ref;
  const received = new Promise((resolve) => {
    ref = channel.on(event, (payload) => {
      if (pred(payload)) resolve(payload);
    });
  });
  return withTimeout(received, timeoutMs, `${event} on ${channel.topic}`).finally(() => channel.off(event, ref));
}
