/* log.c -- logfmt lines on stderr, and the hook that sends libwebsockets'
 * messages the same way. */
#include "log.h"

#include <libwebsockets.h>
#include <parley/protocol.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "head.h"
#include "metrics.h"

int log_level = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

const char *log_level_name(int level) {
    return level >= 0 && level < 4 ? level_names[level] : "unknown";
}

void plog(int level, const char *event, const char *fmt, ...) {
    if (!LOG_ENABLED(level))
        return;
    char line[1024];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), level_names[level], event);
    if (fmt && n > 0 && (size_t)n < sizeof line - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        n = m < 0 ? n : n + m;
    }
    if (n < 0 || (size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}

int log_limit_pass(log_limit_t *l) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    if ((long long)ts.tv_sec != l->second) {
        l->second = (long long)ts.tv_sec;
        l->lines = 0;
    }
    if (l->lines >= LOG_LIMIT_PER_S) {
        l->dropped++;
        metrics.log_suppressed++;
        return -1;
    }
    l->lines++;
    int d = (int)l->dropped;
    l->dropped = 0;
    return d;
}

/* The length of the UTF-8 sequence at p if it is a valid one (not cut by
 * the string's end), else 0. */
static size_t utf8_at(const unsigned char *p) {
    size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 0;
    for (size_t i = 1; i < n; i++)
        if (!p[i])
            return 0; /* checked byte by byte: nothing read past the NUL */
    return n && proto_utf8_valid(p, n) ? n : 0;
}

const char *log_quote(const char *s, char *buf, size_t size) {
    size_t o = 0, shown = 0;
    if (size < 8) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
        unsigned char c = *p;
        size_t n = c < 0x80 ? 1 : utf8_at(p); /* 0: a byte that is not UTF-8 */
        int quote = c == '"' || c == '\\', hex = !quote && (c < 0x20 || c == 0x7f || !n);
        size_t need = quote ? 2 : hex ? 4 : n;
        /* room kept for "...", the closing quote and the NUL */
        if (shown++ == 80 || o + need + 5 > size) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (quote) {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (hex) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        } else {
            memcpy(buf + o, p, n);
            o += n;
        }
        p += n ? n : 1;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static void lws_emit(int lws_level, const char *line) {
    int level = lws_level == LLL_ERR ? LOG_ERROR : lws_level == LLL_WARN ? LOG_WARN : LOG_DEBUG;
    char q[256];
    char msg[200];
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    snprintf(msg, sizeof msg, "%.*s", (int)n, line);
    /* lws 4.1 reports every adoption with read data (listener.c, Phoenix's
     * authToken) as an error; it is not one. */
    if (strstr(msg, "adopt_socket_readbuf: calling service"))
        level = LOG_DEBUG;
    /* lws closes a connection whose request head overflows its header
     * space (main.c) without an answer: our line and count instead. */
    if (strstr(msg, "Ran out of header data space")) {
        metrics.rejected[REJ_HEAD_TOO_LARGE]++;
        plog_limited(LOG_WARN, "head_too_large", "max_bytes=%d", HTTP_HEAD_MAX);
        return;
    }
    plog(level, "lws", "msg=%s", log_quote(msg, q, sizeof q));
}

void log_hook_lws(void) {
    int mask = LLL_ERR | LLL_WARN;
    if (log_level >= LOG_DEBUG)
        mask |= LLL_NOTICE;
    lws_set_log_level(mask, lws_emit);
}
