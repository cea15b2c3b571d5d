/* session.c -- the Phoenix socket protocol for one connection.
 *
 * Sections: the outbound queue; replies; the channel commands (join, leave,
 * heartbeat, chat message), which follow Phoenix.Socket's handle_in clauses
 * one for one; the inbound path (reassembly, decode, bad input); lifecycle
 * and the idle list. */
#include "session.h"

#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <utlist.h>

#include "auth.h"
#include "cluster.h"
#include "config.h"
#include "gate.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "namespaces.h"
#include "presence.h"
#include "ratelimit.h"

/* Seconds a closing socket may take to accept its close frame. */
#define CLOSE_WAIT_S 5

/* Input a closing socket may still send, read and dropped (see lingers()):
 * the rest of the message it was sending when the close was decided (up to
 * --max-frame: a message too big is still arriving), then CLOSE_DRAIN_MAX
 * more, room for an honest client's close frame and what little it had in
 * flight. Past that the socket is no longer read at all: a client flooding
 * on regardless costs no more reads, the kernel's receive window holds it
 * back, and the socket ends when the client closes its side or
 * CLOSE_WAIT_S after the close. */
#define CLOSE_DRAIN_MAX (16 * 1024)

/* Idle connections cost one session each: keep it in a 128-byte malloc
 * chunk (see session.h). */
_Static_assert(sizeof(session_t) <= 120, "session_t grew past 120 bytes");

static uint64_t next_id = 1;
static session_t *idle_list;   /* utlist DL via iprev/inext */
/* Closing sessions, on the same links (a session is on one list or the
 * other), oldest close first; last_rx is when it began closing. */
static session_t *closing_list;

/* ---- outbound queue ----------------------------------------------------- */

/* One write gathers at most this many bytes of queued frames. */
#define WRITE_CHUNK 65536
/* session_flush() checks this many sessions before writing to them. */
#define FLUSH_BATCH 32

static uint8_t write_buf[WRITE_CHUNK];
/* Sessions that were given frames since the last flush (utlist DL via
 * fprev/fnext; s->flush_pending marks membership). */
static session_t *flush_list;

static void stop_session(session_t *s, int drop_queue);
static int write_queued(session_t *s, int fd);

/* The queue holds one frame inline (q.one) and only becomes a ring (8
 * entries, doubling; always a power of two) when a second frame is queued
 * before the first was written. The ring is freed as soon as it empties, so
 * an idle socket holds no queue memory, and a paced broadcast (one frame per
 * socket per flush) never allocates. */
static frame_t *q_front(const session_t *s) {
    return s->qcap ? s->q.ring[s->qhead] : s->q.one;
}

/* Appends f (the caller's reference passes to the queue). 0, or -1 if out
 * of memory. */
static int q_push(session_t *s, frame_t *f) {
    if (s->qcap == 0 && s->qcount == 0) {
        s->q.one = f;
        s->qcount = 1;
        return 0;
    }
    if (s->qcap == 0 || s->qcount == s->qcap) { /* one frame inline, or the ring is full */
        uint32_t cap = s->qcap ? s->qcap * 2 : 8;
        frame_t **r = malloc(cap * sizeof *r);
        if (!r)
            return -1;
        if (s->qcap == 0) {
            r[0] = s->q.one;
        } else {
            for (uint32_t i = 0; i < s->qcount; i++)
                r[i] = s->q.ring[(s->qhead + i) & (s->qcap - 1)];
            free(s->q.ring);
        }
        s->q.ring = r;
        s->qcap = cap;
        s->qhead = 0;
    }
    s->q.ring[(s->qhead + s->qcount) & (s->qcap - 1)] = f;
    s->qcount++;
    return 0;
}

static void q_pop(session_t *s) {
    frame_t *f;
    if (s->qcap) {
        f = s->q.ring[s->qhead];
        s->qhead = (s->qhead + 1) & (s->qcap - 1);
        if (--s->qcount == 0) {
            free(s->q.ring);
            s->q.ring = NULL;
            s->qcap = s->qhead = 0;
        }
    } else {
        f = s->q.one;
        s->q.one = NULL;
        s->qcount--;
    }
    s->qbytes -= f->len;
    frame_unref(f);
}

static void q_clear(session_t *s) {
    while (s->qcount)
        q_pop(s);
}

/* An empty queue always takes one frame, however large: a single broadcast
 * bigger than the byte limit (a message re-encoded for another serializer
 * can grow) is not the client's slowness. */
static int over_limit(const session_t *s, const frame_t *f) {
    return s->qcount > 0 && ((uint64_t)s->qcount + 1 > (uint64_t)config.out_queue_msgs ||
                             (uint64_t)s->qbytes + f->len > (uint64_t)config.out_queue_bytes);
}

/* 1 once lws has started closing the socket itself (a close frame from the
 * peer, or a framing error it answers with 1002): nothing may follow. */
static int lws_closing(const session_t *s) {
    return lws_get_close_length(s->wsi) != 0;
}

