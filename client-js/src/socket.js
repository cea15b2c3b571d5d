// Socket: one WebSocket connection to a Parley (or any Phoenix) server, kept
// alive for as long as the application wants it.
//
// The socket connects with the params and the serializer's own params in the
// URL, heartbeats on the topic "phoenix", and routes every message it
// receives to the channels of its topic. When the connection is lost (closed
// by the server or the network, or silent past a heartbeat) it reconnects
// with jittered exponential backoff and its channels rejoin. Only
// disconnect() stops it.
//
// Every connection is one transport instance (a WebSocket). Events of a
// connection the socket has given up on (after disconnect() or a heartbeat
// timeout) are ignored, so a late close or message of an old connection can
// never disturb the next one.

import {
  CONNECTION_LOST,
  DEFAULT_BINARY_TYPE,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_SEND_BUFFER_MAX,
  DEFAULT_TIMEOUT,
  DEFAULT_VSN,
  HEARTBEAT_EVENT,
  HEARTBEAT_TIMEOUT_REASON,
  PHOENIX_TOPIC,
  RECONNECT_BASE_MS,
  RECONNECT_CAP_MS,
  REJOIN_BASE_MS,
  REJOIN_CAP_MS,
  SOCKET_STATES,
  TRANSPORT_PATH,
  WS_CLOSE_NORMAL,
} from "./constants.js";
import Channel from "./channel.js";
import { JsonSerializer } from "./serializer.js";
import Timer, { jitteredBackoff } from "./timer.js";

/** A function returning `value`, or `value` itself if it is a function. */
const closure = (value) => (typeof value === "function" ? value : () => value);

export default class Socket {
  /**
   * @param {string} endPoint - e.g. "ws://127.0.0.1:4000/socket", or "/socket"
   *   in a browser page (same host; wss on https). "/websocket" is appended.
   * @param {object} [opts]
   * @param {object | (() => object)} [opts.params] - Connect parameters, sent
   *   in the URL of every (re)connect; a function is called each time.
   * @param {Function} [opts.transport] - A WebSocket constructor; default
   *   globalThis.WebSocket (Node 20 has none: pass the `ws` package's).
   * @param {object} [opts.serializer] - JsonSerializer (default),
   *   JsonSerializerV1 or MsgpackSerializer.
   * @param {number} [opts.timeout] - Default push and join timeout, ms.
   * @param {number} [opts.heartbeatIntervalMs] - Heartbeat period, ms.
   * @param {(tries: number) => number} [opts.reconnectAfterMs] - Delay before
   *   reconnect attempt n (from 1).
   * @param {(tries: number) => number} [opts.rejoinAfterMs] - Delay before
   *   rejoin attempt n of a channel that errored.
   * @param {number} [opts.sendBufferMax] - Messages kept while they cannot be
   *   sent; beyond it a push fails with "error" {reason: "send buffer full"}.
   * @param {() => number} [opts.random] - Source of [0, 1) for the jitter.
   * @param {(kind: string, msg: string, data?: any) => void} [opts.logger]
   */
  constructor(endPoint, opts = {}) {
    this.transport = opts.transport || globalThis.WebSocket;
    if (typeof this.transport !== "function") {
      throw new Error(
        "parley-client: no WebSocket implementation. Pass one as the `transport` option, " +
          'e.g. `import WebSocket from "ws"; new Socket(url, { transport: WebSocket })` in Node.',
      );
    }
    this.endPoint = `${endPoint}/${TRANSPORT_PATH}`;
    this.params = closure(opts.params || {});
    this.serializer = opts.serializer || JsonSerializer;
    this.timeout = opts.timeout || DEFAULT_TIMEOUT;
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs || DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.sendBufferMax = opts.sendBufferMax ?? DEFAULT_SEND_BUFFER_MAX;
    this.random = opts.random || Math.random;
    this.reconnectAfterMs =
      opts.reconnectAfterMs || jitteredBackoff(RECONNECT_BASE_MS, RECONNECT_CAP_MS, this.random);
    this.rejoinAfterMs =
      opts.rejoinAfterMs || jitteredBackoff(REJOIN_BASE_MS, REJOIN_CAP_MS, this.random);
    this.logger = opts.logger || null;

    this.stateChangeCallbacks = { open: [], close: [], error: [], message: [] };
    this.channels = [];
    this.sendBuffer = []; // {msg, channel} waiting for the connection to open
    this.ref = 0;
    // The current connection: {transport, ended, answered, onClosed}. `ended`
    // means the socket gave up on it; `answered` that the server sent
    // something on it; onClosed holds disconnect() callbacks.
    this.connection = null;
    this.heartbeatTimer = null;
    this.heartbeatTimeoutTimer = null;
    this.pendingHeartbeatRef = null;
    this.reconnectTimer = new Timer(() => this.connect(), this.reconnectAfterMs);
  }

