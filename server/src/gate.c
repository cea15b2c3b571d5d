/* gate.c -- admission of WebSocket upgrades; see gate.h. */
#include "gate.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "cluster.h"
#include "parley/protocol.h"
#include "config.h"
#include "head.h"
#include "log.h"
#include "metrics.h"
#include "penalty.h"
#include "transport.h"

typedef struct pending {
    auth_identity_t *id; /* verified at the upgrade, not yet taken by the session */
    char *bearer;        /* token from the protocol header, set by the listener */
    struct lws *hs_wsi;  /* waiting for its request head since hs_since_ms, or NULL */
    uint64_t hs_since_ms;
    int hs_prev, hs_next; /* the waiting list, oldest first: descriptors, -1 at the ends */
    int head_in;          /* its head has arrived (it may during the adoption) */
} pending_t;

static pending_t *table;
static long table_size;
static int hs_first = -1, hs_last = -1;

int gate_init(long fd_limit) {
    if (penalty_configure(config.abuse_ban, config.abuse_ban_max,
                          (int)config.abuse_ban_addresses, PENALTY_MAX_ENTRIES))
        return -1; /* config_load() checked the settings */
    table_size = fd_limit > 0 ? fd_limit : 1024;
    table = calloc((size_t)table_size, sizeof *table);
    return table ? 0 : -1;
}

static void hs_unlink(pending_t *p) {
    if (!p->hs_wsi)
        return;
    *(p->hs_prev >= 0 ? &table[p->hs_prev].hs_next : &hs_first) = p->hs_next;
    *(p->hs_next >= 0 ? &table[p->hs_next].hs_prev : &hs_last) = p->hs_prev;
    p->hs_wsi = NULL;
}

static void clear(pending_t *p) {
    auth_identity_free(p->id);
    free(p->bearer);
    p->id = NULL;
    p->bearer = NULL;
    hs_unlink(p);
    p->head_in = 0;
}

void gate_shutdown(void) {
    for (long i = 0; i < table_size; i++)
        clear(&table[i]);
    free(table);
    table = NULL;
    table_size = 0;
    penalty_clear();
}

static pending_t *slot(int fd) {
    return fd >= 0 && fd < table_size ? &table[fd] : NULL;
}

void gate_fd_opened(int fd, const char *bearer, size_t len) {
    pending_t *p = slot(fd);
    if (!p)
        return;
    clear(p);
    if (bearer && (p->bearer = malloc(len + 1))) {
        memcpy(p->bearer, bearer, len);
        p->bearer[len] = '\0';
    }
}

auth_identity_t *gate_take(struct lws *wsi) {
    pending_t *p = slot(lws_get_socket_fd(wsi));
    if (!p)
        return NULL;
    auth_identity_t *id = p->id;
    p->id = NULL;
    free(p->bearer);
    p->bearer = NULL;
    return id;
}

/* Refuses the upgrade with `status` and a one-line reason. */
static int refuse(struct lws *wsi, reject_kind_t kind, unsigned status, const char *reason,
                  const char *detail) {
    metrics.rejected[kind]++;
    char q[96];
    plog(LOG_INFO, "upgrade_refused", "status=%u reason=%s detail=%s", status,
         reject_kind_name(kind), log_quote(detail ? detail : "", q, sizeof q));
    lws_return_http_status(wsi, status, reason);
    return 1;
}

/* Sends `status` with a Retry-After header of `seconds` and `reason` as a
 * plain-text body, as lws_return_http_status() sends its statuses (which
 * take no extra header); falls back on that if the head does not fit. */
static void send_retry_after(struct lws *wsi, unsigned status, const char *reason, long seconds) {
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
    char body[160], length[24], retry[24];
    int bl = snprintf(body, sizeof body, "%s; retry after %ld s\n", reason, seconds);
    int ll = snprintf(length, sizeof length, "%d", bl);
    int rl = snprintf(retry, sizeof retry, "%ld", seconds);
    if (lws_add_http_header_status(wsi, status, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (const unsigned char *)"text/plain", 10, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
                                     (const unsigned char *)length, ll, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"retry-after:",
                                    (const unsigned char *)retry, rl, &p, end) ||
        lws_finalize_http_header(wsi, &p, end) || end - p < bl) {
        lws_return_http_status(wsi, status, reason);
        return;
    }
    memcpy(p, body, (size_t)bl);
    p += bl;
    lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP);
}

