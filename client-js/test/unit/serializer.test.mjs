// The JSON (V2 and V1) and MessagePack serializers over the shared protocol
// vectors (protocol/vectors/, see the README there): every server message
// in encode.json decodes to its fields and, for V2 and MessagePack, encodes to
// exactly the server's bytes; every valid message in decode.json decodes to
// its fields. The error cases describe the server's strict decoder, which a
// client does not need to be.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { JsonSerializer, JsonSerializerV1 } from "../../src/index.js";
import { MsgpackSerializer } from "../../src/msgpack.js";

const vectors = (name) =>
  JSON.parse(readFileSync(new URL(`../../../protocol/vectors/${name}`, import.meta.url), "utf8"));

const SERIALIZERS = { "v2-json": JsonSerializer, "v1-json": JsonSerializerV1, msgpack: MsgpackSerializer };

/** Runs the callback-style serializer call and returns what it called back with. */
function call(serializer, method, arg) {
  let result;
  serializer[method](arg, (value) => (result = value));
  return result;
}

const hex = (bytes) => Buffer.from(bytes).toString("hex");

/** The frame as a WebSocket would deliver it: a string for text frames, an
 * ArrayBuffer for binary ones (binaryType "arraybuffer"). */
function frameOf(testCase) {
  if (testCase.input !== undefined) return testCase.input;
  const bytes = Buffer.from(testCase.input_hex, "hex");
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

const fields = ({ join_ref, ref, topic, event, payload }) => ({ join_ref, ref, topic, event, payload });

test("decode.json: every valid message decodes to its fields", () => {
  const cases = vectors("decode.json").filter((c) => c.expect.error === undefined);
  assert.ok(cases.length >= 40, `found ${cases.length} success cases`);
  const formats = new Set();
  for (const c of cases) {
    formats.add(c.format);
    const decoded = call(SERIALIZERS[c.format], "decode", frameOf(c));
    assert.deepStrictEqual(fields(decoded), c.expect, c.name);
  }
  assert.deepEqual([...formats].sort(), ["msgpack", "v1-json", "v2-json"]);
});

test("encode.json: V2 JSON and MessagePack encode to exactly the server's bytes", () => {
  const cases = vectors("encode.json").filter((c) => c.format !== "v1-json");
  assert.ok(cases.length >= 20, `found ${cases.length} cases`);
  for (const c of cases) {
    const encoded = call(SERIALIZERS[c.format], "encode", fields(c));
    if (c.format === "msgpack") {
      assert.ok(encoded instanceof Uint8Array, `${c.name}: binary`);
      assert.equal(hex(encoded), c.expect_hex, c.name);
    } else {
      assert.equal(typeof encoded, "string", `${c.name}: text`);
      assert.equal(encoded, c.expect, c.name);
    }
  }
});

test("encode.json: the server's frames decode to the same fields (V1 frames carry no join_ref)", () => {
  for (const c of vectors("encode.json")) {
    const frame = c.format === "msgpack" ? frameOf({ input_hex: c.expect_hex }) : c.expect;
    const decoded = call(SERIALIZERS[c.format], "decode", frame);
    const expected = fields(c);
    if (c.format === "v1-json") expected.join_ref = null;
    assert.deepStrictEqual(fields(decoded), expected, c.name);
  }
});

test("V1 encodes a JSON object with the join_ref, which decodes back to the same message", () => {
  const msg = { join_ref: "1", ref: "2", topic: "room:lobby", event: "new_msg", payload: { body: "hi" } };
  const encoded = call(JsonSerializerV1, "encode", msg);
  assert.deepEqual(JSON.parse(encoded), { topic: "room:lobby", event: "new_msg", payload: { body: "hi" }, ref: "2", join_ref: "1" });
  assert.deepStrictEqual(call(JsonSerializerV1, "decode", encoded), msg);
});

test("MessagePack decodes a Buffer or a view into a larger buffer as well as an ArrayBuffer", () => {
  const msg = { join_ref: null, ref: "5", topic: "phoenix", event: "phx_reply", payload: { status: "ok", response: {} } };
  const bytes = call(MsgpackSerializer, "encode", msg);
  const padded = new Uint8Array(bytes.length + 8);
  padded.set(bytes, 4);
  assert.deepStrictEqual(call(MsgpackSerializer, "decode", padded.subarray(4, 4 + bytes.length)), msg);
  assert.deepStrictEqual(call(MsgpackSerializer, "decode", Buffer.from(bytes)), msg);
  assert.throws(() => call(MsgpackSerializer, "decode", new Uint8Array([0x93, 1, 2, 3])), /five-element/);
});

test("each serializer names the connect params that select it", () => {
  assert.deepEqual({ ...JsonSerializer.params }, {});
  assert.deepEqual({ ...JsonSerializerV1.params }, { vsn: "1.0.0" });
  assert.deepEqual({ ...MsgpackSerializer.params }, { serializer: "msgpack" });
  assert.equal(MsgpackSerializer.binaryType, "arraybuffer");
});
