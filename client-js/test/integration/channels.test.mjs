// parley-client against the real server: joining, pushing with replies and
// broadcasts between sockets in JSON and MessagePack, join errors, and the
// heartbeat keeping an otherwise quiet socket open.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import WebSocket from "ws";

import { JsonSerializerV1, Socket } from "../../src/index.js";
import { MsgpackSerializer } from "../../src/msgpack.js";
import { error, nextEvent, ok, openSocket, sleep, startServer, stopAllServers, waitFor, WAIT } from "./helpers.mjs";

/** A `ws` WebSocket that records the frames its socket sends and receives. */
class RecordingWebSocket extends WebSocket {
  constructor(url, ...rest) {
    super(url, ...rest);
    this.sentFrames = [];
    this.receivedFrames = [];
    this.addEventListener("message", (event) => this.receivedFrames.push(event.data));
  }

  send(frame, ...rest) {
    this.sentFrames.push(frame);
    return super.send(frame, ...rest);
  }
}

let srv;
before(async () => {
  srv = await startServer([]);
});
after(stopAllServers);

for (const [name, serializer] of [
  ["JSON", undefined],
  ["JSON V1", JsonSerializerV1],
  ["MessagePack", MsgpackSerializer],
]) {
  describe(`${name}`, () => {
    test("join, push with an ok reply, and the broadcast reaches another socket and the sender", async (t) => {
      const alice = await openSocket(t, srv, { serializer, transport: RecordingWebSocket });
      const bob = await openSocket(t, srv, { serializer });
      const topic = `room:chat-${name.replace(/ /g, "-")}`;
      const aliceChannel = alice.channel(topic);
      const bobChannel = bob.channel(topic);
      await ok(aliceChannel.join(), "alice join");
      await ok(bobChannel.join(), "bob join");
      assert.equal(aliceChannel.state, "joined");

      const body = { body: "héllo ✓", n: 42, nested: { list: [1, 2.5, null, true] } };
      const atBob = nextEvent(bobChannel, "new_msg");
      const atAlice = nextEvent(aliceChannel, "new_msg");
      const reply = await ok(aliceChannel.push("new_msg", body), "push");
      assert.deepEqual(reply, {});
      assert.deepEqual(await atBob, body);
      assert.deepEqual(await atAlice, body, "the sender gets the broadcast too");

      const frames = alice.conn.sentFrames;
      const received = alice.conn.receivedFrames;
      if (serializer === MsgpackSerializer) {
        assert.ok(frames.every((f) => f instanceof Uint8Array), "MessagePack goes out in binary frames");
        assert.ok(received.length > 0 && received.every((f) => f instanceof ArrayBuffer), "and comes back in binary frames");
      } else {
        assert.ok(frames.every((f) => typeof f === "string"), "JSON goes out in text frames");
        assert.ok(received.length > 0 && received.every((f) => typeof f === "string"));
        const v1 = serializer === JsonSerializerV1;
        assert.ok(received.every((f) => Array.isArray(JSON.parse(f)) !== v1), v1 ? "V1: objects" : "V2: arrays");
      }
    });

    test("a push the server refuses is an error reply with its reason", async (t) => {
      const socket = await openSocket(t, srv, { serializer });
      const channel = socket.channel(`room:refuse-${name.replace(/ /g, "-")}`);
      await ok(channel.join());
      const response = await error(channel.push("phx_custom", {}), "reserved event");
      assert.deepEqual(response, { reason: "reserved event" });
    });
  });
}

test("JSON and MessagePack sockets in one room hear each other", async (t) => {
  const json = await openSocket(t, srv);
  const packed = await openSocket(t, srv, { serializer: MsgpackSerializer });
  const a = json.channel("room:mixed");
  const b = packed.channel("room:mixed");
  await ok(a.join());
  await ok(b.join());
  const atJson = nextEvent(a, "new_msg", (p) => p.from === "packed");
  const atPacked = nextEvent(b, "new_msg", (p) => p.from === "json");
  await ok(b.push("new_msg", { from: "packed", text: "ü" }));
  await ok(a.push("new_msg", { from: "json", text: "ß" }));
  assert.deepEqual(await atJson, { from: "packed", text: "ü" });
  assert.deepEqual(await atPacked, { from: "json", text: "ß" });
});

test("a join the server refuses surfaces its reason, and the channel keeps retrying until left", async (t) => {
  const socket = await openSocket(t, srv, { rejoinAfterMs: () => 100 });
  const channel = socket.channel(`room:${"x".repeat(300)}`);
  const reasons = [];
  channel.join().receive("error", (response) => reasons.push(response.reason));
  await waitFor(() => reasons.length >= 2, WAIT, "two join attempts");
  assert.deepEqual(reasons.slice(0, 2), ["topic too long", "topic too long"]);
  assert.equal(channel.state, "errored");
  channel.leave();
  const attempts = reasons.length;
  await sleep(300);
  assert.equal(reasons.length, attempts, "no retry after leave()");
  assert.equal(channel.state, "closed");
});

test("a join payload with an invalid user is refused", async (t) => {
  const socket = await openSocket(t, srv);
  const channel = socket.channel("room:lobby", { user: "" });
  const response = await error(channel.join(), "join");
  assert.deepEqual(response, { reason: "invalid user" });
  channel.leave();
});

test("leave: the server confirms, the channel closes, and broadcasts stop", async (t) => {
  const socket = await openSocket(t, srv);
  const other = await openSocket(t, srv);
  const channel = socket.channel("room:leave");
  const otherChannel = other.channel("room:leave");
  await ok(channel.join());
  await ok(otherChannel.join());
  const closed = new Promise((resolve) => channel.onClose(resolve));
  await ok(channel.leave(), "leave");
  await closed;
  assert.equal(channel.state, "closed");
  let heard = false;
  channel.on("new_msg", () => (heard = true));
  const echo = nextEvent(otherChannel, "new_msg");
  await ok(otherChannel.push("new_msg", { after: "leave" }));
  await echo;
  await sleep(50);
  assert.equal(heard, false);
});

describe("heartbeat", () => {
  let idleSrv;
  before(async () => {
    idleSrv = await startServer(["--idle-timeout", "1"]);
  });

  test("heartbeats are answered and keep a quiet socket past the server's idle timeout", async (t) => {
    const socket = await openSocket(t, idleSrv, { heartbeatIntervalMs: 250 });
    const closes = [];
    socket.onClose((event) => closes.push(event.code));
    await sleep(2500);
    const replies = socket.seen.filter((m) => m.topic === "phoenix" && m.event === "phx_reply");
    assert.ok(replies.length >= 6, `${replies.length} heartbeat replies in 2.5 s`);
    assert.ok(replies.every((m) => m.payload.status === "ok"));
    assert.deepEqual(closes, [], "never closed");
    assert.equal(socket.isConnected(), true);
  });

  test("without heartbeats the server closes the socket (1000, idle timeout), and it reconnects and rejoins", async (t) => {
    const socket = new Socket(idleSrv.socketBase, { transport: WebSocket, heartbeatIntervalMs: 60000 });
    t.after(() => socket.disconnect());
    const closes = [];
    socket.onClose((event) => closes.push([event.code, event.reason]));
    let opens = 0;
    socket.onOpen(() => opens++);
    socket.connect();
    const channel = socket.channel("room:idle");
    let joins = 0;
    channel.join().receive("ok", () => joins++);
    await waitFor(() => joins === 2, 5000, "a rejoin after the idle close");
    assert.deepEqual(closes[0], [1000, "idle timeout"]);
    assert.equal(opens, 2);
    await ok(channel.push("new_msg", { back: true }));
  });
});
