/* envelope.c -- cluster envelopes: the codec and what presence envelopes do
 * to the CRDT (envelope.h). */
#include "envelope.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* The kinds' letters on the wire, by envelope_kind_t. */
static const char *const kind_names[] = {
    [ENVELOPE_OTHER] = NULL,         [ENVELOPE_BROADCAST] = "b",
    [ENVELOPE_DELTA] = "d",          [ENVELOPE_HEARTBEAT] = "h",
    [ENVELOPE_LEAVING] = "x",        [ENVELOPE_STATE_REQUEST] = "r",
    [ENVELOPE_STATE] = "s",          [ENVELOPE_BAN] = "p",
};
#define NKINDS (sizeof kind_names / sizeof *kind_names)

int envelope_decode(const uint8_t *buf, size_t len, envelope_t *env) {
    proto_limits_t lim = {.max_message = ENVELOPE_MAX, .max_topic = ENVELOPE_MAX_TOPIC};
    memset(env, 0, sizeof *env);
    int rc = proto_decode(PROTO_MSGPACK, buf, len, &lim, &env->msg);
    if (rc == PROTO_OK && (!env->msg.join_ref || !env->msg.ref))
        rc = PROTO_EFIELD;
    if (rc != PROTO_OK) {
        if (rc == PROTO_EFIELD || rc == PROTO_ETOPIC || rc == PROTO_EEVENT ||
            rc == PROTO_EPAYLOAD)
            proto_msg_free(&env->msg);
        memset(env, 0, sizeof *env);
        return rc;
    }
    env->origin = env->msg.join_ref;
    env->kind = ENVELOPE_OTHER;
    for (size_t k = 1; k < NKINDS; k++)
        if (strcmp(env->msg.ref, kind_names[k]) == 0)
            env->kind = (envelope_kind_t)k;
    env->topic = env->msg.topic;
    env->topic_len = env->msg.topic_len;
    env->event = env->msg.event;
    env->payload = env->msg.payload;
    return 0;
}

void envelope_free(envelope_t *env) {
    proto_msg_free(&env->msg);
    memset(env, 0, sizeof *env);
}

int envelope_encode(proto_buf_t *out, const char *origin, envelope_kind_t kind,
                    const char *topic, const char *event, const json_t *payload) {
    if ((size_t)kind >= NKINDS || !kind_names[kind])
        return PROTO_EFIELD;
    return proto_encode(PROTO_MSGPACK, out, origin, kind_names[kind], topic, event, payload);
}

json_t *envelope_ban_payload(const envelope_ban_t *b) {
    static const char hex[] = "0123456789abcdef";
    char key[2 * ENVELOPE_BAN_KEY + 1];
    for (size_t i = 0; i < ENVELOPE_BAN_KEY; i++) {
        key[2 * i] = hex[b->key[i] >> 4];
        key[2 * i + 1] = hex[b->key[i] & 15];
    }
    key[2 * ENVELOPE_BAN_KEY] = '\0';
    return json_pack("{s:s, s:I, s:f}", "key", key, "offences", (json_int_t)b->offences, "ban_s",
                     b->ban_s);
}

static int hex_digit(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int envelope_ban_read(const json_t *payload, envelope_ban_t *b) {
    const json_t *key = json_object_get(payload, "key"), *n = json_object_get(payload, "offences"),
                 *s = json_object_get(payload, "ban_s");
    if (!json_is_string(key) || json_string_length(key) != 2 * ENVELOPE_BAN_KEY ||
        !json_is_integer(n) || !json_is_number(s))
        return -1;
    const char *k = json_string_value(key);
    for (size_t i = 0; i < ENVELOPE_BAN_KEY; i++) {
        int hi = hex_digit(k[2 * i]), lo = hex_digit(k[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        b->key[i] = (uint8_t)(hi << 4 | lo);
    }
    json_int_t offences = json_integer_value(n);
    double ban_s = json_number_value(s);
    if (offences < 1 || offences > UINT_MAX || !isfinite(ban_s) || ban_s < 0)
        return -1;
    b->offences = (unsigned)offences;
    b->ban_s = ban_s;
    return 0;
}

int envelope_apply(crdt_t *c, const envelope_t *env) {
    const char *origin = env->origin;
    if (env->kind == ENVELOPE_LEAVING) { /* graceful stop: its users leave now */
        crdt_replica_permdown(c, origin);
        return ENVELOPE_LEFT;
    }
    if (crdt_replica_status(c, origin) == CRDT_PERMDOWN)
        return ENVELOPE_IGNORED; /* a node we gave up on; if alive, it restarts as a new one */
    int out = 0;
    if (crdt_replica_status(c, origin) == CRDT_DOWN) {
        crdt_replica_up(c, origin);
        out |= ENVELOPE_CAME_UP;
    }
    switch (env->kind) {
    case ENVELOPE_HEARTBEAT:
        if (!crdt_has_seen(c, env->payload))
            out |= ENVELOPE_MISSED;
        break;
    case ENVELOPE_DELTA: {
        /* A gap before this delta means we lost one: merge anyway (that is
         * safe) and fetch the full state to fill it. */
        json_t *mine = json_object_get(json_object_get(env->payload, "ctx"), origin);
        json_int_t from = json_integer_value(json_array_get(mine, 0));
        json_t *clocks = crdt_clocks(c);
        json_int_t have = json_integer_value(json_object_get(clocks, origin));
        json_decref(clocks);
        if (crdt_merge(c, env->payload))
            out |= ENVELOPE_MALFORMED;
        if (from > have)
            out |= ENVELOPE_MISSED;
        break;
    }
    case ENVELOPE_STATE:
        if (crdt_merge(c, env->payload))
            out |= ENVELOPE_MALFORMED;
        break;
    case ENVELOPE_STATE_REQUEST:
        out |= ENVELOPE_SEND_STATE;
        break;
    default:
        break;
    }
    return out;
}
