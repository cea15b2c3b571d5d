/* auth.h -- who a connection is and what it may do: signed tokens (JWT,
 * HMAC-SHA2 through libjwt), the identity they carry, topic permissions and
 * tenants.
 *
 * A token is verified once, before the WebSocket upgrade (transport.c). What
 * it grants becomes the connection's auth_identity_t, which the session owns
 * for its life:
 *   sub      the user id: the presence key, which the client cannot choose;
 *   tenant   the namespace of every topic the connection names (see
 *            auth_topic_key): tenants never share a topic;
 *   exp/nbf  validity; a connection whose token expires is closed (4003);
 *   join     topic patterns the user may join (absent: any topic);
 *   publish  topic patterns the user may push chat messages to (absent: the
 *            join patterns);
 *   meta     presence meta the server adds to every presence entry of the
 *            user (the client cannot override it).
 * A pattern is a topic name, or a prefix ending in '*'; "{sub}" in a pattern
 * stands for the token's sub.
 *
 * This file's verification and matching are pure (no I/O, no clock: the
 * caller passes the time), so they are fuzzed and unit-tested directly. */
#ifndef PARLEY_AUTH_H
#define PARLEY_AUTH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct session;

/* Bytes in the longest token accepted. */
#define AUTH_TOKEN_MAX 4096
/* Longest tenant name; tenants are [A-Za-z0-9_.-]. */
#define AUTH_TENANT_MAX 64
/* Patterns per claim. */
#define AUTH_PATTERNS_MAX 64
/* Longest "user" connect parameter (a token's sub has the same limit). */
#define AUTH_USER_PARAM_MAX 256

typedef struct auth_identity {
    char *user;          /* presence key: the token's sub, or the "user" connect parameter */
    char *tenant;        /* NULL: the default tenant */
    double exp;          /* expiry, Unix seconds; 0: none */
    json_t *join;        /* array of patterns, or NULL: any topic */
    json_t *publish;     /* array of patterns, or NULL: as join */
    json_t *meta;        /* object merged into presence metas, or NULL */
    unsigned verified : 1; /* came from a verified token */
    struct session *session; /* while in the expiry heap */
    size_t heap_pos;     /* 1-based position in the expiry heap; 0: not in it */
} auth_identity_t;

/* Why a token was refused: the text of the HTTP 403 and of the log line. */
typedef enum auth_err {
    AUTH_OK = 0,
    AUTH_EMALFORMED,     /* not a JWT, or not decodable */
    AUTH_ESIGNATURE,     /* no configured key verifies it */
    AUTH_EALG,           /* not HS256/HS384/HS512 */
    AUTH_EEXPIRED,       /* exp passed */
    AUTH_ENOTYET,        /* nbf not reached */
    AUTH_ECLAIMS,        /* sub missing, or a claim of the wrong type or size */
    AUTH_ENKINDS
} auth_err_t;

const char *auth_err_text(auth_err_t e);

/* Sets the verification keys from a spec: entries separated by commas or
 * newlines, each "SECRET" or "KID:SECRET"; "@PATH" reads the entries from a
 * file ('#' starts a comment line). A token whose header names a kid is
 * checked against that key only; one without, against each key in turn.
 * Secrets must be at least 32 bytes. Returns the number of keys, or -1 with
 * a message in err. Replaces any keys set before. */
int auth_set_keys(const char *spec, char *err, size_t errsize);
size_t auth_nkeys(void);
void auth_clear_keys(void);

/* Verifies a token at time `now` (Unix seconds) with `leeway` seconds of
 * tolerance on exp/nbf, and builds the identity it grants. */
auth_err_t auth_verify(const char *token, size_t len, double now, double leeway,
                       auth_identity_t **out);

/* Decodes the token of a phoenix.js authToken protocol entry (after
 * "base64url.bearer.phx."): base64 of either alphabet, padding optional.
 * Returns its length (out is NUL-terminated), or -1: not base64, too long
 * for out, empty, or with a NUL byte. */
int auth_decode_bearer(const char *b64, size_t len, char *out, size_t size);

/* 1 if s[0..n) has no ASCII control character (C0 or DEL). */
int auth_no_controls(const char *s, size_t n);

/* An identity without a token: user may be NULL. NULL if out of memory. */
auth_identity_t *auth_anonymous(const char *user);
void auth_identity_free(auth_identity_t *id);

/* 1 if the identity may join / publish to `topic` (the name the client sent).
 * A NULL identity is anonymous without restrictions. */
int auth_may_join(const auth_identity_t *id, const char *topic);
int auth_may_publish(const auth_identity_t *id, const char *topic);
/* 1 if the token granted publishing on `topic` explicitly (a "publish"
 * pattern matched), for namespaces where only granted users publish. */
int auth_publish_granted(const auth_identity_t *id, const char *topic);

/* The server-side name of a client's topic: the topic itself in the default
 * tenant, "\x1f" TENANT "\x1f" TOPIC otherwise. Client topics may not hold
 * control characters (auth_topic_valid), so no client of one tenant can
 * name another tenant's topic. Writes into buf; returns its length, or -1 if
 * it does not fit. */
int auth_topic_key(const auth_identity_t *id, const char *topic, size_t len, char *buf,
                   size_t size);
/* The name clients see for a server-side topic name (skips the tenant). */
const char *auth_topic_wire(const char *key);
/* 1 if a client topic name is acceptable (no control characters). */
int auth_topic_valid(const char *topic, size_t len);

/* Token expiry: a binary heap of the sessions whose identity has an exp. */
int auth_expiry_add(auth_identity_t *id, struct session *s);
void auth_expiry_remove(auth_identity_t *id);
/* The session whose token expired first, if its exp <= now; else NULL. It is
 * removed from the heap. */
struct session *auth_expiry_pop(double now);

/* Connections per user (the token's sub) on this node, for
 * --max-conns-per-user. auth_user_count returns the count after adding
 * delta (+1 on open, -1 on close). */
long auth_user_count(const char *tenant, const char *user, int delta);

#endif
