/* test_protocol.c -- unit tests for the Phoenix Channels codec
 * (libparley_protocol).
 *
 * Usage: test_protocol VECTORS_DIR
 *
 * The program first runs the shared, language-neutral test vectors in
 * VECTORS_DIR (decode.json, encode.json, negotiate.json; the format is
 * described in protocol/vectors/README.md), then direct unit tests of the
 * parts the vectors cannot reach: UTF-8 validation, the fragment assembler,
 * proto_encode_reply, limits, encode/decode round trips on generated payloads
 * and a small deterministic mutation pass that checks the decoder's error
 * contract. There is no test framework: each test prints "ok N - name" or
 * "not ok N - name" (followed by "# " diagnostic lines), and the last line is
 * "N passed, M failed". The exit status is non-zero if anything failed.
 *
 * Every decode is done from an exact-size heap copy of the input, so that a
 * sanitizer build catches any read past the end of the message, and the copy
 * is scribbled over before the result is checked, so that a message which
 * still pointed into the caller's buffer would be caught too. The program
 * frees everything it allocates; under AddressSanitizer, LeakSanitizer then
 * reports any leak in the codec's error paths.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "parley/protocol.h"

/* ---- reporting ---------------------------------------------------------- */

static int n_pass, n_fail;

/* The reason the current test failed; empty while it passes. */
static char why[4096];

