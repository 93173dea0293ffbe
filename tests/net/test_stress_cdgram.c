/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Seeded random-operation stress test for the connected datagram protocols
 * (DATAGRAM_INPROC, DATAGRAM_TCP_RDMA).
 *
 * One loop (optionally a second loop on another thread, attached to the
 * same listener) runs a random sequence of operations chosen by a seeded
 * PRNG: connect, send datagrams of 0..300 KiB (evpl_send copy; evpl_sendv
 * with and without TAKE_REF, in one or several iovecs, with zero-length
 * pieces and surplus iovecs past length), one-sided writes and reads of a
 * peer-advertised buffer, finish and close from either side (also from
 * inside RECV_MSG and RDMA callbacks), send notifications and loop passes.
 *
 * Every message carries (when long enough) a header naming its sender and
 * sequence number; its bytes are a pattern keyed by both.  Each sender logs
 * the lengths it queued (mutex-protected: the receiver may be on the other
 * loop), so receivers check every message online: in order, no gaps, no
 * duplicates, correct boundaries, intact content.  The first message each
 * end sends is a hello carrying its id and the (key, address) of a buffer
 * it advertises for one-sided operations.
 *
 * One-sided operations: the initiator splits the peer's buffer into slots
 * and keeps at most one operation in flight per slot, with a shadow copy
 * of what the last completed write left there, so a read must return the
 * shadow (bytes a failed write may or may not have reached are not
 * checked).  A few operations use a key or address that names nothing and
 * must fail.  On TCP-RDMA a message sent after a write names the written
 * range, and the receiver checks the bytes are in its buffer (rdma.md §7
 * statement 3; in-process writes copy at once, so a later write could
 * already have replaced them there).
 *
 * Invariants (online and at the end):
 *   - CONNECTED at most once, before any data; exactly one DISCONNECTED
 *     per bind and nothing after it;
 *   - datagrams intact, in order, with their boundaries, no duplicates,
 *     nothing that was not queued (sends after close/finish are dropped,
 *     evpl_sendv of no iovecs sends nothing);
 *   - a finished sender's messages all arrive unless the receiver closed
 *     or finished itself;
 *   - SENT msgs/bytes sums equal what was queued, for finished binds
 *     (not closed, DISCONNECTED status 0, peer did not close);
 *   - every RDMA callback runs exactly once, never inside the evpl_rdma_*
 *     call, on the bind's loop, before the bind's DISCONNECTED, with 0 for
 *     a valid range while the bind is open (ECONNRESET allowed once it is
 *     closing), non-zero for an invalid one;
 * ASan/UBSan and the library's exit-time leak check do the rest.
 *
 * In the suite it runs per protocol (T_PROTO) over the seeds in
 * T_STRESS_SEEDS (default "1 2 3"; odd seeds add a second loop thread),
 * each seed in its own process.  By hand:
 *   test_stress_cdgram -p PROTO -s SEED [-m MECH] [-t 1|2] [-n STEPS] [-v]
 * exit 0 = pass, 1 = invariant failure, 77 = protocol unavailable.
 */
/* LABELS: threads */
/* MATRIX: cdatagram */
#include "t_stress.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* global state                                                        */

static int nsteps = 1500;
static uint64_t buffer_size = 2 * 1024 * 1024;
static uint32_t region_size; /* advertised buffer per conn */
static int is_tcp_rdma;
/* RDMA CM: a message fits one receive buffer (64 KiB); keys exist once CONNECTED */
static int is_rdmacm;

#define MAGIC     0x43444753u /* "CDGS" */
#define T_DATA    0
#define T_HELLO   1
#define T_MARKER  2 /* names a range of the receiver's buffer just written */
#define NSLOT     4
#define MAXMSG    (300 * 1024)
#define MAXCONNID 65536

struct mhdr {
    uint32_t magic, src, seq, len, type, a32, b32, pad;
    uint64_t a64;
};

#define HDRSZ ((uint32_t) sizeof(struct mhdr))

struct world;
struct conn;

struct op {
    struct op *next; /* all ops of a world, freed at the end */
    struct conn *c;
    int is_write, bad, slot, done, status, nullcb;
    uint64_t off, len, key;
    struct evpl_iovec iov[4];
    int niov;
};

struct conn {
    int id;
    int is_client;
    int send_notify;
    struct world *w;
    struct evpl_bind *bind; /* NULL once DISCONNECTED */

    int connected, disconnected, after_disc, data_before_connect;
    int disc_status;

    /* sender side: lengths of the messages queued (read by the receiver) */
    pthread_mutex_t lk;
    uint32_t *log;
    uint32_t nlog, caplog;
    uint64_t tx_bytes;
    uint32_t promised;
    int finished_by_me, closed_by_me, send_dead;
    uint64_t sent_bytes, sent_msgs;

    /* receiver side */
    uint32_t rx_seq;
    int64_t peer_id;
    int errors;

    /* the buffer this end advertises */
    struct evpl_iovec region;
    int have_region;

    /* one-sided operations on the peer's buffer */
    int have_advert;
    uint32_t rkey;
    uint64_t raddr;
    int slot_busy[NSLOT]; /* 2: a NULL-callback write, never reused */
    uint8_t *shadow, *valid;
    int ops_inflight;
    uint64_t rdma_ok, rdma_fail;
};

struct world {
    int index;
    struct evpl *evpl;
    struct rng rng;
    struct conn **conns;
    int nconns, capconns;
    struct evpl_listener_binding *binding;
    struct op *ops;
    int wound_down;
};

static struct listener_state {
    struct evpl_listener *listener;
    struct evpl_endpoint *ep;
} L;
static struct world worlds[2];
static _Atomic(struct conn *) registry[MAXCONNID];
static atomic_int next_id = 1;
static atomic_int live;      /* conns without DISCONNECTED */
static atomic_int nattached; /* accepted conns */
static atomic_int nclients_connected;
static atomic_int phase; /* 0 run, 1 wind down, 2 stop */
static atomic_int thread2_ready;
static __thread struct world *cur_world;
static __thread int in_rdma_call;

