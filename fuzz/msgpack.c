/* msgpack.c -- fuzz target: one client message as the MessagePack
 * five-element array [join_ref, ref, topic, event, payload], as a binary
 * frame brings it; decoded with the default limits and checked by
 * fuzz_codec() (codec.c). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_codec(PROTO_MSGPACK, data, size);
}
