// Per-socket abuse limits (docs/limits.md): the message and join rate
// limits (token buckets; error reply "rate_limited", then close 4004 for a
// client that keeps sending), the chat payload limit ("payload_too_large",
// no broadcast), their counters in /metrics and their settings. Throughout,
// the other clients of the topic keep pushing and receiving, and a
// well-behaved phoenix client under the default settings never meets a limit.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import net from "node:net";
import { after, describe, test } from "node:test";

import { Presence } from "phoenix";

import {
  SANITIZED, connectRaw, errKey, makeTestCert, maskedTextFrame, rawWebSocket, sleep, startServer, stopAllServers, tcpQueues,
  waitFor, withTimeout,
} from "./lib/server.mjs";
import { phoenixSocket } from "./lib/phoenix.mjs";

after(stopAllServers);

const TOPIC = "room:limits";
const RATE_KEYS = [
  errKey("rate_limited"),
  errKey("join_rate_limited"),
  errKey("payload_too_large"),
  "parley_rate_limit_disconnects_total",
];

/** A server with `args`, killed when test t ends. */
async function server(t, args = [], opts = {}) {
  const s = await startServer(args, opts);
  t.after(() => s.kill());
  return s;
}

/** n raw clients joined to topic; each gets .joinRef. Terminated after t. */
async function joinedClients(t, srv, n, topic = TOPIC) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const c = await connectRaw(srv, "v2");
    t.after(() => c.terminate());
    const { joinRef, reply } = await c.join(topic);
    assert.equal(reply.payload.status, "ok");
    c.joinRef = joinRef;
    out.push(c);
  }
  return out;
}

/** The replies (in order) to refs sent by c on topic. */
const repliesTo = (c, topic, refs) =>
  refs.map((ref) => c.received((m) => m.event === "phx_reply" && m.topic === topic && m.ref === ref)[0]);

/** Every client in `clients` can push on topic and receives every other's
 * broadcast: the topic works for them. */
async function assertTopicWorks(clients, topic = TOPIC) {
  for (const sender of clients) {
    const n = randomUUID();
    const { reply } = await sender.push(topic, "healthy", { n }, sender.joinRef);
    assert.deepEqual(reply.payload, { status: "ok", response: {} }, "a healthy push is answered ok");
    for (const c of clients) await c.broadcast(topic, "healthy", (p) => p.n === n);
  }
}

/** A client on a bare socket (rawWebSocket) that joins TOPIC and then
 * writes chat messages as fast as the socket takes them, whatever the server
 * answers, and never stops. closeFrame resolves with {code} when the close
 * frame arrives, ended when the server ends the socket. */
function rawFlooder(srv, joinPayload = {}) {
  const ws = rawWebSocket(srv);
  const batch = Buffer.concat(
    Array.from({ length: 200 }, (_, i) =>
      maskedTextFrame(JSON.stringify(["1", `f${i}`, TOPIC, "spam", { pad: "x".repeat(200) }]))),
  );
  const flood = () => {
    while (!ws.sock.destroyed && ws.sock.write(batch));
  };
  ws.sock.on("drain", flood);
  ws.ready.then(() => {
    ws.sock.write(maskedTextFrame(JSON.stringify(["1", "1", TOPIC, "phx_join", joinPayload])));
    flood();
  });
  const closeFrame = new Promise((resolve) => {
    ws.onFrame = (f) => f.opcode === 8 && resolve({ code: f.payload.readUInt16BE(0) });
  });
  return { sock: ws.sock, closeFrame, ended: ws.closed };
}

