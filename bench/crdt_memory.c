/* crdt_memory.c -- measures the heap cost of one presence entry in the CRDT:
 * tracks N entries (one topic, distinct connections and user keys, a typical
 * meta {"name": "...", "status": "online", "online_at": ...}) and reports the
 * growth of the heap in use (glibc mallinfo2) per entry, with and without the
 * meta, whose size is reported separately (the target is "300 bytes plus the
 * meta's size"). Build and run: bench/run.sh, or
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iserver/src bench/crdt_memory.c server/src/crdt.c -ljansson \
 *      -o build/crdt_memory && build/crdt_memory 100000 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "crdt.h"

static size_t heap_in_use(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    crdt_t *c = crdt_new("n0123456789ab", NULL, NULL);
    char key[32], name[32];
    /* The meta as the server builds it: the join payload without "user",
     * plus online_at. Measured on its own first. */
    size_t h0 = heap_in_use();
    json_t **metas = malloc((size_t)n * sizeof *metas);
    for (long i = 0; i < n; i++) {
        snprintf(name, sizeof name, "User %ld", i);
        metas[i] = json_pack("{s:s,s:s,s:I}", "name", name, "status", "online", "online_at",
                             (json_int_t)1795262400);
    }
    size_t h1 = heap_in_use();
    for (long i = 0; i < n; i++) {
        snprintf(key, sizeof key, "u%ld", i);
        crdt_join(c, (uint64_t)i + 1, "room:lobby", key, metas[i]);
        json_decref(metas[i]); /* the CRDT holds the only reference now */
    }
    size_t h2 = heap_in_use();
    printf("entries %ld\nmeta (jansson object, 3 fields): %.0f B each\n"
           "entry without its meta: %.0f B each\nentry with its meta: %.0f B each\n",
           n, (double)(h1 - h0) / (double)n, (double)(h2 - h1) / (double)n,
           (double)(h2 - h0 - (size_t)n * sizeof *metas) / (double)n);
    crdt_free(c);
    free(metas);
    return 0;
}
