// Socket against a fake WebSocket in simulated time: the connect URL,
// callbacks, reconnecting with backoff, heartbeats, clean disconnects and
// the send buffer.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Socket, SOCKET_STATES } from "../../src/index.js";
import { MsgpackSerializer } from "../../src/msgpack.js";
import { createMockTransport, joinChannel, mockSocket, openSocket, tick } from "./helpers.mjs";

test("without a WebSocket implementation the constructor says what to pass", () => {
  const saved = globalThis.WebSocket;
  delete globalThis.WebSocket;
  try {
    assert.throws(() => new Socket("ws://example.test/socket"), /transport/);
  } finally {
    if (saved) globalThis.WebSocket = saved;
  }
});

test("the URL carries the params, vsn=2.0.0 and the serializer's params", (t) => {
  const { socket, mock } = mockSocket(t, { params: { user: "ada lovelace", token: "a&b" } });
  socket.connect();
  const url = new URL(mock.latest().url);
  assert.equal(url.origin + url.pathname, "ws://example.test/socket/websocket");
  assert.equal(url.searchParams.get("user"), "ada lovelace");
  assert.equal(url.searchParams.get("token"), "a&b");
  assert.equal(url.searchParams.get("vsn"), "2.0.0");
  assert.equal(url.searchParams.get("serializer"), null);
  assert.equal(mock.latest().binaryType, "arraybuffer");

  const packed = mockSocket(t, { serializer: MsgpackSerializer });
  packed.socket.connect();
  const packedUrl = new URL(packed.mock.latest().url);
  assert.equal(packedUrl.searchParams.get("serializer"), "msgpack");
  assert.equal(packedUrl.searchParams.get("vsn"), "2.0.0");
  assert.equal(packed.mock.latest().binaryType, "arraybuffer");
});

test("in a page, a path endpoint connects to the page's host, over wss on https", (t) => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, "location");
  Object.defineProperty(globalThis, "location", { value: { protocol: "https:", host: "chat.example:8443" }, configurable: true });
  try {
    const { socket } = mockSocket(t);
    assert.equal(new Socket("/socket", { transport: socket.transport }).endPointURL(), "wss://chat.example:8443/socket/websocket?vsn=2.0.0");
    assert.equal(new Socket("//other.example/socket", { transport: socket.transport }).endPointURL(), "wss://other.example/socket/websocket?vsn=2.0.0");
  } finally {
    if (saved) Object.defineProperty(globalThis, "location", saved);
    else delete globalThis.location;
  }
  assert.throws(() => new Socket("/socket", { transport: class {} }).endPointURL(), /needs a host/);
});

test("a params function is called again for every reconnect", (t) => {
  let token = 0;
  const { socket, mock } = mockSocket(t, { params: () => ({ token: ++token }) });
  openSocket(socket, mock).serverClose(1006);
  tick(t, 10000);
  assert.equal(mock.instances.length, 2);
  assert.equal(new URL(mock.instances[0].url).searchParams.get("token"), "1");
  assert.equal(new URL(mock.instances[1].url).searchParams.get("token"), "2");
});

test("connectionState() and isConnected() follow the connection", (t) => {
  const { socket, mock } = mockSocket(t);
  assert.equal(socket.connectionState(), "closed");
  socket.connect();
  assert.equal(socket.connectionState(), "connecting");
  assert.equal(socket.isConnected(), false);
  mock.latest().serverOpen();
  assert.equal(socket.connectionState(), "open");
  assert.equal(socket.isConnected(), true);
  socket.disconnect();
  assert.equal(socket.connectionState(), "closing");
  assert.equal(socket.isConnected(), false);
  mock.latest().finishClose();
  assert.equal(socket.connectionState(), "closed");
  assert.equal(SOCKET_STATES.open, 1);
});

test("connect() while connected or connecting opens no second connection", (t) => {
  const { socket, mock } = mockSocket(t);
  socket.connect();
  socket.connect();
  mock.latest().serverOpen();
  socket.connect();
  assert.equal(mock.instances.length, 1);
});

