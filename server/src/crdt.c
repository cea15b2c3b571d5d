/* crdt.c -- the presence CRDT (see crdt.h for the model and the rules).
 *
 * Sections: contexts (clock + cloud per replica); entries and the indexes
 * that keep every operation free of full scans (by dot, by topic, by
 * replica, by local connection); local operations and the delta they build;
 * export; merge; replica liveness. */
#include "crdt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

/* Index of local entries by connection. */
typedef struct conn_index {
    uint64_t conn;
    crdt_entry_t *entries;          /* utlist DL via cprev/cnext */
    UT_hash_handle hh;
} conn_index_t;

struct crdt {
    crdt_replica_t *self;
    crdt_replica_t *replicas;       /* by name */
    crdt_topic_t *topics;           /* by name */
    crdt_entry_t *by_dot;           /* all entries, keyed by (replica, clock) */
    conn_index_t *conns;
    size_t nentries;
    crdt_change_fn on_change;
    void *ctx;
    uint64_t generation;            /* for crdt_entry_t.mark during a merge */
    /* The delta since the last crdt_take_delta(): our dots in
     * (delta_from, self->clock], plus the dots of older entries removed
     * since then. */
    uint64_t delta_from;
    uint64_t *removed;
    size_t nremoved, capremoved;
};

/* The hash key of an entry is its dot. */
typedef struct dot_key {
    const crdt_replica_t *replica;
    uint64_t clock;
} dot_key_t;

/* ---- contexts ------------------------------------------------------------ */

static int u64_push(uint64_t **arr, size_t *n, size_t *cap, uint64_t v) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        uint64_t *p = realloc(*arr, nc * sizeof *p);
        if (!p)
            return -1;
        *arr = p;
        *cap = nc;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

/* 1 if replica r's context holds dot `clock`. */
static int ctx_has(const crdt_replica_t *r, uint64_t clock) {
    if (clock <= r->clock)
        return 1;
    size_t lo = 0, hi = r->ncloud;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->cloud[mid] < clock)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->ncloud && r->cloud[lo] == clock;
}

/* Adds to r's context the dots (from, to] and the sorted dots cloud[0..n)
 * (duplicates allowed), keeping the cloud sorted and compact. One pass over
 * our cloud and the new dots, however they interleave: inserting them one by
 * one would cost O(cloud) each. The part of the range past our clock is
 * bounded by the caller (MAX_DELTA_SPAN). */
static int ctx_merge(crdt_replica_t *r, uint64_t from, uint64_t to, const uint64_t *cloud,
                     size_t n) {
    if (from <= r->clock && to > r->clock)
        r->clock = to; /* the range extends the contiguous part */
    uint64_t lo = from > r->clock ? from : r->clock; /* the rest of the range: (lo, to] */
    size_t nrange = to > lo ? (size_t)(to - lo) : 0;
    size_t cap = r->ncloud + nrange + n, k = 0, i = 0, j = 0;
    if (cap == 0)
        return 0;
    uint64_t *out = malloc(cap * sizeof *out), next = lo + 1;
    if (!out)
        return -1;
    for (;;) { /* merge three sorted sequences, dropping duplicates */
        uint64_t d = UINT64_MAX;
        if (i < r->ncloud && r->cloud[i] < d)
            d = r->cloud[i];
        if (next <= to && nrange && next < d)
            d = next;
        if (j < n && cloud[j] < d)
            d = cloud[j];
        if (d == UINT64_MAX)
            break;
        while (i < r->ncloud && r->cloud[i] == d)
            i++;
        if (nrange && next == d && next <= to)
            next++;
        while (j < n && cloud[j] == d)
            j++;
        if (d > r->clock && (k == 0 || out[k - 1] != d))
            out[k++] = d;
    }
    size_t head = 0; /* compaction: absorb the contiguous head */
    while (head < k && out[head] == r->clock + 1)
        r->clock = out[head++];
    memmove(out, out + head, (k - head) * sizeof *out);
    free(r->cloud);
    r->cloud = k - head ? out : NULL;
    r->ncloud = r->capcloud = k - head;
    if (!r->cloud)
        free(out);
    return 0;
}

/* ---- replicas, topics, entries ------------------------------------------- */

