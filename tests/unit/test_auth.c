/* test_auth.c -- unit tests of server/src/auth.c (tokens, permissions,
 * tenants, the expiry heap, per-user counts) and of the authToken decoding
 * in gate.c. Tokens are made with libjwt's encoder. */
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "gate.h"
#include "tap.h"


#define KEY "0123456789abcdef0123456789abcdef"
#define NOW 1800000000.0

/* A token of `claims` (JSON) signed with key by alg, kid in the header if given. */
static char *make(const char *claims, const char *key, jwt_alg_t alg, const char *kid) {
    jwt_t *j;
    jwt_new(&j);
    jwt_add_grants_json(j, claims);
    if (kid)
        jwt_add_header(j, "kid", kid);
    jwt_set_alg(j, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0);
    char *t = jwt_encode_str(j);
    jwt_free(j);
    return t;
}

static auth_err_t verify(const char *t, auth_identity_t **id) {
    return auth_verify(t, strlen(t), NOW, 0, id);
}

static void test_keys(void) {
    char err[200];
    CHECK("one key", auth_set_keys(KEY, err, sizeof err) == 1);
    CHECK("two keys with kids", auth_set_keys("a:" KEY ",b:" KEY, err, sizeof err) == 2);
    CHECK("short secret refused", auth_set_keys("short", err, sizeof err) == -1 &&
                                      strstr(err, "32 to 512 bytes"));
    CHECK("empty kid refused", auth_set_keys(":" KEY, err, sizeof err) == -1);
    const char *path = "test_auth_keys.txt";
    FILE *f = fopen(path, "w");
    fprintf(f, "# rotation\nold:%s\n\n new:%s \n", KEY, KEY "X");
    fclose(f);
    char spec[64];
    snprintf(spec, sizeof spec, "@%s", path);
    CHECK("keys from a file, comments and blanks skipped", auth_set_keys(spec, err, sizeof err) == 2);
    remove(path);
    CHECK("missing file", auth_set_keys("@/nonexistent/x", err, sizeof err) == -1);
    CHECK("a failed load leaves no keys", auth_nkeys() == 0);
}

static void test_verify(void) {
    char err[200];
    auth_set_keys(KEY, err, sizeof err);
    auth_identity_t *id = NULL;
    char *t = make("{\"sub\":\"alice\",\"tenant\":\"acme\",\"exp\":1800000100,"
                   "\"join\":[\"room:*\"],\"meta\":{\"role\":\"admin\"}}",
                   KEY, JWT_ALG_HS256, NULL);
    CHECK("a good token verifies", verify(t, &id) == AUTH_OK && id);
    CHECK("sub, tenant, exp, meta", id && strcmp(id->user, "alice") == 0 &&
                                        strcmp(id->tenant, "acme") == 0 && id->exp == 1800000100 &&
                                        json_is_object(id->meta) && id->verified);
    auth_identity_free(id);
    CHECK("expired after exp", auth_verify(t, strlen(t), NOW + 100, 0, &id) == AUTH_EEXPIRED);
    CHECK("leeway tolerates skew", auth_verify(t, strlen(t), NOW + 100, 5, &id) == AUTH_OK);
    auth_identity_free(id);
    free(t);

    t = make("{\"sub\":\"a\",\"nbf\":1800000100}", KEY, JWT_ALG_HS256, NULL);
    CHECK("not before nbf", verify(t, &id) == AUTH_ENOTYET && !id);
    free(t);
    t = make("{\"sub\":\"a\"}", "another key of at least 32 bytes!!", JWT_ALG_HS256, NULL);
    CHECK("another key's signature", verify(t, &id) == AUTH_ESIGNATURE);
    free(t);
    t = make("{\"sub\":\"a\"}", NULL, JWT_ALG_NONE, NULL);
    CHECK("alg none refused", t && verify(t, &id) != AUTH_OK && !id);
    free(t);
    t = make("{\"sub\":\"a\"}", KEY, JWT_ALG_HS512, NULL);
    CHECK("HS512", verify(t, &id) == AUTH_OK);
    auth_identity_free(id);
    free(t);

    const char *bad_claims[] = {
        "{\"name\":\"no sub\"}",
        "{\"sub\":\"\"}",
        "{\"sub\":42}",
        "{\"sub\":\"a\\u0001b\"}",
        "{\"sub\":\"a\",\"tenant\":\"a b\"}",
        "{\"sub\":\"a\",\"tenant\":\"\"}",
        "{\"sub\":\"a\",\"exp\":\"tomorrow\"}",
        "{\"sub\":\"a\",\"join\":\"room:*\"}",
        "{\"sub\":\"a\",\"join\":[1]}",
        "{\"sub\":\"a\",\"publish\":[\"\"]}",
        "{\"sub\":\"a\",\"meta\":[]}",
    };
    for (size_t i = 0; i < sizeof bad_claims / sizeof *bad_claims; i++) {
        t = make(bad_claims[i], KEY, JWT_ALG_HS256, NULL);
        char name[128];
        snprintf(name, sizeof name, "invalid claims refused: %s", bad_claims[i]);
        CHECK(name, verify(t, &id) == AUTH_ECLAIMS && !id);
        free(t);
    }
    CHECK("not a JWT", verify("abc", &id) == AUTH_EMALFORMED);
    CHECK("bad characters", verify("a.b.c d", &id) == AUTH_EMALFORMED);
    CHECK("empty", auth_verify("", 0, NOW, 0, &id) == AUTH_EMALFORMED);

    /* Rotation: the kid picks the key; without one, every key is tried. */
    auth_set_keys("old:" KEY ",new:" KEY "NEW", err, sizeof err);
    t = make("{\"sub\":\"a\"}", KEY "NEW", JWT_ALG_HS256, "new");
    CHECK("kid new", verify(t, &id) == AUTH_OK);
    auth_identity_free(id);
    free(t);
    t = make("{\"sub\":\"a\"}", KEY "NEW", JWT_ALG_HS256, "old");
    CHECK("kid naming the wrong key", verify(t, &id) == AUTH_ESIGNATURE);
    free(t);
    t = make("{\"sub\":\"a\"}", KEY, JWT_ALG_HS256, NULL);
    CHECK("no kid: any key", verify(t, &id) == AUTH_OK);
    auth_identity_free(id);
    free(t);
    auth_clear_keys();
}

