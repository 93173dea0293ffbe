/* SPDX-License-Identifier: LGPL-2.1-only */
/* The TLS 1.3 data-phase record layer (see record.h). */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "backends/socket/socket.h"
#include "backends/tls/record.h"
#include "core/sys.h"
#include "mem/mem.h"

#define REC_HDR       5
#define REC_TAG       16
#define REC_PLAIN_MAX 16384                          /* 2^14 (§5.1) */
#define REC_BODY_MAX  (REC_PLAIN_MAX + 256)          /* 2^14 + 256 (§5.2) */
#define REC_OVERHEAD  (REC_HDR + 1 + REC_TAG)        /* header, content type, tag */
#define REC_FULL      (REC_PLAIN_MAX + REC_OVERHEAD) /* a full record as we send it */
/* records sealed per write: 8 (128 KiB of data) measured best on loopback,
 * 24-26 Gbit/s against 17-20 for 10 to 16 and 18-22 for 6 */
#define SEND_BATCH    (8 * REC_FULL)
#define SEND_PIECES   64          /* iovecs gathered per record */
#define RECV_MIN      (64 * 1024) /* room per read */
#define READ_BUDGET   64
#define HS_MAX        (64 * 1024)         /* a post-handshake message we hold whole */
#define REC_INNER_MAX (REC_PLAIN_MAX + 1) /* content + type + padding (§5.4) */
#define SMALL_COPY    512                 /* data records below this are copied, not sliced */

enum {
    CT_ALERT = 21,
    CT_HANDSHAKE = 22,
    CT_DATA = 23,
    HS_NEW_SESSION_TICKET = 4,
    HS_KEY_UPDATE = 24,
    AL_CLOSE_NOTIFY = 0,
    AL_UNEXPECTED_MESSAGE = 10,
    AL_BAD_RECORD_MAC = 20,
    AL_RECORD_OVERFLOW = 22,
    AL_ILLEGAL_PARAMETER = 47,
    AL_DECODE_ERROR = 50,
};

static uint64_t
update_every(void)
{
    static _Atomic uint64_t every; /* read once; any thread may be first */
    uint64_t v = atomic_load_explicit(&every, memory_order_relaxed);

    if (!v) {
        const char *e = getenv("EVPL_TLS_KEY_UPDATE_RECORDS");

        v = e ? strtoull(e, NULL, 0) : 0;
        v = v ? v : 1ull << 24;
        atomic_store_explicit(&every, v, memory_order_relaxed);
    }
    return v;
} /* update_every */

static void
key_wipe(struct tls13_key *k)
{
    EVP_CIPHER_CTX_free(k->ctx);
    OPENSSL_cleanse(k, sizeof(*k));
} /* key_wipe */

/* Key the direction from its traffic secret (sequence back to 0). */
static int
key_set(const struct tls13_suite *su, struct tls13_key *k, int enc)
{
    uint8_t key[32];
    int ok;

    if (evpl__tls13_traffic_key(su, k->secret, k->secret_len, key, k->iv) < 0) {
        return -EINVAL;
    }
    ok = EVP_CipherInit_ex(k->ctx, NULL, NULL, key, NULL, enc) == 1;
    OPENSSL_cleanse(key, sizeof(key));
    k->seq = 0;
    return ok ? 0 : -EINVAL;
} /* key_set */

static int
key_init(const struct tls13_suite *su, struct tls13_key *k, const uint8_t *secret, size_t len,
         int enc)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, su->cipher, NULL);
    int ok;

    k->ctx = EVP_CIPHER_CTX_new();
    ok = c && k->ctx && EVP_CipherInit_ex(k->ctx, c, NULL, NULL, NULL, enc) == 1;
    EVP_CIPHER_free(c);
    if (!ok || len > sizeof(k->secret)) {
        return -EOPNOTSUPP;
    }
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    return key_set(su, k, enc);
} /* key_init */

/* §7.2: the next generation of a direction's secret. */
static int
key_update(const struct tls13_suite *su, struct tls13_key *k, int enc)
{
    uint8_t next[KTLS_SECRET_MAX];

    if (evpl__tls13_expand_label(su->digest, k->secret, k->secret_len, "traffic upd", next,
                                 k->secret_len) < 0) {
        return -EINVAL;
    }
    memcpy(k->secret, next, k->secret_len);
    OPENSSL_cleanse(next, sizeof(next));
    return key_set(su, k, enc);
} /* key_update */