int session_enqueue(session_t *s, frame_t *f) {
    if (s->closing)
        return -1;
    /* Frames waiting for the deferred flush are ours to send, not the
     * client's backlog: write them now if the socket will take them. */
    while (over_limit(s, f) && s->flush_pending && s->qcount &&
           !lws_partial_buffered(s->wsi) && !lws_closing(s)) {
        if (write_queued(s, lws_get_socket_fd(s->wsi)) < 0) {
            stop_session(s, 1);
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            return -1;
        }
    }
    if (over_limit(s, f)) {
        metrics.disconnects_slow++;
        plog_limited(LOG_WARN, "slow_consumer", "conn=%llu queued_msgs=%u queued_bytes=%u",
             (unsigned long long)s->id, s->qcount, s->qbytes);
        session_close(s, CLOSE_SLOW_CONSUMER, "slow consumer");
        return -1;
    }
    if (q_push(s, f)) {
        session_close(s, CLOSE_INTERNAL, "out of memory");
        return -1;
    }
    frame_ref(f);
    s->qbytes += f->len;
    metrics.messages_out++;
    metrics.bytes_out += f->len;
    if (!s->flush_pending) {
        s->flush_pending = 1;
        DL_APPEND2(flush_list, s, fprev, fnext);
    }
    return 0;
}

/* Writes bytes that must leave in this order and before anything else:
 * straight to the socket (one send(), no lws_write bookkeeping: this is the
 * whole per-delivery cost in user space of a paced broadcast), and whatever
 * the kernel does not take is handed to lws (LWS_WRITE_RAW), which keeps it
 * and sends it on POLLOUT before anything else on this socket. Must only be
 * called when lws holds nothing unsent. Returns -1 if the connection is
 * broken.
 *
 * A TLS connection's bytes go to lws instead, which hands them to one
 * SSL_write() (OpenSSL cuts them into records of up to 16 KiB; a frame past
 * TRANSPORT_TX_PACKET takes several). An SSL_write() that cannot finish
 * (SSL_ERROR_WANT_WRITE, perhaps after sending some records) counts as
 * nothing sent: lws keeps a copy of all of it and repeats the same
 * SSL_write() on POLLOUT, as OpenSSL requires, and OpenSSL sends only the
 * rest. So TLS needs no code of ours for partial writes. */
static int send_raw(session_t *s, int fd, uint8_t *p, size_t len) {
    if (s->tls)
        return lws_write(s->wsi, p, len, LWS_WRITE_RAW) < 0 ? -1 : 0;
    if (fd < 0)
        return -1;
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == (ssize_t)len)
        return 0;
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        n = 0;
    }
    return lws_write(s->wsi, p + n, len - (size_t)n, LWS_WRITE_RAW) < 0 ? -1 : 0;
}

/* Writes queued frames in one write: several frames are gathered into
 * write_buf, whole frames only; a lone frame, or one larger than the buffer,
 * goes as it is. The bytes are complete WebSocket frames already; since what
 * the kernel does not take is kept by lws and sent first, frames never
 * interleave with lws' own control frames. Must only be called when lws
 * holds nothing unsent. fd is lws_get_socket_fd(s->wsi). Returns -1 if the
 * connection is broken. */
static int write_queued(session_t *s, int fd) {
    frame_t *f = q_front(s);
    if (s->qcount == 1 || f->len >= WRITE_CHUNK) {
        /* The queue's reference keeps the frame alive through the write. */
        int rc = send_raw(s, fd, f->data, f->len);
        q_pop(s);
        return rc;
    }
    size_t used = 0;
    while (s->qcount && (f = q_front(s))->len <= WRITE_CHUNK - used) {
        memcpy(write_buf + used, f->data, f->len);
        used += f->len;
        q_pop(s);
    }
    return send_raw(s, fd, write_buf, used);
}

/* After a write: ask for WRITEABLE if frames remain. */
static void after_write(session_t *s) {
    if (s->qcount)
        lws_callback_on_writable(s->wsi);
}

/* Writes what each session was given since the last flush, once per loop
 * iteration (main.c calls this before the loop waits). Writing here rather
 * than from a WRITEABLE callback saves two epoll_ctl calls per delivery (lws
 * turns POLLOUT on and off around each callback), and a burst of broadcasts
 * leaves each socket in one write. A socket that cannot take everything
 * continues from LWS_CALLBACK_SERVER_WRITEABLE. */
void session_flush(void) {
    struct {
        session_t *s;
        int fd;
    } batch[FLUSH_BATCH];
    while (flush_list) {
        /* The checks first, for a batch of sessions, then the writes: each
         * check is a cache miss or two into lws' per-connection structures,
         * and with no system call in between the CPU overlaps them, where
         * between two send()s they would be waited for one after another. */
        int n = 0;
        while (flush_list && n < FLUSH_BATCH) {
            session_t *s = flush_list;
            DL_DELETE2(flush_list, s, fprev, fnext);
            s->flush_pending = 0;
            if (s->closing || !s->qcount)
                continue;
            if (lws_closing(s)) { /* lws is closing it: no data after its close frame */
                stop_session(s, 1);
                continue;
            }
            if (lws_partial_buffered(s->wsi)) {
                lws_callback_on_writable(s->wsi); /* lws drains first, then calls us */
                continue;
            }
            batch[n].s = s;
            batch[n++].fd = lws_get_socket_fd(s->wsi);
        }
        for (int i = 0; i < n; i++) {
            session_t *s = batch[i].s;
            if (write_queued(s, batch[i].fd) < 0) {
                /* The peer is gone: no close frame can be sent. */
                stop_session(s, 1);
                lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
                continue;
            }
            after_write(s);
        }
    }
}

