// Channel and Push against a fake WebSocket in simulated time: joining,
// replies and timeouts, buffering before the join, rejoining after a lost
// connection or a channel error, leaving, and event bindings.

import assert from "node:assert/strict";
import { test } from "node:test";

import { CHANNEL_STATES } from "../../src/index.js";
import { joinChannel, mockSocket, openSocket, tick } from "./helpers.mjs";

test("join sends phx_join with the params; ok joins the channel", (t) => {
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  const channel = socket.channel("room:lobby", { name: "Ada" });
  assert.equal(channel.state, CHANNEL_STATES.closed);
  const replies = [];
  channel.join().receive("ok", (response) => replies.push(response));
  assert.equal(channel.state, "joining");
  const join = ws.lastSent("phx_join");
  assert.equal(join.topic, "room:lobby");
  assert.deepEqual(join.payload, { name: "Ada" });
  assert.equal(join.join_ref, join.ref, "a join's join_ref is its own ref");
  ws.reply(join, "ok", { welcome: true });
  assert.equal(channel.state, "joined");
  assert.deepEqual(replies, [{ welcome: true }]);
});

test("join() twice throws, and so does push() before join()", (t) => {
  const { socket } = mockSocket(t);
  const channel = socket.channel("room:lobby");
  assert.throws(() => channel.push("new_msg", {}), /before joining/);
  channel.join();
  assert.throws(() => channel.join(), /twice/);
});

test("a push gets the server's ok or error reply; callbacks registered late still run", (t) => {
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  const { channel, joinMsg } = joinChannel(socket, ws);
  const outcomes = [];
  const first = channel.push("new_msg", { body: "hi" });
  const second = channel.push("new_msg", { body: "again" });
  const [m1, m2] = ws.sentEvents("new_msg");
  assert.equal(m1.join_ref, joinMsg.ref, "pushes carry the channel's join_ref");
  assert.notEqual(m1.ref, m2.ref);
  ws.reply(m2, "error", { reason: "reserved event" });
  ws.reply(m1, "ok", { id: 7 });
  first.receive("ok", (r) => outcomes.push(["first ok", r])).receive("error", () => outcomes.push(["first error"]));
  second.receive("ok", () => outcomes.push(["second ok"])).receive("error", (r) => outcomes.push(["second error", r]));
  assert.deepEqual(outcomes, [
    ["first ok", { id: 7 }],
    ["second error", { reason: "reserved event" }],
  ]);
});

test("a push without reply ends in timeout after its timeout, and a late reply is ignored", (t) => {
  const { socket, mock } = mockSocket(t, { timeout: 5000 });
  const ws = openSocket(socket, mock);
  const { channel } = joinChannel(socket, ws);
  const outcomes = [];
  channel
    .push("new_msg", {}, 2000)
    .receive("ok", () => outcomes.push("ok"))
    .receive("timeout", () => outcomes.push("timeout"));
  tick(t, 1999);
  assert.deepEqual(outcomes, []);
  tick(t, 1);
  assert.deepEqual(outcomes, ["timeout"]);
  ws.reply(ws.lastSent("new_msg"));
  assert.deepEqual(outcomes, ["timeout"]);
});

test("a join without reply times out, sends a leave, and rejoins after rejoinAfterMs", (t) => {
  const { socket, mock } = mockSocket(t, { timeout: 1000, rejoinAfterMs: () => 300 });
  const ws = openSocket(socket, mock);
  const channel = socket.channel("room:lobby", { name: "Ada" });
  const outcomes = [];
  channel.join().receive("timeout", () => outcomes.push("timeout")).receive("ok", () => outcomes.push("ok"));
  const firstJoin = ws.lastSent("phx_join");
  tick(t, 1000);
  assert.deepEqual(outcomes, ["timeout"]);
  assert.equal(channel.state, "errored");
  const leave = ws.lastSent("phx_leave");
  assert.equal(leave.join_ref, firstJoin.ref, "the leave cancels the join that timed out");

  tick(t, 299);
  assert.equal(ws.sentEvents("phx_join").length, 1);
  tick(t, 1);
  const rejoin = ws.lastSent("phx_join");
  assert.notEqual(rejoin.ref, firstJoin.ref);
  assert.deepEqual(rejoin.payload, { name: "Ada" });
  ws.reply(firstJoin); // the first join's late reply changes nothing
  assert.equal(channel.state, "joining");
  ws.reply(rejoin);
  assert.equal(channel.state, "joined");
  assert.deepEqual(outcomes, ["timeout", "ok"]);
});