int
evpl__tls13_fits(void)
{
    return evpl__buffer_size >= RECV_MIN + REC_HDR + REC_BODY_MAX &&
           evpl__buffer_size >= 2 * REC_FULL;
} /* evpl__tls13_fits */

int
evpl__tls13_start(struct tls13 *r, SSL *ssl, const struct ktls_secrets *s, int server, int tx,
                  int rx)
{
    const struct tls13_suite *su = evpl__tls13_suite(ssl);
    const uint8_t *mine = server ? s->server : s->client, *theirs = server ? s->client : s->server;
    size_t mine_len = server ? s->server_len : s->client_len;
    size_t theirs_len = server ? s->client_len : s->server_len;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    if (!su || !mine_len || !theirs_len) {
        return -EOPNOTSUPP;
    }
    r->suite = su;
    if (tx) {
        rc = key_init(su, &r->tx, mine, mine_len, 1);
    }
    if (rc == 0 && rx) {
        rc = key_init(su, &r->rx, theirs, theirs_len, 0);
    }
    if (rc < 0) {
        ERR_clear_error();
        key_wipe(&r->tx);
        key_wipe(&r->rx);
        return rc;
    }
    r->tx_on = tx;
    r->rx_on = rx;
    return 0;
} /* evpl__tls13_start */

void
evpl__tls13_stop(struct evpl *evpl, struct tls13 *r)
{
    if (r->part.length) {
        evpl_iovec_release(evpl, &r->part);
    }
    if (r->out.length) {
        evpl_iovec_release(evpl, &r->out);
    }
    free(r->hs);
    key_wipe(&r->tx);
    key_wipe(&r->rx);
    memset(r, 0, sizeof(*r));
} /* evpl__tls13_stop */

/* §5.3: the per-record nonce is the IV xor the sequence number. */
static void
nonce(const struct tls13_key *k, uint8_t n[12])
{
    memcpy(n, k->iv, 12);
    for (int i = 0; i < 8; i++) {
        n[11 - i] ^= (uint8_t) (k->seq >> (8 * i));
    }
} /* nonce */

/* Seal pieces (len bytes in all) as one record of inner type `type` at out.
 * Returns the record's length on the wire, or -1. */
static int
seal(struct tls13_key *k, uint8_t type, const struct iovec *v, int nv, size_t len, uint8_t *out)
{
    size_t body = len + 1 + REC_TAG;
    uint8_t n[12], *p = out + REC_HDR;
    int l;

    out[0] = CT_DATA;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t) (body >> 8);
    out[4] = (uint8_t) body;
    nonce(k, n);
    if (EVP_EncryptInit_ex(k->ctx, NULL, NULL, NULL, n) != 1 ||
        EVP_EncryptUpdate(k->ctx, NULL, &l, out, REC_HDR) != 1) {
        return -1;
    }
    for (int i = 0; i < nv; i++) {
        if (EVP_EncryptUpdate(k->ctx, p, &l, v[i].iov_base, (int) v[i].iov_len) != 1) {
            return -1;
        }
        p += l;
    }
    if (EVP_EncryptUpdate(k->ctx, p, &l, &type, 1) != 1) {
        return -1;
    }
    p += l;
    if (EVP_EncryptFinal_ex(k->ctx, p, &l) != 1) {
        return -1;
    }
    p += l;
    if ((size_t) (p - out) != REC_HDR + len + 1 ||
        EVP_CIPHER_CTX_ctrl(k->ctx, EVP_CTRL_AEAD_GET_TAG, REC_TAG, p) != 1) {
        return -1;
    }
    k->seq++;
    return (int) (REC_HDR + body);
} /* seal */

/* Open the record at rec (body bytes after the header) in place.  Returns
 * the inner content type and sets *len to the content's length, -1 when
 * the record does not authenticate, 0 when it has no content type. */