static auth_identity_t *with(const char *claims) {
    char err[200];
    auth_set_keys(KEY, err, sizeof err);
    char *t = make(claims, KEY, JWT_ALG_HS256, NULL);
    auth_identity_t *id = NULL;
    verify(t, &id);
    free(t);
    return id;
}

static void test_permissions(void) {
    auth_identity_t *id = with("{\"sub\":\"al*\",\"join\":[\"room:*\",\"user:{sub}\",\"a*b\"],"
                               "\"publish\":[\"room:1\"]}");
    CHECK("prefix pattern", auth_may_join(id, "room:1") && auth_may_join(id, "room:"));
    CHECK("prefix needs its prefix", !auth_may_join(id, "room") && !auth_may_join(id, "roo"));
    CHECK("{sub}", auth_may_join(id, "user:al*"));
    CHECK("{sub} is literal", !auth_may_join(id, "user:alice") && !auth_may_join(id, "user:al"));
    CHECK("'*' inside a pattern is literal", auth_may_join(id, "a*b") && !auth_may_join(id, "axb"));
    CHECK("publish patterns", auth_may_publish(id, "room:1") && !auth_may_publish(id, "room:2"));
    CHECK("granted", auth_publish_granted(id, "room:1") && !auth_publish_granted(id, "room:2"));
    auth_identity_free(id);
    id = with("{\"sub\":\"bob\",\"join\":[\"room:*\"]}");
    CHECK("publish defaults to join", auth_may_publish(id, "room:9") && !auth_may_publish(id, "x"));
    CHECK("nothing granted explicitly", !auth_publish_granted(id, "room:9"));
    auth_identity_free(id);
    id = with("{\"sub\":\"bob\"}");
    CHECK("no patterns: any topic", auth_may_join(id, "anything") && auth_may_publish(id, "x"));
    auth_identity_free(id);
    CHECK("anonymous: any topic", auth_may_join(NULL, "x") && auth_may_publish(NULL, "x"));
    auth_identity_t *anon = auth_anonymous("guest");
    CHECK("anonymous identity", anon && !anon->verified && strcmp(anon->user, "guest") == 0);
    auth_identity_free(anon);
    auth_clear_keys();
}

