/* listener.c -- accept loop on libev; see listener.h. */
#include "listener.h"

#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gate.h"
#include "head.h"
#include "log.h"
#include "metrics.h"

/* Out of descriptors (or memory), accepting stops for this long: the
 * listening socket stays readable, so retrying at once would spin. Waiting
 * connections stay in the backlog meanwhile. */
#define ACCEPT_PAUSE_S 0.1
/* At most one log line per this many seconds while accepting keeps failing. */
#define ACCEPT_LOG_S 10.0

static ev_io accept_watcher;
static int sniff_auth;
static ev_timer resume_timer;
static int listen_fd = -1;
static struct lws_vhost *vhost;
static double last_pause_log;
static unsigned long pauses_unlogged;

static void on_resume(struct ev_loop *loop, ev_timer *w, int revents) {
    if (listen_fd >= 0)
        ev_io_start(loop, &accept_watcher);
}

static void pause_accepting(struct ev_loop *loop, int err) {
    ev_io_stop(loop, &accept_watcher);
    ev_timer_set(&resume_timer, ACCEPT_PAUSE_S, 0.);
    ev_timer_start(loop, &resume_timer);
    pauses_unlogged++;
    if (ev_now(loop) - last_pause_log >= ACCEPT_LOG_S) {
        plog(LOG_WARN, "accept_paused", "err=\"%s\" pauses=%lu pause_s=%.1f", strerror(err),
             pauses_unlogged, ACCEPT_PAUSE_S);
        last_pause_log = ev_now(loop);
        pauses_unlogged = 0;
    }
}

/* lws adopts the connection as HTTP, with TLS when the vhost has an SSL_CTX
 * (lws_adopt_socket_vhost passes LWS_ADOPT_ALLOW_SSL), and starts the
 * handshake at once. One that fails there (the client's first bytes were
 * already in) ends the adoption too: tls.c counts and logs that as a failed
 * handshake, not as a failed adoption. */
static void adopt(int fd, const char *readbuf, size_t len) {
    gate_fd_opened(fd, NULL, 0);
    uint64_t tls_failed = metrics.tls_handshake_failures;
    struct lws *wsi = readbuf ? lws_adopt_socket_vhost_readbuf(vhost, fd, readbuf, len)
                              : lws_adopt_socket_vhost(vhost, fd);
    if (!wsi && metrics.tls_handshake_failures == tls_failed) { /* lws closes fd on failure */
        metrics.errors[ERR_ADOPT]++;
        plog(LOG_WARN, "adopt_failed", "fd=%d", fd);
    }
    if (wsi)
        gate_handshake_started(fd, wsi);
}

/* ---- Phoenix's authToken ----------------------------------------------------
 * phoenix.js sends its authToken option as a second WebSocket protocol,
 * "Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.<token>". lws 4.1
 * refuses an upgrade whose protocol header is longer than 127 bytes, which
 * any signed token makes it. So, when tokens are in use, the listener reads
 * the request head before lws does: if it carries such an entry, the entry
 * is taken out of the header and handed to gate.c, and lws gets the head
 * without it (lws_adopt_socket_vhost_readbuf). Everything else is only
 * peeked at, and lws reads it from the socket as usual.
 *
 * TCP_DEFER_ACCEPT makes accept() return once the request has arrived, so
 * the usual cost is one recv(MSG_PEEK). A connection with nothing yet waits
 * on a read watcher; one with part of a head, which stays readable since a
 * peek takes nothing, is looked at again after 5 ms, then 10, 20, ... up
 * to SNIFF_RETRY_MAX_S (a read watcher would fire at once, again and again:
 * a client sending half a head would spin the node). At most
 * SNIFF_TIMEOUT_S and SNIFF_MAX of them at once; beyond either, the
 * connection goes to lws as it is. */
#define SNIFF_READBUF_MAX 2048 /* lws' limit for adopted read data */
#define SNIFF_TIMEOUT_S 5.0
#define SNIFF_MAX 1024
#define SNIFF_RETRY_S 0.005
#define SNIFF_RETRY_MAX_S 0.1

typedef struct sniff {
    ev_io io;
    ev_timer timer; /* the deadline */
    ev_timer retry; /* the next look at a partial head */
    double wait;
} sniff_t;

static size_t nsniffing;

/* Looks at what has arrived: 1 when handled (adopted or closed), 0 when
 * nothing has, 2 when part of a head has. */
