/* fuzz_decode.c -- libFuzzer driver for the codec. The first input byte picks
 * the serializer, the rest is one client message. Whatever decodes must
 * re-encode in every format and decode back to an equal payload; nothing may
 * crash, leak or read out of bounds.
 *
 * Build with clang: cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang
 * -DPARLEY_FUZZ=ON && cmake --build build-fuzz --target fuzz_decode, then run
 * build-fuzz/protocol/fuzz_decode protocol/fuzz/corpus. */
#include <parley/protocol.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    proto_format_t format = (proto_format_t)(data[0] % PROTO_NFORMATS);
    proto_msg_t m;
    int rc = proto_decode(format, data + 1, size - 1, NULL, &m);
    if (rc != PROTO_OK) {
        if (rc == PROTO_ETOPIC || rc == PROTO_EEVENT || rc == PROTO_EPAYLOAD)
            proto_msg_free(&m);
        return 0;
    }
    for (int f = 0; f < PROTO_NFORMATS; f++) {
        proto_buf_t out;
        proto_buf_init(&out);
        if (proto_encode((proto_format_t)f, &out, m.join_ref, m.ref, m.topic, m.event,
                         m.payload) == 0) {
            proto_msg_t back;
            int rc2 = proto_decode((proto_format_t)f, out.data, out.len, NULL, &back);
            /* Re-encoding may grow a message past the size limit (JSON
             * escapes); anything else must come back equal. */
            if (rc2 == PROTO_OK) {
                if (!json_equal(back.payload, m.payload))
                    abort();
                proto_msg_free(&back);
            } else if (rc2 != PROTO_ETOOBIG) {
                abort();
            }
        }
        proto_buf_free(&out);
    }
    proto_msg_free(&m);
    return 0;
}
