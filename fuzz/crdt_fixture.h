/* crdt_fixture.h -- a presence CRDT for the envelope and presence targets,
 * with the checks they share (crdt_fixture.c). */
#ifndef PARLEY_FUZZ_CRDT_FIXTURE_H
#define PARLEY_FUZZ_CRDT_FIXTURE_H

#include "crdt.h"

typedef struct fuzz_crdt fuzz_crdt_t;

/* The CRDT of replica FIXTURE_SELF, already holding local entries and the
 * state of three other replicas: FIXTURE_UP (up), FIXTURE_DOWN (marked down)
 * and FIXTURE_GONE (permanently down). Every join and leave it reports is
 * checked against what it showed before. */
#define FIXTURE_SELF "n1"
#define FIXTURE_UP "n2"
#define FIXTURE_DOWN "n3"
#define FIXTURE_GONE "n4"
fuzz_crdt_t *fuzz_crdt_new(void);
crdt_t *fuzz_crdt(fuzz_crdt_t *f);
void fuzz_crdt_free(fuzz_crdt_t *f);

/* Merges a delta or state as crdt_merge() does, and checks its contract: a
 * refused message changes nothing, an accepted one merged again changes
 * nothing more. Returns crdt_merge()'s result. */
int fuzz_crdt_merge(fuzz_crdt_t *f, const json_t *msg);

/* Checks the whole CRDT: the visible counts of every topic agree with its
 * entries and with the joins and leaves reported; the CRDT has seen its own
 * clocks; and its full state, merged into a new replica, gives that replica
 * the same entries and context. */
void fuzz_crdt_check(fuzz_crdt_t *f);

/* The entries of `state` (crdt_state() or a delta) as an object keyed by dot,
 * so that two states compare regardless of order. New reference. */
json_t *fuzz_crdt_entries_by_dot(const json_t *state, const char *only_replica);

#endif
