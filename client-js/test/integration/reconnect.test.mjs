// Recovery without help from the application: the server is killed and
// started again on the same port, or frozen (SIGSTOP) so that heartbeats go
// unanswered; the sockets reconnect with their default backoff, the channels
// rejoin with the same params, presence is resynced, and messages flow again.

import assert from "node:assert/strict";
import { after, test } from "node:test";

import { Presence } from "../../src/index.js";
import { MsgpackSerializer } from "../../src/msgpack.js";
import { nextEvent, ok, openSocket, startServer, stopAllServers, waitFor } from "./helpers.mjs";

after(stopAllServers);

test("after the server is killed and restarted on the same port, clients reconnect, rejoin and talk again", async (t) => {
  let srv = await startServer([]);
  const port = srv.port;
  const ada = await openSocket(t, srv, { params: { user: "ada" } });
  const bob = await openSocket(t, srv, { params: { user: "bob" }, serializer: MsgpackSerializer });
  const adaChannel = ada.channel("room:restart", { status: "online" });
  const bobChannel = bob.channel("room:restart", { status: "busy" });
  const adaPresence = new Presence(adaChannel);
  const left = [];
  adaPresence.onLeave((key, current, leftPresence) => left.push(...leftPresence.metas.map((m) => m.phx_ref)));
  let adaJoins = 0;
  let bobJoins = 0;
  adaChannel.join().receive("ok", () => adaJoins++);
  bobChannel.join().receive("ok", () => bobJoins++);
  await waitFor(() => adaPresence.list().length === 2, 5000, "both present");
  const oldRefs = adaPresence.list((key, { metas }) => metas[0].phx_ref);

  const closes = [];
  ada.onClose((event) => closes.push(event.code));
  await srv.kill();
  await waitFor(() => closes.length > 0, 5000, "ada notices the close");
  assert.equal(ada.isConnected(), false);
  assert.equal(adaChannel.state, "errored");

  srv = await startServer(["--listen", `127.0.0.1:${port}`]);
  // The default backoff: attempts within 250, 500, 1000, 2000 ms...
  await waitFor(() => adaJoins === 2 && bobJoins === 2, 10000, "both rejoined by themselves");
  assert.equal(ada.isConnected(), true);
  assert.equal(adaChannel.state, "joined");

  // The new server's presence replaces the old picture: the same two users
  // (whichever rejoined first), with new phx_refs; every old meta left.
  const newRefs = () => adaPresence.list((key, { metas }) => metas.map((m) => m.phx_ref)).flat();
  await waitFor(
    () => newRefs().length === 2 && newRefs().every((ref) => !oldRefs.includes(ref)),
    5000,
    "presence resynced",
  );
  assert.deepEqual(
    adaPresence.list((key, { metas }) => [key, metas.map((m) => m.status)]).sort(),
    [
      ["ada", ["online"]],
      ["bob", ["busy"]],
    ],
    "the rejoin sent the same params",
  );
  assert.deepEqual(left.sort(), oldRefs.sort());

  const atBob = nextEvent(bobChannel, "new_msg");
  await ok(adaChannel.push("new_msg", { body: "back" }));
  assert.deepEqual(await atBob, { body: "back" });
  await srv.end();
});

test("a frozen server: the missing heartbeat reply drops the connection, and it recovers once thawed", async (t) => {
  const srv = await startServer([]);
  const socket = await openSocket(t, srv, { heartbeatIntervalMs: 300, reconnectAfterMs: () => 100 });
  const channel = socket.channel("room:frozen");
  await ok(channel.join());
  const closes = [];
  socket.onClose((event) => closes.push(event.reason));
  let joins = 0;
  channel.on("phx_reply", (payload, ref) => {
    if (ref === channel.joinRef() && payload.status === "ok") joins++;
  });

  process.kill(srv.pid, "SIGSTOP");
  try {
    await waitFor(() => closes.length > 0, 3000, "the heartbeat timeout");
    assert.deepEqual(closes, ["heartbeat timeout"]);
    assert.equal(socket.isConnected(), false);
  } finally {
    process.kill(srv.pid, "SIGCONT");
  }
  await waitFor(() => joins >= 1 && socket.isConnected(), 5000, "reconnected and rejoined");
  await ok(channel.push("new_msg", { thawed: true }));
  await srv.end();
});