int session_flush_pending(void) {
    return flush_list != NULL;
}

/* Closes that answer the client's own input: it may still be sending when
 * the close frame leaves. Closing the TCP connection then, with its bytes
 * unread, would make the kernel answer them with a reset, and a reset
 * throws away what the client had not read yet: the error replies and the
 * close frame that explain the close. So for these the socket stays open
 * after the close frame, its input read and dropped, until the client
 * answers with its own close frame or closes its side (the close frame is
 * followed by a half-close, so it does), or CLOSE_WAIT_S pass. */
static int lingers(int code) {
    return code != CLOSE_NORMAL && code != CLOSE_GOING_AWAY && code != CLOSE_INTERNAL &&
           code != CLOSE_SLOW_CONSUMER;
}

/* Sends the close frame ourselves (lws would close the socket right after
 * its own), raw like every other frame. 0, or -1 if the peer is gone. */
static int send_close_frame(session_t *s) {
    uint8_t f[2 + 125];
    size_t rl = strlen(s->close_reason);
    if (rl > 123)
        rl = 123;
    f[0] = 0x88; /* FIN, close */
    f[1] = (uint8_t)(2 + rl);
    f[2] = (uint8_t)(s->close_code >> 8);
    f[3] = (uint8_t)s->close_code;
    memcpy(f + 4, s->close_reason, rl);
    int fd = lws_get_socket_fd(s->wsi);
    if (send_raw(s, fd, f, 4 + rl) < 0)
        return -1;
    s->close_sent = 1;
    /* Then half-close: the client sees the end of our data as well as the
     * close frame, and closes its side even if it never answers the frame.
     * (Not under TLS, whose end is a close_notify that only lws can send:
     * there we wait for the client's answer.) */
    if (s->tls)
        return 0;
    if (lws_partial_buffered(s->wsi))
        lws_callback_on_writable(s->wsi); /* after lws has sent the rest */
    else
        shutdown(fd, SHUT_WR);
    return 0;
}

int session_writable(session_t *s) {
    if (s->closing) {
        /* What was queued before the close goes first (lws sends its close
         * frame only after everything it holds), then the close frame. */
        if (s->qcount && s->close_reason && !lws_closing(s)) {
            if (write_queued(s, lws_get_socket_fd(s->wsi)) < 0)
                return -1;
            if (s->qcount || (lingers(s->close_code) && lws_partial_buffered(s->wsi))) {
                lws_callback_on_writable(s->wsi); /* our close frame goes after what lws holds */
                return 0;
            }
        }
        if (s->close_sent) { /* lws has sent the rest of our close frame */
            if (!s->tls)
                shutdown(lws_get_socket_fd(s->wsi), SHUT_WR);
            return 0;
        }
        if (s->close_reason && lingers(s->close_code) && !lws_closing(s))
            return send_close_frame(s);
        if (s->close_reason)
            lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
                             (unsigned char *)s->close_reason, strlen(s->close_reason));
        return -1;
    }
    /* lws has sent what it held for us. Rather than write what is queued now,
     * join the next flush, so that this socket's frames keep leaving in as
     * few writes as possible while it is behind. */
    if (s->qcount && !s->flush_pending) {
        s->flush_pending = 1;
        DL_APPEND2(flush_list, s, fprev, fnext);
    }
    return 0;
}

/* ---- replies ------------------------------------------------------------- */

static void send_frame(session_t *s, frame_t *f) {
    if (!f) {
        session_close(s, CLOSE_INTERNAL, "out of memory");
        return;
    }
    session_enqueue(s, f);
    frame_unref(f);
}

static void reply(session_t *s, const char *join_ref, const char *ref, const char *topic,
                  const char *status, json_t *response) {
    send_frame(s, frame_encode_reply(s->format, join_ref, ref, topic, status, response));
    json_decref(response);
}

/* {}: the response of an ok reply (every push's acknowledgement) and the
 * payload of phx_close, made once rather than per message. */
static const json_t *empty_object(void) {
    static json_t *empty;
    if (!empty)
        empty = json_object();
    return empty;
}

static void reply_ok(session_t *s, const char *join_ref, const char *ref, const char *topic) {
    send_frame(s, frame_encode_reply(s->format, join_ref, ref, topic, "ok", empty_object()));
}

