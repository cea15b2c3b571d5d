// Bad input: every malformed, oversized or unsupported thing a client can
// send. Unaddressable input closes the offender's socket with a specific
// WebSocket close code and reason; addressable input gets an error reply and
// the socket stays open. In every case the matching
// parley_errors_total{kind=...} counter (and no other) goes up by one, the
// offender's channel is cleaned up, and two healthy clients already joined to
// the same topic keep pushing and receiving broadcasts.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import {
  connectRaw,
  mpEncode,
  RawClient,
  NO_RATE_LIMITS,
  startServer,
  stopAllServers,
  waitFor,
} from "./lib/server.mjs";

after(stopAllServers);

const TOPIC = "room:bad";
const MAX_FRAME = 65536;
let server;
let h1; // healthy V2 JSON client
let h2; // healthy MessagePack client
let h1Ref;
let h2Ref;

before(async () => {
  // The clients here push at machine speed, and a message of max-frame bytes
  // must be broadcast: no rate limits, and a payload limit of max-frame.
  server = await startServer([...NO_RATE_LIMITS, "--max-payload", String(MAX_FRAME)]);
  h1 = await connectRaw(server, "v2");
  h2 = await connectRaw(server, "msgpack");
  const j1 = await h1.join(TOPIC);
  const j2 = await h2.join(TOPIC);
  assert.equal(j1.reply.payload.status, "ok");
  assert.equal(j2.reply.payload.status, "ok");
  h1Ref = j1.joinRef;
  h2Ref = j2.joinRef;
});

after(() => {
  h1?.terminate();
  h2?.terminate();
});

/** Error counters that changed between two metrics snapshots. */
function errorDeltas(before, afterM) {
  const d = {};
  for (const [k, v] of afterM) {
    const m = /^parley_errors_total\{kind="(\w+)"\}$/.exec(k);
    if (m && v !== before.get(k)) d[m[1]] = v - (before.get(k) ?? 0);
  }
  return d;
}

async function assertCounted(before, kind, count = 1) {
  const afterM = await server.metrics();
  assert.deepEqual(errorDeltas(before, afterM), { [kind]: count }, `parley_errors_total{kind="${kind}"} +${count}, nothing else`);
}

/** Both healthy clients can still push, and both receive each other's
 * broadcasts; and `badEvent` (if given) was never broadcast to them. */
async function assertHealthy(badEvent) {
  for (const [sender, ref] of [
    [h1, h1Ref],
    [h2, h2Ref],
  ]) {
    const n = randomUUID();
    const { reply } = await sender.push(TOPIC, "healthy", { n }, ref);
    assert.deepEqual(reply.payload, { status: "ok", response: {} }, "healthy push answered ok");
    assert.deepEqual((await h1.broadcast(TOPIC, "healthy", (p) => p.n === n)).payload, { n });
    assert.deepEqual((await h2.broadcast(TOPIC, "healthy", (p) => p.n === n)).payload, { n });
  }
  if (badEvent) {
    assert.equal(h1.received((m) => m.event === badEvent).length, 0, `${badEvent} not broadcast`);
    assert.equal(h2.received((m) => m.event === badEvent).length, 0, `${badEvent} not broadcast`);
  }
}

/** Waits until only the two healthy clients (and their two channels) remain. */
async function assertCleanedUp() {
  await waitFor(
    async () => {
      const m = await server.metrics();
      return m.get("parley_connections") === 2 && m.get("parley_channels") === 2 && m.get("parley_topics") === 1;
    },
    5000,
    "the closed client's connection and channel to be released",
  );
}

/** A JSON text of [jr, ref, topic, event, {pad}] exactly `size` bytes long. */
function jsonOfSize(size, jr, event = "sized", ref = "bad") {
  const base = JSON.stringify([jr, ref, TOPIC, event, { pad: "" }]);
  return JSON.stringify([jr, ref, TOPIC, event, { pad: "p".repeat(size - base.length) }]);
}

/** {a:{a:...{}}}: `objects` nested objects. */
function nested(objects) {
  let o = {};
  for (let i = 1; i < objects; i++) o = { a: o };
  return o;
}

