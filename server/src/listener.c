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

static ev_io accept_watcher;
static int listen_fd = -1;
static struct lws_vhost *vhost;

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
    /* Accept everything pending: one wakeup, many connections. */
    for (int i = 0; i < 256; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
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
    return bound;
}

void listener_stop(void) {
    if (listen_fd < 0)
        return;
    ev_io_stop(EV_DEFAULT, &accept_watcher);
    close(listen_fd);
    listen_fd = -1;
}
