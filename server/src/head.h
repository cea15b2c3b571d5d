/* head.h -- reading an HTTP request head before lws does (listener.c).
 *
 * phoenix.js sends its authToken option as a WebSocket protocol entry,
 * "Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.<token>", and lws
 * 4.1 refuses that header beyond 127 bytes. The listener therefore takes
 * the entry out of the head and hands lws the rest. Everything here is
 * pure: it reads one buffer and writes into another of a given size, never
 * past either, whatever the client sent (fuzz/head.c). */
#ifndef PARLEY_HEAD_H
#define PARLEY_HEAD_H

#include <stddef.h>

/* The longest request head a node reads (lws' header space, main.c, and
 * the listener's peek). */
#define HTTP_HEAD_MAX 8192

/* The prefix of phoenix.js' authToken protocol entry. */
#define HEAD_BEARER_PREFIX "base64url.bearer.phx."

/* Where header `name` (any case) has its value within head[0..len), from
 * after its colon to the end of its line: [*vs, *ve). The request line is
 * never taken for a header. Returns 1 if found (the first occurrence). */
int head_find(const char *head, size_t len, const char *name, size_t *vs, size_t *ve);

/* The token of the first authToken entry of a Sec-WebSocket-Protocol
 * value[0..n) (entries separated by commas, spaces or tabs; any byte
 * else, NUL included, is part of an entry), its length in *blen; NULL if
 * there is none. */
const char *head_bearer(const char *value, size_t n, size_t *blen);

/* head[0..len) is a whole request head. If its Sec-WebSocket-Protocol
 * header has an authToken entry, writes the head without it (every such
 * entry dropped, the other entries kept in order, ", " between them) to
 * out[0..cap) and points *bearer, *blen at the first entry's token (within
 * head). Returns the length written, 0 when there is no such entry
 * (nothing written), -1 when the head without it would not fit in cap. */
long head_take_bearer(const char *head, size_t len, char *out, size_t cap, const char **bearer,
                      size_t *blen);

#endif
