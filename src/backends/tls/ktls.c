/* SPDX-License-Identifier: LGPL-2.1-only */
/* Kernel TLS key installation (see ktls.h). */
#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/kdf.h>

#include "backends/tls/ktls.h"
#include "core/internal.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

static int kernel_ok = -1;
static pthread_once_t kernel_once = PTHREAD_ONCE_INIT;
static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void
ex_init(void)
{
    ex_index = SSL_get_ex_new_index(0, "evpl ktls secrets", NULL, NULL, NULL);
} /* ex_init */

int
evpl__ktls_ex_index(void)
{
    pthread_once(&ex_once, ex_init);
    return ex_index;
} /* evpl__ktls_ex_index */

static void
kernel_probe(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c = -1, s = -1;

    kernel_ok = 0;
    if (l < 0) {
        return;
    }
    if (bind(l, (struct sockaddr *) &a, sizeof(a)) == 0 && listen(l, 1) == 0 &&
        getsockname(l, (struct sockaddr *) &a, &len) == 0) {
        c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c >= 0 && connect(c, (struct sockaddr *) &a, sizeof(a)) == 0) {
            s = accept(l, NULL, NULL);
            /* the ULP attaches only to an established connection */
            kernel_ok = setsockopt(c, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0;
        }
    }
    if (s >= 0) {
        close(s);
    }
    if (c >= 0) {
        close(c);
    }
    close(l);
} /* kernel_probe */

int
evpl__ktls_kernel(void)
{
    pthread_once(&kernel_once, kernel_probe);
    return kernel_ok;
} /* evpl__ktls_kernel */

static int
unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;

    while (h[0] && h[1] && h[0] != ' ' && n < cap) {
        unsigned v;

        if (sscanf(h, "%2x", &v) != 1) {
            return -1;
        }
        out[n++] = (uint8_t) v;
        h += 2;
    }
    return (int) n;
} /* unhex */

void
evpl__ktls_keylog(const SSL *ssl, const char *line)
{
    struct ktls_secrets *s = SSL_get_ex_data(ssl, evpl__ktls_ex_index());
    const char *p;
    int n;

    if (!s) {
        return;
    }
    /* "<LABEL> <client random> <secret>" */
    p = strchr(line, ' ');
    p = p ? strchr(p + 1, ' ') : NULL;
    if (!p) {
        return;
    }
    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) {
        n = unhex(p + 1, s->client, sizeof(s->client));
        s->client_len = n > 0 ? (size_t) n : 0;
    } else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0) {
        n = unhex(p + 1, s->server, sizeof(s->server));
        s->server_len = n > 0 ? (size_t) n : 0;
    }
} /* evpl__ktls_keylog */

/* RFC 8446 7.1 HKDF-Expand-Label(secret, label, "", len) */
int
evpl__tls13_expand_label(const char *digest, const uint8_t *secret, size_t secret_len,
                         const char *label, uint8_t *out, size_t len)
{
    uint8_t info[64];
    size_t ll = strlen(label), n = 0;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, rc = -1;
    OSSL_PARAM params[5];

    info[n++] = (uint8_t) (len >> 8);
    info[n++] = (uint8_t) len;
    info[n++] = (uint8_t) (6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0; /* empty context */
    if (ctx) {
        params[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
        params[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *) digest, 0);
        params[2] =
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *) secret, secret_len);
        params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
        params[4] = OSSL_PARAM_construct_end();
        rc = EVP_KDF_derive(ctx, out, len, params) == 1 ? 0 : -1;
    }
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rc;
} /* evpl__tls13_expand_label */

union crypto_info {
    struct tls12_crypto_info_aes_gcm_128 gcm128;
    struct tls12_crypto_info_aes_gcm_256 gcm256;
    struct tls12_crypto_info_chacha20_poly1305 chacha;
};

/* The TLS 1.3 suites both record layers (the kernel's, ours) do. */
static const struct tls13_suite suites[] = {
    {0x1301, "SHA256", 32, 16, TLS_CIPHER_AES_GCM_128, "AES-128-GCM"},
    {0x1302, "SHA384", 48, 32, TLS_CIPHER_AES_GCM_256, "AES-256-GCM"},
    {0x1303, "SHA256", 32, 32, TLS_CIPHER_CHACHA20_POLY1305, "ChaCha20-Poly1305"},
};

const struct tls13_suite *
evpl__tls13_suite(SSL *ssl)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    uint16_t id = c ? (uint16_t) (SSL_CIPHER_get_id(c) & 0xffff) : 0;

    if (SSL_version(ssl) != TLS1_3_VERSION) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        if (suites[i].id == id) {
            return &suites[i];
        }
    }
    return NULL;
} /* evpl__tls13_suite */