/* Records a failure reason for the current test (the first one wins). */
static void fail(const char *fmt, ...) {
    if (why[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (!why[0])
        why[0] = '?';
}

/* Checks a condition inside a test, recording the expression on failure. */
#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond))                                                       \
            fail("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);    \
    } while (0)

/* Checks that a codec call returned the expected code. */
#define CHECK_RC(got, want)                                                \
    do {                                                                   \
        int got_ = (got), want_ = (want);                                  \
        if (got_ != want_)                                                 \
            fail("%s:%d: %s returned %d (%s), expected %d (%s)", __FILE__, \
                 __LINE__, #got, got_, proto_strerror(got_), want_,        \
                 proto_strerror(want_));                                   \
    } while (0)

/* Prints the result line of the test that just ran and resets the reason. */
static void report(const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int n = n_pass + n_fail + 1;
    if (why[0]) {
        n_fail++;
        printf("not ok %d - %s\n", n, name);
        /* Diagnostics may span lines; prefix each one. */
        const char *p = why;
        while (*p) {
            const char *nl = strchr(p, '\n');
            int len = nl ? (int)(nl - p) : (int)strlen(p);
            printf("#   %.*s\n", len, p);
            p += len + (nl ? 1 : 0);
        }
    } else {
        n_pass++;
        printf("ok %d - %s\n", n, name);
    }
    why[0] = '\0';
    fflush(stdout);
}

/* ---- helpers ------------------------------------------------------------ */

/* An exact-size heap allocation (at least one byte is allocated so that
 * malloc(0) is never asked for; the usable length is still len). */
static uint8_t *alloc_bytes(size_t len) {
    uint8_t *p = malloc(len ? len : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* An exact-size heap copy of len bytes. */
static uint8_t *dup_bytes(const void *src, size_t len) {
    uint8_t *p = alloc_bytes(len);
    if (len)
        memcpy(p, src, len);
    return p;
}

/* Decodes from an exact-size copy of buf, then overwrites the copy, so that
 * neither over-reads nor pointers into the input survive unnoticed. */
static int decode_copy(proto_format_t format, const void *buf, size_t len,
                       const proto_limits_t *limits, proto_msg_t *msg) {
    uint8_t *copy = dup_bytes(buf, len);
    int rc = proto_decode(format, copy, len, limits, msg);
    memset(copy, 0xAA, len);
    free(copy);
    return rc;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes a hex string into a new buffer. Returns 0, or -1 if malformed. */
static int hex_decode(const char *hex, uint8_t **out, size_t *len) {
    size_t n = strlen(hex);
    if (n % 2)
        return -1;
    uint8_t *p = alloc_bytes(n / 2);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(p);
            return -1;
        }
        p[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = p;
    *len = n / 2;
    return 0;
}

/* Formats bytes for a diagnostic: as text when printable UTF-8 without
 * control characters, else as hex. Long values are cut. */
static const char *show(const uint8_t *buf, size_t len) {
    static char out[2][1200];
    static int which;
    char *s = out[which ^= 1];
    int text = proto_utf8_valid(buf, len);
    for (size_t i = 0; text && i < len; i++)
        if (buf[i] < 0x20)
            text = 0;
    size_t max = text ? 1000 : 500, o = 0;
    size_t n = len < max ? len : max;
    if (text) {
        o += (size_t)snprintf(s + o, sizeof out[0] - o, "'");
        memcpy(s + o, buf, n);
        o += n;
        o += (size_t)snprintf(s + o, sizeof out[0] - o, "'");
    } else {
        o += (size_t)snprintf(s + o, sizeof out[0] - o, "hex:");
        for (size_t i = 0; i < n; i++)
            o += (size_t)snprintf(s + o, sizeof out[0] - o, "%02x", buf[i]);
    }
    if (n < len)
        snprintf(s + o, sizeof out[0] - o, "... (%zu bytes)", len);
    return s;
}

/* A JSON value as compact text for diagnostics (the caller frees it). */
static char *dump(const json_t *v) {
    if (!v)
        return strdup("(none)");
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return s ? s : strdup("(unprintable)");
}

static int format_from_name(const char *name, proto_format_t *out) {
    for (int f = 0; f < PROTO_NFORMATS; f++) {
        if (name && strcmp(name, proto_format_name((proto_format_t)f)) == 0) {
            *out = (proto_format_t)f;
            return 0;
        }
    }
    return -1;
}

/* The error names used by the vector files. */
static const struct {
    const char *name;
    int code;
} error_names[] = {
    {"nomem", PROTO_ENOMEM}, {"too_big", PROTO_ETOOBIG}, {"utf8", PROTO_EUTF8},
    {"depth", PROTO_EDEPTH}, {"syntax", PROTO_ESYNTAX},  {"shape", PROTO_ESHAPE},
    {"field", PROTO_EFIELD}, {"topic", PROTO_ETOPIC},    {"event", PROTO_EEVENT},
    {"payload", PROTO_EPAYLOAD}, {"type", PROTO_ETYPE},  {"vsn", PROTO_EVSN},
};

static int error_code(const char *name) {
    for (size_t i = 0; i < sizeof error_names / sizeof error_names[0]; i++)
        if (name && strcmp(name, error_names[i].name) == 0)
            return error_names[i].code;
    return 1; /* never a codec result */
}

static const char *error_name(int code) {
    if (code == 0)
        return "ok";
    for (size_t i = 0; i < sizeof error_names / sizeof error_names[0]; i++)
        if (error_names[i].code == code)
            return error_names[i].name;
    return "unknown";
}

/* Codes after which proto_decode leaves *msg filled. */
static int fills_msg(int rc) {
    return rc == 0 || rc == PROTO_ETOPIC || rc == PROTO_EEVENT || rc == PROTO_EPAYLOAD;
}

/* Checks the decoder's contract for any input: a known code; *msg filled
 * exactly when the code says so; a filled message self-consistent. */
static void check_contract(int rc, const proto_msg_t *msg) {
    if (rc > 0 || rc < PROTO_ETYPE || rc == PROTO_ENOMEM) {
        fail("unexpected result %d (%s)", rc, proto_strerror(rc));
        return;
    }
    if (!fills_msg(rc)) {
        if (msg->join_ref || msg->ref || msg->topic || msg->event || msg->topic_len ||
            msg->event_len || msg->payload || msg->root)
            fail("result %s but *msg is not empty", error_name(rc));
        return;
    }
    if (!msg->root || !msg->topic || !msg->event || !msg->payload) {
        fail("result %s but *msg is not filled", error_name(rc));
        return;
    }
    if (strlen(msg->topic) != msg->topic_len || strlen(msg->event) != msg->event_len)
        fail("topic_len/event_len disagree with the strings");
    if (rc == 0 && (!json_is_object(msg->payload) || msg->topic_len == 0 ||
                    msg->topic_len > PROTO_DEFAULT_MAX_TOPIC || msg->event_len == 0 ||
                    msg->event_len > PROTO_DEFAULT_MAX_EVENT))
        fail("accepted a message that breaks the default limits");
}

/* Compares a decoded join_ref/ref (NUL-terminated or NULL) with the expected
 * JSON null or string. */
static int ref_matches(const char *got, const json_t *want) {
    if (json_is_null(want))
        return got == NULL;
    if (!json_is_string(want) || !got)
        return 0;
    return strlen(got) == json_string_length(want) &&
           memcmp(got, json_string_value(want), json_string_length(want)) == 0;
}

/* Compares a decoded topic/event with the expected JSON string. */
static int name_matches(const char *got, size_t got_len, const json_t *want) {
    return json_is_string(want) && got && got_len == json_string_length(want) &&
           memcmp(got, json_string_value(want), got_len) == 0;
}

static void show_ref_mismatch(const char *field, const char *got, const json_t *want) {
    char *w = dump(want);
    fail("%s: got %s, expected %s", field, got ? show((const uint8_t *)got, strlen(got)) : "null",
         w);
    free(w);
}

/* Checks the five decoded fields against an expectation object holding
 * join_ref, ref, topic, event and payload. */
static void check_fields(const proto_msg_t *msg, const json_t *expect) {
    const json_t *jr = json_object_get(expect, "join_ref");
    const json_t *ref = json_object_get(expect, "ref");
    const json_t *topic = json_object_get(expect, "topic");
    const json_t *event = json_object_get(expect, "event");
    const json_t *payload = json_object_get(expect, "payload");
    if (!jr || !ref || !topic || !event || !payload) {
        fail("vector: expect lacks one of join_ref, ref, topic, event, payload");
        return;
    }
    if (!ref_matches(msg->join_ref, jr))
        show_ref_mismatch("join_ref", msg->join_ref, jr);
    if (!ref_matches(msg->ref, ref))
        show_ref_mismatch("ref", msg->ref, ref);
    if (!name_matches(msg->topic, msg->topic_len, topic)) {
        char *w = dump(topic);
        fail("topic: got %s, expected %s",
             msg->topic ? show((const uint8_t *)msg->topic, msg->topic_len) : "null", w);
        free(w);
    }
    if (!name_matches(msg->event, msg->event_len, event)) {
        char *w = dump(event);
        fail("event: got %s, expected %s",
             msg->event ? show((const uint8_t *)msg->event, msg->event_len) : "null", w);
        free(w);
    }
    if (!msg->payload || !json_equal(msg->payload, (json_t *)payload)) {
        char *g = dump(msg->payload), *w = dump(payload);
        fail("payload: got %.1500s, expected %.1500s", g, w);
        free(g);
        free(w);
    }
}

/* Loads a vector file: an array of case objects. NUL characters are allowed
 * in its strings because some expected payloads hold them. */
static json_t *load_vectors(const char *dir, const char *file) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    json_error_t err;
    json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!v)
        fail("cannot load %s: %s (line %d)", path, err.text, err.line);
    else if (!json_is_array(v) || json_array_size(v) == 0)
        fail("%s is not a non-empty array", path);
    report("load %s", file);
    if (v && !json_is_array(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

static const char *case_name(const json_t *c) {
    const char *s = json_string_value(json_object_get(c, "name"));
    return s ? s : "(unnamed)";
}

/* ---- vectors: decode ---------------------------------------------------- */

static void run_decode_case(const json_t *c) {
    proto_format_t format;
    const char *fmt = json_string_value(json_object_get(c, "format"));
    const json_t *input = json_object_get(c, "input");
    const json_t *input_hex = json_object_get(c, "input_hex");
    const json_t *expect = json_object_get(c, "expect");
    if (format_from_name(fmt, &format)) {
        fail("vector: bad format %s", fmt ? fmt : "(missing)");
        return;
    }
    if (!json_is_object(expect) || (!input) == (!input_hex)) {
        fail("vector: needs an expect object and exactly one of input, input_hex");
        return;
    }

    uint8_t *buf;
    size_t len;
    if (input) {
        if (!json_is_string(input)) {
            fail("vector: input is not a string");
            return;
        }
        len = json_string_length(input);
        buf = dup_bytes(json_string_value(input), len);
    } else if (!json_is_string(input_hex) ||
               hex_decode(json_string_value(input_hex), &buf, &len)) {
        fail("vector: input_hex is not a hex string");
        return;
    }

    proto_msg_t msg;
    int rc = decode_copy(format, buf, len, NULL, &msg);
    check_contract(rc, &msg);

    const json_t *error = json_object_get(expect, "error");
    if (error) {
        int want = error_code(json_string_value(error));
        if (want == 1)
            fail("vector: unknown error name");
        else if (rc != want)
            fail("got %s (%s), expected %s", error_name(rc), proto_strerror(rc),
                 json_string_value(error));
        else if (fills_msg(rc))
            check_fields(&msg, expect);
    } else if (rc != 0) {
        fail("got %s (%s), expected success", error_name(rc), proto_strerror(rc));
    } else {
        check_fields(&msg, expect);
    }
    if (why[0])
        fail("input: %s", show(buf, len));
    proto_msg_free(&msg);
    free(buf);
}

/* ---- vectors: encode ---------------------------------------------------- */

/* A join_ref/ref field of an encode case: NULL for JSON null. */
static const char *opt_field(const json_t *c, const char *key, int *bad) {
    const json_t *v = json_object_get(c, key);
    if (json_is_null(v))
        return NULL;
    if (!json_is_string(v))
        *bad = 1;
    return json_string_value(v);
}

static void run_encode_case(const json_t *c) {
    proto_format_t format;
    const char *fmt = json_string_value(json_object_get(c, "format"));
    if (format_from_name(fmt, &format)) {
        fail("vector: bad format %s", fmt ? fmt : "(missing)");
        return;
    }
    int bad = 0;
    const char *join_ref = opt_field(c, "join_ref", &bad);
    const char *ref = opt_field(c, "ref", &bad);
    const char *topic = json_string_value(json_object_get(c, "topic"));
    const char *event = json_string_value(json_object_get(c, "event"));
    const json_t *payload = json_object_get(c, "payload");
    const json_t *expect = json_object_get(c, "expect");
    const json_t *expect_hex = json_object_get(c, "expect_hex");
    if (bad || !topic || !event || !payload || (!expect) == (!expect_hex)) {
        fail("vector: malformed encode case");
        return;
    }

    uint8_t *want;
    size_t want_len;
    if (expect) {
        want_len = json_string_length(expect);
        want = dup_bytes(json_string_value(expect), want_len);
    } else if (hex_decode(json_string_value(expect_hex), &want, &want_len)) {
        fail("vector: expect_hex is not a hex string");
        return;
    }

    proto_buf_t out;
    proto_buf_init(&out);
    CHECK_RC(proto_encode(format, &out, join_ref, ref, topic, event, payload), 0);
    if (!why[0] && (out.len != want_len || memcmp(out.data, want, want_len) != 0)) {
        fail("encoded: %s\nexpected: %s", show(out.data, out.len), show(want, want_len));
    }

    /* What the server writes, the server (and so the client) reads back. */
    if (!why[0]) {
        proto_msg_t msg;
        int rc = decode_copy(format, out.data, out.len, NULL, &msg);
        CHECK_RC(rc, 0);
        if (rc == 0) {
            json_t *e = json_pack("{s:O, s:O, s:s, s:s, s:O}", "join_ref",
                                  format == PROTO_V1_JSON ? json_null()
                                                          : json_object_get(c, "join_ref"),
                                  "ref", json_object_get(c, "ref"), "topic", topic, "event",
                                  event, "payload", payload);
            check_fields(&msg, e);
            json_decref(e);
        }
        proto_msg_free(&msg);
    }
    proto_buf_free(&out);
    free(want);
}

/* ---- vectors: negotiate ------------------------------------------------- */

static void run_negotiate_case(const json_t *c) {
    const json_t *vsn = json_object_get(c, "vsn");
    const json_t *ser = json_object_get(c, "serializer");
    const json_t *expect = json_object_get(c, "expect");
    if (!vsn || !ser || !expect || !(json_is_null(vsn) || json_is_string(vsn)) ||
        !(json_is_null(ser) || json_is_string(ser))) {
        fail("vector: malformed negotiate case");
        return;
    }
    proto_format_t got = (proto_format_t)-1;
    int rc = proto_negotiate(json_string_value(vsn), json_string_value(ser), &got);
    if (json_is_string(expect)) {
        CHECK_RC(rc, 0);
        if (rc == 0 && strcmp(proto_format_name(got), json_string_value(expect)) != 0)
            fail("got %s, expected %s", proto_format_name(got), json_string_value(expect));
    } else {
        int want = error_code(json_string_value(json_object_get(expect, "error")));
        if (want == 1)
            fail("vector: unknown error name");
        else if (rc != want)
            fail("got %s (%s), expected %s", rc ? error_name(rc) : proto_format_name(got),
                 proto_strerror(rc), error_name(want));
    }
}

static void run_vectors(const char *dir, const char *file, const char *kind,
                        void (*run)(const json_t *)) {
    json_t *cases = load_vectors(dir, file);
    if (!cases)
        return;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        if (!json_is_object(c))
            fail("vector: case is not an object");
        else
            run(c);
        report("%s: %s", kind, case_name(c));
    }
    json_decref(cases);
}

/* ---- unit: UTF-8 -------------------------------------------------------- */

static void test_utf8(void) {
    static const struct {
        const char *bytes;
        size_t len;
        int valid;
        const char *what;
    } cases[] = {
        {"", 0, 1, "empty"},
        {"hello", 5, 1, "ASCII"},
        {"\x00", 1, 1, "NUL is valid UTF-8"},
        {"\x7f", 1, 1, "U+007F"},
        {"\xc2\x80", 2, 1, "U+0080"},
        {"\xdf\xbf", 2, 1, "U+07FF"},
        {"\xe0\xa0\x80", 3, 1, "U+0800"},
        {"\xed\x9f\xbf", 3, 1, "U+D7FF"},
        {"\xee\x80\x80", 3, 1, "U+E000"},
        {"\xef\xbf\xbf", 3, 1, "U+FFFF"},
        {"\xef\xbb\xbf", 3, 1, "BOM"},
        {"\xf0\x90\x80\x80", 4, 1, "U+10000"},
        {"\xf0\x9f\x98\x80", 4, 1, "emoji"},
        {"\xf4\x8f\xbf\xbf", 4, 1, "U+10FFFF"},
        {"caf\xc3\xa9 \xe6\x97\xa5", 9, 1, "mixed"},
        {"\x80", 1, 0, "lone continuation"},
        {"\xbf", 1, 0, "lone continuation BF"},
        {"\xc0\x80", 2, 0, "overlong NUL"},
        {"\xc1\xbf", 2, 0, "overlong C1"},
        {"\xe0\x80\x80", 3, 0, "overlong three-byte"},
        {"\xe0\x9f\xbf", 3, 0, "overlong U+07FF"},
        {"\xf0\x80\x80\x80", 4, 0, "overlong four-byte"},
        {"\xf0\x8f\xbf\xbf", 4, 0, "overlong U+FFFF"},
        {"\xed\xa0\x80", 3, 0, "surrogate D800"},
        {"\xed\xbf\xbf", 3, 0, "surrogate DFFF"},
        {"\xed\xa0\xbd\xed\xb8\x80", 6, 0, "CESU-8 surrogate pair"},
        {"\xf4\x90\x80\x80", 4, 0, "U+110000"},
        {"\xf5\x80\x80\x80", 4, 0, "F5"},
        {"\xf8\x88\x80\x80\x80", 5, 0, "five-byte form"},
        {"\xfe", 1, 0, "FE"},
        {"\xff", 1, 0, "FF"},
        {"\xc3", 1, 0, "truncated two-byte"},
        {"\xe2\x82", 2, 0, "truncated three-byte"},
        {"\xf0\x9f\x98", 3, 0, "truncated four-byte"},
        {"a\xe2\x82", 3, 0, "truncated at end after ASCII"},
        {"\xc3\x28", 2, 0, "bad continuation (ASCII)"},
        {"\xe2\x28\xa1", 3, 0, "bad second byte"},
        {"\xe2\x82\x28", 3, 0, "bad third byte"},
        {"\xf0\x9f\x98\x28", 4, 0, "bad fourth byte"},
        {"\xc3\xc3\xa9", 3, 0, "lead byte as continuation"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* An exact-size copy, so that a read past len is caught. */
        uint8_t *copy = dup_bytes(cases[i].bytes, cases[i].len);
        int got = proto_utf8_valid(copy, cases[i].len);
        free(copy);
        if (got != cases[i].valid)
            fail("proto_utf8_valid returned %d", got);
        report("utf8: %s is %s", cases[i].what, cases[i].valid ? "valid" : "invalid");
    }

    /* A valid sequence cut short anywhere is invalid; a prefix ending on a
     * character boundary is valid. */
    static const char emoji[] = "\xf0\x9f\x98\x80\xe6\x97\xa5\xc3\xa9";
    for (size_t n = 0; n <= 9; n++) {
        int want = n == 0 || n == 4 || n == 7 || n == 9;
        if (proto_utf8_valid((const uint8_t *)emoji, n) != want)
            fail("prefix of %zu bytes: expected %d", n, want);
    }
    report("utf8: prefixes are valid exactly on character boundaries");

    /* Every code point encodes to something the validator accepts, and every
     * surrogate to something it refuses. */
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        size_t n;
        if (cp < 0x80) {
            b[0] = (uint8_t)cp, n = 1;
        } else if (cp < 0x800) {
            b[0] = (uint8_t)(0xC0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3F)), n = 2;
        } else if (cp < 0x10000) {
            b[0] = (uint8_t)(0xE0 | cp >> 12), b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
            b[2] = (uint8_t)(0x80 | (cp & 0x3F)), n = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | cp >> 18), b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
            b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)), b[3] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 4;
        }
        int want = !(cp >= 0xD800 && cp <= 0xDFFF);
        if (proto_utf8_valid(b, n) != want) {
            fail("U+%04X: expected %d", (unsigned)cp, want);
            break;
        }
    }
    report("utf8: all code points, surrogates refused");
}

/* ---- unit: assembler ---------------------------------------------------- */

static void test_assembler(void) {
    proto_assembler_t a;

    proto_assembler_init(&a, 0);
    CHECK(a.limit == PROTO_DEFAULT_MAX_MESSAGE);
    CHECK(a.buf.len == 0 && !a.overflow);
    proto_assembler_free(&a);
    report("assembler: limit 0 means the default");

    proto_assembler_init(&a, 100);
    CHECK_RC(proto_assembler_feed(&a, "[\"1\",\"2\",", 9), 0);
    CHECK_RC(proto_assembler_feed(&a, "", 0), 0);
    CHECK_RC(proto_assembler_feed(&a, NULL, 0), 0);
    CHECK_RC(proto_assembler_feed(&a, "\"room:lobby\",\"new_msg\",", 23), 0);
    CHECK_RC(proto_assembler_feed(&a, "{\"body\":\"hi\"}]", 14), 0);
    CHECK(a.buf.len == 46);
    static const char joined[] = "[\"1\",\"2\",\"room:lobby\",\"new_msg\",{\"body\":\"hi\"}]";
    CHECK(a.buf.data && memcmp(a.buf.data, joined, 46) == 0);
    if (!why[0]) {
        proto_msg_t msg;
        CHECK_RC(decode_copy(PROTO_V2_JSON, a.buf.data, a.buf.len, NULL, &msg), 0);
        CHECK(msg.topic && strcmp(msg.topic, "room:lobby") == 0);
        proto_msg_free(&msg);
    }
    report("assembler: fragments are joined in order");

    proto_assembler_reset(&a);
    CHECK(a.buf.data == NULL && a.buf.len == 0 && a.buf.cap == 0 && !a.overflow);
    CHECK_RC(proto_assembler_feed(&a, "abc", 3), 0);
    CHECK(a.buf.len == 3 && memcmp(a.buf.data, "abc", 3) == 0);
    report("assembler: reset drops the bytes and the assembler is reusable");

    proto_assembler_reset(&a);
    char block[100];
    memset(block, 'x', sizeof block);
    CHECK_RC(proto_assembler_feed(&a, block, 60), 0);
    CHECK_RC(proto_assembler_feed(&a, block, 40), 0);
    CHECK(a.buf.len == 100 && !a.overflow);
    report("assembler: a message of exactly the limit is accepted");

    CHECK_RC(proto_assembler_feed(&a, block, 1), PROTO_ETOOBIG);
    CHECK(a.overflow);
    CHECK(a.buf.data == NULL && a.buf.len == 0 && a.buf.cap == 0);
    CHECK_RC(proto_assembler_feed(&a, block, 1), PROTO_ETOOBIG);
    CHECK_RC(proto_assembler_feed(&a, block, 0), PROTO_ETOOBIG);
    CHECK(a.buf.data == NULL && a.buf.len == 0);
    report("assembler: passing the limit gives PROTO_ETOOBIG, frees, and discards until reset");

    proto_assembler_reset(&a);
    CHECK(!a.overflow && a.buf.len == 0);
    CHECK_RC(proto_assembler_feed(&a, "[]", 2), 0);
    CHECK(a.buf.len == 2 && memcmp(a.buf.data, "[]", 2) == 0);
    report("assembler: reset after overflow accepts a new message");

    proto_assembler_reset(&a);
    CHECK_RC(proto_assembler_feed(&a, block, 101), PROTO_ETOOBIG);
    CHECK(a.buf.data == NULL && a.overflow);
    proto_assembler_free(&a);
    CHECK(a.buf.data == NULL && a.buf.len == 0);
    report("assembler: a single oversized fragment is refused and free releases all");

    /* A large message in many small fragments, across buffer growth. */
    proto_assembler_init(&a, PROTO_DEFAULT_MAX_MESSAGE);
    size_t total = 0;
    for (int i = 0; total + 7 <= PROTO_DEFAULT_MAX_MESSAGE; i++) {
        char frag[16];
        snprintf(frag, sizeof frag, "%07d", i % 10000000);
        if (proto_assembler_feed(&a, frag, 7))
            fail("feed %d failed", i);
        total += 7;
    }
    CHECK(a.buf.len == total);
    CHECK(a.buf.len >= 14 && memcmp(a.buf.data, "00000000000001", 14) == 0);
    CHECK(memcmp(a.buf.data + total - 7, "0009361", 7) == 0);
    CHECK_RC(proto_assembler_feed(&a, "12345678", 8), PROTO_ETOOBIG);
    proto_assembler_free(&a);
    report("assembler: many small fragments up to the default limit");
}

/* ---- unit: encoding ----------------------------------------------------- */

static void expect_bytes(const proto_buf_t *b, size_t from, const void *want, size_t len) {
    if (b->len - from != len || memcmp(b->data + from, want, len) != 0)
        fail("got %s\nexpected %s", show(b->data + from, b->len - from),
             show((const uint8_t *)want, len));
}

static void test_encode_reply(void) {
    static const char *v2 =
        "[\"1\",\"2\",\"room:lobby\",\"phx_reply\",{\"status\":\"ok\",\"response\":{}}]";
    static const char *v1 =
        "{\"topic\":\"room:lobby\",\"event\":\"phx_reply\",\"payload\":{\"status\":\"ok\","
        "\"response\":{}},\"ref\":\"2\"}";
    static const uint8_t mp[] = {
        0x95, 0xa1, '1', 0xa1, '2', 0xaa, 'r', 'o', 'o', 'm', ':', 'l', 'o', 'b', 'b', 'y',
        0xa9, 'p', 'h', 'x', '_', 'r', 'e', 'p', 'l', 'y', 0x82, 0xa6, 's', 't', 'a', 't',
        'u', 's', 0xa2, 'o', 'k', 0xa8, 'r', 'e', 's', 'p', 'o', 'n', 's', 'e', 0x80,
    };
    json_t *empty = json_object();
    proto_buf_t b;

    proto_buf_init(&b);
    CHECK_RC(proto_encode_reply(PROTO_V2_JSON, &b, "1", "2", "room:lobby", "ok", empty), 0);
    expect_bytes(&b, 0, v2, strlen(v2));
    proto_buf_free(&b);
    report("encode_reply: v2 ok reply");

    CHECK_RC(proto_encode_reply(PROTO_V1_JSON, &b, "1", "2", "room:lobby", "ok", empty), 0);
    expect_bytes(&b, 0, v1, strlen(v1));
    proto_buf_free(&b);
    report("encode_reply: v1 ok reply drops join_ref");

    CHECK_RC(proto_encode_reply(PROTO_MSGPACK, &b, "1", "2", "room:lobby", "ok", empty), 0);
    expect_bytes(&b, 0, mp, sizeof mp);
    proto_buf_free(&b);
    report("encode_reply: msgpack ok reply");

    /* A reply equals proto_encode of the same payload, in every format; the
     * response is not consumed. */
    json_t *resp = json_pack("{s:s, s:[i, i]}", "reason", "unmatched \"topic\"", "ids", 1, 2);
    json_t *payload = json_pack("{s:s, s:O}", "status", "error", "response", resp);
    for (int f = 0; f < PROTO_NFORMATS; f++) {
        proto_buf_t r, e;
        proto_buf_init(&r);
        proto_buf_init(&e);
        CHECK_RC(proto_encode_reply((proto_format_t)f, &r, NULL, "9", "t", "error", resp), 0);
        CHECK_RC(proto_encode((proto_format_t)f, &e, NULL, "9", "t", "phx_reply", payload), 0);
        if (!why[0])
            expect_bytes(&r, 0, e.data, e.len);
        proto_buf_free(&r);
        proto_buf_free(&e);
        report("encode_reply: %s error reply equals proto_encode",
               proto_format_name((proto_format_t)f));
    }
    CHECK(resp->refcount == 2); /* ours and the payload's */
    json_decref(payload);
    CHECK(resp->refcount == 1);
    json_decref(resp);
    report("encode_reply: the response is not consumed");

    /* Encoders append: what was in the buffer stays. */
    for (int f = 0; f < PROTO_NFORMATS; f++) {
        proto_buf_t one, two;
        proto_buf_init(&one);
        proto_buf_init(&two);
        CHECK_RC(proto_buf_append(&two, "prefix", 6), 0);
        CHECK_RC(proto_encode_reply((proto_format_t)f, &one, "1", "2", "t", "ok", empty), 0);
        CHECK_RC(proto_encode_reply((proto_format_t)f, &two, "1", "2", "t", "ok", empty), 0);
        CHECK(two.len == 6 + one.len && memcmp(two.data, "prefix", 6) == 0);
        if (!why[0])
            expect_bytes(&two, 6, one.data, one.len);
        proto_buf_free(&one);
        proto_buf_free(&two);
        report("encode: %s appends to a non-empty buffer", proto_format_name((proto_format_t)f));
    }

    /* An unknown format fails and leaves the buffer as it was. */
    proto_buf_init(&b);
    CHECK_RC(proto_buf_append(&b, "keep", 4), 0);
    CHECK_RC(proto_encode((proto_format_t)7, &b, "1", "2", "t", "e", empty), PROTO_EVSN);
    CHECK(b.len == 4 && memcmp(b.data, "keep", 4) == 0);
    proto_buf_free(&b);
    report("encode: an unknown format fails without touching the buffer");

    /* A large payload forces the JSON writer to grow the buffer mid-value. */
    json_t *big = json_object();
    char *s = malloc(50000);
    memset(s, 'q', 49999);
    s[49999] = '\0';
    json_object_set_new(big, "s", json_string(s));
    free(s);
    for (int f = 0; f < PROTO_NFORMATS; f++) {
        proto_buf_init(&b);
        CHECK_RC(proto_buf_append(&b, "x", 1), 0); /* a small buffer to grow */
        CHECK_RC(proto_encode((proto_format_t)f, &b, NULL, NULL, "t", "e", big), 0);
        proto_msg_t msg;
        CHECK_RC(decode_copy((proto_format_t)f, b.data + 1, b.len - 1, NULL, &msg), 0);
        CHECK(msg.payload && json_equal(msg.payload, big));
        proto_msg_free(&msg);
        proto_buf_free(&b);
        report("encode: %s 50 KB payload grows the buffer and decodes back",
               proto_format_name((proto_format_t)f));
    }
    json_decref(big);
    json_decref(empty);
}

/* ---- unit: decoding details --------------------------------------------- */

static void test_v1_unknown_keys(void) {
    static const char *in =
        "{\"vsn\":\"1.0.0\",\"topic\":\"room:lobby\",\"extra\":{\"topic\":\"not this\"},"
        "\"event\":\"new_msg\",\"payload\":{\"body\":\"hi\"},\"ref\":\"3\",\"n\":[1,2,3],"
        "\"JOIN_REF\":7}";
    proto_msg_t msg;
    CHECK_RC(decode_copy(PROTO_V1_JSON, in, strlen(in), NULL, &msg), 0);
    CHECK(msg.join_ref == NULL);
    CHECK(msg.ref && strcmp(msg.ref, "3") == 0);
    CHECK(msg.topic && strcmp(msg.topic, "room:lobby") == 0 && msg.topic_len == 10);
    CHECK(msg.event && strcmp(msg.event, "new_msg") == 0 && msg.event_len == 7);
    CHECK(msg.payload && json_object_size(msg.payload) == 1);
    CHECK(json_is_string(json_object_get(msg.payload, "body")));
    CHECK(msg.payload == json_object_get(msg.root, "payload"));
    proto_msg_free(&msg);
    report("decode: v1 ignores unknown keys");
}

static void test_decode_details(void) {
    proto_msg_t msg;

    /* The payload is borrowed from root. */
    static const char *v2 = "[\"1\",\"2\",\"t\",\"e\",{\"a\":1}]";
    CHECK_RC(decode_copy(PROTO_V2_JSON, v2, strlen(v2), NULL, &msg), 0);
    CHECK(msg.root && msg.payload == json_array_get(msg.root, 4));
    proto_msg_free(&msg);
    CHECK(!msg.root && !msg.payload && !msg.topic && !msg.event);
    proto_msg_free(&msg); /* twice is harmless */
    report("decode: payload is borrowed from root; free clears and is idempotent");

    /* Only buf[0..len) is read: a valid prefix of a longer buffer decodes. */
    static const char *longer = "[\"1\",\"2\",\"t\",\"e\",{}]garbage";
    CHECK_RC(proto_decode(PROTO_V2_JSON, (const uint8_t *)longer, strlen(longer) - 7, NULL, &msg),
             0);
    proto_msg_free(&msg);
    static const uint8_t mp_longer[] = {0x95, 0xc0, 0xc0, 0xa1, 't', 0xa1, 'e', 0x80, 0xc1, 0xc1};
    CHECK_RC(proto_decode(PROTO_MSGPACK, mp_longer, 8, NULL, &msg), 0);
    proto_msg_free(&msg);
    report("decode: only buf[0..len) is read");

    /* Custom limits; zero fields mean the defaults. */
    proto_limits_t lim = {.max_topic = 4, .max_event = 3};
    static const char *t4 = "[null,null,\"abcd\",\"abc\",{}]";
    static const char *t5 = "[null,null,\"abcde\",\"abc\",{}]";
    static const char *e4 = "[null,null,\"abcd\",\"abcd\",{}]";
    CHECK_RC(decode_copy(PROTO_V2_JSON, t4, strlen(t4), &lim, &msg), 0);
    proto_msg_free(&msg);
    CHECK_RC(decode_copy(PROTO_V2_JSON, t5, strlen(t5), &lim, &msg), PROTO_ETOPIC);
    CHECK(msg.topic && msg.topic_len == 5);
    proto_msg_free(&msg);
    CHECK_RC(decode_copy(PROTO_V2_JSON, e4, strlen(e4), &lim, &msg), PROTO_EEVENT);
    CHECK(msg.event && msg.event_len == 4);
    proto_msg_free(&msg);
    report("decode: custom max_topic and max_event");

    lim = (proto_limits_t){.max_depth = 2};
    static const char *d2 = "[null,null,\"t\",\"e\",{\"a\":1}]";
    static const char *d3 = "[null,null,\"t\",\"e\",{\"a\":[]}]";
    static const uint8_t mp_d2[] = {0x95, 0xc0, 0xc0, 0xa1, 't', 0xa1, 'e', 0x81, 0xa1, 'a', 0x01};
    static const uint8_t mp_d3[] = {0x95, 0xc0, 0xc0, 0xa1, 't', 0xa1, 'e', 0x81, 0xa1, 'a', 0x90};
    CHECK_RC(decode_copy(PROTO_V2_JSON, d2, strlen(d2), &lim, &msg), 0);
    proto_msg_free(&msg);
    CHECK_RC(decode_copy(PROTO_V2_JSON, d3, strlen(d3), &lim, &msg), PROTO_EDEPTH);
    CHECK_RC(decode_copy(PROTO_MSGPACK, mp_d2, sizeof mp_d2, &lim, &msg), 0);
    proto_msg_free(&msg);
    CHECK_RC(decode_copy(PROTO_MSGPACK, mp_d3, sizeof mp_d3, &lim, &msg), PROTO_EDEPTH);
    report("decode: custom max_depth, empty containers count");

    lim = (proto_limits_t){.max_message = 10};
    CHECK_RC(decode_copy(PROTO_V2_JSON, d2, strlen(d2), &lim, &msg), PROTO_ETOOBIG);
    CHECK_RC(decode_copy(PROTO_MSGPACK, mp_d2, 11, &lim, &msg), PROTO_ETOOBIG);
    CHECK_RC(decode_copy(PROTO_MSGPACK, mp_d2, 10, &lim, &msg), PROTO_ESYNTAX);
    report("decode: custom max_message");

    /* A depth limit above 32: the JSON formats honour it; msgpack-c cannot
     * unpack more than 32 nested containers, so the msgpack decoder caps the
     * limit at 32 and refuses deeper input as too deep (not as "out of
     * memory"). */
    lim = (proto_limits_t){.max_depth = 40};
    for (int depth = 32; depth <= 41; depth++) {
        /* [null,null,"t","e",{"a":{"a":...{}}}]: envelope + (depth - 1) maps. */
        json_t *p = json_object();
        for (int i = 0; i < depth - 2; i++)
            p = json_pack("{s:o}", "a", p);
        for (int f = 0; f < PROTO_NFORMATS; f++) {
            int max = f == PROTO_MSGPACK ? 32 : 40;
            proto_buf_t b;
            proto_buf_init(&b);
            CHECK_RC(proto_encode((proto_format_t)f, &b, NULL, NULL, "t", "e", p), 0);
            int rc = decode_copy((proto_format_t)f, b.data, b.len, &lim, &msg);
            if (rc != (depth <= max ? 0 : PROTO_EDEPTH))
                fail("%s, depth %d with max_depth 40: got %s", proto_format_name((proto_format_t)f),
                     depth, proto_strerror(rc));
            proto_msg_free(&msg);
            proto_buf_free(&b);
        }
        json_decref(p);
    }
    report("decode: max_depth 40 holds for JSON; msgpack caps it at 32 with PROTO_EDEPTH");

    /* The default size limit: 65536 bytes pass, 65537 do not. */
    for (int f = 0; f < PROTO_NFORMATS; f++) {
        for (size_t size = PROTO_DEFAULT_MAX_MESSAGE; size <= PROTO_DEFAULT_MAX_MESSAGE + 1;
             size++) {
            /* Grow a string until the encoding has exactly `size` bytes; the
             * msgpack string header changes width as it grows, so search. */
            proto_buf_t b;
            proto_buf_init(&b);
            size_t n = size - 100;
            char *s = malloc(size);
            for (int tries = 0; tries < 200; tries++) {
                memset(s, 'x', n);
                s[n] = '\0';
                json_t *p = json_pack("{s:s}", "body", s);
                b.len = 0;
                CHECK_RC(proto_encode((proto_format_t)f, &b, "1", "2", "room:lobby", "new_msg", p),
                         0);
                json_decref(p);
                if (b.len == size)
                    break;
                if (b.len < size)
                    n += size - b.len;
                else
                    n -= b.len - size;
            }
            free(s);
            CHECK(b.len == size);
            int rc = decode_copy((proto_format_t)f, b.data, b.len, NULL, &msg);
            CHECK_RC(rc, size <= PROTO_DEFAULT_MAX_MESSAGE ? 0 : PROTO_ETOOBIG);
            proto_msg_free(&msg);
            proto_buf_free(&b);
            report("decode: %s message of %zu bytes %s", proto_format_name((proto_format_t)f),
                   size, size <= PROTO_DEFAULT_MAX_MESSAGE ? "passes" : "is too big");
        }
    }

    /* A huge container header fails fast, before any allocation. With a
     * large max_message, this also shows that the check is against the bytes
     * present, not against the limit. */
    lim = (proto_limits_t){.max_message = (size_t)1 << 30};
    static const uint8_t huge[][13] = {
        {0xdd, 0x10, 0x00, 0x00, 0x00, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0},
        {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0},
        {0xdf, 0x80, 0x00, 0x00, 0x00, 0xa1, 'a', 0xc0, 0xa1, 'b', 0xc0, 0xc0, 0xc0},
        {0x95, 0xc0, 0xc0, 0xa1, 't', 0xa1, 'e', 0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0},
        {0x95, 0xc0, 0xc0, 0xa1, 't', 0xa1, 'e', 0xdc, 0xff, 0xff, 0xc0, 0xc0, 0xc0},
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++)
        CHECK_RC(decode_copy(PROTO_MSGPACK, huge[i], sizeof huge[i], &lim, &msg), PROTO_ESYNTAX);
    report("decode: msgpack container headers larger than the input fail with syntax");

    /* A NULL limits pointer means the defaults, like a zeroed struct. */
    lim = (proto_limits_t){0};
    char t257[300];
    memcpy(t257, "[null,null,\"", 12);
    memset(t257 + 12, 'x', 257);
    strcpy(t257 + 12 + 257, "\",\"e\",{}]");
    CHECK_RC(decode_copy(PROTO_V2_JSON, t257, strlen(t257), &lim, &msg), PROTO_ETOPIC);
    CHECK(msg.topic_len == 257);
    proto_msg_free(&msg);
    CHECK_RC(decode_copy(PROTO_V2_JSON, t257, strlen(t257), NULL, &msg), PROTO_ETOPIC);
    proto_msg_free(&msg);
    report("decode: zeroed limits and NULL limits are the defaults");
}

static void test_names(void) {
    static const int codes[] = {PROTO_OK,     PROTO_ENOMEM, PROTO_ETOOBIG, PROTO_EUTF8,
                                PROTO_EDEPTH, PROTO_ESYNTAX, PROTO_ESHAPE, PROTO_EFIELD,
                                PROTO_ETOPIC, PROTO_EEVENT, PROTO_EPAYLOAD, PROTO_ETYPE,
                                PROTO_EVSN};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = proto_strerror(codes[i]);
        CHECK(s && strcmp(s, "unknown error") != 0);
        for (size_t k = 0; k < i; k++)
            CHECK(strcmp(s, proto_strerror(codes[k])) != 0);
    }
    CHECK(strcmp(proto_strerror(-99), "unknown error") == 0);
    CHECK(strcmp(proto_format_name(PROTO_V1_JSON), "v1-json") == 0);
    CHECK(strcmp(proto_format_name(PROTO_V2_JSON), "v2-json") == 0);
    CHECK(strcmp(proto_format_name(PROTO_MSGPACK), "msgpack") == 0);
    CHECK(strcmp(proto_format_name((proto_format_t)9), "unknown") == 0);
    report("names: error codes and formats have distinct names");
}

/* ---- unit: round trips -------------------------------------------------- */

/* xorshift64*: a small deterministic generator, so runs are reproducible. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static uint32_t rng_below(uint32_t n) {
    return (uint32_t)(rng() % n);
}

/* Pieces of generated strings: ASCII, characters JSON must escape, brackets
 * the depth pre-scan must skip, and multi-byte UTF-8. */
static const char *const pieces[] = {
    "a", "Z", "0", " ", "room", ":", "\"", "\\", "/", "\n", "\r", "\t", "\x01", "\x1f", "\x7f",
    "[", "]", "{", "}", ",", "\\u0000", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80",
    "\xe2\x80\xa8", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf", "\xc2\x80",
};

static void gen_string(char *out, size_t cap, size_t max_pieces) {
    size_t n = rng_below((uint32_t)max_pieces + 1), o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *p = pieces[rng_below(sizeof pieces / sizeof pieces[0])];
        size_t l = strlen(p);
        if (o + l + 1 > cap)
            break;
        memcpy(out + o, p, l + 1);
        o += l;
    }
}

