/* abuse.c -- the abusive client of --abuse: one connection more than the
 * scenario's, in a process of its own (its work is not the workers', whose
 * clients' latency is what it may harm), abusing the server during the
 * measured window, beside the scenario's ordinary clients:
 *
 *   flood     joins the scenario's first topic and pushes chat messages
 *             (event "abuse") as fast as the socket takes them;
 *   joinspam  sends phx_join for that topic (with a presence user) as fast
 *             as the socket takes them;
 *   slowread  joins the scenario's topics (up to 100, the server's default
 *             channel limit), with a small receive buffer, and never reads.
 *
 * When the server closes it, it reconnects after --abuse-reconnect seconds
 * (a persistent abuser; < 0: it stays away) and starts again; with
 * --abuse-hold it also hangs up by itself that long after each upgrade. It
 * counts what it sent, the replies it read, and how each connection ended
 * and after how long, in the shared abuse slot; the ordinary clients count
 * the abuser's messages that reached them (worker.c). */
#include "loadgen.h"
#include "sys.h"

#include <errno.h>
#include <parley/protocol.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

const char *const abuse_names[4] = {"none", "flood", "slowread", "joinspam"};

/* Bytes the abuser keeps queued ahead of the socket: enough to keep it
 * full, little enough that what it sends follows what the server reads. */
#define BACKLOG 65536
#define SLOWREAD_TOPICS 100

enum astate { A_WAIT, A_CONNECTING, A_JOINING, A_ABUSING, A_DONE };

static struct {
    ws_conn_t ws; /* first: epoll's data.ptr */
    int state;
    uint64_t ref;
    uint64_t t_first;  /* first abusive write of this connection */
    uint64_t t_open;   /* upgraded (for abusing_ns) */
    uint64_t next_try; /* when to (re)connect */
} ab;

static abuse_slot_t *A;
static control_t *C;
static proto_format_t fmt;
static proto_buf_t obuf;
static json_t *payload, *join_payload;

static void send_one(const char *topic, const char *event, const char *join_ref, json_t *p) {
    char ref[24];
    snprintf(ref, sizeof ref, "%llu", (unsigned long long)++ab.ref);
    obuf.len = 0;
    if (proto_encode(fmt, &obuf, join_ref ? join_ref : ref, ref, topic, event, p) == PROTO_OK)
        ws_queue(&ab.ws, obuf.data, obuf.len);
}

/* The scenario's first topic: room 0, or the one topic of the others. */
static const char *first_topic(char *buf, size_t len) {
    return scenario_topic(0, buf, len);
}

/* Keeps BACKLOG bytes queued: chat messages (flood) or joins (joinspam). */
static void abuse_more(uint64_t now) {
    char topic[160];
    first_topic(topic, sizeof topic);
    while (ab.ws.state == WS_OPEN && ab.ws.outlen < BACKLOG) {
        if (O.abuse == AB_FLOOD)
            send_one(topic, "abuse", "1", payload);
        else
            send_one(topic, "phx_join", NULL, join_payload);
        A->sent++;
    }
    if (!ab.t_first)
        ab.t_first = now;
    if (ab.ws.state == WS_OPEN)
        ws_flush(&ab.ws);
}

static void on_open(ws_conn_t *w, uint64_t now) {
    (void)w;
    A->upgraded++;
    ab.t_open = now;
    char topic[160];
    if (O.abuse == AB_FLOOD) {
        ab.state = A_JOINING;
        send_one(first_topic(topic, sizeof topic), "phx_join", "1", json_object());
        ws_flush(&ab.ws);
    } else if (O.abuse == AB_JOINSPAM) {
        ab.state = A_ABUSING;
        abuse_more(now);
    } else { /* slowread: join, and read nothing from now on */
        int n = O.scenario == SC_ROOMS || O.scenario == SC_CONNECT ? O.rooms : 1;
        if (n > SLOWREAD_TOPICS)
            n = SLOWREAD_TOPICS;
        for (int i = 0; i < n; i++) {
            const char *t = O.scenario == SC_ROOMS || O.scenario == SC_CONNECT
                                ? scenario_topic(i, topic, sizeof topic)
                                : first_topic(topic, sizeof topic);
            send_one(t, "phx_join", NULL, json_object());
            A->sent++;
        }
        ab.state = A_ABUSING;
        ab.t_first = now;
        ws_flush(&ab.ws);
        ws_pause(&ab.ws, 1);
    }
}

static void on_message(ws_conn_t *w, const uint8_t *p, size_t n, uint64_t now) {
    (void)w;
    proto_msg_t m;
    proto_limits_t lim = {.max_message = 1 << 20};
    if (proto_decode(fmt, p, n, &lim, &m) != PROTO_OK)
        return;
    if (!strcmp(m.event, "phx_reply")) {
        json_t *st = json_object_get(m.payload, "status");
        const char *reason = json_string_value(
            json_object_get(json_object_get(m.payload, "response"), "reason"));
        int ok = json_is_string(st) && !strcmp(json_string_value(st), "ok");
        if (ab.state == A_JOINING) {
            if (ok) {
                ab.state = A_ABUSING;
                abuse_more(now);
            } else {
                A->other_errors++;
            }
        } else if (ok) {
            A->acked++;
        } else if (reason && !strcmp(reason, "rate_limited")) {
            A->limited++;
        } else if (reason && !strcmp(reason, "payload_too_large")) {
            A->too_large++;
        } else {
            A->other_errors++;
        }
    }
    proto_msg_free(&m);
}

