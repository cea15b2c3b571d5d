// Cluster mode as users see it: several real parley nodes joined through
// real redis-server processes (started here on ephemeral loopback ports).
// Chat across nodes (order, no loss, no duplicates, no traffic where nobody
// listens), presence convergence with the official phoenix.js Presence
// helper, a node killed (SIGKILL: leaves after --down-period) or stopped
// (SIGTERM: close 1001, leaves at once), Redis killed and restarted under
// traffic, topics sharded over two Redis instances, and --reuseport.
//
// Every test starts its own Redis and nodes (nodes on one Redis would see
// each other). Every wait has a finite timeout; every parley is ended
// (server.end()) and every redis-server killed by PID in after() hooks.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { encode as mpEncode } from "@msgpack/msgpack";
import { Presence, Socket } from "phoenix";

import {
  connectRaw,
  httpGet,
  sleep,
  NO_RATE_LIMITS,
  startServer,
  stopAllServers,
  waitFor,
  WebSocket,
  withTimeout,
} from "./lib/server.mjs";
import { phoenixSocket } from "./lib/phoenix.mjs";
import { freePort, startRedis, stopAllRedis } from "./lib/redis.mjs";

after(stopAllServers);
after(stopAllRedis);

const WAIT = 5000; // upper bound of an ordinary wait

// ---- helpers ------------------------------------------------------------------

const chan = (topic) => `parley:t:${topic}`;

/** Starts one parley node on the given Redis instances (each as its own
 * --redis flag, or comma-separated with {comma: true}); node.id is the node
 * id from its listening line. Ended (server.end()) when the test ends. */
async function startNode(t, redises, extra = [], { comma = false } = {}) {
  const flags = comma
    ? ["--redis", redises.map((r) => r.addr).join(",")]
    : redises.flatMap((r) => ["--redis", r.addr]);
  const node = await startServer([...NO_RATE_LIMITS, ...flags, ...extra]); // pushes at machine speed
  t.after(() => node.end());
  const m = /event=listening\b.*?\bnode=(\S+)/.exec(node.stderr());
  assert.ok(m, `listening line names the node: ${node.stderr()}`);
  node.id = m[1];
  return node;
}

/** Waits until every node's /healthz says cluster ok and counts all the
 * others as peers. */
async function formed(nodes, what = "cluster formed") {
  let last = [];
  await waitFor(
    async () => {
      last = await Promise.all(nodes.map((n) => n.healthz()));
      return last.every((h, i) => h.node === nodes[i].id && h.cluster === "ok" && h.peers === nodes.length - 1);
    },
    WAIT,
    what,
  ).catch((e) => {
    throw new Error(`${e.message}; /healthz: ${JSON.stringify(last)}`);
  });
}

/** Starts n nodes on redises and waits until they see each other. */
async function startCluster(t, n, redises, extra = []) {
  const nodes = await Promise.all(Array.from({ length: n }, () => startNode(t, redises, extra)));
  assert.equal(new Set(nodes.map((x) => x.id)).size, n, "every node has its own id");
  await formed(nodes);
  return nodes;
}

/** A Redis started for this test, killed when it ends. */
async function redisFor(t, opts) {
  const r = await startRedis(opts);
  t.after(() => r.kill());
  return r;
}

async function numsub(redis, channel) {
  const [, n] = await redis.command("PUBSUB", "NUMSUB", channel);
  return n;
}

/** Waits until `count` nodes are subscribed to topic's channel on redis. */
async function subscribed(redis, topic, count) {
  let n;
  await waitFor(
    async () => (n = await numsub(redis, chan(topic))) === count,
    WAIT,
    `${count} subscribers of ${chan(topic)}`,
  ).catch((e) => {
    throw new Error(`${e.message} (have ${n})`);
  });
}

async function metric(node, name) {
  const v = (await node.metrics()).get(name);
  assert.equal(typeof v, "number", `metric ${name} exists`);
  return v;
}

/** A raw V2 client on node, torn down when the test ends. */
async function rawClient(t, node) {
  const c = await connectRaw(node);
  t.after(() => c.terminate());
  return c;
}

