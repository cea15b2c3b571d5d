/* scan.h -- reading server messages without building a tree.
 *
 * The load generator reads every message the server delivers, so reading must
 * cost much less than the server spent sending it. A full decode (a jansson
 * tree per message) would make the load generator the bottleneck, so the hot
 * paths only slice the envelope [join_ref, ref, topic, event, payload] into
 * its five raw values and look inside the payload as far as needed: the
 * timestamp token of a chat message, or the keys of a presence map. Both
 * serializers are handled: V2 JSON text and MessagePack. Rare messages
 * (replies) are decoded in full with the protocol library. */
#ifndef LOADGEN_SCAN_H
#define LOADGEN_SCAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct slice {
    const uint8_t *p;
    size_t n;
} slice_t;

/* Splits one message into its five values (raw bytes each). 0 on success,
 * -1 if it is not a five-element array. */
int scan_split(int msgpack, const uint8_t *p, size_t n, slice_t out[5]);
/* The bytes of a string value (JSON: between the quotes, escapes left as
 * they are). 0 on success, -1 if the value is not a string. */
int scan_str(int msgpack, slice_t v, slice_t *s);
int scan_str_eq(int msgpack, slice_t v, const char *lit);
/* Calls cb for every key/value of a map (object) value, in order; stops at
 * the first non-zero return and returns it; -1 if v is not a map. */
typedef int (*scan_map_cb)(void *ud, slice_t key, slice_t val);
int scan_map(int msgpack, slice_t v, scan_map_cb cb, void *ud);
/* For a map whose values are maps, in one pass: pick(key) names the
 * callback for the entries of that key's value, or NULL to skip it. */
typedef scan_map_cb (*scan_pick_cb)(void *ud, slice_t key);
int scan_map_of_maps(int msgpack, slice_t v, scan_pick_cb pick, void *ud);

#endif
