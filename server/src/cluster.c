/* cluster.c -- Redis pub/sub fan-out and presence replication (cluster.h).
 *
 * Sections: shards and their two connections (SUBSCRIBE / PUBLISH), with
 * reconnection; envelopes; topic fan-out; presence gossip (deltas,
 * heartbeats, state transfer, liveness); health. */
#include "cluster.h"

#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <parley/protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uthash.h>

#include "config.h"
#include "crdt.h"
#include "envelope.h"
#include "gate.h"
#include "log.h"
#include "metrics.h"
#include "presence.h"
#include "topics.h"

#define CHAN_PREFIX "parley:"
#define CHAN_CLUSTER "parley:cluster"

/* A PUBLISH connection whose output buffer holds more than this is not
 * keeping up (or Redis is stalled): further publishes are dropped and counted
 * rather than buffered without bound. */
#define PUB_BUFFER_MAX (8u << 20)
/* Reconnect backoff: 100 ms doubling to 5 s, with jitter. */
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 5.0
/* Presence deltas go out this often; heartbeats every HEARTBEAT_S. */
#define GOSSIP_S 0.05
#define HEARTBEAT_S 1.0

typedef struct shard {
    int index;
    char *host;
    int port;
    redisAsyncContext *sub, *pub;
    int sub_up, pub_up;
    double backoff;
    ev_timer retry;
} shard_t;

/* What we know of another node. */
typedef struct peer {
    char *id;
    double last_seen;
    double last_request;        /* when we last asked it for its state */
    UT_hash_handle hh;
} peer_t;

static shard_t *shards;
static int nshards;
static const char *self_id;
static char node_chan[64];
static peer_t *peers;
static ev_timer gossip_timer;
static double last_heartbeat;
static int stopping;

static void connect_shard(shard_t *s);
static void send_state_request(const char *to);

/* The Redis channel of a topic, "parley:t:<topic>", in a static buffer
 * (one thread; topics are at most 64 KiB). Returns its length. */
static char chan_buf[sizeof CHAN_PREFIX + 2 + 65536];

static size_t topic_chan(const char *topic, size_t len) {
    memcpy(chan_buf, CHAN_PREFIX "t:", sizeof CHAN_PREFIX + 1);
    size_t n = sizeof CHAN_PREFIX + 1;
    if (len > sizeof chan_buf - n)
        len = sizeof chan_buf - n;
    memcpy(chan_buf + n, topic, len);
    return n + len;
}

int cluster_enabled(void) {
    return nshards > 0;
}

/* ---- shards ----------------------------------------------------------------- */

/* FNV-1a: stable across nodes and restarts, so every node maps a topic to
 * the same Redis instance. */
static shard_t *shard_for(const char *topic, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)topic[i]) * 16777619u;
    return &shards[h % (uint32_t)nshards];
}

/* Control channels (cluster, per node) live on the first instance. */
static shard_t *control_shard(void) {
    return &shards[0];
}

static void schedule_retry(shard_t *s) {
    if (stopping || ev_is_active(&s->retry))
        return;
    double jitter = 0.5 + (double)rand() / RAND_MAX / 2; /* 0.5 .. 1.0 */
    ev_timer_set(&s->retry, s->backoff * jitter, 0.);
    ev_timer_start(EV_DEFAULT, &s->retry);
    s->backoff = s->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : s->backoff * 2;
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents) {
    connect_shard(w->data);
}

static void on_message(redisAsyncContext *ac, void *reply, void *priv);

static void subscribe(shard_t *s, const char *chan, size_t len) {
    if (s->sub_up)
        redisAsyncCommand(s->sub, on_message, NULL, "SUBSCRIBE %b", chan, len);
}

static void resubscribe_topic(topic_t *t, void *ctx) {
    shard_t *s = ctx;
    if (shard_for(t->name, t->len) == s)
        subscribe(s, chan_buf, topic_chan(t->name, t->len));
}