describe("message rate", () => {
  test("a flood gets rate_limited replies, then close 4004; the others on the topic keep receiving", async (t) => {
    const srv = await server(t);
    const [flooder, a, b] = await joinedClients(t, srv, 3);
    const refs = [];
    for (let i = 0; i < 200; i++) {
      const ref = `f${i}`;
      refs.push(ref);
      flooder.send(flooder.joinRef, ref, TOPIC, "spam", { i });
    }
    const closed = await flooder.closed(5000);
    assert.deepEqual(closed, { code: 4004, reason: "rate limit exceeded" });
    // Defaults: a burst of 30, then 10 refusals are tolerated; the 11th
    // refusal closes. Every reply before the close frame arrived.
    const replies = repliesTo(flooder, TOPIC, refs);
    const answered = replies.filter(Boolean);
    assert.ok(answered.length >= 41 && answered.length < 50, `answered ${answered.length}`);
    const ok = answered.filter((m) => m.payload.status === "ok");
    const limited = answered.filter((m) => m.payload.status === "error");
    assert.ok(ok.length >= 30 && ok.length < 35, `ok ${ok.length}`);
    // 10 tolerated refusals and the one that closes (one or two more if the
    // server took long enough over the flood for the rate to repay some).
    assert.ok(limited.length >= 11 && limited.length <= 13, `refused ${limited.length}`);
    for (const m of limited) {
      assert.deepEqual(m.payload, { status: "error", response: { reason: "rate_limited" } });
      assert.equal(m.join_ref, flooder.joinRef);
    }
    // The accepted messages were broadcast, the refused ones were not.
    await waitFor(() => a.received((m) => m.event === "spam").length === ok.length, 5000, "a gets the accepted spam");
    const spam = a.received((m) => m.event === "spam").map((m) => m.payload.i);
    assert.deepEqual(spam, ok.map((m) => Number(m.ref.slice(1))), "exactly the accepted messages");
    await sleep(100);
    assert.equal(b.received((m) => m.event === "spam").length, ok.length);
    await assertTopicWorks([a, b]);

    const m = await srv.metrics();
    assert.equal(m.get(errKey("rate_limited")), limited.length);
    assert.equal(m.get("parley_rate_limit_disconnects_total"), 1);
    assert.equal(m.get("parley_connections"), 2);
    assert.match(srv.stderr(), /event=rate_limit_exceeded conn=\d+ kind=rate_limited close=4004/);
  });

  test("over TLS too: the replies and the 4004 close reach a flooder", async (t) => {
    const srv = await server(t, ["--msg-rate", "1", "--msg-burst", "5", "--rate-strikes", "3"], { tls: makeTestCert() });
    const [flooder, other] = await joinedClients(t, srv, 2);
    for (let i = 0; i < 200; i++) flooder.send(flooder.joinRef, `f${i}`, TOPIC, "spam", { i });
    assert.deepEqual(await flooder.closed(5000), { code: 4004, reason: "rate limit exceeded" });
    const statuses = repliesTo(flooder, TOPIC, ["f0", "f4", "f5", "f8", "f9"]).map((m) => m?.payload.status);
    assert.deepEqual(statuses, ["ok", "ok", "error", "error", undefined], "5 ok, 4 refused, nothing after the close");
    await assertTopicWorks([other]);
  });

  test("a flooder that ignores its 4004 and sends on is read no more: its input piles up in the kernel, and the socket ends within 5 s", async (t) => {
    const srv = await server(t);
    const [member] = await joinedClients(t, srv, 1);
    const flooder = rawFlooder(srv);
    t.after(() => flooder.sock.destroy());
    const close = await withTimeout(flooder.closeFrame, 5000, "the 4004 close frame");
    assert.equal(close.code, 4004);
    const closedAt = Date.now();
    // It keeps writing; the server drops 16 KiB of it, then stops reading:
    // what it sends from then on waits, unread, in the server's socket.
    await waitFor(async () => (await srv.metrics()).get("parley_close_input_stopped_total") === 1, 3000,
      "the server to stop reading the flooder");
    await waitFor(() => (tcpQueues(srv.port, flooder.sock.localPort)?.rx ?? 0) > 64 * 1024, 3000,
      "the flooder's bytes to wait unread at the server");
    assert.match(srv.stderr(), /event=close_input_stopped conn=\d+ code=4004 bytes=\d+/);
    // the member is served all along
    await assertTopicWorks([member]);
    // and the flooder's socket ends by the close timeout, though it never stops
    await withTimeout(flooder.ended, 8000 * (SANITIZED ? 2 : 1), "the server to end the socket");
    const after = Date.now() - closedAt;
    assert.ok(after < 7000 * (SANITIZED ? 2 : 1), `ended ${after} ms after the close frame`);
    assert.equal((await srv.metrics()).get("parley_connections"), 1);
  });

  test("a client closed with 4004 leaves the topic's presence at once, not when its socket ends", async (t) => {
    const srv = await server(t);
    const member = await connectRaw(srv, "v2");
    t.after(() => member.terminate());
    await member.join(TOPIC, { user: "member" });
    await waitFor(() => presenceView(member, TOPIC).member, 2000, "the member's own presence");
    // The flooder joins TOPIC as a presence user (presence is on for every
    // topic by default), is closed with 4004, and sends on: its socket ends
    // only at the 5 s deadline, but its presence must go with the close.
    const flooder = rawFlooder(srv, { user: "flooder" });
    t.after(() => flooder.sock.destroy());
    assert.equal((await withTimeout(flooder.closeFrame, 5000, "the 4004 close frame")).code, 4004);
    await sleep(1000);
    assert.equal(flooder.sock.destroyed, false, "its socket is still open");
    assert.deepEqual(Object.keys(presenceView(member, TOPIC)), ["member"], "the flooder is not in the member's view");
    assert.equal((await srv.metrics()).get("parley_presence_entries"), 1);
  });

  test("heartbeats count too", async (t) => {
    const srv = await server(t, ["--msg-rate", "1", "--msg-burst", "5", "--rate-strikes", "2"]);
    const c = await connectRaw(srv, "v2");
    t.after(() => c.terminate());
    const refs = [];
    for (let i = 0; i < 20; i++) {
      refs.push(`h${i}`);
      c.send(null, `h${i}`, "phoenix", "heartbeat", {});
    }
    assert.equal((await c.closed()).code, 4004);
    const statuses = repliesTo(c, "phoenix", refs).filter(Boolean).map((m) => m.payload.status);
    assert.deepEqual(statuses, ["ok", "ok", "ok", "ok", "ok", "error", "error", "error"]);
  });

  test("a client that waits after a refusal is served again, and is not closed", async (t) => {
    const srv = await server(t, ["--msg-rate", "20", "--msg-burst", "5"]);
    const [c, other] = await joinedClients(t, srv, 2);
    const send = () => c.push(TOPIC, "talk", {}, c.joinRef);
    for (let i = 0; i < 5; i++) assert.equal((await send()).reply.payload.status, "ok");
    assert.deepEqual((await send()).reply.payload.response, { reason: "rate_limited" });
    await sleep(250); // one refusal owed and one token: 2 / 20 s, with room to spare
    assert.equal((await send()).reply.payload.status, "ok");
    assert.ok(c.isOpen);
    await assertTopicWorks([c, other]);
  });

  test("messages without a ref are refused without a reply", async (t) => {
    const srv = await server(t, ["--msg-rate", "1", "--msg-burst", "2", "--rate-strikes", "5"]);
    const [c] = await joinedClients(t, srv, 1);
    for (let i = 0; i < 4; i++) c.send(c.joinRef, null, TOPIC, "quiet", { i });
    await c.heartbeat().then(
      (r) => assert.deepEqual(r.payload.response, { reason: "rate_limited" }),
    );
    const nullRefErrors = c.received((m) => m.event === "phx_reply" && m.ref === null && m.payload.status === "error");
    assert.equal(nullRefErrors.length, 0);
    assert.equal(c.received((m) => m.event === "quiet").length, 2, "the two within the burst were broadcast");
    assert.equal((await srv.metrics()).get(errKey("rate_limited")), 3);
  });
});

