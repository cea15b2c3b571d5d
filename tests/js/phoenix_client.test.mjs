// The official phoenix JavaScript client (and raw clients where the client
// cannot express a case) against the real parley binary: join, push, reply,
// broadcast, leave, heartbeat, duplicate joins, unmatched topics, stale
// join_refs, the channel limit, and the V1 / V2 / MessagePack serializers.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Socket } from "phoenix";

import {
  connectRaw,
  errKey,
  mpDecode,
  mpEncode,
  RawClient,
  startServer,
  stopAllServers,
  waitFor,
  WebSocket,
  withTimeout,
} from "./lib/server.mjs";
import { phoenixSocket as openPhoenix } from "./lib/phoenix.mjs";

after(stopAllServers);

let server;
before(async () => {
  server = await startServer();
});

/** A phoenix socket to the shared server unless srv is given. */
const phoenixSocket = (t, srv = server, opts = {}) => openPhoenix(t, srv, opts);

/** Resolves {status, response} of a phoenix Push (ok, error or timeout). */
function outcome(push) {
  return new Promise((resolve) => {
    push
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }))
      .receive("timeout", () => resolve({ status: "timeout" }));
  });
}

async function joined(socket, topic, params = {}) {
  const channel = socket.channel(topic, params);
  const res = await outcome(channel.join());
  assert.deepEqual(res, { status: "ok", response: {} }, `join ${topic}`);
  return channel;
}

/** Resolves with the next payload of `event` on channel. */
function nextEvent(channel, event, timeoutMs = 5000) {
  return withTimeout(
    new Promise((resolve) => {
      const ref = channel.on(event, (payload) => {
        channel.off(event, ref);
        resolve(payload);
      });
    }),
    timeoutMs,
    `${event} on ${channel.topic}`,
  );
}

/** A round trip through the server: everything sent before it is processed. */
function ping(socket) {
  return withTimeout(
    new Promise((resolve, reject) => {
      if (!socket.ping(resolve)) reject(new Error("socket not connected"));
    }),
    5000,
    "phoenix ping",
  );
}

