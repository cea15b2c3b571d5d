/* log.h -- leveled one-line logs in logfmt to stderr:
 *   ts=2026-11-21T10:00:00.123Z level=warn event=bad_input conn=7 kind=utf8
 * Every line has ts, level and event; callers add key=value fields. Values
 * that come from clients go through log_quote() so that a line stays a line. */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern int log_level;

/* Parses "error", "warn", "info", "debug". Returns the level or -1. */
int log_level_parse(const char *s);
const char *log_level_name(int level);

/* Writes one line: event is a bare word, fmt (may be NULL) the extra fields. */
void plog(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Quotes s as a logfmt value into buf (at most size bytes, truncated with
 * "..." past 80 characters or when buf is full) and returns buf. Quotes and
 * backslashes are escaped, control characters and bytes that are not UTF-8
 * written as \xNN; valid UTF-8 is kept. */
const char *log_quote(const char *s, char *buf, size_t size);

/* Routes libwebsockets' own log lines through plog. */
void log_hook_lws(void);

#define LOG_ENABLED(lvl) ((lvl) <= log_level)

/* Lines that clients can cause at will (bad input, rate limits) go through
 * plog_limited: each call site writes at most LOG_LIMIT_PER_S lines a
 * second, so that a flood of bad messages cannot flood the log. Lines over
 * that are counted (parley_log_suppressed_total), and the next line the
 * site writes ends in dropped=N. fmt must be a string literal with at least
 * one field. */
#define LOG_LIMIT_PER_S 10

typedef struct log_limit {
    long long second; /* CLOCK_MONOTONIC second of the current window */
    unsigned lines;   /* written in it */
    unsigned dropped; /* not written since the last line that was */
} log_limit_t;

/* -1: drop the line (counted); otherwise write it, with dropped=N when the
 * result N is above 0. */
int log_limit_pass(log_limit_t *l);

#define plog_limited(level, event, fmt, ...)                                   \
    do {                                                                       \
        static log_limit_t ll_;                                                \
        if (LOG_ENABLED(level)) {                                              \
            int d_ = log_limit_pass(&ll_);                                     \
            if (d_ == 0)                                                       \
                plog(level, event, fmt, __VA_ARGS__);                          \
            else if (d_ > 0)                                                   \
                plog(level, event, fmt " dropped=%d", __VA_ARGS__, d_);        \
        }                                                                      \
    } while (0)

#endif
