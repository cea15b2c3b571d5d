/* auth.c -- tokens, identities, topic permissions and tenants; see auth.h. */
#include "auth.h"

#include <errno.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

/* ---- keys ------------------------------------------------------------------ */

#define KEYS_MAX 16
#define KID_MAX 64
#define SECRET_MIN 32
#define SECRET_MAX 512

typedef struct key {
    char kid[KID_MAX + 1]; /* "" when the entry named none */
    unsigned char secret[SECRET_MAX];
    int len;
} hmac_key_t;

static hmac_key_t keys[KEYS_MAX];
static size_t nkeys;

size_t auth_nkeys(void) {
    return nkeys;
}

void auth_clear_keys(void) {
    memset(keys, 0, sizeof keys); /* secrets do not linger */
    nkeys = 0;
}

static int add_key(const char *entry, size_t n, char *err, size_t errsize) {
    while (n && (*entry == ' ' || *entry == '\t' || *entry == '\r'))
        entry++, n--;
    while (n && (entry[n - 1] == ' ' || entry[n - 1] == '\t' || entry[n - 1] == '\r'))
        n--;
    if (n == 0 || *entry == '#')
        return 0;
    if (nkeys == KEYS_MAX) {
        snprintf(err, errsize, "more than %d keys", KEYS_MAX);
        return -1;
    }
    hmac_key_t *k = &keys[nkeys];
    const char *colon = memchr(entry, ':', n);
    size_t kl = colon ? (size_t)(colon - entry) : 0;
    if (colon && (kl == 0 || kl > KID_MAX)) {
        snprintf(err, errsize, "key %zu: a kid must be 1 to %d bytes", nkeys + 1, KID_MAX);
        return -1;
    }
    const char *secret = colon ? colon + 1 : entry;
    size_t sl = n - (size_t)(secret - entry);
    if (sl < SECRET_MIN || sl > SECRET_MAX) {
        snprintf(err, errsize, "key %zu: a secret must be %d to %d bytes, not %zu", nkeys + 1,
                 SECRET_MIN, SECRET_MAX, sl);
        return -1;
    }
    memcpy(k->kid, entry, kl);
    k->kid[kl] = '\0';
    memcpy(k->secret, secret, sl);
    k->len = (int)sl;
    nkeys++;
    return 0;
}

static int add_keys(const char *p, char *err, size_t errsize) {
    while (*p) {
        size_t n = strcspn(p, ",\n");
        if (add_key(p, n, err, errsize))
            return -1;
        p += n;
        if (*p)
            p++;
    }
    return 0;
}

int auth_set_keys(const char *spec, char *err, size_t errsize) {
    auth_clear_keys();
    if (spec[0] != '@')
        return add_keys(spec, err, errsize) ? -1 : (int)nkeys;
    FILE *f = fopen(spec + 1, "r");
    if (!f) {
        snprintf(err, errsize, "cannot read %s: %s", spec + 1, strerror(errno));
        return -1;
    }
    char line[SECRET_MAX + KID_MAX + 8];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\n");
        if (line[n] != '\n' && !feof(f)) {
            snprintf(err, errsize, "%s: a line is longer than %zu bytes", spec + 1,
                     sizeof line - 2);
            rc = -1;
        } else {
            rc = add_key(line, n, err, errsize);
        }
    }
    memset(line, 0, sizeof line);
    fclose(f);
    if (rc)
        auth_clear_keys();
    return rc ? -1 : (int)nkeys;
}

/* ---- verification ------------------------------------------------------------ */

static const char *const err_text[AUTH_ENKINDS] = {
    [AUTH_OK] = "ok",
    [AUTH_EMALFORMED] = "malformed token",
    [AUTH_ESIGNATURE] = "invalid signature",
    [AUTH_EALG] = "unsupported algorithm",
    [AUTH_EEXPIRED] = "token expired",
    [AUTH_ENOTYET] = "token not yet valid",
    [AUTH_ECLAIMS] = "invalid claims",
};

const char *auth_err_text(auth_err_t e) {
    return (unsigned)e < AUTH_ENKINDS ? err_text[e] : "?";
}

