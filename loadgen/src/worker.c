/* worker.c -- a worker process: owns every connection whose index i has
 * i mod W == w, on its own epoll loop; opens them at its share of the ramp,
 * joins, sends on the scenario's open-loop schedule, reads and accounts for
 * everything the server delivers, and keeps its counters in its shared slot.
 *
 * Open loop: a message is due at a fixed time (t0 + its place in the
 * schedule) and carries that intended time, not the time it was written, so
 * a late send (the server pushing back, or this process busy) shows up as
 * latency instead of silently stretching the schedule (the "coordinated
 * omission" that hides latency in closed-loop generators). How late the
 * writes were is reported separately (send lag). */
#include "loadgen.h"
#include "scan.h"
#include "sys.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <parley/protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

enum cphase { C_NEW, C_CONNECTING, C_OPEN, C_JOINING, C_JOINED, C_GONE };

/* What a subscriber knows about one publisher of its topic: the sequence
 * number expected next, a window of the 64 before it (bit j: next-1-j was
 * read), and how many distinct messages were read. */
typedef struct pubstate {
    uint32_t next, got;
    uint64_t window;
} pubstate_t;

typedef struct client {
    ws_conn_t ws;            /* first: epoll's data.ptr is the client */
    uint32_t index;
    uint8_t phase;
    uint8_t was_joined;      /* joined before the run began: expects every message */
    uint8_t converged;
    uint8_t dirty;           /* in the dirty list: output queued, not yet flushed */
    uint32_t room;
    uint32_t npairs;
    pubstate_t *pairs;
    uint64_t t_open, t_join;
    uint64_t ref;
    uint32_t seq;            /* messages sent (rooms) */
    uint64_t *view;          /* presence: bitmap of user indexes */
    uint32_t nview;
} client_t;

static wslot_t *S;
static control_t *C;
static int me, nw;
static client_t *cl;
static int ncl;
static int ep;
static proto_format_t fmt;
static int inflight;          /* handshakes and joins under way */
static int fail_logs;
static proto_buf_t obuf;
static uint64_t *my_times;    /* fanout: this worker's first/last read per message */

/* Chat messages are most of what arrives. The server encodes them as
 * [null, null, topic, "msg", payload], so per topic the bytes before the
 * payload are known in advance: a message starting with them goes straight
 * to on_chat without slicing the envelope. */
typedef struct prefix {
    uint8_t *p;
    size_t n;
} prefix_t;
static prefix_t *prefixes; /* per room (one for the single-topic scenarios) */
static int nprefixes;
/* The same for presence_state and presence_diff (presence: one topic), so
 * that their large payloads are not scanned once more just to find them. */
static prefix_t state_prefix, diff_prefix;

/* Publishers with messages queued in this pass of the schedule: flushed
 * once each at the end of it (a burst leaves in few writes), without
 * looking at every connection. */
static client_t **dirty;
static int ndirty;

static void mark_dirty(client_t *c) {
    if (!c->dirty) {
        c->dirty = 1;
        dirty[ndirty++] = c;
    }
}

static void flush_dirty(void) {
    for (int i = 0; i < ndirty; i++) {
        dirty[i]->dirty = 0;
        if (dirty[i]->ws.state == WS_OPEN)
            ws_flush(&dirty[i]->ws);
    }
    ndirty = 0;
}

/* The first few failures of a worker are worth a line each; the rest are
 * counted in the report. */