/**
 * An unaddressable-input case: the client connects (format/query), joins
 * TOPIC unless join is false, sends bad input, and must be closed with
 * exactly {code, reason}, with `kind` counted once.
 */
async function closeCase(t, { format = "v2", query, join = true, send, code, reason, kind }) {
  const before = await server.metrics();
  const c = await connectRaw(server, format, { query });
  t.after(() => c.terminate());
  let joinRef = null;
  if (join) {
    const j = await c.join(TOPIC);
    assert.equal(j.reply.payload.status, "ok");
    joinRef = j.joinRef;
  }
  if (send) await send(c, joinRef);
  const closed = await c.closed(5000);
  assert.deepEqual(closed, { code, reason });
  assert.equal(c.received((m) => m.ref === "bad").length, 0, "no reply to the bad message");
  await assertCleanedUp();
  await assertCounted(before, kind);
  await assertHealthy("bad_event");
}

/**
 * An addressable-input case: the error reply must be exactly
 * [replyJoinRef, "bad", topic, "phx_reply", {status: "error", response: {reason}}]
 * (decoded), the socket stays open and usable, and `kind` is counted once.
 */
async function replyCase(t, { format = "v2", message, topic = TOPIC, reason, kind, replyJoinRef }) {
  const c = await connectRaw(server, format);
  t.after(() => c.terminate());
  const { joinRef } = await c.join(TOPIC);
  const before = await server.metrics();
  const m = message(joinRef);
  if (typeof m === "string" || Buffer.isBuffer(m)) await c.sendRaw(m, { binary: format === "msgpack" });
  else c.send(...m);
  const reply = await c.reply(topic, "bad");
  const expectJr = replyJoinRef === undefined ? joinRef : replyJoinRef;
  const expected = [expectJr, "bad", topic, "phx_reply", { status: "error", response: { reason } }];
  if (format === "v1") {
    assert.deepEqual(JSON.parse(reply.raw.toString()), { topic, event: "phx_reply", payload: expected[4], ref: "bad" });
  } else {
    assert.deepEqual(reply.decoded, expected);
  }
  await assertCounted(before, kind);
  // The offender is still connected and still joined.
  assert.equal(c.isOpen, true);
  const { reply: ok } = await c.push(TOPIC, "after_error", { fine: true }, joinRef);
  assert.deepEqual(ok.payload, { status: "ok", response: {} });
  assert.deepEqual((await h1.broadcast(TOPIC, "after_error")).payload, { fine: true });
  await h2.broadcast(TOPIC, "after_error");
  await assertHealthy("bad_event");
}