int auth_no_controls(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

static int valid_tenant(const char *t, size_t n) {
    if (n == 0 || n > AUTH_TENANT_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* A claim that must be an array of at most AUTH_PATTERNS_MAX topic patterns;
 * absent is fine (NULL). Returns -1 if present and invalid. */
static int patterns_claim(json_t *claims, const char *name, json_t **out) {
    json_t *a = json_object_get(claims, name);
    *out = NULL;
    if (!a)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > AUTH_PATTERNS_MAX)
        return -1;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            !auth_no_controls(json_string_value(v), json_string_length(v)))
            return -1;
    }
    *out = json_incref(a);
    return 0;
}

/* exp and nbf: absent, or a number (NumericDate). */
static int time_claim(json_t *claims, const char *name, double *out) {
    json_t *v = json_object_get(claims, name);
    *out = 0;
    if (!v)
        return 0;
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 0;
}

static auth_err_t identity_from_claims(json_t *claims, double now, double leeway,
                                       auth_identity_t **out) {
    json_t *sub = json_object_get(claims, "sub");
    if (!json_is_string(sub) || json_string_length(sub) == 0 || json_string_length(sub) > 256 ||
        !auth_no_controls(json_string_value(sub), json_string_length(sub)))
        return AUTH_ECLAIMS;
    json_t *tenant = json_object_get(claims, "tenant");
    if (tenant && !(json_is_string(tenant) &&
                    valid_tenant(json_string_value(tenant), json_string_length(tenant))))
        return AUTH_ECLAIMS;
    double exp, nbf;
    if (time_claim(claims, "exp", &exp) || time_claim(claims, "nbf", &nbf))
        return AUTH_ECLAIMS;
    if (exp && now >= exp + leeway)
        return AUTH_EEXPIRED;
    if (nbf && now + leeway < nbf)
        return AUTH_ENOTYET;
    json_t *meta = json_object_get(claims, "meta");
    if (meta && !json_is_object(meta))
        return AUTH_ECLAIMS;

    auth_identity_t *id = calloc(1, sizeof *id);
    if (!id)
        return AUTH_ECLAIMS;
    id->verified = 1;
    id->exp = exp;
    if (!(id->user = strdup(json_string_value(sub))) ||
        (tenant && !(id->tenant = strdup(json_string_value(tenant)))) ||
        patterns_claim(claims, "join", &id->join) ||
        patterns_claim(claims, "publish", &id->publish)) {
        auth_identity_free(id);
        return AUTH_ECLAIMS;
    }
    if (meta)
        id->meta = json_incref(meta);
    *out = id;
    return AUTH_OK;
}

/* One key's verdict: decoded and signed by it with an HMAC algorithm. */
static auth_err_t verify_with(const char *token, const hmac_key_t *k, jwt_t **jwt) {
    *jwt = NULL;
    if (jwt_decode(jwt, token, k->secret, k->len) != 0) {
        *jwt = NULL;
        return AUTH_ESIGNATURE;
    }
    jwt_alg_t alg = jwt_get_alg(*jwt);
    if (alg != JWT_ALG_HS256 && alg != JWT_ALG_HS384 && alg != JWT_ALG_HS512) {
        jwt_free(*jwt);
        *jwt = NULL;
        return AUTH_EALG;
    }
    return AUTH_OK;
}

