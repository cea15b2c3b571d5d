/* ws.c -- WebSocket client connections (see ws.h). */
#include "ws.h"

#include "sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUF (256 * 1024)
#define MAX_FRAME (64u << 20)  /* the largest server frame accepted */
#define MAX_OUT (64u << 20)    /* unsent bytes held per connection */
#define MAX_RESPONSE 8192      /* upgrade response headers */

static int ep = -1;
static const ws_ops_t *ops;
static uint8_t rbuf[READ_BUF];
static int64_t mono_minus_real; /* CLOCK_MONOTONIC - CLOCK_REALTIME, at the last poll */
uint64_t ws_bytes_read;
int ws_rcvbuf;

int ws_target_parse(ws_target_t *t, const char *url, const char *query) {
    memset(t, 0, sizeof *t);
    snprintf(t->url, sizeof t->url, "%s", url);
    if (strncmp(url, "ws://", 5))
        return -1;
    const char *h = url + 5, *slash = strchr(h, '/');
    const char *hend = slash ? slash : h + strlen(h);
    const char *colon = memchr(h, ':', (size_t)(hend - h));
    char ip[64];
    size_t iplen = (size_t)((colon ? colon : hend) - h);
    if (!iplen || iplen >= sizeof ip || (size_t)(hend - h) >= sizeof t->host)
        return -1;
    memcpy(ip, h, iplen);
    ip[iplen] = '\0';
    memcpy(t->host, h, (size_t)(hend - h));
    int port = colon ? atoi(colon + 1) : 80;
    if (port <= 0 || port > 65535)
        return -1;
    t->addr.sin_family = AF_INET;
    t->addr.sin_port = htons((uint16_t)port);
    if (!strcmp(ip, "localhost"))
        snprintf(ip, sizeof ip, "127.0.0.1");
    if (inet_pton(AF_INET, ip, &t->addr.sin_addr) != 1)
        return -1;
    const char *path = slash ? slash : "/socket/websocket";
    int n = snprintf(t->path, sizeof t->path, "%s%s%s", path,
                     !query || !*query ? "" : strchr(path, '?') ? "&" : "?", query ? query : "");
    return n < (int)sizeof t->path ? 0 : -1;
}

void ws_init(int epoll_fd, const ws_ops_t *o) {
    ep = epoll_fd;
    ops = o;
}

static void conn_end(ws_conn_t *c, enum ws_end why, int code, int err) {
    if (c->state == WS_DEAD || c->state == WS_FREE)
        return;
    close(c->fd);
    c->fd = -1;
    c->state = WS_DEAD;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->inlen = c->incap = c->outlen = c->outcap = 0;
    ops->on_end(c, why, code, err);
}

void ws_close(ws_conn_t *c) {
    conn_end(c, WS_END_LOCAL, 0, 0);
}

static int set_events(ws_conn_t *c, int out, int paused) {
    struct epoll_event ev = {.events = (paused ? EPOLLRDHUP : EPOLLIN) | (out ? EPOLLOUT : 0),
                             .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev))
        return -1;
    c->epollout = (uint8_t)out;
    c->paused = (uint8_t)paused;
    return 0;
}

static void set_epollout(ws_conn_t *c, int on) {
    if (c->epollout != on)
        set_events(c, on, c->paused);
}

void ws_pause(ws_conn_t *c, int paused) {
    if (c->fd >= 0 && c->paused != paused)
        set_events(c, c->epollout, paused);
}

void ws_flush(ws_conn_t *c) {
    uint32_t off = 0;
    while (off < c->outlen) {
        ssize_t n = send(c->fd, c->out + off, c->outlen - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            conn_end(c, WS_END_CLOSED, 1006, errno);
            return;
        }
        off += (uint32_t)n;
    }
    memmove(c->out, c->out + off, c->outlen - off);
    c->outlen -= off;
    set_epollout(c, c->outlen > 0);
}

static uint8_t *out_reserve(ws_conn_t *c, size_t n) {
    if (c->outlen + n > c->outcap) {
        size_t cap = c->outcap ? c->outcap : 256;
        while (cap < c->outlen + n)
            cap *= 2;
        uint8_t *p = cap <= MAX_OUT ? realloc(c->out, cap) : NULL;
        if (!p)
            return NULL;
        c->out = p;
        c->outcap = (uint32_t)cap;
    }
    return c->out + c->outlen;
}

