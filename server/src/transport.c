/* transport.c -- the lws callback: dispatch only. */
#include "transport.h"

#include <string.h>

#include "gate.h"
#include "http.h"
#include "log.h"
#include "session.h"
#include "tls.h"

/* lws 4.1's lws_get_urlarg_by_name() stops at the first parameter that does
 * not fit its buffer, so a long token before vsn would hide vsn: this reads
 * every parameter into a buffer that holds the longest token. */
int transport_url_arg(struct lws *wsi, const char *name, char *out, size_t size) {
    char frag[AUTH_TOKEN_MAX + 64];
    size_t nl = strlen(name);
    for (int n = 0;; n++) {
        int flen = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, n);
        if (flen <= 0)
            return 0;
        if ((size_t)flen >= sizeof frag ||
            lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, n) < 0)
            continue; /* longer than any parameter we read; not ours */
        if (strncmp(frag, name, nl) != 0 || frag[nl] != '=')
            continue;
        size_t vl = strlen(frag + nl + 1);
        if (vl >= size)
            return -1;
        memcpy(out, frag + nl + 1, vl + 1);
        return 1;
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    session_t *s = user;
    char uri[256], vsn[32], ser[32];

    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        /* While stopping, new TCP connections are closed at once. */
        return http_stopping ? 1 : 0;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* Path, capacity, Origin and token, answered with an HTTP status
         * before the upgrade. */
        gate_head_in(wsi);
        return in && strcmp(in, "websocket") == 0 ? gate_admit(wsi) : -1;

    case LWS_CALLBACK_FILTER_HTTP_CONNECTION: /* a plain HTTP request's head is in */
        gate_head_in(wsi);
        return lws_callback_http_dummy(wsi, reason, user, in, len);

    case LWS_CALLBACK_WSI_DESTROY:
        gate_wsi_destroyed(wsi);
        return lws_callback_http_dummy(wsi, reason, user, in, len);

    case LWS_CALLBACK_ESTABLISHED: {
        int hv = transport_url_arg(wsi, "vsn", vsn, sizeof vsn);
        int hz = transport_url_arg(wsi, "serializer", ser, sizeof ser);
        /* A token's identity, or without one the "user" parameter's
         * (anyone may claim any name): checked and made by gate_admit. */
        auth_identity_t *id = gate_take(wsi);
        /* An over-long vsn or serializer is unsupported, not absent. */
        session_open(s, wsi, hv < 0 ? "?" : hv ? vsn : NULL, hz < 0 ? "?" : hz ? ser : NULL, id);
        return 0;
    }

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return session_peer_closed(s);

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

    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
        return tls_configure_ctx(user); /* user: the vhost's SSL_CTX */

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
    protocols[0].name = TRANSPORT_PROTOCOL;
    protocols[0].callback = callback;
    protocols[0].per_session_data_size = sizeof(session_t);
    protocols[0].rx_buffer_size = rx_buffer;
    /* lws cuts every write into pieces of tx_packet_size bytes, or of
     * rx_buffer_size when this is 0, buffering the rest until POLLOUT: with a
     * small read buffer that would turn one gathered write into dozens. */
    protocols[0].tx_packet_size = TRANSPORT_TX_PACKET;
}
