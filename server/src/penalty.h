/* penalty.h -- reconnect penalties for clients closed for abuse.
 *
 * A socket closed with 4004 (it kept sending past its rate limits) costs its
 * identity a ban from new WebSocket upgrades: --abuse-ban seconds for a first
 * offence, twice as long for each further one, at most --abuse-ban-max. An
 * identity is the token's user (tenant and sub) when the connection had a
 * verified token, else the peer's address (an IPv4 address, or an IPv6
 * address's /64 prefix: one host usually holds a whole /64), unless
 * --abuse-ban-addresses is off. gate.c refuses a banned identity's upgrades
 * with HTTP 429; its open connections are not touched.
 *
 * An identity is forgotten PENALTY_MEMORY_FACTOR x --abuse-ban-max seconds
 * after its last offence: always at least --abuse-ban-max seconds after its
 * ban ended, so a client that offends again soon after even the longest ban
 * gets the longest ban again. Forgotten entries are dropped lazily, from the
 * oldest, on every penalty_record() and penalty_remaining(): no timer.
 *
 * Memory is bounded: at most `capacity` entries (PENALTY_MAX_ENTRIES, a
 * 112-byte allocation each); when the table is full, the entry with the oldest last
 * offence (the next one to be forgotten anyway) is dropped for the new one.
 *
 * Pure apart from penalty_identify(), which reads the socket's peer
 * address: callers pass the time (penalty_now(), a monotonic clock, so that
 * a change of the wall clock neither lengthens nor ends a ban). One table
 * per process; in a cluster, every ban is also sent to the other nodes,
 * which adopt it (penalty_adopt()). */
#ifndef PARLEY_PENALTY_H
#define PARLEY_PENALTY_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"

struct sockaddr;

#define PENALTY_MAX_ENTRIES 65536
#define PENALTY_MEMORY_FACTOR 2

enum penalty_kind { PENALTY_USER = 1, PENALTY_ADDR4, PENALTY_ADDR6 };

/* What a penalty is kept for. A user is 16 bytes of SHA-256 of its tenant
 * and sub (any length, one size of entry); an address is its bytes (4, or
 * the 8 of an IPv6 /64), zero-padded. */
typedef struct penalty_key {
    uint8_t kind; /* enum penalty_kind */
    uint8_t id[16];
} penalty_key_t;

/* Sets the policy and empties the table: ban_s seconds for a first offence
 * (0: penalties off, every function below does nothing), doubling up to
 * max_s (>= ban_s); by_address 0 keeps no penalty for connections without a
 * verified token. 0, or -1 on a bad setting. */
int penalty_configure(long ban_s, long max_s, int by_address, size_t capacity);

/* Frees every entry. */
void penalty_clear(void);

/* Seconds on a monotonic clock. */
double penalty_now(void);

/* The key of a connection: id's user when id came from a verified token,
 * else the peer address of socket fd (when banning by address). label gets
 * a printable name for logs ("user:TENANT/SUB", "user:SUB", an address, or
 * "PREFIX::/64"). 0, or -1 when there is no key (penalties off, not by
 * address, the peer address is not IP, or out of memory). */
int penalty_identify(penalty_key_t *k, const auth_identity_t *id, int fd, char *label,
                     size_t size);

/* The key of a user (0, or -1 when out of memory), or of an IP address
 * (AF_INET, AF_INET6; an IPv4-mapped IPv6 address is its IPv4 address: 0,
 * or -1 for another family). */
int penalty_key_user(penalty_key_t *k, const char *tenant, const char *user);
int penalty_key_addr(penalty_key_t *k, const struct sockaddr *sa);

/* Records an offence of k at `now`: its ban starts now. Returns the ban in
 * seconds (0 when penalties are off or out of memory); *offences, when not
 * NULL, gets the count remembered, this one included. */
double penalty_record(const penalty_key_t *k, double now, unsigned *offences);

/* A ban another node of the cluster imposed on k (cluster.c): k's
 * offences become at least `offences` and its ban ends no sooner than
 * ban_s (at most --abuse-ban-max) from `now`. Nothing is counted as an
 * offence here, and the same ban adopted again bans no longer, so nodes
 * that hear of each other's bans in any order agree, and the next offence
 * anywhere doubles from the cluster's count. Returns the seconds k is now
 * banned for, 0 when penalties are off, k's kind is unknown or out of
 * memory. */
double penalty_adopt(const penalty_key_t *k, double now, unsigned offences, double ban_s);

/* Offences of k remembered at `now` (0: none, or penalties are off). */
unsigned penalty_offences(const penalty_key_t *k, double now);

/* Seconds k stays banned from `now`; 0 when it is not banned. */
double penalty_remaining(const penalty_key_t *k, double now);

/* Identities remembered (banned or not), for tests and logs. */
size_t penalty_count(void);

#endif
