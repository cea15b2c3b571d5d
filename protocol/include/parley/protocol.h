/* protocol.h -- the Phoenix Channels wire codec shared by the server and the
 * load generator.
 *
 * Pure code: no sockets, no clocks, no globals. A caller hands in the bytes of
 * one complete WebSocket message (see proto_assembler_* for reassembling
 * fragments) and gets back a decoded proto_msg_t, or hands in the five fields
 * of a message and gets back its encoding.
 *
 * Three serializers, chosen per connection at connect time:
 *   PROTO_V1_JSON   Phoenix serializer V1: {"topic","event","payload","ref"}
 *   PROTO_V2_JSON   Phoenix serializer V2: [join_ref, ref, topic, event, payload]
 *   PROTO_MSGPACK   the V2 five-element array as a MessagePack array, sent in
 *                   binary WebSocket frames
 *
 * Payloads are held as jansson values (json_t). MessagePack payloads are
 * converted to that model: maps need string keys, and bin/ext types are
 * refused, so every payload can be re-encoded for every serializer.
 *
 * Error contract: functions return 0 or a positive count on success and a
 * negative PROTO_E* code on failure; proto_strerror() names the code.
 */
#ifndef PARLEY_PROTOCOL_H
#define PARLEY_PROTOCOL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum proto_format {
    PROTO_V1_JSON = 0,
    PROTO_V2_JSON = 1,
    PROTO_MSGPACK = 2,
} proto_format_t;
#define PROTO_NFORMATS 3

/* Decode and encode errors. Values are stable: tests and logs use them. */
enum {
    PROTO_OK = 0,
    PROTO_ENOMEM = -1,     /* allocation failed */
    PROTO_ETOOBIG = -2,    /* message larger than limits.max_message */
    PROTO_EUTF8 = -3,      /* text is not valid UTF-8 */
    PROTO_EDEPTH = -4,     /* nesting deeper than limits.max_depth */
    PROTO_ESYNTAX = -5,    /* not parseable JSON / MessagePack */
    PROTO_ESHAPE = -6,     /* parsed, but not a Phoenix message (array/object shape) */
    PROTO_EFIELD = -7,     /* join_ref/ref/topic/event of the wrong type */
    PROTO_ETOPIC = -8,     /* topic empty or longer than limits.max_topic; msg is filled */
    PROTO_EEVENT = -9,     /* event empty or longer than limits.max_event; msg is filled */
    PROTO_EPAYLOAD = -10,  /* payload is not an object / map; msg is filled */
    PROTO_ETYPE = -11,     /* MessagePack type with no JSON equivalent (bin, ext, non-string key) */
    PROTO_EVSN = -12,      /* unsupported vsn or serializer */
};

/* Limits applied while decoding. Zero fields take the defaults below. */
typedef struct proto_limits {
    size_t max_message;   /* bytes in one complete message */
    size_t max_topic;     /* bytes in a topic */
    size_t max_event;     /* bytes in an event name */
    int max_depth;        /* nesting of arrays/objects, the envelope included;
                             MessagePack is capped at 32 (msgpack-c's stack) */
} proto_limits_t;

#define PROTO_DEFAULT_MAX_MESSAGE (64 * 1024)
#define PROTO_DEFAULT_MAX_TOPIC 256
#define PROTO_DEFAULT_MAX_EVENT 256
#define PROTO_DEFAULT_MAX_DEPTH 32

/* One decoded client message. The string fields point into storage owned by
 * the message and stay valid until proto_msg_free(). join_ref and ref are
 * NULL when the client sent null (or, for V1, left them out). */
typedef struct proto_msg {
    const char *join_ref;
    const char *ref;
    const char *topic;
    const char *event;
    size_t topic_len;
    size_t event_len;
    json_t *payload;      /* borrowed from root; never NULL once decoded */
    json_t *root;         /* owned: the decoded envelope */
} proto_msg_t;

/* Decodes one complete message in `format` from buf[0..len). On success, and
 * on PROTO_ETOPIC, PROTO_EEVENT and PROTO_EPAYLOAD (so that the caller can
 * still address an error reply), *msg is filled and must be released with
 * proto_msg_free(). On every other error *msg is left empty. */
int proto_decode(proto_format_t format, const uint8_t *buf, size_t len,
                 const proto_limits_t *limits, proto_msg_t *msg);
void proto_msg_free(proto_msg_t *msg);

/* A growable byte buffer. Encoders append to it. */
typedef struct proto_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} proto_buf_t;

void proto_buf_init(proto_buf_t *b);
void proto_buf_free(proto_buf_t *b);
int proto_buf_reserve(proto_buf_t *b, size_t extra);
int proto_buf_append(proto_buf_t *b, const void *data, size_t len);

/* Encodes the server message [join_ref, ref, topic, event, payload] in
 * `format`, appending to out. join_ref and ref may be NULL (encoded as null;
 * V1 has no join_ref on the wire). payload is not consumed. */
int proto_encode(proto_format_t format, proto_buf_t *out, const char *join_ref,
                 const char *ref, const char *topic, const char *event,
                 const json_t *payload);

/* Encodes a message whose payload is already JSON text (payload_json, len
 * bytes, one JSON object). V1 and V2 only; PROTO_EVSN for MessagePack. Lets
 * a caller that builds a large payload as text skip the jansson tree. */
int proto_encode_json_payload(proto_format_t format, proto_buf_t *out, const char *join_ref,
                              const char *ref, const char *topic, const char *event,
                              const char *payload_json, size_t len);

/* Appends s as a JSON string literal, and v as compact JSON. */
int proto_buf_append_json_string(proto_buf_t *out, const char *s);
int proto_buf_append_json_value(proto_buf_t *out, const json_t *v);

/* Encodes a phx_reply: payload {"status": status, "response": response}. */
int proto_encode_reply(proto_format_t format, proto_buf_t *out, const char *join_ref,
                       const char *ref, const char *topic, const char *status,
                       const json_t *response);

/* Picks the serializer from the connect parameters: vsn (Phoenix semantics:
 * absent means "1.0.0"; 1.0.x is V1, 2.0.x is V2) and serializer ("json", the
 * default, or "msgpack", which needs vsn 2.0.x). Either may be NULL. */
int proto_negotiate(const char *vsn, const char *serializer, proto_format_t *format);

/* Returns 1 if buf[0..len) is valid UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF), else 0. */
int proto_utf8_valid(const uint8_t *buf, size_t len);

/* Name of a PROTO_E* code, e.g. "invalid UTF-8". */
const char *proto_strerror(int err);
/* Name of a format: "v1-json", "v2-json", "msgpack". */
const char *proto_format_name(proto_format_t format);

/* Reassembles one WebSocket message from its fragments, up to a byte limit.
 * Feed each fragment with proto_assembler_feed(); it returns PROTO_ETOOBIG
 * once the total passes the limit (the assembler then discards input until
 * reset). */
typedef struct proto_assembler {
    proto_buf_t buf;
    size_t limit;
    int overflow;
} proto_assembler_t;

void proto_assembler_init(proto_assembler_t *a, size_t limit);
int proto_assembler_feed(proto_assembler_t *a, const void *data, size_t len);
void proto_assembler_reset(proto_assembler_t *a);   /* drops the bytes, keeps nothing allocated */
void proto_assembler_free(proto_assembler_t *a);

#ifdef __cplusplus
}
#endif
#endif