describe("unaddressable input closes the socket", () => {
  test("malformed JSON -> 4000", (t) =>
    closeCase(t, {
      send: (c, jr) => c.sendRaw(`["${jr}","bad","${TOPIC}","bad_event",{"a":`),
      code: 4000,
      reason: "malformed message",
      kind: "malformed",
    }));

  test("not JSON at all -> 4000", (t) =>
    closeCase(t, { send: (c) => c.sendRaw("hello, server"), code: 4000, reason: "malformed message", kind: "malformed" }));

  test("trailing garbage after the array -> 4000", (t) =>
    closeCase(t, {
      send: (c, jr) => c.sendRaw(JSON.stringify([jr, "bad", TOPIC, "bad_event", {}]) + "]"),
      code: 4000,
      reason: "malformed message",
      kind: "malformed",
    }));

  test("a 4-element array -> 4000 not a Phoenix message", (t) =>
    closeCase(t, {
      send: (c, jr) => c.sendRaw(JSON.stringify([jr, "bad", TOPIC, "bad_event"])),
      code: 4000,
      reason: "not a Phoenix message",
      kind: "not_a_message",
    }));

  test("an object on a V2 socket -> 4000 not a Phoenix message", (t) =>
    closeCase(t, {
      send: (c, jr) => c.sendRaw(JSON.stringify({ join_ref: jr, ref: "bad", topic: TOPIC, event: "bad_event", payload: {} })),
      code: 4000,
      reason: "not a Phoenix message",
      kind: "not_a_message",
    }));

  test("an array on a V1 socket -> 4000 not a Phoenix message", (t) =>
    closeCase(t, {
      format: "v1",
      send: (c, jr) => c.sendRaw(JSON.stringify([jr, "bad", TOPIC, "bad_event", {}])),
      code: 4000,
      reason: "not a Phoenix message",
      kind: "not_a_message",
    }));

  test("wrong field type: number topic -> 4000", (t) =>
    closeCase(t, {
      send: (c, jr) => c.sendRaw(JSON.stringify([jr, "bad", 42, "bad_event", {}])),
      code: 4000,
      reason: "invalid field type",
      kind: "field_type",
    }));

  test("wrong field type: object ref -> 4000", (t) =>
    closeCase(t, {
      send: (c, jr) => c.sendRaw(JSON.stringify([jr, { r: 1 }, TOPIC, "bad_event", {}])),
      code: 4000,
      reason: "invalid field type",
      kind: "field_type",
    }));

  test("wrong field type: number join_ref -> 4000", (t) =>
    closeCase(t, {
      send: (c) => c.sendRaw(JSON.stringify([1, "bad", TOPIC, "bad_event", {}])),
      code: 4000,
      reason: "invalid field type",
      kind: "field_type",
    }));

  test("wrong field type: array event -> 4000", (t) =>
    closeCase(t, {
      send: (c, jr) => c.sendRaw(JSON.stringify([jr, "bad", TOPIC, ["bad_event"], {}])),
      code: 4000,
      reason: "invalid field type",
      kind: "field_type",
    }));

  test("message of max-frame + 1 bytes (65537) -> 1009", (t) =>
    closeCase(t, {
      send: (c, jr) => {
        const text = jsonOfSize(MAX_FRAME + 1, jr, "bad_event");
        assert.equal(Buffer.byteLength(text), 65537);
        return c.sendRaw(text);
      },
      code: 1009,
      reason: "message too big",
      kind: "too_big",
    }));

  test("fragmented message exceeding max-frame in total -> 1009", (t) =>
    closeCase(t, {
      send: async (c, jr) => {
        const text = jsonOfSize(90000, jr, "bad_event");
        await c.sendRaw(text.slice(0, 30000), { fin: false });
        await c.sendRaw(text.slice(30000, 60000), { fin: false });
        await c.sendRaw(text.slice(60000), { fin: true });
      },
      code: 1009,
      reason: "message too big",
      kind: "too_big",
    }));

  test("invalid UTF-8 in a text frame -> 1007", (t) =>
    closeCase(t, {
      send: (c, jr) =>
        c.sendRaw(
          Buffer.concat([
            Buffer.from(`["${jr}","bad","${TOPIC}","bad_event",{"s":"`),
            Buffer.from([0xff, 0xfe]),
            Buffer.from(`"}]`),
          ]),
          { binary: false },
        ),
      code: 1007,
      reason: "invalid UTF-8",
      kind: "invalid_utf8",
    }));

  test("invalid UTF-8: overlong encoding of '/' -> 1007", (t) =>
    closeCase(t, {
      send: (c, jr) =>
        c.sendRaw(
          Buffer.concat([Buffer.from(`["${jr}","bad","${TOPIC}","bad_event",{"s":"`), Buffer.from([0xc0, 0xaf]), Buffer.from(`"}]`)]),
          { binary: false },
        ),
      code: 1007,
      reason: "invalid UTF-8",
      kind: "invalid_utf8",
    }));

  test("invalid UTF-8 in a MessagePack string -> 1007", (t) =>
    closeCase(t, {
      format: "msgpack",
      send: (c, jr) => {
        const good = Buffer.from(mpEncode([jr, "bad", TOPIC, "bad_event", { s: "XY" }]));
        const i = good.lastIndexOf(Buffer.from("XY"));
        good[i] = 0xc3; // 0xc3 0x59: a lead byte followed by a non-continuation byte
        return c.sendRaw(good, { binary: true });
      },
      code: 1007,
      reason: "invalid UTF-8",
      kind: "invalid_utf8",
    }));

  test("binary frame on a JSON socket -> 1003", (t) =>
    closeCase(t, {
      send: (c, jr) => c.sendRaw(Buffer.from(JSON.stringify([jr, "bad", TOPIC, "bad_event", {}])), { binary: true }),
      code: 1003,
      reason: "binary frame on a JSON socket",
      kind: "frame_type",
    }));

  test("binary frame on a V1 socket -> 1003", (t) =>
    closeCase(t, {
      format: "v1",
      send: (c) => c.sendRaw(Buffer.from(JSON.stringify({ topic: TOPIC, event: "bad_event", payload: {}, ref: "bad" })), { binary: true }),
      code: 1003,
      reason: "binary frame on a JSON socket",
      kind: "frame_type",
    }));

  test("text frame on a MessagePack socket -> 1003", (t) =>
    closeCase(t, {
      format: "msgpack",
      send: (c, jr) => c.sendRaw(JSON.stringify([jr, "bad", TOPIC, "bad_event", {}]), { binary: false }),
      code: 1003,
      reason: "text frame on a MessagePack socket",
      kind: "frame_type",
    }));

  test("JSON nested deeper than 32 (33 levels) -> 4000", (t) =>
    closeCase(t, {
      // envelope array (1) + 32 nested objects = 33 levels
      send: (c, jr) => c.sendRaw(JSON.stringify([jr, "bad", TOPIC, "bad_event", nested(32)])),
      code: 4000,
      reason: "nesting too deep",
      kind: "too_deep",
    }));

  test("deeply nested arrays (1000 levels) -> 4000", (t) =>
    closeCase(t, {
      send: (c, jr) => c.sendRaw(`["${jr}","bad","${TOPIC}","bad_event",{"a":${"[".repeat(1000)}${"]".repeat(1000)}}]`),
      code: 4000,
      reason: "nesting too deep",
      kind: "too_deep",
    }));

  test("MessagePack nested deeper than 32 -> 4000", (t) =>
    closeCase(t, {
      format: "msgpack",
      send: (c, jr) => c.sendRaw(mpEncode([jr, "bad", TOPIC, "bad_event", nested(32)]), { binary: true }),
      code: 4000,
      reason: "nesting too deep",
      kind: "too_deep",
    }));

  test("MessagePack bin in the payload -> 4000", (t) =>
    closeCase(t, {
      format: "msgpack",
      send: (c, jr) => c.sendRaw(mpEncode([jr, "bad", TOPIC, "bad_event", { b: new Uint8Array([1, 2, 3]) }]), { binary: true }),
      code: 4000,
      reason: "unsupported MessagePack type",
      kind: "unsupported_type",
    }));

  test("MessagePack ext (timestamp) in the payload -> 4000", (t) =>
    closeCase(t, {
      format: "msgpack",
      send: (c, jr) => c.sendRaw(mpEncode([jr, "bad", TOPIC, "bad_event", { d: new Date(0) }]), { binary: true }),
      code: 4000,
      reason: "unsupported MessagePack type",
      kind: "unsupported_type",
    }));

  test("MessagePack map with an integer key -> 4000", (t) =>
    closeCase(t, {
      format: "msgpack",
      send: (c, jr) => {
        const head = Buffer.from(mpEncode([jr, "bad", TOPIC, "bad_event", {}]));
        // Replace the trailing empty fixmap (0x80) by {1: 2}.
        assert.equal(head[head.length - 1], 0x80);
        const bytes = Buffer.concat([head.subarray(0, head.length - 1), Buffer.from([0x81, 0x01, 0x02])]);
        return c.sendRaw(bytes, { binary: true });
      },
      code: 4000,
      reason: "unsupported MessagePack type",
      kind: "unsupported_type",
    }));

  test("MessagePack that does not parse -> 4000", (t) =>
    closeCase(t, {
      format: "msgpack",
      send: (c) => c.sendRaw(Buffer.from([0x95, 0xc0, 0xa3, 0x62]), { binary: true }), // truncated
      code: 4000,
      reason: "malformed message",
      kind: "malformed",
    }));

  test("MessagePack non-array -> 4000 not a Phoenix message", (t) =>
    closeCase(t, {
      format: "msgpack",
      send: (c) => c.sendRaw(mpEncode({ topic: TOPIC }), { binary: true }),
      code: 4000,
      reason: "not a Phoenix message",
      kind: "not_a_message",
    }));

  for (const [name, query] of [
    ["vsn=3.0.0", "vsn=3.0.0"],
    ["vsn=2.1.0", "vsn=2.1.0"],
    ["vsn=banana", "vsn=banana"],
    ["serializer=xml", "vsn=2.0.0&serializer=xml"],
    ["msgpack with vsn=1.0.0", "vsn=1.0.0&serializer=msgpack"],
  ]) {
    test(`unsupported ${name} -> 4002 right after open`, async (t) => {
      const before = await server.metrics();
      const c = await RawClient.connect(`${server.url}?${query}`, { format: "v2" });
      t.after(() => c.terminate());
      const closed = await c.closed(5000);
      assert.deepEqual(closed, { code: 4002, reason: "unsupported vsn or serializer" });
      assert.equal(c.messages.length, 0, "nothing but the close");
      await assertCleanedUp();
      await assertCounted(before, "bad_vsn");
      await assertHealthy();
    });
  }
});