static int
open_record(struct tls13_key *k, uint8_t *rec, size_t body, size_t *len)
{
    uint8_t n[12], *p = rec + REC_HDR, fin[16];
    size_t clen = body - REC_TAG;
    int l;

    nonce(k, n);
    if (EVP_DecryptInit_ex(k->ctx, NULL, NULL, NULL, n) != 1 ||
        EVP_CIPHER_CTX_ctrl(k->ctx, EVP_CTRL_AEAD_SET_TAG, REC_TAG, p + clen) != 1 ||
        EVP_DecryptUpdate(k->ctx, NULL, &l, rec, REC_HDR) != 1 ||
        EVP_DecryptUpdate(k->ctx, p, &l, p, (int) clen) != 1 || (size_t) l != clen ||
        EVP_DecryptFinal_ex(k->ctx, fin, &l) != 1) {
        return -1;
    }
    k->seq++;
    /* §5.4: content, content type, zero padding */
    while (clen && p[clen - 1] == 0) {
        clen--;
    }
    if (!clen) {
        return 0;
    }
    *len = clen - 1;
    return p[clen - 1];
} /* open_record */

/* ---- sending ---- */

static void
ring_forward(struct evpl_iovec_fifo *f, uint32_t *i, uint32_t *off, size_t n)
{
    while (n) {
        struct evpl_iovec *v = evpl_iovec_fifo_at(f, *i);
        size_t left = v->length - *off;

        if (n < left) {
            *off += (uint32_t) n;
            return;
        }
        n -= left;
        (*i)++;
        *off = 0;
    }
} /* ring_forward */

/* A handshake message of ours (KeyUpdate) sealed at out; the send key moves
 * on after it. */
static int
seal_key_update(struct tls13 *r, uint8_t *out)
{
    uint8_t msg[5] = {HS_KEY_UPDATE, 0, 0, 1, 0}; /* update_not_requested */
    struct iovec v = {msg, sizeof(msg)};
    int n = seal(&r->tx, CT_HANDSHAKE, &v, 1, sizeof(msg), out);

    if (n < 0 || key_update(r->suite, &r->tx, 1) < 0) {
        return -1;
    }
    r->update_due = 0;
    return n;
} /* seal_key_update */

/* Seal a batch from the send ring's front into a slab buffer: r->out. */
static int
seal_batch(struct evpl *evpl, struct evpl_bind *bind, struct tls13 *r)
{
    struct evpl_iovec_fifo *f = &bind->send_ring.fifo;
    uint64_t left = bind->send_ring.length;
    uint32_t idx = 0, off = 0, cap, pos = 0;
    uint8_t *out;

    if (evpl__iovec_reserve_tail(evpl, 2 * REC_FULL, &r->out) < 0) {
        return -ENOMEM;
    }
    out = r->out.data;
    cap = r->out.length < SEND_BATCH ? r->out.length : SEND_BATCH;
    r->out_plain = 0;
    /* a KeyUpdate goes first when the peer asked for one */
    if (r->update_due) {
        int n = seal_key_update(r, out);

        if (n < 0) {
            goto fail;
        }
        pos += (uint32_t) n;
    }
    while (left && cap - pos >= REC_FULL + REC_OVERHEAD + 8) {
        struct iovec v[SEND_PIECES];
        size_t len = 0;
        int nv = 0, n;
        uint32_t i = idx, o = off;

        while (len < REC_PLAIN_MAX && len < left && nv < SEND_PIECES) {
            struct evpl_iovec *iv = evpl_iovec_fifo_at(f, i);
            size_t take = iv->length - o;

            if (take > REC_PLAIN_MAX - len) {
                take = REC_PLAIN_MAX - len;
            }
            v[nv].iov_base = (char *) iv->data + o;
            v[nv++].iov_len = take;
            len += take;
            i++;
            o = 0;
        }
        n = seal(&r->tx, CT_DATA, v, nv, len, out + pos);
        if (n < 0) {
            goto fail;
        }
        pos += (uint32_t) n;
        ring_forward(f, &idx, &off, len);
        left -= len;
        r->out_plain += len;
        if (r->tx.seq >= update_every()) {
            /* rotate our key (room for it was kept above) */
            r->update_due = 1;
            n = seal_key_update(r, out + pos);
            if (n < 0) {
                goto fail;
            }
            pos += (uint32_t) n;
            break;
        }
    }
    if (!pos) {
        goto fail; /* no room for a record: cannot happen with buffers we accept */
    }
    r->out.length = pos;
    r->out_off = 0;
    evpl_iovec_commit(evpl, 0, &r->out, 1);
    return 0;
fail:
    ERR_clear_error();
    evpl_log_error("tls", "sealing a record failed: closing");
    evpl_iovec_release(evpl, &r->out);
    r->out.length = 0;
    return -EPROTO;
} /* seal_batch */

