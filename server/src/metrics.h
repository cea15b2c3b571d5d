/* metrics.h -- the server's counters and gauges, exported at /metrics in
 * Prometheus' text format. One global struct: the server has one thread. */
#ifndef PARLEY_METRICS_H
#define PARLEY_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Kinds of client error, each counted in parley_errors_total{kind=...}. */
typedef enum err_kind {
    ERR_MALFORMED,          /* not decodable as JSON / MessagePack */
    ERR_NOT_A_MESSAGE,      /* decodable, but not a Phoenix message */
    ERR_FIELD_TYPE,         /* join_ref/ref/topic/event of the wrong type */
    ERR_INVALID_UTF8,
    ERR_TOO_DEEP,
    ERR_TOO_BIG,
    ERR_FRAME_TYPE,         /* binary frame on a JSON socket or the reverse */
    ERR_UNSUPPORTED_TYPE,   /* MessagePack bin/ext/non-string key */
    ERR_BAD_VSN,
    ERR_BAD_TOPIC,
    ERR_BAD_EVENT,
    ERR_BAD_PAYLOAD,
    ERR_UNMATCHED_TOPIC,
    ERR_TOO_MANY_CHANNELS,
    ERR_RESERVED_EVENT,
    ERR_STALE_JOIN_REF,
    ERR_PRESENCE,           /* invalid user or meta, update of an untracked connection */
    ERR_ADOPT,              /* an accepted socket lws could not take on (out of descriptors?) */
    ERR_UNAUTHORIZED,       /* join or publish outside the token's topic patterns */
    ERR_TOPIC_FULL,         /* join past the namespace's max_members */
    ERR_RATE_LIMITED,       /* a message refused by the socket's message bucket */
    ERR_JOIN_RATE_LIMITED,  /* a phx_join refused by the socket's join bucket */
    ERR_PAYLOAD_TOO_LARGE,  /* a chat message payload over --max-payload */
    ERR_NKINDS
} err_kind_t;

/* Why a WebSocket upgrade was refused with an HTTP status, each counted in
 * parley_upgrades_rejected_total{reason=...}. */
typedef enum reject_kind {
    REJ_PATH,               /* 404: not the socket path */
    REJ_SERVER_FULL,        /* 503: --max-connections */
    REJ_ORIGIN,             /* 403: Origin not in --allowed-origins */
    REJ_TOKEN_MISSING,      /* 403: --auth required and no token */
    REJ_TOKEN_INVALID,      /* 403: malformed, bad signature or algorithm, bad claims */
    REJ_TOKEN_EXPIRED,      /* 403: exp passed or nbf not reached */
    REJ_USER_LIMIT,         /* 403: --max-conns-per-user */
    REJ_PROTOCOL_HEADER,    /* 400: a protocol header lws cannot take (authToken over TLS) */
    REJ_BANNED,             /* 429: banned after a close for abuse (penalty.h) */
    REJ_HEAD_TOO_LARGE,     /* closed unanswered: a request head over HTTP_HEAD_MAX (lws) */
    REJ_USER_PARAM,         /* 400: a "user" connect parameter that is not a valid presence key */
    REJ_NKINDS
} reject_kind_t;

/* Event loop iterations by how long they took, from the return of the wait
 * for I/O to the start of the next: what every client of the node waited
 * at worst before its next read or write. Upper bounds, in seconds, of the
 * histogram's buckets (the last one: everything). */
#define LOOP_BUCKETS 6
extern const double loop_bucket_le[LOOP_BUCKETS - 1];
/* An iteration this long or longer is a stall: logged and counted. */
#define LOOP_STALL_S 0.05

typedef struct metrics {
    uint64_t connections;           /* gauge: open WebSocket connections */
    uint64_t connections_total;
    uint64_t disconnects_idle;
    uint64_t handshake_timeouts;    /* closed without a whole request head in time */
    uint64_t disconnects_slow;
    uint64_t disconnects_rate;      /* closed for sending past their rate limits (4004) */
    uint64_t close_drains_stopped;  /* closing sockets no longer read: sent past their allowance */
    uint64_t abuse_bans;            /* bans imposed for those closes (penalty.h) */
    uint64_t abuse_bans_adopted;    /* bans other nodes imposed, adopted here */
    uint64_t log_suppressed;        /* log lines not written: too many of one kind */
    uint64_t joins_total;
    uint64_t leaves_total;
    uint64_t channels;              /* gauge: joined (socket, topic) pairs */
    uint64_t topics;                /* gauge: topics with subscribers */
    uint64_t messages_in;           /* client messages decoded */
    uint64_t messages_out;          /* frames delivered to sockets */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t broadcasts;            /* chat messages fanned out */
    uint64_t http_requests;
    uint64_t presence_diffs;        /* presence_diff broadcasts */
    uint64_t presence_entries;      /* gauge: presence entries held (all nodes) */
    uint64_t presence_syncs;        /* full-state transfers requested from peers */
    uint64_t redis_published;       /* envelopes PUBLISHed */
    uint64_t redis_received;        /* envelopes received */
    uint64_t redis_dropped;         /* envelopes dropped: Redis down or not keeping up */
    uint64_t redis_bad_envelopes;   /* undecodable messages on our channels */
    uint64_t redis_disconnects;     /* Redis connections lost */
    uint64_t disconnects_expired;   /* closed when their token expired */
    uint64_t tls_handshake_failures; /* TLS handshakes that failed (plaintext client, old version...) */
    uint64_t errors[ERR_NKINDS];
    uint64_t rejected[REJ_NKINDS];
    uint64_t loop_iterations[LOOP_BUCKETS]; /* per bucket, not cumulative */
    double loop_seconds;                    /* all iterations' time */
    uint64_t loop_stalls;                   /* iterations of LOOP_STALL_S or more */
} metrics_t;

extern metrics_t metrics;

const char *err_kind_name(err_kind_t kind);
const char *reject_kind_name(reject_kind_t kind);

/* Counts one event loop iteration of `seconds`; returns 1 if it was a stall
 * (the caller logs it). */
int metrics_loop_iteration(double seconds);

/* Renders every metric into buf; returns the length, or the length it would
 * need when larger than size (snprintf's contract). */
size_t metrics_render(char *buf, size_t size, double uptime_s);

#endif
