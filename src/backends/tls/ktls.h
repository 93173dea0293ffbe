/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Kernel TLS for the TLS backend.  Debian's OpenSSL 3.0 is built without
 * kTLS, so after the handshake the library installs the TLS 1.3 traffic
 * keys in the kernel itself (TCP_ULP "tls", TLS_TX / TLS_RX): from then on
 * records are encrypted and decrypted by the kernel during the socket copy,
 * and the data path is the plain socket one (writev, read).
 */
#pragma once

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#define KTLS_SECRET_MAX 64

struct ktls_secrets {
    uint8_t client[KTLS_SECRET_MAX];
    uint8_t server[KTLS_SECRET_MAX];
    size_t client_len, server_len;
};

/* A TLS 1.3 suite: its hash, key length and names. */
struct tls13_suite {
    uint16_t id;
    const char *digest;
    unsigned hash_len, key_len;
    uint16_t kernel_type; /* TLS_CIPHER_* */
    const char *cipher;   /* OpenSSL's name */
};

/* The connection's suite when it is TLS 1.3 with one of ours, else NULL. */
const struct tls13_suite *evpl__tls13_suite(SSL *ssl);

/* RFC 8446 §7.1: HKDF-Expand-Label(secret, label, "", len). */
int evpl__tls13_expand_label(const char *digest, const uint8_t *secret, size_t secret_len,
                             const char *label, uint8_t *out, size_t len);

/* A traffic secret's write key and IV (§7.3). */
int evpl__tls13_traffic_key(const struct tls13_suite *su, const uint8_t *secret, size_t secret_len,
                            uint8_t key[32], uint8_t iv[12]);

/* Does this kernel take TLS keys (probed once on a loopback connection)? */
int evpl__ktls_kernel(void);

/* SSL_CTX keylog callback target: collects the application traffic
 * secrets of the connection whose ex-data slot holds the secrets. */
void evpl__ktls_keylog(const SSL *ssl, const char *line);
int evpl__ktls_ex_index(void);

/* Install keys on fd: tx and/or rx.  Returns the directions now in the
 * kernel (1: sending, 2: receiving; TX goes first, so a failure leaves
 * either nothing or sending), or a negative errno when none is. */
int evpl__ktls_install(int fd, SSL *ssl, const struct ktls_secrets *s, int server, int tx, int rx);

/* Send an alert (close_notify: 1, 0) through the kernel's record layer. */
void evpl__ktls_alert(int fd, uint8_t level, uint8_t desc);