test("onOpen, onClose, onError and onMessage callbacks run, and off() removes them", (t) => {
  const { socket, mock } = mockSocket(t);
  const seen = [];
  const refs = [
    socket.onOpen(() => seen.push("open")),
    socket.onClose((event) => seen.push(`close ${event.code}`)),
    socket.onError((error) => seen.push(`error ${error.message}`)),
    socket.onMessage((msg) => seen.push(`message ${msg.topic} ${msg.event}`)),
  ];
  const ws = openSocket(socket, mock);
  ws.serverSend(null, null, "room:lobby", "new_msg", { body: "hi" });
  ws.serverClose(1001, "server shutting down");
  tick(t, 10000);
  mock.latest().serverRefuse();
  assert.deepEqual(seen, [
    "open",
    "message room:lobby new_msg",
    "close 1001",
    "error connection refused",
    "close 1006",
  ]);

  socket.off(refs);
  tick(t, 10000);
  mock.latest().serverOpen();
  mock.latest().serverSend(null, null, "room:lobby", "new_msg", {});
  mock.latest().serverClose(1006);
  assert.equal(seen.length, 5, "no callback runs after off()");
});

test("after the server closes, the socket reconnects with a growing, jittered delay", (t) => {
  const delays = [];
  const { socket, mock } = mockSocket(t, {
    reconnectAfterMs: (tries) => {
      delays.push(tries);
      return [100, 200, 400][tries - 1] ?? 800;
    },
  });
  openSocket(socket, mock).serverClose(1006);

  tick(t, 99);
  assert.equal(mock.instances.length, 1, "no reconnect before the delay");
  tick(t, 1);
  assert.equal(mock.instances.length, 2, "reconnect after 100 ms");
  mock.latest().serverRefuse();
  tick(t, 199);
  assert.equal(mock.instances.length, 2);
  tick(t, 1);
  assert.equal(mock.instances.length, 3, "a failed attempt backs off further (200 ms)");
  mock.latest().serverRefuse();
  tick(t, 400);
  assert.equal(mock.instances.length, 4);
  assert.deepEqual(delays, [1, 2, 3]);
});

test("the default backoff draws from [0, 250 ms] first and widens per failed attempt", (t) => {
  // random() = 0.999...: every delay is the top of its window.
  const { socket, mock } = mockSocket(t, { random: () => 0.9999 });
  openSocket(socket, mock).serverClose(1006);
  const waits = [];
  for (let attempt = 0; attempt < 8; attempt++) {
    const before = mock.instances.length;
    let waited = 0;
    while (mock.instances.length === before) {
      tick(t, 1);
      waited++;
    }
    waits.push(waited);
    mock.latest().serverRefuse();
  }
  assert.deepEqual(waits, [249, 499, 999, 1999, 3999, 7999, 9999, 9999]);
});

test("the backoff starts over once the server has answered on a new connection, not merely opened it", (t) => {
  const tried = [];
  const { socket, mock } = mockSocket(t, {
    reconnectAfterMs: (tries) => {
      tried.push(tries);
      return 100;
    },
  });
  openSocket(socket, mock).serverClose(1006);
  tick(t, 100);
  // A server that accepts and closes at once (e.g. close 4002, unsupported
  // serializer) must not make its clients retry at the shortest delay.
  mock.latest().serverOpen();
  mock.latest().serverClose(4002, "unsupported vsn or serializer");
  tick(t, 100);
  const ws = mock.latest();
  ws.serverOpen();
  ws.serverSend(null, "1", "phoenix", "phx_reply", { status: "ok", response: {} });
  ws.serverClose(1006);
  tick(t, 100);
  assert.deepEqual(tried, [1, 2, 1]);
});

test("disconnect() closes with 1000, calls back once closed and never reconnects", (t) => {
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  let closedCallbacks = 0;
  let disconnected = false;
  socket.onClose(() => closedCallbacks++);
  socket.disconnect(() => (disconnected = true));
  assert.deepEqual(ws.closeCalls, [{ code: 1000, reason: "" }]);
  assert.equal(disconnected, false, "the callback waits for the close");
  ws.finishClose();
  assert.equal(disconnected, true);
  assert.equal(closedCallbacks, 1);
  tick(t, 60000);
  assert.equal(mock.instances.length, 1, "no reconnect after a clean disconnect");
});