static void on_end(ws_conn_t *w, enum ws_end why, int code, int err) {
    (void)w;
    (void)err;
    uint64_t now = now_ns();
    if (ab.t_open)
        A->abusing_ns += now - ab.t_open;
    ab.t_open = 0;
    __atomic_store_n(&A->active_until, now, __ATOMIC_RELEASE);
    if (why != WS_END_LOCAL) { /* the server ended it (or refused it) */
        A->closes++;
        int i = 0;
        while (i < NCODES - 1 && close_codes[i] != code)
            i++;
        A->codes[i]++;
        if (ab.t_first) {
            uint64_t d = now - ab.t_first;
            A->close_ns_sum += d;
            if (!A->close_ns_first)
                A->close_ns_first = d;
            if (d > A->close_ns_max)
                A->close_ns_max = d;
        }
    }
    ab.t_first = 0;
    if (ab.state != A_DONE) {
        ab.state = O.abuse_reconnect >= 0 ? A_WAIT : A_DONE;
        ab.next_try = now + (uint64_t)(O.abuse_reconnect * 1e9);
    }
}

static const ws_ops_t ops = {on_open, on_message, on_end};

void abuser_main(int wake_fd) {
    A = &SH->abuse;
    C = &SH->ctl;
    /* An abusive client is on some other machine; here its own work (the
     * encoding, the writes) would take a core from the server or the
     * workers and show up in the others' latency as if the server were
     * slow. SCHED_IDLE runs it only when a core is otherwise idle. */
    struct sched_param none = {0};
    if (!O.abuse_normal && sched_setscheduler(0, SCHED_IDLE, &none))
        perror("parley-loadgen: abuser: SCHED_IDLE");
    A->sched_idle = sched_getscheduler(0) == SCHED_IDLE;
    rnd_seed(now_ns() ^ ((uint64_t)getpid() << 32));
    fmt = O.msgpack ? PROTO_MSGPACK : PROTO_V2_JSON;
    proto_buf_init(&obuf);
    char *body = malloc((size_t)O.payload + 1);
    if (!body)
        _exit(1);
    memset(body, 'x', (size_t)O.payload);
    body[O.payload] = '\0';
    payload = json_pack("{s:s}", "b", body);
    join_payload = json_pack("{s:s}", "user", "abuser");
    free(body);
    if (O.abuse == AB_SLOWREAD)
        ws_rcvbuf = 4096; /* the kernel keeps little for it either */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    ws_watch_wake(ep, wake_fd);
    ws_init(ep, &ops);
    ab.ws.fd = -1;
    struct epoll_event evs[16];
    for (;;) {
        uint64_t now = now_ns();
        int phase = (int)C->phase;
        if (phase == PH_STOP)
            break;
        uint64_t wait_ns = 100000000ull;
        if (phase == PH_RUN) {
            uint64_t start = C->t_measure, end = C->t0 + (uint64_t)((O.warmup + O.duration) * 1e9);
            if (now >= end && ab.state != A_DONE) {
                /* the schedule is over: so is the abuse. A flooder or join
                 * spammer stays connected, sending nothing more, to read the
                 * replies to what it sent (they are counted against what the
                 * others read of it); the rest go now. */
                int open = ab.state != A_WAIT;
                int keep = ab.state == A_ABUSING && O.abuse != AB_SLOWREAD;
                ab.state = A_DONE;
                if (ab.t_open) {
                    A->abusing_ns += now - ab.t_open;
                    ab.t_open = 0;
                }
                if (open && !keep)
                    ws_close(&ab.ws);
            }
            if (ab.state == A_WAIT && now >= start && now >= ab.next_try) {
                ab.state = A_CONNECTING;
                ab.t_first = 0;
                A->conns++;
                __atomic_store_n(&A->active_until, UINT64_MAX, __ATOMIC_RELEASE);
                __atomic_store_n(&A->active_from, now, __ATOMIC_RELEASE);
                char token[CONN_TOKEN_MAX];
                ws_open(&ab.ws, targets, 0, 0, conn_token("abuser", token, sizeof token));
            }
            if (ab.state == A_ABUSING && O.abuse_hold > 0 && ab.t_open &&
                now - ab.t_open >= (uint64_t)(O.abuse_hold * 1e9)) {
                ws_close(&ab.ws); /* --abuse-hold: it goes, and comes back later */
            } else if (ab.state == A_ABUSING && O.abuse != AB_SLOWREAD) {
                abuse_more(now);
                if (ab.ws.outlen < BACKLOG)
                    wait_ns = 1000000; /* more next millisecond */
            }
            uint64_t next = ab.state == A_WAIT ? (ab.next_try > start ? ab.next_try : start) : 0;
            if (next > now && next - now < wait_ns)
                wait_ns = next - now;
            if (ab.state == A_ABUSING && O.abuse_hold > 0 && ab.t_open) {
                uint64_t go = ab.t_open + (uint64_t)(O.abuse_hold * 1e9);
                if (go > now && go - now < wait_ns)
                    wait_ns = go - now;
            }
        }
        struct timespec ts = {(time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u)};
        if (ws_poll(ep, wake_fd, evs, 16, &ts) < 0) {
            perror("epoll_pwait2");
            _exit(1);
        }
    }
    if (ab.ws.fd >= 0 && ab.ws.state != WS_DEAD && ab.ws.state != WS_FREE)
        ws_close(&ab.ws);
    A->bytes_read = ws_bytes_read;
    A->cpu_ns = self_cpu_ns();
    __atomic_store_n(&A->final, 1, __ATOMIC_RELEASE);
    fflush(stderr);
    _exit(0);
}
