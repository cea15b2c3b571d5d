/* listener.h -- the listening socket, ours rather than libwebsockets': we
 * accept connections on the libev loop and hand each to lws
 * (lws_adopt_socket_vhost). Owning it lets us set SO_REUSEPORT (lws 4.1 sets
 * it only with several service threads) and close it when stopping (lws
 * 4.1's lws_context_deprecate() uses the listener after freeing it). */
#ifndef PARLEY_LISTENER_H
#define PARLEY_LISTENER_H

struct lws_vhost;

/* Binds host:port (port 0: any free one) and starts accepting into vh.
 * sniff_bearer: read each request head first and take a Phoenix authToken
 * protocol entry out of it (see listener.c). Returns the bound port, or -1
 * (errno set; a log line written). */
int listener_start(const char *host, int port, int reuseport, struct lws_vhost *vh,
                   int sniff_bearer);

/* Stops accepting and closes the socket: new connections are refused (or,
 * with SO_REUSEPORT, go to the other nodes on the port). */
void listener_stop(void);

#endif