/* 1 (and HTTP 429) if the upgrade's identity (id's user, else the peer's
 * address) is banned for a close with 4004 (penalty.h). A banned client
 * may retry in a loop, so the log line is rate-limited. */
static int banned(struct lws *wsi, const auth_identity_t *id) {
    penalty_key_t k;
    char who[128], q[96];
    /* With nobody remembered, no lookup and no getpeername() per upgrade. */
    if (penalty_count() == 0 || penalty_identify(&k, id, lws_get_socket_fd(wsi), who, sizeof who))
        return 0;
    double left = penalty_remaining(&k, penalty_now());
    if (left <= 0)
        return 0;
    long seconds = (long)left;
    if ((double)seconds < left)
        seconds++; /* rounded up: a retry at Retry-After is not refused */
    metrics.rejected[REJ_BANNED]++;
    plog_limited(LOG_INFO, "upgrade_refused", "status=429 reason=%s detail=%s retry_after=%ld",
                 reject_kind_name(REJ_BANNED), log_quote(who, q, sizeof q), seconds);
    send_retry_after(wsi, 429, "banned for exceeding rate limits", seconds);
    return 1;
}

int gate_on_probation(struct lws *wsi, const auth_identity_t *id) {
    penalty_key_t k;
    char who[128];
    if (penalty_count() == 0 || penalty_identify(&k, id, lws_get_socket_fd(wsi), who, sizeof who))
        return 0;
    return penalty_offences(&k, penalty_now()) > 0;
}

void gate_penalize(struct lws *wsi, const auth_identity_t *id) {
    penalty_key_t k;
    char who[128], q[96];
    if (penalty_identify(&k, id, lws_get_socket_fd(wsi), who, sizeof who))
        return;
    unsigned offences = 0;
    double ban = penalty_record(&k, penalty_now(), &offences);
    if (ban <= 0)
        return;
    metrics.abuse_bans++;
    plog_limited(LOG_WARN, "abuse_ban", "who=%s offences=%u ban_s=%.0f",
                 log_quote(who, q, sizeof q), offences, ban);
    cluster_share_ban(&k, offences, ban);
}

void gate_ban_adopted(const penalty_key_t *k, unsigned offences, double ban_s, const char *node) {
    double left = penalty_adopt(k, penalty_now(), offences, ban_s);
    if (left <= 0)
        return;
    metrics.abuse_bans_adopted++;
    char q[96];
    /* a user is known here by a hash of its name only */
    plog_limited(LOG_INFO, "abuse_ban_adopted", "node=%s who=%s offences=%u ban_s=%.0f",
                 log_quote(node, q, sizeof q), k->kind == PENALTY_USER ? "user" : "address",
                 offences, left);
}

static int origin_allowed(struct lws *wsi) {
    if (!*config.allowed_origins)
        return 1;
    char origin[256];
    int n = lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
    if (n == 0 && lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) == 0)
        return 1; /* not a browser: Origin is the browsers' own defence */
    if (n <= 0)
        return 0;
    for (const char *p = config.allowed_origins; *p;) {
        size_t len = strcspn(p, ",");
        while (len && *p == ' ')
            p++, len--;
        size_t l = len;
        while (l && p[l - 1] == ' ')
            l--;
        if ((l == 1 && *p == '*') || (l == (size_t)n && strncasecmp(p, origin, l) == 0))
            return 1;
        p += len;
        if (*p)
            p++;
    }
    return 0;
}

/* The upgrade's Sec-WebSocket-Protocol, read once by gate_admit (lws keeps
 * no more of a head than this): nprotos bytes, no NUL among them. */
static char protos[HTTP_HEAD_MAX];
static int nprotos;

/* The token of the upgrade: the "token" connect parameter, else a Phoenix
 * authToken entry of Sec-WebSocket-Protocol (from the listener when the
 * header was too long for lws, else read here). Returns its length, 0 when
 * none was given, -1 when one was given but cannot be read. */
static int find_token(struct lws *wsi, char *out, size_t size) {
    int r = transport_url_arg(wsi, "token", out, size);
    if (r)
        return r < 0 ? -1 : (int)strlen(out);
    pending_t *p = slot(lws_get_socket_fd(wsi));
    if (p && p->bearer) {
        size_t n = strlen(p->bearer);
        if (n >= size)
            return -1;
        memcpy(out, p->bearer, n + 1);
        return (int)n;
    }
    size_t len;
    const char *b64 = head_bearer(protos, (size_t)nprotos, &len);
    return b64 ? auth_decode_bearer(b64, len, out, size) : 0;
}

