/* tap.h -- the TAP output the C unit tests share: CHECK(name, cond) prints
 * "ok N - name" or "not ok N - name"; TAP_END() prints the plan and is the
 * exit status of main. */
#ifndef PARLEY_TAP_H
#define PARLEY_TAP_H

#include <stdio.h>

static int tap_passed, tap_failed;

#define CHECK(name, cond)                                                \
    do {                                                                 \
        if (cond) {                                                      \
            tap_passed++;                                                \
            printf("ok %d - %s\n", tap_passed + tap_failed, name);       \
        } else {                                                         \
            tap_failed++;                                                \
            printf("not ok %d - %s\n", tap_passed + tap_failed, name);   \
        }                                                                \
    } while (0)

#define TAP_END() (printf("1..%d\n", tap_passed + tap_failed), tap_failed ? 1 : 0)

#endif
