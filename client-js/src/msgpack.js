// The MessagePack serializer: the same five-element array as serializer V2,
// `[join_ref, ref, topic, event, payload]`, in binary frames. Selected on the
// server by the connect parameters `vsn=2.0.0&serializer=msgpack`.
//
// This file is its own entry point ("parley-client/msgpack") and is not
// imported by index.js, so that only applications that choose MessagePack
// load @msgpack/msgpack; the browser chat page never needs it.
//
// Parley refuses MessagePack values with no JSON equivalent (bin, ext, non-
// string map keys, NaN, infinities) because it re-encodes broadcasts for JSON
// subscribers: payloads should hold what JSON can.

import { Decoder, Encoder } from "@msgpack/msgpack";

// One encoder and one decoder serve every socket: they keep their working
// buffers between messages, and encode() returns a copy of its output, so
// nothing is shared between frames.
const encoder = new Encoder();
const decoder = new Decoder();

/** The frame as bytes: ArrayBuffer with binaryType "arraybuffer", a Buffer
 * (a Uint8Array) from `ws` with its default binaryType. */
function asBytes(raw) {
  if (raw instanceof ArrayBuffer) return new Uint8Array(raw);
  if (ArrayBuffer.isView(raw)) return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  throw new TypeError(`cannot decode a ${typeof raw} frame as MessagePack`);
}

/** The MessagePack serializer for `new Socket(url, {serializer: MsgpackSerializer})`. */
export const MsgpackSerializer = Object.freeze({
  name: "msgpack",
  params: Object.freeze({ serializer: "msgpack" }),
  binaryType: "arraybuffer",

  /** @param {{join_ref, ref, topic, event, payload}} msg */
  encode(msg, callback) {
    callback(encoder.encode([msg.join_ref, msg.ref, msg.topic, msg.event, msg.payload]));
  },

  /** @param {ArrayBuffer | ArrayBufferView} raw */
  decode(raw, callback) {
    const message = decoder.decode(asBytes(raw));
    if (!Array.isArray(message) || message.length !== 5) {
      throw new TypeError("a MessagePack frame must hold a five-element array");
    }
    const [join_ref, ref, topic, event, payload] = message;
    callback({ join_ref, ref, topic, event, payload });
  },
});

export default MsgpackSerializer;