/* The upgrade's token, verified: 0 with *id the identity it grants (NULL
 * when there is none), or 1 when a refusal was sent. */
static int verify_token(struct lws *wsi, auth_identity_t **id) {
    /* Without keys there are no tokens: a token parameter some client
     * passes anyway is the application's business, not ours. */
    if (auth_nkeys() == 0)
        return 0;
    char token[AUTH_TOKEN_MAX + 1];
    int tl = find_token(wsi, token, sizeof token);
    if (tl == 0 && strcmp(config.auth, "required") == 0)
        return refuse(wsi, REJ_TOKEN_MISSING, HTTP_STATUS_FORBIDDEN, "token required", NULL);
    if (tl == 0)
        return 0;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    auth_err_t e = tl < 0 ? AUTH_EMALFORMED
                          : auth_verify(token, (size_t)tl, (double)tv.tv_sec + tv.tv_usec / 1e6,
                                        (double)config.auth_leeway, id);
    if (e != AUTH_OK)
        return refuse(wsi, e == AUTH_EEXPIRED || e == AUTH_ENOTYET ? REJ_TOKEN_EXPIRED
                                                                   : REJ_TOKEN_INVALID,
                      HTTP_STATUS_FORBIDDEN, auth_err_text(e), NULL);
    return 0;
}

/* The refusal of a Sec-WebSocket-Protocol header too long for lws. With an
 * authToken entry that does not decode (when tokens count: with keys), the
 * token is the trouble (403, as for a bad token parameter); with one that
 * does, the listener could not take it out (TLS, no keys, or a head too
 * long even without it): the token parameter works where authToken
 * cannot. Returns 1 (refused). */
static int refuse_long_protocols(struct lws *wsi) {
    size_t len;
    const char *b64 = head_bearer(protos, (size_t)nprotos, &len);
    if (b64) {
        char token[AUTH_TOKEN_MAX + 1];
        if (auth_nkeys() && auth_decode_bearer(b64, len, token, sizeof token) <= 0)
            return refuse(wsi, REJ_TOKEN_INVALID, HTTP_STATUS_FORBIDDEN,
                          auth_err_text(AUTH_EMALFORMED), NULL);
        return refuse(wsi, REJ_PROTOCOL_HEADER, HTTP_STATUS_BAD_REQUEST,
                      "Sec-WebSocket-Protocol too long: pass the token as the token "
                      "parameter, not as authToken",
                      NULL);
    }
    return refuse(wsi, REJ_PROTOCOL_HEADER, HTTP_STATUS_BAD_REQUEST,
                  "Sec-WebSocket-Protocol too long (126 bytes at most)", NULL);
}

/* Without a token, the "user" connect parameter names the connection in
 * presence, a key every member of its topics receives in text frames: it
 * must be UTF-8 (a browser fails a connection on a text frame that is not)
 * without control characters, at most AUTH_USER_PARAM_MAX bytes, as a
 * token's sub; empty is no key. 0 with *id the anonymous identity (NULL
 * without a key), or 1 when refused. */
static int anonymous_identity(struct lws *wsi, auth_identity_t **id) {
    char who[AUTH_USER_PARAM_MAX + 2];
    int r = transport_url_arg(wsi, "user", who, sizeof who);
    size_t n = r > 0 ? strlen(who) : 0;
    if (r < 0 || n > AUTH_USER_PARAM_MAX || !proto_utf8_valid((const uint8_t *)who, n) ||
        !auth_no_controls(who, n))
        return refuse(wsi, REJ_USER_PARAM, HTTP_STATUS_BAD_REQUEST,
                      "the user parameter must be at most 256 bytes of UTF-8 without control "
                      "characters",
                      NULL);
    *id = n ? auth_anonymous(who) : NULL; /* NULL if out of memory too: no key, then */
    return 0;
}