static void
world_add(struct world *w, struct conn *c)
{
    if (w->nconns == w->capconns) {
        w->capconns = w->capconns ? w->capconns * 2 : 64;
        w->conns = realloc(w->conns, sizeof(*w->conns) * (size_t) w->capconns);
    }
    w->conns[w->nconns++] = c;
}

static inline uint64_t
msg_key(uint32_t src, uint32_t seq)
{
    return t_mix64(((uint64_t) src << 32) | seq) ^ seed;
}

/* ------------------------------------------------------------------ */
/* sending                                                             */

static int
can_send(struct conn *c)
{
    if (c->bind && !c->send_dead && evpl_bind_is_closing(c->bind)) {
        c->send_dead = 1;
    }
    return c->bind && !c->send_dead;
}

/* Build message seq of length len from c into buf. */
static void
build_msg(struct conn *c, uint32_t seq, uint32_t len, uint32_t type, uint32_t a32, uint32_t b32,
          uint64_t a64, uint8_t *buf)
{
    uint64_t key = msg_key((uint32_t) c->id, seq);

    if (len >= HDRSZ) {
        struct mhdr h = {MAGIC, (uint32_t) c->id, seq, len, type, a32, b32, 0, a64};

        memcpy(buf, &h, HDRSZ);
        t_pattern_fill(key, HDRSZ, buf + HDRSZ, len - HDRSZ);
    } else {
        t_pattern_fill(key, 0, buf, len);
    }
}

static void
log_append(struct conn *c, uint32_t len)
{
    pthread_mutex_lock(&c->lk);
    if (c->nlog == c->caplog) {
        c->caplog = c->caplog ? c->caplog * 2 : 64;
        c->log = realloc(c->log, sizeof(*c->log) * c->caplog);
    }
    c->log[c->nlog++] = len;
    pthread_mutex_unlock(&c->lk);
    c->tx_bytes += len;
}

/* Send buf[0..len) as one datagram, in a random form. */
static void
send_form(struct evpl *evpl, struct conn *c, const uint8_t *buf, uint32_t len)
{
    struct rng *r = &c->w->rng;
    int form = (int) rrange(r, 0, 2);

    if (form == 0) {
        evpl_send(evpl, c->bind, buf, len);
        return;
    }
    {
        struct evpl_iovec iov[40];
        int niov = 0, take = form == 2;
        uint64_t left = len, pos = 0;

        if (len == 0) {
            /* an empty datagram from an iovec of length 0 */
            if (evpl_iovec_alloc(evpl, 8, 0, 1, 0, &iov[0]) != 1) {
                FAIL("evpl_iovec_alloc(8) failed");
                return;
            }
            niov = 1;
        }
        while (left && niov < 28) {
            uint64_t piece = (niov < 3 && rpct(r, 40)) ? rrange(r, 1, left) : left;
            int got;

            if (rpct(r, 10)) { /* a zero-length piece */
                if (evpl_iovec_alloc(evpl, 1, 0, 1, 0, &iov[niov]) == 1) {
                    iov[niov].length = 0;
                    niov++;
                }
            }
            got = evpl_iovec_alloc(evpl, (unsigned int) piece, 0, 8, 0, &iov[niov]);
            if (got < 0) {
                FAIL("evpl_iovec_alloc(%llu) failed", (unsigned long long) piece);
                evpl_iovecs_release(evpl, iov, niov);
                return;
            }
            for (int k = 0; k < got; k++) {
                memcpy(iov[niov + k].data, buf + pos, iov[niov + k].length);
                pos += iov[niov + k].length;
            }
            niov += got;
            left -= piece;
        }
        if (left) {
            /* too many pieces: put the rest in one copy */
            FAIL("internal: %llu bytes left unsent", (unsigned long long) left);
        }
        if (rpct(r, 20) && niov < 38) { /* a surplus iovec past length */
            if (evpl_iovec_alloc(evpl, 16, 0, 1, 0, &iov[niov]) == 1) {
                memset(iov[niov].data, 0xAB, 16);
                niov++;
            }
        }
        evpl_sendv(evpl, c->bind, iov, niov, (int) len, take ? EVPL_SEND_FLAG_TAKE_REF : 0);
        if (!take) {
            evpl_iovecs_release(evpl, iov, niov);
        }
    }
}

/* Queue one message (logged), of a random size unless len_fixed >= 0. */
static void
send_one(struct evpl *evpl, struct conn *c, int64_t len_fixed, uint32_t type, uint32_t a32,
         uint32_t b32, uint64_t a64)
{
    struct rng *r = &c->w->rng;
    uint32_t len;
    uint8_t *buf;
    int k = (int) rrange(r, 0, 99);

    if (len_fixed >= 0) {
        len = (uint32_t) len_fixed;
    } else if (k < 5) {
        len = 0;
    } else if (k < 30) {
        len = (uint32_t) rrange(r, 1, 64);
    } else if (k < 60) {
        len = (uint32_t) rrange(r, 65, 4096);
    } else if (k < 90) {
        len = (uint32_t) rrange(r, 4097, 65536);
    } else {
        len = is_rdmacm ? (uint32_t) rrange(r, 4097, 65536) : (uint32_t) rrange(r, 65537, MAXMSG);
    }
    buf = malloc(len ? len : 1);
    build_msg(c, c->nlog, len, type, a32, b32, a64, buf);
    log_append(c, len);
    send_form(evpl, c, buf, len);
    free(buf);
}

static void
send_hello(struct evpl *evpl, struct conn *c)
{
    uint32_t key = 0;
    uint64_t addr = 0;

    evpl_rdma_get_address(evpl, c->bind, &c->region, &key, &addr);
    if (key == 0 || addr != (uint64_t) (uintptr_t) c->region.data) {
        FAIL("conn %d: evpl_rdma_get_address gave key %u address %llx for %p", c->id, key,
             (unsigned long long) addr, c->region.data);
    }
    send_one(evpl, c, HDRSZ, T_HELLO, key, 0, addr);
}

