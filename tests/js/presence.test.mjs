// Presence as a user sees it: the official phoenix.js `Presence` helper and
// raw V2 / V1 / MessagePack clients against the real parley binary.
// presence_state on join, batched presence_diff, presence_update with
// phx_ref_prev, leaves on phx_leave / disconnect / duplicate join, the join
// checks (invalid user, meta too large, not tracked), --presence-topics,
// --presence-batch-ms and the presence metrics.
//
// Every wait has a finite timeout; every server is ended (server.end()) by
// its test or in the after() hook.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Presence, Socket } from "phoenix";

import {
  connectRaw,
  errKey,
  sleep,
  startServer,
  stopAllServers,
  waitFor,
  WebSocket,
  withTimeout,
} from "./lib/server.mjs";
import { phoenixSocket } from "./lib/phoenix.mjs";

after(stopAllServers);

const WAIT = 5000; // upper bound of any single wait
const REF_RE = /^[^:]+:\d+$/; // phx_ref: "<node id>:<clock>"

let server; // default options: presence on every topic, 50 ms batches
before(async () => {
  server = await startServer();
});

// ---- helpers ------------------------------------------------------------------

const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
const byRef = (a, b) => (a.phx_ref < b.phx_ref ? -1 : a.phx_ref > b.phx_ref ? 1 : 0);

/** {key: {metas}} (a presence_state payload or a Presence state) as
 * {key: [metas sorted by phx_ref]}: comparable regardless of order. */
function normalize(state) {
  const out = {};
  for (const key of Object.getOwnPropertyNames(state)) put(out, key, clone(state[key].metas).sort(byRef));
  return out;
}

