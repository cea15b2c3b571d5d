// parley-client: the JavaScript client for Parley and any Phoenix Channels
// server. This file only re-exports the public API; the MessagePack
// serializer has its own entry point, "parley-client/msgpack", so that
// applications using JSON (and the browser chat page) never load a
// MessagePack library.

export { default as Socket } from "./socket.js";
export { default as Channel } from "./channel.js";
export { default as Push } from "./push.js";
export { default as Presence } from "./presence.js";
export { default as Timer, jitteredBackoff } from "./timer.js";
export { JsonSerializer, JsonSerializerV1 } from "./serializer.js";
export {
  CHANNEL_EVENTS,
  CHANNEL_STATES,
  DEFAULT_VSN,
  PRESENCE_EVENTS,
  SEND_BUFFER_FULL,
  SOCKET_STATES,
} from "./constants.js";
