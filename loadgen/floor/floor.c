/* parley-floor: the baseline that Parley's fan-out figures are read against.
 *
 * The benchmark reports Parley's broadcast throughput and latency as a
 * fraction of this program: a minimal single-threaded server that writes one
 * pre-encoded WebSocket frame to the same N sockets as fast as the kernel
 * allows. It speaks just enough of the Phoenix Channels V2 JSON protocol over
 * WebSocket for the load generator to run its normal scenarios against it
 * unchanged: join, leave, heartbeat, and "any other event is acknowledged and
 * broadcast to every member of the topic, the sender included".
 *
 * Two delivery modes, which is the point of the program:
 *   send      one send() per member per broadcast, straight away; only what
 *             the kernel refuses is buffered (and flushed on EPOLLOUT).
 *   coalesce  frames are appended to each member's pending buffer; after each
 *             epoll_wait batch every dirty socket is written with one send(),
 *             so a subscriber's pending frames leave in one write.
 *
 * What it deliberately does not do: no authentication, no MessagePack, no
 * presence, no clustering, no fragmented messages, no permessage-deflate, no
 * checks of UTF-8 or of the payload's type (it is copied verbatim), no idle
 * timeouts, no metrics. A duplicate join is simply acknowledged (Parley
 * pushes phx_close for the old channel first), replies carry the message's
 * own join_ref, and a leave sends no phx_close. Anything a baseline does not
 * need is left out so that the measurement is of the write path alone.
 *
 * Structure: one epoll loop (level-triggered). Connections are never freed
 * while a batch is being handled: a socket that fails is closed and marked
 * dead at once, and its memory and memberships are released after the batch,
 * so that a broadcast may iterate a topic's members while some of them die.
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_REQUEST (8 * 1024)     /* cap on the HTTP upgrade request */
#define MAX_FRAME (1024 * 1024)    /* cap on one client frame's payload */
#define READ_CHUNK (64 * 1024)     /* one recv() at most this much */
#define BUF_KEEP (16 * 1024)       /* drained buffers larger than this are freed */
#define TOPIC_BUCKETS (1 << 16)    /* fixed-size topic hash table */
#define MAX_EVENTS 1024
#define FRAME_HEAD 10              /* room for the longest server frame header */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define OK_REPLY "{\"status\":\"ok\",\"response\":{}}"
#define UNMATCHED_REPLY "{\"status\":\"error\",\"response\":{\"reason\":\"unmatched topic\"}}"

enum { MODE_SEND, MODE_COALESCE };

/* A byte buffer: the valid bytes are data[off, off+len). */
typedef struct buf {
    char *data;
    size_t off, len, cap;
} buf_t;

/* A span of the inbound message (a raw JSON value, quotes included). */
typedef struct span {
    const char *p;
    size_t n;
} span_t;

typedef struct conn conn_t;
typedef struct topic topic_t;

/* Memberships are kept on both sides with back-indexes, so that leaving is
 * O(1) on both: members[i].slot is the index of this membership in the
 * connection's subs, subs[j].idx its index in the topic's members. */
typedef struct member {
    conn_t *c;
    int slot;
} member_t;

typedef struct sub {
    topic_t *t;
    int idx;
} sub_t;

struct topic {
    char *name; /* the raw JSON string, quotes included */
    size_t len;
    member_t *members;
    int n, cap;
    topic_t *next; /* hash chain */
};

struct conn {
    int fd;
    int upgraded; /* past the HTTP handshake */
    int closing;  /* close once the output drains; input is discarded */
    int dead;     /* fd closed; freed after the current batch */
    int dirty;    /* on the coalesce flush list */
    int want_out; /* EPOLLOUT armed */
    buf_t in, out;
    sub_t *subs;
    int nsubs, subcap;
    conn_t *prev, *next; /* all connections, so that exit can free them */
};

