/* presence.c -- fuzz target: presence deltas and states as other nodes send
 * them, merged into a CRDT that holds local and remote entries
 * (crdt_fixture.c), between local operations and liveness changes.
 *
 * The input is up to 32 lines, each one JSON text (an envelope's payload,
 * in JSON rather than MessagePack so that mutations keep its structure; the
 * envelope target covers the MessagePack side):
 *   {"ctx":...,"entries":...}          a delta or a full state: crdt_merge();
 *                                      it is also read as a heartbeat's clocks
 *   ["join", conn, topic, key, {meta}] a local join
 *   ["update", conn, topic, {meta}]    a local presence_update
 *   ["leave", conn]                    a local connection closes
 *   ["down"|"up"|"permdown", replica]  a peer's liveness changes
 * Anything else is skipped. After each line the local delta is taken, as the
 * gossip timer does, and merged by an observer replica. At the end the CRDT
 * is checked whole (crdt_fixture.h), and the observer must hold exactly the
 * local entries: deltas lose nothing and invent nothing. */
#include <string.h>

#include "crdt_fixture.h"
#include "fuzz.h"

#define MAX_LINES 32

static void local_op(crdt_t *c, const json_t *op) {
    const char *name = json_string_value(json_array_get(op, 0));
    json_t *a1 = json_array_get(op, 1), *a2 = json_array_get(op, 2);
    json_t *a3 = json_array_get(op, 3), *a4 = json_array_get(op, 4);
    if (!name)
        return;
    uint64_t conn = (uint64_t)json_integer_value(a1);
    if (strcmp(name, "join") == 0 && json_is_string(a2) && json_is_string(a3) &&
        json_is_object(a4)) {
        /* A connection is in a topic once, as in the server. */
        if (!crdt_find(c, conn, json_string_value(a2)))
            FUZZ_CHECK(crdt_join(c, conn, json_string_value(a2), json_string_value(a3), a4));
    } else if (strcmp(name, "update") == 0 && json_is_string(a2) && json_is_object(a3)) {
        crdt_entry_t *e = crdt_find(c, conn, json_string_value(a2));
        if (e)
            FUZZ_CHECK(crdt_update(c, e, a3));
    } else if (strcmp(name, "leave") == 0) {
        crdt_leave_conn(c, conn);
    } else if (json_is_string(a1)) {
        const char *replica = json_string_value(a1);
        if (strcmp(name, "down") == 0)
            crdt_replica_down(c, replica);
        else if (strcmp(name, "up") == 0)
            crdt_replica_up(c, replica);
        else if (strcmp(name, "permdown") == 0)
            crdt_replica_permdown(c, replica);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_crdt_t *f = fuzz_crdt_new();
    crdt_t *c = fuzz_crdt(f);
    crdt_t *observer = crdt_new("observer", NULL, NULL);
    FUZZ_CHECK(observer);
    /* The observer starts from our state, as a node that just joined. */
    json_t *state = crdt_state(c);
    FUZZ_CHECK(state && crdt_merge(observer, state) == 0);
    json_decref(state);

    const uint8_t *p = data, *end = data + size;
    for (int line = 0; line < MAX_LINES && p < end; line++) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        json_t *v = json_loadb((const char *)p, len, JSON_ALLOW_NUL, NULL);
        p += len + (nl != NULL);
        if (json_is_object(v)) {
            crdt_has_seen(c, v);
            fuzz_crdt_merge(f, v);
        } else if (json_is_array(v)) {
            local_op(c, v);
        }
        json_decref(v);
        json_t *delta = crdt_take_delta(c);
        if (delta)
            FUZZ_CHECK(crdt_merge(observer, delta) == 0);
        json_decref(delta);
    }

    fuzz_crdt_check(f);
    json_t *mine = crdt_state(c), *seen = crdt_state(observer);
    FUZZ_CHECK(mine && seen);
    json_t *a = fuzz_crdt_entries_by_dot(mine, crdt_name(c));
    json_t *b = fuzz_crdt_entries_by_dot(seen, crdt_name(c));
    FUZZ_CHECK(json_equal(a, b));
    FUZZ_CHECK(json_equal(json_object_get(json_object_get(mine, "ctx"), crdt_name(c)),
                          json_object_get(json_object_get(seen, "ctx"), crdt_name(c))));
    json_decref(a);
    json_decref(b);
    json_decref(mine);
    json_decref(seen);
    crdt_free(observer);
    fuzz_crdt_free(f);
    return 0;
}