/* One frame with FIN set, masked with a fresh key (RFC 6455 5.3). */
static void queue_frame(ws_conn_t *c, int opcode, const void *data, size_t len) {
    uint8_t *p = out_reserve(c, len + 14), *start = p;
    if (!p) {
        conn_end(c, WS_END_LOCAL, 0, ENOBUFS);
        return;
    }
    *p++ = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        *p++ = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        *p++ = 0x80 | 126;
        *p++ = (uint8_t)(len >> 8);
        *p++ = (uint8_t)len;
    } else {
        *p++ = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            *p++ = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t key = (uint32_t)rnd64();
    uint8_t mask[4];
    memcpy(mask, &key, 4);
    memcpy(p, mask, 4);
    p += 4;
    const uint8_t *d = data;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) { /* word at a time; the tail byte by byte */
        uint32_t w;
        memcpy(&w, d + i, 4);
        w ^= key;
        memcpy(p + i, &w, 4);
    }
    for (; i < len; i++)
        p[i] = d[i] ^ mask[i & 3];
    c->outlen += (uint32_t)(p + len - start);
}

void ws_queue(ws_conn_t *c, const void *data, size_t len) {
    if (c->state == WS_OPEN)
        queue_frame(c, c->binary ? 0x2 : 0x1, data, len);
}

void ws_send(ws_conn_t *c, const void *data, size_t len) {
    ws_queue(c, data, len);
    if (c->state == WS_OPEN)
        ws_flush(c);
}

void ws_open(ws_conn_t *c, const ws_target_t *targets, int target, uint32_t src, const char *token) {
    c->fd = -1;
    c->state = WS_CONNECTING;
    c->target = (uint8_t)target;
    c->epollout = 0;
    c->paused = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = WS_DEAD;
        ops->on_end(c, WS_END_CONNECT, 0, errno);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* the kernel stamps each segment as it arrives: what is read is timed
     * by its arrival, not by when this process got round to reading it */
    setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    if (ws_rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &ws_rcvbuf, sizeof ws_rcvbuf);
    if (src) {
        /* The source address now, the port at connect(): each address then
         * has its own ephemeral port range towards each server port. */
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(src)};
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&sa, sizeof sa)) {
            conn_end(c, WS_END_CONNECT, 0, errno);
            return;
        }
    }
    const ws_target_t *t = &targets[target];
    if (connect(c->fd, (const struct sockaddr *)&t->addr, sizeof t->addr) && errno != EINPROGRESS) {
        conn_end(c, WS_END_CONNECT, 0, errno);
        return;
    }
    /* The request goes out once connected; build it now. */
    uint8_t raw[16];
    char key[32], both[80];
    unsigned char digest[SHA_DIGEST_LENGTH];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rnd64();
        memcpy(raw + i, &r, 8);
    }
    EVP_EncodeBlock((unsigned char *)key, raw, 16);
    int n = snprintf(both, sizeof both, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    SHA1((unsigned char *)both, (size_t)n, digest);
    EVP_EncodeBlock((unsigned char *)c->accept, digest, SHA_DIGEST_LENGTH);
    char req[2048];
    n = snprintf(req, sizeof req,
                 "GET %s%s%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                 "User-Agent: parley-loadgen\r\n\r\n",
                 t->path, !token ? "" : strchr(t->path, '?') ? "&token=" : "?token=",
                 token ? token : "", t->host, key);
    uint8_t *p = n < (int)sizeof req ? out_reserve(c, (size_t)n) : NULL;
    if (!p) {
        conn_end(c, WS_END_LOCAL, 0, ENOMEM);
        return;
    }
    memcpy(p, req, (size_t)n);
    c->outlen += (uint32_t)n;
    /* On loopback the handshake has mostly completed by the time connect()
     * returns, so the request is sent now; only a socket still connecting
     * (EAGAIN) waits for EPOLLOUT, which costs a wake-up, an epoll_ctl and
     * a getsockopt more (ws_event). */
    ssize_t sent = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
    if (sent < 0 && errno != EAGAIN) {
        conn_end(c, WS_END_CONNECT, 0, errno);
        return;
    }
    if (sent >= 0) {
        c->state = WS_UPGRADING;
        c->outlen -= (uint32_t)sent;
        memmove(c->out, c->out + sent, c->outlen);
    }
    c->epollout = c->outlen > 0;
    struct epoll_event ev = {.events = EPOLLIN | (c->epollout ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev))
        conn_end(c, WS_END_CONNECT, 0, errno);
}