static crdt_replica_t *replica_get(crdt_t *c, const char *name, int create) {
    crdt_replica_t *r;
    HASH_FIND_STR(c->replicas, name, r);
    if (r || !create)
        return r;
    r = calloc(1, sizeof *r);
    if (!r || !(r->name = strdup(name))) {
        free(r);
        return NULL;
    }
    HASH_ADD_KEYPTR(hh, c->replicas, r->name, strlen(r->name), r);
    return r;
}

static crdt_topic_t *topic_get(crdt_t *c, const char *name, int create) {
    crdt_topic_t *t;
    HASH_FIND_STR(c->topics, name, t);
    if (t || !create)
        return t;
    t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(name))) {
        free(t);
        return NULL;
    }
    HASH_ADD_KEYPTR(hh, c->topics, t->name, strlen(t->name), t);
    return t;
}

static crdt_entry_t *entry_find(crdt_t *c, const crdt_replica_t *r, uint64_t clock) {
    dot_key_t k;
    memset(&k, 0, sizeof k);
    k.replica = r;
    k.clock = clock;
    crdt_entry_t *e;
    HASH_FIND(hh, c->by_dot, &k, sizeof k, e);
    return e;
}

/* The hash key lives at the start of the entry: replica pointer, clock. */
_Static_assert(offsetof(crdt_entry_t, clock) == sizeof(void *), "dot key layout");

static conn_index_t *conn_get(crdt_t *c, uint64_t conn, int create) {
    conn_index_t *ci;
    HASH_FIND(hh, c->conns, &conn, sizeof conn, ci);
    if (ci || !create)
        return ci;
    ci = calloc(1, sizeof *ci);
    if (!ci)
        return NULL;
    ci->conn = conn;
    HASH_ADD(hh, c->conns, conn, sizeof ci->conn, ci);
    return ci;
}

/* Creates and indexes an entry. Reports the join when its replica is up. */
static crdt_entry_t *entry_add(crdt_t *c, crdt_replica_t *r, uint64_t clock, uint64_t prev,
                               uint64_t conn, const char *topic, const char *key, json_t *meta) {
    crdt_topic_t *t = topic_get(c, topic, 1);
    size_t klen = strlen(key);
    crdt_entry_t *e = t ? calloc(1, sizeof *e + klen + 1) : NULL;
    if (!e)
        return NULL;
    memcpy(e->key, key, klen + 1);
    if (r == c->self) {
        conn_index_t *ci = conn_get(c, conn, 1);
        if (!ci) {
            free(e);
            return NULL;
        }
        DL_APPEND2(ci->entries, e, cprev, cnext);
    }
    e->replica = r;
    e->clock = clock;
    e->prev_clock = prev;
    e->conn = conn;
    e->topic = t;
    e->meta = json_incref(meta);
    HASH_ADD(hh, c->by_dot, replica, sizeof(dot_key_t), e);
    DL_APPEND2(t->entries, e, tprev, tnext);
    t->count++;
    DL_APPEND2(r->entries, e, rprev, rnext);
    r->count++;
    c->nentries++;
    if (r->status == CRDT_UP) {
        t->visible++;
        if (c->on_change)
            c->on_change(c->ctx, e, 1);
    }
    return e;
}

/* Unindexes and frees an entry. Reports the leave when `report` and its
 * replica is up. */
static void entry_remove(crdt_t *c, crdt_entry_t *e, int report) {
    crdt_topic_t *t = e->topic;
    crdt_replica_t *r = e->replica;
    if (r->status == CRDT_UP) {
        t->visible--;
        if (report && c->on_change)
            c->on_change(c->ctx, e, 0);
    }
    HASH_DELETE(hh, c->by_dot, e);
    DL_DELETE2(t->entries, e, tprev, tnext);
    t->count--;
    DL_DELETE2(r->entries, e, rprev, rnext);
    r->count--;
    c->nentries--;
    if (r == c->self) {
        conn_index_t *ci = conn_get(c, e->conn, 0);
        if (ci) {
            DL_DELETE2(ci->entries, e, cprev, cnext);
            if (!ci->entries) {
                HASH_DEL(c->conns, ci);
                free(ci);
            }
        }
    }
    if (t->count == 0) {
        HASH_DEL(c->topics, t);
        free(t->name);
        free(t);
    }
    json_decref(e->meta);
    free(e);
}

/* ---- lifecycle and lookups ------------------------------------------------ */