static void reply_error(session_t *s, const char *join_ref, const char *ref, const char *topic,
                        err_kind_t kind, const char *reason) {
    char q[128];
    metrics.errors[kind]++;
    plog_limited(LOG_INFO, "error_reply", "conn=%llu kind=%s topic=%s", (unsigned long long)s->id,
         err_kind_name(kind), log_quote(topic, q, sizeof q));
    reply(s, join_ref, ref, topic, "error", json_pack("{s:s}", "reason", reason));
}

/* Pushes phx_close for a channel, as Phoenix does when a channel ends:
 * join_ref and ref are both the channel's join_ref. */
static void push_close(session_t *s, channel_t *ch) {
    const char *jr = channel_join_ref(ch);
    send_frame(s, frame_encode(s->format, jr, jr, auth_topic_wire(ch->topic->name), "phx_close",
                               empty_object()));
}

/* ---- abuse limits -------------------------------------------------------- */

/* Per socket, two token buckets (ratelimit.h): phx_join takes from the join
 * bucket, every other message (heartbeats included) from the message
 * bucket. A message over its bucket's limit is not processed: it gets an
 * error reply "rate_limited" (if it has a ref), and a client that keeps
 * sending into an empty bucket is closed with 4004, after which its
 * identity may not reconnect for a while (gate_penalize). */
static rate_limit_t msg_limit, join_limit;

int session_limits_init(void) {
    if (rate_limit_set(&msg_limit, config.msg_rate, config.msg_burst, config.rate_strikes) ||
        rate_limit_set(&join_limit, config.join_rate, config.join_burst, config.rate_strikes)) {
        fprintf(stderr, "parley: --msg-rate/--join-rate with their bursts and --rate-strikes "
                        "are out of range\n");
        return -1;
    }
    return 0;
}

/* Takes a token for message m (decoded, or with an error that is replied
 * to; ok says which). Returns 0 if it may be processed, else 1: it was
 * refused, and the socket may be closing. */
static int over_rate(session_t *s, const proto_msg_t *m, int ok) {
    int join = ok && strcmp(m->event, "phx_join") == 0;
    uint32_t now = rate_ticks(ev_now(EV_DEFAULT));
    int verdict = join ? rate_take(&join_limit, &s->join_tat, now)
                       : rate_take(&msg_limit, &s->msg_tat, now);
    if (verdict == RATE_OK)
        return 0;
    err_kind_t kind = join ? ERR_JOIN_RATE_LIMITED : ERR_RATE_LIMITED;
    char q[128];
    metrics.errors[kind]++;
    plog_limited(LOG_INFO, "rate_limited", "conn=%llu kind=%s topic=%s",
                 (unsigned long long)s->id, err_kind_name(kind), log_quote(m->topic, q, sizeof q));
    if (m->ref)
        reply(s, m->join_ref, m->ref, m->topic, "error",
              json_pack("{s:s}", "reason", "rate_limited"));
    if (verdict == RATE_EXCEEDED) {
        metrics.disconnects_rate++;
        plog_limited(LOG_WARN, "rate_limit_exceeded", "conn=%llu kind=%s close=%d",
                     (unsigned long long)s->id, err_kind_name(kind), CLOSE_RATE_LIMITED);
        gate_penalize(s->wsi, s->ident); /* no reconnecting at once for a fresh burst */
        session_close(s, CLOSE_RATE_LIMITED, "rate limit exceeded");
    }
    return 1;
}

/* 1 (and an error reply) if a chat message's payload is over --max-payload
 * bytes of compact JSON: it would be fanned out to every subscriber. */
static int payload_too_large(session_t *s, channel_t *ch, const proto_msg_t *m) {
    size_t n = json_dumpb(m->payload, NULL, 0, JSON_COMPACT);
    if (n <= (size_t)config.max_payload)
        return 0;
    reply_error(s, channel_join_ref(ch), m->ref, m->topic, ERR_PAYLOAD_TOO_LARGE,
                "payload_too_large");
    return 1;
}

/* ---- channels ----------------------------------------------------------- */

static channel_t *find_channel(session_t *s, const char *topic, size_t len) {
    for (channel_t *ch = s->channels; ch; ch = ch->snext)
        if (ch->topic->len == len && memcmp(ch->topic->name, topic, len) == 0)
            return ch;
    return NULL;
}

static void channel_destroy(session_t *s, channel_t *ch) {
    channel_t **pp = &s->channels;
    while (*pp != ch)
        pp = &(*pp)->snext;
    *pp = ch->snext;
    topics_unsubscribe(ch);
    free(ch);
    s->nchannels--;
    metrics.channels--;
    metrics.leaves_total++;
}

static int is(const char *a, const char *b) {
    return strcmp(a, b) == 0;
}

/* Events a client may not push as chat messages: the protocol's own. */
static int reserved_event(const char *event) {
    return strncmp(event, "phx_", 4) == 0 || is(event, "heartbeat") ||
           is(event, "presence_state") || is(event, "presence_diff");
}

/* A message that belongs to an earlier join of its topic is dropped without
 * a reply, as Phoenix does; it is still logged and counted. */