  // ---- public API -----------------------------------------------------------

  /** The transport instance (WebSocket) of the current connection, if any. */
  get conn() {
    return this.connection ? this.connection.transport : null;
  }

  /**
   * Opens the connection. Does nothing if the socket is already connected or
   * connecting; cancels a pending reconnect (connecting now instead).
   */
  connect() {
    if (this.connection && !this.connection.ended) return;
    // Cancel, not reset: if this attempt fails too, the next one backs off
    // further.
    this.reconnectTimer.cancel();
    const url = this.endPointURL();
    this.log("transport", `connecting to ${url}`);
    const transport = new this.transport(url);
    transport.binaryType = this.serializer.binaryType || DEFAULT_BINARY_TYPE;
    const connection = { transport, ended: false, answered: false, onClosed: [] };
    this.connection = connection;

    const isCurrent = () => this.connection === connection && !connection.ended;
    transport.onopen = () => {
      if (isCurrent()) this.onConnOpen();
    };
    transport.onerror = (error) => {
      if (isCurrent()) this.onConnError(error);
    };
    transport.onmessage = (event) => {
      if (isCurrent()) this.onConnMessage(connection, event);
    };
    transport.onclose = (event) => {
      if (this.connection === connection) this.onConnClose(connection, event, !connection.ended);
      for (const callback of connection.onClosed) callback();
    };
  }

  /**
   * Closes the connection for good: no reconnect until connect() is called
   * again. Channels error (and rejoin on the next connect()).
   *
   * @param {() => void} [callback] - Called once the connection has closed.
   * @param {number} [code] - WebSocket close code (default 1000).
   * @param {string} [reason] - Close reason text.
   */
  disconnect(callback, code = WS_CLOSE_NORMAL, reason = "") {
    this.reconnectTimer.reset();
    this.clearHeartbeats();
    const connection = this.connection;
    if (!connection) {
      if (callback) callback();
      return;
    }
    if (callback) connection.onClosed.push(callback);
    if (connection.ended) return; // already closing
    connection.ended = true;
    this.log("transport", "disconnect", { code, reason });
    connection.transport.close(code, reason);
    this.connectionLost(CONNECTION_LOST.disconnect);
  }

  /** Calls `callback()` each time a connection opens. @returns {string} a ref for off(). */
  onOpen(callback) {
    return this.addCallback("open", callback);
  }

  /** Calls `callback(event)` each time a connection closes (a CloseEvent,
   * or `{code: 1000, reason: "heartbeat timeout", wasClean: false}` when the
   * socket dropped a silent connection). @returns {string} a ref for off(). */
  onClose(callback) {
    return this.addCallback("close", callback);
  }

  /** Calls `callback(error)` on a transport error (e.g. a failed connect).
   * @returns {string} a ref for off(). */
  onError(callback) {
    return this.addCallback("error", callback);
  }

  /** Calls `callback(msg)` for every message received, after the channels
   * have handled it. @returns {string} a ref for off(). */
  onMessage(callback) {
    return this.addCallback("message", callback);
  }

  /**
   * Removes the callbacks registered with onOpen/onClose/onError/onMessage.
   *
   * @param {string[] | string} refs
   */
  off(refs) {
    const remove = new Set([].concat(refs));
    for (const kind of Object.keys(this.stateChangeCallbacks)) {
      this.stateChangeCallbacks[kind] = this.stateChangeCallbacks[kind].filter(([ref]) => !remove.has(ref));
    }
  }

  /**
   * Creates a channel for `topic` (not joined yet: call channel.join()).
   *
   * @param {string} topic
   * @param {object | (() => object)} [params] - The join payload.
   * @returns {Channel}
   */
  channel(topic, params = {}) {
    const channel = new Channel(topic, params, this);
    this.channels.push(channel);
    return channel;
  }