static struct {
    int mode;
    size_t max_pending;
    int epfd;
    conn_t *conns;
    conn_t **dirty, **dead; /* per-batch lists */
    size_t ndirty, dirtycap, ndead, deadcap;
    topic_t *topics[TOPIC_BUCKETS];
    buf_t scratch; /* where outgoing frames are built */
} srv = {.mode = MODE_SEND, .max_pending = 64u << 20};

static volatile sig_atomic_t stopping;

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* ---- buffers ------------------------------------------------------------ */

/* Makes room for n more bytes at the tail. Returns 0, or -1 out of memory. */
static int buf_reserve(buf_t *b, size_t n) {
    if (b->off + b->len + n <= b->cap) return 0;
    if (b->off) { /* reclaim the consumed head before growing */
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        if (b->len + n <= b->cap) return 0;
    }
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

static int buf_append(buf_t *b, const void *p, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->data + b->off + b->len, p, n);
    b->len += n;
    return 0;
}

/* Drops n bytes from the head. A large buffer that empties is freed, so that
 * 20,000 idle connections do not each hold their peak. */
static void buf_consume(buf_t *b, size_t n) {
    b->off += n;
    b->len -= n;
    if (b->len) return;
    b->off = 0;
    if (b->cap > BUF_KEEP) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

/* Appends to a list of connections; the lists are bounded by the number of
 * connections since each flag puts a connection on its list at most once. */
static void list_push(conn_t ***list, size_t *n, size_t *cap, conn_t *c) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        if (!(*list = realloc(*list, *cap * sizeof **list))) die("realloc");
    }
    (*list)[(*n)++] = c;
}

/* ---- topics ------------------------------------------------------------- */

static uint32_t hash(const char *p, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    while (n--) h = (h ^ (unsigned char)*p++) * 16777619u;
    return h;
}

static topic_t **topic_slot(span_t name) {
    topic_t **tp = &srv.topics[hash(name.p, name.n) & (TOPIC_BUCKETS - 1)];
    while (*tp && !((*tp)->len == name.n && memcmp((*tp)->name, name.p, name.n) == 0))
        tp = &(*tp)->next;
    return tp;
}

/* Returns the index of c's membership of t, or -1. Connections join few
 * topics, so a scan is enough. */
static int conn_sub_slot(conn_t *c, topic_t *t) {
    for (int i = 0; i < c->nsubs; i++)
        if (c->subs[i].t == t) return i;
    return -1;
}

/* Adds c to the topic called name, creating it. Returns 0 or -1 (memory). */
static int subscribe(conn_t *c, span_t name) {
    topic_t **tp = topic_slot(name), *t = *tp;
    if (!t) {
        if (!(t = calloc(1, sizeof *t)) || !(t->name = malloc(name.n))) {
            free(t);
            return -1;
        }
        memcpy(t->name, name.p, name.n);
        t->len = name.n;
        *tp = t;
    }
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 8;
        member_t *m = realloc(t->members, cap * sizeof *m);
        if (!m) return -1;
        t->members = m;
        t->cap = cap;
    }
    if (c->nsubs == c->subcap) {
        int cap = c->subcap ? c->subcap * 2 : 4;
        sub_t *s = realloc(c->subs, cap * sizeof *s);
        if (!s) return -1;
        c->subs = s;
        c->subcap = cap;
    }
    t->members[t->n] = (member_t){c, c->nsubs};
    c->subs[c->nsubs++] = (sub_t){t, t->n++};
    return 0;
}

/* Removes membership number slot of c: the last element of each array moves
 * into the hole, and its back-index is updated. An empty topic is freed. */
static void unsubscribe(conn_t *c, int slot) {
    sub_t s = c->subs[slot];
    topic_t *t = s.t;
    member_t last = t->members[--t->n];
    if (s.idx != t->n) {
        t->members[s.idx] = last;
        last.c->subs[last.slot].idx = s.idx;
    }
    sub_t lastsub = c->subs[--c->nsubs];
    if (slot != c->nsubs) {
        c->subs[slot] = lastsub;
        lastsub.t->members[lastsub.idx].slot = slot;
    }
    if (t->n == 0) {
        topic_t **tp = topic_slot((span_t){t->name, t->len});
        *tp = t->next;
        free(t->name);
        free(t->members);
        free(t);
    }
}

