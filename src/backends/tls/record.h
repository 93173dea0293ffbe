/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A TLS 1.3 record layer of our own for the data phase (RFC 8446 §5).
 *
 * OpenSSL does the handshake; after it the application traffic keys
 * (from the keylog callback, as for kTLS) drive this layer:
 *  - send: records are sealed straight from the send ring's iovecs into a
 *    slab buffer, up to a batch of them, and the batch goes out with one
 *    write; the plaintext stays in the send ring until its records are
 *    written, so a finishing bind closes only after they are;
 *  - receive: reads land in slab buffers, records are opened in place and
 *    their plaintext is handed to the application as slices of the same
 *    buffer (no copy); a record cut by the end of a read waits in the
 *    buffer and the next read continues right behind it when it can;
 *    (records under 512 bytes of data are copied together instead, so a
 *    peer sending tiny records cannot make us hold 22 bytes of framing
 *    and a ring entry per byte);
 *  - post-handshake messages: NewSessionTicket is ignored, KeyUpdate is
 *    honoured (and answered when the peer asks), anything else ends the
 *    connection with an alert; the send key is updated (without asking the
 *    peer's) every EVPL_TLS_KEY_UPDATE_RECORDS records (default 2^24, under
 *    AES-GCM's limit in RFC 8446 §5.5).
 */
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "backends/tls/ktls.h"
#include "core/internal.h"

struct tls13_key {
    EVP_CIPHER_CTX *ctx;
    uint8_t iv[12];
    uint8_t secret[KTLS_SECRET_MAX];
    size_t secret_len;
    uint64_t seq;
};

struct tls13 {
    const struct tls13_suite *suite;
    struct tls13_key tx, rx;
    int tx_on, rx_on;
    /* receive: the start of a record the last read cut (length 0: none) */
    struct evpl_iovec part;
    /* post-handshake messages being put together */
    uint8_t *hs;
    uint32_t hs_len;
    /* send: sealed records not all written yet (length 0: none) */
    struct evpl_iovec out;
    uint32_t out_off;   /* bytes of out written */
    uint64_t out_plain; /* their plaintext: still at the send ring's front */
    int update_due;     /* send a KeyUpdate before more data */
    /* receive: work this read may still do (EVPL_TLS_UPDATE_COST a
     * KeyUpdate, 1 any other record); when it ran out, part holds whole
     * records not opened yet (backlog), done first next time */
    int work_left;
    int backlog;
    int updates_in_row; /* KeyUpdates since the last data */
};

/*
 * Bounds on a peer's post-handshake messages, for both record layers that
 * do them (ours, OpenSSL's).  Deriving keys for a KeyUpdate costs some
 * microseconds: three clients sending nothing else stalled a fourth
 * connection on the same loop for seconds.  A read does at most
 * EVPL_TLS_READ_WORK units of work (a record 1, a KeyUpdate
 * EVPL_TLS_UPDATE_COST) and leaves the rest for the next pass; more than
 * EVPL_TLS_UPDATES_IN_A_ROW KeyUpdates with no data between end the
 * connection (as BoringSSL does: no peer needs them).
 */
#define EVPL_TLS_READ_WORK        1024
#define EVPL_TLS_UPDATE_COST      32
#define EVPL_TLS_UPDATES_IN_A_ROW 32

/* Are the loops' buffers large enough for this layer (a record and more)? */
int evpl__tls13_fits(void);

/* Take over the directions asked for (tx, rx) after a TLS 1.3 handshake.
 * 0, or a negative errno (a suite or version this layer does not do). */
int evpl__tls13_start(struct tls13 *r, SSL *ssl, const struct ktls_secrets *s, int server, int tx,
                      int rx);

/* Release everything (keys are wiped). */
void evpl__tls13_stop(struct evpl *evpl, struct tls13 *r);

/* Append a copy of len received plaintext bytes to the bind's receive ring,
 * in buffers apart from those records are read into; 0, or -1 (no buffer
 * memory, logged). */
int evpl__tls_recv_copy(struct evpl *evpl, struct evpl_bind *bind, const void *data, size_t len);

/* The receive path: read, open, deliver; EOF and errors close the bind. */
void evpl__tls13_read(struct evpl *evpl, struct evpl_bind *bind, struct tls13 *r);

/* The send path: seal and write the send ring. */
void evpl__tls13_flush(struct evpl *evpl, struct evpl_bind *bind, struct tls13 *r);

/* Best effort, without waiting: what is sealed already, then a
 * close_notify alert (none when the sealed records cannot all go). */
void evpl__tls13_close_notify(struct evpl *evpl, struct evpl_bind *bind, struct tls13 *r);
