/* buf.c -- the growable byte buffer the encoders append to, and the
 * assembler that joins WebSocket fragments into one message under a limit. */
#include <stdlib.h>
#include <string.h>

#include "parley/protocol.h"

void proto_buf_init(proto_buf_t *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void proto_buf_free(proto_buf_t *b) {
    free(b->data);
    proto_buf_init(b);
}

/* Makes room for `extra` more bytes. Returns 0 or PROTO_ENOMEM. */
int proto_buf_reserve(proto_buf_t *b, size_t extra) {
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return PROTO_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return PROTO_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int proto_buf_append(proto_buf_t *b, const void *data, size_t len) {
    if (len == 0)
        return 0;
    int rc = proto_buf_reserve(b, len);
    if (rc)
        return rc;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

void proto_assembler_init(proto_assembler_t *a, size_t limit) {
    proto_buf_init(&a->buf);
    a->limit = limit ? limit : PROTO_DEFAULT_MAX_MESSAGE;
    a->overflow = 0;
}

/* Appends one fragment. Returns 0, PROTO_ETOOBIG once the message passes the
 * limit (nothing more is stored until reset), or PROTO_ENOMEM. */
int proto_assembler_feed(proto_assembler_t *a, const void *data, size_t len) {
    if (a->overflow)
        return PROTO_ETOOBIG;
    if (len > a->limit - a->buf.len) {
        a->overflow = 1;
        proto_buf_free(&a->buf);
        return PROTO_ETOOBIG;
    }
    return proto_buf_append(&a->buf, data, len);
}

void proto_assembler_reset(proto_assembler_t *a) {
    proto_buf_free(&a->buf);
    a->overflow = 0;
}

void proto_assembler_free(proto_assembler_t *a) {
    proto_assembler_reset(a);
}
