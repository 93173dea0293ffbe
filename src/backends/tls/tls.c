/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * EVPL_STREAM_SOCKET_TLS: TLS 1.2/1.3 over the kernel TCP socket machinery.
 * OpenSSL does the handshake on the socket; the records after it are the
 * kernel's (kTLS), ours (record.c, TLS 1.3) or OpenSSL's (TLS 1.2).
 *
 *  - Secure by default: clients verify the server certificate against the
 *    configured CA (or the system store) and its host name or IP address
 *    (SNI is sent for names); TLS 1.0/1.1 and renegotiation are refused.
 *    Servers ask for a client certificate and verify it when a CA is
 *    configured, but do not require one (upstream requires one: a quirk).
 *  - CONNECTED comes after the handshake; a handshake that stalls longer
 *    than the handshake timeout closes the bind.
 *  - Our record layer seals records straight from the send ring into slab
 *    buffers, a batch per write, and opens received records in place,
 *    handing their plaintext to the application as slices (record.h).
 *  - OpenSSL's (TLS 1.2, or EVPL_TLS_RECORD_LAYER=openssl): small iovecs
 *    are gathered into one record of up to 16 KiB, large ones encrypted
 *    from the application's buffer; reads decrypt into buffer space that
 *    is handed to the application.
 *  - kTLS (ktls.c): where the kernel has it and the config allows it, TLS
 *    1.3 keys go to the kernel after the handshake (servers: both
 *    directions; clients: sending, since servers may send post-handshake
 *    messages the kernel would hand back); those directions then use the
 *    plain socket path.  The log says which record layer is in use.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <linux/tls.h>

#include "backends/socket/socket.h"
#include "backends/tls/ktls.h"
#include "backends/tls/record.h"

#define TLS_RECORD       16384
#define TLS_READ_BUDGET  64
#define HANDSHAKE_MS_DEF 10000

struct tls_conn {
    SSL *ssl;
    int tcp_up;           /* TCP connected (always for accepted ones) */
    int secure;           /* handshake done */
    int read_wants_write; /* SSL_read needs the socket writable */
    int write_wants_read; /* SSL_write needs the socket readable */
    size_t wpending;      /* length of a write to repeat after WANT_WRITE */
    int ktls_tx, ktls_rx; /* the kernel does this direction's records */
    int utls_tx, utls_rx; /* our record layer (record.c) does */
    struct ktls_secrets secrets;
    struct tls13 rl;
    char *stage; /* OpenSSL's record layer: small iovecs gathered (on first use) */
    /* OpenSSL's record layer receiving: post-handshake messages it took
     * in, and KeyUpdates since the last data (see msg_seen) */
    unsigned int hs_seen;
    int updates_in_row;
    int update_flood; /* more than EVPL_TLS_UPDATES_IN_A_ROW of them */
    char alpn[256];   /* the protocol ALPN settled on, once secure */
};

static SSL_CTX *client_ctx, *server_ctx;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static int ctx_ok;
static int ktls_use;           /* the kernel takes keys and the config allows it */
static int urec_use;           /* our TLS 1.3 record layer after the handshake */
static atomic_int ktls_logged; /* log the record layer once per process */

static const char *
cfg_or_env(const char *value, const char *env)
{
    const char *e;

    if (value) {
        return value;
    }
    e = getenv(env);
    return e && *e ? e : NULL;
} /* cfg_or_env */

static void
log_ssl_errors(const char *what)
{
    unsigned long e;
    char buf[256];

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        evpl_log_error("tls", "%s: %s", what, buf);
    }
} /* log_ssl_errors */

static int
load_ca(SSL_CTX *ctx, const char *ca)
{
    struct stat st;

    if (!ca) {
        return SSL_CTX_set_default_verify_paths(ctx) == 1 ? 0 : -1;
    }
    if (stat(ca, &st) == 0 && S_ISDIR(st.st_mode)) {
        return SSL_CTX_load_verify_locations(ctx, NULL, ca) == 1 ? 0 : -1;
    }
    return SSL_CTX_load_verify_locations(ctx, ca, NULL) == 1 ? 0 : -1;
} /* load_ca */

/* A throwaway self-signed certificate for a server given none. */
static int
self_signed(SSL_CTX *ctx)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    int ok = 0;

    if (key && x) {
        X509_NAME *name = X509_get_subject_name(x);

        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600);
        X509_set_pubkey(x, key);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) "localhost",
                                   -1, -1, 0);
        X509_set_issuer_name(x, name);
        ok = X509_sign(x, key, EVP_sha256()) > 0 && SSL_CTX_use_certificate(ctx, x) == 1 &&
             SSL_CTX_use_PrivateKey(ctx, key) == 1;
    }
    X509_free(x);
    EVP_PKEY_free(key);
    if (ok) {
        evpl_log_info("tls", "no certificate configured: serving a self-signed one");
    }
    return ok ? 0 : -1;
} /* self_signed */