crdt_t *crdt_new(const char *name, crdt_change_fn on_change, void *ctx) {
    crdt_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->on_change = on_change;
    c->ctx = ctx;
    if (!(c->self = replica_get(c, name, 1))) {
        free(c);
        return NULL;
    }
    return c;
}

void crdt_free(crdt_t *c) {
    if (!c)
        return;
    crdt_entry_t *e, *tmp;
    HASH_ITER(hh, c->by_dot, e, tmp) {
        entry_remove(c, e, 0);
    }
    crdt_replica_t *r, *rt;
    HASH_ITER(hh, c->replicas, r, rt) {
        HASH_DEL(c->replicas, r);
        free(r->cloud);
        free(r->name);
        free(r);
    }
    free(c->removed);
    free(c);
}

const char *crdt_name(const crdt_t *c) {
    return c->self->name;
}

crdt_replica_t *crdt_self(crdt_t *c) {
    return c->self;
}

crdt_topic_t *crdt_topic(crdt_t *c, const char *topic) {
    return topic_get(c, topic, 0);
}

size_t crdt_topic_visible(const crdt_t *c, const crdt_topic_t *t) {
    (void)c;
    return t ? t->visible : 0;
}

size_t crdt_entries(const crdt_t *c) {
    return c->nentries;
}

crdt_entry_t *crdt_find(crdt_t *c, uint64_t conn, const char *topic) {
    conn_index_t *ci = conn_get(c, conn, 0);
    crdt_entry_t *e;
    if (!ci)
        return NULL;
    DL_FOREACH2(ci->entries, e, cnext) {
        if (strcmp(e->topic->name, topic) == 0)
            return e;
    }
    return NULL;
}

const char *crdt_ref(const crdt_entry_t *e, uint64_t clock, char *buf, size_t size) {
    snprintf(buf, size, "%s:%" PRIu64, e->replica->name, clock);
    return buf;
}

/* ---- local operations ------------------------------------------------------ */

crdt_entry_t *crdt_join(crdt_t *c, uint64_t conn, const char *topic, const char *key,
                        json_t *meta) {
    crdt_replica_t *self = c->self;
    crdt_entry_t *e = entry_add(c, self, self->clock + 1, 0, conn, topic, key, meta);
    if (e)
        self->clock++;
    return e;
}

/* Removing an entry: the dot of an entry created before the current delta
 * began must travel in the delta's context, or peers would never learn that
 * it went. Entries created within the delta are covered by its range. */
static int note_removed(crdt_t *c, const crdt_entry_t *e) {
    if (e->clock > c->delta_from)
        return 0;
    return u64_push(&c->removed, &c->nremoved, &c->capremoved, e->clock);
}

void crdt_leave(crdt_t *c, crdt_entry_t *e) {
    if (e->replica != c->self)
        return; /* only a replica removes its own entries */
    /* A leave takes a clock value of its own, with no entry: peers see the
     * clock advance and know there is news to fetch. */
    if (note_removed(c, e) == 0)
        c->self->clock++;
    entry_remove(c, e, 1);
}

crdt_entry_t *crdt_update(crdt_t *c, crdt_entry_t *e, json_t *meta) {
    crdt_replica_t *self = c->self;
    if (e->replica != self)
        return NULL;
    uint64_t conn = e->conn, prev = e->clock;
    char *topic = strdup(e->topic->name), *key = strdup(e->key);
    crdt_entry_t *n = NULL;
    if (topic && key && note_removed(c, e) == 0) {
        entry_remove(c, e, 1);
        n = entry_add(c, self, self->clock + 1, prev, conn, topic, key, meta);
        if (n)
            self->clock++;
    }
    free(topic);
    free(key);
    return n;
}

size_t crdt_leave_conn(crdt_t *c, uint64_t conn) {
    size_t n = 0;
    conn_index_t *ci;
    while ((ci = conn_get(c, conn, 0)) != NULL) { /* the index goes with its last entry */
        crdt_leave(c, ci->entries);
        n++;
    }
    return n;
}

/* ---- export ---------------------------------------------------------------- */

static json_t *entry_json(const crdt_entry_t *e) {
    return json_pack("[s,I,I,s,s,O,I]", e->replica->name, (json_int_t)e->clock,
                     (json_int_t)e->conn, e->topic->name, e->key, e->meta,
                     (json_int_t)e->prev_clock);
}

