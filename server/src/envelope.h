/* envelope.h -- what nodes send each other through Redis (docs/cluster.md):
 * encoding and decoding the envelope, and applying a presence envelope to
 * the CRDT. Pure: no I/O, no clock, no globals. cluster.c does the Redis
 * side (connections, peers' liveness, replies); the fuzz targets envelope
 * and presence drive this module directly.
 *
 * An envelope is the wire protocol's MessagePack five-element array, reused:
 * [origin node, kind, topic, event, payload], with a one-letter kind. */
#ifndef PARLEY_ENVELOPE_H
#define PARLEY_ENVELOPE_H

#include <jansson.h>
#include <parley/protocol.h>
#include <stddef.h>
#include <stdint.h>

#include "crdt.h"

/* Cluster messages (a full presence state) may be large. */
#define ENVELOPE_MAX (64u << 20)
#define ENVELOPE_MAX_TOPIC 65536

typedef enum envelope_kind {
    ENVELOPE_OTHER = 0,         /* a kind this node does not know */
    ENVELOPE_BROADCAST,         /* "b": a chat message on a topic */
    ENVELOPE_DELTA,             /* "d": the origin's latest presence changes */
    ENVELOPE_HEARTBEAT,         /* "h": the origin's context clocks */
    ENVELOPE_LEAVING,           /* "x": the origin is stopping */
    ENVELOPE_STATE_REQUEST,     /* "r": the origin asks for our full state */
    ENVELOPE_STATE,             /* "s": the origin's full presence state */
    ENVELOPE_BAN,               /* "p": the origin banned a client (penalty.h) */
} envelope_kind_t;

/* A decoded envelope. The strings and the payload belong to msg and stay
 * valid until envelope_free(). */
typedef struct envelope {
    const char *origin;         /* the sending node's id: a NUL-free string */
    envelope_kind_t kind;
    const char *topic;          /* NUL-free, 1 .. ENVELOPE_MAX_TOPIC bytes */
    size_t topic_len;
    const char *event;          /* NUL-free, 1 .. PROTO_DEFAULT_MAX_EVENT bytes */
    const json_t *payload;      /* a JSON object */
    proto_msg_t msg;
} envelope_t;

/* Decodes the bytes of one Redis message. Returns 0 (release the envelope
 * with envelope_free()), or a negative PROTO_E* code and nothing to release:
 * PROTO_EFIELD when the origin or the kind is not a string. */
int envelope_decode(const uint8_t *buf, size_t len, envelope_t *env);
void envelope_free(envelope_t *env);

/* The payload of a ban: {"key": hex of a penalty key's 17 bytes,
 * "offences": n >= 1, "ban_s": seconds >= 0}. */
#define ENVELOPE_BAN_KEY 17
typedef struct envelope_ban {
    uint8_t key[ENVELOPE_BAN_KEY];
    unsigned offences;
    double ban_s;
} envelope_ban_t;

/* The payload of ban b (NULL if out of memory), and b read back from one:
 * 0, or -1 when a field is missing or out of range. */
json_t *envelope_ban_payload(const envelope_ban_t *b);
int envelope_ban_read(const json_t *payload, envelope_ban_t *b);

/* Appends the envelope of a message from node `origin`. kind must not be
 * ENVELOPE_OTHER. Returns 0 or a negative PROTO_E* code. */
int envelope_encode(proto_buf_t *out, const char *origin, envelope_kind_t kind,
                    const char *topic, const char *event, const json_t *payload);

/* What envelope_apply() found, as bits, for the caller to act on. */
enum {
    ENVELOPE_IGNORED = 1 << 0,  /* the origin is permanently down: drop the message */
    ENVELOPE_LEFT = 1 << 1,     /* the origin left (its entries are gone): forget it */
    ENVELOPE_CAME_UP = 1 << 2,  /* the origin was down and is up again */
    ENVELOPE_MISSED = 1 << 3,   /* we missed some of the origin's news: ask for its state */
    ENVELOPE_MALFORMED = 1 << 4, /* a delta or state the CRDT refused (nothing changed) */
    ENVELOPE_SEND_STATE = 1 << 5, /* the origin wants our full state */
};

/* Applies an envelope from another node (not a broadcast) to the presence
 * CRDT: the origin is alive (up again if it was down), a delta or a state
 * is merged, a heartbeat is compared with what we have seen, a leaving node
 * is purged. Returns the ENVELOPE_* bits that apply. */
int envelope_apply(crdt_t *c, const envelope_t *env);

#endif