static json_t *gen_value(int depth, int *budget);

static json_t *gen_container(int is_object, int depth, int *budget) {
    json_t *v = is_object ? json_object() : json_array();
    int n = (int)rng_below(6);
    for (int i = 0; i < n && *budget > 0; i++) {
        json_t *e = gen_value(depth + 1, budget);
        if (is_object) {
            char key[64];
            gen_string(key, sizeof key, 4);
            json_object_set_new(v, key, e);
        } else {
            json_array_append_new(v, e);
        }
    }
    return v;
}

/* A random JSON value. depth is that of the value itself (the payload is at
 * depth 2, under the envelope); containers stop well before the limit. */
static json_t *gen_value(int depth, int *budget) {
    (*budget)--;
    uint32_t kind = rng_below(depth >= 8 || *budget <= 0 ? 6 : 9);
    switch (kind) {
    case 0: return json_null();
    case 1: return json_boolean(rng() & 1);
    case 2: {
        /* Integers of every width, including the int64 extremes. */
        static const json_int_t edges[] = {0, 1, -1, 127, 128, -32, -33, 255, 256, 65535,
                                           65536, -32768, -32769, 4294967295LL, 4294967296LL,
                                           INT64_MAX, INT64_MIN, INT64_MIN + 1};
        if (rng() & 1)
            return json_integer(edges[rng_below(sizeof edges / sizeof edges[0])]);
        uint64_t u = rng() >> rng_below(64);
        if (rng() & 1)
            u = 0 - u; /* negate in unsigned arithmetic: INT64_MIN has no opposite */
        return json_integer((json_int_t)u);
    }
    case 3: {
        /* Reals: any finite bit pattern, or a short value. */
        double d;
        if (rng() & 1) {
            do {
                uint64_t bits = rng();
                memcpy(&d, &bits, sizeof d);
            } while (d != d || d - d != 0); /* NaN, or infinite */
        } else {
            d = (double)(int32_t)rng() / (double)(1u << rng_below(20));
        }
        return json_real(d);
    }
    case 4:
    case 5: {
        char s[256];
        gen_string(s, sizeof s, 12);
        return json_string(s);
    }
    case 6:
    case 7: return gen_container(1, depth, budget);
    default: return gen_container(0, depth, budget);
    }
}

