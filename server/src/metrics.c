/* metrics.c -- Prometheus text rendering of the counters. */
#include "metrics.h"

#include <stdio.h>

metrics_t metrics;

const double loop_bucket_le[LOOP_BUCKETS - 1] = {0.001, 0.005, 0.02, 0.1, 0.5};

int metrics_loop_iteration(double seconds) {
    int b = 0;
    while (b < LOOP_BUCKETS - 1 && seconds > loop_bucket_le[b])
        b++;
    metrics.loop_iterations[b]++;
    metrics.loop_seconds += seconds;
    if (seconds < LOOP_STALL_S)
        return 0;
    metrics.loop_stalls++;
    return 1;
}

static const char *const err_names[ERR_NKINDS] = {
    [ERR_MALFORMED] = "malformed",
    [ERR_NOT_A_MESSAGE] = "not_a_message",
    [ERR_FIELD_TYPE] = "field_type",
    [ERR_INVALID_UTF8] = "invalid_utf8",
    [ERR_TOO_DEEP] = "too_deep",
    [ERR_TOO_BIG] = "too_big",
    [ERR_FRAME_TYPE] = "frame_type",
    [ERR_UNSUPPORTED_TYPE] = "unsupported_type",
    [ERR_BAD_VSN] = "bad_vsn",
    [ERR_BAD_TOPIC] = "bad_topic",
    [ERR_BAD_EVENT] = "bad_event",
    [ERR_BAD_PAYLOAD] = "bad_payload",
    [ERR_UNMATCHED_TOPIC] = "unmatched_topic",
    [ERR_TOO_MANY_CHANNELS] = "too_many_channels",
    [ERR_RESERVED_EVENT] = "reserved_event",
    [ERR_STALE_JOIN_REF] = "stale_join_ref",
    [ERR_PRESENCE] = "presence",
    [ERR_ADOPT] = "adopt",
    [ERR_UNAUTHORIZED] = "unauthorized",
    [ERR_TOPIC_FULL] = "topic_full",
    [ERR_RATE_LIMITED] = "rate_limited",
    [ERR_JOIN_RATE_LIMITED] = "join_rate_limited",
    [ERR_PAYLOAD_TOO_LARGE] = "payload_too_large",
};

static const char *const reject_names[REJ_NKINDS] = {
    [REJ_PATH] = "path",
    [REJ_SERVER_FULL] = "server_full",
    [REJ_ORIGIN] = "origin",
    [REJ_TOKEN_MISSING] = "token_missing",
    [REJ_TOKEN_INVALID] = "token_invalid",
    [REJ_TOKEN_EXPIRED] = "token_expired",
    [REJ_USER_LIMIT] = "user_limit",
    [REJ_PROTOCOL_HEADER] = "protocol_header",
    [REJ_BANNED] = "banned",
    [REJ_HEAD_TOO_LARGE] = "head_too_large",
    [REJ_USER_PARAM] = "user_param",
};

const char *reject_kind_name(reject_kind_t kind) {
    return kind < REJ_NKINDS ? reject_names[kind] : "unknown";
}

const char *err_kind_name(err_kind_t kind) {
    return kind < ERR_NKINDS ? err_names[kind] : "unknown";
}

typedef struct metric_row {
    const char *name;
    const char *type;
    const char *help;
    const uint64_t *value;
} metric_row_t;