describe("join rate", () => {
  test("join spam gets rate_limited on the join, then close 4004; the topic's members are unaffected", async (t) => {
    const srv = await server(t, ["--join-burst", "10", "--join-rate", "1"]);
    const [a, b] = await joinedClients(t, srv, 2);
    const spammer = await connectRaw(srv, "v2");
    t.after(() => spammer.terminate());
    const refs = [];
    for (let i = 0; i < 100; i++) {
      const ref = `j${i}`;
      refs.push(ref);
      spammer.send(ref, ref, TOPIC, "phx_join", { user: "spammer" });
    }
    assert.deepEqual(await spammer.closed(), { code: 4004, reason: "rate limit exceeded" });
    const replies = repliesTo(spammer, TOPIC, refs).filter(Boolean);
    assert.equal(replies.length, 21, "10 joins, 10 tolerated refusals and the one that closes");
    assert.ok(replies.slice(0, 10).every((m) => m.payload.status === "ok"));
    for (const m of replies.slice(10)) {
      assert.deepEqual(m.payload, { status: "error", response: { reason: "rate_limited" } });
      assert.equal(m.join_ref, m.ref, "the refusal answers that join");
    }
    await assertTopicWorks([a, b]);
    const m = await srv.metrics();
    assert.equal(m.get(errKey("join_rate_limited")), 11);
    assert.equal(m.get(errKey("rate_limited")), 0, "joins do not take from the message bucket");
    assert.equal(m.get("parley_rate_limit_disconnects_total"), 1);
    await waitFor(async () => (await srv.metrics()).get("parley_channels") === 2, 5000, "the spammer's channel is gone");
  });
});