/* A topic or event: non-empty, at most 256 bytes, no NUL. */
static void gen_name(char *out, size_t cap) {
    do
        gen_string(out, cap, 10);
    while (!out[0]);
}

static void test_round_trip(void) {
    int failures = 0, count = 0;
    for (int i = 0; i < 200; i++) {
        int budget = 120;
        json_t *payload = gen_container(1, 2, &budget);
        char topic[200], event[200], jr[40], ref[40];
        gen_name(topic, sizeof topic);
        gen_name(event, sizeof event);
        gen_string(jr, sizeof jr, 3);
        gen_string(ref, sizeof ref, 3);
        const char *join_ref = (rng() & 3) ? jr : NULL;
        const char *r = (rng() & 3) ? ref : NULL;
        for (int f = 0; f < PROTO_NFORMATS; f++) {
            proto_format_t format = (proto_format_t)f;
            proto_buf_t b;
            proto_buf_init(&b);
            proto_msg_t msg;
            int rc = proto_encode(format, &b, join_ref, r, topic, event, payload);
            if (rc == 0)
                rc = decode_copy(format, b.data, b.len, NULL, &msg);
            else
                memset(&msg, 0, sizeof msg);
            const char *want_jr = format == PROTO_V1_JSON ? NULL : join_ref;
            int ok = rc == 0 && json_equal(msg.payload, payload) &&
                     strcmp(msg.topic, topic) == 0 && strcmp(msg.event, event) == 0 &&
                     (want_jr ? msg.join_ref && strcmp(msg.join_ref, want_jr) == 0
                              : !msg.join_ref) &&
                     (r ? msg.ref && strcmp(msg.ref, r) == 0 : !msg.ref);
            count++;
            if (!ok && failures++ < 3) {
                char *p = dump(payload), *g = dump(msg.payload);
                fail("case %d %s: rc %s\nencoded %s\nsent %.1000s\ngot  %.1000s", i,
                     proto_format_name(format), proto_strerror(rc), show(b.data, b.len), p, g);
                free(p);
                free(g);
            }
            proto_msg_free(&msg);
            proto_buf_free(&b);
        }
        json_decref(payload);
    }
    if (failures)
        fail("%d of %d round trips failed", failures, count);
    report("round trip: 200 generated messages through encode and decode, every format");

    /* Across formats: what msgpack decodes, JSON re-encodes, and back. */
    failures = 0;
    for (int i = 0; i < 100; i++) {
        int budget = 80;
        json_t *payload = gen_container(1, 2, &budget);
        proto_buf_t b;
        proto_buf_init(&b);
        proto_msg_t m1, m2;
        int rc = proto_encode(PROTO_MSGPACK, &b, "1", "2", "t", "e", payload);
        if (rc == 0) {
            rc = decode_copy(PROTO_MSGPACK, b.data, b.len, NULL, &m1);
            if (rc == 0) {
                proto_buf_t j;
                proto_buf_init(&j);
                rc = proto_encode(PROTO_V2_JSON, &j, m1.join_ref, m1.ref, m1.topic, m1.event,
                                  m1.payload);
                if (rc == 0) {
                    rc = decode_copy(PROTO_V2_JSON, j.data, j.len, NULL, &m2);
                    if (rc == 0 && !json_equal(m2.payload, payload))
                        rc = 1;
                    proto_msg_free(&m2);
                }
                proto_buf_free(&j);
            }
            proto_msg_free(&m1);
        }
        if (rc)
            failures++;
        proto_buf_free(&b);
        json_decref(payload);
    }
    if (failures)
        fail("%d of 100 cross-format round trips failed", failures);
    report("round trip: msgpack -> v2-json -> decode keeps the payload");
}

