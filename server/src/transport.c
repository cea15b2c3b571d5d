/* transport.c -- the lws callback: dispatch only. */
#include "transport.h"

#include <string.h>

#include "http.h"
#include "log.h"
#include "session.h"

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    session_t *s = user;
    char uri[256], vsn[32], ser[32], who[300];

    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        /* While stopping, new TCP connections are closed at once. */
        return http_stopping ? 1 : 0;

    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* Only the Phoenix path upgrades to a WebSocket. */
        if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 ||
            strcmp(uri, TRANSPORT_WS_PATH) != 0) {
            char q[96];
            plog(LOG_INFO, "ws_rejected", "path=%s", log_quote(uri, q, sizeof q));
            return 1;
        }
        return 0;

    case LWS_CALLBACK_ESTABLISHED: {
        const char *v = lws_get_urlarg_by_name(wsi, "vsn=", vsn, sizeof vsn);
        const char *z = lws_get_urlarg_by_name(wsi, "serializer=", ser, sizeof ser);
        const char *u = lws_get_urlarg_by_name(wsi, "user=", who, sizeof who);
        session_open(s, wsi, v, z, u);
        return 0;
    }

    case LWS_CALLBACK_RECEIVE:
        session_receive(s, in, len, lws_is_first_fragment(wsi),
                        lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi),
                        lws_frame_is_binary(wsi));
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return session_writable(s);

    case LWS_CALLBACK_CLOSED:
        session_closed(s);
        return 0;

    case LWS_CALLBACK_HTTP:
        if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
            return -1;
        return http_serve(wsi, uri);

    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

void transport_protocols(struct lws_protocols protocols[2], size_t rx_buffer) {
    memset(protocols, 0, 2 * sizeof protocols[0]);
    protocols[0].name = "parley";
    protocols[0].callback = callback;
    protocols[0].per_session_data_size = sizeof(session_t);
    protocols[0].rx_buffer_size = rx_buffer;
    /* lws cuts every write into pieces of tx_packet_size bytes, or of
     * rx_buffer_size when this is 0, buffering the rest until POLLOUT: with a
     * small read buffer that would turn one gathered write into dozens. */
    protocols[0].tx_packet_size = TRANSPORT_TX_PACKET;
}
