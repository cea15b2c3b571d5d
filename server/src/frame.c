/* frame.c -- encoding into refcounted WebSocket frames. One scratch buffer,
 * reused for every encode (the server has one thread), keeps the cost at one
 * allocation per frame. */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

/* Room in front of the encoded message for the largest WebSocket header. */
#define HEADROOM 10

static proto_buf_t scratch;

void frame_free_(frame_t *f) {
    free(f);
}

/* Wraps scratch.data[HEADROOM..] in a frame header and copies it out. */
static frame_t *finish(proto_format_t format) {
    size_t len = scratch.len - HEADROOM;
    uint8_t hdr[HEADROOM];
    size_t h = 0;
    hdr[h++] = 0x80 | (format == PROTO_MSGPACK ? 0x2 : 0x1); /* FIN + opcode */
    if (len < 126) {
        hdr[h++] = (uint8_t)len;
    } else if (len <= 0xffff) {
        hdr[h++] = 126;
        hdr[h++] = (uint8_t)(len >> 8);
        hdr[h++] = (uint8_t)len;
    } else {
        hdr[h++] = 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    frame_t *f = malloc(sizeof *f + h + len);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = (uint32_t)(h + len);
    memcpy(f->data, hdr, h);
    memcpy(f->data + h, scratch.data + HEADROOM, len);
    return f;
}

static int begin(void) {
    scratch.len = 0;
    if (proto_buf_reserve(&scratch, HEADROOM))
        return -1;
    scratch.len = HEADROOM;
    return 0;
}

frame_t *frame_encode(proto_format_t format, const char *join_ref, const char *ref,
                      const char *topic, const char *event, const json_t *payload) {
    if (begin() || proto_encode(format, &scratch, join_ref, ref, topic, event, payload))
        return NULL;
    return finish(format);
}

frame_t *frame_encode_json(proto_format_t format, const char *join_ref, const char *ref,
                           const char *topic, const char *event, const char *payload_json,
                           size_t len) {
    if (begin() || proto_encode_json_payload(format, &scratch, join_ref, ref, topic, event,
                                             payload_json, len))
        return NULL;
    return finish(format);
}

frame_t *frame_encode_reply(proto_format_t format, const char *join_ref, const char *ref,
                            const char *topic, const char *status, const json_t *response) {
    if (begin() ||
        proto_encode_reply(format, &scratch, join_ref, ref, topic, status, response))
        return NULL;
    return finish(format);
}
