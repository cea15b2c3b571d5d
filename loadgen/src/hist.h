/* hist.h -- HDR-style latency histograms.
 *
 * Values are nanoseconds. Buckets are log-linear, as in HdrHistogram: each
 * power of two is split into HIST_SUB equal sub-buckets, so every recorded
 * value is known to within 1/HIST_SUB (0.8 %) whatever its size, from 1 us
 * to 2^HIST_MAGS us (about 36 minutes). A histogram is a flat array of
 * counters, so it can live in shared memory, be merged by adding, and be
 * diffed between two snapshots (the per-second figures). */
#ifndef LOADGEN_HIST_H
#define LOADGEN_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_MAGS 32
#define HIST_BUCKETS ((HIST_MAGS + 1) * HIST_SUB)
#define HIST_UNIT_NS 1000u /* the finest resolution: values are kept in us */

typedef struct hist {
    uint64_t count;
    uint64_t sum_us;  /* for the mean */
    uint64_t min_ns, max_ns;
    uint64_t b[HIST_BUCKETS];
} hist_t;

/* The figures a report shows, in milliseconds. */
typedef struct hist_summary {
    uint64_t count;
    double min, mean, p50, p90, p99, p999, max;
} hist_summary_t;

void hist_reset(hist_t *h);
void hist_record(hist_t *h, uint64_t ns);
void hist_add(hist_t *into, const hist_t *from);
/* into = a - b, for two snapshots of one histogram (b taken earlier); min and
 * max become those of the buckets that changed. */
void hist_diff(hist_t *into, const hist_t *a, const hist_t *b);
/* The value at quantile q (0..1), in ns: the upper edge of its bucket, so a
 * percentile is never understated; the exact max for q = 1. */
uint64_t hist_quantile(const hist_t *h, double q);
hist_summary_t hist_summarize(const hist_t *h);

#endif
