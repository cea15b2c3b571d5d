/* tls.c -- the SSL_CTX of the listening port: certificate, versions,
 * ciphers, failed handshakes; see tls.h.
 *
 * We load the certificate and key ourselves rather than through lws'
 * ssl_cert_filepath: the errors are ours to word, and lws' loader would also
 * narrow the key exchange to the single curve P-256. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "metrics.h"

/* At most one line about failed handshakes per this many seconds: a port
 * scanner or a misconfigured client in a reconnect loop fails fast. */
#define HANDSHAKE_LOG_S 10.0

static char describe_buf[96] = "tls=off";
static double last_failure_log = -1e9;
static unsigned long failures_unlogged;

int tls_enabled(void) {
    return config.tls_cert && *config.tls_cert;
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    return -1;
}

/* OpenSSL's reason for the earliest queued error; clears the queue. */
static const char *ssl_reason(unsigned long *code) {
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (code)
        *code = e;
    ERR_clear_error();
    return r ? r : "unknown error";
}

/* Loads the certificate chain and key, and sets the versions and ciphers.
 * Returns 0, or -1 with the reason in err. */
static int load(SSL_CTX *ctx, char *err, size_t size) {
    const char *flags[2] = {"--tls-cert", "--tls-key"};
    const char *paths[2] = {config.tls_cert, config.tls_key};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "r");
        if (!f) {
            snprintf(err, size, "%s %s: %s", flags[i], paths[i], strerror(errno));
            return -1;
        }
        fclose(f);
    }
    ERR_clear_error();
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, config.tls_cert) != 1) {
        snprintf(err, size, "--tls-cert %s: not a PEM certificate (%s)", config.tls_cert,
                 ssl_reason(NULL));
        return -1;
    }
    unsigned long code;
    if (SSL_CTX_use_PrivateKey_file(ctx, config.tls_key, SSL_FILETYPE_PEM) != 1) {
        const char *why = ssl_reason(&code);
        if (ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, size, "--tls-key %s does not match the certificate in --tls-cert %s",
                     config.tls_key, config.tls_cert);
        else
            snprintf(err, size, "--tls-key %s: not an unencrypted PEM private key (%s)",
                     config.tls_key, why);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, size, "--tls-key %s does not match the certificate in --tls-cert %s",
                 config.tls_key, config.tls_cert);
        return -1;
    }
    /* TLS 1.0 and 1.1 are refused whatever the cipher string says
     * (OpenSSL 3 disables them only at its default security level). A
     * client-initiated renegotiation costs the server a handshake on demand
     * and nothing here needs it. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_set_cipher_list(ctx, config.tls_ciphers) != 1) {
        snprintf(err, size, "--tls-ciphers \"%s\": no cipher matches (%s)", config.tls_ciphers,
                 ssl_reason(NULL));
        return -1;
    }
    return 0;
}

int tls_check(void) {
    if (!tls_enabled())
        return 0;
    char err[512];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        fprintf(stderr, "parley: cannot create a TLS context (%s)\n", ssl_reason(NULL));
        return -1;
    }
    int rc = load(ctx, err, sizeof err);
    SSL_CTX_free(ctx);
    if (rc)
        fprintf(stderr, "parley: %s\n", err);
    return rc;
}

void tls_context_info(struct lws_context_creation_info *info) {
    if (!tls_enabled())
        return;
    /* The vhost gets an SSL_CTX without lws loading a certificate into it;
     * tls_configure_ctx() does (LOAD_EXTRA_SERVER_VERIFY_CERTS). */
    info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_CREATE_VHOST_SSL_CTX;
    /* HTTP/1.1 only: over h2 a WebSocket would be a stream inside the
     * connection (RFC 8441), and session.c writes whole frames to the
     * connection itself. */
    info->alpn = "http/1.1";
}

/* ---- failed handshakes --------------------------------------------------- */

static void peer_name(const SSL *ssl, char *out, size_t size) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0, v6 = 0;
    int fd = SSL_get_fd(ssl);
    if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            v6 = 1;
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        } else if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        }
    }
    if (v6)
        snprintf(out, size, "[%s]:%d", host, port);
    else
        snprintf(out, size, "%s:%d", host, port);
}

/* OpenSSL's info callback: SSL_accept() ending without success, with an
 * error queued, is a failed handshake (an accept that only waits for more
 * bytes queues none: lws clears the queue before each call). lws does not
 * tell its protocol about these connections at all: they end before HTTP. */
static void on_info(const SSL *ssl, int where, int ret) {
    if ((where & SSL_CB_ACCEPT_EXIT) != SSL_CB_ACCEPT_EXIT || ret > 0)
        return;
    unsigned long e = ERR_peek_error();
    if (!e)
        return;
    metrics.tls_handshake_failures++;
    double now = ev_now(EV_DEFAULT);
    if (now - last_failure_log < HANDSHAKE_LOG_S) {
        failures_unlogged++;
        return;
    }
    const char *why = ERR_reason_error_string(e);
    char peer[INET6_ADDRSTRLEN + 10], q[96];
    peer_name(ssl, peer, sizeof peer);
    plog(LOG_WARN, "tls_handshake_failed", "peer=%s reason=%s not_logged=%lu", peer,
         log_quote(why ? why : "unknown", q, sizeof q), failures_unlogged);
    last_failure_log = now;
    failures_unlogged = 0;
}

/* ---- the vhost's context ------------------------------------------------- */

static void describe(SSL_CTX *ctx) {
    char expires[16] = "?";
    X509 *x = SSL_CTX_get0_certificate(ctx);
    struct tm tm;
    if (x && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
        strftime(expires, sizeof expires, "%Y-%m-%d", &tm);
    snprintf(describe_buf, sizeof describe_buf, "tls=on tls_min=TLSv1.2 cert_expires=%s",
             expires);
    if (x && X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
        plog(LOG_WARN, "tls_cert_expired", "cert=%s expired=%s", config.tls_cert, expires);
}

int tls_configure_ctx(void *ssl_ctx) {
    SSL_CTX *ctx = ssl_ctx;
    char err[512];
    if (!ctx || !tls_enabled())
        return 0;
    if (load(ctx, err, sizeof err)) {
        char q[600];
        plog(LOG_ERROR, "tls_config_failed", "err=%s", log_quote(err, q, sizeof q));
        return -1;
    }
    SSL_CTX_set_info_callback(ctx, on_info);
    describe(ctx);
    return 0;
}

const char *tls_describe(void) {
    return describe_buf;
}