describe("official phoenix client (V2 JSON)", () => {
  test("connects, joins, and a push is answered ok", async (t) => {
    const socket = await phoenixSocket(t);
    assert.equal(socket.isConnected(), true);
    const channel = await joined(socket, "room:basic");
    assert.equal(channel.state, "joined");
    const res = await outcome(channel.push("new_msg", { body: "hello" }));
    assert.deepEqual(res, { status: "ok", response: {} });
    // The join reply on the wire echoed join_ref and ref.
    const joinReply = socket.seen.find((m) => m.event === "phx_reply" && m.ref === channel.joinRef());
    assert.ok(joinReply, "join reply recorded");
    assert.equal(joinReply.join_ref, channel.joinRef());
    assert.equal(joinReply.topic, "room:basic");
  });

  test("a broadcast reaches a second socket and the sender itself", async (t) => {
    const s1 = await phoenixSocket(t);
    const s2 = await phoenixSocket(t);
    const c1 = await joined(s1, "room:bcast");
    const c2 = await joined(s2, "room:bcast");
    const payload = { body: "to everyone", n: 42, nested: { list: [1, "two", null, true] }, uni: "héllo ☃ 🎉" };
    const got1 = nextEvent(c1, "shout");
    const got2 = nextEvent(c2, "shout");
    const res = await outcome(c1.push("shout", payload));
    assert.equal(res.status, "ok");
    assert.deepEqual(await got2, payload);
    assert.deepEqual(await got1, payload);
    // Broadcasts carry neither join_ref nor ref.
    const wire = s2.seen.find((m) => m.event === "shout");
    assert.equal(wire.join_ref, null);
    assert.equal(wire.ref, null);
    assert.equal(wire.topic, "room:bcast");
  });

  test("leave: ok reply, onClose fires, server pushes phx_close, broadcasts stop", async (t) => {
    const s1 = await phoenixSocket(t);
    const s2 = await phoenixSocket(t);
    const c1 = await joined(s1, "room:leave");
    const c2 = await joined(s2, "room:leave");
    const joinRef = c1.joinRef();
    const closedFired = new Promise((resolve) => c1.onClose(resolve));
    const res = await outcome(c1.leave());
    assert.deepEqual(res, { status: "ok", response: {} });
    await withTimeout(closedFired, 5000, "channel onClose");
    assert.equal(c1.state, "closed");
    // The server's own phx_close, addressed with the channel's join_ref twice.
    const close = await waitFor(
      () => s1.seen.find((m) => m.event === "phx_close" && m.topic === "room:leave"),
      5000,
      "phx_close from the server",
    );
    assert.equal(close.join_ref, joinRef);
    assert.equal(close.ref, joinRef);
    assert.deepEqual(close.payload, {});
    // The leave reply came before the phx_close.
    const replyIdx = s1.seen.findIndex((m) => m.event === "phx_reply" && m.topic === "room:leave" && m.ref !== joinRef);
    assert.ok(replyIdx >= 0 && replyIdx < s1.seen.indexOf(close), "leave reply precedes phx_close");
    // s1 no longer receives broadcasts of the topic; s2 still does.
    const got2 = nextEvent(c2, "after_leave");
    assert.equal((await outcome(c2.push("after_leave", { x: 1 }))).status, "ok");
    assert.deepEqual(await got2, { x: 1 });
    await ping(s1);
    assert.equal(s1.seen.filter((m) => m.event === "after_leave").length, 0);
  });

  test("heartbeats from the client are answered (and the socket stays up)", async (t) => {
    const socket = await phoenixSocket(t, server, { heartbeatIntervalMs: 100 });
    const beats = () =>
      socket.seen.filter((m) => m.topic === "phoenix" && m.event === "phx_reply");
    await waitFor(() => beats().length >= 3, 5000, "three heartbeat replies");
    for (const m of beats()) {
      assert.equal(m.join_ref, null);
      assert.match(m.ref, /^\d+$/);
      assert.deepEqual(m.payload, { status: "ok", response: {} });
    }
    // No heartbeat timed out, so no reconnect happened.
    assert.equal(socket.establishedConnections, 1);
    assert.equal(socket.isConnected(), true);
  });

  test("heartbeat reply, exactly as on the wire (raw client)", async (t) => {
    const c = await connectRaw(server, "v2");
    t.after(() => c.close());
    c.send(null, "hb-7", "phoenix", "heartbeat", {});
    const m = await c.reply("phoenix", "hb-7");
    assert.deepEqual(JSON.parse(m.raw.toString()), [
      null,
      "hb-7",
      "phoenix",
      "phx_reply",
      { status: "ok", response: {} },
    ]);
  });

  test("duplicate join: phx_close for the old join_ref, then ok for the new", async (t) => {
    const c = await connectRaw(server, "v2");
    const other = await connectRaw(server, "v2");
    t.after(() => (c.close(), other.close()));
    const topic = "room:dup";
    c.send("1", "1", topic, "phx_join", {});
    assert.deepEqual((await c.reply(topic, "1")).decoded, ["1", "1", topic, "phx_reply", { status: "ok", response: {} }]);
    assert.equal((await other.join(topic)).reply.payload.status, "ok");
    c.send("5", "5", topic, "phx_join", {});
    const close = await c.next((m) => m.event === "phx_close", 5000, "phx_close");
    const reply = await c.reply(topic, "5");
    assert.deepEqual(close.decoded, ["1", "1", topic, "phx_close", {}]);
    assert.deepEqual(reply.decoded, ["5", "5", topic, "phx_reply", { status: "ok", response: {} }]);
    assert.ok(c.messages.indexOf(close) < c.messages.indexOf(reply), "phx_close precedes the new ok");
    // Still exactly one subscription: one copy of each broadcast.
    await other.push(topic, "after_dup", { k: 1 });
    await c.broadcast(topic, "after_dup");
    await c.heartbeat();
    assert.equal(c.received((m) => m.event === "after_dup").length, 1);
    // The new join_ref is live; pushes with the old one are ignored.
    assert.equal((await c.push(topic, "hi", {}, "5")).reply.payload.status, "ok");
  });

  test("leave of a topic that is not joined: ok reply only, no phx_close", async (t) => {
    const c = await connectRaw(server, "v2");
    t.after(() => c.close());
    c.send("3", "4", "room:not-joined", "phx_leave", {});
    const r = await c.reply("room:not-joined", "4");
    assert.deepEqual(r.decoded, ["3", "4", "room:not-joined", "phx_reply", { status: "ok", response: {} }]);
    await c.heartbeat();
    assert.equal(c.received((m) => m.event === "phx_close").length, 0);
    assert.equal(c.messages.length, 2, "the reply and the heartbeat reply only");
  });

  test("leave from a raw client: ok reply, then phx_close with the join_ref twice", async (t) => {
    const c = await connectRaw(server, "v2");
    t.after(() => c.close());
    const { joinRef } = await c.join("room:rawleave");
    c.send(joinRef, "L", "room:rawleave", "phx_leave", {});
    const reply = await c.reply("room:rawleave", "L");
    const close = await c.next((m) => m.event === "phx_close", 5000, "phx_close");
    assert.deepEqual(reply.decoded, [joinRef, "L", "room:rawleave", "phx_reply", { status: "ok", response: {} }]);
    assert.deepEqual(close.decoded, [joinRef, joinRef, "room:rawleave", "phx_close", {}]);
    assert.ok(c.messages.indexOf(reply) < c.messages.indexOf(close));
    // After leaving, pushes to the topic are unmatched.
    const { reply: after } = await c.push("room:rawleave", "late", {}, joinRef);
    assert.deepEqual(after.payload, { status: "error", response: { reason: "unmatched topic" } });
  });

  test("event on an unjoined topic: error 'unmatched topic'", async (t) => {
    const before = await server.metrics();
    const c = await connectRaw(server, "v2");
    t.after(() => c.close());
    c.send(null, "9", "room:never-joined", "new_msg", { a: 1 });
    const m = await c.reply("room:never-joined", "9");
    assert.deepEqual(m.decoded, [
      null,
      "9",
      "room:never-joined",
      "phx_reply",
      { status: "error", response: { reason: "unmatched topic" } },
    ]);
    const afterM = await server.metrics();
    assert.equal(afterM.get(errKey("unmatched_topic")) - before.get(errKey("unmatched_topic")), 1);
    // Joining "phoenix" itself is refused the same way.
    c.send("10", "10", "phoenix", "phx_join", {});
    const j = await c.reply("phoenix", "10");
    assert.deepEqual(j.payload, { status: "error", response: { reason: "unmatched topic" } });
  });

  test("a message with a stale join_ref is ignored", async (t) => {
    const c = await connectRaw(server, "v2");
    const other = await connectRaw(server, "v2");
    t.after(() => (c.close(), other.close()));
    const topic = "room:stale";
    const { joinRef, reply } = await c.join(topic);
    assert.equal(reply.payload.status, "ok");
    await other.join(topic);
    const before = await server.metrics();
    c.send("not-" + joinRef, "77", topic, "stale_msg", { x: 1 });
    c.send("not-" + joinRef, "78", topic, "phx_leave", {});
    await c.heartbeat(); // both were processed before this reply
    await other.heartbeat();
    assert.equal(c.received((m) => m.ref === "77" || m.ref === "78").length, 0, "no reply to stale messages");
    assert.equal(c.received((m) => m.event === "phx_close").length, 0, "stale leave did not close the channel");
    assert.equal(other.received((m) => m.event === "stale_msg").length, 0, "stale message not broadcast");
    const afterM = await server.metrics();
    assert.equal(afterM.get(errKey("stale_join_ref")) - before.get(errKey("stale_join_ref")), 2);
    // The channel is still joined under its real join_ref.
    await c.push(topic, "fresh", { y: 2 }, joinRef);
    assert.deepEqual((await other.broadcast(topic, "fresh")).payload, { y: 2 });
  });

  test("too many channels: the join over --max-channels is refused", async (t) => {
    const small = await startServer(["--max-channels", "3"]);
    t.after(() => small.end());
    const socket = await phoenixSocket(t, small);
    const chans = [];
    for (let i = 0; i < 3; i++) chans.push(await joined(socket, `room:limit:${i}`));
    const extra = socket.channel("room:limit:3");
    const res = await outcome(extra.join());
    assert.deepEqual(res, { status: "error", response: { reason: "too many channels joined" } });
    extra.leave(); // stop its rejoin timer
    const m = await small.metrics();
    assert.equal(m.get(errKey("too_many_channels")), 1);
    assert.equal(m.get("parley_channels"), 3);
    // Leaving one frees a slot.
    assert.equal((await outcome(chans[0].leave())).status, "ok");
    await joined(socket, "room:limit:4");
    assert.equal((await small.metrics()).get("parley_channels"), 3);
  });
});