static int sniff_try(int fd, int final) {
    char head[HTTP_HEAD_MAX];
    ssize_t n = recv(fd, head, sizeof head, MSG_PEEK | MSG_DONTWAIT);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && !final)
            return 0;
        adopt(fd, NULL, 0); /* lws sees the error or the EOF and cleans up */
        return 1;
    }
    const char *end = NULL;
    for (ssize_t i = 0; i + 3 < n && !end; i++)
        if (memcmp(head + i, "\r\n\r\n", 4) == 0)
            end = head + i + 4;
    /* Not HTTP (TLS starts with 0x16), or never going to complete here:
     * lws reads it as it is. */
    if (head[0] == 0x16 || (!end && (final || n == (ssize_t)sizeof head))) {
        adopt(fd, NULL, 0);
        return 1;
    }
    if (!end)
        return 2;
    size_t hl = (size_t)(end - head);
    char out[SNIFF_READBUF_MAX];
    const char *bearer;
    size_t blen;
    long o = head_take_bearer(head, hl, out, sizeof out, &bearer, &blen);
    char token[AUTH_TOKEN_MAX + 1];
    int tl = o > 0 ? auth_decode_bearer(bearer, blen, token, sizeof token) : -1;
    if (tl <= 0) {
        /* No authToken (lws reads the head as it is), or one that cannot be
         * decoded, or a head too long for lws without it: lws refuses the
         * long protocol header with a 400 (gate.c). */
        adopt(fd, NULL, 0);
        return 1;
    }
    /* Take the head off the socket; lws gets the rebuilt one instead. */
    if (recv(fd, head, hl, MSG_DONTWAIT) != (ssize_t)hl) {
        close(fd);
        return 1;
    }
    /* lws may handle the head during adoption: the token goes first. */
    gate_fd_opened(fd, token, (size_t)tl);
    if (!lws_adopt_socket_vhost_readbuf(vhost, fd, out, (size_t)o)) {
        metrics.errors[ERR_ADOPT]++;
        plog(LOG_WARN, "adopt_failed", "fd=%d", fd);
    }
    return 1;
}

static void sniff_end(struct ev_loop *loop, sniff_t *sn) {
    ev_io_stop(loop, &sn->io);
    ev_timer_stop(loop, &sn->timer);
    ev_timer_stop(loop, &sn->retry);
    nsniffing--;
    free(sn);
}

/* After a look that did not finish: wait for bytes (nothing yet) or look
 * again a little later (part of a head). */
static void sniff_wait(struct ev_loop *loop, sniff_t *sn, int r) {
    if (r == 1) {
        sniff_end(loop, sn);
    } else if (r == 0) {
        ev_io_start(loop, &sn->io);
    } else {
        sn->wait = sn->wait ? sn->wait * 2 : SNIFF_RETRY_S;
        if (sn->wait > SNIFF_RETRY_MAX_S)
            sn->wait = SNIFF_RETRY_MAX_S;
        ev_timer_set(&sn->retry, sn->wait, 0.);
        ev_timer_start(loop, &sn->retry);
    }
}

static void on_sniff_io(struct ev_loop *loop, ev_io *w, int revents) {
    sniff_t *sn = (sniff_t *)w;
    ev_io_stop(loop, &sn->io); /* lws registers the fd itself */
    sniff_wait(loop, sn, sniff_try(w->fd, 0));
}

static void on_sniff_retry(struct ev_loop *loop, ev_timer *w, int revents) {
    sniff_t *sn = (sniff_t *)((char *)w - offsetof(sniff_t, retry));
    sniff_wait(loop, sn, sniff_try(sn->io.fd, 0));
}

static void on_sniff_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
    sniff_t *sn = (sniff_t *)((char *)w - offsetof(sniff_t, timer));
    ev_io_stop(loop, &sn->io);
    sniff_try(sn->io.fd, 1);
    sniff_end(loop, sn);
}

static void sniff_start(struct ev_loop *loop, int fd) {
    int r = sniff_try(fd, 0);
    if (r == 1)
        return;
    sniff_t *sn = nsniffing < SNIFF_MAX ? malloc(sizeof *sn) : NULL;
    if (!sn) {
        adopt(fd, NULL, 0);
        return;
    }
    nsniffing++;
    ev_io_init(&sn->io, on_sniff_io, fd, EV_READ);
    ev_timer_init(&sn->timer, on_sniff_timeout, SNIFF_TIMEOUT_S, 0.);
    ev_timer_init(&sn->retry, on_sniff_retry, SNIFF_RETRY_S, 0.);
    sn->wait = 0;
    ev_timer_start(loop, &sn->timer);
    sniff_wait(loop, sn, r);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
    /* Accept everything pending: one wakeup, many connections. */
    for (int i = 0; i < 256; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepting(loop, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                     errno != ECONNABORTED)
                plog(LOG_WARN, "accept_failed", "err=\"%s\"", strerror(errno));
            return;
        }
        if (sniff_auth)
            sniff_start(loop, fd);
        else
            adopt(fd, NULL, 0);
    }
}

int listener_start(const char *host, int port, int reuseport, struct lws_vhost *vh,
                   int sniff_bearer) {
    sniff_auth = sniff_bearer;
    struct addrinfo hints, *res = NULL;
    char service[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc) {
        plog(LOG_ERROR, "listen_failed", "host=%s err=\"%s\"", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one)) ||
        bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 4096)) {
        plog(LOG_ERROR, "listen_failed", "host=%s port=%d err=\"%s\"", host, port,
             strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    /* Our writes are already gathered per socket; Nagle would only hold the
     * next one back until the peer's ACK. Linux gives accepted sockets the
     * listener's TCP_NODELAY, which saves a system call per connection. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (sniff_auth) {
        int defer_s = 3;
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof defer_s);
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int bound = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    listen_fd = fd;
    vhost = vh;
    ev_io_init(&accept_watcher, on_accept, fd, EV_READ);
    ev_io_start(EV_DEFAULT, &accept_watcher);
    ev_timer_init(&resume_timer, on_resume, ACCEPT_PAUSE_S, 0.);
    return bound;
}

void listener_stop(void) {
    if (listen_fd < 0)
        return;
    ev_io_stop(EV_DEFAULT, &accept_watcher);
    ev_timer_stop(EV_DEFAULT, &resume_timer);
    close(listen_fd);
    listen_fd = -1;
}
