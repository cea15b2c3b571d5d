/* ratelimit.h -- token buckets for what clients send, one 32-bit word each.
 *
 * A bucket holds up to `burst` tokens and gains `rate` tokens per second;
 * each message takes one. Instead of a token count and a refill time, a
 * bucket is kept as one number: the time at which it will be full again
 * (GCRA's "theoretical arrival time"), in ticks of 1/RATE_TICKS_PER_S s. At
 * time `now`, the bucket holds burst - (tat - now) / interval tokens, or is
 * full when tat <= now. A message passes while at least one token is left.
 *
 * A refused message takes a token too, so the bucket goes into debt: a
 * client that keeps sending into an empty bucket owes more with every
 * message, and one that owes more than `strikes` tokens (that is, has had
 * more than `strikes` messages refused before the bucket refilled them) is
 * told RATE_EXCEEDED, and its socket is closed. A client that waits after a
 * refusal pays its debt back at `rate` and is then served again.
 *
 * The ticks are 32-bit and wrap every 145 hours; a bucket is only ever read
 * within the idle timeout (at most 24 hours) of its last message, so the
 * signed difference tat - now is always meaningful. */
#ifndef PARLEY_RATELIMIT_H
#define PARLEY_RATELIMIT_H

#include <stdint.h>

#define RATE_TICKS_PER_S 8192
#define RATE_MAX_PER_S RATE_TICKS_PER_S /* one token per tick */

typedef struct rate_limit {
    uint32_t interval;  /* ticks per token; 0: no limit */
    uint32_t pass_span; /* a message passes while tat - now <= (burst - 1) * interval */
    uint32_t debt_span; /* past (burst + strikes) * interval owed, the client is closed */
} rate_limit_t;

enum rate_verdict {
    RATE_OK,       /* the message passes */
    RATE_REFUSED,  /* refused: the bucket is empty */
    RATE_EXCEEDED, /* refused, and the client has kept sending into the empty bucket */
};

/* Sets a limit of per_s tokens per second (0: none; at most
 * RATE_MAX_PER_S), at most `burst` at once (>= 1), and `strikes` refused
 * messages before RATE_EXCEEDED. Returns 0, or -1 if the spans do not fit
 * the tick range. */
int rate_limit_set(rate_limit_t *rl, long per_s, long burst, long strikes);

/* A time in seconds (the loop's clock) as ticks. A bucket set to the ticks
 * of now is full. */
uint32_t rate_ticks(double seconds);

/* The bucket at `now` holding a single token (no burst): the one of a client
 * on probation. `now` itself (full) when there is no limit. */
uint32_t rate_one_token(const rate_limit_t *rl, uint32_t now);

/* Takes one token from the bucket *tat at `now`; returns a rate_verdict. */
int rate_take(const rate_limit_t *rl, uint32_t *tat, uint32_t now);

#endif
