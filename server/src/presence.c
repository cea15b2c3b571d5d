/* presence.c -- presence over the wire (see presence.h).
 *
 * Sections: topic patterns; per-topic pending diffs and cached state; the
 * CRDT's change callback; joins, leaves and updates from sessions; the batch
 * timer and flush. */
#include "presence.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utlist.h>

#include "auth.h"
#include "config.h"
#include "frame.h"
#include "log.h"
#include "namespaces.h"
#include "metrics.h"
#include "session.h"
#include "topics.h"

/* Per topic: the diff being collected and the cached presence_state. */
typedef struct ptopic {
    char *name;
    json_t *joins, *leaves;             /* {key: {"metas": [...]}}, NULL when empty */
    json_t *unseen;                     /* {phx_ref: true}: pending joins no state has shown */
    frame_t *state[PROTO_NFORMATS];     /* cached presence_state frames */
    struct ptopic *dnext;               /* on the dirty list */
    int dirty;
    UT_hash_handle hh;
} ptopic_t;

static crdt_t *crdt;
static ptopic_t *ptopics;
static ptopic_t *dirty;                 /* singly linked via dnext */
static ev_timer batch_timer;

#define USER_MAX 256
/* A meta nests at most this deep: presence states travel between nodes
 * inside envelopes that add a few levels of their own. */
#define META_DEPTH_MAX 16

static int json_depth(const json_t *v) {
    int d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e) {
            int x = json_depth(e);
            d = x > d ? x : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            int x = json_depth(e);
            d = x > d ? x : d;
        }
        return d + 1;
    }
    return 0;
}

/* NULL if `meta` may be stored, else the reason. */
static const char *check_meta(const json_t *meta) {
    char *text = json_dumps(meta, JSON_COMPACT);
    size_t len = text ? strlen(text) : 0;
    free(text);
    if (len > (size_t)config.presence_meta_max || json_depth(meta) > META_DEPTH_MAX)
        return "presence meta too large";
    return NULL;
}

/* ---- topic patterns --------------------------------------------------------- */

/* --presence-topics: comma-separated topics; a trailing '*' matches any
 * suffix, as Phoenix's channel routes do. */
