/* test_loadgen.c -- tests of the load generator's pure parts: the HDR-style
 * histograms (loadgen/src/hist.c), whose percentiles every benchmark figure
 * comes from, and the envelope scanner (loadgen/src/scan.c), which reads every
 * delivered message without a full decode and so must agree with a real
 * decoder on well-formed input and refuse malformed input.
 *
 * No framework: prints "ok N - name" / "not ok N - name", then
 * "N passed, M failed"; exits non-zero on failure. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "scan.h"

static int passed, failed;

static void check(const char *name, int cond, const char *fmt, ...) {
    if (cond) {
        passed++;
        printf("ok %d - %s\n", passed + failed, name);
        return;
    }
    failed++;
    printf("not ok %d - %s", passed + failed, name);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        printf(": ");
        vprintf(fmt, ap);
        va_end(ap);
    }
    printf("\n");
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Percentiles against the exact ones of a sorted sample: never below, and
 * above by at most one bucket (1/128 of the value, or 1 us). */
static void test_hist_accuracy(void) {
    enum { N = 100000 };
    static uint64_t v[N];
    static hist_t h;
    hist_reset(&h);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* log-uniform from 1 us to ~1 s: every magnitude gets values */
        double e = (double)(x % 1000000) / 1000000.0 * 20.0;
        v[i] = (uint64_t)(1000.0 * (double)(1ull << (int)e) * (1.0 + (e - (int)e)));
        hist_record(&h, v[i]);
    }
    qsort(v, N, sizeof v[0], cmp_u64);
    const double qs[] = {0.5, 0.9, 0.99, 0.999};
    int ok = 1;
    char why[200] = "";
    for (int i = 0; i < 4; i++) {
        uint64_t exact = v[(size_t)(qs[i] * N + 0.5) - 1], got = hist_quantile(&h, qs[i]);
        double slack = (double)exact / 128.0 + 1000.0;
        if (got < exact - 1000 || (double)got > (double)exact + slack) {
            ok = 0;
            snprintf(why, sizeof why, "q%.3f exact %llu got %llu", qs[i], (unsigned long long)exact,
                     (unsigned long long)got);
        }
    }
    check("histogram percentiles within one bucket of the exact ones", ok, "%s", why);
    check("histogram min, max and count are exact",
          h.count == N && h.min_ns == v[0] && h.max_ns == v[N - 1] && hist_quantile(&h, 1.0) == v[N - 1],
          "count %llu", (unsigned long long)h.count);
    hist_summary_t s = hist_summarize(&h);
    check("summary is in ms and ordered", s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 &&
                                              s.p999 <= s.max && s.max * 1e6 > (double)v[N - 1] - 1 &&
                                              s.max * 1e6 < (double)v[N - 1] + 1,
          NULL);
}

static void test_hist_merge_diff(void) {
    static hist_t a, b, m, d;
    hist_reset(&a);
    hist_reset(&b);
    for (int i = 1; i <= 1000; i++)
        hist_record(&a, (uint64_t)i * 1000); /* 1 .. 1000 us */
    for (int i = 1; i <= 1000; i++)
        hist_record(&b, (uint64_t)i * 1000000); /* 1 .. 1000 ms */
    hist_reset(&m);
    hist_add(&m, &a);
    hist_add(&m, &b);
    check("merged: count and extremes", m.count == 2000 && m.min_ns == 1000 && m.max_ns == 1000000000,
          NULL);
    uint64_t med = hist_quantile(&m, 0.5);
    check("merged: median between the two halves", med >= 1000000 && med <= 1010000, "%llu",
          (unsigned long long)med);
    /* a snapshot, more values, and the difference holds just the new ones */
    static hist_t snap;
    snap = a;
    for (int i = 0; i < 10; i++)
        hist_record(&a, 50000000); /* 50 ms */
    hist_diff(&d, &a, &snap);
    uint64_t p = hist_quantile(&d, 0.5);
    check("diff of two snapshots: only what was recorded in between",
          d.count == 10 && p >= 50000000 && p <= 50000000 + 50000000 / 128 + 1000, "count %llu p50 %llu",
          (unsigned long long)d.count, (unsigned long long)p);
    static hist_t empty;
    hist_reset(&empty);
    check("empty histogram: zeros", hist_quantile(&empty, 0.99) == 0 && hist_summarize(&empty).count == 0,
          NULL);
    static hist_t big;
    hist_reset(&big);
    hist_record(&big, 1ull << 62); /* beyond the top bucket: clamped, still counted */
    check("huge values are clamped, not lost", big.count == 1 && hist_quantile(&big, 1.0) == 1ull << 62,
          NULL);
}

static int slice_is(slice_t s, const char *lit) {
    return s.n == strlen(lit) && !memcmp(s.p, lit, s.n);
}

typedef struct keys {
    char got[256];
} keys_t;

static int collect(void *ud, slice_t k, slice_t v) {
    keys_t *ks = ud;
    (void)v;
    strncat(ks->got, (const char *)k.p, k.n < 32 ? k.n : 32);
    strcat(ks->got, ",");
    return 0;
}

static scan_map_cb pick_all(void *ud, slice_t k) {
    (void)ud;
    (void)k;
    return collect;
}