/** A phoenix.js-style presence view from a raw client's presence_state and
 * presence_diff messages on topic: {key: Set of phx_ref}. */
function presenceView(c, topic) {
  const view = {};
  for (const m of c.received((x) => x.topic === topic && (x.event === "presence_state" || x.event === "presence_diff"))) {
    const joins = m.event === "presence_state" ? m.payload : m.payload.joins;
    for (const [k, { metas }] of Object.entries(joins)) for (const meta of metas) (view[k] ??= new Set()).add(meta.phx_ref);
    if (m.event === "presence_diff")
      for (const [k, { metas }] of Object.entries(m.payload.leaves)) for (const meta of metas) view[k]?.delete(meta.phx_ref);
  }
  for (const k of Object.keys(view)) if (!view[k].size) delete view[k];
  return view;
}

const metaCount = (maps) => maps.reduce((n, map) => n + Object.values(map).reduce((k, v) => k + v.metas.length, 0), 0);

describe("presence under join spam", () => {
  test("joins and leaves nobody saw cancel out: the members get one small diff, not one growing with every join", async (t) => {
    const srv = await server(t, ["--presence-batch-ms", "1000"]);
    const [w] = await joinedClients(t, srv, 1);
    const spammer = await connectRaw(srv, "v2");
    t.after(() => spammer.terminate());
    for (let i = 0; i < 30; i++) spammer.send(`s${i}`, `s${i}`, TOPIC, "phx_join", { user: "spammer" });
    await spammer.reply(TOPIC, "s29");
    const diff = await w.next((m) => m.event === "presence_diff", 5000, "the batch's diff");
    assert.equal(metaCount([diff.payload.joins, diff.payload.leaves]), 1, JSON.stringify(diff.payload));
    assert.deepEqual(Object.keys(presenceView(w, TOPIC)), ["spammer"]);
    await spammer.next((m) => m.event === "presence_diff", 5000, "the spammer's diff");
    assert.deepEqual(presenceView(w, TOPIC), presenceView(spammer, TOPIC), "the member and the spammer agree");
  });

  test("a join a presence_state has shown is never cancelled: its leave goes out", async (t) => {
    const srv = await server(t, ["--presence-batch-ms", "500"]);
    const [w] = await joinedClients(t, srv, 1); // builds the JSON state before u joins
    const u = await connectRaw(srv, "v2");
    t.after(() => u.terminate());
    const uj = await u.join(TOPIC, { user: "u" });
    // A MessagePack joiner gets a state built now: it shows u.
    const y = await connectRaw(srv, "msgpack");
    t.after(() => y.terminate());
    await y.join(TOPIC);
    const state = await y.next((m) => m.event === "presence_state");
    assert.deepEqual(Object.keys(state.payload), ["u"]);
    await u.push(TOPIC, "phx_leave", {}, uj.joinRef);
    await waitFor(() => y.received((m) => m.event === "presence_diff").length > 0, 5000, "the diff");
    await sleep(100);
    assert.deepEqual(presenceView(y, TOPIC), {}, "u left the view that showed it");
    assert.deepEqual(presenceView(w, TOPIC), {}, "and never stayed in the other");
  });
});