static int
ctx_common(SSL_CTX *ctx, const struct evpl_global_config *c)
{
    uint64_t opts =
        SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE;

#ifdef SSL_OP_ENABLE_KTLS
    if (c->tls_ktls_enabled) {
        opts |= SSL_OP_ENABLE_KTLS;
    }
#endif
    SSL_CTX_set_options(ctx, opts);
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        return -1;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* read whole bursts of records per syscall, not 5 + 16K at a time */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 4 * TLS_RECORD + 512);
    if (c->tls_cipher_list) {
        /* TLS 1.3 suites are named TLS_*; everything else is a 1.2 list */
        int ok = strncmp(c->tls_cipher_list, "TLS_", 4) == 0
                     ? SSL_CTX_set_ciphersuites(ctx, c->tls_cipher_list)
                     : SSL_CTX_set_cipher_list(ctx, c->tls_cipher_list);

        if (ok != 1) {
            evpl_log_error("tls", "cipher list \"%s\" rejected", c->tls_cipher_list);
            return -1;
        }
    }
    return 0;
} /* ctx_common */

/* "h2,http/1.1" -> the wire format: length-prefixed names */
static int
alpn_wire(const char *list, unsigned char *out, unsigned int cap)
{
    unsigned int n = 0;

    while (*list) {
        const char *comma = strchr(list, ',');
        size_t len = comma ? (size_t) (comma - list) : strlen(list);

        if (len == 0 || len > 255 || n + 1 + len > cap) {
            return -1;
        }
        out[n++] = (unsigned char) len;
        memcpy(out + n, list, len);
        n += (unsigned int) len;
        list += len + (comma ? 1 : 0);
    }
    return (int) n;
} /* alpn_wire */

/* The process-wide ALPN list (wire format): what listeners select from
 * and what connections offer unless told otherwise.  Set at init from
 * the config, or at run time with evpl_tls_set_alpn. */
static pthread_mutex_t alpn_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char alpn[256];
static int alpn_len;

/* Server side: our first preference the client offered; none is fine.
 * The answer points into the client's list (valid for the handshake). */
static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
            unsigned int inlen, void *arg)
{
    int rc = SSL_TLSEXT_ERR_NOACK;

    pthread_mutex_lock(&alpn_lock);
    for (int i = 0; i < alpn_len && rc != SSL_TLSEXT_ERR_OK; i += 1 + alpn[i]) {
        for (unsigned int j = 0; j < inlen; j += 1u + in[j]) {
            if (in[j] == alpn[i] && j + 1u + in[j] <= inlen &&
                memcmp(in + j + 1, alpn + i + 1, alpn[i]) == 0) {
                *out = in + j + 1;
                *outlen = in[j];
                rc = SSL_TLSEXT_ERR_OK;
                break;
            }
        }
    }
    pthread_mutex_unlock(&alpn_lock);
    return rc;
} /* alpn_select */

EVPL_API int
evpl_tls_set_alpn(const char *protocols)
{
    unsigned char w[sizeof(alpn)];
    int n = protocols && *protocols ? alpn_wire(protocols, w, sizeof(w)) : 0;

    if (n < 0) {
        evpl_log_error("tls", "ALPN list \"%s\" rejected", protocols);
        return -1;
    }
    pthread_mutex_lock(&alpn_lock);
    memcpy(alpn, w, (size_t) n);
    alpn_len = n;
    pthread_mutex_unlock(&alpn_lock);
    return 0;
} /* evpl_tls_set_alpn */