/* ---- connections and output --------------------------------------------- */

static void conn_want_out(conn_t *c, int on) {
    if (c->want_out == on) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(srv.epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->want_out = on;
}

/* Closes the socket now and frees the connection after the batch: events
 * for it may still be queued, and a broadcast may be iterating its topic. */
static void conn_kill(conn_t *c) {
    if (c->dead) return;
    c->dead = 1;
    close(c->fd);
    list_push(&srv.dead, &srv.ndead, &srv.deadcap, c);
}

static void conn_free(conn_t *c) {
    while (c->nsubs) unsubscribe(c, c->nsubs - 1);
    if (c->prev) c->prev->next = c->next;
    else srv.conns = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c->subs);
    free(c->in.data);
    free(c->out.data);
    free(c);
}

static int is_again(void) {
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Writes what is pending with one send(); the tail waits for EPOLLOUT. */
static void conn_flush(conn_t *c) {
    if (c->dead) return;
    if (c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out.off, c->out.len, MSG_NOSIGNAL);
        if (n < 0 && !is_again()) {
            conn_kill(c);
            return;
        }
        if (n > 0) buf_consume(&c->out, (size_t)n);
    }
    if (c->out.len == 0 && c->closing) {
        conn_kill(c);
        return;
    }
    conn_want_out(c, c->out.len > 0);
}

/* Delivers bytes to c by the chosen mode. This is the per-delivery path of a
 * broadcast, so it does nothing else: in send mode one send() when nothing
 * is queued before it, in coalesce mode one memcpy. */
static void conn_write(conn_t *c, const char *p, size_t n) {
    if (c->dead || c->closing) return; /* nothing may follow a close frame */
    if (srv.mode == MODE_SEND && c->out.len == 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w == (ssize_t)n) return;
        if (w < 0) {
            if (!is_again()) {
                conn_kill(c);
                return;
            }
            w = 0;
        }
        p += w;
        n -= (size_t)w;
    }
    if (c->out.len + n > srv.max_pending) {
        fprintf(stderr, "parley-floor: closing fd %d: pending output over %zu bytes\n", c->fd,
                srv.max_pending);
        conn_kill(c);
        return;
    }
    if (buf_append(&c->out, p, n)) {
        fprintf(stderr, "parley-floor: closing fd %d: out of memory\n", c->fd);
        conn_kill(c);
        return;
    }
    if (srv.mode == MODE_SEND) {
        conn_want_out(c, 1);
    } else if (!c->dirty) {
        c->dirty = 1;
        list_push(&srv.dirty, &srv.ndirty, &srv.dirtycap, c);
    }
}

/* Closes once what is queued (the close frame or the 400) has left. */
static void conn_close_after_flush(conn_t *c) {
    c->closing = 1;
    if (c->out.len == 0 && !c->dirty) conn_kill(c);
}

/* ---- outgoing frames ---------------------------------------------------- */

/* Frames are built in srv.scratch after FRAME_HEAD spare bytes, so that the
 * header, whose size depends on the length, can be put in front without a
 * copy. The result is valid until the next frame_begin(). */
static void frame_begin(void) {
    srv.scratch.off = 0;
    srv.scratch.len = 0;
    if (buf_reserve(&srv.scratch, FRAME_HEAD)) die("malloc");
    srv.scratch.len = FRAME_HEAD;
}

static void frame_add(const char *p, size_t n) {
    if (buf_append(&srv.scratch, p, n)) die("malloc");
}

static void frame_adds(const char *s) {
    frame_add(s, strlen(s));
}

/* Writes the header of an unmasked final frame in front of the payload.
 * Returns the frame and sets *len. */