describe("payload size", () => {
  test("a chat payload over --max-payload gets payload_too_large and reaches nobody; one at the limit passes", async (t) => {
    const srv = await server(t, ["--max-payload", "1000"]);
    const [sender, other] = await joinedClients(t, srv, 2);
    const body = (n) => ({ b: "x".repeat(n - 8) }); // {"b":"..."} is n bytes of JSON
    assert.equal(JSON.stringify(body(1000)).length, 1000);
    const big = await sender.push(TOPIC, "big", body(1001), sender.joinRef);
    assert.deepEqual(big.reply.payload, { status: "error", response: { reason: "payload_too_large" } });
    assert.equal(big.reply.join_ref, sender.joinRef);
    const fits = await sender.push(TOPIC, "fits", body(1000), sender.joinRef);
    assert.equal(fits.reply.payload.status, "ok");
    await other.broadcast(TOPIC, "fits");
    await sender.broadcast(TOPIC, "fits");
    assert.equal(other.received((m) => m.event === "big").length, 0, "the large one was not broadcast");
    assert.equal(sender.received((m) => m.event === "big").length, 0);
    assert.ok(sender.isOpen, "the socket stays open");
    // Measured as compact JSON, whatever the serializer: the same over MessagePack.
    const mp = await connectRaw(srv, "msgpack");
    t.after(() => mp.terminate());
    const { joinRef } = await mp.join(TOPIC);
    const mpBig = await mp.push(TOPIC, "big", body(1001), joinRef);
    assert.deepEqual(mpBig.reply.payload, { status: "error", response: { reason: "payload_too_large" } });
    assert.equal((await srv.metrics()).get(errKey("payload_too_large")), 2);
    await assertTopicWorks([sender, other]);
  });

  test("the default is 8192 bytes", async (t) => {
    const srv = await server(t);
    const [c] = await joinedClients(t, srv, 1);
    const r = await c.push(TOPIC, "big", { b: "x".repeat(8200) }, c.joinRef);
    assert.deepEqual(r.reply.payload.response, { reason: "payload_too_large" });
    assert.equal((await c.push(TOPIC, "ok", { b: "x".repeat(8000) }, c.joinRef)).reply.payload.status, "ok");
  });
});

describe("settings", () => {
  test("flags and environment variables set the limits; 0 lifts a rate limit", async (t) => {
    // PARLEY_MSG_BURST=3 from the environment, --rate-strikes 1 from a flag.
    const srv = await server(t, ["--rate-strikes", "1", "--msg-rate", "1"], { env: { PARLEY_MSG_BURST: "3" } });
    const [c] = await joinedClients(t, srv, 1);
    for (let i = 0; i < 10; i++) c.send(c.joinRef, `m${i}`, TOPIC, "m", {});
    assert.equal((await c.closed()).code, 4004);
    const statuses = repliesTo(c, TOPIC, ["m0", "m1", "m2", "m3", "m4"]).map((m) => m?.payload.status);
    assert.deepEqual(statuses, ["ok", "ok", "ok", "error", "error"]);

    const free = await server(t, ["--msg-rate", "0", "--join-rate", "0"]);
    const [f] = await joinedClients(t, free, 1);
    for (let i = 0; i < 200; i++) f.send(f.joinRef, `m${i}`, TOPIC, "m", {});
    for (let i = 0; i < 150; i++) f.send(`j${i}`, `j${i}`, "room:other", "phx_join", {});
    await f.heartbeat(10000);
    assert.equal(f.received((m) => m.payload?.status === "error").length, 0);
    const m = await free.metrics();
    for (const k of RATE_KEYS) assert.equal(m.get(k), 0, k);
  });

  test("out-of-range settings are refused at startup", async () => {
    for (const args of [["--msg-rate", "9000"], ["--msg-burst", "0"], ["--rate-strikes", "-1"], ["--max-payload", "1"]]) {
      await assert.rejects(startServer(args), /exited before listening/, args.join(" "));
    }
  });
});