static void ignore_stale(session_t *s, const proto_msg_t *m) {
    char q[128];
    metrics.errors[ERR_STALE_JOIN_REF]++;
    plog_limited(LOG_INFO, "stale_join_ref", "conn=%llu topic=%s", (unsigned long long)s->id,
         log_quote(m->topic, q, sizeof q));
}

/* key/klen: the topic's server-side name (auth_topic_key: the tenant's
 * namespace); m->topic is the name the client sent and sees. */
static void handle_join(session_t *s, channel_t *old, const proto_msg_t *m, const char *key,
                        size_t klen) {
    if (old) {
        /* Duplicate join: the old channel closes, the new join proceeds. */
        plog(LOG_DEBUG, "duplicate_join", "conn=%llu", (unsigned long long)s->id);
        push_close(s, old);
        presence_left(s, old->topic->name);
        channel_destroy(s, old);
    }
    if (is(m->topic, "phoenix")) {
        reply_error(s, NULL, m->ref, m->topic, ERR_UNMATCHED_TOPIC, "unmatched topic");
        return;
    }
    if (!auth_may_join(s->ident, m->topic)) {
        reply_error(s, m->join_ref, m->ref, m->topic, ERR_UNAUTHORIZED, "unauthorized");
        return;
    }
    if (s->nchannels >= (unsigned long)config.max_channels) {
        reply_error(s, m->join_ref, m->ref, m->topic, ERR_TOO_MANY_CHANNELS,
                    "too many channels joined");
        return;
    }
    long max_members = ns_for(m->topic)->max_members;
    topic_t *t = max_members ? topics_find(key, klen) : NULL;
    if (t && t->nsubs >= (size_t)max_members) {
        reply_error(s, m->join_ref, m->ref, m->topic, ERR_TOPIC_FULL, "topic full");
        return;
    }
    const char *why = presence_check_join(s, key, m->payload);
    if (why) {
        reply_error(s, m->join_ref, m->ref, m->topic, ERR_PRESENCE, why);
        return;
    }
    size_t jl = m->join_ref ? strlen(m->join_ref) : 0;
    channel_t *ch = calloc(1, sizeof *ch + jl + 1);
    if (!ch || topics_subscribe(ch, key, klen)) {
        free(ch);
        session_close(s, CLOSE_INTERNAL, "out of memory");
        return;
    }
    if (m->join_ref) {
        ch->has_join_ref = 1;
        memcpy(ch->join_ref_, m->join_ref, jl + 1);
    }
    ch->session = s;
    ch->snext = s->channels;
    s->channels = ch;
    s->nchannels++;
    metrics.channels++;
    metrics.joins_total++;
    reply_ok(s, m->join_ref, m->ref, m->topic);
    presence_joined(s, key, m->payload);
}

static void handle_leave(session_t *s, channel_t *ch, const proto_msg_t *m) {
    if (!ch) {
        reply_ok(s, m->join_ref, m->ref, m->topic);
        return;
    }
    /* Phoenix accepts the leave when the channel's join_ref equals the
     * message's, or the channel has none (V1); otherwise the client raced a
     * close the server already sent, and nothing is replied. */
    if (ch->has_join_ref && !(m->join_ref && is(m->join_ref, ch->join_ref_))) {
        ignore_stale(s, m);
        return;
    }
    reply_ok(s, channel_join_ref(ch), m->ref, m->topic);
    push_close(s, ch);
    presence_left(s, ch->topic->name);
    channel_destroy(s, ch);
}

/* Whether the session may push chat messages to a topic: its token's
 * publish patterns, and the namespace's publish option. */
static int may_publish(const session_t *s, const char *topic) {
    if (!ns_for(topic)->publish)
        return auth_publish_granted(s->ident, topic);
    return auth_may_publish(s->ident, topic);
}

