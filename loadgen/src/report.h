/* report.h -- the results of a run, and the three ways they are written: a
 * human summary, the JSON report (--report) and the per-second CSV (--csv). */
#ifndef LOADGEN_REPORT_H
#define LOADGEN_REPORT_H

#include "loadgen.h"
#include "sys.h"

#include <stdio.h>

typedef struct server_stat {
    int pid;
    int64_t cpu_start, cpu_w0, cpu_w1; /* ns: at start, window start, window end */
    long rss_start_kb, rss_joined_kb, rss_end_kb, hwm_kb;
} server_stat_t;

typedef struct results {
    machine_info_t machine;
    char date[32];            /* UTC, ISO 8601 */
    char command[1024];
    wslot_t t;                /* every worker's slot added up */
    hist_t latency;           /* all targets */
    int have_fl;              /* fanout: first/last receiver figures */
    hist_t first, last;       /* per message: first and last receiver, all targets */
    hist_t first_t[MAX_TARGETS], last_t[MAX_TARGETS];
    uint64_t fl_messages;     /* messages with at least one read */
    double connect_s;         /* first open -> last join (or upgrade: presence) */
    double window_s;          /* the measured window */
    const char *unit;         /* what per-unit CPU is divided by */
    double units;             /* how many of them in the window */
    double loadgen_cpu_s;     /* over the window: workers and the parent */
    double loadgen_cpu_total_s;
    server_stat_t servers[MAX_SERVER_PIDS];
    int nservers;
    double presence_last_join_ms, presence_converged_ms;
    abuse_slot_t abuse;       /* --abuse: the abusive connection's counters */
    int ok;                   /* everything joined, arrived and converged */
    char verdict[256];
} results_t;

void report_summary(FILE *f, const results_t *r);
int report_json(const char *path, const results_t *r);

#endif
