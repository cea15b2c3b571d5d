/* log.c -- logfmt lines on stderr, and the hook that sends libwebsockets'
 * messages the same way. */
#include "log.h"

#include <libwebsockets.h>
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

const char *log_quote(const char *s, char *buf, size_t size) {
    size_t o = 0, shown = 0;
    if (size < 8) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (; s && *s && o + 6 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (shown++ == 80) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
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
