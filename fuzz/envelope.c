/* envelope.c -- fuzz target: the bytes of one Redis message from another
 * node, decoded by envelope_decode() and acted on as cluster.c does.
 *
 *  - Decoding never fails for want of memory; a decoded envelope has an
 *    origin, a topic and an event of the documented lengths and an object
 *    payload; an envelope of a known kind re-encodes to the same bytes' worth
 *    of fields.
 *  - A broadcast encodes for every client serializer, as the fan-out does.
 *  - A ban whose payload reads reads back the same from its re-encoding.
 *  - Anything else is applied (envelope_apply()) to a CRDT holding local and
 *    remote entries (crdt_fixture.c): a delta or state applied twice changes
 *    nothing the second time, and the CRDT passes its checks afterwards. */
#include <string.h>

#include "crdt_fixture.h"
#include "envelope.h"
#include "fuzz.h"

static void round_trip(const envelope_t *env) {
    proto_buf_t b;
    proto_buf_init(&b);
    FUZZ_CHECK(envelope_encode(&b, env->origin, env->kind, env->topic, env->event,
                               env->payload) == 0);
    uint8_t *copy = malloc(b.len);
    FUZZ_CHECK(copy);
    memcpy(copy, b.data, b.len);
    envelope_t back;
    FUZZ_CHECK(envelope_decode(copy, b.len, &back) == 0);
    free(copy);
    FUZZ_CHECK(back.kind == env->kind && strcmp(back.origin, env->origin) == 0);
    FUZZ_CHECK(back.topic_len == env->topic_len && strcmp(back.topic, env->topic) == 0);
    FUZZ_CHECK(strcmp(back.event, env->event) == 0);
    FUZZ_CHECK(json_equal(back.payload, env->payload));
    envelope_free(&back);
    proto_buf_free(&b);
}

/* A ban's payload that reads reads back the same from its re-encoding. */
static void ban(const envelope_t *env) {
    envelope_ban_t b, back;
    if (envelope_ban_read(env->payload, &b))
        return;
    FUZZ_CHECK(b.offences >= 1 && b.ban_s >= 0);
    json_t *p = envelope_ban_payload(&b);
    FUZZ_CHECK(p && envelope_ban_read(p, &back) == 0);
    FUZZ_CHECK(memcmp(b.key, back.key, sizeof b.key) == 0 && back.offences == b.offences &&
               back.ban_s == b.ban_s);
    json_decref(p);
}

static void fan_out(const envelope_t *env) {
    for (int f = 0; f < PROTO_NFORMATS; f++) {
        proto_buf_t b;
        proto_buf_init(&b);
        FUZZ_CHECK(proto_encode((proto_format_t)f, &b, NULL, NULL, env->topic, env->event,
                                env->payload) == 0);
        proto_buf_free(&b);
    }
}

static void apply(const envelope_t *env) {
    fuzz_crdt_t *f = fuzz_crdt_new();
    crdt_t *c = fuzz_crdt(f);
    json_t *before = crdt_state(c);
    FUZZ_CHECK(before);
    int r = envelope_apply(c, env);
    if (env->kind == ENVELOPE_LEAVING) {
        FUZZ_CHECK(r == ENVELOPE_LEFT);
        FUZZ_CHECK(crdt_replica_status(c, env->origin) == CRDT_PERMDOWN);
    } else if (r & ENVELOPE_IGNORED) {
        FUZZ_CHECK(r == ENVELOPE_IGNORED && strcmp(env->origin, FIXTURE_GONE) == 0);
    } else {
        FUZZ_CHECK(crdt_replica_status(c, env->origin) <= CRDT_UP); /* up or unknown */
        FUZZ_CHECK(!(r & ENVELOPE_CAME_UP) == (strcmp(env->origin, FIXTURE_DOWN) != 0));
        FUZZ_CHECK(!(r & ENVELOPE_SEND_STATE) == (env->kind != ENVELOPE_STATE_REQUEST));
        FUZZ_CHECK(!(r & ENVELOPE_MALFORMED) ||
                   env->kind == ENVELOPE_DELTA || env->kind == ENVELOPE_STATE);
        json_t *once = crdt_state(c);
        FUZZ_CHECK(once);
        /* Only a delta or a state changes entries, and only if accepted. */
        if ((r & ENVELOPE_MALFORMED) ||
            (env->kind != ENVELOPE_DELTA && env->kind != ENVELOPE_STATE))
            FUZZ_CHECK(json_equal(before, once));
        if (env->kind == ENVELOPE_DELTA || env->kind == ENVELOPE_STATE) {
            int r2 = envelope_apply(c, env);
            FUZZ_CHECK((r2 & ENVELOPE_MALFORMED) == (r & ENVELOPE_MALFORMED));
            json_t *twice = crdt_state(c);
            FUZZ_CHECK(twice && json_equal(once, twice));
            json_decref(twice);
        }
        json_decref(once);
    }
    fuzz_crdt_check(f);
    json_decref(before);
    fuzz_crdt_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    envelope_t env;
    int rc = envelope_decode(data, size, &env);
    FUZZ_CHECK(rc <= 0 && rc > PROTO_EVSN && rc != PROTO_ENOMEM);
    if (rc) {
        FUZZ_CHECK(!env.origin && !env.msg.root);
        return 0;
    }
    FUZZ_CHECK(env.origin && strlen(env.origin) == strlen(env.msg.join_ref));
    FUZZ_CHECK(env.topic_len > 0 && env.topic_len <= ENVELOPE_MAX_TOPIC &&
               strlen(env.topic) == env.topic_len);
    FUZZ_CHECK(env.event && strlen(env.event) > 0 &&
               strlen(env.event) <= PROTO_DEFAULT_MAX_EVENT);
    FUZZ_CHECK(json_is_object(env.payload));
    if (env.kind != ENVELOPE_OTHER)
        round_trip(&env);
    if (env.kind == ENVELOPE_BAN)
        ban(&env);
    if (env.kind == ENVELOPE_BROADCAST)
        fan_out(&env);
    else if (strcmp(env.origin, FIXTURE_SELF) != 0) /* cluster.c ignores its own echo */
        apply(&env);
    envelope_free(&env);
    return 0;
}