static void
op_send(struct evpl *evpl, struct conn *c)
{
    struct rng *r = &c->w->rng;

    if (!can_send(c) || (is_rdmacm && !c->connected)) {
        return;
    }
    if (c->nlog == 0) {
        send_hello(evpl, c);
    }
    send_one(evpl, c, -1, T_DATA, 0, 0, 0);
    if (rpct(r, 5)) {
        /* evpl_sendv of no iovecs: nothing (not logged) */
        evpl_sendv(evpl, c->bind, NULL, 0, 0, 0);
    }
}

static void
do_finish(struct evpl *evpl, struct conn *c)
{
    if (!c->bind) {
        return;
    }
    if (can_send(c)) {
        c->finished_by_me = 1;
        c->promised = c->nlog;
        c->send_dead = 1;
    }
    LOG("[w%d] conn %d finish (queued %u)", c->w->index, c->id, c->nlog);
    evpl_finish(evpl, c->bind);
    if (!evpl_bind_is_closing(c->bind)) {
        FAIL("conn %d: evpl_bind_is_closing 0 right after evpl_finish", c->id);
    }
}

static void
do_close(struct evpl *evpl, struct conn *c)
{
    struct rng *r = &c->w->rng;

    if (!c->bind) {
        return;
    }
    c->closed_by_me = 1;
    c->send_dead = 1;
    LOG("[w%d] conn %d close (queued %u)", c->w->index, c->id, c->nlog);
    evpl_close(evpl, c->bind);
    if (!evpl_bind_is_closing(c->bind)) {
        FAIL("conn %d: evpl_bind_is_closing 0 right after evpl_close", c->id);
    }
    if (rpct(r, 20)) {
        /* a send after close is dropped (net.md §6): not logged, so a
         * delivery shows up as a message beyond what was queued */
        uint8_t junk[HDRSZ + 8];

        build_msg(c, c->nlog, sizeof(junk), T_DATA, 0, 0, 0, junk);
        evpl_send(evpl, c->bind, junk, sizeof(junk));
    }
    if (rpct(r, 20)) {
        evpl_close(evpl, c->bind); /* idempotent */
    }
}

/* ------------------------------------------------------------------ */
/* one-sided operations                                                */

static void op_rdma(struct evpl *evpl, struct conn *c, int allow_closing);
static void maybe_act(struct evpl *evpl, struct conn *c, int from_rdma);

static void
rdma_cb(int status, void *priv)
{
    struct op *o = priv;
    struct conn *c = o->c;
    struct world *w = c->w;

    if (in_rdma_call) {
        FAIL("conn %d: RDMA %s callback inside an evpl_rdma_* call", c->id,
             o->is_write ? "write" : "read");
    }
    if (cur_world != w) {
        FAIL("conn %d: RDMA callback on the wrong loop/thread", c->id);
    }
    if (o->done++) {
        FAIL("conn %d: RDMA %s callback ran %d times", c->id, o->is_write ? "write" : "read",
             o->done);
        return;
    }
    o->status = status;
    if (c->disconnected) {
        c->after_disc++;
        FAIL("conn %d: RDMA %s callback (status %d) after DISCONNECTED", c->id,
             o->is_write ? "write" : "read", status);
    }
    c->ops_inflight--;
    if (o->bad) {
        if (status == 0) {
            FAIL("conn %d: RDMA %s of an invalid key/address (key %u addr %llx) succeeded", c->id,
                 o->is_write ? "write" : "read", c->rkey, (unsigned long long) o->off);
        }
    } else {
        /* (RDMA CM: a request flushed by the connection's end is a
         * work-completion error, EIO: rdma.md §3) */
        if (status != 0 && status != ECONNRESET && !(is_rdmacm && status == EIO)) {
            FAIL("conn %d: RDMA %s [%llu,+%llu) status %d", c->id, o->is_write ? "write" : "read",
                 (unsigned long long) o->off, (unsigned long long) o->len, status);
        } else if (status != 0 && c->bind && !evpl_bind_is_closing(c->bind)) {
            FAIL("conn %d: RDMA %s [%llu,+%llu) status %d on a bind that is not closing", c->id,
                 o->is_write ? "write" : "read", (unsigned long long) o->off,
                 (unsigned long long) o->len, status);
        }
        if (o->is_write) {
            if (status == 0) {
                t_pattern_fill(o->key, o->off, c->shadow + o->off, o->len);
                memset(c->valid + o->off, 1, o->len);
            } else {
                memset(c->valid + o->off, 0, o->len); /* may or may not have landed */
            }
        } else if (status == 0) {
            uint64_t pos = o->off;

            for (int k = 0; k < o->niov; k++) {
                const uint8_t *p = o->iov[k].data;

                for (uint32_t j = 0; j < o->iov[k].length; j++, pos++) {
                    if (c->valid[pos] && p[j] != c->shadow[pos]) {
                        if (c->errors++ < 3) {
                            FAIL("conn %d: RDMA read of [%llu,+%llu): byte at %llu is %02x, the "
                                 "last completed write left %02x",
                                 c->id, (unsigned long long) o->off, (unsigned long long) o->len,
                                 (unsigned long long) pos, p[j], c->shadow[pos]);
                        }
                        goto checked;
                    }
                }
            }
        checked:;
        }
        if (status == 0) {
            c->rdma_ok++;
        } else {
            c->rdma_fail++;
        }
    }
    if (!o->is_write) {
        evpl_iovecs_release(w->evpl, o->iov, o->niov);
    }
    if (o->slot >= 0) {
        c->slot_busy[o->slot] = 0;
    }
    if (c->bind) {
        maybe_act(w->evpl, c, 1);
    }
}

/* Allocate len bytes in 1..4 iovecs. */
static int
alloc_pieces(struct evpl *evpl, struct rng *r, uint64_t len, struct evpl_iovec *iov)
{
    int n = 0;
    uint64_t left = len;

    while (left) {
        uint64_t piece = (n < 2 && rpct(r, 40)) ? rrange(r, 1, left) : left;
        int got =
            evpl_iovec_alloc(evpl, (unsigned int) piece, 0, (unsigned int) (4 - n), 0, &iov[n]);

        if (got < 0) {
            /* too many pieces: give up on splitting */
            evpl_iovecs_release(evpl, iov, n);
            n = 0;
            got = evpl_iovec_alloc(evpl, (unsigned int) len, 0, 4, 0, iov);
            return got;
        }
        n += got;
        left -= piece;
        if (left && n >= 4) {
            evpl_iovecs_release(evpl, iov, n);
            return evpl_iovec_alloc(evpl, (unsigned int) len, 0, 4, 0, iov);
        }
    }
    return n;
}