/** Joins topic and checks the reply; returns the join_ref. */
async function joinOk(c, topic, payload = {}) {
  const { joinRef, reply } = await c.join(topic, payload);
  assert.equal(reply.payload.status, "ok", `join ${topic}: ${JSON.stringify(reply.payload)}`);
  return joinRef;
}

/** Payloads of the `event` broadcasts c received on topic so far. */
const got = (c, topic, event) =>
  c.received((m) => m.topic === topic && m.event === event && m.ref === null).map((m) => m.payload);

/** The seq numbers c received on topic/event from publisher `from`. */
const seqsFrom = (c, topic, event, from) => got(c, topic, event).filter((p) => p.from === from).map((p) => p.seq);

const range = (n, start = 0) => Array.from({ length: n }, (_, i) => start + i);

// phoenix.js


/** A phoenix socket on node as `user`, joined to topic with a Presence.
 * Returns {socket, channel, presence}. */
async function presenceClient(t, node, user, topic, meta = {}) {
  const socket = await phoenixSocket(t, node, { params: { user } });
  const channel = socket.channel(topic, meta);
  const presence = new Presence(channel);
  const res = await withTimeout(
    new Promise((resolve) => {
      channel
        .join()
        .receive("ok", (response) => resolve({ status: "ok", response }))
        .receive("error", (response) => resolve({ status: "error", response }))
        .receive("timeout", () => resolve({ status: "timeout" }));
    }),
    WAIT * 2,
    `join ${topic} as ${user}`,
  );
  assert.deepEqual(res, { status: "ok", response: {} }, `join ${topic} as ${user}`);
  return { socket, channel, presence, user };
}

const clone = (v) => JSON.parse(JSON.stringify(v));
const byRef = (a, b) => (a.phx_ref < b.phx_ref ? -1 : a.phx_ref > b.phx_ref ? 1 : 0);

/** What a Presence's list() shows: {key: metas sorted by phx_ref}, keys sorted. */
function view(presence) {
  const entries = presence.list((key, pres) => [key, clone(pres.metas).sort(byRef)]);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(entries);
}

/** {key: number of metas} of what a Presence lists, as sorted JSON. */
function counts(presence) {
  const out = {};
  for (const [k, metas] of Object.entries(view(presence))) out[k] = metas.length;
  return JSON.stringify(out);
}
const sortedJson = (o) => JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));

/** Waits until every Presence lists exactly want ({key: number of metas}). */
async function convergeTo(presences, want, what, timeoutMs = WAIT) {
  const w = sortedJson(want);
  await waitFor(() => presences.every((p) => counts(p) === w), timeoutMs, `${what}: every list() shows ${w}`).catch((e) => {
    throw new Error(`${e.message}; got ${presences.map(counts).join(" / ")}`);
  });
}

const lists = (presence, key) => presence.list((k) => k).includes(key);

// ---- 1. chat across nodes --------------------------------------------------------

