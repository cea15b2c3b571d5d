// Presence between two parley-client sockets on the real server: each sees
// the other join, a meta update (presence_update) arrives as one join and one
// leave of the same user, a second tab is a second meta, and a disconnect
// removes the user.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Presence } from "../../src/index.js";
import { MsgpackSerializer } from "../../src/msgpack.js";
import { ok, openSocket, startServer, stopAllServers, waitFor, WAIT } from "./helpers.mjs";

let srv;
before(async () => {
  srv = await startServer(["--presence-batch-ms", "20"]);
});
after(stopAllServers);

/** A socket for `user`, joined to `topic` with a Presence recording its
 * callbacks; returns {socket, channel, presence, events}. */
async function member(t, user, topic, meta = {}, opts = {}) {
  const socket = await openSocket(t, srv, { params: { user }, ...opts });
  const channel = socket.channel(topic, meta);
  const presence = new Presence(channel);
  const events = [];
  presence.onJoin((key, current, joined) =>
    events.push({ kind: "join", key, current: current ? current.metas.length : 0, metas: joined.metas }),
  );
  presence.onLeave((key, current, left) =>
    events.push({ kind: "leave", key, current: current.metas.length, metas: left.metas }),
  );
  await ok(channel.join(), `${user} join`);
  return { socket, channel, presence, events };
}

/** {key: [status of each meta]} from a presence's list. */
const who = (presence) =>
  Object.fromEntries(presence.list((key, { metas }) => [key, metas.map((m) => m.status ?? null)]));

test("two users see each other join, update their meta, open a second tab and leave", async (t) => {
  const topic = "room:presence";
  const ada = await member(t, "ada", topic, { status: "online" });
  const bob = await member(t, "bob", topic, { status: "online" }, { serializer: MsgpackSerializer });

  await waitFor(() => who(ada.presence).bob && who(bob.presence).ada, WAIT, "both see both");
  assert.deepEqual(who(ada.presence), { ada: ["online"], bob: ["online"] });
  assert.deepEqual(who(bob.presence), { ada: ["online"], bob: ["online"] });
  const bobMeta = ada.presence.state.bob.metas[0];
  assert.equal(typeof bobMeta.phx_ref, "string");
  assert.equal(typeof bobMeta.online_at, "number");

  // Bob goes away: one join of the new meta (phx_ref_prev = the old
  // phx_ref), then one leave of the old one; Bob stays present throughout.
  ada.events.length = 0;
  await ok(bob.channel.push("presence_update", { status: "away" }), "presence_update");
  await waitFor(() => who(ada.presence).bob?.[0] === "away", WAIT, "the update at ada");
  assert.deepEqual(who(ada.presence), { ada: ["online"], bob: ["away"] });
  const updated = ada.presence.state.bob.metas[0];
  assert.equal(updated.phx_ref_prev, bobMeta.phx_ref);
  assert.equal(updated.online_at, bobMeta.online_at, "online_at is kept");
  assert.deepEqual(
    ada.events.map((e) => [e.kind, e.key, e.current, e.metas.map((m) => m.status)]),
    [
      ["join", "bob", 1, ["away"]],
      ["leave", "bob", 1, ["online"]],
    ],
  );

  // A second tab of Bob's: one key, two metas.
  const bobTab = await member(t, "bob", topic, { status: "mobile" });
  await waitFor(() => who(ada.presence).bob?.length === 2, WAIT, "bob's second tab at ada");
  assert.deepEqual(who(ada.presence).bob, ["away", "mobile"]);
  assert.deepEqual(who(bobTab.presence).bob?.sort(), ["away", "mobile"]);

  // Bob's first tab disconnects: Bob stays with the other one; then the
  // other one leaves its channel and Bob is gone.
  ada.events.length = 0;
  await new Promise((resolve) => bob.socket.disconnect(resolve));
  await waitFor(() => who(ada.presence).bob?.length === 1, WAIT, "bob's first tab gone");
  assert.deepEqual(who(ada.presence), { ada: ["online"], bob: ["mobile"] });
  await ok(bobTab.channel.leave(), "leave");
  await waitFor(() => !who(ada.presence).bob, WAIT, "bob gone");
  assert.deepEqual(who(ada.presence), { ada: ["online"] });
  assert.deepEqual(
    ada.events.map((e) => [e.kind, e.key, e.current, e.metas.map((m) => m.status)]),
    [
      ["leave", "bob", 1, ["away"]],
      ["leave", "bob", 0, ["mobile"]],
    ],
  );
});
