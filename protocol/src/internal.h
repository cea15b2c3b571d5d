/* internal.h -- declarations shared by the codec's source files only. */
#ifndef PARLEY_PROTOCOL_INTERNAL_H
#define PARLEY_PROTOCOL_INTERNAL_H

#include "parley/protocol.h"

/* json.c */
int proto_json_parse(const uint8_t *buf, size_t len, int max_depth, json_t **out);
int proto_json_append_string(proto_buf_t *out, const char *s);
int proto_json_append_value(proto_buf_t *out, const json_t *v);

/* msgpack.c */
int proto_msgpack_parse(const uint8_t *buf, size_t len, int max_depth, json_t **out);
int proto_msgpack_encode(proto_buf_t *out, const char *join_ref, const char *ref,
                         const char *topic, const char *event, const json_t *payload);
/* Both leave out as it was when they fail (PROTO_ENOMEM). A phx_reply's
 * payload is {"status": status, "response": response}. */
int proto_msgpack_encode_reply(proto_buf_t *out, const char *join_ref, const char *ref,
                               const char *topic, const char *status, const json_t *response);

#endif
