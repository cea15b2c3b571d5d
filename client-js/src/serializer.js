// The JSON serializers: how a message {join_ref, ref, topic, event, payload}
// becomes a WebSocket text frame and back.
//
// A serializer is a plain object the Socket is given as its `serializer`
// option:
//
//   name        a label for logs ("json", "msgpack", ...)
//   params      extra connect parameters that select it on the server; they
//               override the socket's own params and the default vsn
//   binaryType  the WebSocket binaryType it needs, if any
//   encode(msg, callback)  calls back with a string or bytes to send
//   decode(raw, callback)  calls back with the message in `raw`
//
// The callback style (rather than a return value) is phoenix.js' and leaves
// room for a serializer that works asynchronously.

const utf8 = new TextDecoder();

/** The frame as text: text frames arrive as strings, but a transport may hand
 * over bytes (e.g. `ws` with binaryType "nodebuffer"). */
function asText(raw) {
  if (typeof raw === "string") return raw;
  if (raw instanceof ArrayBuffer || ArrayBuffer.isView(raw)) return utf8.decode(raw);
  throw new TypeError(`cannot decode a ${typeof raw} frame as JSON`);
}

/**
 * Phoenix serializer V2: each message is the JSON array
 * `[join_ref, ref, topic, event, payload]`. The default.
 */
export const JsonSerializer = Object.freeze({
  name: "json",
  params: Object.freeze({}),
  binaryType: undefined,

  /** @param {{join_ref, ref, topic, event, payload}} msg */
  encode(msg, callback) {
    callback(JSON.stringify([msg.join_ref, msg.ref, msg.topic, msg.event, msg.payload]));
  },

  /** @param {string | ArrayBuffer | ArrayBufferView} raw */
  decode(raw, callback) {
    const [join_ref, ref, topic, event, payload] = JSON.parse(asText(raw));
    callback({ join_ref, ref, topic, event, payload });
  },
});

/**
 * Phoenix serializer V1: each message is a JSON object
 * `{topic, event, payload, ref, join_ref}`. Servers send no `join_ref` in V1,
 * so a V1 client cannot tell replies of an earlier join from those of the
 * current one; use it only for servers that speak nothing else.
 */
export const JsonSerializerV1 = Object.freeze({
  name: "json-v1",
  params: Object.freeze({ vsn: "1.0.0" }),
  binaryType: undefined,

  /** @param {{join_ref, ref, topic, event, payload}} msg */
  encode(msg, callback) {
    const { topic, event, payload, ref, join_ref } = msg;
    callback(JSON.stringify({ topic, event, payload, ref, join_ref }));
  },

  /** @param {string | ArrayBuffer | ArrayBufferView} raw */
  decode(raw, callback) {
    const { topic, event, payload, ref = null, join_ref = null } = JSON.parse(asText(raw));
    callback({ join_ref, ref, topic, event, payload });
  },
});