test("disconnect() with a code and reason passes them on; a disconnect during the reconnect wait cancels it", (t) => {
  const { socket, mock } = mockSocket(t);
  const ws = openSocket(socket, mock);
  socket.disconnect(undefined, 4100, "going away");
  assert.deepEqual(ws.closeCalls, [{ code: 4100, reason: "going away" }]);

  const other = mockSocket(t);
  openSocket(other.socket, other.mock).serverClose(1006);
  let called = false;
  other.socket.disconnect(() => (called = true));
  assert.equal(called, true, "nothing to close: the callback runs at once");
  tick(t, 60000);
  assert.equal(other.mock.instances.length, 1, "the pending reconnect was cancelled");
});

test("connect() right after disconnect() opens a new connection; the old one's late events are ignored", (t) => {
  const { socket, mock } = mockSocket(t);
  const old = openSocket(socket, mock);
  const { channel } = joinChannel(socket, old);
  const received = [];
  channel.on("new_msg", (payload) => received.push(payload.body));
  socket.disconnect();
  socket.connect();
  const fresh = mock.latest();
  assert.notEqual(fresh, old);
  fresh.serverOpen();
  old.serverSend(null, null, "room:lobby", "new_msg", { body: "late" });
  old.finishClose();
  assert.equal(socket.isConnected(), true, "the old connection's close does not touch the new one");
  assert.equal(channel.state, "joining", "the channel rejoins on the new connection");
  fresh.reply(fresh.lastSent("phx_join"));
  fresh.serverSend(null, null, "room:lobby", "new_msg", { body: "fresh" });
  assert.deepEqual(received, ["fresh"]);
});

test("a heartbeat goes out every interval on topic phoenix while replies come back", (t) => {
  const { socket, mock } = mockSocket(t, { heartbeatIntervalMs: 1000 });
  const ws = openSocket(socket, mock);
  for (let i = 1; i <= 3; i++) {
    // Due one interval after the connection opened, then one interval after
    // each reply.
    tick(t, 999);
    assert.equal(ws.sentEvents("heartbeat").length, i - 1);
    tick(t, 1);
    assert.equal(ws.sentEvents("heartbeat").length, i);
    const heartbeat = ws.lastSent("heartbeat");
    assert.deepEqual({ ...heartbeat, ref: "?" }, { join_ref: null, ref: "?", topic: "phoenix", event: "heartbeat", payload: {} });
    tick(t, 500);
    ws.reply(heartbeat);
  }
  assert.equal(socket.isConnected(), true);
  assert.equal(mock.instances.length, 1);
});

test("a heartbeat without reply closes the connection and reconnects, and channels rejoin", (t) => {
  const { socket, mock } = mockSocket(t, { heartbeatIntervalMs: 1000, reconnectAfterMs: () => 50 });
  const ws = openSocket(socket, mock);
  const { channel } = joinChannel(socket, ws, "room:lobby", { name: "Ada" });
  const closes = [];
  const errors = [];
  socket.onClose((event) => closes.push(event));
  channel.onError((reason) => errors.push(reason));

  tick(t, 1000); // heartbeat sent
  assert.equal(ws.sentEvents("heartbeat").length, 1);
  tick(t, 999);
  assert.equal(socket.isConnected(), true, "still waiting for the reply");
  tick(t, 1);
  assert.deepEqual(ws.closeCalls, [{ code: 1000, reason: "heartbeat timeout" }]);
  assert.equal(closes.length, 1, "onClose runs without waiting for the dead connection's close event");
  assert.equal(closes[0].reason, "heartbeat timeout");
  assert.deepEqual(errors, [{ reason: "heartbeat timeout" }]);
  assert.equal(socket.connectionState(), "closed");

  tick(t, 50);
  assert.equal(mock.instances.length, 2, "reconnected");
  const fresh = mock.latest();
  fresh.serverOpen();
  const rejoin = fresh.lastSent("phx_join");
  assert.equal(rejoin.topic, "room:lobby");
  assert.deepEqual(rejoin.payload, { name: "Ada" });
  ws.finishClose();
  assert.equal(socket.isConnected(), true, "the dead connection's late close is ignored");
  assert.equal(closes.length, 1);
});