static json_t *ctx_json(uint64_t from, uint64_t clock, const uint64_t *cloud, size_t n) {
    json_t *dots = json_array();
    for (size_t i = 0; dots && i < n; i++)
        if (json_array_append_new(dots, json_integer((json_int_t)cloud[i]))) {
            json_decref(dots);
            return NULL;
        }
    return dots ? json_pack("[I,I,o]", (json_int_t)from, (json_int_t)clock, dots) : NULL;
}

json_t *crdt_take_delta(crdt_t *c) {
    crdt_replica_t *self = c->self;
    if (self->clock == c->delta_from && c->nremoved == 0)
        return NULL;
    json_t *entries = json_array(), *ctx = json_object();
    json_t *mine = ctx_json(c->delta_from, self->clock, c->removed, c->nremoved);
    json_t *out = NULL;
    if (!entries || !ctx || !mine)
        goto done;
    json_t *m = mine; /* json_object_set_new() takes it even when it fails */
    mine = NULL;
    if (json_object_set_new(ctx, self->name, m))
        goto done;
    /* Our entries are in clock order: the ones made in this delta are the
     * tail of the list. Find where it starts, then append in order. */
    crdt_entry_t *e = self->entries ? self->entries->rprev : NULL; /* the tail */
    crdt_entry_t *first = NULL;
    for (; e && e->clock > c->delta_from; e = e == self->entries ? NULL : e->rprev)
        first = e;
    for (e = first; e; e = e->rnext)
        if (json_array_append_new(entries, entry_json(e)))
            goto done;
    out = json_pack("{s:O,s:O}", "ctx", ctx, "entries", entries);
    if (out) {
        c->delta_from = self->clock;
        c->nremoved = 0;
    }
done:
    json_decref(mine);
    json_decref(ctx);
    json_decref(entries);
    return out;
}

json_t *crdt_state(crdt_t *c) {
    json_t *entries = json_array(), *ctx = json_object(), *out = NULL;
    if (!entries || !ctx)
        goto done;
    crdt_replica_t *r, *rt;
    HASH_ITER(hh, c->replicas, r, rt) {
        if (r->status == CRDT_PERMDOWN)
            continue;
        if (json_object_set_new(ctx, r->name, ctx_json(0, r->clock, r->cloud, r->ncloud)))
            goto done;
        crdt_entry_t *e;
        DL_FOREACH2(r->entries, e, rnext) {
            if (json_array_append_new(entries, entry_json(e)))
                goto done;
        }
    }
    out = json_pack("{s:O,s:O}", "ctx", ctx, "entries", entries);
done:
    json_decref(ctx);
    json_decref(entries);
    return out;
}

json_t *crdt_clocks(crdt_t *c) {
    json_t *out = json_object();
    crdt_replica_t *r, *rt;
    HASH_ITER(hh, c->replicas, r, rt) {
        if (r->status != CRDT_PERMDOWN && out &&
            json_object_set_new(out, r->name, json_integer((json_int_t)r->clock))) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

int crdt_has_seen(crdt_t *c, const json_t *clocks) {
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)clocks, name, v) {
        crdt_replica_t *r = replica_get(c, name, 0);
        if (r && r->status == CRDT_PERMDOWN)
            continue;
        if (json_integer_value(v) > 0 && (!r || r->clock < (uint64_t)json_integer_value(v)))
            return 0;
    }
    return 1;
}

/* ---- merge ------------------------------------------------------------------- */

/* A remote context for one replica: dots in (from, clock] plus a cloud,
 * parsed once per merge with the cloud sorted, so that membership is a range
 * check and a binary search. */
typedef struct remote_ctx {
    const char *name;
    uint64_t from, clock;
    uint64_t *cloud;
    size_t ncloud;
} remote_ctx_t;

typedef struct remote {
    remote_ctx_t *ctx;
    size_t nctx;
} remote_t;

/* Limits on what one message may ask of us: replicas named in it, dots in
 * one replica's cloud, and the dots of delta ranges that lie beyond what we
 * have seen, all replicas together. Each of those becomes a cloud entry of
 * ours: 8 bytes of memory (and more in every state we send) for a few bytes
 * of message, so they are counted per message, not per replica. A real
 * delta spans one node's changes of 50 ms; a larger gap means we need the
 * full state anyway, and the caller asks for it. */