static void
op_rdma(struct evpl *evpl, struct conn *c, int allow_closing)
{
    struct world *w = c->w;
    struct rng *r = &w->rng;
    uint64_t slot_len = region_size / NSLOT;
    struct op *o;
    int slot = -1;

    if (!c->bind || !c->have_advert) {
        return;
    }
    if (!allow_closing && evpl_bind_is_closing(c->bind)) {
        return;
    }
    o = calloc(1, sizeof(*o));
    o->c = c;
    o->is_write = rpct(r, 50);
    /* (RDMA CM: a bad key is a remote access error, which breaks the
     * connection for good: rdma.md statement 4 leaves it out) */
    o->bad = !is_rdmacm && rpct(r, 6);
    o->slot = -1;
    if (!o->bad) {
        int start = (int) rrange(r, 0, NSLOT - 1);

        for (int i = 0; i < NSLOT; i++) {
            if (!c->slot_busy[(start + i) % NSLOT]) {
                slot = (start + i) % NSLOT;
                break;
            }
        }
        if (slot < 0) {
            free(o);
            return;
        }
        o->slot = slot;
        o->off = rrange(r, 0, slot_len - 1);
        o->len = rrange(r, 1, slot_len - o->off);
        if (rpct(r, 30) && o->len > 64) {
            o->len = rrange(r, 1, 64); /* small */
        }
        if (rpct(r, 15)) {
            o->off = 0;
            o->len = slot_len;
        }
        o->off += (uint64_t) slot * slot_len;
    } else {
        o->off = 0;
        o->len = rrange(r, 1, 4096);
    }
    o->key = t_mix64(((uint64_t) c->id << 40) ^ rnext(r));
    o->niov = alloc_pieces(evpl, r, o->len, o->iov);
    if (o->niov <= 0) {
        FAIL("conn %d: alloc of %llu for an RDMA op failed", c->id, (unsigned long long) o->len);
        free(o);
        return;
    }
    o->next = w->ops;
    w->ops = o;
    {
        uint32_t key = c->rkey;
        uint64_t addr = c->raddr + o->off;

        if (o->bad) {
            int b = (int) rrange(r, 0, 2);

            key = b == 0 ? 0 : b == 1 ? 0xfffff000u : c->rkey;
            addr = b == 2 ? (uint64_t) -8192 : c->raddr;
        }
        if (o->is_write) {
            uint64_t pos = o->off;
            int take = rpct(r, 50);

            for (int k = 0; k < o->niov; k++) {
                t_pattern_fill(o->key, pos, o->iov[k].data, o->iov[k].length);
                pos += o->iov[k].length;
            }
            if (!o->bad) {
                memset(c->valid + o->off, 0, o->len); /* in flight: unknown */
                c->slot_busy[slot] = 1;
            }
            if (!o->bad && rpct(r, 3)) {
                /* a NULL callback: never told; the slot stays unknown */
                o->nullcb = 1;
                c->slot_busy[slot] = 2;
                in_rdma_call++;
                evpl_rdma_write(evpl, c->bind, key, addr, o->iov, o->niov,
                                take ? EVPL_RDMA_FLAG_TAKE_REF : 0, NULL, NULL);
                in_rdma_call--;
            } else {
                c->ops_inflight++;
                in_rdma_call++;
                evpl_rdma_write(evpl, c->bind, key, addr, o->iov, o->niov,
                                take ? EVPL_RDMA_FLAG_TAKE_REF : 0, rdma_cb, o);
                in_rdma_call--;
            }
            if (!take) {
                evpl_iovecs_release(evpl, o->iov, o->niov);
            }
            LOG("[w%d] conn %d rdma write [%llu,+%llu) bad=%d", w->index, c->id,
                (unsigned long long) o->off, (unsigned long long) o->len, o->bad);
            /* TCP-RDMA: a message after the write finds it in place */
            if (is_tcp_rdma && !o->bad && !o->nullcb && can_send(c) && c->nlog > 0 && rpct(r, 30)) {
                send_one(evpl, c, HDRSZ + 8, T_MARKER, (uint32_t) o->off, (uint32_t) o->len,
                         o->key);
            }
        } else {
            for (int k = 0; k < o->niov; k++) {
                memset(o->iov[k].data, 0xEE, o->iov[k].length);
            }
            if (!o->bad) {
                c->slot_busy[slot] = 1;
            }
            c->ops_inflight++;
            in_rdma_call++;
            evpl_rdma_read(evpl, c->bind, key, addr, o->iov, o->niov, rdma_cb, o);
            in_rdma_call--;
            LOG("[w%d] conn %d rdma read [%llu,+%llu) bad=%d", w->index, c->id,
                (unsigned long long) o->off, (unsigned long long) o->len, o->bad);
        }
    }
    if (o->done) {
        FAIL("conn %d: RDMA callback ran inside the call", c->id);
    }
}

/* ------------------------------------------------------------------ */
/* receiving                                                           */

static __thread uint8_t *rx_buf;