int
evpl__tls13_traffic_key(const struct tls13_suite *su, const uint8_t *secret, size_t secret_len,
                        uint8_t key[32], uint8_t iv[12])
{
    return evpl__tls13_expand_label(su->digest, secret, secret_len, "key", key, su->key_len) < 0 ||
                   evpl__tls13_expand_label(su->digest, secret, secret_len, "iv", iv, 12) < 0
               ? -EINVAL
               : 0;
} /* evpl__tls13_traffic_key */

/* The kernel's description of one direction's key at sequence 0. */
static int
crypto_info(SSL *ssl, const uint8_t *secret, size_t secret_len, union crypto_info *ci,
            socklen_t *len)
{
    const struct tls13_suite *su = evpl__tls13_suite(ssl);
    uint8_t key[32], iv[12];

    if (!su) {
        return -EOPNOTSUPP;
    }
    if (evpl__tls13_traffic_key(su, secret, secret_len, key, iv) < 0) {
        return -EINVAL;
    }
    memset(ci, 0, sizeof(*ci));
    /* every layout starts with the tls_crypto_info header */
    ci->gcm128.info.version = TLS_1_3_VERSION;
    ci->gcm128.info.cipher_type = su->kernel_type;
    switch (su->kernel_type) {
        case TLS_CIPHER_AES_GCM_128: /* salt = IV[0..4), explicit IV = IV[4..12) */
            memcpy(ci->gcm128.key, key, 16);
            memcpy(ci->gcm128.salt, iv, 4);
            memcpy(ci->gcm128.iv, iv + 4, 8);
            *len = sizeof(ci->gcm128);
            break;
        case TLS_CIPHER_AES_GCM_256:
            memcpy(ci->gcm256.key, key, 32);
            memcpy(ci->gcm256.salt, iv, 4);
            memcpy(ci->gcm256.iv, iv + 4, 8);
            *len = sizeof(ci->gcm256);
            break;
        default: /* ChaCha20-Poly1305: the whole IV, no salt */
            memcpy(ci->chacha.key, key, 32);
            memcpy(ci->chacha.iv, iv, 12);
            *len = sizeof(ci->chacha);
            break;
    }
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(iv, sizeof(iv));
    return 0;
} /* crypto_info */

int
evpl__ktls_install(int fd, SSL *ssl, const struct ktls_secrets *s, int server, int tx, int rx)
{
    union crypto_info ci;
    socklen_t len = 0;
    int rc, done = 0;

    if (SSL_version(ssl) != TLS1_3_VERSION || !s->client_len || !s->server_len) {
        return -EOPNOTSUPP; /* TLS 1.2 keys are not exported to us */
    }
    /* EEXIST: OpenSSL (a build with kTLS) attached the ULP already and
     * may have given the kernel a direction itself */
    if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) < 0 && errno != EEXIST) {
        rc = -errno;
        evpl_log_debug("tls", "TCP_ULP tls: %s", strerror(-rc));
        return rc;
    }
    if (!tx && !rx) {
        return 0;
    }
    for (int dir = 0; dir < 2; dir++) {
        int mine = dir == 0; /* TX: our own secret */
        const uint8_t *secret = (mine == server) ? s->server : s->client;
        size_t secret_len = (mine == server) ? s->server_len : s->client_len;

        if (!(dir == 0 ? tx : rx)) {
            continue;
        }
        rc = crypto_info(ssl, secret, secret_len, &ci, &len);
        if (rc == 0 && setsockopt(fd, SOL_TLS, dir == 0 ? TLS_TX : TLS_RX, &ci, len) < 0) {
            rc = errno == EEXIST || errno == EBUSY ? 0 : -errno; /* set already: in the kernel */
        }
        OPENSSL_cleanse(&ci, sizeof(ci));
        if (rc < 0) {
            evpl_log_debug("tls", "%s: %s", dir == 0 ? "TLS_TX" : "TLS_RX", strerror(-rc));
            return done ? done : rc;
        }
        done |= dir == 0 ? 1 : 2;
    }
    return done;
} /* evpl__ktls_install */

void
evpl__ktls_alert(int fd, uint8_t level, uint8_t desc)
{
    uint8_t alert[2] = {level, desc};
    union {
        char buf[CMSG_SPACE(sizeof(uint8_t))];
        struct cmsghdr align;
    } ctrl;
    struct iovec iov = {alert, sizeof(alert)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *cm;

    memset(&ctrl, 0, sizeof(ctrl));
    msg.msg_control = ctrl.buf;
    msg.msg_controllen = sizeof(ctrl.buf);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_TLS;
    cm->cmsg_type = TLS_SET_RECORD_TYPE;
    cm->cmsg_len = CMSG_LEN(sizeof(uint8_t));
    *CMSG_DATA(cm) = 21; /* alert */
    (void) sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
} /* evpl__ktls_alert */