int gate_admit(struct lws *wsi) {
    char uri[256];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 ||
        strcmp(uri, TRANSPORT_WS_PATH) != 0)
        return refuse(wsi, REJ_PATH, HTTP_STATUS_NOT_FOUND, "no WebSocket endpoint here", uri);
    if (config.max_connections && metrics.connections >= (uint64_t)config.max_connections)
        return refuse(wsi, REJ_SERVER_FULL, HTTP_STATUS_SERVICE_UNAVAILABLE, "server full", NULL);
    if (!origin_allowed(wsi))
        return refuse(wsi, REJ_ORIGIN, HTTP_STATUS_FORBIDDEN, "origin not allowed", NULL);

    /* A NUL byte in the value, which lws keeps but does not count, would
     * end every string function early: such a header is malformed. */
    nprotos = 0;
    protos[0] = '\0';
    if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) > 0) {
        nprotos = lws_hdr_copy(wsi, protos, sizeof protos, WSI_TOKEN_PROTOCOL);
        if (nprotos < 0 || strlen(protos) != (size_t)nprotos) {
            nprotos = 0;
            return refuse(wsi, REJ_PROTOCOL_HEADER, HTTP_STATUS_BAD_REQUEST,
                          "malformed Sec-WebSocket-Protocol", NULL);
        }
    }
    /* lws 4.1 refuses a Sec-WebSocket-Protocol header of 127 bytes or more
     * by hanging up. The listener shortens plaintext ones (it takes a
     * phoenix.js authToken out); an encrypted one it cannot read. Say so. */
    if (nprotos >= 127)
        return refuse_long_protocols(wsi);
    auth_identity_t *id = NULL;
    if (verify_token(wsi, &id) || banned(wsi, id)) {
        auth_identity_free(id);
        return 1;
    }
    if (!id && anonymous_identity(wsi, &id))
        return 1;
    if (!id)
        return 0;
    if (id->verified && config.max_conns_per_user &&
        auth_user_count(id->tenant, id->user, 0) >= config.max_conns_per_user) {
        char q[96];
        int r = refuse(wsi, REJ_USER_LIMIT, HTTP_STATUS_FORBIDDEN,
                       "too many connections for this user",
                       log_quote(id->user, q, sizeof q));
        auth_identity_free(id);
        return r;
    }
    pending_t *p = slot(lws_get_socket_fd(wsi));
    if (!p) {
        auth_identity_free(id);
        return refuse(wsi, REJ_SERVER_FULL, HTTP_STATUS_SERVICE_UNAVAILABLE, "server full", NULL);
    }
    clear(p);
    p->id = id;
    return 0;
}

/* ---- the request head's deadline ------------------------------------------ */

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void gate_handshake_started(int fd, struct lws *wsi) {
    pending_t *p = slot(fd);
    if (!p || p->head_in)
        return; /* lws had the whole head already, during the adoption */
    p->hs_wsi = wsi;
    p->hs_since_ms = mono_ms();
    p->hs_next = -1;
    p->hs_prev = hs_last;
    *(hs_last >= 0 ? &table[hs_last].hs_next : &hs_first) = fd;
    hs_last = fd;
    lws_set_opaque_user_data(wsi, (void *)(intptr_t)(fd + 1));
}

void gate_head_in(struct lws *wsi) {
    pending_t *p = slot(lws_get_socket_fd(wsi));
    if (!p)
        return;
    p->head_in = 1;
    if (p->hs_wsi == wsi)
        hs_unlink(p);
}

void gate_wsi_destroyed(struct lws *wsi) {
    /* its descriptor is closed by now: the one it had is in the opaque data */
    pending_t *p = slot((int)(intptr_t)lws_get_opaque_user_data(wsi) - 1);
    if (p && p->hs_wsi == wsi)
        hs_unlink(p);
}

void gate_sweep_handshakes(void) {
    uint64_t now = mono_ms(), limit = (uint64_t)config.handshake_timeout * 1000u;
    while (hs_first >= 0 && now - table[hs_first].hs_since_ms >= limit) {
        pending_t *p = &table[hs_first];
        struct lws *wsi = p->hs_wsi;
        uint64_t waited = now - p->hs_since_ms;
        hs_unlink(p);
        metrics.handshake_timeouts++;
        char peer[64] = "";
        lws_get_peer_simple(wsi, peer, sizeof peer); /* only now: most never time out */
        plog_limited(LOG_INFO, "handshake_timeout", "peer=%s waited_ms=%llu", peer,
                     (unsigned long long)waited);
        /* not the wsi lws is serving: this runs from a libev timer */
        lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_KEEPALIVE_IDLE, LWS_TO_KILL_SYNC);
    }
}
