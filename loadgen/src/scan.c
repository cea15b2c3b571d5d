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

/* Byte classes for the scanning loops: a table lookup per byte skips the
 * bytes that do not matter quickly (presence payloads are mostly such
 * bytes, and every client reads all of them). */
static const uint8_t in_string[256] = {['"'] = 1, ['\\'] = 1};
static const uint8_t structural[256] = {['"'] = 1, ['['] = 1, ['{'] = 1, [']'] = 1, ['}'] = 1};

/* The end of the string starting at p (on its opening quote), or NULL. */
static const uint8_t *json_string_end(const uint8_t *p, const uint8_t *e) {
    p++;
    for (;;) {
        while (p < e && !in_string[*p])
            p++;
        if (p >= e)
            return NULL;
        if (*p == '"')
            return p + 1;
        p += 2; /* a backslash and the byte it escapes */
    }
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
    int depth = 0; /* inside a container only quotes and brackets matter */
    while (p < e) {
        while (p < e && !structural[*p])
            p++;
        if (p >= e)
            break;
        switch (*p) {
        case '"':
            if (!(p = json_string_end(p, e)))
                return NULL;
            continue;
        case '[':
        case '{':
            depth++;
            break;
        default: /* ] or } */
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

/* Iterates the object at p (within e) and returns its end, or NULL: either
 * malformed (*rc = -1) or stopped by a callback (*rc = its result). With cb,
 * cb(key, value) for each entry; with pick, the value of each key pick
 * names a callback for is an object iterated in turn, in the same pass. */
static const uint8_t *json_map_at(const uint8_t *p, const uint8_t *e, scan_map_cb cb,
                                  scan_pick_cb pick, void *ud, int *rc) {
    *rc = -1;
    if (p >= e || *p++ != '{')
        return NULL;
    p = json_ws(p, e);
    if (p < e && *p == '}') {
        *rc = 0;
        return p + 1;
    }
    while (p < e) {
        const uint8_t *k = p, *ke = json_skip(p, e);
        if (!ke || *k != '"')
            return NULL;
        p = json_ws(ke, e);
        if (p >= e || *p++ != ':')
            return NULL;
        p = json_ws(p, e);
        slice_t key = {k + 1, (size_t)(ke - k - 2)};
        scan_map_cb inner = pick ? pick(ud, key) : NULL;
        const uint8_t *ve;
        if (inner) {
            if (!(ve = json_map_at(p, e, inner, NULL, ud, rc)))
                return NULL;
        } else {
            if (!(ve = json_skip(p, e)))
                return NULL;
            int r = cb ? cb(ud, key, (slice_t){p, (size_t)(ve - p)}) : 0;
            if (r) {
                *rc = r;
                return NULL;
            }
        }
        p = json_ws(ve, e);
        if (p < e && *p == ',') {
            p = json_ws(p + 1, e);
            continue;
        }
        if (p < e && *p == '}') {
            *rc = 0;
            return p + 1;
        }
        return NULL;
    }
    return NULL;
}

static int json_map(slice_t v, scan_map_cb cb, scan_pick_cb pick, void *ud) {
    int rc;
    json_map_at(v.p, v.p + v.n, cb, pick, ud, &rc);
    return rc;
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

/* As json_map_at, for a MessagePack map. */
static const uint8_t *mp_map_at(const uint8_t *p, const uint8_t *e, scan_map_cb cb,
                                scan_pick_cb pick, void *ud, int *rc) {
    int kind;
    uint64_t count;
    *rc = -1;
    if (!(p = mp_head(p, e, &kind, &count)) || kind != 'm')
        return NULL;
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *ke = mp_skip(p, e), *ve;
        slice_t key;
        if (!ke || mp_str((slice_t){p, (size_t)(ke - p)}, &key))
            return NULL;
        scan_map_cb inner = pick ? pick(ud, key) : NULL;
        if (inner) {
            if (!(ve = mp_map_at(ke, e, inner, NULL, ud, rc)))
                return NULL;
        } else {
            if (!(ve = mp_skip(ke, e)))
                return NULL;
            int r = cb ? cb(ud, key, (slice_t){ke, (size_t)(ve - ke)}) : 0;
            if (r) {
                *rc = r;
                return NULL;
            }
        }
        p = ve;
    }
    *rc = 0;
    return p;
}

static int mp_map(slice_t v, scan_map_cb cb, scan_pick_cb pick, void *ud) {
    int rc;
    mp_map_at(v.p, v.p + v.n, cb, pick, ud, &rc);
    return rc;
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
    return msgpack ? mp_map(v, cb, NULL, ud) : json_map(v, cb, NULL, ud);
}

int scan_map_of_maps(int msgpack, slice_t v, scan_pick_cb pick, void *ud) {
    return msgpack ? mp_map(v, NULL, pick, ud) : json_map(v, NULL, pick, ud);
}
