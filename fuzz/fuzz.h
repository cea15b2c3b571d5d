/* fuzz.h -- what the fuzz targets share (docs/fuzzing.md).
 *
 * Every target defines LLVMFuzzerTestOneInput(). The same source is linked
 * either with libFuzzer (clang, -DPARLEY_FUZZ=ON: the fuzz_<target>
 * binaries) or with replay_main.c (any compiler: the replay_<target>
 * binaries that ctest runs over the committed corpus). A target reports a
 * finding by aborting: FUZZ_CHECK prints the failed condition first, so the
 * reason shows in a normal build too, not only under a sanitizer. */
#ifndef PARLEY_FUZZ_H
#define PARLEY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <parley/protocol.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* codec.c: decodes one client message in `format` and checks the codec's
 * contract on it (see codec.c). Always returns 0. */
int fuzz_codec(proto_format_t format, const uint8_t *data, size_t size);

#endif
