/* http.h -- the plain HTTP side of the one port: /healthz, /metrics, and
 * (through an lws mount set up in main.c) static files. */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

struct lws;

/* Serves one HTTP request for `uri`. Returns what the lws callback should
 * return. */
int http_serve(struct lws *wsi, const char *uri);

/* Set by main: loop time of start, and whether the server is stopping. */
extern double http_started_at;
extern const char *http_node_id;
extern int http_stopping;

#endif