describe("closing a socket that has a backlog", () => {
  // Regression test: the writer of commit 04215e1 and earlier gathered
  // frames into 64 KiB writes and could leave a frame half written; a close
  // at that moment dropped the rest of the frame, so the close frame landed
  // inside it and the client saw a truncated frame and 1006.
  test(
    "bad input while broadcasts are still queued: the stream stays valid and ends in a 4000 close frame",
    async (t) => {
      // Limits high enough that the backlog is not a slow-consumer case.
      const srv = await startServer([...NO_RATE_LIMITS, "--out-queue-msgs", "1000000", "--out-queue-bytes", "268435456"]);
      t.after(() => srv.end());
      const T = "room:backlog";
      const flooder = await connectRaw(srv, "v2");
      t.after(() => flooder.terminate());
      const { joinRef } = await flooder.join(T);
      // The outcome depends on where the server's writer is when the close
      // comes, so try a few times; every round must end cleanly.
      const outcomes = [];
      for (let round = 0; round < 5; round++) {
        const victim = await connectRaw(srv, "v2");
        t.after(() => victim.terminate());
        await victim.join(T);
        // Let a backlog build: more than the kernel buffers hold (~6 MB).
        victim.ws._socket.pause();
        const pad = "b".repeat(2000 + 97 * round);
        let seq = 0;
        while (seq * pad.length < 6e6) {
          const refs = [];
          for (let i = 0; i < 50; i++, seq++) {
            const ref = flooder.makeRef();
            refs.push(ref);
            flooder.send(joinRef, ref, T, "blob", { seq, pad });
          }
          for (const ref of refs) await flooder.reply(T, ref, 10000);
          flooder.messages.length = 0;
          flooder.consumed.clear();
        }
        // Read again, and at once send something unaddressable: the server
        // closes the socket while it is still draining the backlog.
        victim.ws._socket.resume();
        victim.ws.send("this is not JSON");
        const closed = await victim.closed(10000);
        const blobs = victim.received((m) => m.event === "blob");
        assert.equal(victim.received((m) => m.undecodable).length, 0, "every frame decoded");
        assert.deepEqual(blobs.map((m) => m.payload.seq), range(blobs.length), "an in-order prefix");
        outcomes.push({ round, ...closed, received: blobs.length });
        await flooder.heartbeat(10000);
        flooder.messages.length = 0;
        flooder.consumed.clear();
      }
      for (const o of outcomes) {
        assert.deepEqual({ code: o.code, reason: o.reason }, { code: 4000, reason: "malformed message" }, JSON.stringify(outcomes));
      }
    },
  );
});