static void warn_limited(const char *f, ...) {
    if (fail_logs++ >= 5)
        return;
    va_list ap;
    va_start(ap, f);
    fprintf(stderr, "parley-loadgen[worker %d]: ", me);
    vfprintf(stderr, f, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- geometry ------------------------------------------------------------ */

static int is_fanout(void) {
    return O.scenario == SC_FANOUT || O.scenario == SC_CROSSNODE;
}

/* Fanout: indexes 0..P-1 are the publishers (on the first target); every
 * connection of a topic receives every message sent to it, its own included. */
static uint32_t room_members(uint32_t room) {
    if (is_fanout())
        return (uint32_t)(O.conns + O.publishers);
    if (O.scenario != SC_ROOMS)
        return (uint32_t)O.conns;
    return ((uint32_t)O.conns - room + (uint32_t)O.rooms - 1) / (uint32_t)O.rooms;
}

/* ---- sending ------------------------------------------------------------- */

static json_t *empty; /* {} */

static void send_msg(client_t *c, const char *event, json_t *payload, const char *join_ref) {
    char ref[24];
    snprintf(ref, sizeof ref, "%llu", (unsigned long long)++c->ref);
    char topic[160];
    const char *t = strcmp(event, "heartbeat") ? scenario_topic((int)c->index, topic, sizeof topic)
                                               : "phoenix";
    obuf.len = 0;
    if (proto_encode(fmt, &obuf, join_ref, ref, t, event, payload ? payload : empty) == PROTO_OK)
        ws_queue(&c->ws, obuf.data, obuf.len);
}

static void join(client_t *c, uint64_t now) {
    json_t *p = json_object();
    if (O.scenario == SC_PRESENCE) {
        char user[32];
        snprintf(user, sizeof user, "u%u", c->index);
        json_object_set_new(p, "user", json_string(user));
    }
    c->phase = C_JOINING;
    c->t_join = now;
    send_msg(c, "phx_join", p, "1");
    json_decref(p);
    ws_flush(&c->ws);
}

/* When a message due at `due` may go: up to --poll-interval early (the next
 * poll may come that much later), but never across the start of the
 * measured window, so that a message is timed or not by when it was due. */
static uint64_t ahead;
static uint64_t send_from(uint64_t due) {
    uint64_t from = due > ahead ? due - ahead : 0;
    if (due >= C->t_measure && from < C->t_measure)
        from = C->t_measure;
    return from;
}

/* How late a scheduled send went out; one sent early (within
 * --poll-interval) was not late. */
static void record_send_lag(uint64_t due, uint64_t now) {
    uint64_t lag = now > due ? now - due : 0;
    hist_record(&S->send_lag, lag);
    if (lag > S->max_send_lag_ns)
        S->max_send_lag_ns = lag;
}

/* Queues one chat message: body TOKEN<pub>:<seq>:<stamp ns>:<write ns>:
 * padded. The stamp is what latency counts from: the real send time if the
 * message went early (within --poll-interval), the time it was due if it
 * went late, so that the delay counts. The write time is the real one, for
 * the transit time, which leaves out how late the load generator was. */
static void publish(client_t *c, int pub, uint32_t seq, uint64_t due, uint64_t now) {
    char body[4096];
    uint64_t stamp = now < due ? now : due;
    int n = snprintf(body, sizeof body, TOKEN "%d:%u:%llu:%llu:", pub, seq, (unsigned long long)stamp,
                     (unsigned long long)now);
    int want = O.payload < (int)sizeof body - 1 ? O.payload : (int)sizeof body - 1;
    if (n < want) {
        memset(body + n, 'x', (size_t)(want - n));
        n = want;
    }
    body[n] = '\0';
    json_t *p = json_object();
    json_object_set_new(p, "b", json_stringn(body, (size_t)n));
    send_msg(c, "msg", p, "1");
    json_decref(p);
    mark_dirty(c);
    S->sent++;
    if (due >= C->t_measure)
        S->sent_timed++;
    __atomic_store_n(&sent_by[pub], seq + 1, __ATOMIC_RELAXED);
    S->expected += room_members(c->room);
    if (!S->first_send_ns)
        S->first_send_ns = now;
    S->last_send_ns = now;
    record_send_lag(due, now);
}

/* ---- receiving ----------------------------------------------------------- */

static uint64_t parse_u64(const uint8_t **p, const uint8_t *e, int *ok) {
    uint64_t v = 0;
    const uint8_t *q = *p;
    if (q >= e || *q < '0' || *q > '9')
        *ok = 0;
    while (q < e && *q >= '0' && *q <= '9')
        v = v * 10 + (uint64_t)(*q++ - '0');
    if (q >= e || *q != ':')
        *ok = 0;
    *p = q + 1;
    return v;
}

static void on_chat(client_t *c, slice_t payload, uint64_t now) {
    const uint8_t *t = memmem(payload.p, payload.n, TOKEN, sizeof TOKEN - 1);
    S->received++;
    if (!t) {
        S->other++;
        return;
    }
    const uint8_t *p = t + sizeof TOKEN - 1, *e = payload.p + payload.n;
    int ok = 1;
    uint64_t pub = parse_u64(&p, e, &ok), seq = parse_u64(&p, e, &ok), due = parse_u64(&p, e, &ok);
    uint64_t written = parse_u64(&p, e, &ok);
    uint32_t slot = is_fanout() ? (uint32_t)pub : (uint32_t)(pub / (uint64_t)O.rooms);
    if (!ok || pub >= (uint64_t)npubs_total || slot >= c->npairs ||
        (O.scenario == SC_ROOMS && pub % (uint64_t)O.rooms != c->room)) {
        S->other++;
        return;
    }
    pubstate_t *ps = &c->pairs[slot];
    if (seq >= ps->next) {
        uint64_t shift = seq - ps->next + 1;
        ps->window = shift >= 64 ? 0 : ps->window << shift;
        ps->window |= 1;
        ps->next = (uint32_t)seq + 1;
    } else {
        uint64_t d = ps->next - 1 - seq;
        if (d < 64 && (ps->window >> d & 1)) {
            S->dups++;
            return;
        }
        if (d < 64)
            ps->window |= 1ull << d;
        S->ooo++;
    }
    ps->got++;
    S->unique++;
    S->last_rx_ns = now;
    /* `due` is the send time the message carries; the arrival stamp and the
     * monotonic clock can differ by a few nanoseconds, hence the clamp */
    uint64_t lat = now > due ? now - due : 0;
    if (due >= C->t_measure) {
        hist_record(&S->latency[c->ws.target], lat);
        uint64_t transit = now > written ? now - written : 0;
        hist_record(&S->transit, transit);
        if (O.abuse) {
            uint64_t from = __atomic_load_n(&SH->abuse.active_from, __ATOMIC_ACQUIRE);
            uint64_t until = __atomic_load_n(&SH->abuse.active_until, __ATOMIC_ACQUIRE);
            int during = from && now >= from && (until == UINT64_MAX || now <= until + ABUSE_AFTER_NS);
            hist_record(during ? &S->transit_during : &S->transit_apart, transit);
        }
    } else {
        S->untimed++;
    }
    if (my_times && is_fanout()) {
        /* the fastest and slowest delivery of message k, plus one (0: none yet) */
        uint64_t k = seq * (uint64_t)O.publishers + pub;
        if (k < (uint64_t)O.track && k < nmessages) {
            uint64_t *m = my_times + ((size_t)c->ws.target * nmessages + k) * 2;
            if (!m[0] || lat + 1 < m[0])
                m[0] = lat + 1;
            if (lat + 1 > m[1])
                m[1] = lat + 1;
        }
    }
}

static void on_reply(client_t *c, const uint8_t *p, size_t n, slice_t topic, uint64_t now) {
    proto_msg_t m;
    proto_limits_t lim = {.max_message = 1 << 20};
    if (proto_decode(fmt, p, n, &lim, &m) != PROTO_OK) {
        S->errors[E_PROTOCOL]++;
        return;
    }
    json_t *st = json_object_get(m.payload, "status");
    int ok = json_is_string(st) && !strcmp(json_string_value(st), "ok");
    const char *reason = json_string_value(
        json_object_get(json_object_get(m.payload, "response"), "reason"));
    if (scan_str_eq(O.msgpack, topic, "phoenix")) {
        S->heartbeats++;
    } else if (c->phase == C_JOINING) {
        inflight--;
        if (ok) {
            c->phase = C_JOINED;
            S->joined++;
            S->last_join_ns = now;
            hist_record(&S->join, now - c->t_join);
        } else {
            S->errors[E_JOIN]++;
            warn_limited("join refused: %s", reason ? reason : "?");
            c->phase = C_GONE;
            ws_close(&c->ws);
        }
    } else if (ok) {
        S->acked++;
    } else {
        S->nacked++;
        S->errors[E_PUSH]++;
        warn_limited("push refused: %s", reason ? reason : "?");
    }
    proto_msg_free(&m);
}

/* Presence. A payload is read as a list of view changes, each a user index
 * shifted left once, plus 1 if the user joins the view (0: leaves it). */
typedef struct vchanges {
    uint32_t *v;
    uint32_t n, cap;
    int failed; /* out of memory */
} vchanges_t;

/* A key "u<i>" (i < --conns) is user i; other keys are not the run's. */
static void view_change(vchanges_t *ch, slice_t k, int join) {
    if (k.n < 2 || k.p[0] != 'u')
        return;
    uint64_t i = 0;
    for (size_t j = 1; j < k.n; j++) {
        if (k.p[j] < '0' || k.p[j] > '9')
            return;
        i = i * 10 + (uint64_t)(k.p[j] - '0');
    }
    if (i >= (uint64_t)O.conns)
        return;
    if (ch->n == ch->cap) {
        uint32_t cap = ch->cap ? 2 * ch->cap : 64;
        uint32_t *v = realloc(ch->v, cap * sizeof *v);
        if (!v) {
            ch->failed = 1;
            return;
        }
        ch->v = v;
        ch->cap = cap;
    }
    ch->v[ch->n++] = (uint32_t)i << 1 | (uint32_t)join;
}

static int key_joins(void *ud, slice_t k, slice_t v) {
    (void)v;
    view_change(ud, k, 1);
    return 0;
}
static int key_leaves(void *ud, slice_t k, slice_t v) {
    (void)v;
    view_change(ud, k, 0);
    return 0;
}
/* presence_diff: {"joins": {key: ...}, "leaves": {key: ...}} */
static scan_map_cb diff_part(void *ud, slice_t k) {
    (void)ud;
    if (k.n == 5 && !memcmp(k.p, "joins", 5))
        return key_joins;
    if (k.n == 6 && !memcmp(k.p, "leaves", 6))
        return key_leaves;
    return NULL;
}

/* Every member reads the same bytes: the server encodes a presence_diff
 * once for all, and a presence_state once for all who join within a batch
 * window. So a worker scans each distinct payload once and remembers its
 * view changes; a client whose payload is byte for byte one remembered
 * (compared in full) applies those. Saves the worker most of an O(N^2)
 * scan in a join storm, where it must not cost more than the server. */
#define MEMO_SLOTS 8
#define MEMO_MAX_BYTES (1u << 20) /* larger payloads are scanned each time */
typedef struct memo {
    uint8_t *bytes;
    size_t n;
    int is_state;
    vchanges_t ch;
} memo_t;
static memo_t memo[MEMO_SLOTS];
static unsigned memo_next; /* the slot replaced next, round robin */

static const vchanges_t *memo_find(int is_state, slice_t pl) {
    for (int i = 0; i < MEMO_SLOTS; i++)
        if (memo[i].bytes && memo[i].n == pl.n && memo[i].is_state == is_state &&
            !memcmp(memo[i].bytes, pl.p, pl.n))
            return &memo[i].ch;
    return NULL;
}

/* The view changes of payload pl, scanned now or remembered; NULL if it
 * does not parse (*err = E_PROTOCOL) or memory ran out (E_LOCAL). */
static const vchanges_t *view_changes(int is_state, slice_t pl, int *err) {
    const vchanges_t *known = memo_find(is_state, pl);
    if (known)
        return known;
    static vchanges_t scratch; /* for a payload not remembered: too large, or no memory for a copy */
    memo_t *m = &memo[memo_next];
    uint8_t *b = pl.n <= MEMO_MAX_BYTES ? realloc(m->bytes, pl.n ? pl.n : 1) : NULL;
    int keep = b != NULL; /* else scanned, not remembered */
    vchanges_t *ch = keep ? &m->ch : &scratch;
    if (keep) {
        memo_next = (memo_next + 1) % MEMO_SLOTS;
        m->bytes = b;
        memcpy(b, pl.p, pl.n);
        m->n = pl.n;
        m->is_state = is_state;
    }
    ch->n = 0;
    ch->failed = 0;
    int rc = is_state ? scan_map(O.msgpack, pl, key_joins, ch) : scan_map_of_maps(O.msgpack, pl, diff_part, ch);
    if (rc < 0 || ch->failed) {
        if (keep) {
            free(m->bytes); /* not remembered */
            m->bytes = NULL;
        }
        *err = ch->failed ? E_LOCAL : E_PROTOCOL;
        return NULL;
    }
    return ch;
}

static void on_presence(client_t *c, int is_state, slice_t payload, uint64_t now) {
    S->presence_frames++;
    S->presence_bytes += payload.n;
    if (!c->view)
        return;
    int err;
    const vchanges_t *ch = view_changes(is_state, payload, &err);
    if (!ch) {
        S->errors[err]++;
        return;
    }
    for (uint32_t j = 0; j < ch->n; j++) {
        uint32_t i = ch->v[j] >> 1;
        uint64_t bit = 1ull << (i & 63), *w = &c->view[i >> 6];
        if ((ch->v[j] & 1) && !(*w & bit)) {
            *w |= bit;
            c->nview++;
        } else if (!(ch->v[j] & 1) && (*w & bit)) {
            *w &= ~bit;
            c->nview--;
        }
    }
    if (!c->converged && c->nview == (uint32_t)O.conns) {
        c->converged = 1;
        S->converged++;
        if (now > S->last_converged_ns)
            S->last_converged_ns = now;
    }
}

/* The bytes of [null, null, topic, event, {}] before the payload. */
static prefix_t envelope_prefix(const char *topic, const char *event) {
    prefix_t x = {NULL, 0};
    proto_buf_t b;
    proto_buf_init(&b);
    /* the empty payload is {}] in JSON, one byte (0x80) in MessagePack */
    size_t tail = O.msgpack ? 1 : 3;
    if (proto_encode(fmt, &b, NULL, NULL, topic, event, empty) == PROTO_OK && b.len > tail) {
        x.p = b.data;
        x.n = b.len - tail;
    } else {
        proto_buf_free(&b);
    }
    return x;
}

static void build_prefixes(void) {
    char topic[160];
    nprefixes = O.scenario == SC_ROOMS || O.scenario == SC_CONNECT ? O.rooms : 1;
    prefixes = calloc((size_t)nprefixes, sizeof *prefixes);
    for (int r = 0; prefixes && r < nprefixes; r++)
        prefixes[r] = envelope_prefix(scenario_topic(r, topic, sizeof topic), "msg");
    if (O.scenario == SC_PRESENCE) {
        state_prefix = envelope_prefix(scenario_topic(0, topic, sizeof topic), "presence_state");
        diff_prefix = envelope_prefix(topic, "presence_diff");
    }
}

/* The payload of message p if it starts with prefix x. */
static int has_prefix(const prefix_t *x, const uint8_t *p, size_t n, slice_t *payload) {
    size_t close = O.msgpack ? 0 : 1; /* JSON: the envelope's closing ] */
    if (!x->p || n <= x->n + close || memcmp(p, x->p, x->n))
        return 0;
    *payload = (slice_t){p + x->n, n - x->n - close};
    return 1;
}

static void on_message(ws_conn_t *w, const uint8_t *p, size_t n, uint64_t now) {
    client_t *c = (client_t *)w;
    slice_t pl;
    if (prefixes && has_prefix(&prefixes[c->room % (uint32_t)nprefixes], p, n, &pl)) {
        on_chat(c, pl, now);
        return;
    }
    if (has_prefix(&diff_prefix, p, n, &pl)) {
        on_presence(c, 0, pl, now);
        return;
    }
    if (has_prefix(&state_prefix, p, n, &pl)) {
        on_presence(c, 1, pl, now);
        return;
    }
    slice_t v[5];
    if (scan_split(O.msgpack, p, n, v)) {
        S->errors[E_PROTOCOL]++;
        return;
    }
    slice_t ev;
    if (scan_str(O.msgpack, v[3], &ev)) {
        S->errors[E_PROTOCOL]++;
        return;
    }
#define EV(lit) (ev.n == sizeof lit - 1 && !memcmp(ev.p, lit, sizeof lit - 1))
    if (EV("phx_reply"))
        on_reply(c, p, n, v[2], now);
    else if (EV("presence_diff"))
        on_presence(c, 0, v[4], now);
    else if (EV("presence_state"))
        on_presence(c, 1, v[4], now);
    else if (EV("phx_error") || EV("phx_close"))
        S->errors[E_CHANNEL]++;
    else if (EV("abuse"))
        S->abuse_seen++; /* from the --abuse connection (abuse.c) */
    else
        on_chat(c, v[4], now);
#undef EV
}

static void on_open(ws_conn_t *w, uint64_t now) {
    client_t *c = (client_t *)w;
    S->upgraded++;
    S->open_now++;
    hist_record(&S->connect, now - c->t_open);
    c->phase = C_OPEN;
    if (O.scenario == SC_PRESENCE) {
        inflight--;
        return; /* joins on the schedule */
    }
    join(c, now);
}

static void on_end(ws_conn_t *w, enum ws_end why, int code, int err) {
    client_t *c = (client_t *)w;
    int deliberate = c->phase == C_GONE && why == WS_END_LOCAL; /* counted already */
    if (c->phase == C_CONNECTING || c->phase == C_JOINING)
        inflight--;
    if (c->phase != C_CONNECTING)
        S->open_now--;
    c->phase = C_GONE;
    S->dead++;
    if (deliberate || (C->phase == PH_STOP && why == WS_END_LOCAL))
        return;
    enum err e = why == WS_END_CONNECT     ? E_CONNECT
                 : why == WS_END_HANDSHAKE ? E_HANDSHAKE
                 : why == WS_END_PROTOCOL  ? E_PROTOCOL
                 : why == WS_END_LOCAL     ? E_LOCAL
                                           : E_CLOSED;
    S->errors[e]++;
    if (e == E_CLOSED) {
        int i = 0;
        while (i < NCODES - 1 && close_codes[i] != code)
            i++;
        S->codes[i]++;
    }
    warn_limited("connection %u: %s%s%s (code %d)", c->index, err_names[e], err ? ": " : "",
                 err ? strerror(err) : "", code);
}

static const ws_ops_t ops = {on_open, on_message, on_end};

/* ---- the loop ------------------------------------------------------------ */

static void open_client(client_t *c, uint64_t now) {
    c->phase = C_CONNECTING;
    c->t_open = now;
    inflight++;
    S->opened++;
    uint32_t src = O.source_ips > 1 ? 0x7F000001u + c->index % (uint32_t)O.source_ips : 0;
    c->ws.binary = (uint8_t)O.msgpack;
    char who[16], token[CONN_TOKEN_MAX];
    snprintf(who, sizeof who, "%u", c->index);
    ws_open(&c->ws, targets, conn_target((int)c->index), src, conn_token(who, token, sizeof token));
}

static void setup_client(client_t *c, uint32_t index) {
    memset(c, 0, sizeof *c);
    c->ws.fd = -1;
    c->index = index;
    c->room = O.scenario == SC_ROOMS || O.scenario == SC_CONNECT ? index % (uint32_t)O.rooms : 0;
    if (is_fanout())
        c->npairs = (uint32_t)O.publishers;
    else if (O.scenario == SC_ROOMS)
        c->npairs = room_members(c->room);
    if (c->npairs && !(c->pairs = calloc(c->npairs, sizeof *c->pairs))) {
        fprintf(stderr, "parley-loadgen: out of memory\n");
        exit(1);
    }
    if (O.scenario == SC_PRESENCE &&
        !(c->view = calloc(((size_t)O.conns + 63) / 64, sizeof *c->view))) {
        fprintf(stderr, "parley-loadgen: out of memory\n");
        exit(1);
    }
}

/* After the run: how many expected messages never came, per pair. */
static void account_losses(void) {
    uint64_t lost = 0;
    uint8_t *pub_lossy = calloc((size_t)npubs_total, 1);
    for (int i = 0; i < ncl; i++) {
        client_t *c = &cl[i];
        if (!c->was_joined)
            continue;
        for (uint32_t s = 0; s < c->npairs; s++) {
            uint32_t pub = is_fanout() ? s : c->room + s * (uint32_t)O.rooms;
            uint32_t sent = __atomic_load_n(&sent_by[pub], __ATOMIC_RELAXED);
            if (sent > c->pairs[s].got) {
                lost += sent - c->pairs[s].got;
                if (pub_lossy)
                    pub_lossy[pub] = 1;
            }
        }
    }
    if (pub_lossy)
        for (int p = 0; p < npubs_total; p++)
            S->pubs_with_loss += pub_lossy[p];
    free(pub_lossy);
    S->lost = lost;
}

void worker_main(int w, int wake_fd) {
    me = w;
    nw = O.workers;
    S = &SH->w[w];
    C = &SH->ctl;
    rnd_seed(now_ns() ^ ((uint64_t)getpid() << 32));
    /* Input buffers of partly read frames come and go by the thousand
     * (ws.c, in_release): served from the heap and not given back at once,
     * their pages stay mapped for the next one. mmap'd blocks, glibc's
     * default from 128 KiB, each cost page faults on first use and a TLB
     * shootdown when unmapped. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
    fmt = O.msgpack ? PROTO_MSGPACK : PROTO_V2_JSON;
    proto_buf_init(&obuf);
    empty = json_object();
    build_prefixes();
    if (msg_times)
        my_times = msg_times + (size_t)w * (size_t)O.nurls * nmessages * 2;
    ep = epoll_create1(EPOLL_CLOEXEC);
    ws_watch_wake(ep, wake_fd);
    ws_init(ep, &ops);

    int total = total_conns();
    ncl = total > w ? (total - w + nw - 1) / nw : 0;
    cl = calloc((size_t)ncl ? (size_t)ncl : 1, sizeof *cl);
    dirty = calloc((size_t)ncl ? (size_t)ncl : 1, sizeof *dirty);
    if (!cl || !dirty) {
        fprintf(stderr, "parley-loadgen: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < ncl; i++)
        setup_client(&cl[i], (uint32_t)(w + i * nw));
    S->clients = (uint64_t)ncl;

    /* Opening: this worker's share of the ramp, at most --concurrency in flight. */
    uint64_t start = now_ns();
    double per_worker = O.ramp > 0 ? O.ramp / nw : 0;
    int next_open = 0, next_join = 0;
    uint64_t next_tick = start + 1000000000ull;
    /* connection i heartbeats at start + i/total of the period + k periods,
     * as independent clients would: never all of a worker's at once */
    uint64_t hb_period = (uint64_t)O.heartbeat_s * 1000000000ull;
    uint64_t hb_round = 0;
    int hb_cursor = 0;
    /* Schedules (run phase). Rooms: user c sends at t0 + phase_c + k/rate. */
    uint64_t period = O.rate > 0 ? (uint64_t)(1e9 / O.rate) : 0;
    uint64_t round = 0;
    int cursor = 0;
    uint64_t fan_k = (uint64_t)w; /* fanout: next message number for this worker's publishers */
    int run_started = 0;
    struct epoll_event evs[512];
    /* --poll-interval: sockets are polled at most once per interval, and
     * what is due before the next poll is sent now */
    uint64_t last_poll = 0;
    ahead = (uint64_t)O.poll_us * 1000u;

    for (;;) {
        uint64_t now = now_ns();
        uint64_t next = now + 1000000000ull;
        int phase = (int)C->phase;
        if (phase == PH_STOP)
            break;
        /* open */
        while (next_open < ncl && inflight < O.concurrency) {
            uint64_t due = per_worker > 0 ? start + (uint64_t)(next_open * 1e9 / per_worker) : now;
            if (due > now) {
                if (due < next)
                    next = due;
                break;
            }
            open_client(&cl[next_open++], now);
        }
        if (!S->ready && next_open == ncl && inflight == 0)
            S->ready = 1;
        if (phase == PH_RUN && !run_started) {
            run_started = 1;
            for (int i = 0; i < ncl; i++)
                cl[i].was_joined = cl[i].phase == C_JOINED;
        }
        uint64_t t0 = C->t0, end = t0 + (uint64_t)((O.warmup + O.duration) * 1e9);
        if (phase == PH_RUN && now < t0 && t0 < next)
            next = t0;
        if (phase == PH_RUN && now >= t0 && !S->sent_done) {
            if (O.scenario == SC_ROOMS && period) {
                /* cl[] is in index order; user phases are spread evenly */
                for (;;) {
                    client_t *c = &cl[cursor];
                    uint64_t due = t0 + round * period + (uint64_t)c->index * period / (uint64_t)total;
                    if (due >= end) {
                        S->sent_done = 1;
                        break;
                    }
                    uint64_t from = send_from(due);
                    if (from > now) {
                        if (from < next)
                            next = from;
                        break;
                    }
                    if (c->phase == C_JOINED)
                        publish(c, (int)c->index, c->seq++, due, now);
                    if (++cursor == ncl) {
                        cursor = 0;
                        round++;
                    }
                }
                flush_dirty();
            } else if (is_fanout()) {
                /* message k goes out on publisher k mod P, owned by worker (k mod P) mod W */
                for (;;) {
                    while (fan_k < nmessages && (int)((fan_k % (uint64_t)O.publishers) % (uint64_t)nw) != w)
                        fan_k++;
                    if (fan_k >= nmessages) {
                        S->sent_done = 1;
                        break;
                    }
                    uint64_t due = O.burst || O.rate <= 0 ? t0 : t0 + (uint64_t)((double)fan_k * 1e9 / O.rate);
                    uint64_t from = send_from(due);
                    if (from > now) {
                        if (from < next)
                            next = from;
                        break;
                    }
                    int p = (int)(fan_k % (uint64_t)O.publishers);
                    client_t *c = &cl[p / nw];
                    if (c->phase == C_JOINED)
                        publish(c, p, (uint32_t)(fan_k / (uint64_t)O.publishers), due, now);
                    fan_k++;
                }
                flush_dirty();
            } else if (O.scenario == SC_PRESENCE) {
                while (next_join < ncl) {
                    client_t *c = &cl[next_join];
                    uint64_t due = O.rate > 0 ? t0 + (uint64_t)((double)c->index * 1e9 / O.rate) : t0;
                    uint64_t from = send_from(due);
                    if (from > now) {
                        if (from < next)
                            next = from;
                        break;
                    }
                    if (c->phase == C_OPEN) {
                        inflight++;
                        join(c, now);
                        S->sent++;
                        if (now > S->last_send_ns)
                            S->last_send_ns = now;
                        record_send_lag(due, now);
                    }
                    next_join++;
                }
                if (next_join == ncl)
                    S->sent_done = 1;
            } else {
                S->sent_done = 1;
            }
        }
        /* heartbeats: each connection every --heartbeat seconds at its own phase */
        while (hb_period && ncl > 0) {
            client_t *c = &cl[hb_cursor];
            uint64_t due = start + hb_round * hb_period + (uint64_t)c->index * hb_period / (uint64_t)total;
            if (due > now + ahead) {
                if (due - ahead < next)
                    next = due - ahead;
                break;
            }
            if (c->phase >= C_OPEN && c->phase != C_GONE) {
                send_msg(c, "heartbeat", NULL, NULL);
                ws_flush(&c->ws);
            }
            if (++hb_cursor == ncl) {
                hb_cursor = 0;
                hb_round++;
            }
        }
        /* joins that got no answer in --timeout seconds, checked each second */
        if (now >= next_tick) {
            for (int i = 0; i < ncl; i++)
                if (cl[i].phase == C_JOINING && now - cl[i].t_join > (uint64_t)(O.timeout * 1e9)) {
                    S->errors[E_JOIN_TIMEOUT]++;
                    warn_limited("connection %u: no join reply in %g s", cl[i].index, O.timeout);
                    inflight--;
                    cl[i].phase = C_GONE;
                    ws_close(&cl[i].ws);
                }
            next_tick += 1000000000ull;
        }
        if (next_tick < next)
            next = next_tick;

        now = now_ns();
        if (ahead && now < last_poll + ahead) {
            /* let the sockets fill for the rest of the interval: one wake-up
             * then serves many of them (reads are timed by the kernel's
             * arrival stamps, so the wait does not show in latencies) */
            struct timespec until = {(time_t)((last_poll + ahead) / 1000000000u),
                                     (long)((last_poll + ahead) % 1000000000u)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
                ;
            now = now_ns();
        }
        struct timespec ts = {0, 0};
        if (next > now) {
            ts.tv_sec = (time_t)((next - now) / 1000000000u);
            ts.tv_nsec = (long)((next - now) % 1000000000u);
        }
        if (ws_poll(ep, wake_fd, evs, 512, &ts) < 0) {
            perror("epoll_pwait2");
            exit(1);
        }
        last_poll = now_ns();
    }
    account_losses();
    for (int i = 0; i < ncl; i++)
        if (cl[i].ws.state != WS_DEAD && cl[i].ws.state != WS_FREE && cl[i].ws.fd >= 0)
            ws_close(&cl[i].ws);
    S->cpu_ns = self_cpu_ns();
    __atomic_store_n(&S->final, 1, __ATOMIC_RELEASE);
    fflush(stderr);
#ifdef __SANITIZE_ADDRESS__
    /* _exit() skips LeakSanitizer's check at exit; a leak ends the worker
     * with a report on stderr. */
    __lsan_do_leak_check();
#endif
    _exit(0); /* not exit(): the parent's stdio buffers were copied by fork() */
}
