/* hist.c -- log-linear histograms (see hist.h). */
#include "hist.h"

#include <string.h>

/* Bucket of a value in us: values below HIST_SUB us have one bucket each;
 * above, magnitude m (the top set bit, counted from HIST_SUB_BITS) selects a
 * row of HIST_SUB buckets, the next HIST_SUB_BITS bits the column. */
static int bucket_of(uint64_t us) {
    if (us < HIST_SUB)
        return (int)us;
    int top = 63 - __builtin_clzll(us); /* >= HIST_SUB_BITS */
    int mag = top - HIST_SUB_BITS + 1;
    if (mag > HIST_MAGS)
        return HIST_BUCKETS - 1;
    int sub = (int)(us >> (top - HIST_SUB_BITS)) & (HIST_SUB - 1);
    return mag * HIST_SUB + sub;
}

/* The largest value (us) that lands in bucket i. */
static uint64_t bucket_top_us(int i) {
    int mag = i / HIST_SUB, sub = i % HIST_SUB;
    if (mag == 0)
        return (uint64_t)sub;
    int shift = mag - 1;
    return (((uint64_t)(HIST_SUB + sub) + 1) << shift) - 1;
}

void hist_reset(hist_t *h) {
    memset(h, 0, sizeof *h);
}

void hist_record(hist_t *h, uint64_t ns) {
    uint64_t us = ns / HIST_UNIT_NS;
    h->b[bucket_of(us)]++;
    if (!h->count || ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
    h->count++;
    h->sum_us += us;
}

void hist_add(hist_t *into, const hist_t *from) {
    if (!from->count)
        return;
    if (!into->count || from->min_ns < into->min_ns)
        into->min_ns = from->min_ns;
    if (from->max_ns > into->max_ns)
        into->max_ns = from->max_ns;
    into->count += from->count;
    into->sum_us += from->sum_us;
    for (int i = 0; i < HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
}

void hist_diff(hist_t *into, const hist_t *a, const hist_t *b) {
    hist_reset(into);
    into->count = a->count - b->count;
    into->sum_us = a->sum_us - b->sum_us;
    int lo = -1, hi = -1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        into->b[i] = a->b[i] - b->b[i];
        if (into->b[i]) {
            if (lo < 0)
                lo = i;
            hi = i;
        }
    }
    if (lo >= 0) {
        into->min_ns = (lo ? bucket_top_us(lo - 1) + 1 : 0) * HIST_UNIT_NS;
        into->max_ns = hi == bucket_of(a->max_ns / HIST_UNIT_NS) ? a->max_ns
                                                                 : bucket_top_us(hi) * HIST_UNIT_NS;
    }
}

uint64_t hist_quantile(const hist_t *h, double q) {
    if (!h->count)
        return 0;
    if (q >= 1.0)
        return h->max_ns;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = (bucket_top_us(i) + 1) * HIST_UNIT_NS;
            return v < h->max_ns ? v : h->max_ns;
        }
    }
    return h->max_ns;
}

hist_summary_t hist_summarize(const hist_t *h) {
    hist_summary_t s = {.count = h->count};
    if (!h->count)
        return s;
    s.min = (double)h->min_ns / 1e6;
    s.mean = (double)h->sum_us / (double)h->count / 1e3;
    s.p50 = (double)hist_quantile(h, 0.50) / 1e6;
    s.p90 = (double)hist_quantile(h, 0.90) / 1e6;
    s.p99 = (double)hist_quantile(h, 0.99) / 1e6;
    s.p999 = (double)hist_quantile(h, 0.999) / 1e6;
    s.max = (double)h->max_ns / 1e6;
    return s;
}
