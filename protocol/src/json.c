/* json.c -- JSON parsing under limits and the small JSON writer the encoders
 * use for the envelope. Values themselves are parsed and serialised by
 * jansson; this file adds what jansson lacks: a nesting limit and strict
 * UTF-8 checking of the whole text before any allocation happens. */
#include <string.h>

#include "internal.h"

/* One pass over the text: UTF-8 validity and the deepest nesting of arrays
 * and objects outside strings. Cheap, allocation-free, and it bounds what
 * jansson may build. */
static int json_prescan(const uint8_t *buf, size_t len, int max_depth) {
    if (!proto_utf8_valid(buf, len))
        return PROTO_EUTF8;
    int depth = 0, in_string = 0, escaped = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = buf[i];
        if (in_string) {
            if (escaped)
                escaped = 0;
            else if (c == '\\')
                escaped = 1;
            else if (c == '"')
                in_string = 0;
            continue;
        }
        if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return PROTO_EDEPTH;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

int proto_json_parse(const uint8_t *buf, size_t len, int max_depth, json_t **out) {
    int rc = json_prescan(buf, len, max_depth);
    if (rc)
        return rc;
    json_error_t err;
    /* JSON_DECODE_ANY is off: the envelope is an array or an object.
     * \u0000 is allowed in string values (MessagePack strings may hold NUL
     * too); jansson refuses it in object keys, and so does msgpack.c. */
    json_t *v = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!v)
        return json_error_code(&err) == json_error_out_of_memory ? PROTO_ENOMEM
                                                                  : PROTO_ESYNTAX;
    *out = v;
    return 0;
}

/* Appends s as a JSON string literal. */
int proto_json_append_string(proto_buf_t *out, const char *s) {
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s);
    /* Worst case every byte becomes \u00XX. */
    int rc = proto_buf_reserve(out, n * 6 + 2);
    if (rc)
        return rc;
    uint8_t *p = out->data + out->len;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = c;
        } else if (c >= 0x20) {
            *p++ = c;
        } else if (c == '\n') {
            *p++ = '\\';
            *p++ = 'n';
        } else if (c == '\r') {
            *p++ = '\\';
            *p++ = 'r';
        } else if (c == '\t') {
            *p++ = '\\';
            *p++ = 't';
        } else {
            memcpy(p, "\\u00", 4);
            p[4] = (uint8_t)hex[c >> 4];
            p[5] = (uint8_t)hex[c & 15];
            p += 6;
        }
    }
    *p++ = '"';
    out->len = (size_t)(p - out->data);
    return 0;
}

/* Appends v serialised compactly by jansson. */
int proto_json_append_value(proto_buf_t *out, const json_t *v) {
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    size_t room = out->cap - out->len;
    size_t need = json_dumpb(v, room ? (char *)out->data + out->len : NULL, room, flags);
    if (need == 0)
        return PROTO_ENOMEM;
    if (need > room) {
        int rc = proto_buf_reserve(out, need);
        if (rc)
            return rc;
        if (json_dumpb(v, (char *)out->data + out->len, need, flags) != need)
            return PROTO_ENOMEM;
    }
    out->len += need;
    return 0;
}