static void handle_message(session_t *s, const proto_msg_t *m) {
    if (is(m->topic, "phoenix") && is(m->event, "heartbeat")) {
        reply_ok(s, NULL, m->ref, "phoenix");
        return;
    }
    /* Control characters would let a topic name reach into another
     * tenant's namespace (auth_topic_key). */
    static char key[65536 + AUTH_TENANT_MAX + 3]; /* --max-topic is at most 65536 */
    int klen = auth_topic_valid(m->topic, m->topic_len)
                   ? auth_topic_key(s->ident, m->topic, m->topic_len, key, sizeof key)
                   : -1;
    if (klen < 0) {
        reply_error(s, m->join_ref, m->ref, m->topic, ERR_BAD_TOPIC, "invalid topic");
        return;
    }
    channel_t *ch = find_channel(s, key, (size_t)klen);
    if (is(m->event, "phx_join")) {
        handle_join(s, ch, m, key, (size_t)klen);
        return;
    }
    if (is(m->event, "phx_leave")) {
        handle_leave(s, ch, m);
        return;
    }
    if (!ch) {
        reply_error(s, NULL, m->ref, m->topic, ERR_UNMATCHED_TOPIC, "unmatched topic");
        return;
    }
    if (m->join_ref && ch->has_join_ref && !is(m->join_ref, ch->join_ref_)) {
        ignore_stale(s, m); /* a message for an earlier join of this topic */
        return;
    }
    if (is(m->event, "presence_update")) {
        const char *why = presence_update(s, ch->topic->name, m->payload);
        if (why)
            reply_error(s, channel_join_ref(ch), m->ref, m->topic, ERR_PRESENCE, why);
        else
            reply_ok(s, channel_join_ref(ch), m->ref, m->topic);
        return;
    }
    if (reserved_event(m->event)) {
        reply_error(s, channel_join_ref(ch), m->ref, m->topic, ERR_RESERVED_EVENT,
                    "reserved event");
        return;
    }
    if (!may_publish(s, m->topic)) {
        reply_error(s, channel_join_ref(ch), m->ref, m->topic, ERR_UNAUTHORIZED, "unauthorized");
        return;
    }
    if (payload_too_large(s, ch, m))
        return;
    /* A chat message: acknowledge, then fan out to every subscriber, the
     * sender included (as Phoenix's broadcast!/3 does). */
    reply_ok(s, channel_join_ref(ch), m->ref, m->topic);
    topics_broadcast(ch->topic, m->event, m->payload);
    cluster_publish(ch->topic->name, m->event, m->payload); /* the other nodes' subscribers */
}

/* ---- inbound ------------------------------------------------------------ */

static void close_for(session_t *s, err_kind_t kind, int code, const char *reason) {
    metrics.errors[kind]++;
    plog_limited(LOG_WARN, "bad_input", "conn=%llu kind=%s close=%d", (unsigned long long)s->id,
         err_kind_name(kind), code);
    session_close(s, code, reason);
}

static void process(session_t *s, const uint8_t *buf, size_t len) {
    if (s->rx_binary != (s->format == PROTO_MSGPACK)) {
        close_for(s, ERR_FRAME_TYPE, CLOSE_UNSUPPORTED,
                  s->rx_binary ? "binary frame on a JSON socket"
                               : "text frame on a MessagePack socket");
        return;
    }
    proto_limits_t lim = {
        .max_message = (size_t)config.max_frame,
        .max_topic = (size_t)config.max_topic,
        .max_event = PROTO_DEFAULT_MAX_EVENT,
        .max_depth = (int)config.max_depth,
    };
    proto_msg_t m;
    int rc = proto_decode(s->format, buf, len, &lim, &m);
    metrics.bytes_in += len;
    int addressed = rc == PROTO_OK || rc == PROTO_ETOPIC || rc == PROTO_EEVENT || rc == PROTO_EPAYLOAD;
    if (addressed && over_rate(s, &m, rc == PROTO_OK)) {
        if (rc == PROTO_OK)
            metrics.messages_in++;
        proto_msg_free(&m);
        return;
    }
    switch (rc) {
    case PROTO_OK:
        metrics.messages_in++;
        handle_message(s, &m);
        break;
    case PROTO_ETOPIC:
        reply_error(s, m.join_ref, m.ref, m.topic, ERR_BAD_TOPIC,
                    m.topic_len ? "topic too long" : "topic must not be empty");
        break;
    case PROTO_EEVENT:
        reply_error(s, m.join_ref, m.ref, m.topic, ERR_BAD_EVENT,
                    m.event_len ? "event too long" : "event must not be empty");
        break;
    case PROTO_EPAYLOAD:
        reply_error(s, m.join_ref, m.ref, m.topic, ERR_BAD_PAYLOAD, "payload must be an object");
        break;
    case PROTO_EUTF8: close_for(s, ERR_INVALID_UTF8, CLOSE_INVALID_DATA, "invalid UTF-8"); break;
    case PROTO_ETOOBIG: close_for(s, ERR_TOO_BIG, CLOSE_TOO_BIG, "message too big"); break;
    case PROTO_EDEPTH: close_for(s, ERR_TOO_DEEP, CLOSE_MALFORMED, "nesting too deep"); break;
    case PROTO_ESHAPE:
        close_for(s, ERR_NOT_A_MESSAGE, CLOSE_MALFORMED, "not a Phoenix message");
        break;
    case PROTO_EFIELD:
        close_for(s, ERR_FIELD_TYPE, CLOSE_MALFORMED, "invalid field type");
        break;
    case PROTO_ETYPE:
        close_for(s, ERR_UNSUPPORTED_TYPE, CLOSE_MALFORMED, "unsupported MessagePack type");
        break;
    case PROTO_ENOMEM: session_close(s, CLOSE_INTERNAL, "out of memory"); break;
    default: close_for(s, ERR_MALFORMED, CLOSE_MALFORMED, "malformed message"); break;
    }
    if (addressed)
        proto_msg_free(&m);
}

/* Frees the reassembly state: only a message in pieces has one. (Once the
 * session is closing, the union holds the close reason instead.) */
static void rx_drop(session_t *s) {
    if (!s->closing && s->rx) {
        proto_assembler_free(s->rx);
        free(s->rx);
        s->rx = NULL;
    }
}

