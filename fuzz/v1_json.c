/* v1_json.c -- fuzz target: one client message in Phoenix serializer V1, a
 * JSON object {"topic","event","payload","ref"} ("join_ref" optional), as a
 * text frame brings it; decoded with the default limits and checked by
 * fuzz_codec() (codec.c). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_codec(PROTO_V1_JSON, data, size);
}