static const char *http_header(const char *h, size_t len, const char *name, size_t *vlen) {
    size_t nl = strlen(name);
    const char *end = h + len, *line = h;
    while (line < end) {
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && !strncasecmp(line, name, nl)) {
            const char *v = line + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        line = eol + 2;
    }
    return NULL;
}

/* The 101 response: bytes used, 0 if incomplete, -1 if the connection ended. */
static long upgrade_response(ws_conn_t *c, const uint8_t *buf, size_t len, uint64_t now) {
    const uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) {
        if (len > MAX_RESPONSE) {
            conn_end(c, WS_END_HANDSHAKE, 0, 0);
            return -1;
        }
        return 0;
    }
    size_t hlen = (size_t)(end - buf) + 2, vlen;
    const char *h = (const char *)buf;
    const char *acc = http_header(h, hlen, "Sec-WebSocket-Accept", &vlen);
    if (hlen < 12 || memcmp(h, "HTTP/1.1 101", 12) || !acc || vlen != strlen(c->accept) ||
        memcmp(acc, c->accept, vlen)) {
        int status = hlen >= 12 ? atoi(h + 9) : 0;
        conn_end(c, WS_END_HANDSHAKE, status, 0);
        return -1;
    }
    c->state = WS_OPEN;
    ops->on_open(c, now);
    return c->state == WS_DEAD ? -1 : (long)(hlen + 2);
}

/* Handles every complete frame in buf; returns the bytes used, -1 if the
 * connection ended. */
static long frames(ws_conn_t *c, const uint8_t *buf, size_t len, uint64_t now) {
    size_t off = 0;
    while (len - off >= 2) {
        const uint8_t *p = buf + off;
        int fin = p[0] & 0x80, opcode = p[0] & 0x0F;
        if (p[1] & 0x80) {
            conn_end(c, WS_END_PROTOCOL, 0, 0); /* servers must not mask */
            return -1;
        }
        uint64_t plen = p[1] & 0x7F;
        size_t hl = 2;
        if (plen == 126) {
            if (len - off < 4)
                break;
            plen = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (plen == 127) {
            if (len - off < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | p[2 + i];
            hl = 10;
        }
        if (plen > MAX_FRAME) {
            conn_end(c, WS_END_PROTOCOL, 0, EMSGSIZE);
            return -1;
        }
        if (len - off < hl + plen)
            break;
        const uint8_t *pl = p + hl;
        off += hl + (size_t)plen;
        switch (opcode) {
        case 0x1:
        case 0x2:
            if (!fin) { /* Parley never fragments; neither does Phoenix */
                conn_end(c, WS_END_PROTOCOL, 0, 0);
                return -1;
            }
            ops->on_message(c, pl, (size_t)plen, now);
            break;
        case 0x8: {
            int code = plen >= 2 ? pl[0] << 8 | pl[1] : 1005;
            queue_frame(c, 0x8, pl, plen >= 2 ? 2 : 0); /* echo the code (RFC 6455 5.5.1) */
            if (c->state != WS_DEAD)
                ws_flush(c);
            conn_end(c, WS_END_CLOSED, code, 0);
            return -1;
        }
        case 0x9:
            queue_frame(c, 0xA, pl, (size_t)plen);
            ws_flush(c);
            break;
        case 0xA:
            break;
        default:
            conn_end(c, WS_END_PROTOCOL, 0, 0);
            return -1;
        }
        if (c->state == WS_DEAD)
            return -1;
    }
    return (long)off;
}

static int in_reserve(ws_conn_t *c, size_t need) {
    if (need <= c->incap)
        return 0;
    size_t cap = c->incap < 256 ? 256 : c->incap;
    while (cap < need)
        cap *= 2;
    uint8_t *p = cap <= 2 * (size_t)MAX_FRAME ? realloc(c->in, cap) : NULL;
    if (!p)
        return -1;
    c->in = p;
    c->incap = (uint32_t)cap;
    return 0;
}

/* A connection holds an input buffer only while a frame of it is partly
 * read, so that the buffers of the many connections that carry a partial
 * frame now and then are a few blocks of the heap, reused while their pages
 * are still mapped (worker_main keeps large blocks out of mmap). */
static void in_release(ws_conn_t *c) {
    free(c->in);
    c->in = NULL;
    c->incap = 0;
}

/* When the last segment of a read reached the socket (SO_TIMESTAMPNS, in
 * CLOCK_MONOTONIC); 0 if the kernel gave no stamp. */
static uint64_t rx_stamp(struct msghdr *mh) {
    for (struct cmsghdr *h = CMSG_FIRSTHDR(mh); h; h = CMSG_NXTHDR(mh, h))
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(h), sizeof ts);
            int64_t t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + mono_minus_real;
            return t > 0 ? (uint64_t)t : 0;
        }
    return 0;
}

