/* test_penalty.c -- unit tests of the reconnect penalties
 * (server/src/penalty.c): a ban's length and how it doubles up to the
 * longest, when an identity is forgotten, bans adopted from other nodes,
 * which identities are kept apart (users by tenant and sub, IPv4
 * addresses, IPv6 /64s), the bounded table,
 * the peer address of a real socket, and the switches that turn penalties
 * off. Times are passed in, so nothing here waits. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "penalty.h"

#include "tap.h"

/* The key of an IPv4 or IPv6 address in text. */
static penalty_key_t ip(const char *text) {
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    int six = strchr(text, ':') != NULL;
    inet_pton(six ? AF_INET6 : AF_INET, text, six ? (void *)&a6.sin6_addr : (void *)&a4.sin_addr);
    penalty_key_t k;
    penalty_key_addr(&k, six ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4);
    return k;
}

static penalty_key_t user(const char *tenant, const char *sub) {
    penalty_key_t k;
    penalty_key_user(&k, tenant, sub);
    return k;
}

static int same(penalty_key_t a, penalty_key_t b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

/* The bans of n offences of k, each at the end of the previous ban (a
 * flooder reconnecting as soon as it may), from `t`; returns the time after
 * the last ban. */
static double offend(const penalty_key_t *k, double t, int n, double *bans) {
    for (int i = 0; i < n; i++) {
        bans[i] = penalty_record(k, t, NULL);
        t += bans[i];
    }
    return t;
}

/* A TCP connection to ourselves on 127.0.0.1: *server gets the accepted
 * end, whose peer is the connecting one. 0, or -1. */
static int loopback_pair(int *client, int *server) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    *client = socket(AF_INET, SOCK_STREAM, 0);
    int rc = l >= 0 && *client >= 0 && !bind(l, (struct sockaddr *)&sa, sizeof sa) &&
                     !listen(l, 1) && !getsockname(l, (struct sockaddr *)&sa, &len) &&
                     !connect(*client, (struct sockaddr *)&sa, sizeof sa) &&
                     (*server = accept(l, NULL, NULL)) >= 0
                 ? 0
                 : -1;
    if (l >= 0)
        close(l);
    return rc;
}