static void shard_ready(shard_t *s) {
    if (!s->sub_up || !s->pub_up)
        return;
    s->backoff = BACKOFF_MIN;
    plog(LOG_INFO, "redis_connected", "redis=%s:%d shard=%d", s->host, s->port, s->index);
    if (s == control_shard()) {
        subscribe(s, CHAN_CLUSTER, strlen(CHAN_CLUSTER));
        subscribe(s, node_chan, strlen(node_chan));
        /* Joined, or back after an outage: ask everyone for their state. */
        send_state_request(NULL);
    }
    topics_foreach(resubscribe_topic, s);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    shard_t *s = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        if (ac == s->sub)
            s->sub = NULL;
        else
            s->pub = NULL;
        plog(LOG_WARN, "redis_connect_failed", "redis=%s:%d err=\"%s\"", s->host, s->port,
             ac->errstr);
        schedule_retry(s);
        return;
    }
    if (ac == s->sub)
        s->sub_up = 1;
    else
        s->pub_up = 1;
    shard_ready(s);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    shard_t *s = ac->data;
    if (ac == s->sub) {
        s->sub = NULL;
        s->sub_up = 0;
    } else {
        s->pub = NULL;
        s->pub_up = 0;
    }
    if (stopping)
        return;
    metrics.redis_disconnects++;
    plog(LOG_WARN, "redis_disconnected", "redis=%s:%d shard=%d err=\"%s\"", s->host, s->port,
         s->index, status == REDIS_OK ? "closed" : ac->errstr);
    /* Drop the other connection too, so that both come back together and
     * the subscriptions are made afresh. */
    if (s->sub)
        redisAsyncDisconnect(s->sub);
    if (s->pub)
        redisAsyncDisconnect(s->pub);
    schedule_retry(s);
}