/* Reads what the socket has. A carried partial frame is copied in front of
 * the read in the shared buffer, unless it is large (a big frame arriving
 * in pieces): then reads go into the connection's own buffer, which is
 * freed once empty so that idle connections hold nothing. */
static void readable(ws_conn_t *c) {
    for (;;) {
        size_t have = c->inlen, room;
        uint8_t *buf;
        if (have < READ_BUF / 2) {
            buf = rbuf;
            if (have)
                memcpy(rbuf, c->in, have);
            room = READ_BUF - have;
        } else {
            if (in_reserve(c, have + READ_BUF)) {
                conn_end(c, WS_END_LOCAL, 0, ENOMEM);
                return;
            }
            buf = c->in;
            room = c->incap - have;
        }
        struct iovec iov = {buf + have, room};
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(struct timespec))];
        } cm;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof cm};
        ssize_t n = recvmsg(c->fd, &mh, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                conn_end(c, WS_END_CLOSED, 1006, errno);
            return;
        }
        if (n == 0) {
            conn_end(c, WS_END_CLOSED, 1006, 0);
            return;
        }
        ws_bytes_read += (uint64_t)n;
        uint64_t now = now_ns(), arrived = rx_stamp(&mh);
        if (arrived && arrived < now)
            now = arrived;
        size_t len = have + (size_t)n;
        long used = 0;
        if (c->state == WS_UPGRADING && (used = upgrade_response(c, buf, len, now)) < 0)
            return;
        if (c->state == WS_OPEN) {
            long more = frames(c, buf + used, len - (size_t)used, now);
            if (more < 0)
                return;
            used += more;
        }
        c->inlen = (uint32_t)(len - (size_t)used);
        if (buf == c->in) {
            /* a big frame still arriving consumes nothing: no copy then */
            if (used)
                memmove(c->in, c->in + used, c->inlen);
            if (!c->inlen)
                in_release(c);
        } else {
            if (!c->inlen || c->incap > READ_BUF)
                in_release(c);
            if (c->inlen) {
                if (in_reserve(c, c->inlen)) {
                    conn_end(c, WS_END_LOCAL, 0, ENOMEM);
                    return;
                }
                memcpy(c->in, rbuf + used, c->inlen);
            }
        }
        if ((size_t)n < room)
            return; /* drained */
    }
}

void ws_event(ws_conn_t *c, uint32_t events) {
    if (c->state == WS_CONNECTING) {
        if (events & (EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            conn_end(c, WS_END_CONNECT, 0, err ? err : ECONNREFUSED);
            return;
        }
        c->state = WS_UPGRADING;
        ws_flush(c);
        return;
    }
    if (c->paused && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        ws_pause(c, 0); /* the server is closing: read what it sent, to the end */
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        readable(c);
    if (c->state != WS_DEAD && c->state != WS_FREE && (events & EPOLLOUT))
        ws_flush(c);
}

static char wake_tag; /* epoll data of the wake eventfd: not a connection */

void ws_watch_wake(int epfd, int wake_fd) {
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &wake_tag};
    epoll_ctl(epfd, EPOLL_CTL_ADD, wake_fd, &wev);
}

int ws_poll(int epfd, int wake_fd, struct epoll_event *evs, int max, const struct timespec *ts) {
    int n = epoll_pwait2(epfd, evs, max, ts, NULL);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    mono_minus_real = (int64_t)now_ns() - ((int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == &wake_tag) {
            uint64_t v;
            if (read(wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                return -1;
            continue;
        }
        ws_event(evs[i].data.ptr, evs[i].events);
    }
    return 0;
}
