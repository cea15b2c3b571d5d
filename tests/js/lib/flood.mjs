// The slow-consumer scenario shared by slow_consumer.test.mjs (plaintext) and
// tls.test.mjs (the same over TLS): a subscriber that stops reading is
// disconnected as a slow consumer once its outbound queue passes
// --out-queue-msgs or --out-queue-bytes, while the other subscribers keep
// receiving every broadcast in order and the server's memory stays bounded.

import assert from "node:assert/strict";

import { Socket } from "phoenix";

import { connectRaw, NO_RATE_LIMITS, startServer, trustingWebSocket, waitFor, WebSocket, withTimeout } from "./server.mjs";

export const TOPIC = "room:flood";
const PAD = "p".repeat(2048); // ~2 KB payloads
const WINDOW = 15; // pushes in flight: keeps the healthy sockets far below the limits
const RSS_LIMIT_KB = 64 * 1024;

/**
 * Starts a server with `args` (over TLS with `tls`, a certificate from
 * makeTestCert), joins a slow raw client, a fast raw client, a fast official
 * phoenix client and a flooder to TOPIC, pauses the slow client's socket, and
 * floods 2 KB broadcasts in windows until the server reports a slow-consumer
 * disconnect (then `extra` more). Returns everything the assertions need.
 */
export async function floodScenario(t, args, { extra = 300, maxMessages = 25000, tls = null } = {}) {
  const server = await startServer([...NO_RATE_LIMITS, ...args], { tls }); // floods on purpose
  t.after(() => server.end());

  const slow = await connectRaw(server, "v2");
  const fast = await connectRaw(server, "v2");
  const flooder = await connectRaw(server, "v2");
  t.after(() => [slow, fast, flooder].forEach((c) => c.terminate()));
  for (const c of [slow, fast]) assert.equal((await c.join(TOPIC)).reply.payload.status, "ok");
  const { joinRef } = await flooder.join(TOPIC);

  const phx = new Socket(server.socketBase, {
    transport: server.ca ? trustingWebSocket(server.ca) : WebSocket,
    reconnectAfterMs: () => 60000,
    rejoinAfterMs: () => 60000,
    heartbeatIntervalMs: 30000,
  });
  await withTimeout(new Promise((resolve) => (phx.onOpen(resolve), phx.connect())), 5000, "phoenix open");
  t.after(() => phx.disconnect());
  const phxSeqs = [];
  const pch = phx.channel(TOPIC);
  pch.on("blob", (p) => phxSeqs.push(p.seq));
  await withTimeout(
    new Promise((resolve, reject) => pch.join().receive("ok", resolve).receive("error", reject)),
    5000,
    "phoenix join",
  );

  slow.ws._socket.pause();

  let seq = 0;
  let maxRss = server.rssKb();
  let detectedAt = null;
  const flooderSeqs = [];
  while (seq < maxMessages && (detectedAt === null || seq < detectedAt + extra)) {
    const refs = [];
    for (let i = 0; i < WINDOW; i++) {
      const ref = flooder.makeRef();
      refs.push(ref);
      flooder.send(joinRef, ref, TOPIC, "blob", { seq: seq++, pad: PAD });
    }
    for (const ref of refs) {
      const r = await flooder.reply(TOPIC, ref, 10000);
      assert.deepEqual(r.payload, { status: "ok", response: {} });
    }
    // Keep the test's own memory flat: record the flooder's copies, then drop them.
    for (const m of flooder.messages) if (m.event === "blob") flooderSeqs.push(m.payload.seq);
    flooder.messages.length = 0;
    flooder.consumed.clear();
    maxRss = Math.max(maxRss, server.rssKb());
    if (detectedAt === null && seq % (WINDOW * 10) === 0) {
      const m = await server.metrics();
      if (m.get("parley_slow_consumer_disconnects_total") > 0) detectedAt = seq;
    }
  }
  assert.ok(detectedAt !== null, `no slow-consumer disconnect after ${seq} broadcasts`);

  // Every healthy subscriber has everything once the last broadcast arrived.
  await fast.broadcast(TOPIC, "blob", (p) => p.seq === seq - 1, 10000);
  await waitFor(() => phxSeqs.length === seq, 10000, "phoenix client to receive every broadcast");
  if (flooderSeqs.at(-1) !== seq - 1) await flooder.broadcast(TOPIC, "blob", (p) => p.seq === seq - 1, 10000);
  for (const m of flooder.messages) if (m.event === "blob") flooderSeqs.push(m.payload.seq);
  flooder.messages.length = 0;
  flooder.consumed.clear();
  return { server, slow, fast, flooder, joinRef, flooderSeqs, phxSeqs, sent: seq, detectedAt, maxRss };
}

export const range = (n) => Array.from({ length: n }, (_, i) => i);

/** Checks what floodScenario should end in; returns the slow client's close. */
export async function assertOutcome({ server, slow, fast, flooderSeqs, phxSeqs, sent, maxRss }) {
  const m = await server.metrics();
  assert.equal(m.get("parley_slow_consumer_disconnects_total"), 1, "only the paused client was a slow consumer");

  // The healthy subscribers got every broadcast, in order, exactly once.
  const fastSeqs = fast.received((x) => x.event === "blob").map((x) => x.payload.seq);
  assert.deepEqual(fastSeqs, range(sent), "fast raw subscriber: every broadcast in order");
  assert.deepEqual(phxSeqs, range(sent), "phoenix subscriber: every broadcast in order");
  assert.deepEqual(flooderSeqs, range(sent), "the sender: every own broadcast in order");
  for (const x of fast.received((y) => y.event === "blob")) assert.equal(x.payload.pad, PAD);
  assert.equal(fast.isOpen, true);

  // Memory stayed bounded while the slow socket was backed up. (Under
  // AddressSanitizer freed memory sits in its quarantine, so RSS says
  // nothing there; the plain build checks it.)
  if (!process.env.PARLEY_SANITIZED)
    assert.ok(maxRss < RSS_LIMIT_KB, `server RSS peaked at ${maxRss} kB`);

  // The slow socket ends once it reads again; what it got is an in-order
  // prefix of the broadcasts, and the close frame (if it arrived) says why.
  slow.ws._socket.resume();
  const closed = await slow.closed(10000);
  if (closed.code !== 1006) assert.deepEqual(closed, { code: 4001, reason: "slow consumer" });
  const slowSeqs = slow.received((x) => x.event === "blob").map((x) => x.payload.seq);
  assert.ok(slowSeqs.length < sent, "the slow client missed the tail");
  assert.deepEqual(slowSeqs, range(slowSeqs.length), "the slow client's broadcasts are an in-order prefix");

  const m2 = await waitFor(
    async () => {
      const x = await server.metrics();
      return x.get("parley_connections") === 3 ? x : null;
    },
    5000,
    "the slow connection to be released",
  );
  assert.equal(m2.get("parley_channels"), 3);
  assert.match(server.stderr(), /event=slow_consumer conn=\d+ queued_msgs=\d+ queued_bytes=\d+/);
  return closed;
}
