/* topics.c -- topic registry and fan-out. */
#include "topics.h"

#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#include "auth.h"
#include "cluster.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "presence.h"
#include "session.h"

static topic_t *registry;

topic_t *topics_find(const char *name, size_t len) {
    topic_t *t;
    HASH_FIND(hh, registry, name, len, t);
    return t;
}

int topics_subscribe(channel_t *ch, const char *name, size_t len) {
    topic_t *t = topics_find(name, len);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t || !(t->name = malloc(len + 1))) {
            free(t);
            return -1;
        }
        memcpy(t->name, name, len);
        t->name[len] = '\0';
        t->len = len;
        HASH_ADD_KEYPTR(hh, registry, t->name, t->len, t);
        metrics.topics++;
        cluster_topic_added(t->name, t->len); /* this node now wants the topic's traffic */
    }
    DL_APPEND2(t->subs, ch, tprev, tnext);
    t->nsubs++;
    ch->topic = t;
    return 0;
}

void topics_unsubscribe(channel_t *ch) {
    topic_t *t = ch->topic;
    if (!t)
        return;
    DL_DELETE2(t->subs, ch, tprev, tnext);
    ch->topic = NULL;
    if (--t->nsubs == 0) {
        presence_topic_gone(t->name);
        cluster_topic_removed(t->name, t->len);
        HASH_DEL(registry, t);
        free(t->name);
        free(t);
        metrics.topics--;
    }
}

size_t topics_broadcast(topic_t *t, const char *event, const json_t *payload) {
    frame_t *frames[PROTO_NFORMATS] = {NULL};
    size_t sent = 0;
    channel_t *ch;
    /* A queue that overflows closes its session, but the session stays
     * subscribed until lws reports the close, so this list is not changed
     * while we walk it. */
    DL_FOREACH2(t->subs, ch, tnext) {
        session_t *s = ch->session;
        frame_t **f = &frames[s->format];
        if (!*f && !(*f = frame_encode(s->format, NULL, NULL, auth_topic_wire(t->name), event, payload))) {
            plog(LOG_ERROR, "encode_failed", "topic_len=%zu", t->len);
            break;
        }
        if (session_enqueue(s, *f) == 0)
            sent++;
    }
    for (int i = 0; i < PROTO_NFORMATS; i++)
        frame_unref(frames[i]);
    metrics.broadcasts++;
    return sent;
}

void topics_foreach(void (*fn)(topic_t *t, void *ctx), void *ctx) {
    topic_t *t, *tmp;
    HASH_ITER(hh, registry, t, tmp) {
        fn(t, ctx);
    }
}
