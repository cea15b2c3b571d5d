/* v2_json.c -- fuzz target: one client message in Phoenix serializer V2, the
 * JSON array [join_ref, ref, topic, event, payload], as a text frame brings
 * it; decoded with the default limits and checked by fuzz_codec() (codec.c). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_codec(PROTO_V2_JSON, data, size);
}