#define MAX_REPLICAS 4096
#define MAX_CLOUD (1u << 20)
#define MAX_DELTA_SPAN (1u << 16)

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void remote_free(remote_t *rm) {
    for (size_t i = 0; i < rm->nctx; i++)
        free(rm->ctx[i].cloud);
    free(rm->ctx);
}

static int parse_ctx(const char *name, const json_t *v, remote_ctx_t *out) {
    json_int_t from, clock;
    json_t *cloud;
    memset(out, 0, sizeof *out);
    if (json_unpack((json_t *)v, "[IIo!]", &from, &clock, &cloud) || from < 0 || clock < from ||
        !json_is_array(cloud) || (from > 0 && (uint64_t)(clock - from) > MAX_DELTA_SPAN) ||
        json_array_size(cloud) > MAX_CLOUD)
        return -1;
    out->name = name;
    out->from = (uint64_t)from;
    out->clock = (uint64_t)clock;
    out->ncloud = json_array_size(cloud);
    if (out->ncloud && !(out->cloud = malloc(out->ncloud * sizeof *out->cloud)))
        return -1;
    size_t i;
    json_t *d;
    json_array_foreach(cloud, i, d) {
        if (!json_is_integer(d) || json_integer_value(d) <= 0)
            return -1;
        out->cloud[i] = (uint64_t)json_integer_value(d);
    }
    if (out->ncloud)
        qsort(out->cloud, out->ncloud, sizeof *out->cloud, cmp_u64);
    return 0;
}

static int remote_has(const remote_ctx_t *rc, uint64_t clock) {
    if (clock > rc->from && clock <= rc->clock)
        return 1;
    return rc->ncloud && bsearch(&clock, rc->cloud, rc->ncloud, sizeof clock, cmp_u64);
}

static int cmp_ctx_name(const void *a, const void *b) {
    return strcmp(((const remote_ctx_t *)a)->name, ((const remote_ctx_t *)b)->name);
}

/* The context of a replica in the message (sorted by name: a message may
 * have millions of entries and thousands of replicas). */
static const remote_ctx_t *remote_find(const remote_t *rm, const char *name) {
    remote_ctx_t key = {.name = name};
    return rm->nctx ? bsearch(&key, rm->ctx, rm->nctx, sizeof key, cmp_ctx_name) : NULL;
}

/* Parses and validates the whole message before anything is touched. */
static int parse_remote(const json_t *remote, remote_t *rm) {
    json_t *ctx = json_object_get(remote, "ctx"), *entries = json_object_get(remote, "entries");
    memset(rm, 0, sizeof *rm);
    if (!json_is_object(ctx) || !json_is_array(entries) || json_object_size(ctx) > MAX_REPLICAS)
        return -1;
    if (json_object_size(ctx) &&
        !(rm->ctx = calloc(json_object_size(ctx), sizeof *rm->ctx)))
        return -1;
    const char *name;
    json_t *v;
    json_object_foreach(ctx, name, v) {
        if (parse_ctx(name, v, &rm->ctx[rm->nctx++]))
            goto bad;
    }
    if (rm->nctx)
        qsort(rm->ctx, rm->nctx, sizeof *rm->ctx, cmp_ctx_name);
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) {
        const char *replica, *topic, *key;
        json_int_t clock, conn, prev;
        json_t *meta;
        if (json_unpack(e, "[sIIssoI!]", &replica, &clock, &conn, &topic, &key, &meta, &prev) ||
            clock <= 0 || prev < 0 || prev >= clock || !json_is_object(meta))
            goto bad;
        /* An entry's dot must be in the context that comes with it. */
        const remote_ctx_t *rc = remote_find(rm, replica);
        if (!rc || !remote_has(rc, (uint64_t)clock))
            goto bad;
    }
    return 0;
bad:
    remote_free(rm);
    return -1;
}

/* The dots that merging `rm` would add to our clouds one by one: the parts
 * of delta ranges past the clock we have of their replica. */
static uint64_t gap_dots(crdt_t *c, const remote_t *rm) {
    uint64_t dots = 0;
    for (size_t k = 0; k < rm->nctx; k++) {
        const remote_ctx_t *rc = &rm->ctx[k];
        crdt_replica_t *r = replica_get(c, rc->name, 0);
        if (r && (r == c->self || r->status == CRDT_PERMDOWN))
            continue; /* not merged */
        uint64_t have = r ? r->clock : 0;
        if (rc->from > have)
            dots += rc->clock - rc->from;
    }
    return dots;
}

