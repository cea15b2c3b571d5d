/* listener.c -- accept loop on libev; see listener.h. */
#include "listener.h"

#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

/* Out of descriptors (or memory), accepting stops for this long: the
 * listening socket stays readable, so retrying at once would spin. Waiting
 * connections stay in the backlog meanwhile. */
#define ACCEPT_PAUSE_S 0.1
/* At most one log line per this many seconds while accepting keeps failing. */
#define ACCEPT_LOG_S 10.0

static ev_io accept_watcher;
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
        /* Our writes are already gathered per socket; Nagle would only hold
         * the next one back until the peer's ACK. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!lws_adopt_socket_vhost(vhost, fd)) { /* lws closes fd on failure */
            metrics.errors[ERR_ADOPT]++;
            plog(LOG_WARN, "adopt_failed", "fd=%d", fd);
        }
    }
}

int listener_start(const char *host, int port, int reuseport, struct lws_vhost *vh) {
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
