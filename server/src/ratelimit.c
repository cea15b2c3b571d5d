/* ratelimit.c -- token buckets kept as a time (see ratelimit.h). */
#include "ratelimit.h"

int rate_limit_set(rate_limit_t *rl, long per_s, long burst, long strikes) {
    *rl = (rate_limit_t){0, 0, 0};
    if (per_s == 0)
        return 0;
    if (per_s < 0 || per_s > RATE_MAX_PER_S || burst < 1 || strikes < 0)
        return -1;
    /* Rounded to the nearest tick: within 0.1 % up to 100 per second,
     * 2.4 % at 1000. */
    uint64_t interval = ((uint64_t)RATE_TICKS_PER_S + (uint64_t)per_s / 2) / (uint64_t)per_s;
    uint64_t debt = ((uint64_t)burst + (uint64_t)strikes) * interval;
    if (debt + interval >= (1ull << 31))
        return -1;
    rl->interval = (uint32_t)interval;
    rl->pass_span = (uint32_t)(((uint64_t)burst - 1) * interval);
    rl->debt_span = (uint32_t)debt;
    return 0;
}

uint32_t rate_ticks(double seconds) {
    return (uint32_t)(uint64_t)(seconds * RATE_TICKS_PER_S);
}

int rate_take(const rate_limit_t *rl, uint32_t *tat, uint32_t now) {
    if (!rl->interval)
        return RATE_OK;
    int32_t ahead = (int32_t)(*tat - now);
    /* Behind now: the bucket is full. Further ahead than any debt allows:
     * a time from before a wrap of the tick counter, long ago, so full too. */
    if (ahead < 0 || ahead > (int32_t)(rl->debt_span + rl->interval))
        ahead = 0, *tat = now;
    *tat += rl->interval;
    if ((uint32_t)ahead <= rl->pass_span)
        return RATE_OK;
    return (uint32_t)ahead + rl->interval > rl->debt_span ? RATE_EXCEEDED : RATE_REFUSED;
}

uint32_t rate_one_token(const rate_limit_t *rl, uint32_t now) {
    return rl->interval ? now + rl->pass_span : now;
}