static const char *frame_finish(int opcode, size_t *len) {
    size_t plen = srv.scratch.len - FRAME_HEAD;
    unsigned char h[FRAME_HEAD];
    size_t hlen = 2;
    h[0] = (unsigned char)(0x80 | opcode);
    if (plen < 126) {
        h[1] = (unsigned char)plen;
    } else if (plen < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(plen >> 8);
        h[3] = (unsigned char)plen;
        hlen = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)(plen >> (56 - 8 * i));
        hlen = 10;
    }
    char *start = srv.scratch.data + FRAME_HEAD - hlen;
    memcpy(start, h, hlen);
    *len = hlen + plen;
    return start;
}

static void send_frame(conn_t *c, int opcode, const char *payload, size_t n) {
    size_t len;
    frame_begin();
    frame_add(payload, n);
    const char *f = frame_finish(opcode, &len);
    conn_write(c, f, len);
}

/* Sends a close frame with code and stops reading. */
static void ws_fail(conn_t *c, int code) {
    char p[2] = {(char)(code >> 8), (char)code};
    send_frame(c, 0x8, p, 2);
    conn_close_after_flush(c);
}

/* Sends [join_ref, ref, topic, "phx_reply", response]; join_ref may be
 * absent (n == 0), which means null. */
static void reply(conn_t *c, span_t join_ref, span_t ref, span_t topic, const char *response) {
    size_t len;
    frame_begin();
    frame_adds("[");
    if (join_ref.n) frame_add(join_ref.p, join_ref.n);
    else frame_adds("null");
    frame_adds(",");
    frame_add(ref.p, ref.n);
    frame_adds(",");
    frame_add(topic.p, topic.n);
    frame_adds(",\"phx_reply\",");
    frame_adds(response);
    frame_adds("]");
    const char *f = frame_finish(0x1, &len);
    conn_write(c, f, len);
}

/* Builds [null,null,topic,event,payload] once and hands the same bytes to
 * every member of t. */
static void broadcast(topic_t *t, span_t event, span_t payload) {
    size_t len;
    frame_begin();
    frame_adds("[null,null,");
    frame_add(t->name, t->len);
    frame_adds(",");
    frame_add(event.p, event.n);
    frame_adds(",");
    frame_add(payload.p, payload.n);
    frame_adds("]");
    const char *f = frame_finish(0x1, &len);
    for (int i = 0; i < t->n; i++) conn_write(t->members[i].c, f, len);
}

/* ---- Phoenix messages --------------------------------------------------- */

/* Returns the end of the JSON value starting at p, or NULL if none can be
 * delimited. This only finds boundaries; it does not validate. */