int crdt_merge(crdt_t *c, const json_t *remote) {
    remote_t rm;
    if (parse_remote(remote, &rm))
        return -1;
    if (gap_dots(c, &rm) > MAX_DELTA_SPAN) {
        remote_free(&rm);
        return -1;
    }
    json_t *entries = json_object_get(remote, "entries");
    uint64_t gen = ++c->generation;

    /* Joins: remote entries we have not seen. Entries the remote holds are
     * marked (new ones too), so the leave pass keeps them. */
    size_t i;
    json_t *v;
    json_array_foreach(entries, i, v) {
        const char *rname, *topic, *key;
        json_int_t clock, conn, prev;
        json_t *meta;
        json_unpack(v, "[sIIssoI!]", &rname, &clock, &conn, &topic, &key, &meta, &prev);
        crdt_replica_t *r = replica_get(c, rname, 1);
        if (!r || r == c->self || r->status == CRDT_PERMDOWN)
            continue; /* nobody knows our own entries better than we do */
        crdt_entry_t *e = entry_find(c, r, (uint64_t)clock);
        if (!e && !ctx_has(r, (uint64_t)clock))
            e = entry_add(c, r, (uint64_t)clock, (uint64_t)prev, (uint64_t)conn, topic, key,
                          meta);
        if (e) /* held by the remote: the leave pass must keep it */
            e->mark = gen;
    }

    /* Leaves and context, replica by replica. */
    for (size_t k = 0; k < rm.nctx; k++) {
        const remote_ctx_t *rc = &rm.ctx[k];
        crdt_replica_t *r = replica_get(c, rc->name, 1);
        if (!r || r == c->self || r->status == CRDT_PERMDOWN)
            continue;
        uint64_t span = rc->clock - rc->from + rc->ncloud;
        if (span < r->count) { /* a delta: look its dots up */
            for (uint64_t d = rc->from + 1; d <= rc->clock; d++) {
                crdt_entry_t *e = entry_find(c, r, d);
                if (e && e->mark != gen)
                    entry_remove(c, e, 1);
            }
            for (size_t j = 0; j < rc->ncloud; j++) {
                crdt_entry_t *e = entry_find(c, r, rc->cloud[j]);
                if (e && e->mark != gen)
                    entry_remove(c, e, 1);
            }
        } else { /* a full state: walk what we hold of r */
            crdt_entry_t *e, *tmp;
            DL_FOREACH_SAFE2(r->entries, e, tmp, rnext) {
                if (e->mark != gen && remote_has(rc, e->clock))
                    entry_remove(c, e, 1);
            }
        }
        ctx_merge(r, rc->from, rc->clock, rc->cloud, rc->ncloud);
    }
    remote_free(&rm);
    return 0;
}

/* ---- replica liveness -------------------------------------------------------- */

int crdt_replica_status(crdt_t *c, const char *name) {
    crdt_replica_t *r = replica_get(c, name, 0);
    return r ? r->status : -1;
}

/* Hides or shows a replica's entries, reporting each as a leave or a join. */
static void set_visible(crdt_t *c, crdt_replica_t *r, int up) {
    crdt_entry_t *e;
    DL_FOREACH2(r->entries, e, rnext) {
        if (up)
            e->topic->visible++;
        else
            e->topic->visible--;
        if (c->on_change)
            c->on_change(c->ctx, e, up);
    }
}

void crdt_replica_down(crdt_t *c, const char *name) {
    crdt_replica_t *r = replica_get(c, name, 1);
    if (!r || r == c->self || r->status != CRDT_UP)
        return;
    r->status = CRDT_DOWN;
    set_visible(c, r, 0);
}

void crdt_replica_up(crdt_t *c, const char *name) {
    crdt_replica_t *r = replica_get(c, name, 1);
    if (!r || r->status != CRDT_DOWN)
        return;
    r->status = CRDT_UP;
    set_visible(c, r, 1);
}

void crdt_replica_permdown(crdt_t *c, const char *name) {
    crdt_replica_t *r = replica_get(c, name, 1);
    if (!r || r == c->self || r->status == CRDT_PERMDOWN)
        return;
    while (r->entries)
        entry_remove(c, r->entries, 1); /* reports leaves only if it was up */
    r->status = CRDT_PERMDOWN;
    free(r->cloud);
    r->cloud = NULL;
    r->ncloud = r->capcloud = 0;
}
