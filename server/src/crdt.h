/* crdt.h -- the presence CRDT: an observed-remove map of
 * (topic, connection, key) -> meta, replicated between nodes by deltas and
 * full-state exchange. Pure: no I/O, no clock, no globals.
 *
 * Model: Phoenix.Tracker.State (phoenix_pubsub). Every entry carries the dot
 * (replica, clock) of the operation that created it. Each replica keeps a
 * causal context: for every replica, the clock up to which it has seen every
 * dot, plus the dots it has seen beyond that (the "cloud"). Only a replica
 * creates and removes its own entries; every local operation (join, leave,
 * update) takes the next clock value. A delta or a full state is a set of
 * entries plus a context, and merging one applies two rules:
 *   join:  a remote entry whose dot is not in our context is new;
 *   leave: our entry whose dot is in the remote context, but which the
 *          remote does not hold, was removed.
 * Merging is commutative, associative and idempotent, and deltas may arrive
 * in any order, twice, or not at all (a later full-state exchange repairs a
 * lost one).
 *
 * Replicas may be marked down (their entries are hidden and reported as
 * leaves), up again (reported as joins) and permanently down (purged; all
 * later news of them is ignored).
 *
 * Costs: join, leave and update are O(1) plus the connection's own entries;
 * merging a delta is O(size of the delta); merging a full state is
 * O(entries); nothing scans the whole state per operation.
 *
 * Exchange format (delta and full state alike), a jansson value:
 *   {"ctx": {"<replica>": [from, clock, [cloud dots...]], ...},
 *    "entries": [["<replica>", clock, conn, "<topic>", "<key>", {meta}, prev], ...]}
 * where the context of a replica is the dots in (from, clock] plus the cloud;
 * a full state has from = 0, and prev is the clock of the entry an update
 * replaced (0 for a join). The cluster layer serialises it as it likes. */
#ifndef PARLEY_CRDT_H
#define PARLEY_CRDT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

typedef struct crdt crdt_t;
typedef struct crdt_replica crdt_replica_t;
typedef struct crdt_topic crdt_topic_t;

enum crdt_status { CRDT_UP = 0, CRDT_DOWN = 1, CRDT_PERMDOWN = 2 };

typedef struct crdt_entry {
    crdt_replica_t *replica;
    uint64_t clock;                 /* the dot is (replica, clock) */
    uint64_t prev_clock;            /* update: the clock of the entry it replaced, else 0 */
    uint64_t conn;                  /* connection id, unique within the replica */
    crdt_topic_t *topic;
    json_t *meta;                   /* owned reference; never modified */
    uint64_t mark;                  /* merge bookkeeping */
    struct crdt_entry *tprev, *tnext;   /* in the topic's list */
    struct crdt_entry *rprev, *rnext;   /* in the replica's list, oldest first */
    struct crdt_entry *cprev, *cnext;   /* in the connection's list (local entries) */
    UT_hash_handle hh;              /* by dot */
    char key[];                     /* the presence key (user), stored inline */
} crdt_entry_t;

struct crdt_topic {
    char *name;
    crdt_entry_t *entries;          /* utlist DL via tprev/tnext */
    size_t count;                   /* entries, visible or not */
    size_t visible;                 /* entries whose replica is up */
    UT_hash_handle hh;
};

struct crdt_replica {
    char *name;
    int status;
    uint64_t clock;                 /* every dot 1..clock has been seen */
    uint64_t *cloud;                /* seen dots > clock + 1, sorted */
    size_t ncloud, capcloud;
    crdt_entry_t *entries;          /* utlist DL via rprev/rnext */
    size_t count;
    UT_hash_handle hh;
};

/* Called for every change visible to users: joined = 1 for a join, 0 for a
 * leave. For a leave the entry is freed after the call returns. */
typedef void (*crdt_change_fn)(void *ctx, const crdt_entry_t *e, int joined);

/* Creates the CRDT of replica `name`. Returns NULL if out of memory. */
crdt_t *crdt_new(const char *name, crdt_change_fn on_change, void *ctx);
void crdt_free(crdt_t *c);

const char *crdt_name(const crdt_t *c);
crdt_replica_t *crdt_self(crdt_t *c);
crdt_topic_t *crdt_topic(crdt_t *c, const char *topic);
/* Entries visible in a topic (their replica is up). */
size_t crdt_topic_visible(const crdt_t *c, const crdt_topic_t *t);
size_t crdt_entries(const crdt_t *c);

/* Local operations. meta is borrowed (the CRDT takes its own reference).
 * Return the new entry, or NULL if out of memory. */
crdt_entry_t *crdt_join(crdt_t *c, uint64_t conn, const char *topic, const char *key,
                        json_t *meta);
crdt_entry_t *crdt_update(crdt_t *c, crdt_entry_t *e, json_t *meta);
void crdt_leave(crdt_t *c, crdt_entry_t *e);
/* Removes every entry of a local connection. Returns how many. */
size_t crdt_leave_conn(crdt_t *c, uint64_t conn);
/* The local entry of a connection in a topic, or NULL. */
crdt_entry_t *crdt_find(crdt_t *c, uint64_t conn, const char *topic);

/* The local changes since the last call, or NULL if there were none (or out
 * of memory). */
json_t *crdt_take_delta(crdt_t *c);
/* Everything this replica knows. */
json_t *crdt_state(crdt_t *c);
/* Merges a delta or a full state from another replica. Returns 0, or -1 if
 * `remote` is malformed or beyond the limits of one message (more than 4096
 * replicas, a cloud of more than 2^20 dots, deltas that start more than
 * 65536 dots in all past what we have seen; then nothing was changed). */
int crdt_merge(crdt_t *c, const json_t *remote);

/* The per-replica clocks of the context, {"replica": clock}: what a heartbeat
 * carries so that peers can tell whether they have missed something. */
json_t *crdt_clocks(crdt_t *c);
/* 1 if our context holds every dot up to each clock in `clocks`. */
int crdt_has_seen(crdt_t *c, const json_t *clocks);

/* Replica liveness, decided by the caller (heartbeats). Unknown replicas
 * are created. */
void crdt_replica_down(crdt_t *c, const char *name);
void crdt_replica_up(crdt_t *c, const char *name);
void crdt_replica_permdown(crdt_t *c, const char *name);
int crdt_replica_status(crdt_t *c, const char *name);   /* -1 if unknown */

/* The dot as a string "<replica>:<clock>" (Phoenix's phx_ref), into buf. */
const char *crdt_ref(const crdt_entry_t *e, uint64_t clock, char *buf, size_t size);

#endif
