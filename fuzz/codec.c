/* codec.c -- the check shared by the client-message targets (v1_json,
 * v2_json, msgpack): decode one message, then hold the codec to its
 * contract.
 *
 *  - Decoding never fails for want of memory on an input this small (that
 *    would be a pre-scan letting through what the parser then refuses).
 *  - On an error the message is left empty, except for the three errors that
 *    keep it addressable (topic, event, payload), where topic and event are
 *    NUL-free strings of the lengths reported.
 *  - A message that decodes re-encodes in every format, and decodes back
 *    (from an exact-size copy) to the same topic, event, refs and payload;
 *    encoding what came back gives the same bytes again.
 *  - A phx_reply with that payload as its response (proto_encode_reply,
 *    which writes JSON replies itself) is byte for byte what proto_encode
 *    makes of {"status": "ok", "response": payload}. (Statuses are the
 *    server's own words, "ok" and "error"; a status with control
 *    characters would be escaped differently, \u000c for jansson's \f,
 *    and still mean the same.) */
#include <string.h>

#include "fuzz.h"

static int same_opt(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Decodes `len` bytes from an exact-size heap copy. */
static int decode_copy(proto_format_t f, const uint8_t *buf, size_t len,
                       const proto_limits_t *lim, proto_msg_t *m) {
    uint8_t *copy = malloc(len ? len : 1);
    FUZZ_CHECK(copy);
    memcpy(copy, buf, len);
    int rc = proto_decode(f, copy, len, lim, m);
    free(copy);
    return rc;
}

static void round_trip(const proto_msg_t *m, proto_format_t f) {
    proto_buf_t out, again;
    proto_buf_init(&out);
    proto_buf_init(&again);
    FUZZ_CHECK(proto_encode(f, &out, m->join_ref, m->ref, m->topic, m->event, m->payload) == 0);
    /* Re-encoding may lengthen a message (JSON escapes), so the size limit
     * is the encoding's own; the other limits stay as they were. */
    proto_limits_t lim = {.max_message = out.len + 1};
    proto_msg_t back;
    int rc = decode_copy(f, out.data, out.len, &lim, &back);
    if (rc != PROTO_OK)
        fprintf(stderr, "re-decoding as %s: %s\n", proto_format_name(f), proto_strerror(rc));
    FUZZ_CHECK(rc == PROTO_OK);
    FUZZ_CHECK(strcmp(back.topic, m->topic) == 0 && back.topic_len == m->topic_len);
    FUZZ_CHECK(strcmp(back.event, m->event) == 0 && back.event_len == m->event_len);
    FUZZ_CHECK(same_opt(back.ref, m->ref));
    /* V1 carries no join_ref on the wire. */
    FUZZ_CHECK(f == PROTO_V1_JSON ? back.join_ref == NULL : same_opt(back.join_ref, m->join_ref));
    FUZZ_CHECK(json_equal(back.payload, m->payload));
    FUZZ_CHECK(proto_encode(f, &again, back.join_ref, back.ref, back.topic, back.event,
                            back.payload) == 0);
    FUZZ_CHECK(again.len == out.len && memcmp(again.data, out.data, out.len) == 0);
    proto_msg_free(&back);
    proto_buf_free(&again);
    proto_buf_free(&out);
}

static void reply_matches(const proto_msg_t *m, proto_format_t f) {
    json_t *packed = json_pack("{s:s, s:O}", "status", "ok", "response", m->payload);
    FUZZ_CHECK(packed);
    proto_buf_t reply, plain;
    proto_buf_init(&reply);
    proto_buf_init(&plain);
    FUZZ_CHECK(proto_encode_reply(f, &reply, m->join_ref, m->ref, m->topic, "ok", m->payload) == 0);
    FUZZ_CHECK(proto_encode(f, &plain, m->join_ref, m->ref, m->topic, "phx_reply", packed) == 0);
    FUZZ_CHECK(reply.len == plain.len && memcmp(reply.data, plain.data, plain.len) == 0);
    proto_buf_free(&plain);
    proto_buf_free(&reply);
    json_decref(packed);
}

int fuzz_codec(proto_format_t format, const uint8_t *data, size_t size) {
    proto_msg_t m;
    int rc = proto_decode(format, data, size, NULL, &m);
    FUZZ_CHECK(rc <= 0 && rc > PROTO_EVSN && rc != PROTO_ENOMEM);
    if (rc != PROTO_OK && rc != PROTO_ETOPIC && rc != PROTO_EEVENT && rc != PROTO_EPAYLOAD) {
        FUZZ_CHECK(!m.root && !m.payload && !m.topic && !m.event && !m.join_ref && !m.ref);
        return 0;
    }
    FUZZ_CHECK(m.root && m.payload && m.topic && m.event);
    FUZZ_CHECK(strlen(m.topic) == m.topic_len && strlen(m.event) == m.event_len);
    if (rc == PROTO_OK) {
        FUZZ_CHECK(json_is_object(m.payload));
        FUZZ_CHECK(m.topic_len > 0 && m.topic_len <= PROTO_DEFAULT_MAX_TOPIC);
        FUZZ_CHECK(m.event_len > 0 && m.event_len <= PROTO_DEFAULT_MAX_EVENT);
        for (int f = 0; f < PROTO_NFORMATS; f++) {
            round_trip(&m, (proto_format_t)f);
            reply_matches(&m, (proto_format_t)f);
        }
    }
    proto_msg_free(&m);
    return 0;
}