const range = (n) => Array.from({ length: n }, (_, i) => i);

describe("addressable input gets an error reply", () => {
  for (const [name, payload] of [
    ["a string", "hello"],
    ["an array", [1, 2]],
    ["a number", 5],
    ["null", null],
  ]) {
    test(`payload that is ${name} -> "payload must be an object"`, (t) =>
      replyCase(t, {
        message: (jr) => [jr, "bad", TOPIC, "bad_event", payload],
        reason: "payload must be an object",
        kind: "bad_payload",
      }));
  }

  test('MessagePack payload that is a string -> "payload must be an object"', (t) =>
    replyCase(t, {
      format: "msgpack",
      message: (jr) => [jr, "bad", TOPIC, "bad_event", "nope"],
      reason: "payload must be an object",
      kind: "bad_payload",
    }));

  test('V1 payload that is an array -> "payload must be an object"', (t) =>
    replyCase(t, {
      format: "v1",
      message: (jr) => JSON.stringify({ join_ref: jr, ref: "bad", topic: TOPIC, event: "bad_event", payload: [1] }),
      reason: "payload must be an object",
      kind: "bad_payload",
    }));

  test('topic of 257 bytes -> "topic too long" (echoing the topic)', (t) => {
    const long = "t".repeat(257);
    return replyCase(t, {
      message: (jr) => [jr, "bad", long, "phx_join", {}],
      topic: long,
      reason: "topic too long",
      kind: "bad_topic",
    });
  });

  test('multi-byte topic of 258 bytes -> "topic too long"', (t) => {
    const long = "é".repeat(129); // 258 bytes, 129 characters
    return replyCase(t, {
      message: (jr) => [jr, "bad", long, "bad_event", {}],
      topic: long,
      reason: "topic too long",
      kind: "bad_topic",
    });
  });

  test('empty topic -> "topic must not be empty"', (t) =>
    replyCase(t, {
      message: (jr) => [jr, "bad", "", "bad_event", {}],
      topic: "",
      reason: "topic must not be empty",
      kind: "bad_topic",
    }));

  test('event of 257 bytes -> "event too long"', (t) =>
    replyCase(t, {
      message: (jr) => [jr, "bad", TOPIC, "e".repeat(257), {}],
      reason: "event too long",
      kind: "bad_event",
    }));

  for (const event of ["phx_custom", "phx_reply", "phx_close", "phx_error", "heartbeat", "presence_state", "presence_diff"]) {
    test(`reserved event "${event}" -> "reserved event"`, (t) => {
      const marker = randomUUID();
      return replyCase(t, {
        message: (jr) => [jr, "bad", TOPIC, event, { marker }],
        reason: "reserved event",
        kind: "reserved_event",
      }).then(() => {
        const relayed = h1.received((m) => m.event === event && m.payload && m.payload.marker === marker);
        assert.equal(relayed.length, 0, `${event} not broadcast`);
      });
    });
  }
});

