/* token.c -- fuzz target: what a client's token can do to server/src/auth.c.
 * The first byte picks what the rest is:
 *   0  a token, verified as it arrives (connect parameter);
 *   1  a phoenix.js authToken entry (base64 of a token), decoded, then verified;
 *   2  the claims of a token (JSON), signed here with the server's key so
 *      that verification reaches the claim checks a forged token never does.
 * Whatever verifies must yield a sane identity: a sub, permissions that can
 * be asked about any topic, and tenant-qualified names that read back as the
 * client's topic. */
#include <jwt.h>
#include <string.h>

#include "auth.h"
#include "fuzz.h"

#define KEY "fuzz-key-fuzz-key-fuzz-key-fuzz!"
#define NOW 1800000000.0

static void check_identity(auth_identity_t *id) {
    FUZZ_CHECK(id->user && *id->user && id->verified);
    static const char *const topics[] = {"room:1", "user:", "", "*", "{sub}"};
    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++) {
        auth_may_join(id, topics[i]);
        auth_may_publish(id, topics[i]);
        auth_publish_granted(id, topics[i]);
    }
    char topic[300];
    snprintf(topic, sizeof topic, "user:%s", id->user);
    auth_may_join(id, topic);
    char key[400];
    int n = auth_topic_key(id, topic, strlen(topic), key, sizeof key);
    FUZZ_CHECK(n < 0 || strcmp(auth_topic_wire(key), topic) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int keyed;
    if (!keyed) {
        char err[128];
        FUZZ_CHECK(auth_set_keys(KEY, err, sizeof err) == 1);
        keyed = 1;
    }
    if (size < 1 || size > AUTH_TOKEN_MAX + 1)
        return 0;
    int mode = data[0] % 3;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    auth_identity_t *id = NULL;
    auth_err_t rc;
    if (mode == 0) {
        rc = auth_verify(in, len, NOW, 0, &id);
    } else if (mode == 1) {
        char token[AUTH_TOKEN_MAX + 1];
        int tl = auth_decode_bearer(in, len, token, sizeof token);
        if (tl < 0)
            return 0;
        FUZZ_CHECK(tl > 0 && (size_t)tl < sizeof token && strlen(token) == (size_t)tl);
        rc = auth_verify(token, (size_t)tl, NOW, 0, &id);
    } else {
        char claims[AUTH_TOKEN_MAX + 1];
        memcpy(claims, in, len);
        claims[len] = '\0';
        jwt_t *j = NULL;
        char *token = NULL;
        if (jwt_new(&j) == 0 && jwt_add_grants_json(j, claims) == 0 &&
            jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)KEY, (int)strlen(KEY)) == 0)
            token = jwt_encode_str(j);
        jwt_free(j);
        if (!token)
            return 0;
        rc = auth_verify(token, strlen(token), NOW, 0, &id);
        free(token);
    }
    FUZZ_CHECK((rc == AUTH_OK) == (id != NULL));
    FUZZ_CHECK(*auth_err_text(rc));
    if (id)
        check_identity(id);
    auth_identity_free(id);
    return 0;
}
