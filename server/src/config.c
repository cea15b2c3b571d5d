/* config.c -- the settings table and its parser. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

config_t config;

/* A list flag may be repeated; a boolean is yes or no (or 1 or 0), kept as a
 * long 1 or 0. */
enum opt_type { OPT_STR, OPT_INT, OPT_LIST, OPT_BOOL };

typedef struct option_row {
    const char *name;       /* flag without the leading "--" */
    const char *env;        /* environment variable */
    enum opt_type type;
    size_t offset;          /* into config_t */
    const char *def;        /* default, as text */
    long min, max;          /* for OPT_INT */
    const char *help;
} option_row_t;

#define F(field) offsetof(config_t, field)

static const option_row_t options[] = {
    {"listen", "PARLEY_LISTEN", OPT_STR, F(listen), "127.0.0.1:4000", 0, 0,
     "address and port to listen on (HOST:PORT)"},
    {"static-dir", "PARLEY_STATIC_DIR", OPT_STR, F(static_dir), "", 0, 0,
     "directory of static files served at / (empty: none)"},
    {"max-channels", "PARLEY_MAX_CHANNELS", OPT_INT, F(max_channels), "100", 1, 100000,
     "topics one socket may join at once"},
    {"max-frame", "PARLEY_MAX_FRAME", OPT_INT, F(max_frame), "65536", 256, 1048576,
     "largest client message in bytes, after reassembling fragments"},
    {"max-topic", "PARLEY_MAX_TOPIC", OPT_INT, F(max_topic), "256", 1, 65536,
     "longest topic name in bytes"},
    {"max-depth", "PARLEY_MAX_DEPTH", OPT_INT, F(max_depth), "32", 2, 32,
     "deepest nesting of a client message, the envelope included"},
    {"out-queue-msgs", "PARLEY_OUT_QUEUE_MSGS", OPT_INT, F(out_queue_msgs), "1000", 8, 1000000,
     "frames queued for one socket before it is closed as a slow consumer"},
    {"out-queue-bytes", "PARLEY_OUT_QUEUE_BYTES", OPT_INT, F(out_queue_bytes), "1048576", 4096,
     1073741824, "bytes queued for one socket before it is closed as a slow consumer"},
    {"idle-timeout", "PARLEY_IDLE_TIMEOUT", OPT_INT, F(idle_timeout), "60", 1, 86400,
     "seconds without any frame from a client before its socket is closed"},
    /* At most 8: lws itself closes such connections from about 10 s (its
     * checks count whole seconds), and those closes would be neither logged
     * nor counted; the sweep runs once a second. */
    {"handshake-timeout", "PARLEY_HANDSHAKE_TIMEOUT", OPT_INT, F(handshake_timeout), "5", 1, 8,
     "seconds a new connection has to send its whole HTTP request head before it is closed"},
    /* lws keeps rx-buffer + 20 bytes for every connection, for its whole
     * life, and reads at most rx-buffer + 16 bytes per socket per loop
     * iteration. 256 holds a typical Phoenix frame (a heartbeat ~45 bytes, a
     * chat message with a 100-byte body ~170) in one read; larger messages
     * take more reads and are reassembled (measured: +6 % server CPU per
     * inbound message with a 400-byte body, +11 % at 1000 bytes, none at 100,
     * against 512), and 512 would cost 256 more bytes per idle connection. */
    {"rx-buffer", "PARLEY_RX_BUFFER", OPT_INT, F(rx_buffer), "256", 128, 65536,
     "bytes read per socket per callback (larger messages are reassembled); lws keeps a buffer "
     "of this size (+20) for every connection"},
    {"shutdown-grace", "PARLEY_SHUTDOWN_GRACE", OPT_INT, F(shutdown_grace), "5", 0, 600,
     "seconds to wait for sockets to close on SIGTERM/SIGINT"},
    {"log-level", "PARLEY_LOG_LEVEL", OPT_STR, F(log_level), "info", 0, 0,
     "error, warn, info or debug"},
    {"presence-topics", "PARLEY_PRESENCE_TOPICS", OPT_STR, F(presence_topics), "*", 0, 0,
     "topics with presence: comma-separated names, a trailing * matches any suffix; empty: none"},
    {"presence-batch-ms", "PARLEY_PRESENCE_BATCH_MS", OPT_INT, F(presence_batch_ms), "50", 1, 10000,
     "milliseconds over which presence changes are merged into one presence_diff per topic"},
    {"presence-meta-max", "PARLEY_PRESENCE_META_MAX", OPT_INT, F(presence_meta_max), "1024", 64,
     65536, "largest presence meta (the join payload), in bytes of JSON"},
    {"redis", "PARLEY_REDIS", OPT_LIST, F(redis), "", 0, 0,
     "Redis HOST:PORT to form a cluster through; repeat (or comma-separate) to shard topics"},
    {"down-period", "PARLEY_DOWN_PERIOD", OPT_INT, F(down_period), "30", 1, 86400,
     "seconds without a heartbeat before a node's users leave from everyone's view"},
    {"permdown-period", "PARLEY_PERMDOWN_PERIOD", OPT_INT, F(permdown_period), "1200", 1, 604800,
     "seconds without a heartbeat before a node's presence is purged"},
    {"reuseport", "PARLEY_REUSEPORT", OPT_INT, F(reuseport), "0", 0, 1,
     "1: listen with SO_REUSEPORT, so several nodes can share one port"},
    {"auth", "PARLEY_AUTH", OPT_STR, F(auth), "anonymous", 0, 0,
     "anonymous: tokens optional (verified when given); required: every connection needs a "
     "valid token"},
    {"auth-keys", "PARLEY_AUTH_KEYS", OPT_STR, F(auth_keys), "", 0, 0,
     "HMAC keys verifying tokens: comma-separated [KID:]SECRET (32+ bytes each), or @FILE with "
     "one per line; prefer the variable or a file to a flag, which ps shows"},
    {"auth-leeway", "PARLEY_AUTH_LEEWAY", OPT_INT, F(auth_leeway), "0", 0, 3600,
     "seconds of clock skew tolerated on a token's exp and nbf"},
    {"namespaces", "PARLEY_NAMESPACES", OPT_STR, F(namespaces), "", 0, 0,
     "per-namespace options as JSON, or @FILE: {\"room\": {\"presence\": true, "
     "\"publish\": true, \"max_members\": 500}}"},
    {"max-connections", "PARLEY_MAX_CONNECTIONS", OPT_INT, F(max_connections), "0", 0,
     100000000, "WebSocket connections this node accepts (HTTP 503 beyond); 0: no limit"},
    {"max-conns-per-user", "PARLEY_MAX_CONNS_PER_USER", OPT_INT, F(max_conns_per_user), "100", 0,
     1000000, "connections one token subject may hold on this node (HTTP 403 beyond); 0: no limit"},
    {"allowed-origins", "PARLEY_ALLOWED_ORIGINS", OPT_LIST, F(allowed_origins), "", 0, 0,
     "Origin header values browsers may connect from, comma-separated (clients sending no "
     "Origin are not browsers and are allowed); empty: any"},
    {"tls-cert", "PARLEY_TLS_CERT", OPT_STR, F(tls_cert), "", 0, 0,
     "PEM certificate (chain) file: the port then speaks only TLS (wss://, https://); needs "
     "--tls-key"},
    {"tls-key", "PARLEY_TLS_KEY", OPT_STR, F(tls_key), "", 0, 0,
     "PEM private key file of --tls-cert (unencrypted)"},
    /* TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3's are
     * OpenSSL's (all AEAD). TLS 1.0/1.1 are refused whatever this says. */
    {"tls-ciphers", "PARLEY_TLS_CIPHERS", OPT_STR, F(tls_ciphers), "ECDHE+AESGCM:ECDHE+CHACHA20",
     0, 0, "OpenSSL cipher list for TLS 1.2 clients (TLS 1.3 uses OpenSSL's suites)"},
    /* Abuse limits per socket (docs/limits.md says why these defaults). A
     * person chats at well under one message a second and the chat page
     * sends "typing" at most every 2 s; phoenix.js heartbeats every 30 s and,
     * after a reconnect, sends its buffered pushes at once: 10/s with 30 at
     * once is far above that, and keeps what one socket can make a large
     * room receive small. A phx_join takes from the join bucket only: a
     * reconnecting client rejoins all its topics at once, up to
     * --max-channels (100). */
    {"msg-rate", "PARLEY_MSG_RATE", OPT_INT, F(msg_rate), "10", 0, 8192,
     "messages per second one socket may send on average, heartbeats included (phx_join: "
     "--join-rate); over it: error reply rate_limited; 0: no limit"},
    {"msg-burst", "PARLEY_MSG_BURST", OPT_INT, F(msg_burst), "30", 1, 100000,
     "messages one socket may send at once before --msg-rate applies"},
    {"join-rate", "PARLEY_JOIN_RATE", OPT_INT, F(join_rate), "10", 0, 8192,
     "phx_join per second one socket may send on average; over it: error reply rate_limited; "
     "0: no limit"},
    {"join-burst", "PARLEY_JOIN_BURST", OPT_INT, F(join_burst), "100", 1, 100000,
     "phx_join one socket may send at once (a reconnecting client rejoins all its topics)"},
    {"rate-strikes", "PARLEY_RATE_STRIKES", OPT_INT, F(rate_strikes), "10", 0, 1000,
     "messages refused as rate_limited, not yet paid back by the rate, after which the socket "
     "is closed with 4004"},
    {"max-payload", "PARLEY_MAX_PAYLOAD", OPT_INT, F(max_payload), "8192", 2, 1048576,
     "largest chat message payload in bytes of JSON; over it: error reply payload_too_large, "
     "no broadcast"},
    /* Reconnect penalties (penalty.h; docs/limits.md says why these
     * defaults). A first offence costs a client that tripped the limit once
     * a couple of seconds (phoenix.js' backoff reaches 2 s by its 9th
     * retry); a flooder reconnecting at once reaches 5 minutes within ten
     * offences. */
    {"abuse-ban", "PARLEY_ABUSE_BAN", OPT_INT, F(abuse_ban), "2", 0, 86400,
     "seconds a client closed with 4004 (its token's user, else its address) may not reconnect "
     "(HTTP 429); doubled for each further offence; 0: no bans"},
    {"abuse-ban-max", "PARLEY_ABUSE_BAN_MAX", OPT_INT, F(abuse_ban_max), "300", 1, 86400,
     "longest ban; an identity with no offence for twice this long is forgotten"},
    {"abuse-ban-addresses", "PARLEY_ABUSE_BAN_ADDRESSES", OPT_BOOL, F(abuse_ban_addresses),
     "yes", 0, 1,
     "yes: ban clients without a token by address (IPv6: by /64); no: only users with tokens "
     "(set no behind a reverse proxy, where every client has the proxy's address)"},
};
#define NOPTIONS (sizeof options / sizeof options[0])

