// Every constant of the client in one place: the protocol's reserved names,
// the states a socket and a channel go through, and the defaults of every
// option. The other files import from here, so a value is changed once.

/** The serializer version sent as the `vsn` connect parameter (Phoenix V2). */
export const DEFAULT_VSN = "2.0.0";

/** The path segment appended to the endpoint, as phoenix.js does:
 * `ws://host/socket` connects to `ws://host/socket/websocket`. */
export const TRANSPORT_PATH = "websocket";

// ---- defaults of the Socket options -----------------------------------------

/** Milliseconds a push (and a join) waits for its reply before "timeout". */
export const DEFAULT_TIMEOUT = 10000;

/** Milliseconds between heartbeats; a heartbeat unanswered for as long again
 * means the connection is dead. Parley closes a socket that has sent nothing
 * for 60 s, so this must stay well below that. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 30000;

/** Reconnect backoff: the first delay is drawn from [0, 250] ms and the range
 * doubles per failed attempt up to [0, 10 s]. */
export const RECONNECT_BASE_MS = 250;
export const RECONNECT_CAP_MS = 10000;

/** Rejoin backoff after a channel error or a join that failed or timed out. */
export const REJOIN_BASE_MS = 1000;
export const REJOIN_CAP_MS = 10000;

/** The WebSocket binaryType unless the serializer asks for another: binary
 * frames as ArrayBuffer, the same in browsers and in `ws`. */
export const DEFAULT_BINARY_TYPE = "arraybuffer";

/** Messages kept, across the socket and all its channels, while they cannot
 * be sent yet (socket disconnected or channel not joined). */
export const DEFAULT_SEND_BUFFER_MAX = 1000;

// ---- states -----------------------------------------------------------------

/** WebSocket readyState values (the same in browsers and in `ws`). */
export const SOCKET_STATES = Object.freeze({
  connecting: 0,
  open: 1,
  closing: 2,
  closed: 3,
});

/** The states of a Channel (`channel.state`). */
export const CHANNEL_STATES = Object.freeze({
  closed: "closed",
  errored: "errored",
  joined: "joined",
  joining: "joining",
  leaving: "leaving",
});

// ---- protocol names ---------------------------------------------------------

/** The reserved channel events of the Phoenix protocol. */
export const CHANNEL_EVENTS = Object.freeze({
  close: "phx_close",
  error: "phx_error",
  join: "phx_join",
  reply: "phx_reply",
  leave: "phx_leave",
});

/** The topic and event of the socket heartbeat. */
export const PHOENIX_TOPIC = "phoenix";
export const HEARTBEAT_EVENT = "heartbeat";

/** The events a Presence listens to by default. */
export const PRESENCE_EVENTS = Object.freeze({
  state: "presence_state",
  diff: "presence_diff",
});

/** The `reason` of the "error" a push receives when the send buffer is full. */
export const SEND_BUFFER_FULL = "send buffer full";

/** WebSocket close code for a normal closure. */
export const WS_CLOSE_NORMAL = 1000;

/** The close reason given when a connection is dropped for a missing
 * heartbeat reply. */
export const HEARTBEAT_TIMEOUT_REASON = "heartbeat timeout";

/** The `reason` of the channel errors the socket raises when a connection
 * ends (channel.onError callbacks receive `{reason}`). */
export const CONNECTION_LOST = Object.freeze({
  closed: "connection closed",
  error: "connection error",
  heartbeat: "heartbeat timeout",
  disconnect: "disconnect",
});