test("a join error is surfaced, and the channel retries with the rejoin backoff", (t) => {
  const tried = [];
  const { socket, mock } = mockSocket(t, {
    rejoinAfterMs: (tries) => {
      tried.push(tries);
      return tries * 1000;
    },
  });
  const ws = openSocket(socket, mock);
  const channel = socket.channel("room:lobby");
  const errors = [];
  channel.join().receive("error", (r) => errors.push(r.reason));
  ws.reply(ws.lastSent("phx_join"), "error", { reason: "too many channels joined" });
  assert.deepEqual(errors, ["too many channels joined"]);
  assert.equal(channel.state, "errored");
  tick(t, 1000);
  ws.reply(ws.lastSent("phx_join"), "error", { reason: "too many channels joined" });
  tick(t, 1999);
  assert.equal(ws.sentEvents("phx_join").length, 2, "the second retry waits longer");
  tick(t, 1);
  ws.reply(ws.lastSent("phx_join"), "ok");
  assert.equal(channel.state, "joined");
  assert.deepEqual(tried, [1, 2]);
  assert.equal(errors.length, 2);
});

test("pushes made before the join is ok wait, then go out in order", (t) => {
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  const channel = socket.channel("room:lobby");
  const join = channel.join();
  channel.push("new_msg", { n: 1 });
  channel.push("new_msg", { n: 2 });
  assert.equal(ws.sentEvents("new_msg").length, 0);
  ws.reply(ws.lastSent("phx_join"));
  assert.deepEqual(ws.sentEvents("new_msg").map((m) => m.payload.n), [1, 2]);
  assert.ok(join);
});

test("a buffered push that times out is reported and never sent", (t) => {
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  const channel = socket.channel("room:lobby");
  channel.join(10000);
  const outcomes = [];
  channel.push("new_msg", { n: 1 }, 500).receive("timeout", () => outcomes.push("timeout"));
  tick(t, 500);
  assert.deepEqual(outcomes, ["timeout"]);
  ws.reply(ws.lastSent("phx_join"));
  assert.equal(ws.sentEvents("new_msg").length, 0);
});

test("after a reconnect the channel rejoins the same topic with the same params, and pushes flow again", (t) => {
  let joins = 0;
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  const { channel } = joinChannel(socket, ws, "room:lobby", () => ({ name: "Ada", attempt: ++joins }));
  const events = [];
  channel.onError((reason) => events.push(`error ${reason.reason}`));
  channel.on("new_msg", (payload) => events.push(`msg ${payload.body}`));

  ws.serverClose(1006);
  assert.deepEqual(events, ["error connection closed"]);
  assert.equal(channel.state, "errored");
  const pending = [];
  channel.push("new_msg", { body: "while away" }).receive("ok", () => pending.push("ok"));

  tick(t, 250); // the first reconnect comes within 250 ms
  const fresh = mock.latest();
  fresh.serverOpen();
  const rejoin = fresh.lastSent("phx_join");
  assert.equal(rejoin.topic, "room:lobby");
  assert.deepEqual(rejoin.payload, { name: "Ada", attempt: 2 }, "a params function is called for each join");
  assert.equal(fresh.sentEvents("new_msg").length, 0, "pushes wait for the rejoin");
  fresh.reply(rejoin);
  assert.equal(channel.state, "joined");
  const buffered = fresh.lastSent("new_msg");
  assert.equal(buffered.join_ref, rejoin.ref);
  fresh.reply(buffered);
  assert.deepEqual(pending, ["ok"]);
  fresh.serverSend(null, null, "room:lobby", "new_msg", { body: "back" });
  assert.deepEqual(events, ["error connection closed", "msg back"]);
});

test("phx_error from the server errors the channel, which rejoins after rejoinAfterMs", (t) => {
  const { socket, mock } = mockSocket(t, { rejoinAfterMs: () => 700 });
  const ws = openSocket(socket, mock);
  const { channel, joinMsg } = joinChannel(socket, ws, "room:lobby", { name: "Ada" });
  const errors = [];
  channel.onError((payload) => errors.push(payload));
  ws.serverSend(joinMsg.ref, joinMsg.ref, "room:lobby", "phx_error", {});
  assert.deepEqual(errors, [{}]);
  assert.equal(channel.state, "errored");
  tick(t, 699);
  assert.equal(ws.sentEvents("phx_join").length, 1);
  tick(t, 1);
  const rejoin = ws.lastSent("phx_join");
  assert.deepEqual(rejoin.payload, { name: "Ada" });
  ws.reply(rejoin);
  assert.equal(channel.state, "joined");
});