test("a late heartbeat reply of an earlier connection does not count for the current one", (t) => {
  const { socket, mock } = mockSocket(t, { heartbeatIntervalMs: 1000, reconnectAfterMs: () => 50 });
  const ws = openSocket(socket, mock);
  tick(t, 1000);
  const heartbeat = ws.lastSent("heartbeat");
  ws.serverClose(1006);
  tick(t, 50);
  const fresh = mock.latest();
  fresh.serverOpen();
  tick(t, 1000);
  ws.reply(heartbeat); // the old connection's reply: ignored
  tick(t, 1000);
  assert.deepEqual(fresh.closeCalls, [{ code: 1000, reason: "heartbeat timeout" }]);
});

test("frames that cannot be decoded are dropped and logged; the connection goes on", (t) => {
  const logs = [];
  const { socket, mock } = mockSocket(t, { logger: (kind, msg) => logs.push(`${kind}: ${msg}`) });
  const ws = openSocket(socket, mock);
  const seen = [];
  socket.onMessage((msg) => seen.push(msg.event));
  ws.serverSendRaw("not json");
  ws.serverSend(null, null, "room:lobby", "new_msg", {});
  assert.deepEqual(seen, ["new_msg"]);
  assert.ok(logs.includes("receive: undecodable frame dropped"));
  assert.equal(socket.isConnected(), true);
});

test("joins made while disconnected are kept and sent when the connection opens", (t) => {
  const { socket, mock } = mockSocket(t);
  const channel = socket.channel("room:lobby", { name: "Ada" });
  const joined = [];
  channel.join().receive("ok", () => joined.push("ok"));
  socket.connect();
  const ws = mock.latest();
  assert.equal(ws.sent.length, 0);
  ws.serverOpen();
  const join = ws.lastSent("phx_join");
  assert.deepEqual(join.payload, { name: "Ada" });
  assert.equal(ws.sentEvents("phx_join").length, 1, "one join, not a buffered one plus a rejoin");
  ws.reply(join);
  assert.deepEqual(joined, ["ok"]);
});

test("the send buffer keeps at most sendBufferMax messages; beyond, pushes fail with 'send buffer full'", (t) => {
  const { socket, mock } = mockSocket(t, { sendBufferMax: 3, timeout: 60000 });
  const ws = openSocket(socket, mock);
  const { channel } = joinChannel(socket, ws);
  ws.serverClose(1006); // the channel waits for its rejoin: pushes are buffered

  const outcomes = [];
  for (let i = 1; i <= 5; i++) {
    channel
      .push("new_msg", { n: i })
      .receive("ok", () => outcomes.push(`${i} ok`))
      .receive("error", (r) => outcomes.push(`${i} ${r.reason}`));
  }
  assert.deepEqual(outcomes, ["4 send buffer full", "5 send buffer full"]);

  // A second channel's join counts against the same bound.
  const other = socket.channel("room:other");
  const otherOutcomes = [];
  other.join().receive("error", (r) => otherOutcomes.push(r.reason));
  assert.deepEqual(otherOutcomes, ["send buffer full"]);

  tick(t, 10000);
  const fresh = mock.latest();
  fresh.serverOpen();
  assert.deepEqual(
    fresh.sentEvents("phx_join").map((m) => m.topic),
    ["room:lobby", "room:other"],
    "both channels join on the new connection, the one refused earlier included",
  );
  fresh.reply(fresh.sentEvents("phx_join", "room:lobby")[0]);
  const sent = fresh.sentEvents("new_msg").map((m) => m.payload.n);
  assert.deepEqual(sent, [1, 2, 3], "the buffered pushes go out in order after the rejoin");
  for (const m of fresh.sentEvents("new_msg")) fresh.reply(m);
  assert.deepEqual(outcomes.slice(2), ["1 ok", "2 ok", "3 ok"]);
});