static const metric_row_t rows[] = {
    {"parley_connections", "gauge", "Open WebSocket connections.", &metrics.connections},
    {"parley_connections_total", "counter", "WebSocket connections accepted.",
     &metrics.connections_total},
    {"parley_idle_disconnects_total", "counter", "Sockets closed for sending nothing.",
     &metrics.disconnects_idle},
    {"parley_handshake_timeouts_total", "counter",
     "Connections closed for not sending a whole HTTP request head within --handshake-timeout.",
     &metrics.handshake_timeouts},
    {"parley_slow_consumer_disconnects_total", "counter",
     "Sockets closed because their outbound queue passed its limit.", &metrics.disconnects_slow},
    {"parley_token_expired_disconnects_total", "counter",
     "Sockets closed because their token expired.", &metrics.disconnects_expired},
    {"parley_rate_limit_disconnects_total", "counter",
     "Sockets closed for sending on past their rate limits (close 4004).",
     &metrics.disconnects_rate},
    {"parley_close_input_stopped_total", "counter",
     "Closing sockets no longer read because they sent on after the server decided to close "
     "them: the rest of the message then arriving and 16 KiB more (the socket ends when the "
     "client closes its side, or 5 s after the close).",
     &metrics.close_drains_stopped},
    {"parley_abuse_bans_total", "counter",
     "Reconnect bans imposed on the identity of a socket closed with 4004 (HTTP 429 until they "
     "end).",
     &metrics.abuse_bans},
    {"parley_abuse_bans_adopted_total", "counter",
     "Reconnect bans another node of the cluster imposed, adopted by this one (HTTP 429 here "
     "too until they end).",
     &metrics.abuse_bans_adopted},
    {"parley_log_suppressed_total", "counter",
     "Log lines not written because one kind of line came too often.", &metrics.log_suppressed},
    {"parley_joins_total", "counter", "Successful topic joins.", &metrics.joins_total},
    {"parley_leaves_total", "counter", "Channels left, closed or dropped.", &metrics.leaves_total},
    {"parley_channels", "gauge", "Joined (socket, topic) pairs.", &metrics.channels},
    {"parley_topics", "gauge", "Topics with at least one subscriber.", &metrics.topics},
    {"parley_messages_in_total", "counter", "Client messages decoded.", &metrics.messages_in},
    {"parley_messages_out_total", "counter", "Frames queued to sockets.", &metrics.messages_out},
    {"parley_bytes_in_total", "counter", "Bytes of client messages.", &metrics.bytes_in},
    {"parley_bytes_out_total", "counter", "Bytes of frames queued to sockets.", &metrics.bytes_out},
    {"parley_broadcasts_total", "counter", "Chat messages fanned out to a topic.",
     &metrics.broadcasts},
    {"parley_http_requests_total", "counter", "HTTP requests served.", &metrics.http_requests},
    {"parley_presence_diffs_total", "counter", "presence_diff broadcasts (one per topic per batch).",
     &metrics.presence_diffs},
    {"parley_presence_entries", "gauge", "Presence entries held, from every node.",
     &metrics.presence_entries},
    {"parley_presence_syncs_total", "counter", "Requests for peers' full presence state (one peer, or all).",
     &metrics.presence_syncs},
    {"parley_redis_published_total", "counter", "Envelopes published to Redis.",
     &metrics.redis_published},
    {"parley_redis_received_total", "counter", "Envelopes received from Redis.",
     &metrics.redis_received},
    {"parley_redis_dropped_total", "counter",
     "Envelopes not published: Redis down or not keeping up.", &metrics.redis_dropped},
    {"parley_redis_bad_envelopes_total", "counter", "Undecodable messages from Redis.",
     &metrics.redis_bad_envelopes},
    {"parley_redis_disconnects_total", "counter", "Redis connections lost.",
     &metrics.redis_disconnects},
    {"parley_loop_stalls_total", "counter",
     "Event loop iterations of 50 ms or more (each logged as loop_stall): every client of the "
     "node waited that long.",
     &metrics.loop_stalls},
    {"parley_tls_handshake_failures_total", "counter",
     "TLS handshakes that failed: plaintext clients, TLS 1.0/1.1, no shared cipher...",
     &metrics.tls_handshake_failures},
};

#define APPEND(...)                                                          \
    do {                                                                     \
        int n_ = snprintf(size > len ? buf + len : NULL, size > len ? size - len : 0, \
                          __VA_ARGS__);                                      \
        if (n_ > 0)                                                          \
            len += (size_t)n_;                                               \
    } while (0)

size_t metrics_render(char *buf, size_t size, double uptime_s) {
    size_t len = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const metric_row_t *r = &rows[i];
        APPEND("# HELP %s %s\n# TYPE %s %s\n%s %llu\n", r->name, r->help, r->name, r->type,
               r->name, (unsigned long long)*r->value);
    }
    APPEND("# HELP parley_errors_total Client errors by kind.\n"
           "# TYPE parley_errors_total counter\n");
    for (int k = 0; k < ERR_NKINDS; k++)
        APPEND("parley_errors_total{kind=\"%s\"} %llu\n", err_names[k],
               (unsigned long long)metrics.errors[k]);
    APPEND("# HELP parley_upgrades_rejected_total WebSocket upgrades refused with an HTTP "
           "status, by reason.\n# TYPE parley_upgrades_rejected_total counter\n");
    for (int k = 0; k < REJ_NKINDS; k++)
        APPEND("parley_upgrades_rejected_total{reason=\"%s\"} %llu\n", reject_names[k],
               (unsigned long long)metrics.rejected[k]);
    APPEND("# HELP parley_loop_iteration_seconds Event loop iterations by their duration, from "
           "the return of the wait for I/O to the next wait.\n"
           "# TYPE parley_loop_iteration_seconds histogram\n");
    uint64_t cumulative = 0;
    for (int b = 0; b < LOOP_BUCKETS; b++) {
        cumulative += metrics.loop_iterations[b];
        if (b < LOOP_BUCKETS - 1)
            APPEND("parley_loop_iteration_seconds_bucket{le=\"%g\"} %llu\n", loop_bucket_le[b],
                   (unsigned long long)cumulative);
        else
            APPEND("parley_loop_iteration_seconds_bucket{le=\"+Inf\"} %llu\n",
                   (unsigned long long)cumulative);
    }
    APPEND("parley_loop_iteration_seconds_sum %.6f\nparley_loop_iteration_seconds_count %llu\n",
           metrics.loop_seconds, (unsigned long long)cumulative);
    APPEND("# HELP parley_uptime_seconds Seconds since the server started.\n"
           "# TYPE parley_uptime_seconds gauge\nparley_uptime_seconds %.3f\n", uptime_s);
    return len;
}
