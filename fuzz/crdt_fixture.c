/* crdt_fixture.c -- the fuzz targets' presence CRDT and its checks
 * (crdt_fixture.h). */
#include "crdt_fixture.h"

#include <string.h>

#include "fuzz.h"

struct fuzz_crdt {
    crdt_t *c;
    /* The entries reported as joined and not since as left. */
    const crdt_entry_t **shown;
    size_t nshown, capshown;
};

static size_t find_shown(const fuzz_crdt_t *f, const crdt_entry_t *e) {
    for (size_t i = 0; i < f->nshown; i++)
        if (f->shown[i] == e)
            return i;
    return (size_t)-1;
}

/* A join must be of an entry not shown, a leave of one shown. */
static void on_change(void *ctx, const crdt_entry_t *e, int joined) {
    fuzz_crdt_t *f = ctx;
    size_t i = find_shown(f, e);
    if (joined) {
        FUZZ_CHECK(i == (size_t)-1);
        if (f->nshown == f->capshown) {
            f->capshown = f->capshown ? f->capshown * 2 : 16;
            f->shown = realloc(f->shown, f->capshown * sizeof *f->shown);
            FUZZ_CHECK(f->shown);
        }
        f->shown[f->nshown++] = e;
    } else {
        FUZZ_CHECK(i != (size_t)-1);
        f->shown[i] = f->shown[--f->nshown];
    }
}

/* What the other replicas hold before the input arrives: FIXTURE_UP with a
 * gap in its context (dot 8 seen, 6 and 7 not) and an update (dave's entry
 * replaced dot 3), FIXTURE_DOWN with two entries, FIXTURE_GONE with one. */
static const char fixture_state[] =
    "{\"ctx\":{\"" FIXTURE_UP "\":[0,5,[8]],\"" FIXTURE_DOWN "\":[0,3,[]],"
    "\"" FIXTURE_GONE "\":[0,1,[]]},"
    "\"entries\":["
    "[\"" FIXTURE_UP "\",2,7,\"room:lobby\",\"carol\",{},0],"
    "[\"" FIXTURE_UP "\",5,8,\"room:lobby\",\"dave\",{\"status\":\"away\"},3],"
    "[\"" FIXTURE_UP "\",8,9,\"room:other\",\"erin\",{},0],"
    "[\"" FIXTURE_DOWN "\",1,1,\"room:lobby\",\"frank\",{},0],"
    "[\"" FIXTURE_DOWN "\",3,2,\"room:lobby\",\"grace\",{\"online_at\":1}, 0],"
    "[\"" FIXTURE_GONE "\",1,1,\"room:lobby\",\"heidi\",{},0]]}";

fuzz_crdt_t *fuzz_crdt_new(void) {
    fuzz_crdt_t *f = calloc(1, sizeof *f);
    FUZZ_CHECK(f);
    f->c = crdt_new(FIXTURE_SELF, on_change, f);
    FUZZ_CHECK(f->c);
    json_t *meta = json_pack("{s:s}", "status", "online");
    FUZZ_CHECK(crdt_join(f->c, 1, "room:lobby", "alice", meta));
    crdt_entry_t *bob = crdt_join(f->c, 2, "room:lobby", "bob", meta);
    FUZZ_CHECK(bob && crdt_join(f->c, 1, "room:other", "alice", meta));
    json_decref(crdt_take_delta(f->c)); /* peers have seen these */
    crdt_leave(f->c, bob);              /* and not this */
    json_decref(meta);
    json_t *state = json_loads(fixture_state, 0, NULL);
    FUZZ_CHECK(state && crdt_merge(f->c, state) == 0);
    json_decref(state);
    crdt_replica_down(f->c, FIXTURE_DOWN);
    crdt_replica_permdown(f->c, FIXTURE_GONE);
    return f;
}

crdt_t *fuzz_crdt(fuzz_crdt_t *f) {
    return f->c;
}

void fuzz_crdt_free(fuzz_crdt_t *f) {
    crdt_free(f->c);
    free(f->shown);
    free(f);
}