describe("limits are inclusive and fragments are reassembled", () => {
  /** Sends `send(c, joinRef)` from a fresh joined client; the message (event
   * `event`) must be answered ok and broadcast with exactly `payload`. */
  async function accepted(t, { format = "v2", event, payload, send, topic = TOPIC }) {
    // payload may be a function, called once the message was sent.
    const c = await connectRaw(server, format);
    t.after(() => c.terminate());
    const { joinRef } = await c.join(topic);
    const before = await server.metrics();
    await send(c, joinRef);
    if (typeof payload === "function") payload = payload();
    const reply = await c.reply(topic, "good");
    assert.deepEqual(reply.payload, { status: "ok", response: {} });
    const b = await c.broadcast(topic, event);
    assert.deepEqual(b.payload, payload);
    if (topic === TOPIC) {
      assert.deepEqual((await h1.broadcast(TOPIC, event)).payload, payload);
      assert.deepEqual((await h2.broadcast(TOPIC, event)).payload, payload);
    }
    assert.deepEqual(errorDeltas(before, await server.metrics()), {}, "no error counted");
    await assertHealthy();
  }

  test("a message of exactly max-frame (65536) bytes is accepted intact", (t) => {
    let sent;
    return accepted(t, {
      event: "exact",
      payload: () => JSON.parse(sent)[4],
      send: (c, jr) => {
        sent = jsonOfSize(MAX_FRAME, jr, "exact", "good");
        assert.equal(Buffer.byteLength(sent), MAX_FRAME);
        return c.sendRaw(sent);
      },
    });
  });

  test("32 levels of nesting (envelope included) are accepted", (t) =>
    accepted(t, {
      event: "deep_ok",
      payload: nested(31),
      send: (c, jr) => c.sendRaw(JSON.stringify([jr, "good", TOPIC, "deep_ok", nested(31)])),
    }));

  test("a 256-byte topic and a 256-byte event are accepted", (t) =>
    accepted(t, {
      topic: "T".repeat(256),
      event: "E".repeat(256),
      payload: { ok: 1 },
      send: (c, jr) => c.sendRaw(JSON.stringify([jr, "good", "T".repeat(256), "E".repeat(256), { ok: 1 }])),
    }));

  test("fragmented text message (with a ping between fragments) is reassembled", (t) => {
    const payload = { text: "ü€😀".repeat(700), n: 1 };
    return accepted(t, {
      event: "frag",
      payload,
      send: async (c, jr) => {
        const bytes = Buffer.from(JSON.stringify([jr, "good", TOPIC, "frag", payload]));
        // Cut inside multi-byte characters on purpose: UTF-8 is checked on the
        // whole message, not per fragment.
        const cuts = [1, 517, 518, 3001, bytes.length - 2];
        let prev = 0;
        for (const cut of cuts) {
          await c.sendRaw(bytes.subarray(prev, cut), { fin: false, binary: false });
          if (cut === 517) c.ws.ping();
          prev = cut;
        }
        await c.sendRaw(bytes.subarray(prev), { fin: true, binary: false });
      },
    });
  });

  test("fragmented MessagePack message is reassembled", (t) => {
    const payload = { list: Array.from({ length: 300 }, (_, i) => ({ i, s: `item-${i}` })) };
    return accepted(t, {
      format: "msgpack",
      event: "mp_frag",
      payload,
      send: async (c, jr) => {
        const bytes = Buffer.from(mpEncode([jr, "good", TOPIC, "mp_frag", payload]));
        const third = Math.floor(bytes.length / 3);
        await c.sendRaw(bytes.subarray(0, third), { fin: false, binary: true });
        await c.sendRaw(bytes.subarray(third, 2 * third), { fin: false, binary: true });
        await c.sendRaw(bytes.subarray(2 * third), { fin: true, binary: true });
      },
    });
  });

  test("a fragmented message of exactly max-frame bytes is accepted", (t) => {
    let sent;
    return accepted(t, {
      event: "frag_exact",
      payload: () => JSON.parse(sent)[4],
      send: async (c, jr) => {
        sent = jsonOfSize(MAX_FRAME, jr, "frag_exact", "good");
        await c.sendRaw(sent.slice(0, 20000), { fin: false });
        await c.sendRaw(sent.slice(20000, 40000), { fin: false });
        await c.sendRaw(sent.slice(40000), { fin: true });
      },
    });
  });

  test("messages after a fragmented one are read normally (no leftover state)", async (t) => {
    const c = await connectRaw(server, "v2");
    t.after(() => c.terminate());
    const { joinRef } = await c.join(TOPIC);
    const big = JSON.stringify([joinRef, "f1", TOPIC, "seq", { i: 1, pad: "x".repeat(3000) }]);
    await c.sendRaw(big.slice(0, 1000), { fin: false });
    await c.sendRaw(big.slice(1000), { fin: true });
    c.send(joinRef, "f2", TOPIC, "seq", { i: 2 });
    await c.sendRaw(big.replace('"f1"', '"f3"').replace('"i":1', '"i":3'));
    for (const ref of ["f1", "f2", "f3"]) assert.equal((await c.reply(TOPIC, ref)).payload.status, "ok");
    const seen = [];
    for (let k = 0; k < 3; k++) seen.push((await h1.broadcast(TOPIC, "seq")).payload.i);
    assert.deepEqual(seen, [1, 2, 3]);
    for (let k = 0; k < 3; k++) await h2.broadcast(TOPIC, "seq");
  });
});