static void touch(session_t *s) {
    s->last_rx = ev_now(EV_DEFAULT);
    if (s->inext) { /* not yet the tail (most recently active): move it there */
        DL_DELETE2(idle_list, s, iprev, inext);
        DL_APPEND2(idle_list, s, iprev, inext);
    }
}

/* Input that arrives once the session is closing is dropped, up to its
 * allowance (CLOSE_DRAIN_MAX); then the socket is no longer read. Called
 * from lws' RECEIVE callback, where the rest of the current frame is known. */
static void drain_closing(session_t *s, size_t len) {
    if (!s->close_allowance) { /* the first input since the close */
        size_t rest = len + lws_remaining_packet_payload(s->wsi);
        if (rest > (size_t)config.max_frame)
            rest = (size_t)config.max_frame;
        s->close_allowance = (uint32_t)rest + CLOSE_DRAIN_MAX;
    }
    if (s->close_drained >= s->close_allowance)
        return;
    s->close_drained += len < s->close_allowance ? (uint32_t)len : s->close_allowance;
    if (s->close_drained < s->close_allowance)
        return;
    lws_rx_flow_control(s->wsi, 0);
    metrics.close_drains_stopped++;
    plog_limited(LOG_INFO, "close_input_stopped", "conn=%llu code=%d bytes=%u",
                 (unsigned long long)s->id, s->close_code, (unsigned)s->close_drained);
}

void session_receive(session_t *s, const void *in, size_t len, int first, int final,
                     int binary) {
    if (s->closing && s->open)
        drain_closing(s, len);
    if (s->closing || !s->open)
        return;
    touch(s);
    if (first)
        s->rx_binary = binary;
    if (first && final && !s->rx) { /* whole message in one piece */
        if (len > (size_t)config.max_frame)
            close_for(s, ERR_TOO_BIG, CLOSE_TOO_BIG, "message too big");
        else
            process(s, in, len);
        return;
    }
    if (first)
        rx_drop(s);
    if (!s->rx) {
        if (!(s->rx = malloc(sizeof *s->rx))) {
            session_close(s, CLOSE_INTERNAL, "out of memory");
            return;
        }
        proto_assembler_init(s->rx, (size_t)config.max_frame);
    }
    int rc = proto_assembler_feed(s->rx, in, len);
    if (rc == PROTO_ETOOBIG) {
        close_for(s, ERR_TOO_BIG, CLOSE_TOO_BIG, "message too big");
        return;
    }
    if (rc) {
        session_close(s, CLOSE_INTERNAL, "out of memory");
        return;
    }
    if (final) {
        /* process() may close the session, which drops s->rx; the bytes are
         * not read again once decoded. */
        process(s, s->rx->buf.data, s->rx->buf.len);
        rx_drop(s);
    }
}

/* ---- lifecycle ---------------------------------------------------------- */

int session_open(session_t *s, struct lws *wsi, const char *vsn, const char *serializer,
                 auth_identity_t *ident) {
    memset(s, 0, sizeof *s);
    s->wsi = wsi;
    s->id = next_id++;
    s->tls = lws_is_ssl(wsi) != 0;
    s->ident = ident;
    if (ident && ident->verified) {
        auth_user_count(ident->tenant, ident->user, +1);
        if (auth_expiry_add(ident, s))
            plog(LOG_ERROR, "expiry_track_failed", "reason=\"out of memory\"");
    }
    metrics.connections++;
    metrics.connections_total++;
    s->last_rx = ev_now(EV_DEFAULT);
    s->msg_tat = s->join_tat = rate_ticks(s->last_rx); /* full buckets */
    if (gate_on_probation(wsi, ident)) /* closed with 4004 lately: no burst */
        s->msg_tat = rate_one_token(&msg_limit, s->msg_tat);
    DL_APPEND2(idle_list, s, iprev, inext);
    s->open = 1;
    proto_format_t format = (proto_format_t)0;
    int bad = proto_negotiate(vsn, serializer, &format);
    s->format = (uint8_t)format;
    if (bad) {
        char q1[64], q2[64];
        metrics.errors[ERR_BAD_VSN]++;
        plog_limited(LOG_WARN, "bad_vsn", "conn=%llu vsn=%s serializer=%s", (unsigned long long)s->id,
             log_quote(vsn ? vsn : "", q1, sizeof q1),
             log_quote(serializer ? serializer : "", q2, sizeof q2));
        session_close(s, CLOSE_BAD_VSN, "unsupported vsn or serializer");
        return -1;
    }
    plog(LOG_DEBUG, "connected", "conn=%llu serializer=%s", (unsigned long long)s->id,
         proto_format_name(s->format));
    if (http_stopping) { /* its handshake finished while we were stopping */
        session_close(s, CLOSE_GOING_AWAY, "server shutting down");
        return -1;
    }
    return 0;
}

/* Marks a session closing: input is ignored and nothing more is queued; it
 * leaves the idle and flush lists. Its queue is freed at once when
 * drop_queue, else it is sent before the close frame. */