static void
ctx_init(void)
{
    const struct evpl_global_config *c = evpl_shared->config;
    const char *cert = cfg_or_env(c->tls_cert, "EVPL_TLS_CERT");
    const char *key = cfg_or_env(c->tls_key, "EVPL_TLS_KEY");
    const char *ca = cfg_or_env(c->tls_ca, "EVPL_TLS_CA");

    client_ctx = SSL_CTX_new(TLS_client_method());
    server_ctx = SSL_CTX_new(TLS_server_method());
    if (!client_ctx || !server_ctx || ctx_common(client_ctx, c) < 0 ||
        ctx_common(server_ctx, c) < 0) {
        log_ssl_errors("context");
        return;
    }

    ktls_use = c->tls_ktls_enabled && evpl__ktls_kernel();
    {
        const char *e = getenv("EVPL_TLS_RECORD_LAYER");

        urec_use = !(e && strcmp(e, "openssl") == 0);
    }
    if (ktls_use || urec_use) {
        SSL_CTX_set_keylog_callback(client_ctx, evpl__ktls_keylog);
        SSL_CTX_set_keylog_callback(server_ctx, evpl__ktls_keylog);
        /* no session tickets (we do not resume; a post-handshake message
         * would take a record number the kernel does not know of), and no
         * reading past the handshake: the first data record is the new
         * record layer's (OpenSSL's receivers read ahead again after) */
        SSL_CTX_set_num_tickets(server_ctx, 0);
        SSL_CTX_set_read_ahead(server_ctx, 0);
        SSL_CTX_set_read_ahead(client_ctx, 0);
    }

    if (c->tls_alpn && evpl_tls_set_alpn(c->tls_alpn)) {
        return;
    }
    SSL_CTX_set_alpn_select_cb(server_ctx, alpn_select, NULL);

    if (load_ca(client_ctx, ca) < 0) {
        evpl_log_error("tls", "cannot load CA %s", ca ? ca : "(system store)");
        log_ssl_errors("CA");
        return;
    }
    SSL_CTX_set_verify(client_ctx, c->tls_verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (!c->tls_verify_peer) {
        evpl_log_info("tls", "peer verification disabled by configuration");
    }

    if (cert && key) {
        if (SSL_CTX_use_certificate_chain_file(server_ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(server_ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(server_ctx) != 1) {
            evpl_log_error("tls", "cannot load certificate %s / key %s", cert, key);
            log_ssl_errors("certificate");
            return;
        }
        /* the same identity serves as the client certificate */
        (void) SSL_CTX_use_certificate_chain_file(client_ctx, cert);
        (void) SSL_CTX_use_PrivateKey_file(client_ctx, key, SSL_FILETYPE_PEM);
    } else if (self_signed(server_ctx) < 0) {
        log_ssl_errors("self-signed certificate");
        return;
    }
    if (c->tls_verify_peer && ca) {
        /* ask for a client certificate and verify one if given */
        if (load_ca(server_ctx, ca) < 0) {
            log_ssl_errors("CA");
            return;
        }
        SSL_CTX_set_verify(server_ctx, SSL_VERIFY_PEER, NULL);
    }
    ctx_ok = 1;
} /* ctx_init */

static int
tls_available(void)
{
    return 1; /* OpenSSL is linked in; configuration errors fail the bind */
} /* tls_available */

/* A listener that could never complete a handshake is a failed listen
 * (net.md §4), not a stream of connections that all fail. */
static int
tls_listen(struct evpl *evpl, const struct evpl_protocol *protocol, struct evpl_listener *listener,
           struct evpl_address *address, void **state)
{
    pthread_once(&ctx_once, ctx_init);
    if (!ctx_ok) {
        evpl_log_error("tls", "cannot listen: TLS is not usable (see the errors above)");
        return -EINVAL;
    }
    return evpl__stream_listen(evpl, protocol, listener, address, state);
} /* tls_listen */

static struct tls_conn *
conn_of(struct evpl_bind *bind)
{
    return bind->backend;
} /* conn_of */

/* Reads shorter than this are copied out of the reserved tail (which then
 * stays free for the next read): a record's worth of tail is reserved for
 * every read, and with small buffers each short record (a peer padding a
 * few bytes to 16 KiB) would otherwise keep a whole buffer alive. */
#define TLS_COPY_BELOW 2048

/* Keep the n bytes read into the reserved iov on the receive ring. */
static int
keep_read(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *iov, size_t n)
{
    if (n < TLS_COPY_BELOW) {
        int rc = evpl__tls_recv_copy(evpl, bind, iov->data, n);

        evpl_iovec_release(evpl, iov);
        return rc;
    }
    iov->length = (unsigned int) n;
    evpl_iovec_commit(evpl, 0, iov, 1);
    evpl_iovec_ring_append_coalesce(evpl, &bind->recv_ring, iov);
    return 0;
} /* keep_read */

static void tls_read(struct evpl *evpl, struct evpl_bind *bind);
static void ktls_read(struct evpl *evpl, struct evpl_bind *bind);
static void conn_read(struct evpl *evpl, struct evpl_bind *bind);

static unsigned int
handshake_ms(void)
{
    unsigned int ms = evpl_shared->config->tls_handshake_timeout_ms;

    return ms ? ms : HANDSHAKE_MS_DEF;
} /* handshake_ms */

static void
handshake_timeout(struct evpl *evpl, struct evpl_timer *timer)
{
    struct evpl_bind *bind = container_of(timer, struct evpl_bind, retry);

    evpl_log_error("tls", "handshake did not complete within %u ms: closing", handshake_ms());
    evpl__bind_fail(evpl, bind, -ETIMEDOUT);
} /* handshake_timeout */

/* OpenSSL's record layer receiving: count the peer's post-handshake
 * messages, so that tls_read can bound them (EVPL_TLS_READ_WORK). */
static void
msg_seen(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl,
         void *arg)
{
    struct tls_conn *t = arg;

    (void) version;
    (void) ssl;
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len >= 1) {
        t->hs_seen++;
        /* (checked after the SSL_read this happens in: one SSL_read goes
         * on through what it has buffered, up to its first data) */
        if (((const uint8_t *) buf)[0] == SSL3_MT_KEY_UPDATE &&
            ++t->updates_in_row > EVPL_TLS_UPDATES_IN_A_ROW) {
            t->update_flood = 1;
        }
    }
} /* msg_seen */

/*
 * Who does each direction's records from now on.  The kernel where it can
 * (servers: both directions; clients: sending, since servers may send
 * post-handshake messages), our record layer for the rest - provided it
 * or the kernel receives: OpenSSL receiving must also send (its answers to
 * post-handshake messages carry its own record numbers).
 */
static void
record_layers(struct tls_conn *t, int server)
{
    /* what OpenSSL gave the kernel itself (a build with kTLS: sending
     * only, in 3.0), then the rest from here; receiving elsewhere only
     * with nothing read past the handshake */
    int tx = BIO_get_ktls_send(SSL_get_wbio(t->ssl)) != 0;
    int rx = BIO_get_ktls_recv(SSL_get_rbio(t->ssl)) != 0;
    int clean = !SSL_has_pending(t->ssl);
    int urx = 0, utx = 0;
    /* the kernel and our layer write full 16 KiB records: not when the
     * peer negotiated a smaller maximum fragment length (RFC 6066) */
    int full_records = SSL_SESSION_get_max_fragment_length(SSL_get_session(t->ssl)) ==
                       TLSEXT_max_fragment_length_DISABLED;

    if (ktls_use && full_records && (!tx || (server && clean && !rx))) {
        int krc = evpl__ktls_install(SSL_get_fd(t->ssl), t->ssl, &t->secrets, server, !tx,
                                     server && clean && !rx);

        if (krc > 0) {
            tx |= (krc & 1) != 0;
            rx |= (krc & 2) != 0;
        } else {
            evpl_log_debug("tls", "kTLS not used on this connection: %s", strerror(-krc));
        }
    }
    if (urec_use && full_records && clean && !rx && evpl__tls13_fits() &&
        evpl__tls13_start(&t->rl, t->ssl, &t->secrets, server, !tx, 1) == 0) {
        urx = 1;
        utx = !tx;
    }
    if (!rx && !urx) {
        SSL_set_read_ahead(t->ssl, 1); /* OpenSSL receives: whole bursts per read */
        /* SSL_read returns after a post-handshake message it had no
         * more buffered bytes behind (else it reads on while a peer
         * sends them), and tls_read counts them */
        SSL_clear_mode(t->ssl, SSL_MODE_AUTO_RETRY);
        SSL_set_msg_callback_arg(t->ssl, t);
        SSL_set_msg_callback(t->ssl, msg_seen);
    }
    t->ktls_tx = tx;
    t->ktls_rx = rx && clean;
    t->utls_tx = utx;
    t->utls_rx = urx;
} /* record_layers */

static void
conn_read(struct evpl *evpl, struct evpl_bind *bind)
{
    struct tls_conn *t = conn_of(bind);

    if (t->ktls_rx) {
        ktls_read(evpl, bind);
    } else if (t->utls_rx) {
        evpl__tls13_read(evpl, bind, &t->rl);
    } else {
        tls_read(evpl, bind);
    }
} /* conn_read */

/*
 * What an OpenSSL failure means for DISCONNECTED: the peer ended the
 * connection (a fatal alert from it, the TCP stream cut short or reset)
 * is -ECONNRESET; a record or message that breaks the protocol is -EPROTO.
 */
static int
ssl_failure_status(int err)
{
    unsigned long e = ERR_peek_error();
    int reason = e ? ERR_GET_REASON(e) : 0;

    if (err != SSL_ERROR_SSL || e == 0 || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING ||
        reason >= SSL_AD_REASON_OFFSET) { /* "sslv3 alert ...": the peer's alert */
        return -ECONNRESET;
    }
    return -EPROTO;
} /* ssl_failure_status */

/* Drive the handshake as far as the socket allows. */
static void
handshake(struct evpl *evpl, struct evpl_bind *bind)
{
    struct tls_conn *t = conn_of(bind);
    int rc, err, status;
    long vr;

    ERR_clear_error();
    rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        int server = SSL_is_server(t->ssl);

        t->secure = 1;
        evpl_remove_timer(evpl, &bind->retry);
        record_layers(t, server);
        OPENSSL_cleanse(&t->secrets, sizeof(t->secrets));
        if (!atomic_exchange(&ktls_logged, 1)) {
            evpl_log_info("tls", "%s, %s; record layer: %s", SSL_get_version(t->ssl),
                          SSL_get_cipher_name(t->ssl),
                          t->ktls_rx ? "kernel (kTLS), both directions"
                          : t->utls_rx
                              ? (t->ktls_tx ? "kernel (kTLS) for sending, ours for receiving"
                                            : "ours (TLS 1.3 records), both directions")
                          : t->ktls_tx ? "kernel (kTLS) for sending, OpenSSL for receiving"
                                       : "OpenSSL");
        }
        evpl__event_clear(evpl, &bind->event, EVPL_EV_WRITE_INTEREST);
        evpl__bind_connected(evpl, bind);
        /* records that came with the last handshake flight are buffered */
        conn_read(evpl, bind);
        return;
    }
    err = SSL_get_error(t->ssl, rc);
    if (err == SSL_ERROR_WANT_READ) {
        evpl__event_clear(evpl, &bind->event, EVPL_EV_READABLE | EVPL_EV_WRITE_INTEREST);
        return;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        evpl__stream_wait_writable(evpl, bind);
        return;
    }
    vr = SSL_get_verify_result(t->ssl);
    status =
        vr != X509_V_OK ? -EACCES : ssl_failure_status(err); /* before the log drains the errors */
    if (vr != X509_V_OK) {
        evpl_log_error("tls", "peer certificate rejected (%s): %s",
                       bind->peer_name ? bind->peer_name : "client",
                       X509_verify_cert_error_string(vr));
    } else {
        evpl_log_error("tls", "handshake with %s failed",
                       bind->peer_name ? bind->peer_name : "a client");
    }
    log_ssl_errors("handshake");
    evpl__event_clear(evpl, &bind->event, EVPL_EV_READ_INTEREST | EVPL_EV_WRITE_INTEREST);
    evpl__bind_fail(evpl, bind, status);
} /* handshake */

/* Decrypt what the socket has into buffer space, then deliver. */
static void
tls_read(struct evpl *evpl, struct evpl_bind *bind)
{
    struct tls_conn *t = conn_of(bind);
    uint64_t total = 0;
    unsigned int hs_start = t->hs_seen;
    int status = 1;

    for (int budget = TLS_READ_BUDGET; budget > 0; budget--) {
        struct evpl_iovec iov;
        unsigned int hs_before = t->hs_seen;
        size_t n = 0;
        int err, ok, more;

        if (bind->flags & (EVPL_BIND_READ_PAUSED | EVPL_BIND_CLOSING)) {
            evpl__event_clear(evpl, &bind->event, EVPL_EV_READ_INTEREST);
            break;
        }
        if (evpl__iovec_reserve_tail(evpl, TLS_RECORD, &iov) < 0) {
            status = -ENOMEM;
            break;
        }
        ERR_clear_error();
        ok = SSL_read_ex(t->ssl, iov.data, iov.length, &n) == 1;
        if (t->update_flood) {
            evpl_iovec_release(evpl, &iov);
            evpl_log_error("tls", "over %d KeyUpdates with no data between: closing",
                           EVPL_TLS_UPDATES_IN_A_ROW);
            status = -EPROTO;
            break;
        }
        /* post-handshake messages this read took in: past the bound, the
         * rest waits for the next pass (READABLE stays set) */
        more = (t->hs_seen - hs_start) * EVPL_TLS_UPDATE_COST < EVPL_TLS_READ_WORK;
        if (ok) {
            if (keep_read(evpl, bind, &iov, n) < 0) {
                status = -ENOMEM;
                break;
            }
            total += n;
            t->updates_in_row = 0;
            if (!more || evpl__stream_recv_full(bind)) {
                break; /* (READABLE stays: OpenSSL may hold more) */
            }
            continue;
        }
        evpl_iovec_release(evpl, &iov);
        err = SSL_get_error(t->ssl, 0);
        if (err == SSL_ERROR_WANT_READ && t->hs_seen != hs_before) {
            /* a post-handshake message ended the read, not the socket */
            if (more) {
                continue;
            }
        } else if (err == SSL_ERROR_WANT_READ) {
            evpl__event_clear(evpl, &bind->event, EVPL_EV_READABLE);
        } else if (err == SSL_ERROR_WANT_WRITE) {
            t->read_wants_write = 1;
            evpl__stream_wait_writable(evpl, bind);
        } else if (err == SSL_ERROR_ZERO_RETURN) {
            status = 0; /* close_notify: orderly end */
        } else {
            /* a record that breaks the protocol (a forged tag, a record
             * too long, plaintext after the handshake) is -EPROTO; the
             * stream cut short (no close_notify) or the TCP connection
             * broken is -ECONNRESET */
            status = ssl_failure_status(err);
            log_ssl_errors("read");
        }
        break;
    }
    evpl__stream_read_end(evpl, bind, total != 0, status);
} /* tls_read */

/* Receive with the kernel doing the records: like a plain socket, except
 * that a record other than application data (an alert, a post-handshake
 * message) comes with its type in a control message. */
static void
ktls_read(struct evpl *evpl, struct evpl_bind *bind)
{
    uint64_t total = 0;
    int status = 1;

    for (int budget = TLS_READ_BUDGET; budget > 0; budget--) {
        union {
            char buf[CMSG_SPACE(sizeof(uint8_t))];
            struct cmsghdr align;
        } ctrl;
        struct evpl_iovec iov;
        struct iovec v;
        struct msghdr msg = {.msg_iov = &v, .msg_iovlen = 1};
        struct cmsghdr *cm;
        ssize_t n;
        int err;

        if (bind->flags & (EVPL_BIND_READ_PAUSED | EVPL_BIND_CLOSING)) {
            evpl__event_clear(evpl, &bind->event, EVPL_EV_READ_INTEREST);
            break;
        }
        if (evpl__iovec_reserve_tail(evpl, TLS_RECORD, &iov) < 0) {
            status = -ENOMEM;
            break;
        }
        v.iov_base = iov.data;
        v.iov_len = iov.length;
        msg.msg_control = ctrl.buf;
        msg.msg_controllen = sizeof(ctrl.buf);
        n = recvmsg(bind->event.fd, &msg, MSG_DONTWAIT);
        err = errno;
        cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
        if (cm && cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE &&
            *CMSG_DATA(cm) != 23) {
            uint8_t type = *CMSG_DATA(cm);
            int close_notify = type == 21 && n >= 2 && ((uint8_t *) iov.data)[1] == 0;

            evpl_iovec_release(evpl, &iov);
            if (close_notify) {
                status = 0; /* close_notify */
            } else {
                evpl_log_error("tls", "record of type %u (%s) under kernel TLS: closing", type,
                               type == 21 ? "alert" : "post-handshake message");
                status = -EPROTO;
            }
            break;
        }
        if (n > 0) {
            if (keep_read(evpl, bind, &iov, (size_t) n) < 0) {
                status = -ENOMEM;
                break;
            }
            total += (uint64_t) n;
            if (evpl__stream_recv_full(bind)) {
                break;
            }
            continue;
        }
        evpl_iovec_release(evpl, &iov);
        if (n < 0 && err == EINTR) {
            continue;
        }
        if (n == 0) {
            /* an end without close_notify (that came as a record above):
             * what was sent may be cut, as on the other record layers
             * (helper-115) */
            status = -ECONNRESET;
        } else if (err == EAGAIN) {
            evpl__event_clear(evpl, &bind->event, EVPL_EV_READABLE);
        } else {
            /* a record that does not authenticate (EBADMSG), is too long
             * (EMSGSIZE) or has a bad header (EINVAL) breaks the protocol,
             * as on the other record layers; socket errors stay what they
             * are */
            status = err == EBADMSG || err == EMSGSIZE || err == EINVAL ? -EPROTO : -err;
            evpl_log_error("tls", "kernel TLS receive: %s", strerror(err));
        }
        break;
    }
    evpl__stream_read_end(evpl, bind, total != 0, status);
} /* ktls_read */

/* The next write: a large iovec as it is, or small ones gathered. */
static size_t
next_write(struct tls_conn *t, struct evpl_bind *bind, const void **buf)
{
    struct evpl_iovec_fifo *f = &bind->send_ring.fifo;
    struct evpl_iovec *front = evpl_iovec_fifo_front(f);
    size_t want = t->wpending ? t->wpending : TLS_RECORD;
    size_t len = 0;

    if (!t->stage && front->length < want) {
        t->stage = malloc(TLS_RECORD); /* kept: a repeated write needs the same bytes */
    }
    if (front->length >= want || front->length >= TLS_RECORD || !t->stage) {
        /* (without memory to gather into: the front iovec alone) */
        *buf = front->data;
        return t->wpending ? t->wpending : front->length;
    }
    for (uint32_t i = 0; i < evpl_iovec_fifo_count(f) && len < want; i++) {
        struct evpl_iovec *v = evpl_iovec_fifo_at(f, i);
        size_t chunk = v->length < want - len ? v->length : want - len;

        memcpy(t->stage + len, v->data, chunk);
        len += chunk;
    }
    *buf = t->stage;
    return len;
} /* next_write */

static void
tls_flush(struct evpl *evpl, struct evpl_bind *bind)
{
    struct tls_conn *t = conn_of(bind);
    uint64_t bytes = 0, msgs = 0;

    if (!t || !t->secure) {
        return; /* queued until the handshake is done */
    }
    if (t->ktls_tx) {
        evpl__stream_flush(evpl, bind); /* the kernel makes the records */
        return;
    }
    if (t->utls_tx) {
        evpl__tls13_flush(evpl, bind, &t->rl);
        return;
    }
    t->write_wants_read = 0;
    while (bind->send_ring.length) {
        const void *buf;
        size_t len = next_write(t, bind, &buf), done = 0;
        int err;

        ERR_clear_error();
        if (SSL_write_ex(t->ssl, buf, len, &done) == 1) {
            t->wpending = 0;
            evpl_iovec_ring_consume(evpl, &bind->send_ring, done);
            bytes += done;
            if (bind->segment_callback) {
                msgs += evpl__stream_messages_done(bind, done);
            }
            continue;
        }
        err = SSL_get_error(t->ssl, 0);
        if (err == SSL_ERROR_WANT_WRITE) {
            t->wpending = len; /* OpenSSL holds the record: repeat this write */
            evpl__stream_wait_writable(evpl, bind);
            /* (the repeat may come from elsewhere with the same bytes:
             * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER) */
            evpl_iovec_ring_waits(evpl, &bind->send_ring, 0);
            break;
        }
        if (err == SSL_ERROR_WANT_READ) {
            t->wpending = len;
            t->write_wants_read = 1;
            break;
        }
        log_ssl_errors("write");
        evpl__bind_fail(evpl, bind, -ECONNRESET);
        return;
    }
    if (!bind->send_ring.length && !t->read_wants_write) {
        evpl__event_clear(evpl, &bind->event, EVPL_EV_WRITE_INTEREST);
    }
    evpl__bind_sent(evpl, bind, bytes, msgs);
} /* tls_flush */

static int
tcp_connected(struct evpl *evpl, struct evpl_bind *bind)
{
    struct tls_conn *t = conn_of(bind);
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(bind->event.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        err = errno;
    }
    if (err) {
        evpl__event_clear(evpl, &bind->event, EVPL_EV_READ_INTEREST | EVPL_EV_WRITE_INTEREST);
        evpl__bind_fail(evpl, bind, -err);
        return -1;
    }
    t->tcp_up = 1;
    evpl__bind_local_from_fd(bind, bind->event.fd);
    if (SSL_set_fd(t->ssl, bind->event.fd) != 1) {
        evpl__bind_fail(evpl, bind, -ENOMEM);
        return -1;
    }
    return 0;
} /* tcp_connected */

/*
 * Handshake steps a loop takes per pass.  A server's first step signs (a
 * quarter of a millisecond here): 4000 ClientHellos arriving together held
 * every other connection on the loop for a second.  Past the limit a
 * connection keeps its readiness, and the next pass (after the others'
 * events) goes on with it.
 */
#define HANDSHAKE_STEPS_PER_PASS 16

static int
handshake_turn(struct evpl *evpl)
{
    static __thread const struct evpl *loop;
    static __thread uint64_t pass;
    static __thread unsigned int steps;
    uint64_t now = evpl__pass_id(evpl);

    if (loop != evpl || pass != now) {
        loop = evpl;
        pass = now;
        steps = 0;
    }
    return steps++ < HANDSHAKE_STEPS_PER_PASS;
} /* handshake_turn */

/* One progress step on any readiness: connect, handshake, or data. */
static void
progress(struct evpl *evpl, struct evpl_bind *bind, int writable)
{
    struct tls_conn *t = conn_of(bind);

    if (!t->tcp_up) {
        if (!writable && !(bind->event.flags & EVPL_EV_ERROR)) {
            return;
        }
        if (tcp_connected(evpl, bind) < 0) {
            return;
        }
    }
    if (!t->secure) {
        if (handshake_turn(evpl)) {
            handshake(evpl, bind);
        }
        return;
    }
    if (writable) {
        if (t->read_wants_write) {
            t->read_wants_write = 0;
            tls_read(evpl, bind);
        }
        tls_flush(evpl, bind);
    } else {
        if (t->write_wants_read) {
            tls_flush(evpl, bind);
        }
        conn_read(evpl, bind);
    }
} /* progress */

static void
tls_read_event(struct evpl *evpl, struct evpl_event *event)
{
    progress(evpl, evpl_socket_bind(event), 0);
} /* tls_read_event */

static void
tls_write_event(struct evpl *evpl, struct evpl_event *event)
{
    progress(evpl, evpl_socket_bind(event), 1);
} /* tls_write_event */

static int
conn_new(struct evpl *evpl, struct evpl_bind *bind, int server)
{
    struct tls_conn *t;

    pthread_once(&ctx_once, ctx_init);
    if (!ctx_ok) {
        evpl_log_error("tls", "TLS is not usable: see the errors above");
        return -EINVAL;
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        return -ENOMEM;
    }
    t->ssl = SSL_new(server ? server_ctx : client_ctx);
    if (!t->ssl) {
        free(t);
        return -ENOMEM;
    }
    if (server) {
        SSL_set_accept_state(t->ssl);
    } else {
        struct in6_addr a6;
        struct in_addr a4;
        const char *name = bind->peer_name ? bind->peer_name : "";

        SSL_set_connect_state(t->ssl);
        pthread_mutex_lock(&alpn_lock);
        if (alpn_len) {
            SSL_set_alpn_protos(t->ssl, alpn, (unsigned int) alpn_len);
        }
        pthread_mutex_unlock(&alpn_lock);
        if (inet_pton(AF_INET, name, &a4) == 1 || inet_pton(AF_INET6, name, &a6) == 1) {
            /* an address: the certificate must name it (no SNI for IPs) */
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name);
        } else if (*name) {
            SSL_set_tlsext_host_name(t->ssl, name);
            SSL_set1_host(t->ssl, name);
        }
    }
    SSL_set_ex_data(t->ssl, evpl__ktls_ex_index(), &t->secrets);
    bind->backend = t;
    evpl_add_oneshot_timer(evpl, &bind->retry, handshake_timeout, (uint64_t) handshake_ms() * 1000);
    return 0;
} /* conn_new */