describe("request head (slowloris)", () => {
  const SLOW = SANITIZED ? 4 : 1;
  /** A TCP connection to srv that sends `bytes` (if any) and then nothing;
   * resolves {closedAfterMs} when the server closes it. */
  function lingering(srv, bytes) {
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      const sock = net.connect(srv.port, "127.0.0.1", () => bytes && sock.write(bytes));
      let got = "";
      sock.on("data", (d) => (got += d));
      sock.on("error", reject);
      sock.on("close", () => resolve({ closedAfterMs: Date.now() - t0, got }));
    });
  }

  test("a connection that never finishes its request head is closed after --handshake-timeout, logged and counted; others are not", async (t) => {
    const srv = await server(t, ["--handshake-timeout", "1"]);
    const [member] = await joinedClients(t, srv, 1);
    const silent = lingering(srv, null);
    const partial = lingering(srv, "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n");
    const [a, b] = await withTimeout(Promise.all([silent, partial]), 10000 * SLOW, "the server to close them");
    for (const r of [a, b]) {
      assert.ok(r.closedAfterMs >= 900 && r.closedAfterMs < 4000 * SLOW, `closed after ${r.closedAfterMs} ms`);
      assert.equal(r.got, "", "no HTTP answer: the head never came");
    }
    const m = await srv.metrics();
    assert.equal(m.get("parley_handshake_timeouts_total"), 2);
    const lines = srv.stderr().split("\n").filter((l) => l.includes("event=handshake_timeout "));
    assert.equal(lines.length, 2);
    for (const l of lines) assert.match(l, /peer=127\.0\.0\.1 waited_ms=\d+/);
    // the member joined before them is still served, past the timeout
    await assertTopicWorks([member]);
    assert.equal(m.get("parley_connections"), 1);
  });

  test("a connection that sends its head in time is not cut off later; one that leaves at once is not counted", async (t) => {
    const srv = await server(t, ["--handshake-timeout", "1"]);
    const gone = net.connect(srv.port, "127.0.0.1");
    await new Promise((resolve) => gone.on("connect", resolve));
    gone.destroy();
    const [c] = await joinedClients(t, srv, 1);
    const res = await fetch(`http://127.0.0.1:${srv.port}/healthz`);
    assert.equal(res.status, 200);
    await sleep(2500);
    await assertTopicWorks([c]);
    assert.equal((await srv.metrics()).get("parley_handshake_timeouts_total"), 0);
  });

  test("the default is 5 s; more than 8 is refused (lws closes such connections itself from 10 s)", async (t) => {
    const srv = await server(t);
    const r = await withTimeout(lingering(srv, null), 20000 * SLOW, "the server to close it");
    assert.ok(r.closedAfterMs >= 4900 && r.closedAfterMs < 7000 * SLOW, `closed after ${r.closedAfterMs} ms`);
    assert.equal((await srv.metrics()).get("parley_handshake_timeouts_total"), 1);
    for (const v of ["9", "0"]) {
      await assert.rejects(startServer(["--handshake-timeout", v]), /exited before listening/, `--handshake-timeout ${v}`);
    }
  });
});

describe("request head size", () => {
  /** Sends a WebSocket upgrade whose head carries a cookie of `n` bytes;
   * resolves with what the server answered before it closed. */
  const upgradeWithCookie = (srv, n) =>
    new Promise((resolve, reject) => {
      const head =
        "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
        `Cookie: session=${"c".repeat(n)}\r\n\r\n`;
      const sock = net.connect(srv.port, "127.0.0.1", () => sock.write(head));
      let got = "";
      sock.on("data", (d) => {
        got += d;
        if (got.includes("\r\n\r\n")) sock.destroy();
      });
      sock.on("close", () => resolve(got));
      sock.on("error", reject);
    });

  test("heads up to 8 KiB are read (a 6 KB cookie upgrades); a longer one is closed unanswered, logged and counted", async (t) => {
    const srv = await server(t);
    const [member] = await joinedClients(t, srv, 1);
    assert.match(await upgradeWithCookie(srv, 6000), /^HTTP\/1\.1 101 /, "a 6 KB cookie is no obstacle");
    assert.equal(await upgradeWithCookie(srv, 9000), "", "no answer to a 9 KB head");
    assert.equal((await srv.metrics()).get('parley_upgrades_rejected_total{reason="head_too_large"}'), 1);
    assert.match(srv.stderr(), /event=head_too_large max_bytes=8192/);
    await assertTopicWorks([member]);
  });
});