static void test_scan_json(void) {
    const char *m = "[null, \"7\",\"room:a\" ,\"msg\",{\"b\":\"x \\\"q\\\" ] } LG1:1:2:3:\",\"n\":[1,{\"a\":2}]}]";
    slice_t v[5];
    int r = scan_split(0, (const uint8_t *)m, strlen(m), v);
    check("json: five values", r == 0 && slice_is(v[0], "null") && slice_is(v[1], "\"7\"") &&
                                   scan_str_eq(0, v[2], "room:a") && scan_str_eq(0, v[3], "msg"),
          NULL);
    check("json: payload sliced whole, escaped quotes and brackets inside strings",
          r == 0 && v[4].n == strlen(m) - (size_t)(v[4].p - (const uint8_t *)m) - 1, NULL);
    keys_t ks = {""};
    check("json: map keys in order", scan_map(0, v[4], collect, &ks) == 0 && !strcmp(ks.got, "b,n,"),
          "%s", ks.got);
    const char *diff = "{\"joins\": {\"u1\": {\"metas\": [{\"k\": \"}\"}]}, \"u2\": {}}, \"leaves\": {\"u3\": 1}}";
    ks.got[0] = '\0';
    check("json: map of maps in one pass",
          scan_map_of_maps(0, (slice_t){(const uint8_t *)diff, strlen(diff)}, pick_all, &ks) == 0 &&
              !strcmp(ks.got, "u1,u2,u3,"),
          "%s", ks.got);
    const char *bad_diff = "{\"joins\": {\"u1\": {}, }}";
    check("json: a malformed inner map is refused",
          scan_map_of_maps(0, (slice_t){(const uint8_t *)bad_diff, strlen(bad_diff)}, pick_all, &ks) == -1,
          NULL);
    const char *bad[] = {"", "[", "[1,2,3,4]", "[1,2,3,4,5,6]", "[\"a\",\"b\",\"c\",\"d\",{]",
                         "{\"a\":1}", "[1,2,3,4,{\"x\":\"unterminated}]", "[1,2,3,4,5"};
    int rejected = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!scan_split(0, (const uint8_t *)bad[i], strlen(bad[i]), v))
            rejected = 0;
    check("json: malformed envelopes are refused", rejected, NULL);
    slice_t notmap = {(const uint8_t *)"[1]", 3};
    check("json: a non-map is not iterated", scan_map(0, notmap, collect, &ks) == -1, NULL);
}

static void test_scan_msgpack(void) {
    /* [nil, "7", "room:a", "presence_diff", {"joins": {"u1": {}}, "leaves": {}}] */
    static const uint8_t m[] = {0x95, 0xc0, 0xa1, '7', 0xa6, 'r', 'o', 'o', 'm', ':', 'a', 0xad, 'p',
                                'r', 'e', 's', 'e', 'n', 'c', 'e', '_', 'd', 'i', 'f', 'f', 0x82, 0xa5,
                                'j', 'o', 'i', 'n', 's', 0x81, 0xa2, 'u', '1', 0x80, 0xa6, 'l', 'e',
                                'a', 'v', 'e', 's', 0x80};
    slice_t v[5];
    int r = scan_split(1, m, sizeof m, v);
    check("msgpack: five values", r == 0 && v[0].n == 1 && scan_str_eq(1, v[1], "7") &&
                                      scan_str_eq(1, v[2], "room:a") &&
                                      scan_str_eq(1, v[3], "presence_diff"),
          NULL);
    keys_t ks = {""};
    check("msgpack: map keys", r == 0 && scan_map(1, v[4], collect, &ks) == 0 &&
                                   !strcmp(ks.got, "joins,leaves,"),
          "%s", ks.got);
    /* one pass over a map of maps: the inner keys of "joins" and "leaves" */
    ks.got[0] = '\0';
    check("msgpack: map of maps", r == 0 && scan_map_of_maps(1, v[4], pick_all, &ks) == 0 &&
                                      !strcmp(ks.got, "u1,"),
          "%s", ks.got);
    int rejected = 1;
    for (size_t cut = 0; cut < sizeof m; cut++) /* every truncation */
        if (!scan_split(1, m, cut, v))
            rejected = 0;
    check("msgpack: every truncation is refused", rejected, NULL);
    static const uint8_t huge[] = {0x95, 0xc0, 0xc0, 0xc0, 0xc0, 0xdd, 0xff, 0xff, 0xff, 0xff};
    check("msgpack: a declared length beyond the input is refused", scan_split(1, huge, sizeof huge, v) != 0,
          NULL);
    /* str16 and int types inside the payload */
    static const uint8_t m2[] = {0x95, 0xc0, 0xcd, 0x01, 0x00, 0xa1, 't', 0xa1, 'e', 0x81, 0xda, 0x00,
                                 0x01, 'k', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0};
    ks.got[0] = '\0';
    check("msgpack: str16 keys, uint16 and float64 values",
          !scan_split(1, m2, sizeof m2, v) && !scan_map(1, v[4], collect, &ks) && !strcmp(ks.got, "k,"),
          "%s", ks.got);
}

int main(void) {
    test_hist_accuracy();
    test_hist_merge_diff();
    test_scan_json();
    test_scan_msgpack();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