test("messages of an earlier join (another join_ref) are dropped", (t) => {
  const { socket, mock } = mockSocket(t, { rejoinAfterMs: () => 10 });
  const ws = openSocket(socket, mock);
  const { channel, joinMsg } = joinChannel(socket, ws);
  const seen = [];
  channel.on("new_msg", (payload, ref, joinRef) => seen.push([payload.n, joinRef]));
  ws.serverSend(joinMsg.ref, joinMsg.ref, "room:lobby", "phx_error", {});
  tick(t, 10);
  const rejoin = ws.lastSent("phx_join");
  ws.reply(rejoin);
  ws.serverSend(joinMsg.ref, null, "room:lobby", "new_msg", { n: 1 }); // stale
  ws.serverSend(rejoin.ref, null, "room:lobby", "new_msg", { n: 2 });
  ws.serverSend(null, null, "room:lobby", "new_msg", { n: 3 }); // broadcast
  ws.serverSend(null, null, "room:other", "new_msg", { n: 4 }); // other topic
  assert.deepEqual(seen, [
    [2, rejoin.ref],
    [3, rejoin.ref],
  ]);
});

test("leave sends phx_leave, closes on ok, and the channel hears nothing more", (t) => {
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  const { channel, joinMsg } = joinChannel(socket, ws);
  const events = [];
  channel.onClose((reason) => events.push(`close ${reason}`));
  channel.on("new_msg", () => events.push("msg"));
  const leave = channel.leave();
  assert.equal(channel.state, "leaving");
  const leaveMsg = ws.lastSent("phx_leave");
  assert.equal(leaveMsg.join_ref, joinMsg.ref);
  ws.reply(leaveMsg);
  ws.serverSend(joinMsg.ref, joinMsg.ref, "room:lobby", "phx_close", {});
  assert.equal(channel.state, "closed");
  assert.deepEqual(events, ["close leave"], "closed once, by the leave reply");
  let ok = false;
  leave.receive("ok", () => (ok = true));
  assert.ok(ok);
  ws.serverSend(null, null, "room:lobby", "new_msg", {});
  assert.deepEqual(events, ["close leave"]);
  assert.ok(!socket.channels.includes(channel));
  ws.serverClose(1006);
  tick(t, 60000);
  assert.equal(mock.latest().sentEvents("phx_join").length, 0, "a left channel does not rejoin");
});

test("leave closes the channel even when the server does not answer", (t) => {
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  const { channel } = joinChannel(socket, ws);
  const events = [];
  channel.onClose(() => events.push("close"));
  channel.leave(1000);
  tick(t, 1000);
  assert.deepEqual(events, ["close"]);
  assert.equal(channel.state, "closed");
});

test("leave while disconnected closes at once without sending anything", (t) => {
  const { socket, mock } = mockSocket(t, { reconnectAfterMs: () => 100 });
  const ws = openSocket(socket, mock);
  const { channel } = joinChannel(socket, ws);
  ws.serverClose(1006);
  let closed = false;
  channel.onClose(() => (closed = true));
  channel.leave();
  assert.equal(closed, true);
  tick(t, 100);
  mock.latest().serverOpen();
  assert.deepEqual(mock.latest().messages(), [], "no leave and no rejoin on the next connection");
});

test("the server closing the channel (phx_close) closes it without a rejoin", (t) => {
  const { socket, mock } = mockSocket(t, { rejoinAfterMs: () => 10 });
  const ws = openSocket(socket, mock);
  const { channel, joinMsg } = joinChannel(socket, ws);
  let reason = null;
  channel.onClose((r) => (reason = r));
  ws.serverSend(joinMsg.ref, joinMsg.ref, "room:lobby", "phx_close", {});
  assert.equal(channel.state, "closed");
  assert.deepEqual(reason, {});
  tick(t, 1000);
  assert.equal(ws.sentEvents("phx_join").length, 1);
});