static void stop_session(session_t *s, int drop_queue) {
    rx_drop(s); /* before closing is set: then the union holds the close reason */
    s->closing = 1;
    s->close_reason = NULL;
    s->close_drained = s->close_allowance = 0; /* the rate limits are done with */
    if (drop_queue)
        q_clear(s);
    DL_DELETE2(idle_list, s, iprev, inext);
    s->last_rx = ev_now(EV_DEFAULT);
    DL_APPEND2(closing_list, s, iprev, inext);
    s->untrack_due = 1; /* by session_untrack_closing(), not here: this may be inside a fan-out */
    if (s->flush_pending) {
        DL_DELETE2(flush_list, s, fprev, fnext);
        s->flush_pending = 0;
    }
}

int session_peer_closed(session_t *s) {
    if (s->open && !s->closing)
        stop_session(s, 1); /* lws answers the close; nothing more from us */
    /* Our close frame went first: this is the answer, and the end. */
    return s->close_sent ? -1 : 0;
}

void session_close(session_t *s, int code, const char *reason) {
    if (s->closing || !s->open)
        return;
    /* A slow consumer's backlog is what we are cutting off; any other close
     * still delivers what was queued before it (e.g. a join reply that
     * preceded a malformed message), within CLOSE_WAIT_S. */
    stop_session(s, code == CLOSE_SLOW_CONSUMER || code == CLOSE_INTERNAL);
    plog(LOG_DEBUG, "closing", "conn=%llu code=%d reason=\"%s\"", (unsigned long long)s->id,
         code, reason);
    /* The close frame is sent from the next WRITEABLE callback, after
     * whatever lws still holds of earlier frames. A peer that never becomes
     * writable again, or never ends the socket, is cut off after
     * CLOSE_WAIT_S (session_sweep_closing). */
    s->close_code = code;
    s->close_reason = reason;
    lws_callback_on_writable(s->wsi);
    /* lws' own timeout too: a close that waits for lws to send what it
     * holds is lws' to end, and its timeout is what ends it */
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_WAIT_S);
}

void session_closed(session_t *s) {
    if (!s->open)
        return;
    presence_closed(s);
    while (s->channels)
        channel_destroy(s, s->channels);
    if (s->ident && s->ident->verified)
        auth_user_count(s->ident->tenant, s->ident->user, -1);
    auth_identity_free(s->ident);
    s->ident = NULL;
    if (!s->closing)
        stop_session(s, 1); /* the peer closed, or lws gave up on the socket */
    if (s->iprev) /* not yet taken off by session_sweep_closing */
        DL_DELETE2(closing_list, s, iprev, inext);
    s->iprev = s->inext = NULL;
    q_clear(s);
    rx_drop(s);
    s->open = 0;
    metrics.connections--;
    plog(LOG_DEBUG, "disconnected", "conn=%llu", (unsigned long long)s->id);
}

/* lws' own timeouts (lws_set_timeout) only fire when lws next wakes up for
 * some socket, which a node with nothing else to do may not for long, and
 * not at all for a socket it no longer reads; so the close deadline is kept
 * here, on the loop's one-second sweep. */
void session_sweep_closing(double now) {
    while (closing_list && now - closing_list->last_rx >= CLOSE_WAIT_S) {
        session_t *s = closing_list;
        DL_DELETE2(closing_list, s, iprev, inext);
        s->iprev = s->inext = NULL;
        plog(LOG_DEBUG, "close_timeout", "conn=%llu code=%d", (unsigned long long)s->id, s->close_code);
        /* Once lws has taken our close reason (lws_close_reason) without
         * being able to send the frame, a kill only makes it wait 5 s more
         * to send it. With the socket shut down, that send fails at once
         * and lws closes: the deadline holds. */
        int fd = lws_get_socket_fd(s->wsi);
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    }
}

/* The sessions whose untracking is due are the newest of the closing list
 * (each is due from its append until the next call), so the walk goes from
 * the tail back to the first that is not due. */
void session_untrack_closing(void) {
    session_t *s = closing_list ? closing_list->iprev : NULL; /* the tail */
    while (s && s->untrack_due) {
        s->untrack_due = 0;
        presence_closed(s);
        s = s == closing_list ? NULL : s->iprev;
    }
}

void session_sweep_idle(double now) {
    while (idle_list && now - idle_list->last_rx >= (double)config.idle_timeout) {
        metrics.disconnects_idle++;
        plog(LOG_INFO, "idle_timeout", "conn=%llu", (unsigned long long)idle_list->id);
        session_close(idle_list, CLOSE_NORMAL, "idle timeout");
    }
}

void session_sweep_expired(double now) {
    session_t *s;
    while ((s = auth_expiry_pop(now))) {
        metrics.disconnects_expired++;
        plog(LOG_INFO, "token_expired", "conn=%llu", (unsigned long long)s->id);
        session_close(s, CLOSE_TOKEN_EXPIRED, "token expired");
    }
}

void session_close_all(int code, const char *reason) {
    while (idle_list)
        session_close(idle_list, code, reason);
}
