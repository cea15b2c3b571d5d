/* test_metrics.c -- unit tests of the event loop histogram and its
 * Prometheus text (server/src/metrics.c): each iteration lands in one
 * bucket, the rendered buckets are cumulative and end in +Inf with the
 * count, and only iterations of 50 ms or more are stalls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#include "tap.h"

/* The value of the line starting with `name` in the rendered text, or -1. */
static double value_of(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

int main(void) {
    static char buf[1 << 16];
    memset(&metrics, 0, sizeof metrics);
    size_t len = metrics_render(buf, sizeof buf, 1.0);
    CHECK("rendered", len > 0 && len < sizeof buf);
    CHECK("no iterations yet: the count is 0",
          value_of(buf, "parley_loop_iteration_seconds_count") == 0);

    int stalls = 0;
    stalls += metrics_loop_iteration(0.0002); /* le 0.001 */
    stalls += metrics_loop_iteration(0.001);  /* le 0.001: bounds are inclusive */
    stalls += metrics_loop_iteration(0.003);  /* le 0.005 */
    stalls += metrics_loop_iteration(0.049);  /* le 0.1, not a stall */
    stalls += metrics_loop_iteration(0.05);   /* le 0.1, a stall */
    stalls += metrics_loop_iteration(2.0);    /* +Inf, a stall */
    CHECK("iterations of 50 ms or more are stalls", stalls == 2 && metrics.loop_stalls == 2);

    len = metrics_render(buf, sizeof buf, 1.0);
    CHECK("le 0.001: 2", value_of(buf, "parley_loop_iteration_seconds_bucket{le=\"0.001\"}") == 2);
    CHECK("le 0.005: 3 (cumulative)",
          value_of(buf, "parley_loop_iteration_seconds_bucket{le=\"0.005\"}") == 3);
    CHECK("le 0.02: 3", value_of(buf, "parley_loop_iteration_seconds_bucket{le=\"0.02\"}") == 3);
    CHECK("le 0.1: 5", value_of(buf, "parley_loop_iteration_seconds_bucket{le=\"0.1\"}") == 5);
    CHECK("le 0.5: 5", value_of(buf, "parley_loop_iteration_seconds_bucket{le=\"0.5\"}") == 5);
    CHECK("le +Inf: 6", value_of(buf, "parley_loop_iteration_seconds_bucket{le=\"+Inf\"}") == 6);
    CHECK("count: 6", value_of(buf, "parley_loop_iteration_seconds_count") == 6);
    double sum = value_of(buf, "parley_loop_iteration_seconds_sum");
    CHECK("sum: 2.1032 s", sum > 2.10319 && sum < 2.10321);
    CHECK("stalls counted", value_of(buf, "parley_loop_stalls_total") == 2);
    CHECK("declared a histogram", strstr(buf, "# TYPE parley_loop_iteration_seconds histogram\n") != NULL);
    return TAP_END();
}
