// Bounded output: a subscriber that stops reading is disconnected as a slow
// consumer once its outbound queue passes --out-queue-msgs or
// --out-queue-bytes, while the other subscribers keep receiving every
// broadcast in order and the server's memory stays bounded.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { assertOutcome, floodScenario, range, TOPIC } from "./lib/flood.mjs";
import { connectRaw, NO_RATE_LIMITS, startServer, stopAllServers, waitFor } from "./lib/server.mjs";

after(stopAllServers);

describe("slow consumer", () => {
  test("--out-queue-msgs 50 --out-queue-bytes 65536: the paused subscriber is cut, others get everything", async (t) => {
    const s = await floodScenario(t, ["--out-queue-msgs", "50", "--out-queue-bytes", "65536"]);
    await assertOutcome(s);
  });

  test("the byte limit alone triggers (--out-queue-bytes 65536)", async (t) => {
    const s = await floodScenario(t, ["--out-queue-msgs", "1000000", "--out-queue-bytes", "65536"], { extra: 100 });
    await assertOutcome(s);
    // 64 KiB of ~2 KB frames is ~31 frames: the byte limit was hit first.
    const line = /event=slow_consumer conn=\d+ queued_msgs=(\d+) queued_bytes=(\d+)/.exec(s.server.stderr());
    assert.ok(Number(line[1]) < 40 && Number(line[2]) <= 65536, line[0]);
  });

  test("the message limit alone triggers (--out-queue-msgs 50)", async (t) => {
    const s = await floodScenario(t, ["--out-queue-msgs", "50", "--out-queue-bytes", "1073741824"], { extra: 100 });
    await assertOutcome(s);
    const line = /event=slow_consumer conn=\d+ queued_msgs=(\d+) queued_bytes=(\d+)/.exec(s.server.stderr());
    assert.equal(Number(line[1]), 50, line[0]);
  });

  test("a slow consumer that never reads again is released by the server", async (t) => {
    const s = await floodScenario(t, ["--out-queue-msgs", "50", "--out-queue-bytes", "65536"], { extra: 50 });
    // Still paused: the server must not keep the dead connection (it waits
    // at most a few seconds for the close frame to go out).
    let m;
    await waitFor(
      async () => (m = await s.server.metrics()).get("parley_connections") === 3,
      10000,
      "the server to drop the paused slow consumer",
      100,
    ).catch((e) => {
      // Which connection is missing or lingering, and what the server said.
      const counts = ["parley_connections", "parley_slow_consumer_disconnects_total", "parley_channels"].map((k) => `${k} ${m?.get(k)}`);
      throw new Error(`${e.message} (${counts.join(", ")})\n${s.server.stderr().slice(-3000)}`);
    });
    assert.equal((await s.server.metrics()).get("parley_channels"), 3);
    // And the others are unaffected: one more broadcast reaches them.
    const { reply } = await s.flooder.push(TOPIC, "blob", { seq: s.sent, pad: "" }, s.joinRef);
    assert.equal(reply.payload.status, "ok");
    assert.equal((await s.fast.broadcast(TOPIC, "blob", (p) => p.seq === s.sent)).payload.seq, s.sent);
    s.slow.ws._socket.resume();
    await s.slow.closed(10000);
  });

  test("a reading subscriber gets interleaved large and small frames intact and in order", async (t) => {
    // Big and small frames mixed exercise the writer's gathering of frames
    // into one write and its handling of frames that span writes.
    const server = await startServer([...NO_RATE_LIMITS, "--max-payload", "300000", "--max-frame", "300000", "--out-queue-msgs", "100000", "--out-queue-bytes", "67108864"]);
    t.after(() => server.end());
    const readers = [await connectRaw(server, "v2"), await connectRaw(server, "msgpack"), await connectRaw(server, "v1")];
    const sender = await connectRaw(server, "v2");
    t.after(() => [...readers, sender].forEach((c) => c.terminate()));
    for (const r of readers) await r.join(TOPIC);
    const { joinRef } = await sender.join(TOPIC);
    const sizes = [];
    for (let i = 0; i < 600; i++) sizes.push(i % 50 === 7 ? 200000 : i % 7 === 3 ? 70000 : (i * 7919) % 3000);
    // No waiting between pushes: the queues fill up and writes get gathered.
    sizes.forEach((n, seq) => sender.send(joinRef, `s${seq}`, TOPIC, "mix", { seq, body: "x".repeat(n) }));
    await sender.reply(TOPIC, `s${sizes.length - 1}`, 20000);
    for (const r of readers) {
      await r.broadcast(TOPIC, "mix", (p) => p.seq === sizes.length - 1, 20000);
      const got = r.received((m) => m.event === "mix");
      assert.deepEqual(got.map((m) => m.payload.seq), range(sizes.length), `${r.format}: all, in order`);
      got.forEach((m, seq) => assert.equal(m.payload.body.length, sizes[seq], `${r.format} #${seq} intact`));
      assert.equal(r.received((m) => m.undecodable).length, 0);
    }
    assert.equal((await server.metrics()).get("parley_slow_consumer_disconnects_total"), 0);
  });
});