  /** @returns {"connecting" | "open" | "closing" | "closed"} */
  connectionState() {
    if (!this.connection) return "closed";
    const readyState = this.connection.transport.readyState;
    if (readyState === SOCKET_STATES.closed) return "closed";
    if (this.connection.ended || readyState === SOCKET_STATES.closing) return "closing";
    return readyState === SOCKET_STATES.open ? "open" : "connecting";
  }

  /** Whether messages can be sent now. */
  isConnected() {
    return this.connectionState() === "open";
  }

  /** The URL of the next connection: the endpoint, the params, vsn and the
   * serializer's params (which win over the others). */
  endPointURL() {
    const params = { ...this.params(), vsn: DEFAULT_VSN, ...this.serializer.params };
    const query = Object.entries(params)
      .filter(([, value]) => value !== undefined && value !== null)
      .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`)
      .join("&");
    return `${absoluteURL(this.endPoint)}?${query}`;
  }

  /** Logs through the `logger` option, if any. */
  log(kind, msg, data) {
    if (this.logger) this.logger(kind, msg, data);
  }

  /** Whether a logger was given. */
  hasLogger() {
    return this.logger !== null;
  }

  // ---- internal: used by Channel and Push ---------------------------------

  /** A new message ref ("1", "2", ...). @internal */
  makeRef() {
    this.ref += 1;
    return String(this.ref);
  }

  /**
   * Sends a message now, or keeps it until the connection opens. Returns
   * false, and keeps nothing, when the send buffer is full. @internal
   *
   * @param {{join_ref, ref, topic, event, payload}} msg
   * @param {Channel} [channel] - The channel it belongs to.
   */
  push(msg, channel) {
    // The log line is only built when someone reads it: pushes and
    // receives are the hot path.
    if (this.logger) this.log("push", `${msg.topic} ${msg.event} (${msg.join_ref}, ${msg.ref})`, msg.payload);
    if (this.isConnected()) {
      this.send(msg);
      return true;
    }
    if (this.bufferedCount() >= this.sendBufferMax) {
      this.log("push", `send buffer full, dropping ${msg.topic} ${msg.event}`);
      return false;
    }
    this.sendBuffer.push({ msg, channel });
    return true;
  }

  /** Messages waiting to be sent: in the socket's buffer and in the
   * channels' (pushes made before their join succeeded). @internal */
  bufferedCount() {
    let count = this.sendBuffer.length;
    for (const channel of this.channels) count += channel.bufferedCount();
    return count;
  }

  /** Forgets a closed channel. @internal */
  remove(channel) {
    this.off(channel.socketRefs);
    this.channels = this.channels.filter((c) => c !== channel);
  }

  /** Leaves any other channel of `topic` that is joined or joining: the
   * server keeps one channel per topic and socket, and so do we. @internal */
  leaveOpenTopic(topic, except) {
    const duplicate = this.channels.find(
      (c) => c !== except && c.topic === topic && (c.isJoined() || c.isJoining()),
    );
    if (duplicate) {
      this.log("transport", `leaving duplicate topic "${topic}"`);
      duplicate.leave();
    }
  }

  // ---- internal: the connection's events ----------------------------------

  /** @internal */
  addCallback(kind, callback) {
    const ref = this.makeRef();
    this.stateChangeCallbacks[kind].push([ref, callback]);
    return ref;
  }

  /** @internal */
  runCallbacks(kind, arg) {
    for (const [, callback] of this.stateChangeCallbacks[kind].slice()) callback(arg);
  }

  /** @internal */
  onConnOpen() {
    this.log("transport", `connected (${this.serializer.name})`);
    this.flushSendBuffer();
    this.resetHeartbeat();
    this.runCallbacks("open");
  }

  /** @internal */
  onConnError(error) {
    this.log("transport", "error", error);
    this.runCallbacks("error", error);
    this.connectionLost(CONNECTION_LOST.error);
  }

  /**
   * The connection is over: forget it, error the channels, reconnect unless
   * the socket was told to disconnect, and tell the onClose callbacks.
   * @internal
   */
  onConnClose(connection, event, reconnect, reason = CONNECTION_LOST.closed) {
    this.log("transport", "close", event);
    this.connection = null;
    this.clearHeartbeats();
    this.connectionLost(reason);
    if (reconnect) this.reconnectTimer.scheduleTimeout();
    this.runCallbacks("close", event);
  }

  /** @internal */
  onConnMessage(connection, event) {
    try {
      this.serializer.decode(event.data, (msg) => this.dispatch(connection, msg));
    } catch (error) {
      // A frame we cannot read is a server or serializer mismatch; dropping
      // it keeps the rest of the conversation going, and the logger says why.
      this.log("receive", "undecodable frame dropped", error);
    }
  }

  /** Hands a decoded message to its channels and the onMessage callbacks. @internal */
  dispatch(connection, msg) {
    if (this.connection !== connection || connection.ended) return;
    // The backoff starts over only once the server has answered: a server
    // that accepts connections and closes them at once (a wrong serializer,
    // a crash loop) keeps its clients backing off.
    if (!connection.answered) {
      connection.answered = true;
      this.reconnectTimer.reset();
    }
    const { join_ref, ref, topic, event, payload } = msg;
    if (ref && ref === this.pendingHeartbeatRef) this.resetHeartbeat();
    if (this.logger) this.log("receive", `${payload?.status || ""} ${topic} ${event} ${ref ? `(${ref})` : ""}`, payload);
    for (const channel of this.channels.slice()) {
      if (channel.isMember(topic, event, payload, join_ref)) channel.trigger(event, payload, ref, join_ref);
    }
    this.runCallbacks("message", msg);
  }

  /** Tells every channel that the connection is gone: joined and joining
   * channels error (and will rejoin), pushes waiting for a reply end. A
   * connection can be lost twice (an error, then its close); the second
   * time finds nothing left to do. @internal */
  connectionLost(reason) {
    for (const channel of this.channels.slice()) channel.connectionLost(reason);
  }

  /** @internal */
  send(msg) {
    const connection = this.connection;
    this.serializer.encode(msg, (frame) => {
      // The connection may have ended while an asynchronous encoder worked.
      if (this.connection === connection && !connection.ended) connection.transport.send(frame);
    });
  }

  /** Sends what was kept while disconnected, except messages of a join
   * that has since been replaced or left. @internal */
  flushSendBuffer() {
    const buffered = this.sendBuffer;
    this.sendBuffer = [];
    for (const { msg, channel } of buffered) {
      if (channel && (msg.join_ref !== channel.joinRef() || channel.isClosed())) continue;
      this.send(msg);
    }
  }

  // ---- internal: heartbeat ------------------------------------------------

  /** @internal */
  clearHeartbeats() {
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.heartbeatTimeoutTimer);
    this.heartbeatTimer = null;
    this.heartbeatTimeoutTimer = null;
    this.pendingHeartbeatRef = null;
  }

  /** Schedules the next heartbeat one interval from now. @internal */
  resetHeartbeat() {
    this.clearHeartbeats();
    this.heartbeatTimer = setTimeout(() => this.sendHeartbeat(), this.heartbeatIntervalMs);
  }

  /** @internal */
  sendHeartbeat() {
    if (!this.isConnected()) return;
    this.pendingHeartbeatRef = this.makeRef();
    this.push({ join_ref: null, ref: this.pendingHeartbeatRef, topic: PHOENIX_TOPIC, event: HEARTBEAT_EVENT, payload: {} });
    this.heartbeatTimeoutTimer = setTimeout(() => this.heartbeatTimeout(), this.heartbeatIntervalMs);
  }

  /**
   * No reply to the heartbeat: the connection is presumed dead (a frozen
   * server, a lost network). Its close event may take minutes to come, so
   * the socket gives up on it now and reconnects. @internal
   */
  heartbeatTimeout() {
    const connection = this.connection;
    if (!connection || !this.pendingHeartbeatRef) return;
    this.log("transport", "heartbeat timeout: reconnecting");
    connection.ended = true;
    connection.transport.close(WS_CLOSE_NORMAL, HEARTBEAT_TIMEOUT_REASON);
    const event = { code: WS_CLOSE_NORMAL, reason: HEARTBEAT_TIMEOUT_REASON, wasClean: false };
    this.onConnClose(connection, event, true, CONNECTION_LOST.heartbeat);
  }
}

/** The endpoint as an absolute ws(s):// URL: a path ("/socket") or a
 * protocol-relative URL ("//host/socket") is resolved against the page. */
function absoluteURL(endPoint) {
  if (!endPoint.startsWith("/")) return endPoint;
  const location = globalThis.location;
  if (!location) throw new Error(`parley-client: the endpoint "${endPoint}" needs a host outside a browser page`);
  const protocol = location.protocol === "https:" ? "wss" : "ws";
  if (endPoint.startsWith("//")) return `${protocol}:${endPoint}`;
  return `${protocol}://${location.host}${endPoint}`;
}
