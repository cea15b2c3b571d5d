/* session.h -- one WebSocket connection speaking the Phoenix protocol: its
 * serializer, the channels (topics) it has joined, its bounded outbound
 * queue, its reassembly buffer and its place in the idle list.
 *
 * The session_t lives in libwebsockets' per-session storage: lws allocates it
 * zeroed when the connection is accepted and frees it after
 * LWS_CALLBACK_CLOSED, where session_closed() has released what it owns.
 *
 * Closing contract: session_close() may be called from anywhere (another
 * socket's callback, a timer). It drops the outbound queue at once, stops all
 * further queueing and reading, and asks lws to close the socket with the
 * given WebSocket close code; the session stays subscribed to its topics
 * until session_closed(), so topic lists never change during a fan-out. */
#ifndef PARLEY_SESSION_H
#define PARLEY_SESSION_H

#include <parley/protocol.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "topics.h"

struct lws;

/* WebSocket close codes the server uses (also listed in PROTOCOL.md). */
enum close_code {
    CLOSE_NORMAL = 1000,        /* idle timeout, as Phoenix does */
    CLOSE_GOING_AWAY = 1001,    /* server shutting down: reconnect */
    CLOSE_UNSUPPORTED = 1003,   /* binary frame on a JSON socket, or the reverse */
    CLOSE_INVALID_DATA = 1007,  /* invalid UTF-8 */
    CLOSE_TOO_BIG = 1009,       /* message larger than --max-frame */
    CLOSE_INTERNAL = 1011,      /* out of memory */
    CLOSE_MALFORMED = 4000,     /* not a decodable Phoenix message */
    CLOSE_SLOW_CONSUMER = 4001, /* outbound queue passed its limit */
    CLOSE_BAD_VSN = 4002,       /* unsupported vsn / serializer */
    CLOSE_TOKEN_EXPIRED = 4003, /* the connection's token expired: reconnect with a new one */
    CLOSE_RATE_LIMITED = 4004,  /* kept sending past its rate limits */
};

/* Every idle connection costs one of these (plus lws' own ~1.7 KB), so the
 * layout is kept to 120 bytes, one 128-byte malloc chunk: 32-bit counters,
 * flags in bits, and what only some connections need (a reassembly buffer,
 * a queue of more than one frame) allocated when needed and freed after. */
typedef struct session {
    struct lws *wsi;
    uint64_t id;
    channel_t *channels;        /* joined topics (singly-linked via snext) */
    /* Outbound queue, oldest first. qcap == 0: at most one frame, held in
     * q.one; else a ring of qcap references in q.ring, oldest at qhead. */
    union {
        frame_t *one;
        frame_t **ring;
    } q;
    uint32_t qcap, qhead, qcount;
    uint32_t qbytes;            /* bytes of all queued frames (<= --out-queue-bytes + one frame) */
    uint32_t nchannels;
    /* Rate limits: token buckets kept as the time each is full again
     * (ratelimit.h). Every message but phx_join takes from msg_tat. A
     * closing session is limited no more: then close_drained counts the
     * bytes of its input dropped since, up to close_allowance (set at the
     * first of them; see drain_closing() in session.c). */
    union {
        struct {
            uint32_t msg_tat, join_tat;
        };
        struct {
            uint32_t close_drained, close_allowance;
        };
    };
    uint16_t close_code;        /* what to send in the close frame */
    uint8_t format;             /* proto_format_t */
    unsigned closing : 1;       /* session_close() was called */
    unsigned open : 1;          /* session_open() succeeded */
    unsigned flush_pending : 1; /* on the flush list */
    unsigned rx_binary : 1;     /* opcode of the message being received */
    unsigned tls : 1;           /* TLS connection: writes go through lws (OpenSSL) */
    unsigned close_sent : 1;    /* our close frame is written; waiting for the peer's */
    unsigned untrack_due : 1;   /* closing: its presence is still to be untracked */
    struct session *fprev, *fnext; /* on the flush list */
    struct session *iprev, *inext; /* open sessions, least recently active first */
    double last_rx;             /* loop time of the last frame received */
    /* A closing session reads nothing, so the reassembly buffer and the
     * close reason never live at once: while !closing, rx holds the
     * fragments of the current message (NULL between messages); once
     * closing, rx has been freed and close_reason is the close frame's
     * static text (NULL if none is to be sent). */
    union {
        proto_assembler_t *rx;
        const char *close_reason;
    };
    struct auth_identity *ident; /* owned: token identity, or the "user" parameter; may be NULL */
} session_t;

/* Sets up a new connection. query_vsn/query_serializer are the connect
 * parameters (NULL when absent); ident (owned from here on, may be NULL) is
 * who the connection is (auth.h). Returns 0, or closes the session with
 * CLOSE_BAD_VSN and returns -1. */
int session_open(session_t *s, struct lws *wsi, const char *query_vsn,
                 const char *query_serializer, struct auth_identity *ident);

/* Feeds one piece of a client message. first/final say whether it starts or
 * ends the message; binary is the WebSocket opcode of the message. */
void session_receive(session_t *s, const void *in, size_t len, int first, int final,
                     int binary);

/* Called from LWS_CALLBACK_SERVER_WRITEABLE, once lws has sent what it held
 * for this socket: sends the close frame of a closing session (returning -1
 * so that lws closes), or puts the session back on the flush list. */
int session_writable(session_t *s);

/* Writes the frames queued since the last call, for every session that got
 * any: one write per socket. Called once per loop iteration, before the loop
 * waits for events. */
void session_flush(void);

/* 1 if some session has frames waiting for session_flush(). */
int session_flush_pending(void);

/* Releases everything the session owns; called from LWS_CALLBACK_CLOSED. */
void session_closed(session_t *s);

/* Queues a frame (taking a reference). Returns 0, or -1 if the session is
 * closing or was just closed for passing its queue limit. */
int session_enqueue(session_t *s, frame_t *f);

void session_close(session_t *s, int code, const char *reason);

/* The peer sent a close frame: stop sending (lws answers it). Returns -1
 * when it answers the session's own close frame: lws then closes the socket
 * without a reply. */
int session_peer_closed(session_t *s);

/* Closes sessions that have sent nothing for --idle-timeout seconds. */
void session_sweep_idle(double now);

/* Ends the sockets that have been closing for CLOSE_WAIT_S (5 s) without
 * the client answering or ending them. Called once a second. */
void session_sweep_closing(double now);

/* Untracks the presence of the sessions that began closing since the last
 * call, so that other members see them leave now, not when their sockets
 * end (up to CLOSE_WAIT_S later). Called between loop iterations: never
 * from inside a fan-out, presence's own included. */
void session_untrack_closing(void);

/* Closes (4003) the connections whose token expired by `now` (Unix time). */
void session_sweep_expired(double now);

/* Closes every open session with `code` (shutdown). */
void session_close_all(int code, const char *reason);

/* Sets the rate limits from the configuration. Returns 0, or -1 (message
 * printed) if they cannot be kept. */
int session_limits_init(void);

#endif
