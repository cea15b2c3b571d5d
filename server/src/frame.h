/* frame.h -- encoded, refcounted outbound WebSocket frames.
 *
 * A frame holds the complete bytes of one server-to-client WebSocket frame
 * (header included; server frames are unmasked, so the bytes are the same for
 * every recipient). A broadcast is encoded once per serializer in use and the
 * one frame is shared by every subscriber's queue; each queue holds a
 * reference, and the frame is freed when the last reference goes. */
#ifndef PARLEY_FRAME_H
#define PARLEY_FRAME_H

#include <parley/protocol.h>
#include <stdint.h>

typedef struct frame {
    uint32_t refs;
    uint32_t len;       /* bytes in data */
    uint8_t data[];
} frame_t;

/* Encodes [join_ref, ref, topic, event, payload] for `format` and wraps it in
 * a WebSocket frame (text for JSON, binary for MessagePack). Returns a frame
 * with one reference, or NULL if out of memory. */
frame_t *frame_encode(proto_format_t format, const char *join_ref, const char *ref,
                      const char *topic, const char *event, const json_t *payload);

/* The same with a payload that is already JSON text (V1 and V2 only). */
frame_t *frame_encode_json(proto_format_t format, const char *join_ref, const char *ref,
                           const char *topic, const char *event, const char *payload_json,
                           size_t len);

/* The same for a phx_reply with {"status": status, "response": response}. */
frame_t *frame_encode_reply(proto_format_t format, const char *join_ref, const char *ref,
                            const char *topic, const char *status, const json_t *response);

void frame_free_(frame_t *f); /* use frame_unref() */

static inline frame_t *frame_ref(frame_t *f) {
    f->refs++;
    return f;
}

static inline void frame_unref(frame_t *f) {
    if (f && --f->refs == 0)
        frame_free_(f);
}

#endif