static void
rx_msg(struct conn *c, struct evpl_notify *n)
{
    uint8_t *buf;
    uint64_t total = 0;
    uint32_t len = n->recv_msg.length, want;
    struct conn *peer = NULL;
    uint64_t key;

    if (!rx_buf) {
        rx_buf = malloc(MAXMSG + 4096);
    }
    buf = rx_buf;
    for (unsigned k = 0; k < n->recv_msg.niov; k++) {
        if (total + n->recv_msg.iovec[k].length <= MAXMSG + 4096) {
            memcpy(buf + total, n->recv_msg.iovec[k].data, n->recv_msg.iovec[k].length);
        }
        total += n->recv_msg.iovec[k].length;
    }
    if (total != len) {
        FAIL("conn %d: recv_msg.length %u but iovecs hold %llu", c->id, len,
             (unsigned long long) total);
        c->errors++;
        return;
    }
    if (n->notify_status != 0) {
        FAIL("conn %d: RECV_MSG with status %d", c->id, n->notify_status);
    }
    if (len > MAXMSG) {
        FAIL("conn %d: message of %u bytes, more than any sent", c->id, len);
        c->errors++;
        return;
    }
    if (c->rx_seq == 0) {
        struct mhdr h;

        if (len != HDRSZ) {
            FAIL("conn %d: first message is %u bytes, not the hello", c->id, len);
            c->errors++;
            return;
        }
        memcpy(&h, buf, HDRSZ);
        if (h.magic != MAGIC || h.type != T_HELLO || h.seq != 0 || h.src == 0 ||
            h.src >= MAXCONNID || !atomic_load(&registry[h.src])) {
            FAIL("conn %d: bad hello (magic %x type %u seq %u src %u)", c->id, h.magic, h.type,
                 h.seq, h.src);
            c->errors++;
            return;
        }
        c->peer_id = h.src;
        c->rkey = h.a32;
        c->raddr = h.a64;
        c->have_advert = 1;
    }
    peer = atomic_load(&registry[c->peer_id]);
    if (peer->is_client == c->is_client) {
        FAIL("conn %d paired with conn %d of the same side", c->id, peer->id);
    }
    pthread_mutex_lock(&peer->lk);
    if (c->rx_seq >= peer->nlog) {
        pthread_mutex_unlock(&peer->lk);
        FAIL("conn %d: message %u (%u bytes) from conn %d, which queued only %u", c->id, c->rx_seq,
             len, peer->id, peer->nlog);
        c->errors++;
        c->rx_seq++;
        return;
    }
    want = peer->log[c->rx_seq];
    pthread_mutex_unlock(&peer->lk);
    if (want != len) {
        if (c->errors++ < 3) {
            FAIL("conn %d: message %u from conn %d is %u bytes, sent %u (boundary/order)", c->id,
                 c->rx_seq, peer->id, len, want);
        }
        c->rx_seq++;
        return;
    }
    key = msg_key((uint32_t) peer->id, c->rx_seq);
    if (len >= HDRSZ) {
        struct mhdr h;
        int64_t bad;

        memcpy(&h, buf, HDRSZ);
        if (h.magic != MAGIC || h.src != (uint32_t) peer->id || h.seq != c->rx_seq ||
            h.len != len) {
            if (c->errors++ < 3) {
                FAIL("conn %d: message %u header: magic %x src %u seq %u len %u (want src %d)",
                     c->id, c->rx_seq, h.magic, h.src, h.seq, h.len, peer->id);
            }
        } else if ((bad = t_pattern_check(key, HDRSZ, buf + HDRSZ, len - HDRSZ)) >= 0) {
            if (c->errors++ < 3) {
                FAIL("conn %d: message %u from conn %d (%u bytes, %u iovecs) corrupt at byte "
                     "%lld",
                     c->id, c->rx_seq, peer->id, len, n->recv_msg.niov, (long long) (bad + HDRSZ));
            }
        } else if (h.type == T_MARKER && c->have_region) {
            /* TCP-RDMA: the write sent before this message is in place */
            int64_t b2 = t_pattern_check(h.a64, h.a32, (uint8_t *) c->region.data + h.a32, h.b32);

            if (h.a32 + (uint64_t) h.b32 > region_size) {
                FAIL("conn %d: marker names [%u,+%u) outside the buffer", c->id, h.a32, h.b32);
            } else if (b2 >= 0) {
                FAIL("conn %d: message %u sent after an RDMA write of [%u,+%u) arrived before "
                     "the written bytes (first difference at %lld)",
                     c->id, c->rx_seq, h.a32, h.b32, (long long) b2);
            }
        }
    } else if (t_pattern_check(key, 0, buf, len) >= 0) {
        if (c->errors++ < 3) {
            FAIL("conn %d: short message %u (%u bytes) from conn %d corrupt", c->id, c->rx_seq, len,
                 peer->id);
        }
    }
    c->rx_seq++;
}

/* ------------------------------------------------------------------ */
/* notifications                                                       */

static void
release_region(struct evpl *evpl, struct conn *c)
{
    if (c->have_region) {
        evpl_iovec_release(evpl, &c->region);
        c->have_region = 0;
    }
}

static void
notify_cb(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct conn *c = priv;
    struct rng *r = &c->w->rng;

    if (c->w->evpl != evpl || cur_world != c->w) {
        FAIL("conn %d: callback on the wrong loop", c->id);
    }
    if (in_rdma_call) {
        FAIL("conn %d: notification %u inside an evpl_rdma_* call", c->id, n->notify_type);
    }
    if (c->disconnected) {
        c->after_disc++;
        FAIL("conn %d: notification %u after DISCONNECTED", c->id, n->notify_type);
        if (n->notify_type == EVPL_NOTIFY_RECV_MSG) {
            evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
        }
        return;
    }
    if (c->bind != bind) {
        FAIL("conn %d: callback for bind %p, expected %p", c->id, (void *) bind, (void *) c->bind);
    }
    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            if (c->connected) {
                FAIL("conn %d: second CONNECTED", c->id);
            }
            if (c->rx_seq) {
                FAIL("conn %d: CONNECTED after data", c->id);
            }
            c->connected++;
            if (c->is_client) {
                atomic_fetch_add(&nclients_connected, 1);
            }
            if ((!c->is_client || is_rdmacm) && c->nlog == 0 && can_send(c)) {
                send_hello(evpl, c);
            }
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            c->disconnected++;
            c->disc_status = n->notify_status;
            LOG("[w%d] conn %d DISCONNECTED status %d (queued %u rx %u inflight %d)", c->w->index,
                c->id, n->notify_status, c->nlog, c->rx_seq, c->ops_inflight);
            if (c->ops_inflight) {
                FAIL("conn %d (%s): DISCONNECTED (status %d) with %d RDMA operation(s) not "
                     "completed",
                     c->id, c->is_client ? "client" : "server", n->notify_status, c->ops_inflight);
            }
            c->bind = NULL;
            atomic_fetch_sub(&live, 1);
            if (rpct(r, 20)) {
                evpl_close(evpl, bind); /* a no-op from DISCONNECTED (§14.7) */
            }
            if (atomic_load(&phase) >= 2) {
                release_region(evpl, c); /* closed by evpl_destroy */
            }
            break;
        case EVPL_NOTIFY_RECV_DATA:
            FAIL("conn %d: RECV_DATA on a datagram bind", c->id);
            break;
        case EVPL_NOTIFY_RECV_MSG:
            if (!c->connected) {
                c->data_before_connect++;
                FAIL("conn %d: RECV_MSG before CONNECTED", c->id);
            }
            rx_msg(c, n);
            evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
            break;
        case EVPL_NOTIFY_SENT:
            if (!c->send_notify) {
                FAIL("conn %d: SENT without request", c->id);
            }
            c->sent_bytes += n->sent.bytes;
            c->sent_msgs += n->sent.msgs;
            break;
        default:
            FAIL("conn %d: unknown notification %u", c->id, n->notify_type);
    }
    if (c->bind && n->notify_type == EVPL_NOTIFY_RECV_MSG) {
        maybe_act(evpl, c, 0);
    }
}

