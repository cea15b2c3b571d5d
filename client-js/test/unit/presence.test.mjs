// Presence sync over the shared vectors in protocol/vectors/presence.json.
//
// The vectors are first run through the official phoenix.js Presence, so
// they are known to describe Phoenix's behaviour, and then through ours:
// the static syncState/syncDiff (with frozen inputs, proving they are pure)
// and the Presence class on a stand-in channel. Then what the vectors do
// not cover: diffs held back until the state they apply to, list().

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Presence as PhoenixPresence } from "phoenix";

import { Presence } from "../../src/index.js";

const CASES = JSON.parse(
  readFileSync(new URL("../../../protocol/vectors/presence.json", import.meta.url), "utf8"),
);

const refs = (presence) => presence.metas.map((meta) => meta.phx_ref);

/** onJoin/onLeave callbacks that record calls in the vectors' form:
 * [kind, key, refs of the current presence or null, refs of the joined/left]. */
function recorder() {
  const calls = [];
  return {
    calls,
    onJoin: (key, current, joined) => calls.push(["join", key, current ? refs(current) : null, refs(joined)]),
    onLeave: (key, current, left) => calls.push(["leave", key, refs(current), refs(left)]),
  };
}

/** Plain JSON data: prototype-free objects compare equal to parsed ones. */
const plain = (value) => JSON.parse(JSON.stringify(value));

/** A fresh copy of a payload, since phoenix.js modifies some of its inputs. */
const fresh = plain;

function deepFreeze(value) {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze(value[key]);
  }
  return value;
}

/** Runs a case through the static functions of `impl`. */
function runStatic(impl, testCase, { freeze = false } = {}) {
  let state = {};
  testCase.steps.forEach((step, i) => {
    const { calls, onJoin, onLeave } = recorder();
    const payload = freeze ? deepFreeze(fresh(step.payload)) : fresh(step.payload);
    if (freeze) deepFreeze(state);
    state =
      step.event === "presence_state"
        ? impl.syncState(state, payload, onJoin, onLeave)
        : impl.syncDiff(state, payload, onJoin, onLeave);
    const where = `${testCase.name}, step ${i + 1}`;
    assert.deepStrictEqual(plain(state), step.state, `${where}: state`);
    assert.deepStrictEqual(calls, step.calls, `${where}: onJoin/onLeave calls`);
  });
}

/** A channel stand-in: delivers events to the bindings; one join throughout. */
function fakeChannel(joinRef = "1") {
  const bindings = [];
  return {
    joinRef: () => joinRef,
    setJoinRef: (ref) => (joinRef = ref),
    on: (event, callback) => bindings.push({ event, callback }),
    emit: (event, payload) => bindings.filter((b) => b.event === event).forEach((b) => b.callback(payload)),
  };
}

/** Runs a case through a Presence instance of class `Impl`. */
function runInstance(Impl, testCase) {
  const channel = fakeChannel();
  const presence = new Impl(channel);
  let rec;
  let syncs = 0;
  presence.onJoin((...args) => rec.onJoin(...args));
  presence.onLeave((...args) => rec.onLeave(...args));
  presence.onSync(() => syncs++);
  testCase.steps.forEach((step, i) => {
    rec = recorder();
    channel.emit(step.event, fresh(step.payload));
    const where = `${testCase.name}, step ${i + 1}`;
    assert.deepStrictEqual(plain(presence.state), step.state, `${where}: state`);
    assert.deepStrictEqual(rec.calls, step.calls, `${where}: onJoin/onLeave calls`);
    assert.equal(syncs, i + 1, `${where}: one onSync per message`);
    const listed = presence.list((key, presence) => [key, refs(presence)]);
    assert.deepStrictEqual(
      plain(Object.fromEntries(listed)),
      plain(Object.fromEntries(Object.entries(step.state).map(([key, p]) => [key, refs(p)]))),
      `${where}: list()`,
    );
  });
}

