/* test_ratelimit.c -- unit tests of the token buckets (server/src/ratelimit.c):
 * the burst, the refill rate, the debt that ends in RATE_EXCEEDED, paying it
 * back, no limit, and the wrap of the tick counter. */
#include <stdio.h>
#include <stdint.h>

#include "ratelimit.h"

#include "tap.h"

/* Messages that pass out of n sent at once at `now`. */
static int take_n(const rate_limit_t *rl, uint32_t *tat, uint32_t now, int n, int *exceeded_at) {
    int ok = 0;
    *exceeded_at = -1;
    for (int i = 0; i < n; i++) {
        int v = rate_take(rl, tat, now);
        if (v == RATE_OK)
            ok++;
        else if (v == RATE_EXCEEDED && *exceeded_at < 0)
            *exceeded_at = i;
    }
    return ok;
}

int main(void) {
    rate_limit_t rl;
    int ex;
    CHECK("10/s, burst 30, 10 strikes: accepted", rate_limit_set(&rl, 10, 30, 10) == 0);

    uint32_t now = rate_ticks(1800000000.25), tat = now;
    CHECK("a full bucket passes the burst at once", take_n(&rl, &tat, now, 30, &ex) == 30 && ex < 0);
    CHECK("the next message is refused", rate_take(&rl, &tat, now) == RATE_REFUSED);

    /* Probation: one token, then the rate. */
    uint32_t probation = rate_one_token(&rl, now);
    CHECK("a bucket on probation passes one message at once",
          take_n(&rl, &probation, now, 5, &ex) == 1 && ex < 0);
    probation = rate_one_token(&rl, now);
    rate_take(&rl, &probation, now);
    CHECK("and one more 0.1 s later (the rate)",
          rate_take(&rl, &probation, now + RATE_TICKS_PER_S / 10 + 1) == RATE_OK);
    rate_limit_t none;
    rate_limit_set(&none, 0, 1, 0);
    CHECK("without a limit, probation is a full bucket", rate_one_token(&none, now) == now);

    /* Paying back: one refusal is owed, so after 0.1 s nothing is free yet,
     * after 0.2 s one message passes. */
    CHECK("a refusal is owed: still refused 0.1 s later",
          rate_take(&rl, &tat, now + RATE_TICKS_PER_S / 10) == RATE_REFUSED);
    CHECK("after the debt is paid back, one passes",
          rate_take(&rl, &tat, now + 3 * RATE_TICKS_PER_S / 10 + 1) == RATE_OK);

    /* The 11th refusal in a row, without waiting, is RATE_EXCEEDED. */
    tat = now;
    take_n(&rl, &tat, now, 30, &ex);
    int refused = 0, v;
    while ((v = rate_take(&rl, &tat, now)) == RATE_REFUSED)
        refused++;
    CHECK("10 refusals, then the 11th is exceeded", refused == 10 && v == RATE_EXCEEDED);

    /* A client at the rate never runs out: 600 messages over 60 s. */
    tat = now;
    int ok = 0;
    for (int i = 0; i < 600; i++)
        ok += rate_take(&rl, &tat, now + (uint32_t)i * (RATE_TICKS_PER_S / 10)) == RATE_OK;
    CHECK("a client at the rate is never refused", ok == 600);

    /* Twice the rate after the burst: refusals pile up into exceeded. */
    tat = now;
    int first_exceeded = -1;
    for (int i = 0; i < 400 && first_exceeded < 0; i++)
        if (rate_take(&rl, &tat, now + (uint32_t)i * (RATE_TICKS_PER_S / 20)) == RATE_EXCEEDED)
            first_exceeded = i;
    /* After i messages at 20/s: owed = i - 10 * i / 20 = i / 2 past the 30 of
     * the burst; exceeded when that passes 30 + 10. */
    CHECK("twice the rate ends in exceeded after the burst and the strikes",
          first_exceeded >= 78 && first_exceeded <= 82);

    /* A bucket left alone for a day is full, and one across the wrap of the
     * 32-bit tick counter too. */
    tat = now;
    take_n(&rl, &tat, now, 35, &ex);
    CHECK("a day later the bucket is full",
          take_n(&rl, &tat, now + 86400u * RATE_TICKS_PER_S, 30, &ex) == 30);
    uint32_t near_wrap = UINT32_MAX - 5;
    tat = near_wrap;
    CHECK("across the wrap of the tick counter",
          take_n(&rl, &tat, near_wrap, 30, &ex) == 30 && rate_take(&rl, &tat, near_wrap + 10) == RATE_REFUSED);

    /* 0: no limit. */
    CHECK("rate 0 sets no limit", rate_limit_set(&rl, 0, 1, 0) == 0);
    tat = now;
    CHECK("no limit: everything passes", take_n(&rl, &tat, now, 100000, &ex) == 100000);

    /* Strikes 0: the first refusal closes. */
    rate_limit_set(&rl, 5, 2, 0);
    tat = now;
    take_n(&rl, &tat, now, 2, &ex);
    CHECK("strikes 0: the first refusal is exceeded", rate_take(&rl, &tat, now) == RATE_EXCEEDED);

    CHECK("a rate above one per tick is refused", rate_limit_set(&rl, RATE_MAX_PER_S + 1, 1, 0) < 0);
    CHECK("the largest settings fit", rate_limit_set(&rl, 1, 100000, 1000) == 0);

    return TAP_END();
}