static void
take_events(struct evpl_bind *bind)
{
    /* the TCP machinery registered the socket; TLS handles its readiness */
    bind->event.read_cb = tls_read_event;
    bind->event.write_cb = tls_write_event;
    bind->event.error_cb = evpl__stream_error;
} /* take_events */

/* Undo conn_new when the transport never came up (close is not called). */
static void
conn_discard(struct evpl *evpl, struct evpl_bind *bind)
{
    struct tls_conn *t = conn_of(bind);

    evpl_remove_timer(evpl, &bind->retry);
    if (t) {
        evpl__tls13_stop(evpl, &t->rl);
        SSL_free(t->ssl);
        free(t->stage);
        free(t);
        bind->backend = NULL;
    }
} /* conn_discard */

static int
tls_connect(struct evpl *evpl, struct evpl_bind *bind)
{
    int rc = conn_new(evpl, bind, 0);

    if (rc < 0) {
        return rc;
    }
    rc = evpl__stream_connect(evpl, bind);
    if (rc == 0) {
        take_events(bind);
    } else {
        conn_discard(evpl, bind);
    }
    return rc;
} /* tls_connect */

static int
tls_attach(struct evpl *evpl, struct evpl_bind *bind, struct evpl_accepted *conn)
{
    struct tls_conn *t;
    int rc = conn_new(evpl, bind, 1);

    if (rc < 0) {
        return rc;
    }
    rc = evpl__stream_attach(evpl, bind, conn);
    if (rc < 0) {
        conn_discard(evpl, bind);
        return rc;
    }
    take_events(bind);
    t = conn_of(bind);
    t->tcp_up = 1;
    SSL_set_fd(t->ssl, bind->event.fd);
    /* the ClientHello may already be waiting */
    evpl__event_set(evpl, &bind->event, EVPL_EV_READABLE);
    return 0;
} /* tls_attach */

