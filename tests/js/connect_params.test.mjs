// Connect parameters and close ordering: what a bot author relies on when it
// passes its own query parameters (tokens come before vsn in phoenix.js URLs)
// and when it sends a join and a bad message back to back.
import assert from "node:assert/strict";
import net from "node:net";
import { after, describe, test } from "node:test";

import { WebSocket, startServer, stopAllServers, withTimeout } from "./lib/server.mjs";

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
    const frame = (text) => {
      const payload = Buffer.from(text);
      const mask = Buffer.from([1, 2, 3, 4]);
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
      return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
    };
    const received = await withTimeout(
      new Promise((resolve, reject) => {
        const sock = net.connect(server.port, "127.0.0.1", () => {
          sock.write(
            "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
          );
        });
        let buf = Buffer.alloc(0);
        let upgraded = false;
        sock.on("data", (d) => {
          buf = Buffer.concat([buf, d]);
          if (!upgraded) {
            const end = buf.indexOf("\r\n\r\n");
            if (end < 0) return;
            upgraded = true;
            buf = buf.subarray(end + 4);
            sock.write(Buffer.concat([frame('["1","1","room:x","phx_join",{}]'), frame("not json")]));
          }
        });
        sock.on("close", () => resolve(buf));
        sock.on("error", reject);
      }),
      5000,
      "server to close the socket",
    );
    // Parse the server's frames (unmasked, short).
    const frames = [];
    for (let off = 0; off + 2 <= received.length; ) {
      let len = received[off + 1] & 0x7f;
      let hdr = 2;
      if (len === 126) {
        len = received.readUInt16BE(off + 2);
        hdr = 4;
      }
      frames.push({ opcode: received[off] & 0x0f, payload: received.subarray(off + hdr, off + hdr + len) });
      off += hdr + len;
    }
    assert.ok(frames.length >= 2, `frames: ${frames.length}`);
    const reply = JSON.parse(frames[0].payload.toString());
    assert.deepEqual(reply.slice(0, 4), ["1", "1", "room:x", "phx_reply"]);
    assert.equal(reply[4].status, "ok");
    const close = frames.at(-1);
    assert.equal(close.opcode, 8);
    assert.equal(close.payload.readUInt16BE(0), 4000);
  });
});