void
evpl__tls13_flush(struct evpl *evpl, struct evpl_bind *bind, struct tls13 *r)
{
    uint64_t bytes = 0, msgs = 0;

    for (;;) {
        ssize_t n;

        if (!r->out.length) {
            int rc;

            if (!bind->send_ring.length && !r->update_due) {
                break;
            }
            rc = seal_batch(evpl, bind, r);
            if (rc < 0) {
                evpl__bind_fail(evpl, bind, rc);
                return;
            }
        }
        {
            struct iovec v = {(char *) r->out.data + r->out_off, r->out.length - r->out_off};

            n = evpl_sys_writev(bind->event.fd, &v, 1);
        }
        if (n < 0) {
            int w = evpl__stream_write_error(evpl, bind);

            if (w == EVPL_WRITE_RETRY) {
                continue;
            }
            if (w == EVPL_WRITE_WAIT) {
                break;
            }
            return;
        }
        r->out_off += (uint32_t) n;
        if (r->out_off < r->out.length) {
            /* the socket buffer is full */
            evpl__stream_wait_writable(evpl, bind);
            break;
        }
        evpl_iovec_release(evpl, &r->out);
        r->out.length = 0;
        evpl_iovec_ring_consume(evpl, &bind->send_ring, r->out_plain);
        bytes += r->out_plain;
        if (bind->segment_callback) {
            msgs += evpl__stream_messages_done(bind, r->out_plain);
        }
        r->out_plain = 0;
    }
    if (!bind->send_ring.length && !r->out.length && !r->update_due) {
        evpl__event_clear(evpl, &bind->event, EVPL_EV_WRITE_INTEREST);
    } else {
        /* the socket buffer is full (the record in hand has its plaintext
         * sealed: the queue is only counted off by bytes from here) */
        evpl_iovec_ring_waits(evpl, &bind->send_ring, 0);
    }
    evpl__bind_sent(evpl, bind, bytes, msgs);
} /* evpl__tls13_flush */

/* Finish writing sealed records, without waiting: 1 when all are out. */
static int
drain_out(struct evpl *evpl, struct evpl_bind *bind, struct tls13 *r)
{
    while (r->out.length) {
        ssize_t n = send(bind->event.fd, (char *) r->out.data + r->out_off,
                         r->out.length - r->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return 0;
        }
        r->out_off += (uint32_t) n;
        if (r->out_off == r->out.length) {
            evpl_iovec_release(evpl, &r->out);
            r->out.length = 0;
        }
    }
    return 1;
} /* drain_out */

/*
 * An alert, best effort (the connection is ending): after the records
 * sealed before it, or not at all when they cannot all go (the alert would
 * land inside one); through the kernel when it does our sending.
 */
