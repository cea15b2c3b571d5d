/* topics.h -- the topic registry: topic name -> this node's subscribers, and
 * fan-out of a broadcast to them.
 *
 * A channel is one socket's membership of one topic (Phoenix's "channel
 * instance"). It is owned by its session, which creates it on phx_join and
 * destroys it on leave or close; the topic only links it into its list. A
 * topic exists while it has at least one channel. */
#ifndef PARLEY_TOPICS_H
#define PARLEY_TOPICS_H

#include <jansson.h>
#include <stddef.h>
#include <uthash.h>

struct session;
struct topic;

typedef struct channel {
    struct session *session;
    struct topic *topic;
    char *join_ref;                 /* owned; NULL when the client sent none (V1) */
    struct channel *tprev, *tnext;  /* in the topic's subscriber list */
    UT_hash_handle hh;              /* in the session's table, keyed by topic name */
} channel_t;

typedef struct topic {
    char *name;                     /* owned, NUL-terminated */
    size_t len;
    channel_t *subs;                /* utlist doubly-linked list via tprev/tnext */
    size_t nsubs;
    UT_hash_handle hh;
} topic_t;

/* Links ch into the topic `name`, creating the topic if needed, and sets
 * ch->topic. Returns 0 or -1 if out of memory. */
int topics_subscribe(channel_t *ch, const char *name, size_t len);

/* Unlinks ch from its topic; frees the topic when it was the last. */
void topics_unsubscribe(channel_t *ch);

topic_t *topics_find(const char *name, size_t len);

/* Sends event+payload to every subscriber of t: encoded once per serializer
 * in use, the frames shared by all queues. Returns the number of sockets it
 * was queued to. */
size_t topics_broadcast(topic_t *t, const char *event, const json_t *payload);

/* Calls fn for every topic with local subscribers. */
void topics_foreach(void (*fn)(topic_t *t, void *ctx), void *ctx);

#endif