auth_err_t auth_verify(const char *token, size_t len, double now, double leeway,
                       auth_identity_t **out) {
    *out = NULL;
    char buf[AUTH_TOKEN_MAX + 1];
    if (len == 0 || len > AUTH_TOKEN_MAX || memchr(token, '\0', len))
        return AUTH_EMALFORMED;
    memcpy(buf, token, len);
    buf[len] = '\0';
    /* A JWS compact serialization: three base64url parts. */
    size_t dots = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (c == '.')
            dots++;
        else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_'))
            return AUTH_EMALFORMED;
    }
    if (dots != 2 || nkeys == 0)
        return nkeys == 0 ? AUTH_ESIGNATURE : AUTH_EMALFORMED;

    /* With several keys, the header's kid (read without verifying) picks one. */
    const char *kid = NULL;
    jwt_t *unverified = NULL;
    if (nkeys > 1) {
        if (jwt_decode(&unverified, buf, NULL, 0) != 0)
            return AUTH_EMALFORMED;
        kid = jwt_get_header(unverified, "kid");
    }
    jwt_t *jwt = NULL;
    auth_err_t rc = AUTH_ESIGNATURE;
    for (size_t i = 0; i < nkeys && !jwt; i++) {
        if (kid && keys[i].kid[0] && strcmp(kid, keys[i].kid) != 0)
            continue;
        auth_err_t r = verify_with(buf, &keys[i], &jwt);
        if (r == AUTH_EALG)
            rc = r;
    }
    jwt_free(unverified);
    if (!jwt)
        return rc;

    char *text = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    json_t *claims = text ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(text);
    if (!json_is_object(claims)) {
        json_decref(claims);
        return AUTH_ECLAIMS;
    }
    rc = identity_from_claims(claims, now, leeway, out);
    json_decref(claims);
    return rc;
}

auth_identity_t *auth_anonymous(const char *user) {
    auth_identity_t *id = calloc(1, sizeof *id);
    if (id && user && !(id->user = strdup(user))) {
        free(id);
        return NULL;
    }
    return id;
}

void auth_identity_free(auth_identity_t *id) {
    if (!id)
        return;
    auth_expiry_remove(id);
    free(id->user);
    free(id->tenant);
    json_decref(id->join);
    json_decref(id->publish);
    json_decref(id->meta);
    free(id);
}

/* ---- permissions -------------------------------------------------------------- */

/* Does `topic` match `pattern`? A trailing '*' matches any rest; "{sub}"
 * matches the sub literally (so a sub holding '*' is no wildcard). */
static int match(const char *pattern, const char *sub, const char *topic) {
    size_t sl = sub ? strlen(sub) : 0;
    for (const char *p = pattern;;) {
        if (p[0] == '*' && p[1] == '\0')
            return 1;
        if (sub && strncmp(p, "{sub}", 5) == 0) {
            if (strncmp(topic, sub, sl) != 0)
                return 0;
            topic += sl;
            p += 5;
            continue;
        }
        if (*p != *topic)
            return 0;
        if (!*p)
            return 1;
        p++, topic++;
    }
}

static int any_match(const json_t *patterns, const char *sub, const char *topic) {
    size_t i;
    json_t *v;
    json_array_foreach(patterns, i, v) {
        if (match(json_string_value(v), sub, topic))
            return 1;
    }
    return 0;
}

int auth_may_join(const auth_identity_t *id, const char *topic) {
    return !id || !id->join || any_match(id->join, id->user, topic);
}

int auth_may_publish(const auth_identity_t *id, const char *topic) {
    if (!id)
        return 1;
    if (id->publish)
        return any_match(id->publish, id->user, topic);
    return auth_may_join(id, topic);
}

int auth_publish_granted(const auth_identity_t *id, const char *topic) {
    return id && id->publish && any_match(id->publish, id->user, topic);
}

int auth_decode_bearer(const char *b64, size_t len, char *out, size_t size) {
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        char c = b64[i];
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+' || c == '-')
            v = 62;
        else if (c == '/' || c == '_')
            v = 63;
        else if (c == '=' && len - i <= 2)
            break;
        else
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= size)
                return -1;
            out[n] = (char)((acc >> bits) & 0xff);
            if (!out[n++])
                return -1; /* no token has a NUL byte */
        }
    }
    out[n] = '\0';
    return n ? (int)n : -1; /* an entry is a token given: an empty one is bad */
}

/* ---- tenants --------------------------------------------------------------------- */

#define TENANT_SEP '\x1f'

int auth_topic_valid(const char *topic, size_t len) {
    return auth_no_controls(topic, len);
}