int presence_enabled(const char *key) {
    const char *topic = auth_topic_wire(key);
    int ns = ns_for(topic)->presence;
    if (ns >= 0)
        return ns;
    const char *p = config.presence_topics;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n > 0 && p[n - 1] == '*') {
            if (strncmp(topic, p, n - 1) == 0)
                return 1;
        } else if (n > 0 && strlen(topic) == n && strncmp(topic, p, n) == 0) {
            return 1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* ---- pending diffs and cached state ------------------------------------------ */

static ptopic_t *ptopic_get(const char *name, int create) {
    ptopic_t *pt;
    HASH_FIND_STR(ptopics, name, pt);
    if (pt || !create)
        return pt;
    pt = calloc(1, sizeof *pt);
    if (!pt || !(pt->name = strdup(name))) {
        free(pt);
        return NULL;
    }
    HASH_ADD_KEYPTR(hh, ptopics, pt->name, strlen(pt->name), pt);
    return pt;
}

static void drop_state(ptopic_t *pt) {
    for (int i = 0; i < PROTO_NFORMATS; i++) {
        frame_unref(pt->state[i]);
        pt->state[i] = NULL;
    }
}

static void ptopic_free(ptopic_t *pt) {
    HASH_DEL(ptopics, pt);
    drop_state(pt);
    json_decref(pt->joins);
    json_decref(pt->leaves);
    json_decref(pt->unseen);
    free(pt->name);
    free(pt);
}

/* {phx_ref, [phx_ref_prev,] ...meta}: one element of a "metas" list. */
static json_t *meta_item(const crdt_entry_t *e) {
    char ref[128];
    json_t *m = json_copy(e->meta);
    if (!m)
        return NULL;
    json_object_set_new(m, "phx_ref", json_string(crdt_ref(e, e->clock, ref, sizeof ref)));
    if (e->prev_clock)
        json_object_set_new(m, "phx_ref_prev",
                            json_string(crdt_ref(e, e->prev_clock, ref, sizeof ref)));
    return m;
}

/* Appends e's meta to map[e->key].metas. */
static int add_meta(json_t *map, const crdt_entry_t *e) {
    json_t *slot = json_object_get(map, e->key);
    if (!slot) {
        slot = json_pack("{s:[]}", "metas");
        if (!slot || json_object_set_new(map, e->key, slot))
            return -1;
    }
    return json_array_append_new(json_object_get(slot, "metas"), meta_item(e));
}

static void schedule_flush(void) {
    if (!ev_is_active(&batch_timer)) {
        ev_timer_set(&batch_timer, (double)config.presence_batch_ms / 1000.0, 0.);
        ev_timer_start(EV_DEFAULT, &batch_timer);
    }
}

/* A leave of a meta that joined in this batch, and that no presence_state
 * has shown yet, cancels that join: nobody has seen it, so neither goes
 * out. Without this, a socket that joins and leaves a topic over and over
 * (each duplicate join is a leave and a join) made every member receive a
 * diff that grew with every join. Returns 1 if it cancelled. */
static int cancel_unseen(ptopic_t *pt, const crdt_entry_t *e) {
    char ref[128];
    crdt_ref(e, e->clock, ref, sizeof ref);
    if (!pt->unseen || !json_object_get(pt->unseen, ref))
        return 0;
    json_object_del(pt->unseen, ref);
    json_t *metas = json_object_get(json_object_get(pt->joins, e->key), "metas");
    size_t i;
    json_t *m;
    json_array_foreach(metas, i, m) {
        const char *r = json_string_value(json_object_get(m, "phx_ref"));
        if (r && strcmp(r, ref) == 0) {
            json_array_remove(metas, i);
            if (json_array_size(metas) == 0)
                json_object_del(pt->joins, e->key);
            return 1;
        }
    }
    return 0;
}

/* The CRDT reports every visible change here: it goes into the topic's
 * pending diff. Topics nobody on this node subscribes to are skipped. */
static void on_change(void *ctx, const crdt_entry_t *e, int joined) {
    (void)ctx;
    if (!topics_find(e->topic->name, strlen(e->topic->name)))
        return;
    ptopic_t *pt = ptopic_get(e->topic->name, 1);
    if (!pt)
        return;
    if (!joined && cancel_unseen(pt, e))
        return;
    if (joined) {
        char ref[128];
        if (!pt->unseen)
            pt->unseen = json_object();
        if (pt->unseen)
            json_object_set_new(pt->unseen, crdt_ref(e, e->clock, ref, sizeof ref), json_true());
    }
    json_t **side = joined ? &pt->joins : &pt->leaves;
    if (!*side && !(*side = json_object()))
        return;
    if (add_meta(*side, e)) {
        /* jansson refuses a key that is not UTF-8 */
        char q[96];
        plog(LOG_ERROR, "presence_diff_failed", "key=%s reason=\"out of memory, or a key not UTF-8\"",
             log_quote(e->key, q, sizeof q));
    }
    if (!pt->dirty) {
        pt->dirty = 1;
        pt->dnext = dirty;
        dirty = pt;
    }
    schedule_flush();
}

/* presence_state for a topic: {key: {metas: [...]}} of every visible entry. */
static json_t *build_state(const char *topic) {
    json_t *state = json_object();
    crdt_topic_t *t = crdt_topic(crdt, topic);
    crdt_entry_t *e;
    if (t && state) {
        DL_FOREACH2(t->entries, e, tnext) {
            if (e->replica->status == CRDT_UP && add_meta(state, e)) {
                json_decref(state);
                return NULL;
            }
        }
    }
    return state;
}

/* Orders by key; within a key, entries keep their order in the topic list
 * (the `order` array holds each entry's position), as the tree path does. */
typedef struct keyed {
    crdt_entry_t *e;
    size_t order;
} keyed_t;

#define LIT(out, s) proto_buf_append((out), (s), sizeof(s) - 1)

static int cmp_key(const void *a, const void *b) {
    const keyed_t *x = a, *y = b;
    int c = strcmp(x->e->key, y->e->key);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* presence_state as JSON text, for the JSON serializers, written straight
 * from the entries (no jansson tree: this is the cost that grows with the
 * room). Entries are sorted by key so that each key's metas are adjacent. */
static int state_text(const char *topic, proto_buf_t *out) {
    crdt_topic_t *t = crdt_topic(crdt, topic);
    size_t n = 0, cap = t ? t->visible : 0;
    keyed_t *kv = cap ? malloc(cap * sizeof *kv) : NULL;
    crdt_entry_t *e;
    if (cap && !kv)
        return -1;
    if (t) {
        DL_FOREACH2(t->entries, e, tnext) {
            if (e->replica->status == CRDT_UP && n < cap) {
                kv[n].e = e;
                kv[n].order = n;
                n++;
            }
        }
    }
    if (n)
        qsort(kv, n, sizeof *kv, cmp_key);
    int rc = LIT(out, "{");
    char ref[128];
    for (size_t i = 0; i < n && rc == 0; i++) {
        e = kv[i].e;
        if (i == 0 || strcmp(e->key, kv[i - 1].e->key) != 0) {
            if (i)
                rc = LIT(out, "]},");
            rc = rc ? rc : proto_buf_append_json_string(out, e->key);
            rc = rc ? rc : LIT(out, ":{\"metas\":[");
        } else {
            rc = LIT(out, ",");
        }
        /* The meta, with phx_ref (and phx_ref_prev) added before its '}'. */
        size_t mark = out->len;
        rc = rc ? rc : proto_buf_append_json_value(out, e->meta);
        if (rc)
            break;
        out->len--; /* the closing '}' */
        if (out->len > mark + 1)
            rc = LIT(out, ",");
        rc = rc ? rc : LIT(out, "\"phx_ref\":");
        rc = rc ? rc : proto_buf_append_json_string(out, crdt_ref(e, e->clock, ref, sizeof ref));
        if (!rc && e->prev_clock) {
            rc = LIT(out, ",\"phx_ref_prev\":");
            rc = rc ? rc : proto_buf_append_json_string(out, crdt_ref(e, e->prev_clock, ref, sizeof ref));
        }
        rc = rc ? rc : LIT(out, "}");
    }
    if (!rc && n)
        rc = LIT(out, "]}");
    rc = rc ? rc : LIT(out, "}");
    free(kv);
    return rc;
}

static frame_t *state_frame(proto_format_t format, const char *topic) {
    if (format == PROTO_MSGPACK) {
        json_t *state = build_state(topic);
        frame_t *f = state ? frame_encode(format, NULL, NULL, auth_topic_wire(topic), "presence_state", state) : NULL;
        json_decref(state);
        return f;
    }
    proto_buf_t text;
    proto_buf_init(&text);
    frame_t *f = NULL;
    if (state_text(topic, &text) == 0)
        f = frame_encode_json(format, NULL, NULL, auth_topic_wire(topic), "presence_state", (const char *)text.data,
                              text.len);
    proto_buf_free(&text);
    return f;
}

static void push_state(session_t *s, const char *topic) {
    ptopic_t *pt = ptopic_get(topic, 1);
    if (!pt)
        return;
    frame_t **f = &pt->state[s->format];
    if (!*f) {
        if (!(*f = state_frame(s->format, topic))) {
            plog(LOG_ERROR, "presence_state_failed", "reason=\"out of memory\"");
            return;
        }
        /* This state shows every join so far: none of them may be cancelled
         * any more. (A state built earlier and sent again shows only the
         * joins before it.) */
        if (pt->unseen)
            json_object_clear(pt->unseen);
    }
    session_enqueue(s, *f);
}

/* ---- sessions ------------------------------------------------------------------- */

/* The presence key of a join: a token's sub; without a token, the payload's
 * "user", else the "user" connect parameter. */
static const char *join_user(const session_t *s, const json_t *payload) {
    if (s->ident && s->ident->verified)
        return s->ident->user;
    json_t *u = json_object_get(payload, "user");
    return u ? json_string_value(u) : s->ident ? s->ident->user : NULL;
}

const char *presence_check_join(const session_t *s, const char *topic, const json_t *payload) {
    if (!presence_enabled(topic))
        return NULL;
    json_t *u = s->ident && s->ident->verified ? NULL : json_object_get(payload, "user");
    if (u && (!json_is_string(u) || json_string_length(u) == 0 ||
              json_string_length(u) > USER_MAX ||
              strlen(json_string_value(u)) != json_string_length(u)))
        return "invalid user";
    if (!join_user(s, payload))
        return NULL;
    return check_meta(payload);
}

/* The meta: the payload without "user", then the token's meta claim (which
 * the client cannot override), plus the server's online_at. */
static json_t *make_meta(const session_t *s, const json_t *payload, json_int_t online_at) {
    json_t *meta = json_copy((json_t *)payload);
    if (!meta)
        return NULL;
    json_object_del(meta, "user");
    if (s->ident && s->ident->meta && json_object_update(meta, s->ident->meta)) {
        json_decref(meta);
        return NULL;
    }
    json_object_set_new(meta, "online_at", json_integer(online_at));
    return meta;
}

void presence_joined(session_t *s, const char *topic, const json_t *payload) {
    if (!crdt || !presence_enabled(topic))
        return;
    const char *user = join_user(s, payload);
    crdt_entry_t *e = NULL;
    if (user) {
        json_t *meta = make_meta(s, payload, (json_int_t)time(NULL));
        if (!meta || !(e = crdt_join(crdt, s->id, topic, user, meta)))
            plog(LOG_ERROR, "presence_track_failed", "reason=\"out of memory\"");
        json_decref(meta);
    }
    (void)e;
    push_state(s, topic);
}

void presence_left(session_t *s, const char *topic) {
    crdt_entry_t *e = crdt ? crdt_find(crdt, s->id, topic) : NULL;
    if (e)
        crdt_leave(crdt, e);
}

void presence_closed(session_t *s) {
    if (crdt)
        crdt_leave_conn(crdt, s->id);
}

const char *presence_update(session_t *s, const char *topic, const json_t *payload) {
    crdt_entry_t *e = crdt ? crdt_find(crdt, s->id, topic) : NULL;
    if (!e)
        return "not tracked";
    const char *why = check_meta(payload);
    if (why)
        return why;
    json_t *online = json_object_get(e->meta, "online_at");
    json_t *meta = make_meta(s, payload, online ? json_integer_value(online) : (json_int_t)time(NULL));
    crdt_entry_t *n = meta ? crdt_update(crdt, e, meta) : NULL;
    json_decref(meta);
    return n ? NULL : "out of memory";
}

void presence_topic_gone(const char *topic) {
    ptopic_t *pt = ptopic_get(topic, 0);
    if (pt && !pt->dirty)
        ptopic_free(pt); /* a dirty one is freed by the flush */
}

/* ---- batching ---------------------------------------------------------------------- */

void presence_flush(void) {
    while (dirty) {
        ptopic_t *pt = dirty;
        dirty = pt->dnext;
        pt->dnext = NULL;
        pt->dirty = 0;
        topic_t *t = topics_find(pt->name, strlen(pt->name));
        if (pt->unseen)
            json_object_clear(pt->unseen);
        /* Changes that cancelled out leave nothing to send. */
        if (t && json_object_size(pt->joins) + json_object_size(pt->leaves) > 0) {
            json_t *payload = json_pack("{s:o,s:o}", "joins", pt->joins ? pt->joins : json_object(),
                                        "leaves", pt->leaves ? pt->leaves : json_object());
            pt->joins = pt->leaves = NULL;
            if (payload) {
                topics_broadcast(t, "presence_diff", payload);
                metrics.presence_diffs++;
            }
            json_decref(payload);
        }
        json_decref(pt->joins);
        json_decref(pt->leaves);
        pt->joins = pt->leaves = NULL;
        /* The state changed: the next joiner gets a fresh encoding. A topic
         * without local subscribers keeps nothing. */
        drop_state(pt);
        if (!t)
            ptopic_free(pt);
    }
}

static void on_batch_timer(struct ev_loop *loop, ev_timer *w, int revents) {
    presence_flush();
}

int presence_init(const char *node_id) {
    crdt = crdt_new(node_id, on_change, NULL);
    if (!crdt)
        return -1;
    ev_timer_init(&batch_timer, on_batch_timer, 0., 0.);
    return 0;
}

void presence_shutdown(void) {
    ev_timer_stop(EV_DEFAULT, &batch_timer);
    dirty = NULL;
    ptopic_t *pt, *tmp;
    HASH_ITER(hh, ptopics, pt, tmp) {
        ptopic_free(pt);
    }
    crdt_free(crdt);
    crdt = NULL;
}

crdt_t *presence_crdt(void) {
    return crdt;
}
