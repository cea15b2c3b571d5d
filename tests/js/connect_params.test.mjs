// Connect parameters and close ordering: what a bot author relies on when it
// passes its own query parameters (tokens come before vsn in phoenix.js URLs)
// and when it sends a join and a bad message back to back.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { WebSocket, maskedTextFrame, rawWebSocket, startServer, stopAllServers, withTimeout } from "./lib/server.mjs";

after(stopAllServers);

/** Opens a WebSocket to `query` and resolves with the first frame or the close. */
function firstEvent(server, query, send) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/socket/websocket?${query}`);
      ws.on("open", () => ws.send(send));
      ws.on("message", (data) => {
        resolve({ frame: JSON.parse(data.toString()) });
        ws.terminate();
      });
      ws.on("close", (code, reason) => resolve({ close: code, reason: reason.toString() }));
      ws.on("error", reject);
    }),
    5000,
    `first event for ?${query}`,
  );
}

describe("connect parameters", () => {
  test("a long parameter before vsn does not hide vsn (V2 stays V2)", async (t) => {
    const server = await startServer();
    t.after(() => server.end());
    // A server without token keys leaves a "token" parameter to the
    // application (with keys it is verified: auth.test.mjs).
    const token = "t".repeat(600);
    const got = await firstEvent(server, `token=${token}&vsn=2.0.0`, '[null,"1","phoenix","heartbeat",{}]');
    assert.deepEqual(got.frame, [null, "1", "phoenix", "phx_reply", { status: "ok", response: {} }]);
  });

  test("an over-long vsn or serializer is unsupported (4002), not absent", async (t) => {
    const server = await startServer();
    t.after(() => server.end());
    for (const query of [`vsn=${"2".repeat(40)}`, `vsn=2.0.0&serializer=${"m".repeat(40)}`]) {
      const got = await firstEvent(server, query, '[null,"1","phoenix","heartbeat",{}]');
      assert.deepEqual(got, { close: 4002, reason: "unsupported vsn or serializer" }, query);
    }
  });
});

describe("close ordering", () => {
  test("a join followed at once by a malformed message: the join reply arrives before close 4000", async (t) => {
    const server = await startServer();
    t.after(() => server.end());
    // Both frames in one TCP write, so the server reads them in one go.
    const ws = rawWebSocket(server);
    t.after(() => ws.sock.destroy());
    await withTimeout(ws.ready, 5000, "the upgrade");
    ws.sock.write(Buffer.concat([maskedTextFrame('["1","1","room:x","phx_join",{}]'), maskedTextFrame("not json")]));
    const frames = await withTimeout(ws.closed, 5000, "server to close the socket");
    assert.ok(frames.length >= 2, `frames: ${frames.length}`);
    const reply = JSON.parse(frames[0].payload.toString());
    assert.deepEqual(reply.slice(0, 4), ["1", "1", "room:x", "phx_reply"]);
    assert.equal(reply[4].status, "ok");
    const close = frames.at(-1);
    assert.equal(close.opcode, 8);
    assert.equal(close.payload.readUInt16BE(0), 4000);
  });
});