test("the vectors cover what they promise", () => {
  assert.ok(CASES.length >= 12);
  const names = new Set(CASES.map((c) => c.name));
  assert.equal(names.size, CASES.length, "case names are unique");
  const all = JSON.stringify(CASES);
  assert.ok(all.includes("phx_ref_prev"), "a meta update");
  assert.ok(CASES.some((c) => c.steps.filter((s) => s.event === "presence_state").length > 1), "a resync");
  assert.ok(CASES.some((c) => c.steps.some((s) => Object.values(s.state).some((p) => p.metas.length > 1))), "several tabs");
});

test("presence.json describes phoenix.js: its static syncState/syncDiff", () => {
  for (const c of CASES) runStatic(PhoenixPresence, c);
});

test("presence.json describes phoenix.js: its Presence class", () => {
  for (const c of CASES) runInstance(PhoenixPresence, c);
});

test("our syncState/syncDiff follow presence.json without modifying their arguments", () => {
  for (const c of CASES) runStatic(Presence, c, { freeze: true });
});

test("our Presence class follows presence.json", () => {
  for (const c of CASES) runInstance(Presence, c);
});

// ---- beyond the vectors ------------------------------------------------------

const meta = (ref, extra = {}) => ({ ...extra, phx_ref: ref });

test("diffs that arrive before the presence_state wait for it, then apply in order", () => {
  const channel = fakeChannel("1");
  const presence = new Presence(channel);
  const { calls, onJoin, onLeave } = recorder();
  let syncs = 0;
  presence.onJoin(onJoin);
  presence.onLeave(onLeave);
  presence.onSync(() => syncs++);
  channel.emit("presence_diff", { joins: { bob: { metas: [meta("b1")] } }, leaves: {} });
  channel.emit("presence_diff", { joins: {}, leaves: { ada: { metas: [meta("a1")] } } });
  assert.equal(syncs, 0);
  assert.deepEqual(presence.list(), []);
  channel.emit("presence_state", { ada: { metas: [meta("a1")] } });
  assert.equal(syncs, 1);
  assert.deepEqual(calls, [
    ["join", "ada", null, ["a1"]],
    ["join", "bob", null, ["b1"]],
    ["leave", "ada", [], ["a1"]],
  ]);
  assert.deepEqual(presence.list((key) => key), ["bob"]);
});

test("after a rejoin, diffs wait for the new join's presence_state, which drops who left meanwhile", () => {
  const channel = fakeChannel("1");
  const presence = new Presence(channel);
  const left = [];
  presence.onLeave((key, current) => left.push([key, refs(current)]));
  channel.emit("presence_state", { ada: { metas: [meta("a1")] }, bob: { metas: [meta("b1")] } });
  channel.setJoinRef("7"); // the channel rejoined
  channel.emit("presence_diff", { joins: { cy: { metas: [meta("c1")] } }, leaves: {} });
  assert.deepEqual(presence.list((key) => key), ["ada", "bob"], "the diff waits");
  channel.emit("presence_state", { ada: { metas: [meta("a1")] } });
  assert.deepEqual(left, [["bob", []]]);
  assert.deepEqual(presence.list((key) => key), ["ada", "cy"]);
});

test("list() keeps the order in which keys first appeared; the chooser gets key and presence", () => {
  let state = Presence.syncState({}, { zoe: { metas: [meta("z1")] }, ada: { metas: [meta("a1")] } });
  state = Presence.syncDiff(state, { joins: { bob: { metas: [meta("b1")] }, zoe: { metas: [meta("z2")] } }, leaves: {} });
  assert.deepEqual(Presence.list(state, (key) => key), ["zoe", "ada", "bob"]);
  assert.deepEqual(
    Presence.list(state, (key, { metas }) => `${key}:${metas.length}`),
    ["zoe:2", "ada:1", "bob:1"],
  );
  assert.deepEqual(plain(Presence.list(state)[0]), { metas: [meta("z1"), meta("z2")] });
});

test("custom event names", () => {
  const channel = fakeChannel("1");
  const presence = new Presence(channel, { events: { state: "who", diff: "who_diff" } });
  channel.emit("who", { ada: { metas: [meta("a1")] } });
  channel.emit("who_diff", { joins: { bob: { metas: [meta("b1")] } }, leaves: {} });
  channel.emit("presence_state", { zed: { metas: [meta("z1")] } });
  assert.deepEqual(presence.list((key) => key), ["ada", "bob"]);
});
