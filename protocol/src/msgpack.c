/* msgpack.c -- the MessagePack serializer: the V2 five-element array
 * [join_ref, ref, topic, event, payload] as a MessagePack array.
 *
 * Decoding is done by msgpack-c after a hand-written structural pre-scan.
 * The pre-scan exists because msgpack-c allocates a container's elements as
 * soon as it reads the header: a 5-byte array header claiming 2^28 elements
 * would make it reserve gigabytes. The scan checks, before any allocation,
 * that every container's declared size fits in the bytes that remain, that
 * nesting stays under the limit, and that nothing trails the message. */
#include <math.h>
#include <msgpack.h>
#include <string.h>

#include "internal.h"

/* msgpack-c's unpacker keeps the open containers on a fixed stack of
 * MSGPACK_EMBED_STACK_SIZE (32, set when the library is built) entries and
 * fails deeper input as "out of memory". The decoder caps its depth limit
 * there, so that such input is refused as too deep instead. */
#define MP_UNPACK_MAX_DEPTH 32

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Scans one item at *pp. Returns 0 and advances *pp, or a PROTO_E* code. */
static int mp_scan(const uint8_t **pp, const uint8_t *end, int depth, int max_depth) {
    const uint8_t *p = *pp;
    if (p >= end)
        return PROTO_ESYNTAX;
    uint8_t c = *p++;
    uint64_t n = 0;     /* elements (containers) or payload bytes (scalars) */
    int container = 0;  /* 1 = array, 2 = map */
    int w = 0;          /* width of a length field */

    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        n = 0;
    } else if (c >= 0x80 && c <= 0x8f) {
        container = 2, n = c & 0x0f;
    } else if (c >= 0x90 && c <= 0x9f) {
        container = 1, n = c & 0x0f;
    } else if (c >= 0xa0 && c <= 0xbf) {
        n = c & 0x1f;
    } else {
        switch (c) {
        case 0xc4: case 0xd9: w = 1; break;              /* bin8, str8 */
        case 0xc5: case 0xda: w = 2; break;              /* bin16, str16 */
        case 0xc6: case 0xdb: w = 4; break;              /* bin32, str32 */
        case 0xc7: w = 1, n = 1; break;                  /* ext8: + type byte */
        case 0xc8: w = 2, n = 1; break;
        case 0xc9: w = 4, n = 1; break;
        case 0xca: n = 4; break;
        case 0xcb: n = 8; break;
        case 0xcc: case 0xd0: n = 1; break;
        case 0xcd: case 0xd1: n = 2; break;
        case 0xce: case 0xd2: n = 4; break;
        case 0xcf: case 0xd3: n = 8; break;
        case 0xd4: n = 2; break;                         /* fixext: type + data */
        case 0xd5: n = 3; break;
        case 0xd6: n = 5; break;
        case 0xd7: n = 9; break;
        case 0xd8: n = 17; break;
        case 0xdc: container = 1, w = 2; break;
        case 0xdd: container = 1, w = 4; break;
        case 0xde: container = 2, w = 2; break;
        case 0xdf: container = 2, w = 4; break;
        default: return PROTO_ESYNTAX;                   /* 0xc1 is never used */
        }
        if (w) {
            if ((size_t)(end - p) < (size_t)w)
                return PROTO_ESYNTAX;
            n += be(p, w);
            p += w;
        }
    }
    if (!container) {
        if ((uint64_t)(end - p) < n)
            return PROTO_ESYNTAX;
        *pp = p + n;
        return 0;
    }
    if (depth + 1 > max_depth)
        return PROTO_EDEPTH;
    uint64_t items = container == 2 ? n * 2 : n;
    if (items > (uint64_t)(end - p)) /* each item takes at least one byte */
        return PROTO_ESYNTAX;
    for (uint64_t i = 0; i < items; i++) {
        int rc = mp_scan(&p, end, depth + 1, max_depth);
        if (rc)
            return rc;
    }
    *pp = p;
    return 0;
}

/* The bytes of a string. msgpack-c leaves ptr NULL (or pointing at an
 * earlier item) for an empty string, and jansson refuses a NULL pointer even
 * with length 0, so an empty string gets a pointer of its own. */
static const char *str_ptr(const msgpack_object_str *s) {
    return s->size ? s->ptr : "";
}