describe("cluster", () => {
  test("three nodes on one Redis: messages cross nodes, in order, none lost or duplicated, only to subscribed nodes", async (t) => {
    const redis = await redisFor(t);
    const [A, B, C] = await startCluster(t, 3, [redis]);
    const topic = "room:chat";

    const a1 = await rawClient(t, A);
    const a2 = await rawClient(t, A);
    const b1 = await rawClient(t, B);
    const b2 = await rawClient(t, B);
    const c1 = await rawClient(t, C); // on C, only on another topic
    const refs = new Map();
    for (const c of [a1, a2, b1, b2]) refs.set(c, await joinOk(c, topic));
    await joinOk(c1, "room:elsewhere");
    await subscribed(redis, topic, 2); // A and B, not C
    assert.equal(await numsub(redis, chan("room:elsewhere")), 1, "only C subscribes to room:elsewhere");

    // One message each way.
    b1.send(refs.get(b1), b1.makeRef(), topic, "hello", { text: "hi from B" });
    for (const c of [a1, a2, b1, b2]) await c.broadcast(topic, "hello", (p) => p.text === "hi from B", WAIT);
    a1.send(refs.get(a1), a1.makeRef(), topic, "hello", { text: "hi from A" });
    for (const c of [a1, a2, b1, b2]) await c.broadcast(topic, "hello", (p) => p.text === "hi from A", WAIT);

    // Two publishers on two nodes, 200 messages each, interleaved.
    const N = 200;
    const before = await Promise.all([A, B, C].map((n) => metric(n, "parley_redis_received_total")));
    for (let i = 0; i < N; i++) {
      a1.send(refs.get(a1), a1.makeRef(), topic, "seq", { from: "a1", seq: i });
      b1.send(refs.get(b1), b1.makeRef(), topic, "seq", { from: "b1", seq: i });
    }
    const subs = { a1, a2, b1, b2 };
    await waitFor(
      () => Object.values(subs).every((c) => got(c, topic, "seq").length >= 2 * N),
      10000,
      `every subscriber receives ${2 * N} messages`,
    ).catch((e) => {
      throw new Error(`${e.message}; got ${Object.entries(subs).map(([k, c]) => `${k}=${got(c, topic, "seq").length}`).join(" ")}`);
    });
    await sleep(300); // duplicates would arrive now
    for (const [name, c] of Object.entries(subs)) {
      assert.equal(got(c, topic, "seq").length, 2 * N, `${name}: exactly ${2 * N} messages, no duplicates`);
      for (const from of ["a1", "b1"]) {
        assert.deepEqual(seqsFrom(c, topic, "seq", from), range(N), `${name} got ${from}'s messages, all, once, in order`);
      }
    }
    assert.equal(got(c1, topic, "seq").length, 0, "the client on C, not on the topic, got none");
    const afterRecv = await Promise.all([A, B, C].map((n) => metric(n, "parley_redis_received_total")));
    const delta = afterRecv.map((v, i) => v - before[i]);
    t.diagnostic(`parley_redis_received_total deltas A/B/C: ${delta.join("/")}`);
    assert.ok(delta[0] >= N && delta[1] >= N, `A and B received the other's ${N} messages from Redis (${delta})`);
    assert.ok(delta[2] < 40, `C (no subscriber on ${topic}) received only control traffic from Redis, not the chat: +${delta[2]}`);

    // B's last subscribers leave: B unsubscribes, and no longer gets the traffic.
    for (const c of [b1, b2]) {
      const { reply } = await c.push(topic, "phx_leave", {}, refs.get(c));
      assert.equal(reply.payload.status, "ok");
    }
    await subscribed(redis, topic, 1);
    const bBefore = await metric(B, "parley_redis_received_total");
    for (let i = 0; i < N; i++) a2.send(refs.get(a2), a2.makeRef(), topic, "more", { from: "a2", seq: i });
    await waitFor(() => got(a1, topic, "more").length >= N, WAIT, "a1 receives a2's messages");
    await sleep(200);
    const bDelta = (await metric(B, "parley_redis_received_total")) - bBefore;
    assert.ok(bDelta < 40, `B, after its subscribers left, does not receive ${topic}'s traffic: +${bDelta}`);
    assert.equal(got(b1, topic, "more").length + got(b2, topic, "more").length, 0);
  });

  // ---- 2. presence -----------------------------------------------------------------

  test("presence converges on every node (phoenix.js Presence)", async (t) => {
    const redis = await redisFor(t);
    const nodes = await startCluster(t, 3, [redis]);
    const [A, B, C] = nodes;
    const byName = { A, B, C };
    const topic = "room:presence";
    // Users on each node; "max" has one tab on A and one on C.
    const plan = [
      ["ann", "A"],
      ["amy", "A"],
      ["max", "A"],
      ["bea", "B"],
      ["cal", "C"],
      ["cyd", "C"],
      ["max", "C"],
    ];
    const clients = [];
    for (const [user, where] of plan) clients.push(await presenceClient(t, byName[where], user, topic, { where }));
    const all = clients.map((c) => c.presence);
    const want = { ann: 1, amy: 1, max: 2, bea: 1, cal: 1, cyd: 1 };
    await convergeTo(all, want, "everyone joined");

    // Every client lists the same entries, and each meta was made by the
    // node its user is on (phx_ref "<node id>:<clock>").
    const first = view(all[0]);
    for (const [i, p] of all.entries()) assert.deepEqual(view(p), first, `client ${plan[i]} lists what client ${plan[0]} lists`);
    for (const [key, metas] of Object.entries(first)) {
      for (const meta of metas) {
        const id = byName[meta.where].id;
        assert.ok(meta.phx_ref.startsWith(`${id}:`), `${key}'s meta on ${meta.where} has a phx_ref of node ${id}: ${meta.phx_ref}`);
      }
    }
    assert.deepEqual(first.max.map((m) => m.where).sort(), ["A", "C"]);

    // A leave on B and a leave of one of max's tabs on C reach everyone.
    clients[3].socket.disconnect();
    clients[6].socket.disconnect();
    const rest = clients.filter((_, i) => i !== 3 && i !== 6).map((c) => c.presence);
    await convergeTo(rest, { ann: 1, amy: 1, max: 1, cal: 1, cyd: 1 }, "bea and one of max's tabs left");
    for (const p of rest) assert.deepEqual(view(p).max.map((m) => m.where), ["A"]);
  });

  // ---- 3. SIGKILL ------------------------------------------------------------------

  test("a node killed with SIGKILL: its users leave elsewhere after --down-period, not before", async (t) => {
    const redis = await redisFor(t);
    const DOWN = 2;
    const [A, B, C] = await startCluster(t, 3, [redis], ["--down-period", String(DOWN), "--permdown-period", "60"]);
    const topic = "room:crash";
    const obsA = await presenceClient(t, A, "obs-a", topic, { where: "A" });
    const obsB = await presenceClient(t, B, "obs-b", topic, { where: "B" });
    const vic1 = await presenceClient(t, C, "vic1", topic, { where: "C" });
    await presenceClient(t, C, "vic2", topic, { where: "C" });
    await presenceClient(t, C, "multi", topic, { where: "C" });
    await presenceClient(t, A, "multi", topic, { where: "A" });
    const observers = [obsA.presence, obsB.presence];
    await convergeTo([...observers, vic1.presence], { "obs-a": 1, "obs-b": 1, vic1: 1, vic2: 1, multi: 2 }, "everyone joined");

    const t0 = Date.now();
    C.kill();
    await withTimeout(C.exited, WAIT, "C to die");
    // Poll who the observers list until C's users are gone on both.
    const goneAt = [null, null];
    const listedAt800 = [];
    while (goneAt.some((x) => x === null) && Date.now() - t0 < (DOWN + 4) * 1000) {
      const dt = Date.now() - t0;
      observers.forEach((p, i) => {
        const gone = !lists(p, "vic1") && !lists(p, "vic2");
        if (gone && goneAt[i] === null) goneAt[i] = dt;
        if (dt >= 800 && listedAt800[i] === undefined) listedAt800[i] = lists(p, "vic1") && lists(p, "vic2");
      });
      await sleep(20);
    }
    t.diagnostic(`C's users left on A after ${goneAt[0]} ms, on B after ${goneAt[1]} ms (down period ${DOWN} s, heartbeat 1 s)`);
    assert.deepEqual(listedAt800, [true, true], "0.8 s after the kill, C's users are still listed on A and B");
    for (const [i, name] of ["A", "B"].entries()) {
      assert.ok(goneAt[i] !== null, `${name}: C's users left within ${DOWN + 4} s of the kill`);
      // C's last heartbeat came at most 1 s before the kill.
      assert.ok(goneAt[i] >= (DOWN - 1) * 1000 - 100, `${name}: not before about the down period (${goneAt[i]} ms)`);
      assert.ok(goneAt[i] <= (DOWN + 3) * 1000, `${name}: within the down period and a few seconds (${goneAt[i]} ms)`);
    }
    // The rest stays: both observers, and max's tab on A.
    for (const p of observers) {
      assert.deepEqual(JSON.parse(counts(p)), { multi: 1, "obs-a": 1, "obs-b": 1 });
      assert.deepEqual(view(p).multi.map((m) => m.where), ["A"]);
    }
  });

  // ---- 4. SIGTERM ------------------------------------------------------------------

  test("SIGTERM on a node: its clients get 1001 and its users leave everywhere at once", async (t) => {
    const redis = await redisFor(t);
    const [A, B, C] = await startCluster(t, 3, [redis]); // default --down-period 30
    const topic = "room:bye";
    const obsA = await presenceClient(t, A, "obs-a", topic);
    const obsB = await presenceClient(t, B, "obs-b", topic);
    const onC = await presenceClient(t, C, "leaver", topic);
    const rawC = await rawClient(t, C);
    await joinOk(rawC, topic, { user: "raw-leaver" });
    const observers = [obsA.presence, obsB.presence];
    await convergeTo([...observers, onC.presence], { "obs-a": 1, "obs-b": 1, leaver: 1, "raw-leaver": 1 }, "everyone joined");

    const t0 = Date.now();
    const stopped = C.stop("SIGTERM");
    const closeInfo = await rawC.closed(WAIT);
    assert.equal(closeInfo.code, 1001, `C's client closed with 1001 (${JSON.stringify(closeInfo)})`);
    await convergeTo(observers, { "obs-a": 1, "obs-b": 1 }, "C's users left on A and B", Math.max(100, 1500 - (Date.now() - t0)));
    const dt = Date.now() - t0;
    t.diagnostic(`C's users left on A and B ${dt} ms after SIGTERM`);
    assert.ok(dt < 1500, `C's users left within 1.5 s (${dt} ms), not after the 30 s down period`);
    assert.deepEqual(await stopped, { code: 0, signal: null }, "C exits 0");
    // C is gone from its peers' view.
    await waitFor(async () => (await A.healthz()).peers === 1 && (await B.healthz()).peers === 1, WAIT, "A and B count one peer");
  });

  // ---- 5. Redis outage -------------------------------------------------------------

  test("Redis killed and restarted under traffic: local delivery continues, degraded, then cross-node delivery and presence resume", async (t) => {
    const redis = await redisFor(t);
    const [A, B] = await startCluster(t, 2, [redis]);
    const topic = "room:outage";
    const a1 = await rawClient(t, A);
    const a2 = await rawClient(t, A);
    const b1 = await rawClient(t, B);
    const b2 = await rawClient(t, B);
    const refs = new Map();
    for (const c of [a1, a2, b1, b2]) refs.set(c, await joinOk(c, topic));
    const watchA = await presenceClient(t, A, "watch-a", topic);
    const watchB = await presenceClient(t, B, "watch-b", topic);
    const watchers = [watchA.presence, watchB.presence];
    await convergeTo(watchers, { "watch-a": 1, "watch-b": 1 }, "the watchers see each other");
    await subscribed(redis, topic, 2);

    // Send and arrival times of every tick at the two local receivers.
    const arrivals = new Map([
      [a2, []],
      [b2, []],
    ]);
    for (const [c, list] of arrivals)
      c.ws.on("message", (data) => {
        const m = JSON.parse(data);
        if (m[3] === "tick") list.push({ at: m[4].at, got: Date.now() });
      });

    // Traffic: a1 and b1 each publish every 20 ms.
    const seq = { a1: 0, b1: 0 };
    const tick = () => {
      for (const [name, c] of [
        ["a1", a1],
        ["b1", b1],
      ]) {
        if (c.isOpen) c.send(refs.get(c), c.makeRef(), topic, "tick", { from: name, seq: seq[name]++, at: Date.now() });
      }
    };
    const timer = setInterval(tick, 20);
    t.after(() => clearInterval(timer));
    await waitFor(
      () => seqsFrom(b2, topic, "tick", "a1").length >= 5 && seqsFrom(a2, topic, "tick", "b1").length >= 5,
      WAIT,
      "traffic crosses A <-> B before the outage",
    );

    const m0 = await Promise.all(
      [A, B].map(async (n) => ({
        disconnects: await metric(n, "parley_redis_disconnects_total"),
        dropped: await metric(n, "parley_redis_dropped_total"),
      })),
    );

    // Outage.
    const tKill = Date.now();
    await redis.kill();
    const seqAtKill = { ...seq };
    await waitFor(
      async () => {
        const hs = await Promise.all([A.healthz(), B.healthz()]);
        return hs.every((h) => h.cluster === "degraded" && h.redis.length === 1 && h.redis[0].up === false && h.redis[0].addr === redis.addr);
      },
      WAIT,
      "/healthz of A and B shows cluster degraded, the Redis down",
    );
    // A user joins on each node while Redis is away.
    const lateA = await rawClient(t, A);
    await joinOk(lateA, topic, { user: "late-a" });
    const lateB = await rawClient(t, B);
    await joinOk(lateB, topic, { user: "late-b" });
    const aLocal0 = seqsFrom(a2, topic, "tick", "a1").length;
    const bLocal0 = seqsFrom(b2, topic, "tick", "b1").length;
    await sleep(Math.max(600, 2000 - (Date.now() - tKill)));
    // Still degraded, and local delivery went on during the outage.
    for (const n of [A, B]) assert.equal((await n.healthz()).cluster, "degraded");
    assert.ok(seqsFrom(a2, topic, "tick", "a1").length - aLocal0 >= 20, "a2 kept receiving a1's messages on A during the outage");
    assert.ok(seqsFrom(b2, topic, "tick", "b1").length - bLocal0 >= 20, "b2 kept receiving b1's messages on B during the outage");
    // Local presence goes on; nothing crosses.
    await convergeTo([watchA.presence], { "watch-a": 1, "watch-b": 1, "late-a": 1 }, "during the outage, A lists its own late user");
    await convergeTo([watchB.presence], { "watch-a": 1, "watch-b": 1, "late-b": 1 }, "during the outage, B lists its own late user");
    const m1 = await Promise.all(
      [A, B].map(async (n) => ({
        disconnects: await metric(n, "parley_redis_disconnects_total"),
        dropped: await metric(n, "parley_redis_dropped_total"),
      })),
    );

    // Redis comes back on the same port.
    const tRestart = Date.now();
    const redis2 = await redisFor(t, { port: redis.port });
    await waitFor(
      async () => {
        const hs = await Promise.all([A.healthz(), B.healthz()]);
        return hs.every((h) => h.cluster === "ok" && h.redis[0].up === true);
      },
      10000,
      "/healthz of A and B back to ok after Redis restarted",
    );
    const tOk = Date.now();
    await subscribed(redis2, topic, 2); // both nodes subscribed again
    const seqAfter = { ...seq };
    await waitFor(
      () =>
        seqsFrom(b2, topic, "tick", "a1").some((s) => s >= seqAfter.a1) &&
        seqsFrom(a2, topic, "tick", "b1").some((s) => s >= seqAfter.b1),
      WAIT,
      "messages published after reconnection cross A <-> B",
    );
    await convergeTo(
      watchers,
      { "watch-a": 1, "watch-b": 1, "late-a": 1, "late-b": 1 },
      "after reconnection, the users who joined during the outage appear on the other node",
    );
    t.diagnostic(`Redis down ${tRestart - tKill} ms; nodes back to ok ${tOk - tRestart} ms after the restart`);

    // Stop the traffic and let the last messages arrive.
    clearInterval(timer);
    const total = { ...seq };
    await waitFor(
      () =>
        seqsFrom(a2, topic, "tick", "a1").length >= total.a1 && seqsFrom(b2, topic, "tick", "b1").length >= total.b1,
      WAIT,
      "the local receivers get every local message",
    );
    await sleep(200);

    // Local delivery never stopped: every message, once, in order, no stall.
    assert.deepEqual(seqsFrom(a2, topic, "tick", "a1"), range(total.a1), "a2 got every one of a1's messages, in order");
    assert.deepEqual(seqsFrom(b2, topic, "tick", "b1"), range(total.b1), "b2 got every one of b1's messages, in order");
    for (const [name, c] of [
      ["a2", a2],
      ["b2", b2],
    ]) {
      // Latency rather than the gaps between arrivals: a stall of this test
      // process (it sends the ticks too) is not a stall of the node.
      const during = arrivals.get(c).filter((x) => x.at >= tKill && x.at <= tOk);
      const worst = Math.max(...during.map((x) => x.got - x.at));
      let gap = 0;
      for (let i = 1; i < during.length; i++) gap = Math.max(gap, during[i].got - during[i - 1].got);
      assert.ok(
        during.length > 50 && worst < 500,
        `${name}: frames kept arriving during the outage (${during.length} frames, slowest ${worst} ms, longest gap ${gap} ms)`,
      );
    }
    // Across nodes: in order, no duplicates; some lost in the outage only.
    for (const [name, c, from] of [
      ["b2", b2, "a1"],
      ["a2", a2, "b1"],
    ]) {
      const s = seqsFrom(c, topic, "tick", from);
      for (let i = 1; i < s.length; i++) assert.ok(s[i] > s[i - 1], `${name}: ${from}'s messages in order, no duplicates (${s[i - 1]} then ${s[i]})`);
      assert.ok(s.some((x) => x < seqAtKill[from]) && s.some((x) => x >= seqAfter[from]));
      const missing = range(total[from]).filter((x) => !s.includes(x));
      assert.ok(missing.every((x) => x >= seqAtKill[from] - 5 && x < seqAfter[from]), `${name}: ${from}'s messages lost only around the outage`);
    }

    // Metrics: the disconnect is counted, and broadcasts during the outage
    // were dropped (not buffered).
    for (const [i, name] of ["A", "B"].entries()) {
      assert.ok(m1[i].disconnects > m0[i].disconnects, `${name}: parley_redis_disconnects_total increased`);
      assert.ok(m1[i].dropped > m0[i].dropped, `${name}: parley_redis_dropped_total increased during the outage`);
    }
  });

  // ---- 6. two Redis shards ---------------------------------------------------------

  test("two Redis shards: topics spread over both, messages cross on every topic", async (t) => {
    const r1 = await redisFor(t);
    const r2 = await redisFor(t);
    // A repeats the flag, B comma-separates: the same list.
    const A = await startNode(t, [r1, r2]);
    const B = await startNode(t, [r1, r2], [], { comma: true });
    await formed([A, B]);
    for (const n of [A, B]) {
      assert.deepEqual((await n.healthz()).redis, [
        { addr: r1.addr, up: true },
        { addr: r2.addr, up: true },
      ]);
    }

    const topics = range(20).map((i) => `room:shard:${i}`);
    const fnv = (s) => {
      let h = 2166136261;
      for (const byte of Buffer.from(s, "utf8")) h = Math.imul(h ^ byte, 16777619) >>> 0;
      return h;
    };
    const shardOf = (topic) => fnv(topic) % 2;
    assert.ok(topics.some((x) => shardOf(x) === 0) && topics.some((x) => shardOf(x) === 1), "the topics hash to both instances");

    const a = await rawClient(t, A);
    const b = await rawClient(t, B);
    const refA = {};
    const refB = {};
    for (const topic of topics) {
      refA[topic] = await joinOk(a, topic);
      refB[topic] = await joinOk(b, topic);
    }
    for (const topic of topics) await subscribed([r1, r2][shardOf(topic)], topic, 2);

    const channels = async (r, pattern) => new Set(await r.command("PUBSUB", "CHANNELS", pattern));
    const s1 = await channels(r1, "parley:t:*");
    const s2 = await channels(r2, "parley:t:*");
    t.diagnostic(`topic channels: ${s1.size} on the first Redis, ${s2.size} on the second`);
    assert.ok(s1.size > 0 && s2.size > 0, "both instances carry topics");
    assert.deepEqual([...s1].filter((x) => s2.has(x)), [], "no topic on both");
    assert.deepEqual([...s1, ...s2].sort(), topics.map(chan).sort(), "together they carry every topic");
    assert.deepEqual([...s1].sort(), topics.filter((x) => shardOf(x) === 0).map(chan).sort(), "topics placed by FNV-1a of the topic");
    // Control channels on the first instance only.
    assert.ok((await channels(r1, "parley:cluster")).size === 1, "parley:cluster on the first instance");
    assert.deepEqual([...(await channels(r2, "parley:*"))].filter((x) => !x.startsWith("parley:t:")), [], "no control channel on the second");

    for (const topic of topics) {
      a.send(refA[topic], a.makeRef(), topic, "msg", { from: "a", topic });
      b.send(refB[topic], b.makeRef(), topic, "msg", { from: "b", topic });
    }
    const crossed = () =>
      topics.every(
        (topic) => got(b, topic, "msg").some((p) => p.from === "a") && got(a, topic, "msg").some((p) => p.from === "b"),
      );
    await waitFor(crossed, WAIT, "every topic's messages cross A <-> B").catch((e) => {
      const missing = topics.filter(
        (topic) => !(got(b, topic, "msg").some((p) => p.from === "a") && got(a, topic, "msg").some((p) => p.from === "b")),
      );
      throw new Error(`${e.message}; not crossed: ${missing.join(", ")}`);
    });
    await sleep(200);
    for (const topic of topics) {
      for (const c of [a, b]) {
        assert.equal(got(c, topic, "msg").length, 2, `${topic}: each client got both messages exactly once`);
      }
    }
  });

  // ---- 7. --reuseport --------------------------------------------------------------

  test("--reuseport 1: two nodes on one port share the connections and the topic", async (t) => {
    const redis = await redisFor(t);
    const port = await freePort();
    const args = ["--listen", `127.0.0.1:${port}`, "--reuseport", "1"];
    const X = await startNode(t, [redis], args);
    const Y = await startNode(t, [redis], args).catch((e) => {
      throw new Error(`a second node with --reuseport 1 on port ${port} (taken by the first) could not listen: ${e.message}`);
    });
    assert.equal(X.port, port);
    assert.equal(Y.port, port);
    assert.ok(X.running() && Y.running(), "both nodes listen on the same port");

    // Every HTTP request on a new connection goes to either node.
    const health = async () => JSON.parse((await httpGet(port, "/healthz")).body);
    /** Polls /healthz until it has a reading from each node satisfying pred. */
    const readEach = async (pred, what) => {
      const seen = new Map();
      await waitFor(
        async () => {
          const h = await health();
          if (pred(h)) seen.set(h.node, h);
          else seen.delete(h.node);
          return seen.has(X.id) && seen.has(Y.id);
        },
        WAIT,
        what,
        5,
      ).catch((e) => {
        throw new Error(`${e.message}; have ${JSON.stringify([...seen.values()])}`);
      });
      return seen;
    };
    await readEach((h) => h.cluster === "ok" && h.peers === 1, "both nodes answer on the port and see each other");

    const topic = "room:shared";
    const clients = [];
    for (let i = 0; i < 20; i++) clients.push(await rawClient(t, X)); // X.url: the shared port
    const refs = [];
    for (const c of clients) refs.push(await joinOk(c, topic));
    let last;
    const seen = await readEach(
      (h) => h.connections >= 1,
      "both nodes have connections",
    ).catch(async (e) => {
      last = await health();
      throw new Error(`${e.message}; e.g. ${JSON.stringify(last)}`);
    });
    const perNode = [X.id, Y.id].map((id) => seen.get(id).connections);
    t.diagnostic(`20 connections: ${perNode.join(" + ")}`);
    assert.equal(perNode[0] + perNode[1], 20, `the 20 connections are on the two nodes (${perNode})`);
    assert.ok(perNode[0] >= 1 && perNode[1] >= 1, `both nodes got connections (${perNode})`);

    await subscribed(redis, topic, 2);
    clients[0].send(refs[0], clients[0].makeRef(), topic, "msg", { from: 0 });
    clients[19].send(refs[19], clients[19].makeRef(), topic, "msg", { from: 19 });
    for (const [i, c] of clients.entries()) {
      for (const from of [0, 19]) await c.broadcast(topic, "msg", (p) => p.from === from, WAIT).catch((e) => {
        throw new Error(`client ${i}: ${e.message} from client ${from}`);
      });
    }
  });

  test("a state request from a node id too long to name a channel: counted and logged, not answered on a cut name; the node keeps serving", async (t) => {
    const redis = await redisFor(t);
    const [A] = await startCluster(t, 1, [redis]);
    const before = await metric(A, "parley_redis_bad_envelopes_total");
    // An envelope as nodes publish them (MessagePack [origin, kind, topic,
    // event, payload]); Parley's own node ids are 15 characters at most.
    const origin = "n" + "x".repeat(300);
    const receivers = await redis.command(
      "PUBLISH",
      "parley:cluster",
      Buffer.from(mpEncode([origin, "r", "x", "state_request", {}])),
    );
    assert.equal(receivers, 1, "the node reads the cluster channel");
    await waitFor(
      async () => (await metric(A, "parley_redis_bad_envelopes_total")) === before + 1,
      WAIT,
      "the request is counted as bad",
    );
    assert.match(A.stderr(), /event=cluster_bad_node_id length=301/);
    const c = await rawClient(t, A);
    await joinOk(c, "room:after");
    assert.equal((await A.healthz()).cluster, "ok");
  });
});