/* ---- unit: mutations ---------------------------------------------------- */

/* Feeds every prefix of every decode vector, and deterministic byte
 * mutations of it, to every format, checking only the error contract: a known
 * code, *msg filled exactly when the code says so, and (under the sanitizers)
 * no over-read, no undefined behaviour and no leak. */
static void test_mutations(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/decode.json", dir);
    json_t *cases = json_load_file(path, JSON_ALLOW_NUL, NULL);
    if (!cases) {
        fail("cannot load %s", path);
        report("mutations: every prefix and mutation of every decode vector");
        return;
    }
    static const uint8_t specials[] = {0x00, 0x22, 0x5c, 0x5b, 0x5d, 0x7b, 0x7d, 0x80, 0xc0,
                                       0xc1, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xed, 0xf4,
                                       0xff, 0x90, 0x95, 0x9f, 0xa0, 0xbf};
    size_t i;
    json_t *c;
    long runs = 0;
    json_array_foreach(cases, i, c) {
        uint8_t *buf;
        size_t len;
        const json_t *in = json_object_get(c, "input");
        if (in) {
            len = json_string_length(in);
            buf = dup_bytes(json_string_value(in), len);
        } else if (hex_decode(json_string_value(json_object_get(c, "input_hex")), &buf, &len)) {
            continue;
        }
        if (len > 4096) { /* the large cases add nothing here but time */
            free(buf);
            continue;
        }
        for (int f = 0; f < PROTO_NFORMATS && !why[0]; f++) {
            for (size_t n = 0; n <= len && !why[0]; n++) {
                proto_msg_t msg;
                int rc = decode_copy((proto_format_t)f, buf, n, NULL, &msg);
                check_contract(rc, &msg);
                proto_msg_free(&msg);
                runs++;
            }
            for (int k = 0; k < 64 && len && !why[0]; k++) {
                uint8_t *m = dup_bytes(buf, len);
                size_t at = rng_below((uint32_t)len);
                m[at] = (rng() & 1) ? specials[rng_below(sizeof specials)] : (uint8_t)rng();
                proto_msg_t msg;
                int rc = decode_copy((proto_format_t)f, m, len, NULL, &msg);
                check_contract(rc, &msg);
                proto_msg_free(&msg);
                free(m);
                runs++;
            }
        }
        if (why[0])
            fail("in case %s", case_name(c));
        free(buf);
    }
    json_decref(cases);
    report("mutations: every prefix and 64 mutations of every decode vector, every format "
           "(%ld decodes)", runs);
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTORS_DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];

    run_vectors(dir, "decode.json", "decode", run_decode_case);
    run_vectors(dir, "encode.json", "encode", run_encode_case);
    run_vectors(dir, "negotiate.json", "negotiate", run_negotiate_case);

    test_utf8();
    test_assembler();
    test_encode_reply();
    test_v1_unknown_keys();
    test_decode_details();
    test_names();
    test_round_trip();
    test_mutations(dir);

    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