static int mp_to_json(const msgpack_object *o, json_t **out) {
    json_t *v = NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: v = json_null(); break;
    case MSGPACK_OBJECT_BOOLEAN: v = json_boolean(o->via.boolean); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX)
            return PROTO_ETYPE;
        v = json_integer((json_int_t)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: v = json_integer(o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64))
            return PROTO_ETYPE;
        v = json_real(o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        if (!proto_utf8_valid((const uint8_t *)o->via.str.ptr, o->via.str.size))
            return PROTO_EUTF8;
        v = json_stringn_nocheck(str_ptr(&o->via.str), o->via.str.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        v = json_array();
        for (uint32_t i = 0; v && i < o->via.array.size; i++) {
            json_t *e;
            int rc = mp_to_json(&o->via.array.ptr[i], &e);
            if (rc) {
                json_decref(v);
                return rc;
            }
            if (json_array_append_new(v, e)) {
                json_decref(v);
                return PROTO_ENOMEM;
            }
        }
        break;
    case MSGPACK_OBJECT_MAP:
        v = json_object();
        for (uint32_t i = 0; v && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            /* Keys are strings without NUL, as JSON object keys are here. */
            if (kv->key.type != MSGPACK_OBJECT_STR ||
                memchr(str_ptr(&kv->key.via.str), '\0', kv->key.via.str.size)) {
                json_decref(v);
                return PROTO_ETYPE;
            }
            const msgpack_object_str *k = &kv->key.via.str;
            if (!proto_utf8_valid((const uint8_t *)k->ptr, k->size)) {
                json_decref(v);
                return PROTO_EUTF8;
            }
            json_t *e;
            int rc = mp_to_json(&kv->val, &e);
            if (rc) {
                json_decref(v);
                return rc;
            }
            if (json_object_setn_new_nocheck(v, str_ptr(k), k->size, e)) {
                json_decref(v);
                return PROTO_ENOMEM;
            }
        }
        break;
    default: /* BIN, EXT */
        return PROTO_ETYPE;
    }
    if (!v)
        return PROTO_ENOMEM;
    *out = v;
    return 0;
}

int proto_msgpack_parse(const uint8_t *buf, size_t len, int max_depth, json_t **out) {
    if (max_depth > MP_UNPACK_MAX_DEPTH)
        max_depth = MP_UNPACK_MAX_DEPTH;
    const uint8_t *p = buf;
    int rc = mp_scan(&p, buf + len, 0, max_depth);
    if (rc)
        return rc;
    if (p != buf + len)
        return PROTO_ESYNTAX; /* trailing bytes */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&u, (const char *)buf, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&u);
        return ur == MSGPACK_UNPACK_NOMEM_ERROR ? PROTO_ENOMEM : PROTO_ESYNTAX;
    }
    rc = mp_to_json(&u.data, out);
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* ---- encoding ----------------------------------------------------------- */

static int mp_write(void *data, const char *buf, size_t len) {
    return proto_buf_append(data, buf, len) ? -1 : 0;
}

static int mp_pack_str(msgpack_packer *pk, const char *s, size_t n) {
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int mp_pack_json(msgpack_packer *pk, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        size_t klen;
        json_t *e;
        if (msgpack_pack_map(pk, json_object_size(v)))
            return -1;
        json_object_keylen_foreach((json_t *)v, k, klen, e) {
            if (mp_pack_str(pk, k, klen) || mp_pack_json(pk, e))
                return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        if (msgpack_pack_array(pk, json_array_size(v)))
            return -1;
        json_array_foreach(v, i, e) {
            if (mp_pack_json(pk, e))
                return -1;
        }
        return 0;
    }
    case JSON_STRING: return mp_pack_str(pk, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: return msgpack_pack_int64(pk, json_integer_value(v));
    case JSON_REAL: return msgpack_pack_double(pk, json_real_value(v));
    case JSON_TRUE: return msgpack_pack_true(pk);
    case JSON_FALSE: return msgpack_pack_false(pk);
    case JSON_NULL: return msgpack_pack_nil(pk);
    }
    return -1;
}

static int mp_pack_opt(msgpack_packer *pk, const char *s) {
    return s ? mp_pack_str(pk, s, strlen(s)) : msgpack_pack_nil(pk);
}

/* The envelope up to its payload: [join_ref, ref, topic, event, */
static int mp_pack_head(msgpack_packer *pk, const char *join_ref, const char *ref, const char *topic,
                        const char *event) {
    return msgpack_pack_array(pk, 5) || mp_pack_opt(pk, join_ref) || mp_pack_opt(pk, ref) ||
           mp_pack_opt(pk, topic) || mp_pack_opt(pk, event);
}

/* A message that failed to pack leaves nothing of it in out. */
static int mp_done(proto_buf_t *out, size_t mark, int failed) {
    if (!failed)
        return 0;
    out->len = mark;
    return PROTO_ENOMEM;
}

int proto_msgpack_encode(proto_buf_t *out, const char *join_ref, const char *ref,
                         const char *topic, const char *event, const json_t *payload) {
    size_t mark = out->len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, mp_write);
    return mp_done(out, mark, mp_pack_head(&pk, join_ref, ref, topic, event) || mp_pack_json(&pk, payload));
}

int proto_msgpack_encode_reply(proto_buf_t *out, const char *join_ref, const char *ref,
                               const char *topic, const char *status, const json_t *response) {
    size_t mark = out->len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, mp_write);
    return mp_done(out, mark,
                   mp_pack_head(&pk, join_ref, ref, topic, "phx_reply") || msgpack_pack_map(&pk, 2) ||
                       mp_pack_str(&pk, "status", 6) || mp_pack_opt(&pk, status) ||
                       mp_pack_str(&pk, "response", 8) || mp_pack_json(&pk, response));
}
