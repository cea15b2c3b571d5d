/* head.c -- fuzz target: a client's HTTP request head as the listener reads
 * it before lws when tokens are in use (server/src/head.c). The input is
 * the head. It is rewritten into outputs of exactly the listener's size
 * (2,048 bytes), of a size the input's first byte picks, and of one always
 * large enough, each a heap block of exactly that size so that a write
 * past it is a finding. Besides that:
 *   - a rewrite writes within its output and fails only where it would not
 *     fit; it is the same whatever the output's size when it fits;
 *   - the token handed back lies within the input's protocol header;
 *   - the rewritten head keeps everything before and after that header's
 *     value, and has no authToken entry left to take;
 *   - head_bearer, on the whole input taken as a header value (as the gate
 *     reads one), finds an entry within it, after the prefix, or none; on
 *     the header's value it finds the token the rewrite handed back. */
#include <string.h>

#include "fuzz.h"
#include "head.h"

#define LISTENER_OUT 2048

/* The rewrite of in[0..n) into a heap block of exactly cap bytes; *copy
 * gets a copy of what was written (freed by the caller) when it worked. */
static long rewrite(const char *in, size_t n, size_t cap, char **copy, const char **bearer,
                    size_t *blen) {
    char *out = malloc(cap ? cap : 1);
    FUZZ_CHECK(out);
    long r = head_take_bearer(in, n, out, cap, bearer, blen);
    FUZZ_CHECK(r >= -1 && (r < 0 || (size_t)r <= cap));
    FUZZ_CHECK(r > 0 ? *bearer != NULL && *blen > 0 : 1);
    *copy = NULL;
    if (r > 0) {
        *copy = malloc((size_t)r);
        FUZZ_CHECK(*copy);
        memcpy(*copy, out, (size_t)r);
    }
    free(out);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 16384)
        return 0;
    const char *in = (const char *)data;
    /* The ", " between kept entries can make a head longer, never by more
     * than one byte per entry, and an entry takes at least two. */
    size_t caps[3] = {LISTENER_OUT, size ? (size_t)data[0] * 8 : 0, 2 * size + 2};
    char *whole = NULL;
    const char *bearer = NULL;
    size_t blen = 0;
    long full = rewrite(in, size, caps[2], &whole, &bearer, &blen);
    FUZZ_CHECK(full >= 0);
    for (int i = 0; i < 2; i++) {
        char *part;
        const char *b;
        size_t bl;
        long r = rewrite(in, size, caps[i], &part, &b, &bl);
        if (full == 0)
            FUZZ_CHECK(r == 0);
        else if ((size_t)full <= caps[i])
            FUZZ_CHECK(r == full && memcmp(part, whole, (size_t)full) == 0 && b == bearer &&
                       bl == blen);
        else
            FUZZ_CHECK(r == -1);
        free(part);
    }
    /* The whole input as a header value, as the gate reads one. */
    size_t vl;
    const char *v = head_bearer(in, size, &vl);
    FUZZ_CHECK(v ? v >= in + strlen(HEAD_BEARER_PREFIX) && vl > 0 && v + vl <= in + size &&
                       memcmp(v - strlen(HEAD_BEARER_PREFIX), HEAD_BEARER_PREFIX,
                              strlen(HEAD_BEARER_PREFIX)) == 0
                 : vl == 0);
    if (full > 0) {
        size_t vs, ve;
        FUZZ_CHECK(head_find(in, size, "Sec-WebSocket-Protocol", &vs, &ve));
        FUZZ_CHECK(bearer >= in + vs && bearer + blen <= in + ve);
        FUZZ_CHECK(head_bearer(in + vs, ve - vs, &vl) == bearer && vl == blen);
        FUZZ_CHECK(memcmp(whole, in, vs) == 0);
        FUZZ_CHECK((size_t)full >= vs + (size - ve) &&
                   memcmp(whole + full - (long)(size - ve), in + ve, size - ve) == 0);
        char *again;
        const char *b;
        size_t bl;
        FUZZ_CHECK(rewrite(whole, (size_t)full, 2 * (size_t)full + 2, &again, &b, &bl) == 0);
    }
    free(whole);
    return 0;
}
