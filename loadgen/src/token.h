/* token.h -- signed tokens (JWT, HS256) for the loadgen's connections, so
 * that it can load a server run with --auth required: each connection gets
 * a token of its own user (sub), as an application's backend would mint
 * them, passed as the `token` connect parameter. The signature is OpenSSL's
 * HMAC-SHA256; the server verifies with libjwt. */
#ifndef LOADGEN_TOKEN_H
#define LOADGEN_TOKEN_H

#include <stddef.h>

typedef struct token_key {
    char kid[64];      /* "" when the key has no id */
    char secret[513]; /* parley takes 32 to 512 bytes */
    size_t secret_len;
} token_key_t;

/* Parses "[kid:]secret", the syntax of parley's --auth-keys for one key.
 * 0, or -1 if the secret is empty or either part is too long. */
int token_key_parse(token_key_t *k, const char *spec);

/* Writes the token of user `sub` (and `tenant`, when not NULL or empty),
 * expiring at `exp` (Unix seconds), signed with k, into out. sub and
 * tenant are written into the claims as they are: plain names only.
 * Returns its length, or -1 if out (size bytes) is too small. */
int token_mint(char *out, size_t size, const token_key_t *k, const char *sub, const char *tenant,
               long exp);

#endif