static const char *skip_value(const char *p, const char *end) {
    if (p >= end) return NULL;
    if (*p == '"') {
        for (p++; p < end; p++) {
            if (*p == '\\') p++;
            else if (*p == '"') return p + 1;
        }
        return NULL;
    }
    if (*p == '[' || *p == '{') {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                if (!(p = skip_value(p, end))) return NULL;
                continue;
            }
            if (*p == '[' || *p == '{') depth++;
            else if ((*p == ']' || *p == '}') && --depth == 0) return p + 1;
            p++;
        }
        return NULL;
    }
    const char *s = p; /* number, true, false, null */
    while (p < end && (*p == '-' || *p == '+' || *p == '.' || (*p >= '0' && *p <= '9') ||
                       (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        p++;
    return p > s ? p : NULL;
}

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static int span_is(span_t s, const char *lit) {
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* Splits a V2 message [join_ref, ref, topic, event, payload] into its five
 * raw values. join_ref and ref must be strings or null, topic and event
 * non-empty strings. Returns 0, or -1 if the message is not one. */
static int parse_message(const char *p, size_t n, span_t f[5]) {
    const char *end = p + n;
    p = skip_ws(p, end);
    if (p == end || *p++ != '[') return -1;
    for (int i = 0; i < 5; i++) {
        p = skip_ws(p, end);
        const char *e = skip_value(p, end);
        if (!e) return -1;
        f[i] = (span_t){p, (size_t)(e - p)};
        p = skip_ws(e, end);
        if (p == end || *p++ != (i < 4 ? ',' : ']')) return -1;
    }
    if (skip_ws(p, end) != end) return -1;
    for (int i = 0; i < 4; i++) {
        int str = f[i].p[0] == '"';
        if (i < 2 ? !(str || span_is(f[i], "null")) : !(str && f[i].n > 2)) return -1;
    }
    if (span_is(f[0], "null")) f[0].n = 0;
    return 0;
}

static void handle_message(conn_t *c, const char *p, size_t n) {
    span_t f[5];
    if (parse_message(p, n, f)) {
        ws_fail(c, 4000); /* Parley's code for "not a Phoenix message" */
        return;
    }
    span_t join_ref = f[0], ref = f[1], topic = f[2], event = f[3], none = {NULL, 0};
    if (span_is(topic, "\"phoenix\"") && span_is(event, "\"heartbeat\"")) {
        reply(c, none, ref, topic, OK_REPLY);
        return;
    }
    topic_t *t = *topic_slot(topic);
    int slot = t ? conn_sub_slot(c, t) : -1;
    if (span_is(event, "\"phx_join\"")) {
        if (slot < 0 && subscribe(c, topic)) {
            fprintf(stderr, "parley-floor: closing fd %d: out of memory\n", c->fd);
            conn_kill(c);
            return;
        }
        reply(c, join_ref, ref, topic, OK_REPLY);
    } else if (span_is(event, "\"phx_leave\"")) {
        if (slot >= 0) unsubscribe(c, slot);
        reply(c, join_ref, ref, topic, OK_REPLY);
    } else if (slot < 0) {
        reply(c, none, ref, topic, UNMATCHED_REPLY);
    } else {
        reply(c, join_ref, ref, topic, OK_REPLY);
        broadcast(t, event, f[4]);
    }
}

/* ---- WebSocket framing -------------------------------------------------- */

static void ws_frame(conn_t *c, int fin, int opcode, char *data, size_t n) {
    switch (opcode) {
    case 0x1:
        if (!fin) ws_fail(c, 1003); /* fragmented messages: not supported */
        else handle_message(c, data, n);
        break;
    case 0x8: /* echo the status code, then close */
        send_frame(c, 0x8, data, n >= 2 ? 2 : 0);
        conn_close_after_flush(c);
        break;
    case 0x9: send_frame(c, 0xA, data, n); break;
    case 0xA: break;
    case 0x2: ws_fail(c, 1003); break; /* binary: MessagePack is not spoken */
    default: ws_fail(c, 1002); break;  /* continuation without a start, reserved */
    }
}

/* Handles every complete frame in p[0, len). Returns the bytes consumed; the
 * rest is an incomplete frame that waits for more input. */
static size_t ws_consume(conn_t *c, char *p, size_t len) {
    size_t used = 0;
    while (!c->dead && !c->closing && len - used >= 2) {
        unsigned char *f = (unsigned char *)p + used;
        size_t avail = len - used, hlen = 2;
        uint64_t plen = f[1] & 0x7f;
        if (plen == 126) {
            if (avail < 4) break;
            plen = (uint64_t)f[2] << 8 | f[3];
            hlen = 4;
        } else if (plen == 127) {
            if (avail < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++) plen = plen << 8 | f[2 + i];
            hlen = 10;
        }
        int fin = f[0] & 0x80, opcode = f[0] & 0x0f;
        if ((f[0] & 0x70) || !(f[1] & 0x80) || (opcode >= 0x8 && (!fin || plen > 125))) {
            ws_fail(c, 1002); /* reserved bits, unmasked, or a bad control frame */
            break;
        }
        if (plen > MAX_FRAME) {
            ws_fail(c, 1009);
            break;
        }
        if (avail < hlen + 4 + plen) break;
        const unsigned char *mask = f + hlen;
        char *data = (char *)f + hlen + 4;
        for (size_t i = 0; i < plen; i++) data[i] ^= (char)mask[i & 3];
        used += hlen + 4 + (size_t)plen;
        ws_frame(c, fin, opcode, data, (size_t)plen);
    }
    return used;
}

/* ---- HTTP upgrade ------------------------------------------------------- */

/* Answers the request in req[0, len) (which ends with the blank line): 101
 * with the accept key, or 400 and close. Returns 0 if upgraded. */
static int http_upgrade(conn_t *c, char *req, size_t len) {
    static const char bad[] =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    char *end = req + len, *key = NULL, *line = memchr(req, '\n', len);
    int upgrade = 0;
    while (line && ++line < end) {
        char *eol = memchr(line, '\n', (size_t)(end - line));
        char *colon = eol ? memchr(line, ':', (size_t)(eol - line)) : NULL;
        if (colon) {
            char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            *ve = '\0'; /* ve <= eol: the next line is already found */
            size_t nlen = (size_t)(colon - line);
            if (nlen == 7 && strncasecmp(line, "upgrade", 7) == 0)
                upgrade = strcasestr(v, "websocket") != NULL;
            else if (nlen == 17 && strncasecmp(line, "sec-websocket-key", 17) == 0)
                key = v;
        }
        line = eol;
    }
    if (len < 4 || memcmp(req, "GET ", 4) != 0 || !upgrade || !key || !*key ||
        strlen(key) > 64) {
        conn_write(c, bad, sizeof bad - 1);
        conn_close_after_flush(c);
        return -1;
    }
    char concat[64 + sizeof WS_GUID], accept[32], resp[160];
    unsigned char sha[SHA_DIGEST_LENGTH];
    int n = snprintf(concat, sizeof concat, "%s%s", key, WS_GUID);
    SHA1((unsigned char *)concat, (size_t)n, sha);
    EVP_EncodeBlock((unsigned char *)accept, sha, SHA_DIGEST_LENGTH);
    n = snprintf(resp, sizeof resp,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 accept);
    conn_write(c, resp, (size_t)n);
    c->upgraded = 1;
    return 0;
}

/* Handles the request in p[0, len) if it is complete. Returns bytes used. */
static size_t http_consume(conn_t *c, char *p, size_t len) {
    char *eoh = memmem(p, len < MAX_REQUEST ? len : MAX_REQUEST, "\r\n\r\n", 4);
    if (!eoh) {
        if (len >= MAX_REQUEST) http_upgrade(c, p, 0); /* too long: 400 */
        return len >= MAX_REQUEST ? len : 0;
    }
    size_t used = (size_t)(eoh + 4 - p);
    http_upgrade(c, p, used);
    return used;
}

/* ---- the event loop ----------------------------------------------------- */

static void conn_read(conn_t *c) {
    static char rbuf[READ_CHUNK];
    ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
    if (n <= 0) {
        if (n == 0 || !is_again()) conn_kill(c);
        return;
    }
    if (c->closing) return; /* a close was sent: input no longer matters */
    /* Parse straight from rbuf unless an incomplete frame is waiting, and
     * keep only what is left over: idle connections hold no input buffer. */
    char *p = rbuf;
    size_t len = (size_t)n;
    if (c->in.len) {
        if (buf_append(&c->in, rbuf, len)) {
            conn_kill(c);
            return;
        }
        p = c->in.data + c->in.off;
        len = c->in.len;
    }
    size_t used = 0;
    if (!c->upgraded) used = http_consume(c, p, len);
    if (c->upgraded) used += ws_consume(c, p + used, len - used);
    if (c->dead || c->closing) return;
    if (p == rbuf) {
        if (used < len && buf_append(&c->in, p + used, len - used)) conn_kill(c);
    } else {
        buf_consume(&c->in, used);
    }
}

static void accept_all(int lfd) {
    static int warned;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (!is_again() && errno != ECONNABORTED && !warned++) perror("parley-floor: accept");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t *c = calloc(1, sizeof *c);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (!c || epoll_ctl(srv.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->next = srv.conns;
        if (srv.conns) srv.conns->prev = c;
        srv.conns = c;
    }
}

static int listen_on(const char *host, const char *port, char *shown, size_t shownlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc) {
        fprintf(stderr, "parley-floor: %s:%s: %s\n", host, port, gai_strerror(rc));
        exit(1);
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) die("bind");
    freeaddrinfo(ai);
    if (listen(fd, 4096) < 0) die("listen");
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    char h[NI_MAXHOST], s[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0 ||
        getnameinfo((struct sockaddr *)&sa, salen, h, sizeof h, s, sizeof s,
                    NI_NUMERICHOST | NI_NUMERICSERV))
        die("getsockname");
    snprintf(shown, shownlen, strchr(h, ':') ? "[%s]:%s" : "%s:%s", h, s);
    return fd;
}

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: parley-floor [--host ADDR] [--port N] [--mode send|coalesce]\n"
            "                    [--max-pending BYTES]\n"
            "A minimal Phoenix Channels (V2 JSON) fan-out server: the baseline\n"
            "that Parley's broadcast figures are read against.\n"
            "  --host ADDR          address to listen on (default 127.0.0.1)\n"
            "  --port N             port, 0 for an ephemeral one (default 0)\n"
            "  --mode send          one send() per member per broadcast (default)\n"
            "  --mode coalesce      queue, then one send() per socket per epoll batch\n"
            "  --max-pending BYTES  close a socket whose unsent output exceeds this\n"
            "                       (default 64M; suffixes K, M, G)\n"
            "Prints \"listening HOST:PORT\" once ready; SIGTERM or SIGINT stops it.\n");
}

static size_t parse_size(const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    }
    if (errno || end == s || *end || v == 0 || v > (SIZE_MAX >> shift)) {
        fprintf(stderr, "parley-floor: bad --max-pending: %s\n", s);
        exit(2);
    }
    return (size_t)v << shift;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *port = "0";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "parley-floor: %s needs a value\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(a, "--host") == 0) host = v;
        else if (strcmp(a, "--port") == 0) port = v;
        else if (strcmp(a, "--max-pending") == 0) srv.max_pending = parse_size(v);
        else if (strcmp(a, "--mode") == 0 && strcmp(v, "send") == 0) srv.mode = MODE_SEND;
        else if (strcmp(a, "--mode") == 0 && strcmp(v, "coalesce") == 0) srv.mode = MODE_COALESCE;
        else {
            fprintf(stderr, "parley-floor: bad option: %s %s\n", a, v);
            usage(stderr);
            return 2;
        }
    }

    /* 19,000 sockets and more: take the hard limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* No SA_RESTART: epoll_wait returns EINTR and the loop sees the flag. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char shown[NI_MAXHOST + NI_MAXSERV + 4];
    int lfd = listen_on(host, port, shown, sizeof shown);
    if ((srv.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(srv.epfd, EPOLL_CTL_ADD, lfd, &lev) < 0) die("epoll_ctl");
    printf("listening %s\n", shown);
    fflush(stdout);

    static struct epoll_event evs[MAX_EVENTS];
    while (!stopping) {
        int n = epoll_wait(srv.epfd, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            if (!c) accept_all(lfd);
            else if (c->dead) continue;
            else if (e & EPOLLERR) conn_kill(c);
            else {
                if (e & EPOLLOUT) conn_flush(c);
                if (e & (EPOLLIN | EPOLLHUP) && !c->dead) conn_read(c);
            }
        }
        /* Coalesce mode: everything this batch queued leaves now, one send()
         * per socket. A socket waiting for EPOLLOUT is left to it. */
        for (size_t i = 0; i < srv.ndirty; i++) {
            conn_t *c = srv.dirty[i];
            c->dirty = 0;
            if (!c->want_out) conn_flush(c);
            else if (c->closing && c->out.len == 0) conn_kill(c);
        }
        srv.ndirty = 0;
        for (size_t i = 0; i < srv.ndead; i++) conn_free(srv.dead[i]);
        srv.ndead = 0;
    }

    while (srv.conns) {
        close(srv.conns->fd);
        conn_free(srv.conns);
    }
    free(srv.dirty);
    free(srv.dead);
    free(srv.scratch.data);
    close(srv.epfd);
    close(lfd);
    return 0;
}