/* Act from inside a callback, now and then. */
static void
maybe_act(struct evpl *evpl, struct conn *c, int from_rdma)
{
    struct rng *r = &c->w->rng;
    int k = (int) rrange(r, 0, 999);

    if (atomic_load(&phase) >= 2) {
        return;
    }
    if (k < (from_rdma ? 250 : 40)) {
        op_rdma(evpl, c, 0); /* a chain: the next operation from the callback */
    } else if (k < (from_rdma ? 300 : 80)) {
        op_send(evpl, c);
    } else if (k < (from_rdma ? 310 : 90)) {
        do_finish(evpl, c);
    } else if (k < (from_rdma ? 320 : 100)) {
        do_close(evpl, c);
        if (rpct(r, 30)) {
            op_rdma(evpl, c, 1); /* on a closing bind */
        }
    }
}

static struct conn *
conn_new(struct world *w, struct evpl *evpl, int is_client)
{
    struct conn *c = calloc(1, sizeof(*c));

    c->id = atomic_fetch_add(&next_id, 1);
    c->is_client = is_client;
    c->w = w;
    c->peer_id = -1;
    pthread_mutex_init(&c->lk, NULL);
    c->shadow = calloc(region_size, 1);
    c->valid = calloc(region_size, 1);
    if (evpl_iovec_alloc(evpl, region_size, 0, 1, 0, &c->region) != 1) {
        FAIL("conn %d: cannot allocate its %u-byte buffer", c->id, region_size);
    } else {
        memset(c->region.data, 0, region_size);
        c->have_region = 1;
    }
    /* the peer's buffer starts as zeros: known */
    memset(c->valid, 1, region_size);
    world_add(w, c);
    atomic_fetch_add(&live, 1);
    if (c->id < MAXCONNID) {
        atomic_store(&registry[c->id], c);
    }
    return c;
}

static void
attach_cb(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_callback,
          evpl_segment_callback_t *segment_callback, void **conn_private_data, void *private_data)
{
    struct world *w = private_data;
    struct conn *c;

    if (cur_world != w) {
        FAIL("attach callback on the wrong thread");
    }
    c = conn_new(w, evpl, 0);
    atomic_fetch_add(&nattached, 1);
    c->bind = bind;
    *notify_callback = notify_cb;
    *segment_callback = NULL;
    *conn_private_data = c;
    if (rpct(&w->rng, 30)) {
        c->send_notify = 1;
        evpl_bind_request_send_notifications(evpl, bind);
    }
    if (!is_rdmacm && rpct(&w->rng, 50)) {
        send_hello(evpl, c); /* queued before CONNECTED (RDMA CM: no keys yet) */
    }
    LOG("[w%d] accept conn %d", w->index, c->id);
}

/* ------------------------------------------------------------------ */
/* steps                                                               */

static struct conn *
pick(struct world *w, int want_client, int want_server)
{
    int n = 0;
    struct conn *cand[512];

    for (int i = w->nconns - 1; i >= 0 && n < 512; i--) {
        struct conn *c = w->conns[i];

        if (!c->bind) {
            continue;
        }
        if ((c->is_client && want_client) || (!c->is_client && want_server)) {
            cand[n++] = c;
        }
    }
    if (!n) {
        return NULL;
    }
    return cand[rrange(&w->rng, 0, (uint64_t) n - 1)];
}

static void
op_connect(struct world *w)
{
    struct conn *c = conn_new(w, w->evpl, 1);

    c->bind = evpl_connect(w->evpl, proto, NULL, L.ep, notify_cb, NULL, c);
    if (!c->bind) {
        FAIL("evpl_connect returned NULL");
        c->disconnected = 1;
        atomic_fetch_sub(&live, 1);
        return;
    }
    if (c->connected || c->disconnected) {
        FAIL("conn %d: callback from inside evpl_connect", c->id);
    }
    if (rpct(&w->rng, 30)) {
        c->send_notify = 1;
        evpl_bind_request_send_notifications(w->evpl, c->bind);
    }
    if (!is_rdmacm) {
        send_hello(w->evpl, c); /* (RDMA CM: at CONNECTED) */
    }
    LOG("[w%d] connect conn %d", w->index, c->id);
}

static void
run_passes(struct world *w, int n)
{
    for (int i = 0; i < n; i++) {
        evpl_continue(w->evpl);
    }
}

static void
step(struct world *w)
{
    struct rng *r = &w->rng;
    int k = (int) rrange(r, 0, 99);
    struct conn *c;

    if (k < (w->index == 0 ? 6 : 3)) {
        op_connect(w);
    } else if (k < 36) {
        if ((c = pick(w, 1, 1))) {
            int burst = (int) rrange(r, 1, rpct(r, 10) ? 8 : 2);

            for (int i = 0; i < burst; i++) {
                op_send(w->evpl, c);
            }
        }
    } else if (k < 52) {
        if ((c = pick(w, 1, 1))) {
            int burst = (int) rrange(r, 1, 4);

            for (int i = 0; i < burst; i++) {
                op_rdma(w->evpl, c, 0);
            }
        }
    } else if (k < 55) {
        if ((c = pick(w, 1, 0))) {
            do_finish(w->evpl, c);
        }
    } else if (k < 57) {
        if ((c = pick(w, 1, 0))) {
            do_close(w->evpl, c);
        }
    } else if (k < 60) {
        if ((c = pick(w, 0, 1))) { /* server side */
            if (rpct(r, 50)) {
                do_finish(w->evpl, c);
            } else {
                do_close(w->evpl, c);
            }
        }
    } else if (k < 61) {
        if ((c = pick(w, 1, 1))) { /* finish then abortive close */
            do_finish(w->evpl, c);
            do_close(w->evpl, c);
        }
    } else {
        run_passes(w, (int) rrange(r, 1, 4));
    }
}

