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
 * "..." past 80 characters) and returns buf. */
const char *log_quote(const char *s, char *buf, size_t size);

/* Routes libwebsockets' own log lines through plog. */
void log_hook_lws(void);

#define LOG_ENABLED(lvl) ((lvl) <= log_level)

#endif