static void test_tenants(void) {
    auth_identity_t *id = with("{\"sub\":\"a\",\"tenant\":\"acme\"}");
    char key[128];
    int n = auth_topic_key(id, "room:1", 6, key, sizeof key);
    CHECK("tenant key", n == 12 && memcmp(key, "\x1f" "acme\x1f" "room:1", 13) == 0);
    CHECK("wire name", strcmp(auth_topic_wire(key), "room:1") == 0);
    CHECK("default tenant: the topic itself",
          auth_topic_key(NULL, "room:1", 6, key, sizeof key) == 6 && strcmp(key, "room:1") == 0);
    CHECK("wire of a default topic", strcmp(auth_topic_wire("room:1"), "room:1") == 0);
    CHECK("too small a buffer", auth_topic_key(id, "room:1", 6, key, 10) == -1);
    CHECK("control characters are invalid", !auth_topic_valid("\x1f" "acme", 5) &&
                                                !auth_topic_valid("a\nb", 3) &&
                                                auth_topic_valid("room:ü", 7));
    auth_identity_free(id);
    auth_clear_keys();
}

static void test_expiry(void) {
    enum { N = 200 };
    static auth_identity_t ids[N];
    static int sessions[N];
    memset(ids, 0, sizeof ids);
    srand(7);
    for (int i = 0; i < N; i++) {
        ids[i].exp = 1000 + rand() % 500;
        auth_expiry_add(&ids[i], (struct session *)&sessions[i]);
    }
    for (int i = 0; i < N; i += 3) /* closed before expiring */
        auth_expiry_remove(&ids[i]);
    int popped = 0, ordered = 1;
    double last = 0;
    struct session *s;
    while ((s = auth_expiry_pop(2000))) {
        int i = (int)((int *)s - sessions);
        ordered &= ids[i].exp >= last && i % 3 != 0;
        last = ids[i].exp;
        popped++;
    }
    CHECK("expiry pops in exp order, removed ones never", ordered && popped == N - (N + 2) / 3);
    ids[0].exp = 50;
    auth_expiry_add(&ids[0], (struct session *)&sessions[0]);
    CHECK("nothing before its time", auth_expiry_pop(49) == NULL);
    CHECK("then it pops", auth_expiry_pop(50) == (struct session *)&sessions[0]);
}

static void test_user_counts(void) {
    CHECK("first", auth_user_count(NULL, "alice", +1) == 1);
    CHECK("second", auth_user_count(NULL, "alice", +1) == 2);
    CHECK("another tenant's alice", auth_user_count("t", "alice", +1) == 1);
    CHECK("read", auth_user_count(NULL, "alice", 0) == 2);
    auth_user_count(NULL, "alice", -1);
    CHECK("down", auth_user_count(NULL, "alice", -1) == 0);
    CHECK("gone", auth_user_count(NULL, "alice", 0) == 0);
    auth_user_count("t", "alice", -1);
}

static void test_bearer(void) {
    char out[64];
    CHECK("standard base64, no padding", auth_decode_bearer("YS5iLmM_", 8, out, sizeof out) == 6 &&
                                             memcmp(out, "a.b.c?", 6) == 0);
    CHECK("url alphabet too", auth_decode_bearer("YS5iLmM/", 8, out, sizeof out) == 6);
    CHECK("padding", auth_decode_bearer("YWI=", 4, out, sizeof out) == 2 && strcmp(out, "ab") == 0);
    CHECK("bad character", auth_decode_bearer("YW*I", 4, out, sizeof out) == -1);
    CHECK("too long for the buffer", auth_decode_bearer("YWJjZGVm", 8, out, 4) == -1);
    CHECK("NUL bytes are no token", auth_decode_bearer("AAAA", 4, out, sizeof out) == -1 &&
                                        auth_decode_bearer("YQBi", 4, out, sizeof out) == -1);
    CHECK("nor is nothing", auth_decode_bearer("A", 1, out, sizeof out) == -1 &&
                               auth_decode_bearer("==", 2, out, sizeof out) == -1);
}

int main(void) {
    test_keys();
    test_verify();
    test_permissions();
    test_tenants();
    test_expiry();
    test_user_counts();
    test_bearer();
    return TAP_END();
}