int fuzz_crdt_merge(fuzz_crdt_t *f, const json_t *msg) {
    json_t *before = crdt_state(f->c);
    FUZZ_CHECK(before);
    int rc = crdt_merge(f->c, msg);
    FUZZ_CHECK(rc == 0 || rc == -1);
    json_t *after = crdt_state(f->c);
    FUZZ_CHECK(after);
    if (rc) {
        FUZZ_CHECK(json_equal(before, after)); /* refused: nothing changed */
    } else {
        FUZZ_CHECK(crdt_merge(f->c, msg) == 0); /* idempotent */
        json_t *again = crdt_state(f->c);
        FUZZ_CHECK(again && json_equal(after, again));
        json_decref(again);
    }
    json_decref(before);
    json_decref(after);
    return rc;
}

json_t *fuzz_crdt_entries_by_dot(const json_t *state, const char *only_replica) {
    json_t *out = json_object();
    size_t i;
    json_t *e;
    FUZZ_CHECK(out);
    json_array_foreach(json_object_get(state, "entries"), i, e) {
        const char *replica = json_string_value(json_array_get(e, 0));
        FUZZ_CHECK(replica);
        if (only_replica && strcmp(replica, only_replica) != 0)
            continue;
        char key[512];
        snprintf(key, sizeof key, "%s/%" JSON_INTEGER_FORMAT, replica,
                 json_integer_value(json_array_get(e, 1)));
        FUZZ_CHECK(!json_object_get(out, key)); /* one entry per dot */
        FUZZ_CHECK(json_object_set(out, key, e) == 0);
    }
    return out;
}

/* Counts, per topic, the entries of replicas that are up. */
static void check_visible(fuzz_crdt_t *f, const json_t *state) {
    json_t *counts = json_object();
    size_t i, total = 0;
    json_t *e;
    FUZZ_CHECK(counts);
    json_array_foreach(json_object_get(state, "entries"), i, e) {
        const char *replica = json_string_value(json_array_get(e, 0));
        const char *topic = json_string_value(json_array_get(e, 3));
        FUZZ_CHECK(replica && topic);
        FUZZ_CHECK(crdt_topic(f->c, topic));
        json_int_t n = json_integer_value(json_object_get(counts, topic));
        int up = crdt_replica_status(f->c, replica) == CRDT_UP;
        json_object_set_new(counts, topic, json_integer(n + up));
        total += (size_t)up;
    }
    FUZZ_CHECK(json_array_size(json_object_get(state, "entries")) == crdt_entries(f->c));
    const char *topic;
    json_t *n;
    json_object_foreach(counts, topic, n) {
        FUZZ_CHECK(crdt_topic_visible(f->c, crdt_topic(f->c, topic)) ==
                   (size_t)json_integer_value(n));
    }
    FUZZ_CHECK(f->nshown == total);
    json_decref(counts);
}

void fuzz_crdt_check(fuzz_crdt_t *f) {
    json_t *state = crdt_state(f->c), *clocks = crdt_clocks(f->c);
    FUZZ_CHECK(state && clocks);
    check_visible(f, state);
    FUZZ_CHECK(crdt_has_seen(f->c, clocks));

    /* State transfer: a new replica that merges our state holds what we
     * hold, and has seen what we have seen. */
    char name[32]; /* one the input has not named */
    for (int i = 0; snprintf(name, sizeof name, "fresh%d", i), crdt_replica_status(f->c, name) >= 0;
         i++)
        ;
    crdt_t *fresh = crdt_new(name, NULL, NULL);
    FUZZ_CHECK(fresh);
    FUZZ_CHECK(crdt_merge(fresh, state) == 0);
    FUZZ_CHECK(crdt_has_seen(fresh, clocks));
    json_t *copy = crdt_state(fresh);
    FUZZ_CHECK(copy);
    json_t *a = fuzz_crdt_entries_by_dot(state, NULL), *b = fuzz_crdt_entries_by_dot(copy, NULL);
    FUZZ_CHECK(json_equal(a, b));
    json_t *ctx = json_object_get(copy, "ctx");
    json_object_del(ctx, name);
    FUZZ_CHECK(json_equal(ctx, json_object_get(state, "ctx")));
    json_decref(a);
    json_decref(b);
    json_decref(copy);
    crdt_free(fresh);
    json_decref(clocks);
    json_decref(state);
}
