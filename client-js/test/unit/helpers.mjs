// Test doubles for the unit tests: a fake WebSocket the test drives from the
// server's side, a seeded random source, and a socket set up with both and
// with node:test's fake timers, so that backoff, timeouts and heartbeats run
// in simulated time.

import { Socket } from "../../src/index.js";

/**
 * Returns a fresh fake WebSocket class and the list of its instances (one per
 * connection attempt, newest last). The client side behaves like a browser
 * WebSocket: send() on a socket that is not open throws, close() moves to
 * CLOSING. The test plays the server with the server* methods.
 */
export function createMockTransport() {
  const instances = [];

  class MockWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;

    constructor(url) {
      this.url = url;
      this.readyState = MockWebSocket.CONNECTING;
      this.binaryType = "blob";
      this.sent = []; // frames as the client sent them
      this.closeCalls = []; // {code, reason} of each close() call
      this.onopen = null;
      this.onclose = null;
      this.onerror = null;
      this.onmessage = null;
      instances.push(this);
    }

    send(frame) {
      if (this.readyState !== MockWebSocket.OPEN) throw new Error("send() on a WebSocket that is not open");
      this.sent.push(frame);
    }

    close(code, reason) {
      this.closeCalls.push({ code, reason });
      if (this.readyState < MockWebSocket.CLOSING) this.readyState = MockWebSocket.CLOSING;
    }

    // ---- the server's side ----

    /** The connection opens. */
    serverOpen() {
      this.readyState = MockWebSocket.OPEN;
      this.onopen?.({ type: "open" });
    }

    /** The server sends one V2 JSON message. */
    serverSend(join_ref, ref, topic, event, payload) {
      this.onmessage?.({ data: JSON.stringify([join_ref, ref, topic, event, payload]) });
    }

    /** The server sends a raw frame. */
    serverSendRaw(data) {
      this.onmessage?.({ data });
    }

    /** The server replies to the client message `msg` (as from messages()). */
    reply(msg, status = "ok", response = {}) {
      this.serverSend(msg.join_ref, msg.ref, msg.topic, "phx_reply", { status, response });
    }

    /** The connection closes from the server's or the network's side. */
    serverClose(code = 1006, reason = "") {
      this.readyState = MockWebSocket.CLOSED;
      this.onclose?.({ code, reason, wasClean: code !== 1006 });
    }

    /** The connection attempt fails, as a browser reports it: error, then close. */
    serverRefuse() {
      this.readyState = MockWebSocket.CLOSED;
      this.onerror?.({ type: "error", message: "connection refused" });
      this.onclose?.({ code: 1006, reason: "", wasClean: false });
    }

    /** Completes a close the client started with close(). */
    finishClose() {
      const { code = 1005, reason = "" } = this.closeCalls.at(-1) || {};
      this.readyState = MockWebSocket.CLOSED;
      this.onclose?.({ code, reason, wasClean: true });
    }

    /** The client's messages, decoded from V2 JSON. */
    messages() {
      return this.sent.map((frame) => {
        const [join_ref, ref, topic, event, payload] = JSON.parse(frame);
        return { join_ref, ref, topic, event, payload };
      });
    }

    /** The client's messages with `event` (and on `topic`, if given). */
    sentEvents(event, topic) {
      return this.messages().filter((m) => m.event === event && (topic === undefined || m.topic === topic));
    }

    /** The last message the client sent with `event`. */
    lastSent(event) {
      return this.sentEvents(event).at(-1);
    }
  }

  return { MockWebSocket, instances, latest: () => instances.at(-1) };
}

/** A seeded pseudo-random source in [0, 1) (mulberry32): repeatable jitter. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Enables fake timers for test `t` (restored when it ends) and returns a
 * Socket on a fresh mock transport: {socket, mock, ws()} where ws() is the
 * newest connection. opts are Socket options (random defaults to 0.5, so a
 * backoff delay is half its ceiling).
 */
const timersEnabled = new WeakSet();

export function mockSocket(t, opts = {}) {
  if (!timersEnabled.has(t)) {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    timersEnabled.add(t);
  }
  const mock = createMockTransport();
  const socket = new Socket("ws://example.test/socket", {
    transport: mock.MockWebSocket,
    random: () => 0.5,
    ...opts,
  });
  return { socket, mock, ws: mock.latest };
}

/** Connects `socket` and opens its connection; returns the mock WebSocket. */
export function openSocket(socket, mock) {
  socket.connect();
  const ws = mock.latest();
  ws.serverOpen();
  return ws;
}

/** Creates, joins and (with the server's ok) joins `topic`; returns the
 * channel, its join push and the join message. */
export function joinChannel(socket, ws, topic = "room:lobby", params = {}) {
  const channel = socket.channel(topic, params);
  const joinPush = channel.join();
  const joinMsg = ws.lastSent("phx_join");
  ws.reply(joinMsg, "ok", {});
  return { channel, joinPush, joinMsg };
}

/** Advances the fake clock by `ms` (needs mock timers enabled for t). */
export function tick(t, ms) {
  t.mock.timers.tick(ms);
}