static void
send_alert(struct evpl *evpl, struct evpl_bind *bind, struct tls13 *r, uint8_t level, uint8_t desc)
{
    uint8_t a[2] = {level, desc}, rec[REC_OVERHEAD + sizeof(a)];
    struct iovec v = {a, sizeof(a)};
    int n;

    if (bind->event.fd < 0) {
        return;
    }
    if (!r->tx_on) {
        evpl__ktls_alert(bind->event.fd, level, desc);
        return;
    }
    if (!drain_out(evpl, bind, r)) {
        return;
    }
    n = seal(&r->tx, CT_ALERT, &v, 1, sizeof(a), rec);
    if (n > 0) {
        (void) send(bind->event.fd, rec, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    ERR_clear_error();
} /* send_alert */

void
evpl__tls13_close_notify(struct evpl *evpl, struct evpl_bind *bind, struct tls13 *r)
{
    send_alert(evpl, bind, r, 1, AL_CLOSE_NOTIFY);
} /* evpl__tls13_close_notify */

/* ---- receiving ---- */

/* Post-handshake messages in one record's content; 0, or the alert to
 * close with.  Messages are parsed where they lie; only one cut by the end
 * of the record is kept (in r->hs, freed once it is whole). */
static int
handshake_data(struct evpl *evpl, struct evpl_bind *bind, struct tls13 *r, const uint8_t *p,
               size_t len)
{
    const uint8_t *m = p;
    size_t have = len;

    if (!len) {
        evpl_log_error("tls", "empty handshake record: closing");
        return AL_UNEXPECTED_MESSAGE;
    }
    if (r->hs_len) {
        /* the rest of a message begun in an earlier record */
        uint8_t *grown;

        if (len > HS_MAX - r->hs_len) {
            evpl_log_error("tls", "post-handshake message over %u bytes: closing", HS_MAX);
            return AL_UNEXPECTED_MESSAGE;
        }
        grown = realloc(r->hs, r->hs_len + len);
        if (!grown) {
            return AL_UNEXPECTED_MESSAGE;
        }
        r->hs = grown;
        memcpy(r->hs + r->hs_len, p, len);
        r->hs_len += (uint32_t) len;
        m = r->hs;
        have = r->hs_len;
    }
    while (have >= 4) {
        uint32_t mlen = (uint32_t) m[1] << 16 | (uint32_t) m[2] << 8 | m[3];

        if (mlen > HS_MAX - 4) {
            evpl_log_error("tls", "post-handshake message over %u bytes: closing", HS_MAX);
            return AL_UNEXPECTED_MESSAGE;
        }
        if (have < 4 + mlen) {
            break;
        }
        switch (m[0]) {
            case HS_NEW_SESSION_TICKET:
                break; /* we do not resume sessions */
            case HS_KEY_UPDATE:
                /* §4.6.3: one byte, 0 or 1, and the record ends with it */
                if (mlen != 1) {
                    evpl_log_error("tls", "malformed KeyUpdate: closing");
                    return AL_DECODE_ERROR;
                }
                if (m[4] > 1) {
                    evpl_log_error("tls", "KeyUpdate with request %u: closing", m[4]);
                    return AL_ILLEGAL_PARAMETER;
                }
                if (have != 5) {
                    evpl_log_error("tls", "KeyUpdate not at the end of its record: closing");
                    return AL_UNEXPECTED_MESSAGE;
                }
                if (++r->updates_in_row > EVPL_TLS_UPDATES_IN_A_ROW) {
                    evpl_log_error("tls", "over %d KeyUpdates with no data between: closing",
                                   EVPL_TLS_UPDATES_IN_A_ROW);
                    return AL_UNEXPECTED_MESSAGE;
                }
                if (key_update(r->suite, &r->rx, 0) < 0) {
                    return AL_UNEXPECTED_MESSAGE;
                }
                r->work_left -= EVPL_TLS_UPDATE_COST;
                if (m[4]) {
                    if (!r->tx_on) {
                        /* our sending side is the kernel's, which cannot rekey */
                        evpl_log_error("tls", "peer asked for a key update the kernel's "
                                              "record layer cannot do: closing");
                        return AL_UNEXPECTED_MESSAGE;
                    }
                    r->update_due = 1;
                    evpl__event_set(evpl, &bind->event, EVPL_EV_WRITE_INTEREST);
                }
                break;
            default:
                evpl_log_error("tls", "unexpected post-handshake message %u: closing", m[0]);
                return AL_UNEXPECTED_MESSAGE;
        }
        m += 4 + mlen;
        have -= 4 + mlen;
    }
    if (have && m != r->hs) {
        /* keep the cut message (at the front of r->hs, or copied there) */
        uint8_t *keep = malloc(have);

        if (!keep) {
            return AL_UNEXPECTED_MESSAGE;
        }
        memcpy(keep, m, have);
        free(r->hs);
        r->hs = keep;
    } else if (!have) {
        free(r->hs);
        r->hs = NULL;
    }
    r->hs_len = (uint32_t) have;
    return 0;
} /* handshake_data */

int
evpl__tls_recv_copy(struct evpl *evpl, struct evpl_bind *bind, const void *data, size_t len)
{
    struct evpl_iovec iov;

    /* from the shared pool: copies taken from the buffers records are read
     * into would keep each of those alive */
    if (evpl_iovec_alloc(evpl, (unsigned int) len, 0, 1, EVPL_IOVEC_FLAG_SHARED, &iov) != 1) {
        evpl_log_error("tls", "no buffer memory to receive into: closing");
        return -1;
    }
    memcpy(iov.data, data, len);
    evpl_iovec_ring_append_coalesce(evpl, &bind->recv_ring, &iov);
    return 0;
} /* evpl__tls_recv_copy */

/*
 * Open the complete records in all and deliver their data as slices of it.  Returns the bytes used (the rest is the
 * start of a record); *status becomes 0 at close_notify, negative on an
 * error (an alert is sent), and *got counts bytes delivered.
 */
static size_t
open_records(struct evpl *evpl, struct evpl_bind *bind, struct tls13 *r,
             const struct evpl_iovec *all, int *status, uint64_t *got)
{
    uint8_t *buf = all->data;
    size_t pos = 0, have = all->length;

    while (have - pos >= REC_HDR) {
        uint8_t *rec = buf + pos;
        size_t body = (size_t) rec[3] << 8 | rec[4], len;
        int type, alert = 0;

        if (r->work_left-- <= 0) {
            r->backlog = 1; /* the rest next pass */
            break;
        }
        if (evpl__stream_recv_full(bind)) {
            /* the rest once the application drains: a close_notify right
             * behind the data must not end the bind before it is read
             * (helper-106) */
            r->backlog = 1;
            break;
        }
        if (rec[0] != CT_DATA || body > REC_BODY_MAX || body < REC_TAG + 1) {
            evpl_log_error("tls", "bad record (type %u, length %zu): closing", rec[0], body);
            alert = rec[0] != CT_DATA     ? AL_UNEXPECTED_MESSAGE
                    : body > REC_BODY_MAX ? AL_RECORD_OVERFLOW
                                          : AL_DECODE_ERROR;
        } else if (body - REC_TAG > REC_INNER_MAX) {
            /* §5.4: content, type and padding within 2^14 + 1 */
            evpl_log_error("tls", "record of %zu bytes: closing", body);
            alert = AL_RECORD_OVERFLOW;
        } else if (have - pos < REC_HDR + body) {
            break;
        } else if ((type = open_record(&r->rx, rec, body, &len)) < 0) {
            ERR_clear_error();
            evpl_log_error("tls", "a record failed authentication: closing");
            alert = AL_BAD_RECORD_MAC;
        } else if (type == 0) {
            evpl_log_error("tls", "a record without a content type: closing");
            alert = AL_UNEXPECTED_MESSAGE;
        } else if (r->hs_len && type != CT_HANDSHAKE) {
            /* §5.1: a handshake message cut across records is continued by
             * the next record */
            evpl_log_error("tls", "record of type %d inside a handshake message: closing", type);
            alert = AL_UNEXPECTED_MESSAGE;
        } else if (type == CT_DATA) {
            /* a slice holds the whole record in memory: only records that
             * are mostly data are sliced (a peer padding 512 bytes to 16
             * KiB records held 32 times what the receive limit counts) */
            if (len >= SMALL_COPY && len * 2 >= body) {
                struct evpl_iovec iov;

                evpl_iovec_clone_segment(&iov, all, (unsigned int) (pos + REC_HDR),
                                         (unsigned int) len);
                evpl_iovec_ring_append(evpl, &bind->recv_ring, &iov);
            } else if (len) {
                /* small and mostly-padding records are copied together:
                 * slices would hold their headers, tags and padding, and
                 * a ring entry each */
                if (evpl__tls_recv_copy(evpl, bind, rec + REC_HDR, len) < 0) {
                    *status = -ENOMEM;
                    return have;
                }
            }
            *got += len;
            r->updates_in_row = len ? 0 : r->updates_in_row;
        } else if (type == CT_ALERT) {
            uint8_t *a = rec + REC_HDR;

            if (len == 2 && a[1] == AL_CLOSE_NOTIFY) {
                *status = 0;
                return pos + REC_HDR + body;
            }
            evpl_log_error("tls", "peer sent alert %u (%s): closing", len == 2 ? a[1] : 0,
                           len == 2 ? SSL_alert_desc_string_long(a[1]) : "malformed");
            *status = -ECONNRESET;
            return pos + REC_HDR + body;
        } else if (type == CT_HANDSHAKE) {
            alert = handshake_data(evpl, bind, r, rec + REC_HDR, len);
        } else {
            evpl_log_error("tls", "record of content type %d after the handshake: closing", type);
            alert = AL_UNEXPECTED_MESSAGE;
        }
        if (alert) {
            /* the peer broke the protocol: we tell it why and end */
            send_alert(evpl, bind, r, 2, (uint8_t) alert);
            *status = -EPROTO;
            return have;
        }
        pos += REC_HDR + body;
    }
    return pos;
} /* open_records */

/* Open the records in all and keep what follows them (the start of a
 * record, or records left for the next pass) in r->part. */
static void
open_keep(struct evpl *evpl, struct evpl_bind *bind, struct tls13 *r, struct evpl_iovec *all,
          int *status, uint64_t *got)
{
    size_t used = open_records(evpl, bind, r, all, status, got);

    if (r->part.length) {
        evpl_iovec_release(evpl, &r->part);
        r->part.length = 0;
    }
    if (*status > 0 && used < all->length) {
        evpl_iovec_clone_segment(&r->part, all, (unsigned int) used,
                                 (unsigned int) (all->length - used));
    }
} /* open_keep */

void
evpl__tls13_read(struct evpl *evpl, struct evpl_bind *bind, struct tls13 *r)
{
    uint64_t got = 0;
    int status = 1;

    r->work_left = EVPL_TLS_READ_WORK;
    if (r->backlog && !(bind->flags & (EVPL_BIND_READ_PAUSED | EVPL_BIND_CLOSING))) {
        /* records the last read left (READABLE stayed set): first */
        struct evpl_iovec all = r->part;

        r->backlog = 0;
        r->part.length = 0;
        open_keep(evpl, bind, r, &all, &status, &got);
        evpl_iovec_release(evpl, &all);
        if (r->backlog) {
            evpl__event_set(evpl, &bind->event, EVPL_EV_READABLE);
            evpl__stream_read_end(evpl, bind, got != 0, status);
            return;
        }
    }
    for (int budget = READ_BUDGET; budget > 0 && status > 0; budget--) {
        struct evpl_iovec iov, all;
        uint8_t *base;
        size_t have = r->part.length, cap;
        ssize_t n;

        if (bind->flags & (EVPL_BIND_READ_PAUSED | EVPL_BIND_CLOSING)) {
            evpl__event_clear(evpl, &bind->event, EVPL_EV_READ_INTEREST);
            break;
        }
        if (evpl__iovec_reserve_tail(evpl, RECV_MIN + (unsigned int) have, &iov) < 0) {
            evpl_log_error("tls", "no buffer memory to receive into: closing");
            status = -ENOMEM;
            break;
        }
        if (have && iov.ref == r->part.ref && (char *) r->part.data + have == iov.data) {
            base = r->part.data; /* the read continues the cut record */
            cap = have + iov.length;
        } else {
            base = iov.data;
            cap = iov.length;
            if (have) {
                memcpy(base, r->part.data, have);
            }
        }
        if (cap <= have) {
            /* buffers too small for a record (evpl__tls13_fits refuses them) */
            evpl_iovec_release(evpl, &iov);
            status = -ENOBUFS;
            break;
        }
        n = evpl_sys_read(bind->event.fd, base + have, cap - have);
        if (n <= 0) {
            int err = n < 0 ? errno : 0;

            evpl_iovec_release(evpl, &iov);
            if (n == 0) {
                if (have) {
                    evpl_log_error("tls", "connection closed inside a record");
                }
                /* an end without close_notify may be a truncation attack */
                status = -ECONNRESET;
            } else if (err == EINTR) {
                continue;
            } else if (err == EAGAIN) {
                evpl__event_clear(evpl, &bind->event, EVPL_EV_READABLE);
            } else {
                status = -err;
            }
            break;
        }
        have += (size_t) n;
        /* base..have is ours now: commit it, then cut it up */
        all.data = base;
        all.length = (unsigned int) have;
        all.pad = 0;
        all.ref = iov.ref;
        evpl_iovec_commit(evpl, 0, &all, 1);
        open_keep(evpl, bind, r, &all, &status, &got);
        evpl_iovec_release(evpl, &iov);
        if (status <= 0) {
            break;
        }
        if (r->backlog) {
            /* the loop comes back for the rest, after the other events */
            evpl__event_set(evpl, &bind->event, EVPL_EV_READABLE);
            break;
        }
        if (evpl__stream_recv_full(bind)) {
            break;
        }
        if ((size_t) n < cap - (have - (size_t) n) && !(bind->event.flags & EVPL_EV_RDHUP)) {
            evpl__event_clear(evpl, &bind->event, EVPL_EV_READABLE);
            break;
        }
    }
    evpl__stream_read_end(evpl, bind, got != 0, status);
} /* evpl__tls13_read */
