/* gate.h -- admission of WebSocket upgrades, before the 101 response:
 * the socket path, --max-connections, the Origin allow-list, the token
 * (auth.c), the reconnect penalty of clients closed for abuse (penalty.c)
 * and --max-conns-per-user. A refused upgrade gets an HTTP status (400, 403,
 * 404, 429 or 503) with a one-line reason, a log line and a counter.
 *
 * What the token granted is handed from the upgrade to the session through
 * a table indexed by socket descriptor: lws frees the HTTP request's
 * per-connection storage when the connection becomes a WebSocket. */
#ifndef PARLEY_GATE_H
#define PARLEY_GATE_H

#include "auth.h"
#include "penalty.h"

struct lws;

/* Sizes the descriptor table and sets the penalty policy from config. 0 or
 * -1 if out of memory. */
int gate_init(long fd_limit);
/* Frees the table and every penalty. */
void gate_shutdown(void);

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 to let the upgrade proceed, 1 when a
 * refusal was sent. */
int gate_admit(struct lws *wsi);

/* The open WebSocket wsi, whose identity is id (NULL: none), is being
 * closed with 4004: bans that identity (id's user if it came from a token,
 * else the peer's address) from new upgrades for a while (penalty.h), with
 * a log line and a count. Its other open connections are not touched. In
 * a cluster the ban goes to the other nodes too (cluster_share_ban()). */
void gate_penalize(struct lws *wsi, const auth_identity_t *id);

/* A ban node `node` imposed and sent (cluster.c): adopted here
 * (penalty_adopt()), with a log line and a count. */
void gate_ban_adopted(const penalty_key_t *k, unsigned offences, double ban_s, const char *node);

/* 1 if the identity of a new connection (as gate_penalize() keys it) has a
 * 4004 remembered (penalty.h): it starts on probation, its message bucket
 * holding one token instead of the burst, so that each reconnect brings
 * no fresh burst to fan out. */
int gate_on_probation(struct lws *wsi, const auth_identity_t *id);

/* The identity gate_admit() verified for this connection (the caller owns
 * it), or NULL: no token was given. */
auth_identity_t *gate_take(struct lws *wsi);

/* A new connection got descriptor fd: drops what an earlier connection on
 * it left. bearer, when not NULL, is the token the listener took out of the
 * request's Sec-WebSocket-Protocol header (copied). */
void gate_fd_opened(int fd, const char *bearer, size_t len);

/* Slowloris defence: a connection lws adopted on descriptor fd has
 * --handshake-timeout seconds to send its whole request head
 * (gate_head_in(), from the callbacks that follow a complete head), or
 * gate_sweep_handshakes(), once a second, closes it with a log line and a
 * count. Those waiting are a list through the descriptor table, oldest
 * first; the wsi's opaque user data holds fd + 1 meanwhile, for
 * gate_wsi_destroyed(). */
void gate_handshake_started(int fd, struct lws *wsi);
void gate_head_in(struct lws *wsi);
void gate_wsi_destroyed(struct lws *wsi);
void gate_sweep_handshakes(void);

#endif
