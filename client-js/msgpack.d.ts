// TypeScript declarations for parley-client/msgpack (src/msgpack.js): the
// MessagePack serializer, a separate entry point so that JSON users never
// load @msgpack/msgpack.

import type { Serializer } from "./index.js";

/** The five-element array of serializer V2 in binary frames; adds
 * serializer=msgpack to the connect URL and uses binaryType "arraybuffer". */
export const MsgpackSerializer: Serializer;
export default MsgpackSerializer;
