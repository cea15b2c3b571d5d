/* cluster.h -- several parley nodes acting as one service through Redis
 * pub/sub (--redis HOST:PORT, repeatable). Without --redis the node is
 * standalone and every function here is a no-op.
 *
 * Fan-out: a node SUBSCRIBEs to a topic's Redis channel while it has local
 * subscribers to that topic; a broadcast is delivered locally at once and
 * PUBLISHed once as a MessagePack envelope; receiving nodes fan it out
 * locally through the same encode-once path and ignore their own echo.
 * Topics are spread over the Redis instances by a stable hash.
 *
 * Presence: the CRDT's deltas and a heartbeat go out on a cluster channel;
 * a node that misses something asks a peer for its full state on that peer's
 * own channel. Peers whose heartbeats stop are marked down, then
 * permanently down. Reconnect bans go out on the cluster channel too.
 * docs/cluster.md has the channel layout, the envelope and every failure
 * mode. */
#ifndef PARLEY_CLUSTER_H
#define PARLEY_CLUSTER_H

#include <jansson.h>
#include <stddef.h>

#include "penalty.h"

/* Connects to the --redis instances (if any) on the default libev loop.
 * Returns 0, or -1 if a --redis address is malformed. */
int cluster_init(const char *node_id);

/* Announces a graceful stop (peers drop this node's presence at once) and
 * closes the Redis connections. */
void cluster_shutdown(void);

int cluster_enabled(void);

/* The first local subscriber of a topic joined / the last one left. */
void cluster_topic_added(const char *topic, size_t len);
void cluster_topic_removed(const char *topic, size_t len);

/* Sends a broadcast that was just delivered locally to the other nodes. */
void cluster_publish(const char *topic, const char *event, const json_t *payload);

/* Sends a reconnect ban this node just imposed (gate.c) to the other
 * nodes, which adopt it: a client closed for abuse is refused by every
 * node, not only by the one it abused. */
void cluster_share_ban(const penalty_key_t *k, unsigned offences, double ban_s);

/* "standalone", "ok" (every Redis connection up) or "degraded". */
const char *cluster_status(void);

/* Cluster fields for /healthz as a JSON object text (appended by http.c), or
 * "" when standalone. Valid until the next call. */
const char *cluster_health_json(void);

#endif