static redisAsyncContext *open_conn(shard_t *s) {
    redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
    if (!ac)
        return NULL;
    if (ac->err) {
        plog(LOG_WARN, "redis_connect_failed", "redis=%s:%d err=\"%s\"", s->host, s->port,
             ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = s;
    redisLibevAttach(EV_DEFAULT, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void connect_shard(shard_t *s) {
    if (!s->sub && !(s->sub = open_conn(s)))
        goto retry;
    if (!s->pub && !(s->pub = open_conn(s)))
        goto retry;
    return;
retry:
    schedule_retry(s);
}

/* ---- envelopes ---------------------------------------------------------------- */

/* Envelopes (envelope.h) are encoded and decoded by envelope.c. */
static void publish(shard_t *s, const char *chan, size_t chanlen, envelope_kind_t kind,
                    const char *topic, const char *event, const json_t *payload) {
    if (!s->pub_up || sdslen(s->pub->c.obuf) > PUB_BUFFER_MAX) {
        metrics.redis_dropped++;
        return;
    }
    proto_buf_t b;
    proto_buf_init(&b);
    if (envelope_encode(&b, self_id, kind, topic, event, payload) == 0) {
        redisAsyncCommand(s->pub, NULL, NULL, "PUBLISH %b %b", chan, chanlen, b.data, b.len);
        metrics.redis_published++;
    }
    proto_buf_free(&b);
}

static void publish_control(const char *chan, envelope_kind_t kind, const char *event,
                            const json_t *payload) {
    publish(control_shard(), chan, strlen(chan), kind, self_id, event, payload);
}

/* ---- topic fan-out --------------------------------------------------------------- */

void cluster_topic_added(const char *topic, size_t len) {
    if (nshards)
        subscribe(shard_for(topic, len), chan_buf, topic_chan(topic, len));
}

void cluster_topic_removed(const char *topic, size_t len) {
    if (!nshards)
        return;
    shard_t *s = shard_for(topic, len);
    size_t n = topic_chan(topic, len);
    if (s->sub_up)
        redisAsyncCommand(s->sub, NULL, NULL, "UNSUBSCRIBE %b", chan_buf, n);
}

void cluster_publish(const char *topic, const char *event, const json_t *payload) {
    if (!nshards)
        return;
    size_t len = strlen(topic);
    size_t n = topic_chan(topic, len);
    publish(shard_for(topic, len), chan_buf, n, ENVELOPE_BROADCAST, topic, event, payload);
}

/* ---- presence gossip -------------------------------------------------------------- */

static peer_t *peer_get(const char *id) {
    peer_t *p;
    HASH_FIND_STR(peers, id, p);
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    if (!p || !(p->id = strdup(id))) {
        free(p);
        return NULL;
    }
    HASH_ADD_KEYPTR(hh, peers, p->id, strlen(p->id), p);
    plog(LOG_INFO, "node_seen", "node=%s", id);
    return p;
}

static void peer_forget(peer_t *p) {
    HASH_DEL(peers, p);
    free(p->id);
    free(p);
}

/* The channel only node `id` reads: 0, or -1 (and a log line) for an id too
 * long to name one, which cut short would name another node's. Parley's
 * own ids are 15 characters; a longer one comes from something else
 * publishing on the cluster's channels. */
static int node_channel(char *out, size_t size, const char *id) {
    int n = snprintf(out, size, CHAN_PREFIX "n:%s", id);
    if (n < 0 || (size_t)n >= size) {
        metrics.redis_bad_envelopes++;
        plog_limited(LOG_WARN, "cluster_bad_node_id", "length=%zu", strlen(id));
        return -1;
    }
    return 0;
}

/* Asks node `to` (or every node, when NULL) for its full state. */
static void send_state_request(const char *to) {
    json_t *empty = json_object();
    metrics.presence_syncs++;
    if (to) {
        char chan[128];
        if (node_channel(chan, sizeof chan, to) == 0)
            publish_control(chan, ENVELOPE_STATE_REQUEST, "state_request", empty);
    } else {
        publish_control(CHAN_CLUSTER, ENVELOPE_STATE_REQUEST, "state_request", empty);
    }
    json_decref(empty);
}

/* A peer we have missed something from: ask it, at most once a second. */
static void request_state_from(peer_t *p, double now) {
    if (now - p->last_request < 1.0)
        return;
    p->last_request = now;
    send_state_request(p->id);
}

/* ---- reconnect bans ------------------------------------------------------------------ */

_Static_assert(sizeof(penalty_key_t) == ENVELOPE_BAN_KEY, "a penalty key travels as its bytes");

void cluster_share_ban(const penalty_key_t *k, unsigned offences, double ban_s) {
    if (!nshards)
        return;
    envelope_ban_t b = {.offences = offences, .ban_s = ban_s};
    memcpy(b.key, k, sizeof b.key);
    json_t *payload = envelope_ban_payload(&b);
    if (payload)
        publish_control(CHAN_CLUSTER, ENVELOPE_BAN, "ban", payload);
    json_decref(payload);
}

static void on_ban(const envelope_t *env) {
    envelope_ban_t b;
    if (envelope_ban_read(env->payload, &b)) {
        metrics.redis_bad_envelopes++;
        plog_limited(LOG_WARN, "cluster_bad_ban", "node=%s", env->origin);
        return;
    }
    penalty_key_t k;
    memcpy(&k, b.key, sizeof k);
    gate_ban_adopted(&k, b.offences, b.ban_s, env->origin);
}

/* A message from another node, other than a broadcast: its effect on the
 * CRDT is envelope_apply()'s; what follows from it (peers, replies) is ours. */
static void on_peer_message(const envelope_t *env) {
    crdt_t *c = presence_crdt();
    double now = ev_now(EV_DEFAULT);
    int r = envelope_apply(c, env);
    if (r & ENVELOPE_LEFT) {
        plog(LOG_INFO, "node_left", "node=%s", env->origin);
        peer_t *p;
        HASH_FIND_STR(peers, env->origin, p);
        if (p)
            peer_forget(p);
        return;
    }
    if (r & ENVELOPE_IGNORED)
        return;
    peer_t *p = peer_get(env->origin);
    if (!p)
        return;
    p->last_seen = now;
    if (r & ENVELOPE_CAME_UP)
        plog(LOG_INFO, "node_up", "node=%s", env->origin);
    if (r & ENVELOPE_MALFORMED)
        plog(LOG_WARN, env->kind == ENVELOPE_DELTA ? "presence_bad_delta" : "presence_bad_state",
             "node=%s", env->origin);
    if (r & ENVELOPE_MISSED)
        request_state_from(p, now);
    if (env->kind == ENVELOPE_BAN)
        on_ban(env);
    if (r & ENVELOPE_SEND_STATE) {
        json_t *state = crdt_state(c);
        char chan[128];
        if (state && node_channel(chan, sizeof chan, env->origin) == 0)
            publish_control(chan, ENVELOPE_STATE, "state", state);
        json_decref(state);
    }
}

/* Liveness: a peer silent for --down-period is down (its users leave from
 * everyone's view); after --permdown-period it is purged. */
static void check_peers(double now) {
    crdt_t *c = presence_crdt();
    peer_t *p, *tmp;
    HASH_ITER(hh, peers, p, tmp) {
        double silent = now - p->last_seen;
        if (silent >= (double)config.permdown_period) {
            plog(LOG_WARN, "node_permdown", "node=%s silent_s=%.0f", p->id, silent);
            crdt_replica_permdown(c, p->id);
            peer_forget(p);
        } else if (silent >= (double)config.down_period &&
                   crdt_replica_status(c, p->id) == CRDT_UP) {
            plog(LOG_WARN, "node_down", "node=%s silent_s=%.0f", p->id, silent);
            crdt_replica_down(c, p->id);
        }
    }
}

static void on_gossip(struct ev_loop *loop, ev_timer *w, int revents) {
    crdt_t *c = presence_crdt();
    double now = ev_now(loop);
    json_t *delta = crdt_take_delta(c);
    if (delta) {
        publish_control(CHAN_CLUSTER, ENVELOPE_DELTA, "delta", delta);
        json_decref(delta);
    }
    if (now - last_heartbeat >= HEARTBEAT_S) {
        last_heartbeat = now;
        json_t *clocks = crdt_clocks(c);
        if (clocks)
            publish_control(CHAN_CLUSTER, ENVELOPE_HEARTBEAT, "heartbeat", clocks);
        json_decref(clocks);
        check_peers(now);
    }
}

/* ---- incoming ------------------------------------------------------------------------ */

static void on_message(redisAsyncContext *ac, void *r, void *priv) {
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(reply->element[0]->str, "message") != 0 ||
        reply->element[2]->type != REDIS_REPLY_STRING)
        return; /* subscribe / unsubscribe confirmations */
    const redisReply *data = reply->element[2];
    envelope_t env;
    int rc = envelope_decode((const uint8_t *)data->str, data->len, &env);
    if (rc) {
        metrics.redis_bad_envelopes++;
        plog(LOG_WARN, "redis_bad_envelope", "err=\"%s\"", proto_strerror(rc));
        return;
    }
    metrics.redis_received++;
    if (strcmp(env.origin, self_id) != 0) { /* our own echo is ignored */
        if (env.kind == ENVELOPE_BROADCAST) {
            topic_t *t = topics_find(env.topic, env.topic_len);
            if (t)
                topics_broadcast(t, env.event, env.payload);
        } else {
            on_peer_message(&env);
        }
    }
    envelope_free(&env);
}

/* ---- lifecycle and health ------------------------------------------------------------ */

int cluster_init(const char *node_id) {
    self_id = node_id;
    snprintf(node_chan, sizeof node_chan, CHAN_PREFIX "n:%s", node_id);
    if (!*config.redis)
        return 0;
    /* --redis a:1,b:2 (or the flag given several times). */
    char *list = strdup(config.redis), *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(tok, ':');
        long port = colon ? strtol(colon + 1, NULL, 10) : 0;
        if (!colon || colon == tok || port <= 0 || port > 65535) {
            fprintf(stderr, "parley: --redis must be HOST:PORT, not \"%s\"\n", tok);
            free(list);
            return -1;
        }
        shard_t *ns = realloc(shards, (size_t)(nshards + 1) * sizeof *ns);
        if (!ns) {
            free(list);
            return -1;
        }
        shards = ns;
        shard_t *s = &shards[nshards];
        memset(s, 0, sizeof *s);
        s->index = nshards++;
        *colon = '\0';
        s->host = strdup(tok);
        s->port = (int)port;
        s->backoff = BACKOFF_MIN;
    }
    free(list);
    srand((unsigned)(ev_time() * 1e6) ^ (unsigned)getpid());
    for (int i = 0; i < nshards; i++) { /* after the array stops moving */
        ev_timer_init(&shards[i].retry, on_retry, 0., 0.);
        shards[i].retry.data = &shards[i];
        connect_shard(&shards[i]);
    }
    ev_timer_init(&gossip_timer, on_gossip, GOSSIP_S, GOSSIP_S);
    ev_timer_start(EV_DEFAULT, &gossip_timer);
    plog(LOG_INFO, "cluster", "node=%s redis_shards=%d", node_id, nshards);
    return 0;
}

void cluster_shutdown(void) {
    if (!nshards)
        return;
    /* Tell the others we are going, so that our users leave everywhere at
     * once rather than after the down period. */
    json_t *empty = json_object();
    publish_control(CHAN_CLUSTER, ENVELOPE_LEAVING, "leaving", empty);
    json_decref(empty);
    stopping = 1;
    ev_timer_stop(EV_DEFAULT, &gossip_timer);
    for (int i = 0; i < nshards; i++) {
        ev_timer_stop(EV_DEFAULT, &shards[i].retry);
        /* redisAsyncDisconnect sends what is buffered (the "leaving" above)
         * before closing. */
        if (shards[i].pub)
            redisAsyncDisconnect(shards[i].pub);
        if (shards[i].sub)
            redisAsyncDisconnect(shards[i].sub);
    }
    /* Let the loop write the buffered commands out. */
    for (int spins = 0; spins < 100; spins++) {
        int open = 0;
        for (int i = 0; i < nshards; i++)
            open += (shards[i].pub != NULL) + (shards[i].sub != NULL);
        if (!open)
            break;
        ev_run(EV_DEFAULT, EVRUN_ONCE | EVRUN_NOWAIT);
    }
    peer_t *p, *tmp;
    HASH_ITER(hh, peers, p, tmp) {
        peer_forget(p);
    }
}

const char *cluster_status(void) {
    if (!nshards)
        return "standalone";
    for (int i = 0; i < nshards; i++)
        if (!shards[i].sub_up || !shards[i].pub_up)
            return "degraded";
    return "ok";
}

const char *cluster_health_json(void) {
    static char buf[4096];
    if (!nshards)
        return "";
    size_t n = (size_t)snprintf(buf, sizeof buf, ",\"cluster\":\"%s\",\"peers\":%u,\"redis\":[",
                                cluster_status(), HASH_COUNT(peers));
    for (int i = 0; i < nshards && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s{\"addr\":\"%s:%d\",\"up\":%s}",
                              i ? "," : "", shards[i].host, shards[i].port,
                              shards[i].sub_up && shards[i].pub_up ? "true" : "false");
    if (n < sizeof buf)
        snprintf(buf + n, sizeof buf - n, "]");
    return buf;
}
