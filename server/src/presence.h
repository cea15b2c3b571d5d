/* presence.h -- who is online in each topic, as phoenix.js' Presence expects
 * it: the CRDT (crdt.c) mapped to presence_state and presence_diff.
 *
 * A connection that joins a presence-enabled topic (--presence-topics) with
 * a user (the join payload's "user", else the connect parameter "user") is
 * tracked under that key, with the join payload's other fields plus
 * "online_at" as its meta. Every joiner of such a topic gets presence_state
 * right after its join reply. Changes are collected per topic and sent as one
 * presence_diff per topic every --presence-batch-ms (a join storm costs a few
 * merged diffs per subscriber, not one frame per join). The encoded
 * presence_state of a topic is cached until its next diff goes out, so all
 * joiners within one window share one encoding. */
#ifndef PARLEY_PRESENCE_H
#define PARLEY_PRESENCE_H

#include <jansson.h>
#include <stdint.h>

#include "crdt.h"

struct session;

/* Starts presence for node `node_id` (the CRDT replica name). 0 or -1. */
int presence_init(const char *node_id);
void presence_shutdown(void);

/* 1 if `topic` matches --presence-topics. */
int presence_enabled(const char *topic);

/* Checks a join's presence data before the join is accepted. Returns NULL
 * if the join may proceed, else the reason for an error reply. */
const char *presence_check_join(const struct session *s, const char *topic,
                                const json_t *payload);

/* After a successful join reply: tracks the connection (if it has a user)
 * and pushes presence_state to it. */
void presence_joined(struct session *s, const char *topic, const json_t *payload);

/* The connection left `topic` (leave or replaced by a duplicate join). */
void presence_left(struct session *s, const char *topic);

/* The connection closed: all its entries leave. */
void presence_closed(struct session *s);

/* Replaces the meta of the connection's entry in `topic` (event
 * "presence_update"). Returns NULL, or the reason for an error reply. */
const char *presence_update(struct session *s, const char *topic, const json_t *payload);

/* The last local subscriber of `topic` left: its cached state goes. */
void presence_topic_gone(const char *topic);

/* Sends the pending diffs now (called by the batch timer). */
void presence_flush(void);

/* The CRDT, for the cluster layer and for tests. */
crdt_t *presence_crdt(void);

#endif
