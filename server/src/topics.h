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

/* One allocation per joined topic (join_ref stored inline): this is part of
 * the memory every idle connection costs, so it stays small. A session's
 * channels are a singly-linked list; lookups by topic name walk it, which
 * for the few topics a socket joins (--max-channels, 100 by default) costs
 * less than hashing, and a hash table's buckets would cost ~600 bytes per
 * socket. */
typedef struct channel {
    struct session *session;
    struct topic *topic;
    struct channel *tprev, *tnext;  /* in the topic's subscriber list */
    struct channel *snext;          /* in the session's list */
    unsigned char has_join_ref;     /* 0 when the client sent none (V1) */
    char join_ref_[];               /* NUL-terminated; use channel_join_ref() */
} channel_t;

/* The channel's join_ref, or NULL when the client sent none (V1). */
static inline const char *channel_join_ref(const channel_t *ch) {
    return ch->has_join_ref ? ch->join_ref_ : NULL;
}

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
