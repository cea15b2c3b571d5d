/* config.h -- the server's settings. One table (config.c) drives the
 * command-line flags, the PARLEY_* environment variables, --help and the
 * defaults: to add a setting, add a field here and a row there. Precedence:
 * default < environment < flag. */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stdio.h>

typedef struct config {
    char *listen;           /* HOST:PORT of the one listening socket */
    char *static_dir;       /* directory served at /, or "" for none */
    long max_channels;      /* topics one socket may join */
    long max_frame;         /* bytes in one client message, after reassembly */
    long max_topic;         /* bytes in a topic name */
    long max_depth;         /* JSON / MessagePack nesting, envelope included */
    long out_queue_msgs;    /* frames queued for one socket before it is cut off */
    long out_queue_bytes;   /* bytes queued for one socket before it is cut off */
    long idle_timeout;      /* seconds without a frame before a socket is closed */
    long handshake_timeout; /* seconds for a new connection's request head */
    long rx_buffer;         /* bytes libwebsockets reads per socket per callback */
    long shutdown_grace;    /* seconds to wait for sockets to close on SIGTERM */
    char *log_level;        /* error, warn, info, debug */
    char *presence_topics;  /* comma-separated topics or prefix* patterns with presence */
    long presence_batch_ms; /* window over which presence changes are merged into one diff */
    long presence_meta_max; /* bytes of a join payload / presence meta, JSON-encoded */
    char *redis;            /* HOST:PORT[,HOST:PORT...]; "" = standalone */
    long down_period;       /* seconds without a heartbeat before a node is down */
    long permdown_period;   /* seconds before a down node is purged */
    long reuseport;         /* 1: SO_REUSEPORT, several nodes on one port */
    char *auth;             /* "anonymous" or "required" */
    char *auth_keys;        /* token keys: [KID:]SECRET,... or @FILE; "" = none */
    long auth_leeway;       /* seconds of clock skew tolerated on exp/nbf */
    char *namespaces;       /* per-namespace options: JSON object or @FILE */
    long max_connections;   /* WebSocket connections on this node; 0 = no limit */
    long max_conns_per_user;/* connections of one token sub on this node; 0 = no limit */
    char *allowed_origins;  /* Origin values browsers may connect from; "" = any */
    char *tls_cert;         /* PEM certificate chain; "" = plaintext (see tls.h) */
    char *tls_key;          /* PEM private key of tls_cert; set with tls_cert or not at all */
    char *tls_ciphers;      /* OpenSSL cipher string for TLS 1.2 */
    long msg_rate;          /* messages per second one socket may send (0: no limit) */
    long msg_burst;         /* messages one socket may send at once */
    long join_rate;         /* phx_join per second one socket may send (0: no limit) */
    long join_burst;        /* phx_join one socket may send at once */
    long rate_strikes;      /* refused messages owed before a socket is closed (4004) */
    long max_payload;       /* bytes of a chat message's payload, JSON-encoded */
    long abuse_ban;         /* seconds a 4004 close bans its identity from upgrades (0: off) */
    long abuse_ban_max;     /* longest ban, doubling from abuse_ban with each offence */
    long abuse_ban_addresses; /* 1: ban connections without a token by address */
} config_t;

extern config_t config;

/* Fills `config` from defaults, the environment and argv. Returns 0 to run,
 * 1 when --help or --version was printed, -1 on a bad setting (message
 * printed to stderr). */
int config_load(int argc, char **argv);
void config_usage(FILE *out);

#endif
