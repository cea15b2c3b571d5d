/* ws.h -- non-blocking WebSocket client connections on an epoll loop.
 *
 * Just enough RFC 6455 for a load generator: an HTTP/1.1 upgrade with its
 * Sec-WebSocket-Accept checked; masked client frames; server frames parsed
 * incrementally (any number per read, a partial one carried over); pings
 * answered; a close frame echoed. One process owns many connections and one
 * epoll set; epoll's data.ptr is the ws_conn_t (embed it first in a larger
 * struct to carry per-connection state). */
#ifndef LOADGEN_WS_H
#define LOADGEN_WS_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>

/* Why a connection ended (the error kinds of the report). */
enum ws_end {
    WS_END_CONNECT,   /* TCP connect failed */
    WS_END_HANDSHAKE, /* no 101, or a wrong Sec-WebSocket-Accept */
    WS_END_CLOSED,    /* the server closed: a close frame, EOF or a reset */
    WS_END_PROTOCOL,  /* a frame this client cannot accept */
    WS_END_LOCAL,     /* this side closed it (end of run, or a local limit) */
};

enum ws_state { WS_FREE, WS_CONNECTING, WS_UPGRADING, WS_OPEN, WS_DEAD };

typedef struct ws_target {
    struct sockaddr_in addr;
    char url[256];       /* as given, for reports */
    char host[128];      /* Host header */
    char path[256];      /* path and query of the upgrade request */
} ws_target_t;

typedef struct ws_conn {
    int fd;
    uint8_t state;       /* enum ws_state */
    uint8_t epollout;    /* EPOLLOUT registered */
    uint8_t binary;      /* send binary frames (MessagePack) */
    uint8_t target;      /* index in the target table */
    uint8_t paused;      /* not reading (ws_pause) */
    uint8_t *in;         /* a partial frame carried to the next read */
    uint32_t inlen, incap;
    uint8_t *out;        /* bytes the kernel did not take yet */
    uint32_t outlen, outcap;
    char accept[32];     /* the Sec-WebSocket-Accept expected */
} ws_conn_t;

typedef struct ws_ops {
    void (*on_open)(ws_conn_t *c, uint64_t now);
    void (*on_message)(ws_conn_t *c, const uint8_t *p, size_t n, uint64_t now);
    /* code: the close frame's code, 1006 for EOF/reset, 0 when not closed
     * by the server; err: errno or 0. The connection is WS_DEAD after. */
    void (*on_end)(ws_conn_t *c, enum ws_end why, int code, int err);
} ws_ops_t;

/* Parses ws://host:port/path?query (IPv4 literal or "localhost"); `query`
 * is appended to the URL's own. 0 on success. */
int ws_target_parse(ws_target_t *t, const char *url, const char *query);
void ws_init(int epoll_fd, const ws_ops_t *ops);
/* Starts a connection from source address `src` (host order; 0: the
 * kernel's choice), passing `token` (URL-safe; NULL: none) as the connect
 * parameter token. Failures are reported through on_end. */
void ws_open(ws_conn_t *c, const ws_target_t *targets, int target, uint32_t src, const char *token);
/* Queues one message frame (text, or binary if c->binary); ws_flush sends. */
void ws_queue(ws_conn_t *c, const void *data, size_t len);
void ws_flush(ws_conn_t *c);
void ws_send(ws_conn_t *c, const void *data, size_t len); /* queue + flush */
/* Handles epoll events for c. */
void ws_event(ws_conn_t *c, uint32_t events);
/* A process's event loop step: waits on epoll epfd up to *ts for at most max
 * events, hands connection events to ws_event, and drains the eventfd
 * wake_fd (registered with ws_watch_wake) when the parent signals it.
 * Returns -1 if epoll fails. */
void ws_watch_wake(int epfd, int wake_fd);
int ws_poll(int epfd, int wake_fd, struct epoll_event *evs, int max, const struct timespec *ts);
/* Closes without a handshake (the run is over); on_end(WS_END_LOCAL). */
void ws_close(ws_conn_t *c);
/* Stops reading from c (paused = 1), as a client that has stopped reading
 * does: what the server sends piles up in the kernel's buffers. Reading
 * resumes by itself when the server shuts its side down, so that its close
 * frame or EOF is still seen. */
void ws_pause(ws_conn_t *c, int paused);

/* SO_RCVBUF for the connections ws_open makes from now on (0: the
 * kernel's default). */
extern int ws_rcvbuf;

extern uint64_t ws_bytes_read; /* wire bytes read by this process */

#endif
