/* test_head.c -- unit tests of the request head rewrite for phoenix.js'
 * authToken (server/src/head.c): the entry is taken out and the other
 * protocols kept in order, whatever the header's spacing and case; a head
 * without one is left alone; and a head that would not fit the output,
 * however its entries are packed, is refused without writing past it. */
#include <stdlib.h>
#include <string.h>

#include "head.h"

#include "tap.h"

#define REQ "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"

/* head_take_bearer over `head` into a buffer of exactly cap bytes (so that
 * ASan sees a write past it), with the result as a string in out. */
static long take(const char *head, size_t cap, char *out, char *bearer) {
    char *buf = malloc(cap ? cap : 1);
    const char *b;
    size_t bl;
    long n = head_take_bearer(head, strlen(head), buf, cap, &b, &bl);
    if (n > 0) {
        memcpy(out, buf, (size_t)n);
        out[n] = '\0';
        memcpy(bearer, b, bl);
        bearer[bl] = '\0';
    }
    free(buf);
    return n;
}

int main(void) {
    char out[16384], bearer[16384];

    long n = take(REQ "Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.dG9rZW4\r\n"
                      "Upgrade: websocket\r\n\r\n",
                  2048, out, bearer);
    CHECK("phoenix.js' header: the entry is taken out, the rest of the head kept",
          n > 0 && strcmp(out, REQ "Sec-WebSocket-Protocol: phoenix\r\nUpgrade: websocket\r\n\r\n") == 0);
    CHECK("the token part of the entry is handed back", strcmp(bearer, "dG9rZW4") == 0);

    n = take(REQ "sec-websocket-protocol:base64url.bearer.phx.QQ,a,\tb ,c\r\n\r\n", 2048, out, bearer);
    CHECK("any case and spacing: the others kept in order, \", \" between them",
          n > 0 && strcmp(out, REQ "sec-websocket-protocol: a, b, c\r\n\r\n") == 0 &&
              strcmp(bearer, "QQ") == 0);

    n = take(REQ "Sec-WebSocket-Protocol: base64url.bearer.phx.QQ, base64url.bearer.phx.Qg\r\n\r\n",
             2048, out, bearer);
    CHECK("every authToken entry is dropped, the first one is the token",
          n > 0 && strcmp(out, REQ "Sec-WebSocket-Protocol:\r\n\r\n") == 0 && strcmp(bearer, "QQ") == 0);

    CHECK("no authToken entry: nothing written",
          take(REQ "Sec-WebSocket-Protocol: phoenix\r\n\r\n", 2048, out, bearer) == 0);
    CHECK("the bare prefix is not an entry",
          take(REQ "Sec-WebSocket-Protocol: base64url.bearer.phx.\r\n\r\n", 2048, out, bearer) == 0);
    CHECK("no protocol header: nothing written", take(REQ "\r\n", 2048, out, bearer) == 0);
    CHECK("the request line is never a header",
          take("Sec-WebSocket-Protocol: base64url.bearer.phx.QQ\r\n\r\n", 2048, out, bearer) == 0);

    /* One-letter entries packed without spaces grow by half once ", "
     * separates them: 6,000 bytes of them need 9,000 in the output. */
    size_t pos = 0;
    static char big[8192];
    pos += (size_t)sprintf(big, REQ "Sec-WebSocket-Protocol: base64url.bearer.phx.QQ");
    while (pos < 6000)
        pos += (size_t)sprintf(big + pos, ",a");
    strcpy(big + pos, "\r\n\r\n");
    CHECK("packed entries that outgrow the output: refused, nothing written past it",
          take(big, 2048, out, bearer) == -1 && take(big, 8192, out, bearer) == -1);
    n = take(big, 16384, out, bearer);
    CHECK("with room enough the same head is rewritten whole",
          n > (long)strlen(big) && strstr(out, "Sec-WebSocket-Protocol: a, a, a") &&
              strcmp(out + n - 7, ", a\r\n\r\n") == 0);

    const char *h = REQ "Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.QQ\r\n\r\n";
    size_t need = strlen(h) - strlen(", base64url.bearer.phx.QQ");
    CHECK("an output of exactly the rewritten length is enough", take(h, need, out, bearer) == (long)need);
    CHECK("one byte less is refused", take(h, need - 1, out, bearer) == -1);
    CHECK("an empty output is refused", take(h, 0, out, bearer) == -1);

    size_t vs, ve;
    const char *f = REQ "X-A: 1\r\nX-AB:2\r\n\r\n";
    CHECK("head_find: the named header's value, not one it prefixes",
          head_find(f, strlen(f), "X-A", &vs, &ve) && strncmp(f + vs, " 1", ve - vs) == 0 &&
              head_find(f, strlen(f), "x-ab", &vs, &ve) && strncmp(f + vs, "2", ve - vs) == 0);
    CHECK("head_find: a header name cut off by the end is not found",
          !head_find(REQ "X-A", strlen(REQ "X-A"), "X-A", &vs, &ve));

    /* head_bearer, as the gate uses it on a header lws has read. */
    static const char v[] = "a\0b,\tbase64url.bearer.phx.dG9r\0ZW4 base64url.bearer.phx.Mg";
    size_t bl;
    const char *b = head_bearer(v, sizeof v - 1, &bl);
    CHECK("head_bearer: the first entry, past a NUL byte and a tab, NUL kept inside it",
          b == v + 26 && bl == 8 && memcmp(b, "dG9r\0ZW4", 8) == 0);
    CHECK("head_bearer: none in \"phoenix\", nor in the bare prefix",
          !head_bearer("phoenix", 7, &bl) && bl == 0 &&
              !head_bearer(HEAD_BEARER_PREFIX, strlen(HEAD_BEARER_PREFIX), &bl));
    CHECK("head_bearer: an empty value has none", !head_bearer("", 0, &bl));
    return TAP_END();
}