/* Finish (mostly) or close every client of w still open. */
static void
wind_down(struct world *w)
{
    for (int i = 0; i < w->nconns; i++) {
        struct conn *c = w->conns[i];

        if (c->bind && c->is_client) {
            if (rpct(&w->rng, 80)) {
                do_finish(w->evpl, c);
            } else {
                do_close(w->evpl, c);
            }
        }
    }
    w->wound_down = 1;
}

static void
world_release_regions(struct world *w)
{
    for (int i = 0; i < w->nconns; i++) {
        if (w->conns[i]->disconnected) {
            release_region(w->evpl, w->conns[i]);
        }
    }
}

static struct evpl *
make_loop(void)
{
    struct evpl_thread_config *tc = evpl_thread_config_init();
    struct evpl *evpl;

    evpl_thread_config_set_poll_mode(tc, 0);
    evpl_thread_config_set_wait_ms(tc, 1);
    evpl = evpl_create(tc);
    evpl_thread_config_release(tc);
    return evpl;
}

static void *
thread2_main(void *arg)
{
    struct world *w = arg;

    cur_world = w;
    w->evpl = make_loop();
    w->binding = evpl_listener_attach(w->evpl, L.listener, attach_cb, w);
    atomic_store(&thread2_ready, 1);
    while (atomic_load(&phase) < 2) {
        if (atomic_load(&phase) == 0) {
            step(w);
        } else {
            if (!w->wound_down) {
                wind_down(w);
            }
            evpl_continue(w->evpl);
        }
    }
    evpl_listener_detach(w->evpl, w->binding);
    world_release_regions(w);
    evpl_destroy(w->evpl);
    free(rx_buf);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* final checks                                                        */

static void
final_checks(void)
{
    int nconns = 0, ndeliv = 0, nsent = 0;
    uint64_t msgs = 0, ok = 0, fail = 0;

    for (int t = 0; t < nthreads; t++) {
        for (struct op *o = worlds[t].ops; o; o = o->next) {
            if (!o->nullcb && o->done != 1) {
                FAIL("conn %d: RDMA %s [%llu,+%llu) callback ran %d times", o->c->id,
                     o->is_write ? "write" : "read", (unsigned long long) o->off,
                     (unsigned long long) o->len, o->done);
            }
        }
        for (int i = 0; i < worlds[t].nconns; i++) {
            struct conn *x = worlds[t].conns[i];
            struct conn *y = x->peer_id > 0 ? atomic_load(&registry[x->peer_id]) : NULL;

            nconns++;
            msgs += x->rx_seq;
            ok += x->rdma_ok;
            fail += x->rdma_fail;
            if (x->disconnected != 1) {
                FAIL("conn %d (%s): %d DISCONNECTED notifications", x->id,
                     x->is_client ? "client" : "server", x->disconnected);
            }
            if (x->ops_inflight) {
                FAIL("conn %d: %d RDMA operations never completed", x->id, x->ops_inflight);
            }
            if (x->send_notify) {
                if (x->sent_bytes > x->tx_bytes || x->sent_msgs > x->nlog) {
                    FAIL("conn %d: SENT sums %llu bytes / %llu msgs > queued %llu / %u", x->id,
                         (unsigned long long) x->sent_bytes, (unsigned long long) x->sent_msgs,
                         (unsigned long long) x->tx_bytes, x->nlog);
                }
            }
            if (!y) {
                continue;
            }
            /* y -> x: everything a finished y queued reached x, unless x
             * closed or finished itself */
            if (y->finished_by_me && !y->closed_by_me && !x->closed_by_me && !x->finished_by_me) {
                ndeliv++;
                if (x->rx_seq != y->promised) {
                    FAIL("conn %d (%s) finished after queueing %u messages; peer conn %d (%s, "
                         "DISCONNECTED status %d) received %u",
                         y->id, y->is_client ? "client" : "server", y->promised, x->id,
                         x->is_client ? "client" : "server", x->disc_status, x->rx_seq);
                }
                /* y's SENT sums: everything handed over */
                if (y->send_notify && y->disc_status == 0 &&
                    (y->sent_bytes != y->tx_bytes || y->sent_msgs != y->nlog)) {
                    FAIL("conn %d (finished, peer conn %d open): SENT sums %llu bytes / %llu "
                         "msgs, queued %llu / %u",
                         y->id, x->id, (unsigned long long) y->sent_bytes,
                         (unsigned long long) y->sent_msgs, (unsigned long long) y->tx_bytes,
                         y->nlog);
                }
                nsent += y->send_notify;
            }
        }
    }
    fprintf(stderr,
            "conns: %d, messages received %llu, finish-checked directions %d (SENT-checked %d), "
            "RDMA ok %llu failed %llu\n",
            nconns, (unsigned long long) msgs, ndeliv, nsent, (unsigned long long) ok,
            (unsigned long long) fail);
}

static int
stress_main(int argc, char **argv)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    const char *certs = NULL; /* (no certificates here) */
    struct rng cfg_rng;
    pthread_t t2;
    char name[128];

    if (t_stress_options(argc, argv, cfg, &nsteps, &certs) != 0) {
        evpl_global_config_release(cfg);
        return 2;
    }
    if (!proto_name) {
        proto_name = "DATAGRAM_INPROC";
    }
    alarm(getenv("EVPL_VM") ? 180 : 60); /* hang guard (the emulated VM is slower) */

    cfg_rng.s = seed * 7919 + 17;
    if (rpct(&cfg_rng, 50)) {
        /* small buffers: messages and one-sided operations span iovecs */
        buffer_size = 64 * 1024;
        evpl_global_config_set_buffer_size(cfg, buffer_size);
        evpl_global_config_set_slab_size(cfg, 64 * buffer_size);
    } else {
        evpl_global_config_set_slab_size(cfg, 64ull * 1024 * 1024);
    }
    evpl_global_config_set_max_pending(cfg, 256);
    evpl_init(cfg);

    if (evpl_protocol_lookup(&proto, proto_name) != 0) {
        fprintf(stderr, "protocol %s unavailable\n", proto_name);
        return 77;
    }
    if (!t_proto_is_connected_datagram(proto)) {
        fprintf(stderr, "%s is not a connected datagram protocol\n", proto_name);
        return 77;
    }
    is_tcp_rdma = proto == EVPL_DATAGRAM_TCP_RDMA;
    is_rdmacm = t_proto_is_rdmacm(proto);
    region_size = (uint32_t) (buffer_size < 128 * 1024 ? buffer_size : 128 * 1024);
    fprintf(stderr, "seed=%llu proto=%s threads=%d steps=%d buffer_size=%llu\n",
            (unsigned long long) seed, proto_name, nthreads, nsteps,
            (unsigned long long) buffer_size);

    worlds[0].index = 0;
    worlds[0].rng.s = seed;
    cur_world = &worlds[0];
    worlds[0].evpl = make_loop();

    L.listener = evpl_listener_create();
    for (int attempt = 0; attempt < 5; attempt++) {
        if (evpl_protocol_is_inproc(proto)) {
            snprintf(name, sizeof(name), "evpl-stress-cdg-%d-%d", (int) getpid(), attempt);
            L.ep = evpl_endpoint_create_inproc(name);
        } else if (is_rdmacm) {
            L.ep = evpl_endpoint_create(t_rdma_addr(), t_free_port(SOCK_STREAM));
        } else {
            int v6 = rpct(&cfg_rng, 30);
            int port = t_try_free_port_af(v6 ? AF_INET6 : AF_INET, SOCK_STREAM);

            if (port < 0) {
                v6 = 0;
                port = t_try_free_port_af(AF_INET, SOCK_STREAM);
            }
            L.ep = evpl_endpoint_create(v6 ? "::1" : "127.0.0.1", port);
        }
        if (evpl_listen(L.listener, proto, L.ep) == 0) {
            break;
        }
        evpl_endpoint_close(L.ep);
        L.ep = NULL;
    }
    if (!L.ep) {
        FAIL("evpl_listen failed 5 times");
        return 1;
    }
    worlds[0].binding = evpl_listener_attach(worlds[0].evpl, L.listener, attach_cb, &worlds[0]);
    if (nthreads == 2) {
        worlds[1].index = 1;
        worlds[1].rng.s = seed ^ 0xabcdef12345ull;
        pthread_create(&t2, NULL, thread2_main, &worlds[1]);
        while (!atomic_load(&thread2_ready)) {
            usleep(100);
        }
    }

    for (int s = 0; s < nsteps; s++) {
        step(&worlds[0]);
    }

    /* wind down: finish (mostly) or close every client, then pump until
     * every conn is gone and every connected client was accepted */
    atomic_store(&phase, 1);
    wind_down(&worlds[0]);
    {
        uint64_t deadline = t_now_ns() + 15ull * 1000000000ull, grace_end = 0;
        int attached_seen = atomic_load(&nattached);

        while (t_now_ns() < deadline) {
            evpl_continue(worlds[0].evpl);
            if (atomic_load(&nattached) != attached_seen) {
                attached_seen = atomic_load(&nattached);
                grace_end = 0;
            }
            if (atomic_load(&live) == 0 &&
                atomic_load(&nattached) >= atomic_load(&nclients_connected)) {
                if (grace_end == 0) {
                    grace_end = t_now_ns() + 300ull * 1000000ull;
                } else if (t_now_ns() > grace_end) {
                    break;
                }
            } else {
                grace_end = 0;
            }
        }
        if (atomic_load(&live) != 0) {
            for (int t = 0; t < nthreads; t++) {
                for (int i = 0; i < worlds[t].nconns; i++) {
                    struct conn *c = worlds[t].conns[i];

                    if (!c->disconnected) {
                        FAIL("HANG: conn %d (%s, w%d) no DISCONNECTED 15 s after wind-down "
                             "(connected %d finished %d closed %d queued %u rx %u inflight %d)",
                             c->id, c->is_client ? "client" : "server", t, c->connected,
                             c->finished_by_me, c->closed_by_me, c->nlog, c->rx_seq,
                             c->ops_inflight);
                    }
                }
            }
        }
    }
    atomic_store(&phase, 2);
    if (nthreads == 2) {
        pthread_join(t2, NULL);
    }
    evpl_listener_detach(worlds[0].evpl, worlds[0].binding);
    evpl_listener_destroy(L.listener);
    world_release_regions(&worlds[0]);
    evpl_destroy(worlds[0].evpl);
    free(rx_buf);

    final_checks();
    for (int t = 0; t < nthreads; t++) {
        for (int i = 0; i < worlds[t].nconns; i++) {
            struct conn *c = worlds[t].conns[i];

            if (c->have_region) {
                FAIL("conn %d: buffer never released (internal)", c->id);
            }
            free(c->log);
            free(c->shadow);
            free(c->valid);
            pthread_mutex_destroy(&c->lk);
            free(c);
        }
        free(worlds[t].conns);
        while (worlds[t].ops) {
            struct op *o = worlds[t].ops;

            worlds[t].ops = o->next;
            free(o);
        }
    }
    evpl_endpoint_close(L.ep);
    fprintf(stderr, "%s\n", failures ? "RESULT FAIL" : "RESULT PASS");
    return failures ? 1 : 0;
}

/*
 * The suite's entry: protocol from T_PROTO, one child process per seed of
 * T_STRESS_SEEDS (odd seeds: two loops).
 */
int
main(int argc, char **argv)
{
    if (argc > 1) {
        return stress_main(argc, argv);
    }
    return t_stress_seeds(argv[0], stress_main);
} /* main */