test("on() returns refs; off(event, ref) removes one callback and off(event) all", (t) => {
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  const { channel } = joinChannel(socket, ws);
  const seen = [];
  const a = channel.on("new_msg", (p) => seen.push(`a${p.n}`));
  channel.on("new_msg", (p) => seen.push(`b${p.n}`));
  channel.on("other", (p) => seen.push(`c${p.n}`));
  assert.notEqual(a, undefined);
  ws.serverSend(null, null, "room:lobby", "new_msg", { n: 1 });
  channel.off("new_msg", a);
  ws.serverSend(null, null, "room:lobby", "new_msg", { n: 2 });
  channel.off("new_msg");
  ws.serverSend(null, null, "room:lobby", "new_msg", { n: 3 });
  ws.serverSend(null, null, "room:lobby", "other", { n: 4 });
  assert.deepEqual(seen, ["a1", "b1", "b2", "c4"]);
});

test("callbacks get payload, ref and join_ref, and off('phx_reply') does not break replies", (t) => {
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  const { channel, joinMsg } = joinChannel(socket, ws);
  const seen = [];
  channel.on("new_msg", (payload, ref, joinRef) => seen.push({ payload, ref, joinRef }));
  ws.serverSend(null, null, "room:lobby", "new_msg", { body: "hi" });
  assert.deepEqual(seen, [{ payload: { body: "hi" }, ref: null, joinRef: joinMsg.ref }]);

  channel.off("phx_reply");
  let ok = false;
  channel.push("new_msg", {}).receive("ok", () => (ok = true));
  ws.reply(ws.lastSent("new_msg"));
  assert.equal(ok, true);
});

test("joining a topic a second time leaves the first channel of it", (t) => {
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  const { channel: first } = joinChannel(socket, ws);
  let firstClosed = false;
  first.onClose(() => (firstClosed = true));
  const second = socket.channel("room:lobby", { again: true });
  second.join();
  const leave = ws.lastSent("phx_leave");
  assert.equal(leave.topic, "room:lobby");
  ws.reply(leave);
  assert.equal(firstClosed, true);
  ws.reply(ws.lastSent("phx_join"));
  assert.equal(second.state, "joined");
});

test("a channel error does not cost a push already buffered; join callbacks run per attempt", (t) => {
  const { socket, mock } = mockSocket(t, { rejoinAfterMs: () => 10 });
  const ws = openSocket(socket, mock);
  const channel = socket.channel("room:lobby");
  let joinedCount = 0;
  channel.join().receive("ok", () => joinedCount++);
  const join1 = ws.lastSent("phx_join");
  ws.reply(join1);
  ws.serverSend(join1.ref, join1.ref, "room:lobby", "phx_error", {});
  let ok = false;
  channel.push("new_msg", { n: 1 }).receive("ok", () => (ok = true));
  tick(t, 10);
  ws.reply(ws.lastSent("phx_join"));
  assert.equal(joinedCount, 2);
  ws.reply(ws.lastSent("new_msg"));
  assert.equal(ok, true);
});

test("a push waiting for its reply when the connection drops ends in timeout at once; a buffered one waits", (t) => {
  const { socket, mock } = mockSocket(t, { timeout: 60000 });
  const ws = openSocket(socket, mock);
  const { channel } = joinChannel(socket, ws);
  const outcomes = [];
  channel.push("new_msg", { n: 1 }).receive("timeout", () => outcomes.push("1 timeout"));
  ws.serverClose(1006);
  assert.deepEqual(outcomes, ["1 timeout"], "no need to wait 60 s for a reply that cannot come");
  channel.push("new_msg", { n: 2 }).receive("ok", () => outcomes.push("2 ok"));
  tick(t, 250);
  const fresh = mock.latest();
  fresh.serverOpen();
  fresh.reply(fresh.lastSent("phx_join"));
  fresh.reply(fresh.lastSent("new_msg"));
  assert.deepEqual(outcomes, ["1 timeout", "2 ok"]);
  assert.deepEqual(fresh.sentEvents("new_msg").map((m) => m.payload.n), [2], "the lost push is not resent");
});

test("leave() and then disconnect(): the channel closes at once, not after the leave's timeout", (t) => {
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  const { channel } = joinChannel(socket, ws);
  let closed = false;
  channel.onClose(() => (closed = true));
  channel.leave();
  socket.disconnect();
  assert.equal(closed, true);
  assert.equal(channel.state, "closed");
  ws.finishClose();
  socket.connect();
  mock.latest().serverOpen();
  assert.deepEqual(mock.latest().messages(), [], "the left channel does not come back");
});