/** out[key] = value, also for keys such as "__proto__". */
function put(out, key, value) {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

/** What a phoenix Presence's list() shows, normalized. */
function view(presence) {
  const out = {};
  presence.list((key, pres) => put(out, key, clone(pres.metas).sort(byRef)));
  return out;
}

/** {key: number of metas} of a normalized view. */
function counts(v) {
  const out = {};
  for (const [k, metas] of Object.entries(v)) put(out, k, metas.length);
  return out;
}

/** The presence a raw client has seen on topic, folded with phoenix.js' own
 * static syncState / syncDiff, normalized. */
function rawView(client, topic) {
  let state = {};
  for (const m of client.messages) {
    if (m.topic !== topic) continue;
    if (m.event === "presence_state") state = Presence.syncState(state, clone(m.payload));
    else if (m.event === "presence_diff") state = Presence.syncDiff(state, clone(m.payload));
  }
  return normalize(state);
}


/** Resolves {status, response} of a phoenix Push (ok, error or timeout). */
function outcome(push) {
  return withTimeout(
    new Promise((resolve) => {
      push
        .receive("ok", (response) => resolve({ status: "ok", response }))
        .receive("error", (response) => resolve({ status: "error", response }))
        .receive("timeout", () => resolve({ status: "timeout" }));
    }),
    WAIT * 2,
    "push outcome",
  );
}

/** A channel with a Presence whose callbacks are all recorded (arguments
 * deep-copied at call time, since phoenix.js mutates them later). */
function tracked(socket, topic, payload = {}) {
  const channel = socket.channel(topic, payload);
  const presence = new Presence(channel);
  const log = { joins: [], leaves: [], syncs: [] };
  presence.onJoin((key, current, newPres) => log.joins.push({ key, current: clone(current), newPres: clone(newPres) }));
  presence.onLeave((key, current, leftPres) => log.leaves.push({ key, current: clone(current), leftPres: clone(leftPres) }));
  presence.onSync(() => log.syncs.push(view(presence)));
  return { channel, presence, log };
}

async function joinOk(channel) {
  const res = await outcome(channel.join());
  assert.deepEqual(res, { status: "ok", response: {} }, `join ${channel.topic}`);
}

function sortKeys(o) {
  const out = {};
  for (const k of Object.keys(o).sort()) put(out, k, o[k]);
  return out;
}
const countsSorted = (p) => JSON.stringify(sortKeys(counts(view(p))));

/** True if presence lists exactly the normalized view `want`. */
const shows = (presence, want) => JSON.stringify(sortKeys(view(presence))) === JSON.stringify(sortKeys(want));

/** Waits until every presence lists exactly `want` ({key: number of metas}). */
async function convergeTo(presences, want, what) {
  const wantStr = JSON.stringify(sortKeys(want));
  await waitFor(
    () => presences.every((p) => countsSorted(p) === wantStr),
    WAIT,
    `${what}: every Presence.list() shows ${wantStr}`,
  ).catch((e) => {
    throw new Error(`${e.message}; got ${presences.map(countsSorted).join(" / ")}`);
  });
}

/** Joins a raw client and returns {joinRef, reply, state, next}: state is the
 * presence_state that followed the reply, or null if the heartbeat round trip
 * after the reply came first (then none was sent); next is the first message
 * on the topic after the reply. */
async function rawJoin(client, topic, payload = {}) {
  const { joinRef, reply } = await client.join(topic, payload);
  await client.heartbeat();
  const i = client.messages.findIndex((m) => m.event === "phx_reply" && m.topic === topic && m.ref === joinRef);
  const rest = client.messages.slice(i + 1).filter((m) => m.topic === topic);
  return { joinRef, reply, state: rest.find((m) => m.event === "presence_state") ?? null, next: rest[0] };
}

/** The presence_diff broadcasts a raw client received on topic so far. */
/** Waits until a phoenix socket has received (and so its Presence has
 * applied) a presence_diff on topic whose payload satisfies pred. */
function sawDiff(socket, topic, pred) {
  return waitFor(
    () => socket.seen.some((m) => m.topic === topic && m.event === "presence_diff" && pred(m.payload)),
    WAIT,
    `presence_diff on ${topic} at a phoenix socket`,
  );
}

const diffs = (client, topic) => client.received((m) => m.topic === topic && m.event === "presence_diff");

/** Merges presence_diff payloads: {joins: {key: [metas]}, leaves: {...}}. */
function mergeDiffs(list) {
  const out = { joins: {}, leaves: {} };
  for (const m of list) {
    for (const side of ["joins", "leaves"]) {
      for (const [k, p] of Object.entries(m.payload[side])) (out[side][k] ??= []).push(...p.metas);
    }
  }
  return out;
}

const nowS = () => Math.floor(Date.now() / 1000);

function assertOnlineAt(meta, t0) {
  assert.equal(typeof meta.online_at, "number");
  assert.ok(Number.isInteger(meta.online_at), `online_at ${meta.online_at} is an integer`);
  assert.ok(meta.online_at >= t0 - 2 && meta.online_at <= nowS() + 2, `online_at ${meta.online_at} is about now (${nowS()})`);
}

// ---- 1. the phoenix Presence helper end to end ----------------------------------

describe("phoenix.js Presence end to end", () => {
  test("two users on three sockets: join, update, disconnect, leave", async (t) => {
    const topic = "room:e2e";
    const t0 = nowS();
    // An untracked raw observer, to see the diffs exactly as sent.
    const obs = await connectRaw(server);
    t.after(() => obs.close());
    const j = await rawJoin(obs, topic);
    assert.equal(j.reply.payload.status, "ok");
    assert.deepEqual(j.state?.payload, {}, "an empty room's presence_state is {}");

    const sA1 = await phoenixSocket(t, server, { params: { user: "alice" } });
    const sA2 = await phoenixSocket(t, server, { params: { user: "alice" } });
    const sB = await phoenixSocket(t, server); // bob names himself in the join payload
    const a1 = tracked(sA1, topic, { name: "Alice", status: "online" });
    const a2 = tracked(sA2, topic, { name: "Alice", status: "online", device: "phone" });
    const b = tracked(sB, topic, { user: "bob", name: "Bob", status: "online" });

    // alice, first socket.
    await joinOk(a1.channel);
    const d1 = await obs.broadcast(topic, "presence_diff", (p) => p.joins.alice, WAIT);
    assert.deepEqual(d1.payload.leaves, {});
    assert.deepEqual(Object.keys(d1.payload.joins), ["alice"]);
    const [alice1] = d1.payload.joins.alice.metas;
    assert.match(alice1.phx_ref, REF_RE);
    assert.deepEqual({ ...alice1, phx_ref: "-", online_at: 0 }, { name: "Alice", status: "online", phx_ref: "-", online_at: 0 });
    assertOnlineAt(alice1, t0);
    await convergeTo([a1.presence], { alice: 1 }, "alice joined");
    await sawDiff(sA1, topic, (p) => p.joins.alice); // its own join, too
    assert.deepEqual(view(a1.presence), { alice: [alice1] });

    // alice, second socket: the same key, a second meta.
    const a1Joins = a1.log.joins.length;
    await joinOk(a2.channel);
    const d2 = await obs.broadcast(topic, "presence_diff", (p) => p.joins.alice, WAIT);
    assert.deepEqual(d2.payload.leaves, {});
    assert.deepEqual(Object.keys(d2.payload.joins), ["alice"]);
    const [alice2] = d2.payload.joins.alice.metas;
    assert.notEqual(alice2.phx_ref, alice1.phx_ref);
    assert.deepEqual({ ...alice2, phx_ref: "-", online_at: 0 }, { name: "Alice", status: "online", device: "phone", phx_ref: "-", online_at: 0 });
    assertOnlineAt(alice2, t0);
    await convergeTo([a1.presence, a2.presence], { alice: 2 }, "alice's second socket joined");
    // alice's first socket saw a join of the key it already had.
    assert.deepEqual(a1.log.joins.slice(a1Joins), [
      { key: "alice", current: { metas: [alice1] }, newPres: { metas: [alice2] } },
    ]);

    // bob, named in the join payload ("user" is not part of his meta).
    const a1Joins2 = a1.log.joins.length;
    await joinOk(b.channel);
    const d3 = await obs.broadcast(topic, "presence_diff", (p) => p.joins.bob, WAIT);
    assert.deepEqual(d3.payload.leaves, {});
    assert.deepEqual(Object.keys(d3.payload.joins), ["bob"]);
    const [bob1] = d3.payload.joins.bob.metas;
    assert.deepEqual({ ...bob1, phx_ref: "-", online_at: 0 }, { name: "Bob", status: "online", phx_ref: "-", online_at: 0 });
    assertOnlineAt(bob1, t0);

    const all = [a1.presence, a2.presence, b.presence];
    await convergeTo(all, { alice: 2, bob: 1 }, "everyone joined");
    for (const s of [sA1, sA2, sB]) await sawDiff(s, topic, (p) => p.joins.bob);
    const expected = { alice: [alice1, alice2].sort(byRef), bob: [bob1] };
    for (const p of all) assert.deepEqual(view(p), expected);
    assert.deepEqual(rawView(obs, topic), expected, "the raw observer agrees");
    assert.deepEqual(a1.log.joins.slice(a1Joins2), [{ key: "bob", current: undefined, newPres: { metas: [bob1] } }]);

    // onJoin: on every client, each meta it lists arrived through an onJoin
    // with that key, and the first onJoin of a key had no current presence.
    for (const [name, c] of [["alice#1", a1], ["alice#2", a2], ["bob", b]]) {
      for (const [key, metas] of Object.entries(expected)) {
        const calls = c.log.joins.filter((x) => x.key === key);
        assert.ok(calls.length > 0, `${name}: onJoin for ${key}`);
        assert.equal(calls[0].current, undefined, `${name}: first onJoin of ${key} has no current presence`);
        for (const meta of metas) {
          assert.ok(
            calls.some((x) => x.newPres.metas.some((m) => JSON.stringify(m) === JSON.stringify(meta))),
            `${name}: onJoin(${key}) carried meta ${meta.phx_ref}`,
          );
        }
        // current is what the client listed for the key before the call.
        for (const x of calls.slice(1)) assert.ok(x.current && x.current.metas.length > 0);
      }
      assert.deepEqual(c.log.leaves, [], `${name}: no onLeave yet`);
      assert.ok(c.log.syncs.length > 0, `${name}: onSync fired`);
      assert.deepEqual(c.log.syncs.at(-1), expected, `${name}: the last onSync saw the full list`);
    }
    // The late joiner bob got both keys from presence_state, all at once.
    const bobSawAlice = b.log.joins.filter((x) => x.key === "alice")[0];
    assert.deepEqual(
      { ...bobSawAlice, newPres: { metas: bobSawAlice.newPres.metas.sort(byRef) } },
      { key: "alice", current: undefined, newPres: { metas: [alice1, alice2].sort(byRef) } },
      "bob: onJoin(alice) from presence_state carries both metas",
    );

    // bob goes away: presence_update replaces his meta.
    const marks = [a1, a2, b].map((c) => ({ j: c.log.joins.length, l: c.log.leaves.length }));
    const upd = await outcome(b.channel.push("presence_update", { name: "Bob", status: "away" }));
    assert.deepEqual(upd, { status: "ok", response: {} });
    const d4 = await obs.broadcast(topic, "presence_diff", (p) => p.joins.bob || p.leaves.bob, WAIT);
    assert.deepEqual(d4.payload.leaves, { bob: { metas: [bob1] } }, "the diff leaves bob's old meta");
    assert.deepEqual(Object.keys(d4.payload.joins), ["bob"]);
    const [bob2] = d4.payload.joins.bob.metas;
    assert.match(bob2.phx_ref, REF_RE);
    assert.notEqual(bob2.phx_ref, bob1.phx_ref);
    assert.deepEqual(
      bob2,
      { name: "Bob", status: "away", online_at: bob1.online_at, phx_ref: bob2.phx_ref, phx_ref_prev: bob1.phx_ref },
      "the join carries phx_ref_prev = the old phx_ref and keeps online_at",
    );
    const expected2 = { alice: expected.alice, bob: [bob2] };
    await waitFor(
      () => all.every((p) => shows(p, expected2)),
      WAIT,
      "every client sees bob away with one meta",
    );
    assert.deepEqual(rawView(obs, topic), expected2);
    // phoenix.js reports the update as a join of the new meta onto the key,
    // then a leave of the old meta that leaves the key present.
    [a1, a2, b].forEach((c, i) => {
      assert.deepEqual(c.log.joins.slice(marks[i].j), [{ key: "bob", current: { metas: [bob1] }, newPres: { metas: [bob2] } }]);
      assert.deepEqual(c.log.leaves.slice(marks[i].l), [{ key: "bob", current: { metas: [bob2] }, leftPres: { metas: [bob1] } }]);
      assert.deepEqual(c.log.syncs.at(-1), expected2);
    });

    // One of alice's sockets disconnects: alice stays, with one meta.
    const marks2 = [a1, b].map((c) => ({ j: c.log.joins.length, l: c.log.leaves.length }));
    sA2.disconnect();
    const d5 = await obs.broadcast(topic, "presence_diff", (p) => p.leaves.alice, WAIT);
    assert.deepEqual(d5.payload, { joins: {}, leaves: { alice: { metas: [alice2] } } });
    const expected3 = { alice: [alice1], bob: [bob2] };
    await waitFor(
      () => [a1.presence, b.presence].every((p) => shows(p, expected3)),
      WAIT,
      "alice has one meta left",
    );
    assert.deepEqual(rawView(obs, topic), expected3);
    [a1, b].forEach((c, i) => {
      assert.deepEqual(c.log.joins.slice(marks2[i].j), []);
      assert.deepEqual(c.log.leaves.slice(marks2[i].l), [
        { key: "alice", current: { metas: [alice1] }, leftPres: { metas: [alice2] } },
      ]);
    });

    // bob leaves the channel: he is gone.
    const mark3 = { j: a1.log.joins.length, l: a1.log.leaves.length };
    assert.deepEqual(await outcome(b.channel.leave()), { status: "ok", response: {} });
    const d6 = await obs.broadcast(topic, "presence_diff", (p) => p.leaves.bob, WAIT);
    assert.deepEqual(d6.payload, { joins: {}, leaves: { bob: { metas: [bob2] } } });
    const expected4 = { alice: [alice1] };
    await waitFor(() => shows(a1.presence, expected4), WAIT, "bob is gone");
    assert.deepEqual(rawView(obs, topic), expected4);
    assert.deepEqual(a1.log.joins.slice(mark3.j), []);
    assert.deepEqual(a1.log.leaves.slice(mark3.l), [{ key: "bob", current: { metas: [] }, leftPres: { metas: [bob2] } }]);
    assert.deepEqual(a1.log.syncs.at(-1), expected4);
  });
});

// ---- 2. presence_state for late joiners --------------------------------------------

describe("presence_state for a late joiner", () => {
  test("equals the current list, in V2 JSON, V1 JSON and MessagePack", async (t) => {
    const topic = "room:late";
    const sRef = await phoenixSocket(t, server, { params: { user: "ref-user" } });
    const ref = tracked(sRef, topic, { role: "reference" });
    await joinOk(ref.channel);

    // Members with assorted metas, via all three serializers.
    const bob = await connectRaw(server, "v2");
    const carol = await connectRaw(server, "msgpack");
    const dan = await connectRaw(server, "v1", { query: "user=dan" });
    const bob2 = await connectRaw(server, "v2", { query: "user=bob" });
    t.after(() => [bob, carol, dan, bob2].forEach((c) => c.close()));
    const meta = { profile: { nick: "b☃b", age: 7, tags: ["x", "y"], nothing: null, yes: true }, score: 1.5 };
    assert.equal((await bob.join(topic, { user: "bob", ...meta })).reply.payload.status, "ok");
    assert.equal((await bob2.join(topic, { status: "second tab" })).reply.payload.status, "ok");
    assert.equal((await carol.join(topic, { user: "carol", n: -3, big: 2 ** 40 })).reply.payload.status, "ok");
    assert.equal((await dan.join(topic, { status: "online" })).reply.payload.status, "ok");
    // dan updates his meta, so the state holds a phx_ref_prev.
    assert.deepEqual((await dan.push(topic, "presence_update", { status: "busy" })).reply.payload, { status: "ok", response: {} });
    await convergeTo([ref.presence], { "ref-user": 1, bob: 2, carol: 1, dan: 1 }, "members joined");
    await waitFor(() => view(ref.presence).dan?.[0]?.status === "busy", WAIT, "dan busy");
    await sleep(200); // past the batch window: nothing pending
    const current = view(ref.presence);
    assert.ok(current.dan[0].phx_ref_prev, "dan's meta carries phx_ref_prev");
    const bobMeta = current.bob.find((m) => m.profile);
    assert.deepEqual(bobMeta, { ...meta, online_at: bobMeta.online_at, phx_ref: bobMeta.phx_ref });

    // Untracked late joiners in each format.
    for (const format of ["v2", "msgpack", "v1"]) {
      const c = await connectRaw(server, format);
      t.after(() => c.close());
      const j = await rawJoin(c, topic);
      assert.equal(j.reply.payload.status, "ok", format);
      assert.ok(j.state, `${format}: presence_state after the join reply`);
      assert.equal(j.next, j.state, `${format}: presence_state is the first message after the join reply`);
      assert.equal(j.state.ref, null, `${format}: presence_state has no ref`);
      if (format === "msgpack") assert.equal(j.state.binary, true, "msgpack: a binary frame");
      assert.deepEqual(normalize(j.state.payload), current, `${format}: presence_state equals the current list`);
    }
    // The phoenix client's own Presence, untracked.
    const sLate = await phoenixSocket(t, server);
    const late = tracked(sLate, topic);
    await joinOk(late.channel);
    await waitFor(() => late.log.syncs.length > 0, WAIT, "late joiner's onSync");
    assert.deepEqual(view(late.presence), current);
    assert.deepEqual(late.log.syncs[0], current, "the first onSync already shows everyone");

    // A tracked late joiner (MessagePack) converges to the list plus itself.
    const erin = await connectRaw(server, "msgpack");
    t.after(() => erin.close());
    const je = await rawJoin(erin, topic, { user: "erin" });
    assert.ok(je.state);
    await erin.broadcast(topic, "presence_diff", (p) => p.joins.erin, WAIT);
    const withErin = rawView(erin, topic);
    assert.deepEqual(Object.keys(withErin).sort(), [...Object.keys(current), "erin"].sort());
    for (const k of Object.keys(current)) assert.deepEqual(withErin[k], current[k]);
    await waitFor(() => shows(ref.presence, withErin), WAIT, "reference sees erin");
    assert.deepEqual(view(ref.presence), withErin);
  });

  // JSON clients only: @msgpack/msgpack's decoder refuses a "__proto__" map
  // key (DecodeError), so a MessagePack client built on it cannot read the
  // presence frames of a topic where such a user is present.
  test("keys named like Object.prototype properties reach phoenix.js intact", async (t) => {
    const topic = "room:proto-keys";
    const sRef = await phoenixSocket(t, server, { params: { user: "constructor" } });
    const ref = tracked(sRef, topic, { n: 1 });
    await joinOk(ref.channel);
    const sP = await phoenixSocket(t, server, { params: { user: "__proto__" } });
    const p = tracked(sP, topic, { n: 2 });
    await joinOk(p.channel);
    const v1 = await connectRaw(server, "v1", { query: "user=toString" });
    t.after(() => v1.close());
    assert.equal((await v1.join(topic, { n: 3 })).reply.payload.status, "ok");
    const want = { constructor: 1, ["__proto__"]: 1, toString: 1 };
    await convergeTo([ref.presence, p.presence], want, "odd keys listed");
    await v1.broadcast(topic, "presence_diff", (d) => Object.hasOwn(d.joins, "toString"), WAIT);
    await sleep(150);
    assert.deepEqual(rawView(v1, topic), view(ref.presence));
    assert.deepEqual(view(p.presence), view(ref.presence));
    assert.equal(view(ref.presence)["__proto__"][0].n, 2);
  });
});

// ---- 3. batching --------------------------------------------------------------------------

describe("batching (--presence-batch-ms 200)", () => {
  test("a storm of 30 joins reaches each subscriber as 1-2 merged diffs", async (t) => {
    const srv = await startServer(["--presence-batch-ms", "200"]);
    const topic = "room:storm";
    const subs = [];
    for (let i = 0; i < 3; i++) {
      const c = await connectRaw(srv, i === 1 ? "msgpack" : "v2", { query: `user=sub${i}` });
      subs.push(c);
      assert.equal((await c.join(topic)).reply.payload.status, "ok");
    }
    const sP = await phoenixSocket(t, srv); // an untracked phoenix subscriber
    const p = tracked(sP, topic);
    await joinOk(p.channel);
    t.after(() => subs.forEach((c) => c.close()));
    await convergeTo([p.presence], { sub0: 1, sub1: 1, sub2: 1 }, "subscribers joined");
    await sleep(450); // every subscriber's own diffs have gone out
    const marks = subs.map((c) => c.messages.length);
    const syncMark = p.log.syncs.length;
    const m0 = await srv.metrics();

    const storm = await Promise.all(Array.from({ length: 30 }, () => connectRaw(srv, "v2")));
    t.after(() => storm.forEach((c) => c.close()));
    const keys = storm.map((_, i) => `u${String(i).padStart(2, "0")}`);
    const tStart = Date.now();
    storm.forEach((c, i) => c.send("1", "1", topic, "phx_join", { user: keys[i], i }));
    const sendMs = Date.now() - tStart;
    const replies = await Promise.all(storm.map((c) => c.reply(topic, "1", WAIT)));
    const joinMs = Date.now() - tStart;
    for (const r of replies) assert.deepEqual(r.payload, { status: "ok", response: {} });
    // Sent within a few ms; processed well within two 200 ms windows (so at
    // most two batches are possible, whatever the timer's phase).
    assert.ok(sendMs < 100, `the 30 joins were sent within ${sendMs} ms`);
    assert.ok(joinMs < 350, `the 30 joins were answered within ${joinMs} ms`);

    const all = [...keys, "sub0", "sub1", "sub2"].sort();
    const fresh = (c, i) => c.messages.slice(marks[i]).filter((m) => m.topic === topic && m.event === "presence_diff");
    await waitFor(
      () => subs.every((c, i) => keys.every((k) => mergeDiffs(fresh(c, i)).joins[k])),
      WAIT,
      "every subscriber saw all 30 joins",
    );
    await sleep(500); // any further (unwanted) diff frames would arrive by now
    const counted = subs.map((c, i) => fresh(c, i).length);
    for (const [i, c] of subs.entries()) {
      const got = fresh(c, i);
      assert.ok(got.length >= 1 && got.length <= 2, `subscriber ${i} got ${got.length} presence_diff frames for 30 joins`);
      const merged = mergeDiffs(got);
      assert.deepEqual(Object.keys(merged.joins).sort(), keys);
      assert.deepEqual(merged.leaves, {});
      keys.forEach((k, j) => {
        assert.equal(merged.joins[k].length, 1);
        assert.equal(merged.joins[k][0].i, j);
        assert.match(merged.joins[k][0].phx_ref, REF_RE);
      });
      assert.deepEqual(Object.keys(rawView(c, topic)).sort(), all);
    }
    assert.ok(counted.every((n) => n === counted[0]), `all subscribers got the same number of diffs: ${counted}`);
    const m1 = await srv.metrics();
    assert.equal(m1.get("parley_presence_diffs_total") - m0.get("parley_presence_diffs_total"), counted[0]);
    assert.equal(m1.get("parley_presence_entries"), 33);

    // The phoenix Presence: everyone listed, and onSync ran once per diff.
    await waitFor(() => Object.keys(view(p.presence)).length === 33, WAIT, "phoenix Presence lists 33 keys");
    assert.deepEqual(Object.keys(view(p.presence)).sort(), all);
    assert.equal(p.log.syncs.length - syncMark, counted[0]);
    // Each storm client converged too (its presence_state plus the diffs).
    for (const c of storm) assert.deepEqual(Object.keys(rawView(c, topic)).sort(), all);
    await srv.end();
  });
});

// ---- 4. who is tracked, and the join checks ------------------------------------------

describe("tracking rules and errors", () => {
  test("an untracked joiner gets presence_state but is not listed", async (t) => {
    const topic = "room:untracked";
    const tina = await connectRaw(server, "v2", { query: "user=tina" });
    const ghost = await connectRaw(server, "v2");
    const late = await connectRaw(server, "msgpack");
    t.after(() => [tina, ghost, late].forEach((c) => c.close()));
    const jt = await rawJoin(tina, topic, { status: "here" });
    await tina.broadcast(topic, "presence_diff", (p) => p.joins.tina, WAIT);
    const jg = await rawJoin(ghost, topic, { name: "ghost", status: "invisible" });
    assert.equal(jg.reply.payload.status, "ok");
    assert.ok(jg.state, "the untracked joiner gets presence_state");
    assert.deepEqual(Object.keys(jg.state.payload), ["tina"]);
    assert.deepEqual(normalize(jg.state.payload), rawView(tina, topic));
    await sleep(250);
    assert.equal(diffs(tina, topic).length, 1, "no presence_diff for an untracked joiner");
    assert.deepEqual(Object.keys((await rawJoin(late, topic)).state.payload), ["tina"]);
    // It has nothing to update.
    const u = await ghost.push(topic, "presence_update", { status: "visible" }, jg.joinRef);
    assert.deepEqual(u.reply.payload, { status: "error", response: { reason: "not tracked" } });
    assert.deepEqual(jt.state && Object.keys(jt.state.payload), ["tina"]);
    // Nor does a phoenix client without a user.
    const s = await phoenixSocket(t, server);
    const c = tracked(s, topic);
    await joinOk(c.channel);
    assert.deepEqual(await outcome(c.channel.push("presence_update", { status: "x" })), {
      status: "error",
      response: { reason: "not tracked" },
    });
    assert.deepEqual(Object.keys(view(c.presence)), ["tina"]);
  });

  test("invalid user: not a string of 1 to 256 bytes", async (t) => {
    const topic = "room:users";
    const c = await connectRaw(server, "v2", { query: "user=fallback" });
    t.after(() => c.close());
    const bad = [5, "", "x".repeat(300), "x".repeat(257), "é".repeat(129), null, true, { id: "a" }, ["a"]];
    for (const user of bad) {
      const j = await rawJoin(c, topic, { user, status: "online" });
      assert.deepEqual(j.reply.payload, { status: "error", response: { reason: "invalid user" } }, `user ${JSON.stringify(user)}`);
      assert.equal(j.state, null, "no presence_state after an error");
      // The channel was not joined.
      const p = await c.push(topic, "presence_update", {}, j.joinRef);
      assert.deepEqual(p.reply.payload, { status: "error", response: { reason: "unmatched topic" } });
    }
    // 256 bytes (ASCII or not) is fine.
    for (const user of ["x".repeat(256), "é".repeat(128)]) {
      const j = await rawJoin(c, topic, { user });
      assert.equal(j.reply.payload.status, "ok", `user of ${Buffer.byteLength(user)} bytes`);
      await c.broadcast(topic, "presence_diff", (p) => p.joins[user], WAIT);
    }
    assert.deepEqual(Object.keys(rawView(c, topic)), ["é".repeat(128)], "the second join replaced the first");
  });

  test("presence meta too large", async (t) => {
    const topic = "room:big";
    const c = await connectRaw(server, "v2");
    t.after(() => c.close());
    // --presence-meta-max 1024 bytes of JSON (the whole join payload).
    const payloadOf = (n) => {
      const p = { user: "big", blob: "" };
      p.blob = "x".repeat(n - JSON.stringify(p).length);
      assert.equal(JSON.stringify(p).length, n);
      return p;
    };
    const j1 = await rawJoin(c, topic, payloadOf(1025));
    assert.deepEqual(j1.reply.payload, { status: "error", response: { reason: "presence meta too large" } });
    assert.equal(j1.state, null);
    const j2 = await rawJoin(c, topic, payloadOf(1024));
    assert.equal(j2.reply.payload.status, "ok");
    const d = await c.broadcast(topic, "presence_diff", (p) => p.joins.big, WAIT);
    const old = d.payload.joins.big.metas[0];
    assert.equal(old.blob.length, payloadOf(1024).blob.length);
    // presence_update is held to the same limit, and a refused one changes nothing.
    const u = await c.push(topic, "presence_update", { blob: "y".repeat(1100) }, j2.joinRef);
    assert.deepEqual(u.reply.payload, { status: "error", response: { reason: "presence meta too large" } });
    await sleep(200);
    assert.equal(diffs(c, topic).length, 1);
    assert.deepEqual(rawView(c, topic), { big: [old] });
  });

  test("a duplicate join replaces the connection's entry", async (t) => {
    const topic = "room:dup-presence";
    const obs = await connectRaw(server, "v2");
    const c = await connectRaw(server, "v2", { query: "user=dup" });
    t.after(() => [obs, c].forEach((x) => x.close()));
    await rawJoin(obs, topic);
    c.send("1", "1", topic, "phx_join", { status: "first" });
    assert.equal((await c.reply(topic, "1")).payload.status, "ok");
    const d1 = await obs.broadcast(topic, "presence_diff", (p) => p.joins.dup, WAIT);
    const first = d1.payload.joins.dup.metas[0];
    c.send("2", "2", topic, "phx_join", { status: "second" });
    await c.next((m) => m.event === "phx_close" && m.topic === topic, WAIT, "phx_close of the first join");
    assert.equal((await c.reply(topic, "2")).payload.status, "ok");
    const d2 = await obs.broadcast(topic, "presence_diff", (p) => p.leaves.dup, WAIT);
    assert.deepEqual(d2.payload.leaves, { dup: { metas: [first] } });
    assert.equal(d2.payload.joins.dup.metas.length, 1);
    const second = d2.payload.joins.dup.metas[0];
    assert.equal(second.status, "second");
    assert.notEqual(second.phx_ref, first.phx_ref);
    await sleep(200);
    assert.deepEqual(rawView(obs, topic), { dup: [second] });
    assert.deepEqual(rawView(c, topic).dup, [second]);
  });

  test('--presence-topics "room:*,lobby": only matching topics have presence', async (t) => {
    const srv = await startServer(["--presence-topics", "room:*,lobby"]);
    const c = await connectRaw(srv, "v2", { query: "user=zed" });
    const o = await connectRaw(srv, "v2", { query: "user=obs" });
    t.after(() => [c, o].forEach((x) => x.close()));
    for (const topic of ["other:x", "lobbyx", "roo", "Room:x"]) {
      await rawJoin(o, topic);
      const j = await rawJoin(c, topic, { user: 5 }); // not checked where there is no presence
      assert.equal(j.reply.payload.status, "ok", topic);
      assert.equal(j.state, null, `${topic}: no presence_state`);
      const u = await c.push(topic, "presence_update", { status: "x" }, j.joinRef);
      assert.deepEqual(u.reply.payload, { status: "error", response: { reason: "not tracked" } }, topic);
    }
    for (const topic of ["room:x", "room:", "lobby"]) {
      await rawJoin(o, topic);
      const j = await rawJoin(c, topic, { status: "here" });
      assert.equal(j.reply.payload.status, "ok", topic);
      assert.ok(j.state, `${topic}: presence_state`);
      // obs is listed; zed itself may only arrive with the next diff.
      assert.ok("obs" in j.state.payload, `${topic}: obs listed`);
      assert.ok(Object.keys(j.state.payload).every((k) => k === "obs" || k === "zed"), topic);
      await o.broadcast(topic, "presence_diff", (p) => p.joins.zed, WAIT);
    }
    await sleep(200);
    for (const topic of ["other:x", "lobbyx", "roo", "Room:x"]) {
      assert.equal(o.received((m) => m.topic === topic && m.event.startsWith("presence_")).length, 0, topic);
    }
    const m = await srv.metrics();
    assert.equal(m.get("parley_presence_entries"), 6, "obs and zed in room:x, room: and lobby");
    await srv.end();
  });

  test('--presence-topics "" disables presence', async (t) => {
    const srv = await startServer(["--presence-topics", ""]);
    const c = await connectRaw(srv, "v2", { query: "user=zed" });
    const s = await phoenixSocket(t, srv, { params: { user: "pat" } });
    t.after(() => c.close());
    const p = tracked(s, "room:x", { user: "pat" });
    await joinOk(p.channel);
    const j = await rawJoin(c, "room:x", { user: 5, blob: "x".repeat(2000) });
    assert.equal(j.reply.payload.status, "ok");
    assert.equal(j.state, null, "no presence_state");
    const u = await c.push("room:x", "presence_update", { status: "x" }, j.joinRef);
    assert.deepEqual(u.reply.payload, { status: "error", response: { reason: "not tracked" } });
    await sleep(200);
    assert.equal(c.received((m) => m.event.startsWith("presence_")).length, 0);
    assert.equal(s.seen.filter((m) => m.event.startsWith("presence_")).length, 0);
    assert.equal(p.log.syncs.length, 0);
    const m = await srv.metrics();
    assert.equal(m.get("parley_presence_entries"), 0);
    assert.equal(m.get("parley_presence_diffs_total"), 0);
    await srv.end();
  });
});

// ---- 5. metrics --------------------------------------------------------------------------------

describe("presence metrics", () => {
  test("parley_presence_entries follows tracked connections; diffs and errors are counted", async (t) => {
    const srv = await startServer();
    const metric = async (k) => (await srv.metrics()).get(k);
    const entries = () => metric("parley_presence_entries");
    const waitEntries = (n, what) => waitFor(async () => (await entries()) === n, WAIT, `${what}: entries == ${n}`);
    assert.equal(await entries(), 0);
    assert.equal(await metric("parley_presence_diffs_total"), 0);
    assert.equal(await metric(errKey("presence")), 0);

    // An untracked observer on both topics sees every diff the server sends.
    const obs = await connectRaw(srv, "v2");
    const c1 = await connectRaw(srv, "v2", { query: "user=m1" });
    const c2 = await connectRaw(srv, "msgpack");
    const c3 = await connectRaw(srv, "v1");
    t.after(() => [obs, c1, c2, c3].forEach((c) => c.close()));
    await rawJoin(obs, "room:m1");
    await rawJoin(obs, "room:m2");
    assert.equal(await entries(), 0, "an untracked joiner is no entry");

    const j11 = await rawJoin(c1, "room:m1");
    assert.equal(await entries(), 1);
    await obs.broadcast("room:m1", "presence_diff", (p) => p.joins.m1, WAIT);
    assert.equal(await metric("parley_presence_diffs_total"), 1);
    const j12 = await rawJoin(c1, "room:m2"); // one connection, two topics: two entries
    assert.equal(await entries(), 2);
    await rawJoin(c2, "room:m1", { user: "m2" });
    await rawJoin(c3, "room:m1", { user: "m3" });
    assert.equal(await entries(), 4);
    assert.equal((await c1.push("room:m1", "presence_update", { status: "away" }, j11.joinRef)).reply.payload.status, "ok");
    assert.equal(await entries(), 4, "an update replaces an entry");

    // Errors are counted under kind="presence".
    const e0 = await metric(errKey("presence"));
    await rawJoin(c2, "room:m3", { user: "" });
    await rawJoin(c2, "room:m3", { user: "x", blob: "y".repeat(2000) });
    await obs.push("room:m1", "presence_update", {});
    assert.equal(await metric(errKey("presence")), e0 + 3);
    assert.equal(await entries(), 4);

    // Leave and disconnect.
    assert.equal((await c1.push("room:m2", "phx_leave", {}, j12.joinRef)).reply.payload.status, "ok");
    assert.equal(await entries(), 3);
    c3.terminate();
    await waitEntries(2, "after a disconnect");
    c2.close();
    await waitEntries(1, "after a close");
    await obs.broadcast("room:m1", "presence_diff", (p) => p.leaves.m2, WAIT);
    await sleep(200);
    // Every diff the server counted reached the observer, and vice versa.
    assert.equal(await metric("parley_presence_diffs_total"), diffs(obs, "room:m1").length + diffs(obs, "room:m2").length);
    assert.ok((await metric("parley_presence_diffs_total")) > 1);
    assert.deepEqual(Object.keys(rawView(obs, "room:m1")), ["m1"]);
    assert.deepEqual(rawView(obs, "room:m2"), {});
    await srv.end();
  });
});