/* Bytes from the peer that no one will read: still in the socket, or
 * records (or their starts) taken from it and not opened.  TCP answers a
 * close with such input with a reset, so the peer learns its data was
 * thrown away; a close_notify first would tell it the opposite. */
static int
input_discarded(struct tls_conn *t, struct evpl_bind *bind)
{
    int queued = 0;

    if (ioctl(bind->event.fd, FIONREAD, &queued) == 0 && queued > 0) {
        return 1;
    }
    if (t->utls_rx) {
        return t->rl.part.length != 0;
    }
    return !t->ktls_rx && SSL_has_pending(t->ssl);
} /* input_discarded */

static void
tls_close(struct evpl *evpl, struct evpl_bind *bind)
{
    struct tls_conn *t = conn_of(bind);

    evpl_remove_timer(evpl, &bind->retry);
    if (t) {
        /* close_notify says nothing was cut off: not after an error, nor
         * with data still queued (an abortive close), nor, on evpl_close,
         * with the peer's input thrown away (TCP resets there, and a
         * finish lingers, draining it, as here: helper-115) */
        if (t->secure && bind->event.fd >= 0 && bind->close_status == 0 &&
            bind->send_ring.length == 0 && !t->wpending &&
            ((bind->flags & EVPL_BIND_FINISH) || !input_discarded(t, bind))) {
            if (t->ktls_tx) {
                evpl__ktls_alert(bind->event.fd, 1, 0);
            } else if (t->utls_tx) {
                evpl__tls13_close_notify(evpl, bind, &t->rl);
            } else {
                ERR_clear_error();
                (void) SSL_shutdown(t->ssl); /* best effort close_notify */
            }
        }
        evpl__tls13_stop(evpl, &t->rl);
        SSL_free(t->ssl);
        free(t->stage);
        free(t);
        bind->backend = NULL;
    }
    ERR_clear_error();
    evpl__stream_close(evpl, bind);
} /* tls_close */

