/* transport.h -- the libwebsockets protocol table: the callback that turns
 * lws events (accept, receive, writable, close, HTTP request) into calls on
 * session and http. Nothing else lives here. */
#ifndef PARLEY_TRANSPORT_H
#define PARLEY_TRANSPORT_H

#include <libwebsockets.h>

/* Largest single write handed to the kernel: one gathered batch of frames
 * (session.c gathers up to 64 KiB) or one large frame. */
#define TRANSPORT_TX_PACKET (256 * 1024)

/* The protocol's name: phoenix.js asks for the WebSocket protocol
 * "phoenix" when it sends an authToken, and lws answers with the name of
 * the protocol it matched (a browser fails a handshake that names another). */
#define TRANSPORT_PROTOCOL "phoenix"

/* The WebSocket endpoint's path, as Phoenix serves it. */
#define TRANSPORT_WS_PATH "/socket/websocket"

/* Copies the value of query parameter `name` of the request into out.
 * Returns 1 if found, 0 if absent, -1 if present but longer than size - 1. */
int transport_url_arg(struct lws *wsi, const char *name, char *out, size_t size);

/* Fills protocols[0..1] (the second is the terminator). rx_buffer is the
 * per-socket read size. */
void transport_protocols(struct lws_protocols protocols[2], size_t rx_buffer);

#endif
