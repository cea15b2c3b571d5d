/* token.c -- connection tokens for servers run with --auth-keys; see token.h. */
#include "token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

/* base64url without padding (RFC 7515 section 2) of len bytes into out;
 * returns the characters written, or -1 if out (size bytes) is too small. */
static int b64url(char *out, size_t size, const unsigned char *in, size_t len) {
    size_t need = 4 * ((len + 2) / 3) + 1;
    if (size < need)
        return -1;
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return n;
}

int token_key_parse(token_key_t *k, const char *spec) {
    memset(k, 0, sizeof *k);
    const char *colon = strchr(spec, ':');
    const char *secret = colon ? colon + 1 : spec;
    size_t kl = colon ? (size_t)(colon - spec) : 0;
    size_t sl = strlen(secret);
    if (sl == 0 || sl >= sizeof k->secret || kl >= sizeof k->kid)
        return -1;
    for (size_t i = 0; i < kl; i++) /* the kid goes into the header's JSON as it is */
        if (spec[i] == '"' || spec[i] == '\\' || (unsigned char)spec[i] < 0x20)
            return -1;
    memcpy(k->kid, spec, kl);
    memcpy(k->secret, secret, sl);
    k->secret_len = sl;
    return 0;
}

int token_mint(char *out, size_t size, const token_key_t *k, const char *sub, const char *tenant,
               long exp) {
    char header[128], claims[384], tenant_claim[160] = "";
    int hl = k->kid[0] ? snprintf(header, sizeof header, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", k->kid)
                       : snprintf(header, sizeof header, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
    if (tenant && *tenant)
        snprintf(tenant_claim, sizeof tenant_claim, ",\"tenant\":\"%s\"", tenant);
    int cl = snprintf(claims, sizeof claims, "{\"sub\":\"%s\"%s,\"exp\":%ld}", sub, tenant_claim, exp);
    if (hl < 0 || (size_t)hl >= sizeof header || cl < 0 || (size_t)cl >= sizeof claims)
        return -1;
    int a = b64url(out, size, (const unsigned char *)header, (size_t)hl);
    if (a < 0 || (size_t)a + 1 >= size)
        return -1;
    out[a] = '.';
    int b = b64url(out + a + 1, size - (size_t)a - 1, (const unsigned char *)claims, (size_t)cl);
    if (b < 0)
        return -1;
    size_t signed_len = (size_t)a + 1 + (size_t)b;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)out, signed_len,
              mac, &ml) ||
        signed_len + 1 >= size)
        return -1;
    out[signed_len] = '.';
    int c = b64url(out + signed_len + 1, size - signed_len - 1, mac, ml);
    return c < 0 ? -1 : (int)(signed_len + 1 + (size_t)c);
}
