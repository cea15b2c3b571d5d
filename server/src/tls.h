/* tls.h -- TLS on the listening port, through OpenSSL. lws runs the
 * handshakes and the records (SSL_accept, SSL_read, SSL_write); this module
 * sets up the one SSL_CTX they use: the certificate chain and key from
 * --tls-cert/--tls-key, TLS 1.2 as the oldest version, the TLS 1.2 ciphers
 * from --tls-ciphers, and the accounting of failed handshakes (a log line,
 * rate-limited, and parley_tls_handshake_failures_total).
 *
 * With TLS on, the port speaks only TLS: wss:// for the socket, https:// for
 * /healthz, /metrics and static files. See docs/tls.md. */
#ifndef PARLEY_TLS_H
#define PARLEY_TLS_H

#include <stddef.h>

struct lws_context_creation_info;

/* 1 when a certificate and key are configured. */
int tls_enabled(void);

/* Loads the configured certificate, key and ciphers into a scratch context,
 * so that a bad setting stops the server before it starts anything. Returns
 * 0, or -1 after printing why to stderr. Does nothing when TLS is off. */
int tls_check(void);

/* Adds what lws needs to serve TLS to the context's creation info (its
 * vhost gets an SSL_CTX, configured by tls_configure_ctx()). Does nothing
 * when TLS is off. */
void tls_context_info(struct lws_context_creation_info *info);

/* Configures the vhost's SSL_CTX; called from the lws callback
 * LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS while the context is
 * created. Returns 0, or -1 (logged), which makes context creation fail. */
int tls_configure_ctx(void *ssl_ctx);

/* The TLS fields of the `listening` log line: "tls=off", or "tls=on" with
 * the oldest version and the certificate's expiry. */
const char *tls_describe(void);

#endif