int auth_topic_key(const auth_identity_t *id, const char *topic, size_t len, char *buf,
                   size_t size) {
    if (!id || !id->tenant) {
        if (len + 1 > size)
            return -1;
        memcpy(buf, topic, len + 1);
        return (int)len;
    }
    int n = snprintf(buf, size, "%c%s%c", TENANT_SEP, id->tenant, TENANT_SEP);
    if (n < 0 || (size_t)n + len + 1 > size)
        return -1;
    memcpy(buf + n, topic, len + 1);
    return n + (int)len;
}

const char *auth_topic_wire(const char *key) {
    if (key[0] != TENANT_SEP)
        return key;
    const char *end = strchr(key + 1, TENANT_SEP);
    return end ? end + 1 : key;
}

/* ---- expiry heap ---------------------------------------------------------------- */

static auth_identity_t **heap; /* heap[0] is position 1 */
static size_t heap_len, heap_cap;

static void heap_set(size_t pos, auth_identity_t *id) {
    heap[pos - 1] = id;
    id->heap_pos = pos;
}

static void sift_up(size_t pos) {
    auth_identity_t *id = heap[pos - 1];
    while (pos > 1 && heap[pos / 2 - 1]->exp > id->exp) {
        heap_set(pos, heap[pos / 2 - 1]);
        pos /= 2;
    }
    heap_set(pos, id);
}

static void sift_down(size_t pos) {
    auth_identity_t *id = heap[pos - 1];
    for (;;) {
        size_t c = pos * 2;
        if (c > heap_len)
            break;
        if (c < heap_len && heap[c]->exp < heap[c - 1]->exp)
            c++;
        if (heap[c - 1]->exp >= id->exp)
            break;
        heap_set(pos, heap[c - 1]);
        pos = c;
    }
    heap_set(pos, id);
}

int auth_expiry_add(auth_identity_t *id, struct session *s) {
    if (id->heap_pos || !id->exp)
        return 0;
    if (heap_len == heap_cap) {
        size_t cap = heap_cap ? heap_cap * 2 : 64;
        auth_identity_t **h = realloc(heap, cap * sizeof *h);
        if (!h)
            return -1;
        heap = h;
        heap_cap = cap;
    }
    id->session = s;
    heap_len++;
    heap[heap_len - 1] = id;
    sift_up(heap_len);
    return 0;
}

void auth_expiry_remove(auth_identity_t *id) {
    size_t pos = id->heap_pos;
    if (!pos)
        return;
    id->heap_pos = 0;
    id->session = NULL;
    auth_identity_t *last = heap[--heap_len];
    if (pos - 1 != heap_len) {
        heap_set(pos, last);
        sift_up(pos);
        sift_down(last->heap_pos);
    }
    if (heap_len == 0) {
        free(heap);
        heap = NULL;
        heap_cap = 0;
    }
}

struct session *auth_expiry_pop(double now) {
    if (!heap_len || heap[0]->exp > now)
        return NULL;
    auth_identity_t *id = heap[0];
    struct session *s = id->session;
    auth_expiry_remove(id);
    return s;
}

/* ---- connections per user ------------------------------------------------------- */

typedef struct user_count {
    long n;
    UT_hash_handle hh;
    char key[]; /* tenant \x1f user */
} user_count_t;

static user_count_t *users;

long auth_user_count(const char *tenant, const char *user, int delta) {
    char key[AUTH_TENANT_MAX + 2 + 257];
    int kl = snprintf(key, sizeof key, "%s%c%s", tenant ? tenant : "", TENANT_SEP, user);
    if (kl < 0 || (size_t)kl >= sizeof key)
        return -1;
    user_count_t *u;
    HASH_FIND(hh, users, key, (size_t)kl, u);
    if (!u) {
        if (delta <= 0)
            return 0;
        u = calloc(1, sizeof *u + (size_t)kl + 1);
        if (!u)
            return -1;
        memcpy(u->key, key, (size_t)kl + 1);
        HASH_ADD(hh, users, key[0], (size_t)kl, u);
    }
    u->n += delta;
    long n = u->n;
    if (n <= 0) {
        HASH_DEL(users, u);
        free(u);
    }
    return n;
}
