/* penalty.c -- reconnect penalties for clients closed for abuse; see
 * penalty.h. A uthash table finds an identity's entry; a list ordered by last
 * offence (oldest first) says which entries to forget, and which to drop when
 * the table is full. */
#include "penalty.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <uthash.h>
#include <utlist.h>

_Static_assert(sizeof(penalty_key_t) == 17, "penalty_key_t is hashed as bytes: no padding");

typedef struct entry {
    penalty_key_t key;
    unsigned offences;         /* remembered, the last one included */
    double last;               /* time of the last offence */
    double until;              /* end of the ban */
    struct entry *prev, *next; /* utlist DL, by last offence, oldest first */
    UT_hash_handle hh;
} entry_t;

static entry_t *table; /* uthash, by key */
static entry_t *order; /* utlist DL, oldest last offence first */
static double ban_base, ban_max;
static int ban_by_address;
static size_t max_entries;

static void drop(entry_t *e) {
    HASH_DEL(table, e);
    DL_DELETE(order, e);
    free(e);
}

void penalty_clear(void) {
    while (order)
        drop(order);
}

int penalty_configure(long ban_s, long max_s, int by_address, size_t capacity) {
    penalty_clear();
    if (ban_s < 0 || (ban_s > 0 && (max_s < ban_s || capacity < 1)))
        return -1;
    ban_base = (double)ban_s;
    ban_max = (double)max_s;
    ban_by_address = by_address;
    max_entries = capacity;
    return 0;
}

double penalty_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

size_t penalty_count(void) {
    return HASH_COUNT(table);
}

/* ---- keys ---------------------------------------------------------------- */

int penalty_key_user(penalty_key_t *k, const char *tenant, const char *user) {
    /* Tenants are [A-Za-z0-9_.-]{1,64}: "" (the default tenant) and the NUL
     * after it keep every (tenant, sub) pair apart. */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(c, tenant ? tenant : "", tenant ? strlen(tenant) + 1 : 1) &&
             EVP_DigestUpdate(c, user, strlen(user)) && EVP_DigestFinal_ex(c, md, &n);
    EVP_MD_CTX_free(c);
    if (!ok || n < sizeof k->id)
        return -1;
    memset(k, 0, sizeof *k);
    k->kind = PENALTY_USER;
    memcpy(k->id, md, sizeof k->id);
    return 0;
}

int penalty_key_addr(penalty_key_t *k, const struct sockaddr *sa) {
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(k, 0, sizeof *k);
    if (sa->sa_family == AF_INET) {
        k->kind = PENALTY_ADDR4;
        memcpy(k->id, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family != AF_INET6)
        return -1;
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    if (memcmp(a, v4mapped, sizeof v4mapped) == 0) {
        k->kind = PENALTY_ADDR4;
        memcpy(k->id, a + 12, 4);
    } else {
        k->kind = PENALTY_ADDR6;
        memcpy(k->id, a, 8); /* the /64 */
    }
    return 0;
}

int penalty_identify(penalty_key_t *k, const auth_identity_t *id, int fd, char *label,
                     size_t size) {
    if (ban_base <= 0)
        return -1;
    if (id && id->verified) {
        if (penalty_key_user(k, id->tenant, id->user))
            return -1;
        snprintf(label, size, "user:%s%s%s", id->tenant ? id->tenant : "", id->tenant ? "/" : "",
                 id->user);
        return 0;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (!ban_by_address || fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) ||
        penalty_key_addr(k, (const struct sockaddr *)&ss))
        return -1;
    char text[INET6_ADDRSTRLEN];
    if (k->kind == PENALTY_ADDR4) {
        inet_ntop(AF_INET, k->id, text, sizeof text);
        snprintf(label, size, "%s", text);
    } else {
        uint8_t prefix[16] = {0};
        memcpy(prefix, k->id, 8);
        inet_ntop(AF_INET6, prefix, text, sizeof text);
        snprintf(label, size, "%s/64", text);
    }
    return 0;
}

/* ---- offences and bans --------------------------------------------------- */

/* Drops the entries whose memory has run out, oldest first. */
static void forget(double now) {
    double memory = PENALTY_MEMORY_FACTOR * ban_max;
    while (order && now - order->last >= memory)
        drop(order);
}

/* The ban for the n-th remembered offence: ban_base doubled n - 1 times, at
 * most ban_max. */
static double ban_for(unsigned n) {
    double ban = ban_base;
    for (unsigned i = 1; i < n && ban < ban_max; i++)
        ban *= 2;
    return ban < ban_max ? ban : ban_max;
}

static entry_t *find(const penalty_key_t *k) {
    entry_t *e;
    HASH_FIND(hh, table, k, sizeof *k, e);
    return e;
}

/* k's entry, made the latest offence (last = now, at the list's end, so
 * the list stays ordered); a new one has no offences. NULL if out of
 * memory. */
static entry_t *touch(const penalty_key_t *k, double now) {
    forget(now);
    entry_t *e = find(k);
    if (e) {
        DL_DELETE(order, e);
    } else {
        if (HASH_COUNT(table) >= max_entries)
            drop(order); /* the oldest offence: the next to be forgotten */
        if (!(e = calloc(1, sizeof *e)))
            return NULL;
        e->key = *k;
        HASH_ADD(hh, table, key, sizeof e->key, e);
    }
    e->last = now;
    DL_APPEND(order, e);
    return e;
}

double penalty_record(const penalty_key_t *k, double now, unsigned *offences) {
    entry_t *e = ban_base > 0 ? touch(k, now) : NULL;
    if (!e)
        return 0;
    if (e->offences < UINT_MAX)
        e->offences++;
    double ban = ban_for(e->offences);
    e->until = now + ban;
    if (offences)
        *offences = e->offences;
    return ban;
}

double penalty_adopt(const penalty_key_t *k, double now, unsigned offences, double ban_s) {
    if (ban_base <= 0 || k->kind < PENALTY_USER || k->kind > PENALTY_ADDR6)
        return 0;
    /* An address ban this node would never look up would only take the
     * place of one it does. */
    if (k->kind != PENALTY_USER && !ban_by_address)
        return 0;
    entry_t *e = touch(k, now);
    if (!e)
        return 0;
    if (offences > e->offences)
        e->offences = offences;
    double until = now + (ban_s < ban_max ? (ban_s > 0 ? ban_s : 0) : ban_max);
    if (until > e->until)
        e->until = until;
    return e->until > now ? e->until - now : 0;
}

unsigned penalty_offences(const penalty_key_t *k, double now) {
    if (ban_base <= 0)
        return 0;
    forget(now);
    entry_t *e = find(k);
    return e ? e->offences : 0;
}

double penalty_remaining(const penalty_key_t *k, double now) {
    if (ban_base <= 0)
        return 0;
    forget(now);
    entry_t *e = find(k);
    return e && e->until > now ? e->until - now : 0;
}