describe("V1 serializer (JSON objects)", () => {
  for (const [name, query] of [
    ["no vsn", ""],
    ["vsn=1.0.0", "vsn=1.0.0"],
  ]) {
    test(`raw client, ${name}: object frames without join_ref`, async (t) => {
      const url = `${server.url}${query ? "?" + query : ""}`;
      const c = await RawClient.connect(url, { format: "v1" });
      const v2 = await connectRaw(server, "v2");
      t.after(() => (c.close(), v2.close()));
      const topic = `room:v1:${name}`;
      await v2.join(topic);
      c.ws.send(JSON.stringify({ topic, event: "phx_join", payload: {}, ref: "1", join_ref: "1" }));
      const jr = await c.reply(topic, "1");
      assert.equal(jr.binary, false);
      assert.deepEqual(JSON.parse(jr.raw.toString()), {
        topic,
        event: "phx_reply",
        payload: { status: "ok", response: {} },
        ref: "1",
      });
      c.ws.send(JSON.stringify({ topic, event: "say", payload: { t: "v1" }, ref: "2", join_ref: "1" }));
      assert.deepEqual((await c.reply(topic, "2")).payload, { status: "ok", response: {} });
      const b = await c.broadcast(topic, "say");
      assert.deepEqual(JSON.parse(b.raw.toString()), { topic, event: "say", payload: { t: "v1" }, ref: null });
      assert.deepEqual((await v2.broadcast(topic, "say")).decoded, [null, null, topic, "say", { t: "v1" }]);
      // A V1 client that sends no join_ref at all (Phoenix < 1.3 style).
      c.ws.send(JSON.stringify({ topic, event: "say", payload: { t: "old" }, ref: "3" }));
      assert.equal((await c.reply(topic, "3")).payload.status, "ok");
      c.ws.send(JSON.stringify({ topic: "phoenix", event: "heartbeat", payload: {}, ref: "4" }));
      assert.deepEqual(JSON.parse((await c.reply("phoenix", "4")).raw.toString()), {
        topic: "phoenix",
        event: "phx_reply",
        payload: { status: "ok", response: {} },
        ref: "4",
      });
    });
  }

  test('phoenix client with vsn "1.0.0" and V1 object encode/decode', async (t) => {
    const v1 = {
      encode: (msg, cb) =>
        cb(JSON.stringify({ topic: msg.topic, event: msg.event, payload: msg.payload, ref: msg.ref, join_ref: msg.join_ref })),
      decode: (raw, cb) => cb(JSON.parse(raw)),
    };
    const socket = await phoenixSocket(t, server, { vsn: "1.0.0", ...v1 });
    assert.match(socket.endPointURL(), /vsn=1\.0\.0/);
    const other = await phoenixSocket(t);
    const ch = await joined(socket, "room:v1:phx");
    const ch2 = await joined(other, "room:v1:phx");
    const got = nextEvent(ch, "v1_msg");
    const got2 = nextEvent(ch2, "v1_msg");
    assert.deepEqual(await outcome(ch.push("v1_msg", { hello: "v1" })), { status: "ok", response: {} });
    assert.deepEqual(await got, { hello: "v1" });
    assert.deepEqual(await got2, { hello: "v1" });
    // Every frame the V1 socket got is a V1 object (no join_ref key).
    assert.ok(socket.seen.length >= 3);
    for (const m of socket.seen) {
      assert.ok(!Array.isArray(m) && !("join_ref" in m), `V1 frame: ${JSON.stringify(m)}`);
    }
    const closed = new Promise((resolve) => ch.onClose(resolve));
    assert.equal((await outcome(ch.leave())).status, "ok");
    await withTimeout(closed, 5000, "V1 channel close");
    await waitFor(() => socket.seen.find((m) => m.event === "phx_close"), 5000, "V1 phx_close");
  });
});

