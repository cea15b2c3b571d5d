/* http.c -- /healthz (JSON) and /metrics (Prometheus text). */
#include "http.h"

#include <ev.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "metrics.h"
#include "presence.h"

double http_started_at;
const char *http_node_id = "";
int http_stopping;

#define BODY_MAX 16384

static int respond(struct lws *wsi, unsigned status, const char *type, const char *body,
                   size_t len) {
    uint8_t hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    static uint8_t out[LWS_PRE + BODY_MAX];
    if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    memcpy(out + LWS_PRE, body, len);
    if (lws_write(wsi, out + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
        return 1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int http_serve(struct lws *wsi, const char *uri) {
    static char body[BODY_MAX];
    double uptime = ev_now(EV_DEFAULT) - http_started_at;
    metrics.http_requests++;
    if (strcmp(uri, "/healthz") == 0) {
        int n = snprintf(body, sizeof body,
                         "{\"status\":\"%s\",\"node\":\"%s\",\"version\":\"%s\","
                         "\"uptime_s\":%.3f,\"connections\":%llu,\"topics\":%llu%s}\n",
                         http_stopping ? "stopping" : "ok", http_node_id, PARLEY_VERSION, uptime,
                         (unsigned long long)metrics.connections,
                         (unsigned long long)metrics.topics, cluster_health_json());
        return respond(wsi, http_stopping ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_OK,
                       "application/json", body, (size_t)n);
    }
    if (strcmp(uri, "/metrics") == 0) {
        metrics.presence_entries = presence_crdt() ? crdt_entries(presence_crdt()) : 0;
        size_t n = metrics_render(body, sizeof body, uptime);
        if (n >= sizeof body)
            n = sizeof body - 1;
        return respond(wsi, HTTP_STATUS_OK, "text/plain; version=0.0.4", body, n);
    }
    static const char nf[] = "not found\n";
    return respond(wsi, HTTP_STATUS_NOT_FOUND, "text/plain", nf, sizeof nf - 1);
}