const struct evpl_protocol evpl_protocol_socket_tls = {
    .id = EVPL_STREAM_SOCKET_TLS,
    .name = "STREAM_SOCKET_TLS",
    .stream = 1,
    .connected = 1,
    .own_connected = 1,
    .kind = EVPL_EP_NETWORK,
    .available = tls_available,
    .connect = tls_connect,
    .attach = tls_attach,
    .listen = tls_listen,
    .unlisten = evpl__stream_unlisten,
    .flush = tls_flush,
    .close = tls_close,
    .read_resume = evpl__stream_read_resume,
};

static struct tls_conn *
tls_of(struct evpl_bind *bind)
{
    return bind && bind->protocol == &evpl_protocol_socket_tls ? conn_of(bind) : NULL;
} /* tls_of */

EVPL_API int
evpl_bind_set_alpn(struct evpl_bind *bind, const char *protocols)
{
    struct tls_conn *t = tls_of(bind);
    unsigned char w[256];
    int n = protocols && *protocols ? alpn_wire(protocols, w, sizeof(w)) : 0;

    if (!t || t->secure || n < 0 || SSL_is_server(t->ssl)) {
        return -1;
    }
    /* (0 is success for SSL_set_alpn_protos) */
    return SSL_set_alpn_protos(t->ssl, n ? w : NULL, (unsigned int) n) ? -1 : 0;
} /* evpl_bind_set_alpn */

EVPL_API const char *
evpl_bind_get_alpn(struct evpl_bind *bind)
{
    struct tls_conn *t = tls_of(bind);
    const unsigned char *p;
    unsigned int len = 0;

    if (!t || !t->secure) {
        return NULL;
    }
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    if (!len) {
        return NULL;
    }
    memcpy(t->alpn, p, len);
    t->alpn[len] = '\0';
    return t->alpn;
} /* evpl_bind_get_alpn */