int main(void) {
    double t = 1000.0, bans[12];
    penalty_key_t a = ip("192.0.2.1"), b = ip("192.0.2.2");

    /* ---- the policy ---- */
    CHECK("a longest ban shorter than the first is refused", penalty_configure(10, 5, 1, 8) == -1);
    CHECK("2 s doubling to 300 s: accepted", penalty_configure(2, 300, 1, 8) == 0);
    CHECK("nobody is banned at first", penalty_remaining(&a, t) == 0 && penalty_count() == 0);

    unsigned n = 0;
    CHECK("a first offence bans for 2 s", penalty_record(&a, t, &n) == 2 && n == 1);
    CHECK("banned right after it", penalty_remaining(&a, t) == 2);
    CHECK("the time left goes down", penalty_remaining(&a, t + 0.5) == 1.5);
    CHECK("another address is not banned", penalty_remaining(&b, t) == 0);
    CHECK("the ban ends after 2 s", penalty_remaining(&a, t + 2) == 0);
    CHECK("but the offence is remembered", penalty_count() == 1);
    CHECK("as one offence (probation)", penalty_offences(&a, t + 2) == 1);
    CHECK("another address has none", penalty_offences(&b, t + 2) == 0);

    /* A flooder coming back as soon as each ban ends: 4, 8, ... 256, then
     * the longest, 300, and the longest again. */
    offend(&a, t + 2, 10, bans);
    const double want[10] = {4, 8, 16, 32, 64, 128, 256, 300, 300, 300};
    CHECK("each further offence doubles the ban, up to 300 s",
          memcmp(bans, want, sizeof want) == 0);

    /* ---- forgetting: 2 x 300 s after the last offence ---- */
    CHECK("configure empties the table", penalty_configure(2, 300, 1, 8) == 0 &&
                                             penalty_count() == 0);
    t = offend(&a, t, 9, bans); /* ends at the longest ban's end */
    CHECK("the ninth offence gets the longest ban", bans[8] == 300);
    double last = t - 300;
    CHECK("an offence 300 s after the longest ban ended is still remembered",
          penalty_record(&a, last + 300 + 300 - 0.001, &n) == 300 && n == 10);
    last = last + 600 - 0.001;
    CHECK("not forgotten just before 600 s",
          penalty_remaining(&a, last + 599.9) == 0 && penalty_count() == 1);
    CHECK("forgotten 600 s after the last offence (lazily, on a lookup)",
          penalty_remaining(&b, last + 600.01) == 0 && penalty_count() == 0);
    CHECK("and an offence then is a first offence again",
          penalty_record(&a, last + 601, &n) == 2 && n == 1);

    /* Two identities offending at different times are forgotten in turn. */
    penalty_configure(1, 10, 1, 8);
    penalty_record(&a, 0, NULL);
    penalty_record(&b, 5, NULL);
    penalty_remaining(&a, 21);
    CHECK("the older offence is forgotten first", penalty_count() == 1);
    CHECK("the newer one is still counted: its next ban is doubled",
          penalty_record(&b, 24, &n) == 2 && n == 2);

    /* ---- bans other nodes imposed (penalty_adopt) ---- */
    penalty_configure(2, 300, 1, 8);
    CHECK("an adopted ban bans here for its time",
          penalty_adopt(&a, 10, 3, 8) == 8 && penalty_remaining(&a, 10) == 8);
    CHECK("with its offences, without one more", penalty_offences(&a, 10) == 3);
    CHECK("the same ban again bans no longer",
          penalty_adopt(&a, 10, 3, 8) == 8 && penalty_remaining(&a, 10) == 8 &&
              penalty_offences(&a, 10) == 3);
    CHECK("a shorter one or fewer offences change nothing",
          penalty_adopt(&a, 11, 1, 2) == 7 && penalty_offences(&a, 11) == 3);
    CHECK("an offence here then doubles from the adopted count",
          penalty_record(&a, 20, &n) == 16 && n == 4);
    CHECK("an adopted ban is at most --abuse-ban-max",
          penalty_adopt(&b, 0, 1, 1e9) == 300 && penalty_remaining(&b, 0) == 300);
    penalty_key_t d = ip("192.0.2.3");
    CHECK("a negative one bans nobody but counts the offences",
          penalty_adopt(&d, 0, 2, -5) == 0 && penalty_remaining(&d, 0) == 0 &&
              penalty_offences(&d, 0) == 2);
    penalty_key_t odd = a;
    odd.kind = 9;
    CHECK("a key of an unknown kind is refused", penalty_adopt(&odd, 0, 1, 5) == 0 &&
                                                     penalty_remaining(&odd, 0) == 0);
    penalty_configure(0, 300, 1, 8);
    CHECK("--abuse-ban 0: nothing is adopted",
          penalty_adopt(&a, 0, 1, 5) == 0 && penalty_count() == 0);
    penalty_configure(2, 300, 0, 8);
    penalty_key_t carol = user(NULL, "carol");
    CHECK("without --abuse-ban-addresses an address ban is not adopted",
          penalty_adopt(&d, 0, 1, 5) == 0 && penalty_count() == 0);
    CHECK("a user's ban still is", penalty_adopt(&carol, 0, 1, 5) == 5 && penalty_count() == 1);

    /* ---- identities ---- */
    CHECK("a user's key is the same every time", same(user(NULL, "alice"), user(NULL, "alice")));
    CHECK("users are told apart", !same(user(NULL, "alice"), user(NULL, "bob")));
    CHECK("so are tenants", !same(user(NULL, "alice"), user("acme", "alice")) &&
                                !same(user("acme", "alice"), user("globex", "alice")));
    CHECK("tenant and sub do not run together",
          !same(user("ab", "c"), user("a", "bc")) && !same(user(NULL, "x"), user("x", "")));
    CHECK("an IPv4-mapped IPv6 address is its IPv4 address", same(ip("::ffff:192.0.2.1"), a));
    CHECK("IPv6 addresses in one /64 are one identity",
          same(ip("2001:db8:1:2::1"), ip("2001:db8:1:2:ffff:ffff:ffff:ffff")));
    CHECK("another /64 is another",
          !same(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1")));
    CHECK("an IPv4 address is not an IPv6 one", !same(ip("32.1.13.184"), ip("2001:db8::")));
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    penalty_key_t k;
    CHECK("a Unix socket has no address key", penalty_key_addr(&k, (struct sockaddr *)&un) == -1);

    penalty_configure(2, 300, 1, 8);
    penalty_key_t alice = user("acme", "alice");
    penalty_record(&alice, 0, NULL);
    CHECK("a banned user: that user is banned", penalty_remaining(&alice, 1) == 1);
    CHECK("the same sub in another tenant is not",
          penalty_remaining((penalty_key_t[]){user(NULL, "alice")}, 1) == 0);

    /* penalty_identify: a token's user, else the peer address. */
    int c = -1, s = -1;
    char label[128];
    auth_identity_t verified = {.user = "alice", .tenant = "acme", .verified = 1};
    auth_identity_t claimed = {.user = "alice"}; /* the "user" parameter: anyone may say it */
    CHECK("a verified identity is its user",
          penalty_identify(&k, &verified, -1, label, sizeof label) == 0 && same(k, alice) &&
              strcmp(label, "user:acme/alice") == 0);
    CHECK("loopback connection", loopback_pair(&c, &s) == 0);
    CHECK("an unverified one is its address",
          penalty_identify(&k, &claimed, s, label, sizeof label) == 0 &&
              same(k, ip("127.0.0.1")) && strcmp(label, "127.0.0.1") == 0);
    CHECK("no identity at all: the address too",
          penalty_identify(&k, NULL, s, label, sizeof label) == 0 && same(k, ip("127.0.0.1")));
    int sv[2];
    CHECK("a socket that is not IP has no key",
          socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 &&
              penalty_identify(&k, NULL, sv[0], label, sizeof label) == -1);
    close(sv[0]);
    close(sv[1]);
    penalty_configure(2, 300, 0, 8);
    CHECK("not by address: no key without a token",
          penalty_identify(&k, NULL, s, label, sizeof label) == -1);
    CHECK("not by address: a token's user still has one",
          penalty_identify(&k, &verified, s, label, sizeof label) == 0);
    penalty_configure(0, 300, 1, 8);
    CHECK("--abuse-ban 0: nobody has a key",
          penalty_identify(&k, &verified, s, label, sizeof label) == -1 &&
              penalty_identify(&k, NULL, s, label, sizeof label) == -1);
    CHECK("--abuse-ban 0: no ban is recorded",
          penalty_record(&a, 0, NULL) == 0 && penalty_remaining(&a, 0) == 0 &&
              penalty_count() == 0);
    close(c);
    close(s);

    /* ---- the bounded table ---- */
    penalty_configure(2, 300, 1, 3);
    penalty_key_t keys[4] = {ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.4")};
    for (int i = 0; i < 4; i++)
        penalty_record(&keys[i], 100 + i * 0.1, NULL);
    CHECK("a full table holds its capacity", penalty_count() == 3);
    CHECK("the oldest offence made room for the new one",
          penalty_remaining(&keys[0], 100.5) == 0 && penalty_remaining(&keys[1], 100.5) > 0 &&
              penalty_remaining(&keys[3], 100.5) > 0);
    penalty_record(&keys[1], 101, NULL);
    penalty_record(&keys[0], 101.1, NULL);
    CHECK("an offence makes an entry the newest: the next one out is another",
          penalty_remaining(&keys[2], 101.2) == 0 && penalty_remaining(&keys[1], 101.2) > 0);

    penalty_configure(2, 300, 1, PENALTY_MAX_ENTRIES);
    for (uint32_t i = 0; i < PENALTY_MAX_ENTRIES + 1000; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        penalty_key_addr(&k, (struct sockaddr *)&sa);
        penalty_record(&k, 200 + i * 1e-6, NULL);
    }
    CHECK("a flood of identities stops at PENALTY_MAX_ENTRIES",
          penalty_count() == PENALTY_MAX_ENTRIES);
    penalty_clear();
    CHECK("penalty_clear frees them all", penalty_count() == 0);
    return TAP_END();
}