describe("MessagePack serializer", () => {
  test("raw client: binary frames holding the 5-element array", async (t) => {
    const c = await connectRaw(server, "msgpack");
    t.after(() => c.close());
    const topic = "room:mp";
    const { joinRef, reply } = await c.join(topic);
    assert.deepEqual(reply.decoded, [joinRef, joinRef, topic, "phx_reply", { status: "ok", response: {} }]);
    const payload = { s: "ü", i: -7, big: 2 ** 40, f: 0.25, b: false, n: null, a: [1, [2, { d: "x" }]] };
    const { ref, reply: r } = await c.push(topic, "mp_msg", payload, joinRef);
    assert.deepEqual(r.decoded, [joinRef, ref, topic, "phx_reply", { status: "ok", response: {} }]);
    const b = await c.broadcast(topic, "mp_msg");
    assert.deepEqual(b.decoded, [null, null, topic, "mp_msg", payload]);
    assert.deepEqual((await c.heartbeat()).payload, { status: "ok", response: {} });
    assert.ok(c.messages.length >= 4);
    for (const m of c.messages) {
      assert.equal(m.binary, true, "every frame on a msgpack socket is binary");
      assert.ok(Array.isArray(mpDecode(m.raw)) && mpDecode(m.raw).length === 5);
    }
  });

  test("phoenix client with msgpack encode/decode (serializer=msgpack param)", async (t) => {
    const socket = await phoenixSocket(t, server, {
      params: { serializer: "msgpack" },
      encode: (msg, cb) => cb(mpEncode([msg.join_ref, msg.ref, msg.topic, msg.event, msg.payload])),
      decode: (raw, cb) => {
        assert.ok(raw instanceof ArrayBuffer, "msgpack frames arrive binary");
        const [join_ref, ref, topic, event, payload] = mpDecode(new Uint8Array(raw));
        cb({ join_ref, ref, topic, event, payload });
      },
    });
    const ch = await joined(socket, "room:mp:phx");
    const got = nextEvent(ch, "m");
    assert.equal((await outcome(ch.push("m", { k: [1, 2, 3] }))).status, "ok");
    assert.deepEqual(await got, { k: [1, 2, 3] });
    await ping(socket);
  });

  test("large messages (150 KB, --max-frame 200000) reach V2, V1 and msgpack subscribers intact", async (t) => {
    const big = await startServer(["--max-frame", "200000", "--max-payload", "200000"]);
    t.after(() => big.end());
    const topic = "room:big";
    const clients = { v2: await connectRaw(big, "v2"), v1: await connectRaw(big, "v1"), mp: await connectRaw(big, "msgpack") };
    t.after(() => Object.values(clients).forEach((c) => c.terminate()));
    const jrs = {};
    for (const [k, c] of Object.entries(clients)) jrs[k] = (await c.join(topic)).joinRef;
    for (const [name, sender] of Object.entries(clients)) {
      // Sizes around the 16-bit and 64-bit WebSocket length encodings.
      for (const size of [65000, 70000, 150000]) {
        const payload = { from: name, size, body: "ä".repeat(size / 2) };
        const { reply } = await sender.push(topic, "big", payload, jrs[name], 10000);
        assert.equal(reply.payload.status, "ok");
        for (const [rname, c] of Object.entries(clients)) {
          const got = await c.broadcast(topic, "big", (p) => p.from === name && p.size === size, 10000);
          assert.deepEqual(got.payload, payload, `${name} -> ${rname}, ${size} bytes`);
        }
      }
    }
  });

  test("mixed serializers: V2 JSON, V1 and msgpack subscribers get the same message", async (t) => {
    const topic = "room:mixed";
    const phx = await phoenixSocket(t);
    const pch = await joined(phx, topic);
    const v2 = await connectRaw(server, "v2");
    const v1 = await connectRaw(server, "v1");
    const mp = await connectRaw(server, "msgpack");
    t.after(() => (v2.close(), v1.close(), mp.close()));
    const jrs = {};
    for (const [k, c] of Object.entries({ v2, v1, mp })) {
      const { joinRef, reply } = await c.join(topic);
      assert.equal(reply.payload.status, "ok");
      jrs[k] = joinRef;
    }
    const senders = [
      ["v2", v2],
      ["v1", v1],
      ["mp", mp],
    ];
    for (const [name, sender] of senders) {
      const payload = { from: name, text: "¡hola! 日本", num: 12345, frac: 1.5, list: [true, null, { z: "z" }], empty: {} };
      const pGot = nextEvent(pch, "mixed");
      const { reply } = await sender.push(topic, "mixed", payload, jrs[name]);
      assert.equal(reply.payload.status, "ok");
      const fromV2 = await v2.broadcast(topic, "mixed", (p) => p.from === name);
      const fromV1 = await v1.broadcast(topic, "mixed", (p) => p.from === name);
      const fromMp = await mp.broadcast(topic, "mixed", (p) => p.from === name);
      assert.deepEqual(JSON.parse(fromV2.raw.toString()), [null, null, topic, "mixed", payload]);
      assert.deepEqual(JSON.parse(fromV1.raw.toString()), { topic, event: "mixed", payload, ref: null });
      assert.equal(fromMp.binary, true);
      assert.deepEqual(mpDecode(fromMp.raw), [null, null, topic, "mixed", payload]);
      assert.deepEqual(await pGot, payload);
    }
  });
});