static int set_option(const option_row_t *o, const char *value, const char *source) {
    char *field = (char *)&config + o->offset;
    static const option_row_t *list_by_flag; /* the list option a flag already set */
    if (o->type == OPT_LIST && strcmp(source, "flag") == 0 && list_by_flag == o &&
        **(char **)field) {
        char *joined = malloc(strlen(*(char **)field) + strlen(value) + 2);
        if (!joined)
            return -1;
        sprintf(joined, "%s,%s", *(char **)field, value);
        free(*(char **)field);
        *(char **)field = joined;
        return 0;
    }
    if (o->type == OPT_LIST && strcmp(source, "flag") == 0)
        list_by_flag = o;
    else if (o->type == OPT_LIST)
        list_by_flag = NULL;
    if (o->type == OPT_STR || o->type == OPT_LIST) {
        char *copy = strdup(value);
        if (!copy)
            return -1;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    if (o->type == OPT_BOOL) {
        int yes = strcmp(value, "yes") == 0 || strcmp(value, "1") == 0;
        if (!yes && strcmp(value, "no") != 0 && strcmp(value, "0") != 0) {
            fprintf(stderr, "parley: %s: --%s must be yes or no, not \"%s\"\n", source, o->name,
                    value);
            return -1;
        }
        *(long *)field = yes;
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < o->min || v > o->max) {
        fprintf(stderr, "parley: %s: --%s must be an integer from %ld to %ld, not \"%s\"\n",
                source, o->name, o->min, o->max, value);
        return -1;
    }
    *(long *)field = v;
    return 0;
}

void config_usage(FILE *out) {
    fprintf(out,
            "usage: parley [--option value]...\n"
            "A chat and presence server speaking the Phoenix Channels protocol.\n\n"
            "Every option can also be set by its environment variable; a flag wins.\n\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option_row_t *o = &options[i];
        fprintf(out, "  --%-16s %-24s %s (default: %s)\n", o->name, o->env, o->help,
                *o->def ? o->def : "\"\"");
    }
    fprintf(out, "\n  --help                                    this text\n"
                 "  --version                                 the version\n");
}

static const option_row_t *find_option(const char *name, size_t len) {
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

int config_load(int argc, char **argv) {
    for (size_t i = 0; i < NOPTIONS; i++)
        if (set_option(&options[i], options[i].def, "default"))
            return -1;
    for (size_t i = 0; i < NOPTIONS; i++) {
        const char *v = getenv(options[i].env);
        if (v && set_option(&options[i], v, options[i].env))
            return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            config_usage(stdout);
            return 1;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("parley %s\n", PARLEY_VERSION);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "parley: unexpected argument \"%s\" (see --help)\n", arg);
            return -1;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const option_row_t *o = find_option(name, len);
        if (!o) {
            fprintf(stderr, "parley: unknown option \"%s\" (see --help)\n", arg);
            return -1;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value) {
            fprintf(stderr, "parley: --%s needs a value\n", o->name);
            return -1;
        }
        if (set_option(o, value, "flag"))
            return -1;
    }
    int lvl = log_level_parse(config.log_level);
    if (lvl < 0) {
        fprintf(stderr, "parley: --log-level must be error, warn, info or debug, not \"%s\"\n",
                config.log_level);
        return -1;
    }
    log_level = lvl;
    if (!*config.tls_cert != !*config.tls_key) {
        fprintf(stderr, "parley: --tls-cert and --tls-key go together: set both, or neither\n");
        return -1;
    }
    if (config.abuse_ban && config.abuse_ban_max < config.abuse_ban) {
        fprintf(stderr, "parley: --abuse-ban-max (%ld) must be at least --abuse-ban (%ld)\n",
                config.abuse_ban_max, config.abuse_ban);
        return -1;
    }
    if (!strrchr(config.listen, ':')) {
        fprintf(stderr, "parley: --listen must be HOST:PORT, not \"%s\"\n", config.listen);
        return -1;
    }
    return 0;
}