describe("logs", () => {
  test("a flood of refusals writes at most 10 lines a second per kind, and counts the rest", async (t) => {
    const srv = await server(t, ["--msg-burst", "1", "--rate-strikes", "200"]);
    const [c] = await joinedClients(t, srv, 1);
    for (let i = 0; i < 150; i++) c.send(c.joinRef, `m${i}`, TOPIC, "m", {});
    await waitFor(() => c.received((m) => m.payload?.response?.reason === "rate_limited").length === 149, 5000, "149 refusals");
    const lines = srv.stderr().split("\n").filter((l) => l.includes("event=rate_limited "));
    assert.ok(lines.length >= 1 && lines.length <= 20, `${lines.length} lines`); // at most two seconds' worth
    const m = await srv.metrics();
    assert.equal(m.get(errKey("rate_limited")), 149, "every refusal is counted");
    assert.equal(m.get("parley_log_suppressed_total"), 149 - lines.length);
    // The next second's first line says how many were left out.
    await sleep(1100);
    c.send(c.joinRef, "late", TOPIC, "m", {});
    await c.reply(TOPIC, "late");
    assert.match(srv.stderr(), /event=rate_limited conn=\d+ kind=rate_limited topic="room:limits" dropped=\d+/);
  });
});

describe("a well-behaved phoenix client under the default settings", () => {
  test("joins 100 topics at once, chats, heartbeats, updates presence and reconnects without meeting a limit", async (t) => {
    const srv = await server(t);
    const watcher = (await joinedClients(t, srv, 1, "room:0"))[0];
    // Heartbeats 30 times as often as phoenix.js' default, to count many.
    const socket = await phoenixSocket(t, srv, { heartbeatIntervalMs: 1000, params: { user: "ada" } });
    const outcome = (push) =>
      new Promise((resolve) =>
        push.receive("ok", () => resolve("ok")).receive("error", (r) => resolve(r)).receive("timeout", () => resolve("timeout")),
      );
    // The most topics one socket may join (--max-channels 100), all at once,
    // as phoenix.js does when it rejoins after a reconnect.
    const channels = [];
    for (let i = 0; i < 100; i++) channels.push(socket.channel(`room:${i}`, { user: "ada", status: "online" }));
    const presence = new Presence(channels[0]);
    assert.deepEqual(await Promise.all(channels.map((ch) => outcome(ch.join()))), channels.map(() => "ok"));
    // A person chatting: a message, a "typing" notice every 2 s (as the chat
    // page sends it), a status change, for 4 s at a person's fastest.
    const results = [];
    for (let i = 0; i < 16; i++) {
      results.push(await outcome(channels[0].push("new_msg", { body: `hello ${i}` })));
      if (i % 8 === 0) results.push(await outcome(channels[0].push("typing", {})));
      if (i === 5) results.push(await outcome(channels[0].push("presence_update", { status: "away" })));
      await sleep(250);
    }
    assert.ok(results.every((r) => r === "ok"), JSON.stringify(results));
    await waitFor(() => watcher.received((m) => m.event === "new_msg").length === 16, 5000, "the watcher sees every message");
    await waitFor(() => presence.list().length === 1, 5000, "presence synced");
    // A reconnect: every channel rejoins at once, and pushes made while
    // offline are sent right after.
    socket.disconnect();
    const pending = [];
    for (let i = 0; i < 5; i++) pending.push(outcome(channels[1].push("new_msg", { body: `queued ${i}` })));
    await withTimeout(new Promise((resolve) => (socket.onOpen(resolve), socket.connect())), 5000, "reconnect");
    assert.deepEqual(await Promise.all(pending), ["ok", "ok", "ok", "ok", "ok"]);
    await waitFor(() => channels.every((ch) => ch.state === "joined"), 5000, "every channel rejoined");
    const m = await srv.metrics();
    for (const k of RATE_KEYS) assert.equal(m.get(k), 0, k);
    assert.ok(socket.seen.filter((msg) => msg.topic === "phoenix").length >= 4, "heartbeats were answered");
    assert.equal(socket.seen.filter((msg) => msg.payload?.status === "error").length, 0, "no error reply at all");
  });
});
