/* scan.c -- slicing JSON and MessagePack values (see scan.h). Every function
 * checks bounds and returns an error on malformed input rather than trust
 * the server. */
#include "scan.h"

#include <string.h>

/* ---- JSON ------------------------------------------------------------------- */

static const uint8_t *json_ws(const uint8_t *p, const uint8_t *e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* The end of the string starting at p (on its opening quote), or NULL. */
static const uint8_t *json_string_end(const uint8_t *p, const uint8_t *e) {
    for (p++; p < e; p++) {
        const uint8_t *q = memchr(p, '"', (size_t)(e - p));
        if (!q)
            return NULL;
        size_t bs = 0; /* an odd run of backslashes escapes the quote */
        while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (!(bs & 1))
            return q + 1;
        p = q;
    }
    return NULL;
}

/* The end of the value starting at p (no leading blanks), or NULL. */
static const uint8_t *json_skip(const uint8_t *p, const uint8_t *e) {
    if (p >= e)
        return NULL;
    if (*p == '"')
        return json_string_end(p, e);
    if (*p != '[' && *p != '{') { /* number, true, false, null */
        while (p < e && *p != ',' && *p != ']' && *p != '}' && *p != ' ' && *p != '\n' &&
               *p != '\r' && *p != '\t' && *p != ':')
            p++;
        return p;
    }
    int depth = 0;
    while (p < e) {
        switch (*p) {
        case '"':
            if (!(p = json_string_end(p, e)))
                return NULL;
            continue;
        case '[':
        case '{':
            depth++;
            break;
        case ']':
        case '}':
            if (--depth == 0)
                return p + 1;
            break;
        }
        p++;
    }
    return NULL;
}

static int json_split(const uint8_t *p, size_t n, slice_t out[5]) {
    const uint8_t *e = p + n;
    p = json_ws(p, e);
    if (p >= e || *p++ != '[')
        return -1;
    for (int i = 0; i < 5; i++) {
        p = json_ws(p, e);
        const uint8_t *v = json_skip(p, e);
        if (!v || v == p)
            return -1;
        out[i] = (slice_t){p, (size_t)(v - p)};
        p = json_ws(v, e);
        if (p >= e || *p != (i < 4 ? ',' : ']'))
            return -1;
        p++;
    }
    return 0;
}

static int json_map(slice_t v, scan_map_cb cb, void *ud) {
    const uint8_t *p = v.p, *e = v.p + v.n;
    if (p >= e || *p++ != '{')
        return -1;
    p = json_ws(p, e);
    if (p < e && *p == '}')
        return 0;
    while (p < e) {
        const uint8_t *k = p, *ke = json_skip(p, e);
        if (!ke || *k != '"')
            return -1;
        p = json_ws(ke, e);
        if (p >= e || *p++ != ':')
            return -1;
        p = json_ws(p, e);
        const uint8_t *ve = json_skip(p, e);
        if (!ve)
            return -1;
        int r = cb(ud, (slice_t){k + 1, (size_t)(ke - k - 2)}, (slice_t){p, (size_t)(ve - p)});
        if (r)
            return r;
        p = json_ws(ve, e);
        if (p < e && *p == ',') {
            p = json_ws(p + 1, e);
            continue;
        }
        return p < e && *p == '}' ? 0 : -1;
    }
    return -1;
}

/* ---- MessagePack ------------------------------------------------------------ */

static uint64_t be(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads the header of the value at p: its kind ('m' map, 'a' array, 's'
 * string, 'o' other), the element count (containers) and where its own
 * bytes end (for containers, where the elements start). NULL if truncated. */
static const uint8_t *mp_head(const uint8_t *p, const uint8_t *e, int *kind, uint64_t *count) {
    if (p >= e)
        return NULL;
    uint8_t t = *p++;
    uint64_t len = 0;
    int lb = 0;
    *kind = 'o';
    *count = 0;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
        return p;
    if ((t & 0xf0) == 0x80 || t == 0xde || t == 0xdf) {
        *kind = 'm';
        lb = t == 0xde ? 2 : t == 0xdf ? 4 : 0;
        if (e - p < lb)
            return NULL;
        *count = lb ? be(p, lb) : (uint64_t)(t & 0x0f);
        return p + lb;
    }
    if ((t & 0xf0) == 0x90 || t == 0xdc || t == 0xdd) {
        *kind = 'a';
        lb = t == 0xdc ? 2 : t == 0xdd ? 4 : 0;
        if (e - p < lb)
            return NULL;
        *count = lb ? be(p, lb) : (uint64_t)(t & 0x0f);
        return p + lb;
    }
    if ((t & 0xe0) == 0xa0 || t == 0xd9 || t == 0xda || t == 0xdb) {
        *kind = 's';
        lb = t == 0xd9 ? 1 : t == 0xda ? 2 : t == 0xdb ? 4 : 0;
        if (e - p < lb)
            return NULL;
        len = lb ? be(p, lb) : (uint64_t)(t & 0x1f);
    } else if (t == 0xc4 || t == 0xc5 || t == 0xc6) { /* bin */
        lb = 1 << (t - 0xc4);
        if (e - p < lb)
            return NULL;
        len = be(p, lb);
    } else if (t == 0xc7 || t == 0xc8 || t == 0xc9) { /* ext */
        lb = 1 << (t - 0xc7);
        if (e - p < lb)
            return NULL;
        len = be(p, lb) + 1;
    } else if (t == 0xca || t == 0xcb) {
        len = t == 0xca ? 4 : 8;
    } else if (t >= 0xcc && t <= 0xcf) {
        len = 1u << (t - 0xcc);
    } else if (t >= 0xd0 && t <= 0xd3) {
        len = 1u << (t - 0xd0);
    } else if (t >= 0xd4 && t <= 0xd8) { /* fixext */
        len = (1u << (t - 0xd4)) + 1;
    } else {
        return NULL; /* 0xc1: never used */
    }
    p += lb;
    if ((uint64_t)(e - p) < len)
        return NULL;
    *count = len; /* strings: their length */
    return p + len;
}

/* The end of the value at p, or NULL. */
static const uint8_t *mp_skip(const uint8_t *p, const uint8_t *e) {
    uint64_t need = 1;
    while (need) {
        int kind;
        uint64_t count;
        if (!(p = mp_head(p, e, &kind, &count)))
            return NULL;
        need--;
        if (kind == 'm' || kind == 'a') {
            uint64_t add = kind == 'm' ? 2 * count : count;
            if (add > (uint64_t)(e - p)) /* each element takes a byte at least */
                return NULL;
            need += add;
        }
    }
    return p;
}

static int mp_split(const uint8_t *p, size_t n, slice_t out[5]) {
    const uint8_t *e = p + n;
    int kind;
    uint64_t count;
    if (!(p = mp_head(p, e, &kind, &count)) || kind != 'a' || count != 5)
        return -1;
    for (int i = 0; i < 5; i++) {
        const uint8_t *v = mp_skip(p, e);
        if (!v)
            return -1;
        out[i] = (slice_t){p, (size_t)(v - p)};
        p = v;
    }
    return 0;
}

static int mp_str(slice_t v, slice_t *s) {
    int kind;
    uint64_t len;
    const uint8_t *end = mp_head(v.p, v.p + v.n, &kind, &len);
    if (!end || kind != 's')
        return -1;
    *s = (slice_t){end - len, (size_t)len};
    return 0;
}

static int mp_map(slice_t v, scan_map_cb cb, void *ud) {
    const uint8_t *p = v.p, *e = v.p + v.n;
    int kind;
    uint64_t count;
    if (!(p = mp_head(p, e, &kind, &count)) || kind != 'm')
        return -1;
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *ke = mp_skip(p, e), *ve;
        if (!ke || !(ve = mp_skip(ke, e)))
            return -1;
        slice_t key;
        if (mp_str((slice_t){p, (size_t)(ke - p)}, &key))
            return -1;
        int r = cb(ud, key, (slice_t){ke, (size_t)(ve - ke)});
        if (r)
            return r;
        p = ve;
    }
    return 0;
}

/* ---- either ----------------------------------------------------------------- */

int scan_split(int msgpack, const uint8_t *p, size_t n, slice_t out[5]) {
    return msgpack ? mp_split(p, n, out) : json_split(p, n, out);
}

int scan_str(int msgpack, slice_t v, slice_t *s) {
    if (msgpack)
        return mp_str(v, s);
    if (v.n < 2 || v.p[0] != '"' || v.p[v.n - 1] != '"')
        return -1;
    *s = (slice_t){v.p + 1, v.n - 2};
    return 0;
}

int scan_str_eq(int msgpack, slice_t v, const char *lit) {
    slice_t s;
    size_t n = strlen(lit);
    return !scan_str(msgpack, v, &s) && s.n == n && !memcmp(s.p, lit, n);
}

int scan_map(int msgpack, slice_t v, scan_map_cb cb, void *ud) {
    return msgpack ? mp_map(v, cb, ud) : json_map(v, cb, ud);
}
