/* head.c -- see head.h. */
#include "head.h"

#include <string.h>
#include <strings.h>

int head_find(const char *head, size_t len, const char *name, size_t *vs, size_t *ve) {
    size_t nl = strlen(name);
    for (size_t i = 0; i < len;) {
        const char *eol = memchr(head + i, '\n', len - i);
        if (!eol)
            return 0;
        size_t line = (size_t)(eol - head) + 1; /* the next line starts here */
        if (line + nl < len && strncasecmp(head + line, name, nl) == 0 && head[line + nl] == ':') {
            size_t a = line + nl + 1, b = a;
            while (b < len && head[b] != '\r' && head[b] != '\n')
                b++;
            *vs = a;
            *ve = b;
            return 1;
        }
        i = line;
    }
    return 0;
}

static int is_sep(char c) {
    return c == ' ' || c == ',' || c == '\t';
}

/* The protocol entry starting at v[i] (before end) ends here. */
static size_t entry_end(const char *v, size_t i, size_t end) {
    while (i < end && !is_sep(v[i]))
        i++;
    return i;
}

static int is_bearer(const char *e, size_t n) {
    size_t pl = sizeof HEAD_BEARER_PREFIX - 1;
    return n > pl && memcmp(e, HEAD_BEARER_PREFIX, pl) == 0;
}

/* Appends p[0..n) to out[0..cap) at *o; -1 if it does not fit. */
static int put(char *out, size_t cap, size_t *o, const char *p, size_t n) {
    if (n > cap - *o)
        return -1;
    memcpy(out + *o, p, n);
    *o += n;
    return 0;
}

const char *head_bearer(const char *value, size_t n, size_t *blen) {
    size_t pl = sizeof HEAD_BEARER_PREFIX - 1;
    for (size_t i = 0; i < n;) {
        while (i < n && is_sep(value[i]))
            i++;
        size_t j = entry_end(value, i, n);
        if (j > i && is_bearer(value + i, j - i)) {
            *blen = j - i - pl;
            return value + i + pl;
        }
        i = j;
    }
    *blen = 0;
    return NULL;
}

long head_take_bearer(const char *head, size_t len, char *out, size_t cap, const char **bearer,
                      size_t *blen) {
    size_t vs, ve;
    *bearer = NULL;
    *blen = 0;
    if (!head_find(head, len, "Sec-WebSocket-Protocol", &vs, &ve))
        return 0;
    if (!(*bearer = head_bearer(head + vs, ve - vs, blen)))
        return 0;
    size_t o = 0;
    int kept = 0;
    if (put(out, cap, &o, head, vs))
        return -1;
    for (size_t i = vs; i < ve;) {
        while (i < ve && is_sep(head[i]))
            i++;
        size_t j = entry_end(head, i, ve);
        if (j > i && !is_bearer(head + i, j - i)) {
            const char *sep = kept ? ", " : " ";
            if (put(out, cap, &o, sep, strlen(sep)) || put(out, cap, &o, head + i, j - i))
                return -1;
            kept = 1;
        }
        i = j;
    }
    if (put(out, cap, &o, head + ve, len - ve))
        return -1;
    return (long)o;
}
