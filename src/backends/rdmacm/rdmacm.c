/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * RDMA CM transports (rdma.md §5): unreliable datagrams
 * (EVPL_DATAGRAM_RDMACM_UD, a section of its own below) and reliable connected:
 * EVPL_DATAGRAM_RDMACM_RC (one RECV_MSG per send) and EVPL_STREAM_RDMACM_RC
 * (the same messages appended to a byte stream).
 *
 *  - Devices, process-wide: every device librdmacm hands us gets one
 *    protection domain and a memory framework; each buffer is registered
 *    on it once, when it first goes to the device, and an iovec's keys are
 *    then an O(1) lookup.
 *  - Per loop: one CM event channel; per device in use, a completion queue
 *    with its completion channel and a shared receive queue whose entries
 *    are library buffers of the receive size, handed to the application as
 *    they are (zero copy).
 *  - Per connection: an RC queue pair on its loop's completion and receive
 *    queues.  Sends and one-sided operations become work requests in issue
 *    order (a write goes after the sends queued before it and before those
 *    queued after it); every request is signalled, and a queue pair's
 *    requests complete in order, so a FIFO says what each one holds.
 *  - Listening runs on the listener thread.  A connection request goes to
 *    the loop that takes it, which moves the id to its own event channel,
 *    makes the queue pair there and accepts.
 *  - Closing: the bind is done with at once.  The connection lives on,
 *    detached, until the CM has nothing more to say and every request has
 *    completed (flushed), so the device never touches memory the library
 *    has given back.
 */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "backends/socket/socket.h"
#include "mem/mem.h"
#include "net/net.h"

#define KIND_CONN   1
#define KIND_LISTEN 2
#define KIND_UDPEER 3 /* an unreliable-datagram destination being resolved */
#define QP_BUCKETS  1024
#define POLL_BATCH  32
/* completions reaped in one look while the loop runs: a queue kept busy
 * (a peer sending as fast as the application takes it) waits for the
 * next pass, so timers, sockets and deferred work get their turn */
#define POLL_BUDGET 512
#define RD_ATOMIC   16 /* outstanding RDMA reads per queue pair, at most */

/* ---- devices (process-wide) ---- */

struct rdev {
    struct rdev *next;
    struct ibv_context *ctx;
    struct ibv_pd *pd;
    struct evpl_mem_framework fw;
    int fw_id;
    struct ibv_device_attr attr;
};

static pthread_mutex_t rdev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rdev *rdevs;

/*
 * Registration is lazy, one buffer-sized chunk at a time: a slab is
 * reserved address space (1 GiB by default), and registering it whole would
 * pin all of it on the first connection (5 s under the test VM's emulation,
 * and the memory for good).  The slab's handle is a table of chunk
 * registrations, filled when an iovec in the chunk is first used; an iovec
 * that crosses chunks (a whole-slab loan) registers the slab.
 */
struct rslab {
    char *base;
    uint64_t size, chunk;
    uint32_t nchunks;
    _Atomic(struct ibv_mr *) whole;
    _Atomic(struct ibv_mr *) mr[];
};

static void *
rdev_register(void *arg, void *base, uint64_t size)
{
    /* buffers lie at the buffer size rounded up to whole pages (slab.c) */
    uint64_t chunk = evpl__buffer_size ? (evpl__buffer_size + 4095) & ~(uint64_t) 4095 : size;
    uint64_t n = (size + chunk - 1) / chunk;
    struct rslab *rs = calloc(1, sizeof(*rs) + n * sizeof(rs->mr[0]));

    (void) arg;
    if (rs) {
        rs->base = base;
        rs->size = size;
        rs->chunk = chunk;
        rs->nchunks = (uint32_t) n;
    }
    return rs;
} /* rdev_register */

static void
rdev_unregister(void *arg, void *base, uint64_t size, void *handle)
{
    struct rslab *rs = handle;

    (void) arg;
    (void) base;
    (void) size;
    if (!rs) {
        return;
    }
    for (uint32_t i = 0; i < rs->nchunks; i++) {
        if (rs->mr[i]) {
            ibv_dereg_mr(rs->mr[i]);
        }
    }
    if (rs->whole) {
        ibv_dereg_mr(rs->whole);
    }
    free(rs);
} /* rdev_unregister */

/* Register [base, base + len) once: whoever loses the race gives its copy back. */
static struct ibv_mr *
reg_once(struct ibv_pd *pd, _Atomic(struct ibv_mr *) *slot, char *base, uint64_t len)
{
    struct ibv_mr *mr = ibv_reg_mr(pd, base, len,
                                   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
                                       IBV_ACCESS_REMOTE_WRITE),
                  *expected = NULL;

    if (!mr) {
        evpl_log_error("rdmacm", "registering %llu bytes of memory failed: %s",
                       (unsigned long long) len, strerror(errno));
        return NULL;
    }
    if (!atomic_compare_exchange_strong(slot, &expected, mr)) {
        ibv_dereg_mr(mr);
        return expected;
    }
    return mr;
} /* reg_once */

/* The device of ctx, set up on first use (every slab registered on it). */
static struct rdev *
rdev_get(struct ibv_context *ctx)
{
    struct rdev *d;

    pthread_mutex_lock(&rdev_lock);
    for (d = rdevs; d && d->ctx != ctx; d = d->next) {
    }
    if (!d) {
        d = calloc(1, sizeof(*d));
        if (d) {
            d->ctx = ctx;
            d->pd = ibv_alloc_pd(ctx);
            if (!d->pd || ibv_query_device(ctx, &d->attr) != 0) {
                evpl_log_error("rdmacm", "%s: cannot set up the device",
                               ibv_get_device_name(ctx->device));
                if (d->pd) {
                    ibv_dealloc_pd(d->pd);
                }
                free(d);
                d = NULL;
            }
        }
        if (d) {
            d->fw.name = "rdmacm";
            d->fw.register_slab = rdev_register;
            d->fw.unregister_slab = rdev_unregister;
            d->fw.arg = d;
            d->fw_id = evpl__mem_framework_register(&d->fw);
            if (d->fw_id < 0) {
                evpl_log_error("rdmacm", "%s: cannot register memory: %s",
                               ibv_get_device_name(ctx->device), strerror(-d->fw_id));
                ibv_dealloc_pd(d->pd);
                free(d);
                d = NULL;
            }
        }
        if (d) {
            d->next = rdevs;
            rdevs = d;
        }
    }
    pthread_mutex_unlock(&rdev_lock);
    return d;
} /* rdev_get */

static struct ibv_mr *
iov_mr(const struct rdev *d, const struct evpl_iovec *iov)
{
    struct rslab *rs;
    struct ibv_mr *mr;
    uint64_t off, last;
    uint32_t i;

    if (!iov->ref || !iov->ref->slab) {
        return NULL;
    }
    rs = evpl__iovec_mem_handle(iov, d->fw_id);
    if (!rs || (char *) iov->data < rs->base) {
        return NULL;
    }
    off = (uint64_t) ((char *) iov->data - rs->base);
    last = off + (iov->length ? iov->length - 1 : 0);
    if (last >= rs->size) {
        return NULL;
    }
    i = (uint32_t) (off / rs->chunk);
    if (last / rs->chunk != i) {
        mr = atomic_load_explicit(&rs->whole, memory_order_acquire);
        return mr ? mr : reg_once(d->pd, &rs->whole, rs->base, rs->size);
    }
    mr = atomic_load_explicit(&rs->mr[i], memory_order_acquire);
    return mr ? mr
              : reg_once(d->pd, &rs->mr[i], rs->base + (uint64_t) i * rs->chunk,
                         rs->chunk < rs->size - (uint64_t) i * rs->chunk
                             ? rs->chunk
                             : rs->size - (uint64_t) i * rs->chunk);
} /* iov_mr */

/* ---- per loop ---- */

struct rconn;
struct udtab;
struct udpeer;

static void ud_free(struct evpl *evpl, struct udtab *t);

struct rldev {
    struct rldev *next;
    struct rloop *l;
    struct rdev *dev;
    struct ibv_comp_channel *cc;
    struct ibv_cq *cq;
    struct ibv_srq *srq;
    struct evpl_event cc_ev;
    unsigned int cq_events; /* not yet acknowledged */
    /* posted receive buffers, by slot (wr_id = slot << 1 | 1) */
    struct evpl_iovec *slots;
    uint32_t *free_slots;
    uint32_t nfree, nslots, posted, target, batch, recv_size;
    /* the completion queue's room left for send requests (beyond every
     * receive that can be posted), and the connections waiting for it */
    uint32_t send_room, sends;
    uint32_t ctl_room;                    /* beyond send_room: for flow-control messages only */
    struct rconn *waiting, *waiting_tail; /* first come, first served */
    uint32_t woken;                       /* given room, not yet flushed */
    int more;                             /* the last look stopped at its budget */
    struct evpl_timer retry;              /* receive memory ran out: try again */
    int retry_armed;
    /* whole buffers the receive slots are cut from, back to back: posted
     * receives keep only these in use, not the loop's current buffers
     * (which hold the application's allocations too) */
    struct evpl_iovec arena; /* our hold on the buffer being cut (ref NULL: none) */
    uint32_t arena_off;
    struct rconn *qps[QP_BUCKETS];
};

struct rloop {
    struct evpl *evpl;
    struct rdma_event_channel *ch;
    struct evpl_event cm_ev;
    struct rldev *devs;
    struct rconn *detached;    /* closed binds' connections finishing teardown */
    struct evpl_poll *poll;    /* reaps completions while the loop busy-polls */
    int polling;               /* (then the completion channels are not armed) */
    struct evpl_deferral reap; /* detached queue pairs: drain, then destroy */
};

/* one posted work request (WR_CTL: a flow-control message, below) */
enum { WR_SEND = 1, WR_WRITE, WR_READ, WR_CTL };

/*
 * Stream flow control (DESIGN §9.3) between two ends of this library.
 * RC has none of its own: receives come from the loop's shared queue,
 * whatever a bind's application has read, so a peer could fill memory with
 * bytes nobody reads.  The connecting end offers it in the CM's private
 * data (RC_HELLO_LEN bytes: "EVRC", version 1, flags), the accepting end
 * answers the same way, and a peer that says nothing (upstream libevpl)
 * gets neither the offer's meaning nor control messages.  Then a receiver
 * whose bind pauses for back-pressure sends RC_CTL_PAUSE, and RC_CTL_RESUME
 * once it resumes: zero-length sends with an immediate, which take a
 * receive at the other end like any message.  The sender posts no stream
 * bytes in between; what it had posted still lands.  So a bind holds at
 * most its receive limit plus twice what a sender keeps in flight (the
 * smaller of RC_STREAM_INFLIGHT and a send queue of receive-sized
 * messages): what was in flight when it paused, and what was posted as
 * that completed while the pause was on its way; and what had landed in
 * the posted receives before the loop looked (the device acknowledges on
 * landing: a fixed pool per device, shared).  The pause goes out at
 * once, from the completion that made it (a poll lasts as long as the
 * peer keeps sending), ahead of the connections waiting for
 * completion-queue room, in entries of the send and completion queues
 * kept for it.  Offered and granted only on InfiniBand and RoCE devices
 * (iWARP has no immediate data).
 */
#define RC_HELLO_LEN  8
#define RC_HELLO_FLOW 1u
#define RC_CTL_MAGIC  0x45560000u /* "EV" in the immediate's upper half */
#define RC_CTL_PAUSE  1u
#define RC_CTL_RESUME 2u
/* queue entries kept for them beyond the data's: per queue pair, per
 * completion queue */
#define RC_CTL_SQ 2u
#define RC_CTL_CQ 32u
/* Stream bytes a connection has in flight (posted, not yet acknowledged) at
 * most: far above any RDMA network's bandwidth-delay product, and what
 * bounds a paused receiver's memory, with its limit, at twice this */
#define RC_STREAM_INFLIGHT (4u << 20)

struct rwr {
    uint8_t kind;
    uint32_t niov;
    uint32_t bytes, msgs;
    void (*cb)(int status, void *private_data);
    void *arg;
    struct evpl_iovec *iov; /* references held until completion */
    struct evpl_iovec inl[2];
};

/* a one-sided operation not yet posted */
struct rop {
    struct rop *next;
    int write;
    uint32_t rkey;
    uint64_t raddr;
    uint64_t barrier; /* messages (datagram) or bytes (stream) that go before it */
    int niov;
    struct evpl_iovec *iov;
    void (*cb)(int status, void *private_data);
    void *arg;
};

enum { ST_RESOLVING = 0, ST_CONNECTING, ST_ESTABLISHED };

struct rconn {
    int kind; /* KIND_CONN: first, as in rlisten (id->context) */
    int state;
    int cm_done;        /* the CM will report nothing more (or never connected) */
    int cm_established; /* the CM said ESTABLISHED (disconnect only after it) */
    int waiting;        /* on d->waiting for completion-queue room */
    int woken;          /* its turn: a completion made room for it */
    int passive;        /* the accepting end */
    int stream;
    int reaping;            /* done: destroyed once the completion queue is drained */
    struct evpl_bind *bind; /* NULL once closed */
    struct rloop *l;
    struct rldev *d;
    struct rdma_cm_id *id;
    struct ibv_qp *qp;
    uint32_t qp_num;
    struct rconn *hnext, *dnext, *wnext;
    struct rwr *wrs;
    uint32_t wr_cap, wr_head, wr_count;
    uint64_t wr_done; /* requests completed so far (the send queue completes in order) */
    struct rop *ops, *ops_tail;
    uint64_t taken;    /* messages (datagram) or bytes (stream) posted so far */
    uint64_t inflight; /* stream: bytes posted, not completed */
    uint32_t sq_size, max_sge, max_inline;
    uint32_t max_sge_rd; /* pieces of one RDMA read (the device may take fewer than for sends) */
    struct udtab *ud;    /* EVPL_DATAGRAM_RDMACM_UD: its peers (else NULL) */
    /* stream flow control, when both ends agreed to it (RC_HELLO): */
    uint8_t flow;          /* agreed */
    uint8_t told_paused;   /* what we last told the peer: stop sending */
    uint8_t peer_paused;   /* the peer told us to stop sending stream bytes */
    uint32_t ctl_inflight; /* flow-control messages posted, not completed */
    uint8_t disconnecting; /* the peer's disconnect is being handled */
    uint8_t eof_held;      /* it came while reading was paused: ends on resume */
};

struct rlisten {
    int kind; /* KIND_LISTEN */
    const struct evpl_protocol *protocol;
    struct evpl_listener *listener;
    struct rdma_cm_id *id;
};

static const struct evpl_global_config *
cfg(void)
{
    return evpl_shared->config;
} /* cfg */

static uint32_t
recv_size(void)
{
    uint64_t n = cfg()->rdmacm_datagram_size_override ? cfg()->rdmacm_datagram_size_override
                                                      : cfg()->max_datagram_size;

    if (n > cfg()->buffer_size) {
        n = cfg()->buffer_size;
    }
    return (uint32_t) (n ? n : 4096);
} /* recv_size */

static void cm_ready(struct evpl *evpl, struct evpl_event *event);
static void cc_ready(struct evpl *evpl, struct evpl_event *event);
static int rldev_poll(struct rldev *ld, int budget);
static int drain_budget(const struct rldev *ld);
static void reap_detached(struct evpl *evpl, void *arg);
static void rloop_poll(struct evpl *evpl, void *arg);
static void rloop_poll_exit(struct evpl *evpl, void *arg);
static void srq_retry(struct evpl *evpl, struct evpl_timer *timer);
static void wait_remove(struct rconn *c);

static struct rloop *
rloop_get(struct evpl *evpl)
{
    struct rloop *l = evpl->rdmacm;
    int fl;

    if (l) {
        return l;
    }
    l = calloc(1, sizeof(*l));
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    l->evpl = evpl;
    l->ch = rdma_create_event_channel();
    if (!l->ch) {
        free(l);
        return NULL;
    }
    fl = fcntl(l->ch->fd, F_GETFL);
    if (fl < 0 || fcntl(l->ch->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int err = errno;

        rdma_destroy_event_channel(l->ch);
        free(l);
        errno = err;
        return NULL;
    }
    evpl__event_init(&l->cm_ev, l->ch->fd, cm_ready, NULL, NULL);
    l->cm_ev.flags = EVPL_EV_READ_INTEREST;
    if (evpl__event_add(evpl, &l->cm_ev) < 0) {
        rdma_destroy_event_channel(l->ch);
        free(l);
        errno = ENOMEM;
        return NULL;
    }
    l->poll = evpl__add_completion_poll(evpl, NULL, rloop_poll_exit, rloop_poll, l);
    evpl_deferral_init(&l->reap, reap_detached, l);
    evpl->rdmacm = l;
    return l;
} /* rloop_get */

/* A receive slot of recv_size bytes from the device's arena: 1, or 0
 * when no buffer memory is left. */
static int
srq_slot_alloc(struct evpl *evpl, struct rldev *ld, struct evpl_iovec *iov)
{
    if (!ld->arena.ref || ld->arena.length - ld->arena_off < ld->recv_size) {
        if (ld->arena.ref) {
            evpl_iovec_release_internal(evpl, &ld->arena); /* the slots keep it */
            memset(&ld->arena, 0, sizeof(ld->arena));
            evpl->mem.pooled--;
        }
        /* a whole buffer: never the loop's current one */
        if (evpl_iovec_alloc(evpl, (unsigned int) evpl__buffer_size, 0, 1, 0, &ld->arena) != 1) {
            memset(&ld->arena, 0, sizeof(ld->arena));
            return 0;
        }
        evpl->mem.pooled++; /* receive space, not a leak (exit check) */
        ld->arena_off = 0;
    }
    evpl_iovec_clone_segment(iov, &ld->arena, ld->arena_off, ld->recv_size);
    ld->arena_off += (ld->recv_size + 63u) & ~63u;
    if (ld->arena_off > ld->arena.length) {
        ld->arena_off = ld->arena.length;
    }
    return 1;
} /* srq_slot_alloc */

static void
srq_refill(struct rldev *ld)
{
    struct evpl *evpl = ld->l->evpl;

    while (ld->posted < ld->target && ld->nfree) {
        struct ibv_recv_wr wrs[64], *bad = NULL;
        struct ibv_sge sges[64];
        uint32_t n = 0, want = ld->target - ld->posted;

        if (want > ld->batch) {
            want = ld->batch;
        }
        if (want > 64) {
            want = 64;
        }
        while (n < want && ld->nfree) {
            uint32_t slot = ld->free_slots[ld->nfree - 1];
            struct evpl_iovec *iov = &ld->slots[slot];
            struct ibv_mr *mr;

            if (!srq_slot_alloc(evpl, ld, iov)) {
                break;
            }
            mr = iov_mr(ld->dev, iov);
            if (!mr) {
                evpl_iovec_release_internal(evpl, iov);
                memset(iov, 0, sizeof(*iov));
                break;
            }
            ld->nfree--;
            sges[n].addr = (uintptr_t) iov->data;
            sges[n].length = ld->recv_size;
            sges[n].lkey = mr->lkey;
            wrs[n].wr_id = ((uint64_t) slot << 1) | 1;
            wrs[n].sg_list = &sges[n];
            wrs[n].num_sge = 1;
            wrs[n].next = NULL;
            if (n) {
                wrs[n - 1].next = &wrs[n];
            }
            n++;
        }
        if (!n) {
            /* no memory now: the next completion tries again, and a timer
             * in case no receive is left to complete */
            if (!ld->posted && !ld->retry_armed) {
                ld->retry_armed = 1;
                evpl_add_oneshot_timer(evpl, &ld->retry, srq_retry, 100000);
            }
            return;
        }
        if (ibv_post_srq_recv(ld->srq, wrs, &bad) != 0) {
            /* those from bad on were not posted */
            for (struct ibv_recv_wr *w = bad; w; w = w->next) {
                uint32_t slot = (uint32_t) (w->wr_id >> 1);

                evpl_iovec_release_internal(evpl, &ld->slots[slot]);
                memset(&ld->slots[slot], 0, sizeof(ld->slots[slot]));
                ld->free_slots[ld->nfree++] = slot;
                n--;
            }
            ld->posted += n;
            evpl->mem.pooled += n;
            evpl_log_error("rdmacm", "posting receives failed");
            return;
        }
        ld->posted += n;
        evpl->mem.pooled += n;
    }
} /* srq_refill */

static void
srq_retry(struct evpl *evpl, struct evpl_timer *timer)
{
    struct rldev *ld = container_of(timer, struct rldev, retry);

    (void) evpl;
    ld->retry_armed = 0;
    srq_refill(ld);
} /* srq_retry */

static struct rldev *
rldev_get(struct rloop *l, struct ibv_context *ctx)
{
    struct evpl *evpl = l->evpl;
    struct rldev *ld;
    struct rdev *dev;
    struct ibv_srq_init_attr sa;
    uint32_t cqe, srq;
    int fl;

    for (ld = l->devs; ld; ld = ld->next) {
        if (ld->dev->ctx == ctx) {
            return ld;
        }
    }
    dev = rdev_get(ctx);
    if (!dev) {
        return NULL;
    }
    ld = calloc(1, sizeof(*ld));
    if (!ld) {
        return NULL;
    }
    ld->l = l;
    ld->dev = dev;
    ld->recv_size = recv_size();
    cqe = cfg()->rdmacm_cq_size;
    if (dev->attr.max_cqe > 0 && cqe > (uint32_t) dev->attr.max_cqe) {
        cqe = (uint32_t) dev->attr.max_cqe;
    }
    srq = cfg()->rdmacm_srq_size;
    if (dev->attr.max_srq_wr > 0 && srq > (uint32_t) dev->attr.max_srq_wr) {
        srq = (uint32_t) dev->attr.max_srq_wr;
    }
    ld->nslots = srq;
    ld->batch = cfg()->rdmacm_srq_batch ? cfg()->rdmacm_srq_batch : 16;
    /* incremental: a window of receives, refilled as they complete
     * (upstream's unused srq_min is the window); all of it on prefill */
    ld->target = cfg()->rdmacm_srq_prefill ? srq : cfg()->rdmacm_srq_min;
    if (ld->target < ld->batch) {
        ld->target = ld->batch;
    }
    if (ld->target > srq) {
        ld->target = srq;
    }
    if (ld->target > cqe / 2) {
        ld->target = cqe / 2; /* the rest of the queue is for sends */
    }
    ld->send_room = cqe - ld->target;
    /* and a little of that for flow-control messages, which go ahead */
    ld->ctl_room = ld->send_room / 4 < RC_CTL_CQ ? ld->send_room / 4 : RC_CTL_CQ;
    ld->send_room -= ld->ctl_room;
    ld->slots = calloc(srq, sizeof(*ld->slots));
    ld->free_slots = calloc(srq, sizeof(*ld->free_slots));
    ld->cc = ibv_create_comp_channel(ctx);
    if (!ld->slots || !ld->free_slots || !ld->cc) {
        goto fail;
    }
    for (uint32_t i = 0; i < srq; i++) {
        ld->free_slots[ld->nfree++] = srq - 1 - i;
    }
    fl = fcntl(ld->cc->fd, F_GETFL);
    if (fl < 0 || fcntl(ld->cc->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        goto fail;
    }
    ld->cq = ibv_create_cq(ctx, (int) cqe, ld, ld->cc, 0);
    if (!ld->cq) {
        goto fail;
    }
    memset(&sa, 0, sizeof(sa));
    sa.attr.max_wr = srq;
    sa.attr.max_sge = 1;
    ld->srq = ibv_create_srq(dev->pd, &sa);
    if (!ld->srq) {
        goto fail;
    }
    evpl__event_init(&ld->cc_ev, ld->cc->fd, cc_ready, NULL, NULL);
    ld->cc_ev.flags = EVPL_EV_READ_INTEREST;
    if (evpl__event_add(evpl, &ld->cc_ev) < 0) {
        goto fail;
    }
    if (ibv_req_notify_cq(ld->cq, 0) != 0) {
        evpl__event_remove(evpl, &ld->cc_ev);
        goto fail;
    }
    ld->next = l->devs;
    l->devs = ld;
    srq_refill(ld);
    return ld;
fail:
    evpl_log_error("rdmacm", "%s: cannot set up completion and receive queues: %s",
                   ibv_get_device_name(ctx->device), strerror(errno));
    if (ld->srq) {
        ibv_destroy_srq(ld->srq);
    }
    if (ld->cq) {
        ibv_destroy_cq(ld->cq);
    }
    if (ld->cc) {
        ibv_destroy_comp_channel(ld->cc);
    }
    free(ld->slots);
    free(ld->free_slots);
    free(ld);
    return NULL;
} /* rldev_get */

static void
qp_hash_add(struct rldev *ld, struct rconn *c)
{
    struct rconn **b = &ld->qps[c->qp_num % QP_BUCKETS];

    c->hnext = *b;
    *b = c;
} /* qp_hash_add */

static void
qp_hash_del(struct rldev *ld, struct rconn *c)
{
    for (struct rconn **p = &ld->qps[c->qp_num % QP_BUCKETS]; *p; p = &(*p)->hnext) {
        if (*p == c) {
            *p = c->hnext;
            return;
        }
    }
} /* qp_hash_del */

static struct rconn *
qp_lookup(struct rldev *ld, uint32_t qp_num)
{
    struct rconn *c = ld->qps[qp_num % QP_BUCKETS];

    while (c && c->qp_num != qp_num) {
        c = c->hnext;
    }
    return c;
} /* qp_lookup */

/* ---- connection requests ---- */

/*
 * A connection request between the listener thread and the loop that
 * takes it.  Its id waits on a process-wide channel nobody reads (events
 * wait there and move with the id), not on the listener's, which goes away
 * with the listener thread's loop while requests may still be queued.
 */
struct rreq {
    struct rdma_cm_id *id;
    uint8_t initiator_depth, responder_resources; /* what the peer offered */
    uint8_t flow;                                 /* it asked for stream flow control */
};

static struct rdma_event_channel *parking;
static pthread_once_t parking_once = PTHREAD_ONCE_INIT;

static void
parking_init(void)
{
    parking = rdma_create_event_channel();
} /* parking_init */

/* ---- connections ---- */

static struct rconn *
conn_new(struct rloop *l, struct evpl_bind *bind)
{
    struct rconn *c = calloc(1, sizeof(*c));

    if (!c) {
        return NULL;
    }
    c->kind = KIND_CONN;
    c->l = l;
    c->bind = bind;
    c->stream = bind->protocol->stream;
    return c;
} /* conn_new */

static void
wr_release(struct evpl *evpl, struct rwr *w)
{
    evpl_iovecs_release_internal(evpl, w->iov, (int) w->niov);
    if (w->iov != w->inl) {
        free(w->iov);
    }
    w->iov = NULL;
    w->niov = 0;
} /* wr_release */

static void
op_free(struct evpl *evpl, struct rop *op)
{
    evpl_iovecs_release_internal(evpl, op->iov, op->niov);
    free(op->iov);
    free(op);
} /* op_free */

/* Everything the connection holds goes (the queue pair is gone or never
 * existed, so nothing is in the device's hands). */
static void
conn_destroy(struct rconn *c)
{
    struct evpl *evpl = c->l->evpl;

    if (c->d) {
        wait_remove(c);
    }
    if (c->qp) {
        qp_hash_del(c->d, c);
        if (c->id && c->id->qp) {
            rdma_destroy_qp(c->id);
        } else {
            ibv_destroy_qp(c->qp); /* (its id went first: a closed UD bind) */
        }
        c->qp = NULL;
    }
    while (c->wr_count) {
        wr_release(evpl, &c->wrs[c->wr_head]);
        c->wr_head = (c->wr_head + 1) % c->wr_cap;
        c->wr_count--;
    }
    while (c->ops) {
        struct rop *op = c->ops;

        c->ops = op->next;
        op_free(evpl, op);
    }
    if (c->ud) {
        ud_free(evpl, c->ud); /* (after the queue pair: its requests used the handles) */
    }
    if (c->id) {
        rdma_destroy_id(c->id);
    }
    free(c->wrs);
    free(c);
} /* conn_destroy */

static void
detached_remove(struct rconn *c)
{
    for (struct rconn **p = &c->l->detached; *p; p = &(*p)->dnext) {
        if (*p == c) {
            *p = c->dnext;
            return;
        }
    }
} /* detached_remove */

/* A closed connection is freed once the CM and the device are done.  Its
 * queue pair goes only after the completion queue has been drained: some
 * devices (mlx5) drop a destroyed queue pair's completions still in the
 * queue, and the shared receives those completions hold would never come
 * back. */
static void
conn_maybe_free(struct rconn *c)
{
    if (c->bind || !c->cm_done || c->wr_count) {
        return;
    }
    if (c->qp && c->d) {
        if (!c->reaping) {
            c->reaping = 1;
            evpl_defer(c->l->evpl, &c->l->reap);
        }
        return;
    }
    detached_remove(c);
    conn_destroy(c);
} /* conn_maybe_free */

/* Drain the completion queues, then destroy the connections done with. */
static void
reap_detached(struct evpl *evpl, void *arg)
{
    struct rloop *l = arg;
    struct rconn **p = &l->detached;

    (void) evpl;
    for (struct rldev *ld = l->devs; ld; ld = ld->next) {
        rldev_poll(ld, drain_budget(ld));
    }
    while (*p) {
        struct rconn *c = *p;

        if (c->reaping) {
            *p = c->dnext;
            conn_destroy(c);
        } else {
            p = &c->dnext;
        }
    }
} /* reap_detached */

static void
conn_fail(struct rconn *c, int status)
{
    if (c->bind) {
        evpl__bind_fail(c->l->evpl, c->bind, status);
    } else {
        conn_maybe_free(c);
    }
} /* conn_fail */

static int
qp_create(struct rconn *c, struct rldev *ld, enum ibv_qp_type type)
{
    struct ibv_qp_init_attr a;
    const struct ibv_device_attr *da = &ld->dev->attr;
    uint32_t sq = cfg()->rdmacm_sq_size, sge = cfg()->rdmacm_max_sge;
    uint32_t extra = c->stream ? RC_CTL_SQ : 0; /* (flow-control messages) */

    if (da->max_qp_wr > 0 && sq + extra > (uint32_t) da->max_qp_wr) {
        sq = (uint32_t) da->max_qp_wr > extra ? (uint32_t) da->max_qp_wr - extra : 1;
    }
    if (da->max_sge > 0 && sge > (uint32_t) da->max_sge) {
        sge = (uint32_t) da->max_sge;
    }
    c->wrs = calloc(sq + extra, sizeof(*c->wrs));
    if (!c->wrs) {
        return -ENOMEM;
    }
    c->wr_cap = sq + extra;
    for (int attempt = 0; attempt < 2; attempt++) {
        memset(&a, 0, sizeof(a));
        a.qp_context = c;
        a.send_cq = ld->cq;
        a.recv_cq = ld->cq;
        a.srq = ld->srq;
        a.qp_type = type;
        a.sq_sig_all = 1;
        a.cap.max_send_wr = sq + extra;
        a.cap.max_send_sge = sge;
        a.cap.max_inline_data = attempt ? 0 : cfg()->rdmacm_max_inline;
        if (rdma_create_qp(c->id, ld->dev->pd, &a) == 0) {
            break;
        }
        if (attempt) {
            int err = errno ? errno : ENOMEM;

            free(c->wrs);
            c->wrs = NULL;
            return -err;
        }
    }
    c->d = ld;
    c->qp = c->id->qp;
    c->qp_num = c->qp->qp_num;
    c->sq_size = sq;
    c->max_sge = a.cap.max_send_sge ? a.cap.max_send_sge : 1;
    c->max_sge_rd = c->max_sge;
    if (ld->dev->attr.max_sge_rd > 0 && (uint32_t) ld->dev->attr.max_sge_rd < c->max_sge_rd) {
        c->max_sge_rd = (uint32_t) ld->dev->attr.max_sge_rd;
    }
    c->max_inline = a.cap.max_inline_data;
    qp_hash_add(ld, c);
    return 0;
} /* qp_create */

static void
conn_params(struct rconn *c, struct rdma_conn_param *p)
{
    const struct ibv_device_attr *da = &c->d->dev->attr;
    int rd = RD_ATOMIC;

    if (da->max_qp_rd_atom < rd) {
        rd = da->max_qp_rd_atom;
    }
    if (da->max_qp_init_rd_atom < rd) {
        rd = da->max_qp_init_rd_atom;
    }
    memset(p, 0, sizeof(*p));
    p->responder_resources = (uint8_t) (rd > 0 ? rd : 0);
    p->initiator_depth = (uint8_t) (rd > 0 ? rd : 0);
    p->retry_count = (uint8_t) (cfg()->rdmacm_retry_count > 7 ? 7 : cfg()->rdmacm_retry_count);
    p->rnr_retry_count =
        (uint8_t) (cfg()->rdmacm_rnr_retry_count > 7 ? 7 : cfg()->rdmacm_rnr_retry_count);
} /* conn_params */

/* Our hello (RC_HELLO_LEN bytes into h), offering or granting flags. */
static void
rc_hello(uint8_t *h, uint8_t flags)
{
    memcpy(h, "EVRC", 4);
    h[4] = 1;
    h[5] = flags;
    h[6] = 0;
    h[7] = 0;
} /* rc_hello */

/* The flags a peer's private data says, if it is our hello (else 0: the
 * CM pads private data with zeros, so anything else is a peer of another
 * kind, or one that said nothing). */
static uint8_t
rc_hello_flags(const void *data, uint32_t len)
{
    const uint8_t *h = data;

    if (!h || len < RC_HELLO_LEN || memcmp(h, "EVRC", 4) != 0 || h[4] < 1) {
        return 0;
    }
    return h[5] & RC_HELLO_FLOW; /* (a later version's other bits: not ours) */
} /* rc_hello_flags */

/* Whether a stream connection on id can have flow control: its device
 * carries immediate data (InfiniBand, RoCE; not iWARP). */
static int
rc_flow_capable(const struct rconn *c, const struct rdma_cm_id *id)
{
    return c->stream && id->verbs && id->verbs->device->transport_type == IBV_TRANSPORT_IB;
} /* rc_flow_capable */

static void
set_tos(struct rdma_cm_id *id)
{
    uint8_t tos = cfg()->rdmacm_tos;

    if (tos) {
        (void) rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_TOS, &tos, sizeof(tos));
    }
} /* set_tos */

/* An address the CM reports (an IP address: RDMA CM over IP networks). */
static struct evpl_address *
cm_address(const struct sockaddr *sa)
{
    if (!sa || sa->sa_family == AF_UNSPEC) {
        return NULL;
    }
    return evpl__address_new(sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in));
} /* cm_address */

static void
fill_local(struct rconn *c)
{
    struct evpl_address *a = c->bind ? cm_address(rdma_get_local_addr(c->id)) : NULL;

    if (a) {
        if (c->bind->local) {
            evpl__address_release(c->bind->local);
        }
        c->bind->local = a;
    }
} /* fill_local */

/* A connection of bind with a CM id of its own in port space ps, on the
 * loop's event channel: NULL with errno set on failure. */
static struct rconn *
conn_with_id(struct evpl *evpl, struct evpl_bind *bind, enum rdma_port_space ps)
{
    struct rloop *l = rloop_get(evpl);
    struct rconn *c = l ? conn_new(l, bind) : NULL;

    if (!c) {
        errno = l ? ENOMEM : errno;
        return NULL;
    }
    if (rdma_create_id(l->ch, &c->id, c, ps) != 0) {
        int err = errno;

        free(c);
        errno = err;
        return NULL;
    }
    set_tos(c->id);
    return c;
} /* conn_with_id */

static int
rc_connect(struct evpl *evpl, struct evpl_bind *bind)
{
    struct rconn *c = conn_with_id(evpl, bind, RDMA_PS_TCP);
    int rc;

    if (!c) {
        return -errno;
    }
    if (rdma_resolve_addr(c->id, bind->local ? (struct sockaddr *) &bind->local->sa : NULL,
                          (struct sockaddr *) &bind->remote->sa,
                          (int) cfg()->resolve_timeout_ms) != 0) {
        rc = -errno;
        rdma_destroy_id(c->id);
        free(c);
        return rc;
    }
    bind->backend = c;
    bind->flags |= EVPL_BIND_TRANSPORT_UP;
    return 0;
} /* rc_connect */

static int
rc_attach(struct evpl *evpl, struct evpl_bind *bind, struct evpl_accepted *conn)
{
    struct rreq *req = conn->backend;
    struct rdma_cm_id *id = req->id;
    struct rloop *l = rloop_get(evpl);
    struct rdma_conn_param p;
    struct rldev *ld;
    struct rconn *c;
    uint8_t hello[RC_HELLO_LEN];
    int rc;

    if (!l) {
        return -errno;
    }
    /* its events are ours from now on */
    if (rdma_migrate_id(id, l->ch) != 0) {
        return -errno;
    }
    c = conn_new(l, bind);
    if (!c) {
        return -ENOMEM;
    }
    ld = rldev_get(l, id->verbs);
    if (!ld) {
        free(c);
        return -ENODEV;
    }
    c->id = id;
    rc = qp_create(c, ld, IBV_QPT_RC);
    if (rc < 0) {
        c->id = NULL;
        free(c);
        return rc;
    }
    conn_params(c, &p);
    if (req->flow && rc_flow_capable(c, id)) {
        rc_hello(hello, RC_HELLO_FLOW); /* (rdma_accept copies it) */
        p.private_data = hello;
        p.private_data_len = RC_HELLO_LEN;
        c->flow = 1;
    }
    /* no more reads in flight than the peer can take, nor than it sends */
    if (p.initiator_depth > req->responder_resources) {
        p.initiator_depth = req->responder_resources;
    }
    if (p.responder_resources > req->initiator_depth) {
        p.responder_resources = req->initiator_depth;
    }
    id->context = c;
    if (rdma_accept(id, &p) != 0) {
        rc = -errno;
        id->context = NULL;
        qp_hash_del(ld, c);
        rdma_destroy_qp(id);
        free(c->wrs);
        free(c);
        return rc; /* conn still owns the id: the discard rejects it */
    }
    conn->backend = NULL;
    free(req);
    c->passive = 1;
    c->state = ST_CONNECTING;
    bind->backend = c;
    bind->flags |= EVPL_BIND_TRANSPORT_UP;
    return 0;
} /* rc_attach */

/* ---- sending ---- */

static struct rwr *
wr_push(struct rconn *c)
{
    struct rwr *w = &c->wrs[(c->wr_head + c->wr_count) % c->wr_cap];

    memset(w, 0, sizeof(*w));
    c->wr_count++;
    c->d->sends++;
    return w;
} /* wr_push */

static void
wr_unpush(struct rconn *c)
{
    c->wr_count--;
    c->d->sends--;
} /* wr_unpush */

/* Fill sges for iov; 0, or -ENOMEM when some memory is not registered. */
static int
fill_sges(struct rconn *c, struct ibv_sge *sge, const struct evpl_iovec *iov, uint32_t niov)
{
    for (uint32_t i = 0; i < niov; i++) {
        struct ibv_mr *mr = iov_mr(c->d->dev, &iov[i]);

        if (!mr) {
            return -ENOMEM;
        }
        sge[i].addr = (uintptr_t) iov[i].data;
        sge[i].length = iov[i].length;
        sge[i].lkey = mr->lkey;
    }
    return 0;
} /* fill_sges */

/* The address an unreliable datagram goes to. */
struct ud_dest {
    struct ibv_ah *ah;
    uint32_t qpn, qkey;
};

/* Post w (iovecs already in it; to: an unreliable datagram's destination,
 * else NULL).  On failure the caller's request is undone and the
 * connection fails. */
static int
post(struct rconn *c, struct rwr *w, enum ibv_wr_opcode opcode, uint32_t rkey, uint64_t raddr,
     const struct ud_dest *to)
{
    struct ibv_send_wr wr, *bad = NULL;
    struct ibv_sge sge[64];
    int rc;

    memset(&wr, 0, sizeof(wr));
    if (w->niov > 64) {
        return -EINVAL;
    }
    rc = fill_sges(c, sge, w->iov, w->niov);
    if (rc < 0) {
        return rc;
    }
    wr.wr_id = (uintptr_t) c;
    wr.sg_list = sge;
    wr.num_sge = (int) w->niov;
    wr.opcode = opcode;
    wr.send_flags = IBV_SEND_SIGNALED;
    if (opcode == IBV_WR_SEND && w->bytes <= c->max_inline && w->bytes > 0) {
        wr.send_flags |= IBV_SEND_INLINE;
    }
    if (opcode != IBV_WR_SEND) {
        wr.wr.rdma.remote_addr = raddr;
        wr.wr.rdma.rkey = rkey;
    } else if (to) {
        wr.wr.ud.ah = to->ah;
        wr.wr.ud.remote_qpn = to->qpn;
        wr.wr.ud.remote_qkey = to->qkey;
    }
    rc = ibv_post_send(c->qp, &wr, &bad);
    if (rc != 0) {
        return rc > 0 ? -rc : -EIO; /* (the error is returned, not in errno) */
    }
    if (wr.send_flags & IBV_SEND_INLINE) {
        wr_release(c->l->evpl, w); /* copied into the request */
    }
    return 0;
} /* post */

/* Give w room for n iovecs. */
static int
wr_iovs(struct rwr *w, uint32_t n)
{
    w->iov = n <= 2 ? w->inl : malloc(n * sizeof(*w->iov));
    return w->iov ? 0 : -ENOMEM;
} /* wr_iovs */

/* The front datagram's pieces off the send ring into iov (the ring's
 * references move): at most max of them, else copied into one.  The
 * number of iovecs, or -ENOMEM. */
static int
dgram_take(struct evpl *evpl, struct evpl_bind *bind, const struct evpl_dgram *d,
           struct evpl_iovec *iov, uint32_t max)
{
    struct evpl_iovec one;
    uint32_t off = 0;

    if (d->niov <= max) {
        for (uint32_t i = 0; i < d->niov; i++) {
            struct evpl_iovec *f = evpl_iovec_fifo_front(&bind->send_ring.fifo);

            iov[i] = *f;
            bind->send_ring.length -= f->length;
            evpl_iovec_fifo_pop(&bind->send_ring.fifo);
        }
        return (int) d->niov;
    }
    /* more pieces than a request takes: one copy */
    if (evpl_iovec_alloc(evpl, d->length ? d->length : 1, 0, 1, 0, &one) != 1) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < d->niov; i++) {
        struct evpl_iovec *f = evpl_iovec_fifo_front(&bind->send_ring.fifo);

        memcpy((char *) one.data + off, f->data, f->length);
        off += f->length;
        bind->send_ring.length -= f->length;
        evpl_iovec_release_internal(evpl, f);
        evpl_iovec_fifo_pop(&bind->send_ring.fifo);
    }
    one.length = d->length;
    iov[0] = one;
    return 1;
} /* dgram_take */

/* The front datagram's pieces off the send ring, released. */
static void
dgram_discard(struct evpl *evpl, struct evpl_bind *bind, const struct evpl_dgram *d)
{
    for (uint32_t i = 0; i < d->niov; i++) {
        struct evpl_iovec *f = evpl_iovec_fifo_front(&bind->send_ring.fifo);

        bind->send_ring.length -= f->length;
        evpl_iovec_release_internal(evpl, f);
        evpl_iovec_fifo_pop(&bind->send_ring.fifo);
    }
} /* dgram_discard */

/* One message as one send request; its iovecs' references move in (and
 * are released on failure). */
static int
post_msg(struct evpl *evpl, struct rconn *c, struct evpl_iovec *iov, uint32_t niov, uint32_t length,
         const struct ud_dest *to)
{
    struct rwr *w = wr_push(c);
    int rc;

    w->kind = WR_SEND;
    w->bytes = length;
    w->msgs = 1;
    if (wr_iovs(w, niov) < 0) {
        evpl_iovecs_release_internal(evpl, iov, (int) niov);
        wr_unpush(c);
        return -ENOMEM;
    }
    memcpy(w->iov, iov, niov * sizeof(*iov));
    w->niov = niov;
    rc = post(c, w, IBV_WR_SEND, 0, 0, to);
    if (rc < 0) {
        wr_release(evpl, w);
        wr_unpush(c);
        return rc;
    }
    return 0;
} /* post_msg */

/* The front message of a datagram bind as one work request. */
static int
post_datagram(struct evpl *evpl, struct rconn *c, struct evpl_bind *bind)
{
    struct evpl_dgram *d = evpl_dgram_ring_front(&bind->dgram_send);
    struct evpl_iovec iov[64];
    uint32_t length = d->length;
    int n, rc;

    if (length > c->d->recv_size) {
        evpl_log_error("rdmacm", "message of %u bytes exceeds the receive size %u: closing", length,
                       c->d->recv_size);
        return -EMSGSIZE;
    }
    n = dgram_take(evpl, bind, d, iov, c->max_sge < 64 ? c->max_sge : 64);
    if (n < 0) {
        return n;
    }
    evpl__address_release(d->addr);
    evpl_dgram_ring_pop(&bind->dgram_send);
    rc = post_msg(evpl, c, iov, (uint32_t) n, length, NULL);
    if (rc < 0) {
        return rc;
    }
    c->taken++;
    return 0;
} /* post_datagram */

/* Up to a receive buffer of the byte stream (no further than limit). */
static int
post_stream(struct evpl *evpl, struct rconn *c, struct evpl_bind *bind, uint64_t limit)
{
    struct evpl_iovec tmp[64];
    uint64_t bytes = 0, max = c->d->recv_size < limit ? c->d->recv_size : limit;
    uint32_t maxiov = c->max_sge < 64 ? c->max_sge : 64;
    struct rwr *w;
    int n, rc;

    n = evpl__ring_take(evpl, &bind->send_ring, tmp, (int) maxiov, max, &bytes);
    if (n <= 0) {
        return 0;
    }
    w = wr_push(c);
    w->kind = WR_SEND;
    w->bytes = (uint32_t) bytes;
    w->msgs = (uint32_t) evpl__stream_messages_done(bind, bytes);
    if (wr_iovs(w, (uint32_t) n) < 0) {
        evpl_iovecs_release_internal(evpl, tmp, n);
        wr_unpush(c);
        return -ENOMEM;
    }
    memcpy(w->iov, tmp, (size_t) n * sizeof(tmp[0]));
    w->niov = (uint32_t) n;
    rc = post(c, w, IBV_WR_SEND, 0, 0, NULL);
    if (rc < 0) {
        wr_release(evpl, w);
        wr_unpush(c);
        return rc;
    }
    c->taken += bytes;
    c->inflight += bytes;
    return 0;
} /* post_stream */

/* The flow-control message (RC_CTL_*) saying where the bind's reading is
 * now: no data, an immediate. */
static int
post_ctl(struct rconn *c, struct evpl_bind *bind)
{
    uint8_t paused = (bind->flags & EVPL_BIND_READ_PAUSED) != 0;
    struct ibv_send_wr wr, *bad = NULL;
    struct rwr *w = wr_push(c);
    int rc;

    w->kind = WR_CTL;
    memset(&wr, 0, sizeof(wr));
    wr.wr_id = (uintptr_t) c;
    wr.opcode = IBV_WR_SEND_WITH_IMM;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.imm_data = htonl(RC_CTL_MAGIC | (paused ? RC_CTL_PAUSE : RC_CTL_RESUME));
    rc = ibv_post_send(c->qp, &wr, &bad);
    if (rc != 0) {
        wr_unpush(c);
        return rc > 0 ? -rc : -EIO;
    }
    c->told_paused = paused;
    c->ctl_inflight++;
    return 0;
} /* post_ctl */

/* The peer is to hear that this bind paused or resumed reading. */
static int
ctl_due(const struct rconn *c, const struct evpl_bind *bind)
{
    return c->flow && c->told_paused != ((bind->flags & EVPL_BIND_READ_PAUSED) != 0);
} /* ctl_due */

static int
post_op(struct rconn *c, struct rop *op)
{
    struct rwr *w = wr_push(c);
    int rc;

    w->kind = op->write ? WR_WRITE : WR_READ;
    w->cb = op->cb;
    w->arg = op->arg;
    w->iov = op->iov; /* the operation's references move */
    w->niov = (uint32_t) op->niov;
    rc = post(c, w, op->write ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ, op->rkey, op->raddr, NULL);
    if (rc < 0) {
        w->iov = NULL;
        w->niov = 0;
        wr_unpush(c);
        return rc;
    }
    op->iov = NULL;
    op->niov = 0;
    return 0;
} /* post_op */

static void
wait_remove(struct rconn *c)
{
    if (c->woken) {
        c->woken = 0;
        c->d->woken--;
    }
    if (!c->waiting) {
        return;
    }
    for (struct rconn **p = &c->d->waiting, *prev = NULL; *p; prev = *p, p = &(*p)->wnext) {
        if (*p == c) {
            *p = c->wnext;
            if (c->d->waiting_tail == c) {
                c->d->waiting_tail = prev;
            }
            break;
        }
    }
    c->waiting = 0;
} /* wait_remove */

static void
wait_add(struct rconn *c)
{
    if (c->waiting) {
        return;
    }
    c->waiting = 1;
    c->wnext = NULL;
    if (c->d->waiting_tail) {
        c->d->waiting_tail->wnext = c;
    } else {
        c->d->waiting = c;
    }
    c->d->waiting_tail = c;
} /* wait_add */

/* A send request completed: a connection waiting for room goes on. */
static void
wait_wake(struct evpl *evpl, struct rldev *ld)
{
    struct rconn *w;

    /* the first in line that can still use the room (a closing one passes
     * its turn on) */
    while ((w = ld->waiting)) {
        ld->waiting = w->wnext;
        if (!ld->waiting) {
            ld->waiting_tail = NULL;
        }
        w->waiting = 0;
        if (w->bind && !evpl__bind_closing(w->bind)) {
            w->woken = 1;
            ld->woken++;
            evpl_defer(evpl, &w->bind->flush);
            return;
        }
    }
} /* wait_wake */

/* ---- unreliable datagrams (EVPL_DATAGRAM_RDMACM_UD) ---- */

/*
 * A UD bind is one UD queue pair on its device's completion and shared
 * receive queues, on a CM id bound to the bind's address that listens for
 * service-ID resolution (SIDR) requests.  A sender learns a destination's
 * queue pair number and key by resolving its address on a throwaway id and
 * "connecting" it, which the destination's CM answers; each destination is
 * resolved once, then cached with its address handle.
 *
 * Datagrams for a destination still being resolved wait on it while the
 * others go on.  Datagrams are dropped (and still counted in SENT, as UDP
 * does) when larger than a path MTU or a receive slot holds, or for a
 * destination that could not be resolved in the last second.
 *
 * Our SIDR requests carry the sending bind's address and queue pair
 * number, so the receiver knows which address a datagram came from
 * (recv_msg.addr, which it can answer; upstream reports NULL, rdma.md §5
 * QUIRK).  From senders that did not say so, recv_msg.addr is NULL.
 */
#define UD_GRH       40
#define UD_BUCKETS   256
#define UD_PEERS_MAX 4096 /* addresses known per bind (EVPL_RDMACM_UD_PEERS: fewer) */
#define UD_PEND_MAX  4096 /* datagrams waiting for resolutions, per bind */
#define UD_RETRY_NS  1000000000ull
#define UD_MAX_IOV   16
#define UD_HELLO_LEN 28 /* "EVUD", version, family, port, queue pair, address */

enum { UD_NEW = 0, UD_RESOLVING, UD_READY, UD_FAILED };

struct udpend {
    struct udpend *next;
    uint32_t niov, length;
    struct evpl_iovec iov[];
};

struct udpeer {
    int kind; /* KIND_UDPEER: first (the context of its resolution id) */
    int state;
    struct rconn *c;
    struct udpeer *anext, *qnext, *rnext;
    int on_qpn, on_ready;
    struct evpl_address *addr;  /* its bind's address (a reference) */
    uint8_t ip[16];             /* that address's IP (IPv4 mapped) */
    uint32_t qpn;               /* its queue pair, 0: not known */
    struct ud_dest dest;        /* ah NULL: not resolved */
    struct ibv_ah_attr ah_attr; /* what dest.ah was made from */
    struct rdma_cm_id *rid;     /* while resolving */
    int refreshing;             /* resolving again while its old resolution serves */
    uint64_t used;              /* the table's tick when last sent to or heard from */
    uint64_t started, failed_at, resolved_at;
    uint32_t failures;
    struct udpend *pend, *pend_tail;
};

struct ud_retired {
    struct ibv_ah *ah;
    uint64_t after; /* can go once wr_done reaches this */
};

struct udtab {
    struct udpeer *by_addr[UD_BUCKETS], *by_qpn[UD_BUCKETS];
    struct udpeer *ready; /* resolved, with datagrams waiting */
    uint32_t npeers, npend;
    uint32_t max; /* largest payload */
    struct sockaddr_storage self;
    uint64_t drop_bytes, drop_msgs; /* dropped, not yet reported in SENT */
    struct rconn *c;
    uint32_t nresolving;
    struct ud_retired *retired; /* handles no new send uses, maybe in use, oldest first */
    uint32_t nretired, cap_retired;
    struct evpl_timer deadline; /* resolutions that take too long fail */
    int deadline_armed;
    uint64_t tick;      /* counts uses of entries (their order) */
    uint32_t peers_max; /* entries at most */
};

/* UD_PEERS_MAX, or fewer when EVPL_RDMACM_UD_PEERS says so (tests: a
 * full table without thousands of destinations). */
static uint32_t
ud_peers_max(void)
{
    const char *e = getenv("EVPL_RDMACM_UD_PEERS");
    unsigned long v = e ? strtoul(e, NULL, 0) : 0;

    return v >= 4 && v < UD_PEERS_MAX ? (uint32_t) v : UD_PEERS_MAX;
} /* ud_peers_max */

/* A resolved destination is resolved again after this long, in the
 * background (its datagrams keep going meanwhile): a destination that
 * restarted with another queue pair, and never sent to us (which would
 * have told us), is reached again. */
static uint64_t
ud_refresh_ns(void)
{
    uint64_t ms = 4 * (uint64_t) cfg()->resolve_timeout_ms;

    return (ms < 2000 ? 2000 : ms) * 1000000ull;
} /* ud_refresh_ns */

/* A resolution that has not finished after this long fails (the CM's own
 * retries of a resolution request can last a minute). */
static uint64_t
ud_resolve_limit_ns(void)
{
    uint64_t ms = 2 * (uint64_t) cfg()->resolve_timeout_ms;

    return (ms < 1000 ? 1000 : ms) * 1000000ull;
} /* ud_resolve_limit_ns */

static void
ud_ip(const struct sockaddr_storage *ss, uint8_t ip[16])
{
    memset(ip, 0, 16);
    if (ss->ss_family == AF_INET6) {
        memcpy(ip, &((const struct sockaddr_in6 *) ss)->sin6_addr, 16);
    } else {
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &((const struct sockaddr_in *) ss)->sin_addr, 4);
    }
} /* ud_ip */

static uint16_t
ud_port(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *) ss)->sin6_port
                                     : ((const struct sockaddr_in *) ss)->sin_port;
} /* ud_port */

static uint32_t
ud_hash(const uint8_t ip[16], uint16_t port)
{
    uint32_t h = 2166136261u ^ port;

    for (int i = 0; i < 16; i++) {
        h = (h ^ ip[i]) * 16777619u;
    }
    return h % UD_BUCKETS;
} /* ud_hash */

static struct udpeer *
ud_find(struct udtab *t, const struct sockaddr_storage *ss)
{
    uint16_t port = ud_port(ss);
    uint8_t ip[16];

    ud_ip(ss, ip);
    for (struct udpeer *p = t->by_addr[ud_hash(ip, port)]; p; p = p->anext) {
        if (p->addr->sa.ss_family == ss->ss_family && ud_port(&p->addr->sa) == port &&
            memcmp(p->ip, ip, 16) == 0) {
            return p;
        }
    }
    return NULL;
} /* ud_find */

static int ud_evict(struct udtab *t);

/* A new entry for ss; when the table holds limit entries, one idle for
 * longest (roughly: clock order) gives up its place.  NULL: no room. */
static struct udpeer *
ud_add(struct rconn *c, const struct sockaddr_storage *ss, uint32_t limit)
{
    struct udtab *t = c->ud;
    struct udpeer *p;
    uint32_t b;

    if ((ss->ss_family != AF_INET && ss->ss_family != AF_INET6) ||
        (t->npeers >= limit && ud_evict(t) < 0)) {
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        return NULL;
    }
    p->addr = evpl__address_new((const struct sockaddr *) ss, ss->ss_family == AF_INET6
                                                                  ? sizeof(struct sockaddr_in6)
                                                                  : sizeof(struct sockaddr_in));
    if (!p->addr) {
        free(p);
        return NULL;
    }
    p->kind = KIND_UDPEER;
    p->c = c;
    p->used = ++t->tick;
    ud_ip(ss, p->ip);
    b = ud_hash(p->ip, ud_port(ss));
    p->anext = t->by_addr[b];
    t->by_addr[b] = p;
    t->npeers++;
    return p;
} /* ud_add */

static void
ud_unset_qpn(struct udtab *t, struct udpeer *p)
{
    if (!p->on_qpn) {
        return;
    }
    for (struct udpeer **q = &t->by_qpn[p->qpn % UD_BUCKETS]; *q; q = &(*q)->qnext) {
        if (*q == p) {
            *q = p->qnext;
            break;
        }
    }
    p->on_qpn = 0;
    p->qpn = 0;
} /* ud_unset_qpn */

/* p off the list of destinations with datagrams ready to go. */
static void
ud_unready(struct udtab *t, struct udpeer *p)
{
    if (!p->on_ready) {
        return;
    }
    for (struct udpeer **q = &t->ready; *q; q = &(*q)->rnext) {
        if (*q == p) {
            *q = p->rnext;
            break;
        }
    }
    p->on_ready = 0;
} /* ud_unready */

/* Retired address handles go once the sends posted before they were
 * retired have completed (all == 1: all of them, the queue pair is gone). */
static void
ud_free_retired(struct udtab *t, int all)
{
    uint32_t n = 0;

    while (n < t->nretired && (all || t->retired[n].after <= t->c->wr_done)) {
        ibv_destroy_ah(t->retired[n++].ah);
    }
    if (n) {
        memmove(t->retired, t->retired + n, (t->nretired - n) * sizeof(t->retired[0]));
        t->nretired -= n;
    }
} /* ud_free_retired */

static void ud_resolve(struct evpl *evpl, struct udpeer *p);

/* An address handle no new send uses: destroyed once no send in flight
 * can use it.  0, or -1 (no memory: the caller keeps it). */
static int
ud_retire(struct udtab *t, struct ibv_ah *ah)
{
    if (t->nretired == t->cap_retired) {
        uint32_t cap = t->cap_retired ? 2 * t->cap_retired : 8;
        struct ud_retired *r = realloc(t->retired, cap * sizeof(*r));

        if (r) {
            t->retired = r;
            t->cap_retired = cap;
        }
    }
    if (!t->c->wr_count) {
        ibv_destroy_ah(ah);
    } else if (t->nretired < t->cap_retired) {
        /* (every request in the queue now was posted before) */
        t->retired[t->nretired].ah = ah;
        t->retired[t->nretired++].after = t->c->wr_done + t->c->wr_count;
    } else {
        return -1;
    }
    return 0;
} /* ud_retire */

/* The entry used longest ago, of those neither being resolved nor holding
 * datagrams, is forgotten (a scan of the table: only a full table gets
 * here, and a new entry costs a resolution anyway).  0, or -1: none. */
static int
ud_evict(struct udtab *t)
{
    struct udpeer *old = NULL, **q;
    uint32_t ob = 0;

    for (uint32_t b = 0; b < UD_BUCKETS; b++) {
        for (struct udpeer *p = t->by_addr[b]; p; p = p->anext) {
            if (!p->rid && !p->pend && !p->on_ready && p->state != UD_RESOLVING &&
                (!old || p->used < old->used)) {
                old = p;
                ob = b;
            }
        }
    }
    if (!old || (old->dest.ah && ud_retire(t, old->dest.ah) < 0)) {
        return -1;
    }
    for (q = &t->by_addr[ob]; *q != old; q = &(*q)->anext) {
    }
    *q = old->anext;
    ud_unset_qpn(t, old);
    evpl__address_release(old->addr);
    free(old);
    t->npeers--;
    return 0;
} /* ud_evict */

/* o's resolution names a queue pair another address now has: resolved
 * again before anything more goes to it (the queue pair it names would
 * take it). */
static void
ud_stale(struct evpl *evpl, struct udtab *t, struct udpeer *o)
{
    if (ud_retire(t, o->dest.ah) < 0) {
        return; /* (no memory: keep it as it is) */
    }
    memset(&o->dest, 0, sizeof(o->dest));
    ud_unready(t, o);
    if (o->refreshing) {
        /* its background resolution in flight becomes the one it waits
         * for (counted in nresolving already) */
        o->refreshing = 0;
        o->state = UD_RESOLVING;
        return;
    }
    o->state = UD_NEW;
    if (o->pend) {
        ud_resolve(evpl, o);
    }
} /* ud_stale */

/* p's queue pair is qpn: the only address known with that queue pair on
 * that host (queue pair numbers are reused: an older holder is forgotten,
 * and resolved again before we send it more). */
static void
ud_set_qpn(struct evpl *evpl, struct udtab *t, struct udpeer *p, uint32_t qpn)
{
    if (p->on_qpn && p->qpn == qpn) {
        return;
    }
    ud_unset_qpn(t, p);
    for (struct udpeer *o = t->by_qpn[qpn % UD_BUCKETS], *next; o; o = next) {
        next = o->qnext;
        if (o->qpn == qpn && memcmp(o->ip, p->ip, 16) == 0) {
            ud_unset_qpn(t, o);
        }
    }
    for (int b = 0; b < UD_BUCKETS; b++) {
        for (struct udpeer *o = t->by_addr[b]; o; o = o->anext) {
            if (o != p && o->state == UD_READY && o->dest.qpn == qpn &&
                memcmp(o->ip, p->ip, 16) == 0) {
                ud_stale(evpl, t, o);
            }
        }
    }
    p->qpn = qpn;
    p->qnext = t->by_qpn[qpn % UD_BUCKETS];
    t->by_qpn[qpn % UD_BUCKETS] = p;
    p->on_qpn = 1;
} /* ud_set_qpn */

/* An IPv4 header in the last 20 of the 40 bytes before a UD payload: told
 * from a GRH whose source GID happens to look like one by its checksum, or
 * by the zeros soft-RoCE writes before it (it leaves the checksum out). */
static int
grh_ipv4(const uint8_t *g)
{
    static const uint8_t zeros[20];
    const uint8_t *h = g + 20;
    uint32_t sum = 0;

    if (h[0] != 0x45) {
        return 0;
    }
    if (memcmp(g, zeros, sizeof(zeros)) == 0) {
        return 1; /* (soft-RoCE: no checksum to look at) */
    }
    for (int i = 0; i < 20; i += 2) {
        sum += (uint32_t) h[i] << 8 | h[i + 1];
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return sum == 0xffff;
} /* grh_ipv4 */

/* Who sent a datagram: its queue pair number and the source address in the
 * packet's network header (grh NULL: the device did not give one, and the
 * queue pair alone has to do). */
static struct udpeer *
ud_sender(struct udtab *t, uint32_t src_qp, const uint8_t *grh)
{
    uint8_t ip[16];

    /* the 40 bytes before the payload: an IPv4 header in their last 20
     * (RoCE v2 over IPv4; the first 20 are undefined), else an IPv6
     * header or GRH with the source at byte 8 (RoCE v1: an IPv4-mapped
     * GID) */
    if (grh) {
        if (t->self.ss_family == AF_INET && grh_ipv4(grh)) {
            memset(ip, 0, 10);
            ip[10] = ip[11] = 0xff;
            memcpy(ip + 12, grh + 32, 4);
        } else if ((grh[0] >> 4) == 6) {
            memcpy(ip, grh + 8, 16);
        } else {
            return NULL;
        }
    }
    for (struct udpeer *p = t->by_qpn[src_qp % UD_BUCKETS]; p; p = p->qnext) {
        if (p->qpn == src_qp && (!grh || memcmp(p->ip, ip, 16) == 0)) {
            p->used = ++t->tick;
            return p;
        }
    }
    return NULL;
} /* ud_sender */

/* What our resolution requests say about us. */
static void
ud_hello(const struct rconn *c, uint8_t h[UD_HELLO_LEN])
{
    const struct sockaddr_storage *ss = &c->ud->self;
    uint16_t port = ud_port(ss);

    memcpy(h, "EVUD", 4);
    h[4] = 1;
    h[5] = ss->ss_family == AF_INET6 ? 6 : 4;
    memcpy(h + 6, &port, 2); /* network order, as in the address */
    h[8] = (uint8_t) (c->qp_num >> 24);
    h[9] = (uint8_t) (c->qp_num >> 16);
    h[10] = (uint8_t) (c->qp_num >> 8);
    h[11] = (uint8_t) c->qp_num;
    ud_ip(ss, h + 12);
} /* ud_hello */

/* A resolution request from a sender that said who it is: remember it,
 * if the address it claims is on the host the request came from (from),
 * and its queue pair can be one. */
static void
ud_learn(struct evpl *evpl, struct rconn *c, const uint8_t *h, uint32_t len,
         const struct sockaddr *from)
{
    uint8_t from_ip[16];

    struct sockaddr_storage ss;
    struct udpeer *p;
    uint16_t port;
    uint32_t qpn;

    if (len < UD_HELLO_LEN || memcmp(h, "EVUD", 4) != 0 || h[4] != 1 || (h[5] != 4 && h[5] != 6)) {
        return;
    }
    memset(&ss, 0, sizeof(ss));
    memcpy(&port, h + 6, 2);
    if (h[5] == 6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = port;
        memcpy(&s6->sin6_addr, h + 12, 16);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;

        s4->sin_family = AF_INET;
        s4->sin_port = port;
        memcpy(&s4->sin_addr, h + 24, 4);
    }
    qpn = (uint32_t) h[8] << 24 | (uint32_t) h[9] << 16 | (uint32_t) h[10] << 8 | h[11];
    if (!from || (from->sa_family != AF_INET && from->sa_family != AF_INET6) || qpn <= 1 ||
        qpn >= 0xffffff) {
        return;
    }
    ud_ip((const struct sockaddr_storage *) from, from_ip);
    if (memcmp(from_ip, h + 12, 16) != 0) {
        return; /* (an address on another host) */
    }
    p = ud_find(c->ud, &ss);
    /* (senders we never answered do not grow the table past half: from
     * there each takes the place of the entry used longest ago) */
    if (!p) {
        p = ud_add(c, &ss, c->ud->peers_max / 2);
    }
    if (!p) {
        return;
    }
    p->used = ++c->ud->tick;
    ud_set_qpn(evpl, c->ud, p, qpn);
    if (p->state == UD_READY) {
        p->dest.qpn = qpn; /* a new queue pair on that address */
    } else if (p->state == UD_FAILED) {
        p->state = UD_NEW; /* alive after all: the next datagram resolves it */
    }
} /* ud_learn */

/* SENT for what was dropped since the last report. */
static void
ud_report(struct evpl *evpl, struct rconn *c)
{
    struct udtab *t = c->ud;
    uint64_t bytes = t->drop_bytes, msgs = t->drop_msgs;

    if (!msgs || !c->bind) {
        return;
    }
    t->drop_bytes = 0;
    t->drop_msgs = 0;
    evpl__bind_sent(evpl, c->bind, bytes, msgs);
} /* ud_report */

static void
ud_drop(struct evpl *evpl, struct udtab *t, struct evpl_iovec *iov, uint32_t niov, uint32_t length)
{
    evpl_iovecs_release_internal(evpl, iov, (int) niov);
    t->drop_bytes += length;
    t->drop_msgs++;
} /* ud_drop */

/* The datagrams waiting for p are dropped (counted for SENT). */
static void
ud_drop_pending(struct evpl *evpl, struct udtab *t, struct udpeer *p)
{
    while (p->pend) {
        struct udpend *e = p->pend;

        p->pend = e->next;
        ud_drop(evpl, t, e->iov, e->niov, e->length);
        t->npend--;
        free(e);
    }
    p->pend_tail = NULL;
    ud_unready(t, p);
} /* ud_drop_pending */

/* p is no longer being resolved. */
static void
ud_resolved(struct udtab *t, struct udpeer *p, int state)
{
    if (p->rid) {
        rdma_destroy_id(p->rid); /* (its events are acknowledged: cm_ready) */
        p->rid = NULL;
    }
    if (p->state == UD_RESOLVING || p->refreshing) {
        t->nresolving--;
    }
    p->refreshing = 0;
    p->state = state;
} /* ud_resolved */

/* A background resolution ends without a new answer: the old one goes on
 * serving, and is tried again a refresh period later. */
static void
ud_refresh_end(struct evpl *evpl, struct udtab *t, struct udpeer *p)
{
    ud_resolved(t, p, p->state);
    p->resolved_at = evpl__now(evpl);
} /* ud_refresh_end */

static void
ud_failed(struct evpl *evpl, struct udpeer *p)
{
    char str[EVPL_ADDRESS_STRLEN];

    evpl__address_format(p->addr, str, sizeof(str));
    if (p->failures++ == 0) {
        evpl_log_info("rdmacm", "UD destination %s cannot be resolved: its datagrams are dropped",
                      str);
    } else {
        evpl_log_debug("rdmacm", "UD destination %s still cannot be resolved", str);
    }
    ud_resolved(p->c->ud, p, UD_FAILED);
    p->failed_at = evpl__now(evpl);
    ud_drop_pending(evpl, p->c->ud, p);
} /* ud_failed */

/* Every half limit while resolutions are in flight: those past the limit
 * fail. */
static void
ud_deadline(struct evpl *evpl, struct evpl_timer *timer)
{
    struct udtab *t = container_of(timer, struct udtab, deadline);
    uint64_t now = evpl__now(evpl), limit = ud_resolve_limit_ns();

    t->deadline_armed = 0;
    for (int b = 0; b < UD_BUCKETS; b++) {
        for (struct udpeer *p = t->by_addr[b]; p; p = p->anext) {
            if (p->refreshing && now - p->started >= limit) {
                ud_refresh_end(evpl, t, p);
            } else if (p->state == UD_RESOLVING && now - p->started >= limit) {
                ud_failed(evpl, p);
            }
        }
    }
    if (t->nresolving) {
        t->deadline_armed = 1;
        evpl_add_oneshot_timer(evpl, &t->deadline, ud_deadline, limit / 2000);
    }
    ud_report(evpl, t->c); /* (last: it may close the bind) */
} /* ud_deadline */

static void
ud_resolve(struct evpl *evpl, struct udpeer *p)
{
    struct rconn *c = p->c;
    struct sockaddr_storage src = c->ud->self;

    if (src.ss_family == AF_INET6) {
        ((struct sockaddr_in6 *) &src)->sin6_port = 0;
    } else {
        ((struct sockaddr_in *) &src)->sin_port = 0;
    }
    if (p->state == UD_READY) {
        p->refreshing = 1; /* in the background: the old resolution serves */
    } else {
        p->state = UD_RESOLVING;
    }
    p->started = evpl__now(evpl);
    c->ud->nresolving++;
    if (!c->ud->deadline_armed) {
        c->ud->deadline_armed = 1;
        evpl_add_oneshot_timer(evpl, &c->ud->deadline, ud_deadline,
                               ud_resolve_limit_ns() / 2000); /* (µs) */
    }
    if (rdma_create_id(c->l->ch, &p->rid, p, RDMA_PS_UDP) != 0) {
        p->rid = NULL;
        if (p->refreshing) {
            ud_refresh_end(evpl, c->ud, p);
        } else {
            ud_failed(evpl, p);
        }
        return;
    }
    set_tos(p->rid);
    /* from our own address: the same device answers */
    if (rdma_resolve_addr(p->rid, (struct sockaddr *) &src, (struct sockaddr *) &p->addr->sa,
                          (int) cfg()->resolve_timeout_ms) != 0) {
        if (p->refreshing) {
            ud_refresh_end(evpl, c->ud, p);
        } else {
            ud_failed(evpl, p);
        }
    }
} /* ud_resolve */

/* A destination's resolution moves on. */
/* Two answers name the same path (the fields a handle is made from). */
static int
ah_attr_same(const struct ibv_ah_attr *a, const struct ibv_ah_attr *b)
{
    return a->dlid == b->dlid && a->sl == b->sl && a->src_path_bits == b->src_path_bits &&
           a->static_rate == b->static_rate && a->is_global == b->is_global &&
           a->port_num == b->port_num &&
           (!a->is_global ||
            (memcmp(&a->grh.dgid, &b->grh.dgid, sizeof(a->grh.dgid)) == 0 &&
             a->grh.flow_label == b->grh.flow_label && a->grh.sgid_index == b->grh.sgid_index &&
             a->grh.hop_limit == b->grh.hop_limit && a->grh.traffic_class == b->grh.traffic_class));
} /* ah_attr_same */

static void
ud_peer_event(struct evpl *evpl, struct udpeer *p, const struct rdma_cm_event *ev)
{
    struct rconn *c = p->c;
    struct rdma_conn_param cp;
    uint8_t hello[UD_HELLO_LEN];

    if (!p->rid || ev->id != p->rid) {
        return;
    }
    switch (ev->event) {
        case RDMA_CM_EVENT_ADDR_RESOLVED:
            if (rdma_resolve_route(p->rid, (int) cfg()->resolve_timeout_ms) == 0) {
                return;
            }
            break;
        case RDMA_CM_EVENT_ROUTE_RESOLVED:
            ud_hello(c, hello);
            memset(&cp, 0, sizeof(cp));
            cp.private_data = hello;
            cp.private_data_len = sizeof(hello);
            if (rdma_connect(p->rid, &cp) == 0) {
                return;
            }
            break;
        case RDMA_CM_EVENT_ESTABLISHED: {
            const struct ibv_ah_attr *at = &ev->param.ud.ah_attr;
            struct ibv_ah *ah;

            if (p->refreshing && p->dest.qpn == ev->param.ud.qp_num &&
                p->dest.qkey == ev->param.ud.qkey && ah_attr_same(&p->ah_attr, at)) {
                /* (the usual answer: nothing changed, the handle stays) */
                ud_refresh_end(evpl, c->ud, p);
                return;
            }
            ah = ibv_create_ah(c->d->dev->pd, (struct ibv_ah_attr *) at);
            if (!ah) {
                break;
            }
            if (p->refreshing) {
                /* the new answer replaces the old: its handle goes once no
                 * send in flight can use it */
                if (ud_retire(c->ud, p->dest.ah) < 0) {
                    ibv_destroy_ah(ah);
                    ud_refresh_end(evpl, c->ud, p);
                    return;
                }
            }
            p->dest.ah = ah;
            p->ah_attr = *at;
            p->resolved_at = evpl__now(evpl);
            p->dest.qpn = ev->param.ud.qp_num;
            p->dest.qkey = ev->param.ud.qkey;
            ud_set_qpn(evpl, c->ud, p, p->dest.qpn);
            ud_resolved(c->ud, p, UD_READY);
            if (p->pend && !p->on_ready) {
                p->on_ready = 1;
                p->rnext = c->ud->ready;
                c->ud->ready = p;
            }
            if (c->bind) {
                evpl_defer(evpl, &c->bind->flush);
            }
            return;
        }
        case RDMA_CM_EVENT_ADDR_CHANGE:
        case RDMA_CM_EVENT_TIMEWAIT_EXIT:
        case RDMA_CM_EVENT_CONNECT_RESPONSE:
            return;
        default:
            break; /* errors, a refusal, no answer */
    }
    if (p->refreshing) {
        /* a refusal (the destination's CM answered: nobody is bound there
         * now) ends the old resolution too, since its queue pair may be
         * another bind's by now; no answer, or a local failure, leaves the
         * old resolution serving */
        if (!((ev->event == RDMA_CM_EVENT_UNREACHABLE && ev->status > 0) ||
              ev->event == RDMA_CM_EVENT_REJECTED) ||
            ud_retire(c->ud, p->dest.ah) < 0) {
            ud_refresh_end(evpl, c->ud, p);
            return;
        }
        memset(&p->dest, 0, sizeof(p->dest));
        ud_unset_qpn(c->ud, p);
    }
    ud_failed(evpl, p);
    ud_report(evpl, c);
} /* ud_peer_event */

/* A sender asks for our queue pair: tell it (and learn who it is). */
static void
ud_request(struct evpl *evpl, struct rconn *c, const struct rdma_cm_event *ev, const uint8_t *data,
           uint32_t len)
{
    struct rdma_conn_param cp;

    if (c->bind && c->qp) {
        ud_learn(evpl, c, data, len, rdma_get_peer_addr(ev->id));
        memset(&cp, 0, sizeof(cp));
        cp.qp_num = c->qp_num;
        if (rdma_accept(ev->id, &cp) != 0) {
            evpl_log_error("rdmacm", "answering a UD resolution request failed: %s",
                           strerror(errno));
        }
    } else {
        rdma_reject(ev->id, NULL, 0);
    }
    rdma_destroy_id(ev->id);
} /* ud_request */

/* The destination of a datagram, found or added, resolving if it has to. */
static struct udpeer *
ud_dest_of(struct evpl *evpl, struct rconn *c, const struct evpl_address *a)
{
    struct udpeer *p = ud_find(c->ud, &a->sa);

    if (!p) {
        p = ud_add(c, &a->sa, c->ud->peers_max);
        if (!p) {
            return NULL;
        }
    }
    p->used = ++c->ud->tick;
    /* (the pass's clock, not a clock read per datagram: a refresh a pass
     * late is as good; sums, as it may lag the stamps a little) */
    if (p->state == UD_NEW || (p->state == UD_FAILED && evpl->now >= p->failed_at + UD_RETRY_NS) ||
        (p->state == UD_READY && !p->rid && evpl->now >= p->resolved_at + ud_refresh_ns())) {
        ud_resolve(evpl, p);
    }
    return p;
} /* ud_dest_of */

/* Send what can go: datagrams waiting for resolved destinations first,
 * then the send ring.  0, or a negative errno that fails the bind. */
static int
ud_flush(struct evpl *evpl, struct rconn *c, struct evpl_bind *bind)
{
    struct udtab *t = c->ud;
    struct evpl_iovec iov[UD_MAX_IOV];
    uint32_t maxiov = c->max_sge < UD_MAX_IOV ? c->max_sge : UD_MAX_IOV;

    for (;;) {
        struct evpl_dgram *d;
        struct udpeer *p;
        struct udpend *e;
        uint32_t length;
        int n, rc;

        if (c->wr_count >= c->sq_size) {
            return 0; /* the next completion flushes again */
        }
        if (c->d->sends >= c->d->send_room) {
            if (t->ready || !evpl_dgram_ring_empty(&bind->dgram_send)) {
                wait_add(c);
            }
            return 0;
        }
        p = t->ready;
        if (p) {
            e = p->pend;
            p->pend = e->next;
            if (!p->pend) {
                p->pend_tail = NULL;
                t->ready = p->rnext;
                p->on_ready = 0;
            }
            t->npend--;
            rc = post_msg(evpl, c, e->iov, e->niov, e->length, &p->dest);
            free(e);
            if (rc < 0) {
                return rc;
            }
            continue;
        }
        if (evpl_dgram_ring_empty(&bind->dgram_send)) {
            return 0;
        }
        d = evpl_dgram_ring_front(&bind->dgram_send);
        length = d->length;
        p = d->addr && length <= t->max ? ud_dest_of(evpl, c, d->addr) : NULL;
        /* (a datagram that goes nowhere is not copied first; one that
         * cannot be copied for want of memory is dropped too) */
        n = p && p->state != UD_FAILED ? dgram_take(evpl, bind, d, iov, maxiov) : -1;
        if (n < 0) {
            dgram_discard(evpl, bind, d);
            t->drop_bytes += length;
            t->drop_msgs++;
        }
        evpl__address_release(d->addr);
        evpl_dgram_ring_pop(&bind->dgram_send);
        if (n < 0) {
            continue;
        }
        if (p->state == UD_READY && !p->pend) {
            rc = post_msg(evpl, c, iov, (uint32_t) n, length, &p->dest);
            if (rc < 0) {
                return rc;
            }
            continue;
        }
        /* waits for its destination, behind those already waiting */
        e = t->npend < UD_PEND_MAX ? malloc(sizeof(*e) + (size_t) n * sizeof(iov[0])) : NULL;
        if (!e) {
            ud_drop(evpl, t, iov, (uint32_t) n, length);
            continue;
        }
        e->next = NULL;
        e->niov = (uint32_t) n;
        e->length = length;
        memcpy(e->iov, iov, (size_t) n * sizeof(iov[0]));
        if (p->pend_tail) {
            p->pend_tail->next = e;
        } else {
            p->pend = e;
        }
        p->pend_tail = e;
        t->npend++;
    }
} /* ud_flush */

static void
ud_deliver(struct evpl *evpl, struct rconn *c, struct evpl_iovec *iov, const struct ibv_wc *wc)
{
    struct evpl_bind *bind = c->bind;
    uint32_t len = wc->byte_len;
    struct udpeer *p;

    /* a UD receive always starts with 40 bytes for the GRH, which byte_len
     * counts, whether the packet had one or not */
    if (len < UD_GRH || !bind || evpl__bind_closing(bind)) {
        evpl_iovec_release_internal(evpl, iov);
        return;
    }
    len -= UD_GRH;
    p = ud_sender(c->ud, wc->src_qp, (wc->wc_flags & IBV_WC_GRH) ? iov->data : NULL);
    iov->data = (char *) iov->data + UD_GRH;
    iov->length = len;
    if (len == 0) {
        evpl_iovec_release_internal(evpl, iov);
        evpl__bind_received_msg(evpl, bind, iov, 0, 0, p ? p->addr : NULL);
    } else {
        evpl__bind_received_msg(evpl, bind, iov, 1, len, p ? p->addr : NULL);
    }
} /* ud_deliver */

/* The bind is closed: nothing more is resolved or sent. */
static void
ud_close(struct evpl *evpl, struct rconn *c)
{
    struct udtab *t = c->ud;

    if (t->deadline_armed) {
        evpl_remove_timer(evpl, &t->deadline);
        t->deadline_armed = 0;
    }
    for (int b = 0; b < UD_BUCKETS; b++) {
        for (struct udpeer *p = t->by_addr[b]; p; p = p->anext) {
            if (p->state == UD_RESOLVING) {
                ud_resolved(t, p, UD_NEW);
            } else if (p->refreshing) {
                ud_resolved(t, p, p->state);
            }
            ud_drop_pending(evpl, t, p);
        }
    }
    t->drop_bytes = 0;
    t->drop_msgs = 0;
} /* ud_close */

/* Everything else goes (the queue pair is gone: no request uses an
 * address handle any more). */
static void
ud_free(struct evpl *evpl, struct udtab *t)
{
    for (int b = 0; b < UD_BUCKETS; b++) {
        while (t->by_addr[b]) {
            struct udpeer *p = t->by_addr[b];

            t->by_addr[b] = p->anext;
            if (p->rid) {
                rdma_destroy_id(p->rid);
            }
            ud_drop_pending(evpl, t, p);
            if (p->dest.ah) {
                ibv_destroy_ah(p->dest.ah);
            }
            evpl__address_release(p->addr);
            free(p);
        }
    }
    ud_free_retired(t, 1);
    free(t->retired);
    free(t);
} /* ud_free */

static int
ud_bind(struct evpl *evpl, struct evpl_bind *bind)
{
    struct rconn *c = conn_with_id(evpl, bind, RDMA_PS_UDP);
    struct ibv_port_attr pa;
    struct sockaddr *sa;
    struct rldev *ld;
    uint32_t mtu;
    int rc;

    if (!c) {
        return -errno;
    }
    c->ud = calloc(1, sizeof(*c->ud));
    if (!c->ud) {
        rc = -ENOMEM;
        goto fail;
    }
    c->ud->c = c;
    c->ud->peers_max = ud_peers_max();
    if (rdma_bind_addr(c->id, (struct sockaddr *) &bind->local->sa) != 0) {
        rc = -errno;
        goto fail;
    }
    if (!c->id->verbs) {
        evpl_log_error("rdmacm", "a UD bind needs the address of an RDMA device");
        rc = -EADDRNOTAVAIL;
        goto fail;
    }
    ld = rldev_get(c->l, c->id->verbs);
    if (!ld) {
        rc = -ENODEV;
        goto fail;
    }
    rc = qp_create(c, ld, IBV_QPT_UD);
    if (rc < 0) {
        goto fail;
    }
    if (rdma_listen(c->id, 256) != 0) {
        rc = -errno;
        goto fail;
    }
    /* a datagram is one packet: at most the path MTU, and a receive slot
     * holds it after the 40-byte GRH */
    mtu = ibv_query_port(c->id->verbs, c->id->port_num, &pa) == 0 && pa.active_mtu >= IBV_MTU_256
              ? 128u << pa.active_mtu
              : 256;
    c->ud->max = ld->recv_size > UD_GRH ? ld->recv_size - UD_GRH : 0;
    if (c->ud->max > mtu) {
        c->ud->max = mtu;
    }
    /* what we tell receivers is the port the CM gave (the bind itself
     * reports its endpoint, port as given, like any unconnected bind:
     * net.md §3) */
    sa = rdma_get_local_addr(c->id);
    if (sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
        memcpy(&c->ud->self, sa,
               sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                         : sizeof(struct sockaddr_in));
    } else {
        c->ud->self = bind->local->sa;
    }
    c->state = ST_ESTABLISHED;
    bind->backend = c;
    bind->flags |= EVPL_BIND_TRANSPORT_UP;
    return 0;
fail:
    conn_destroy(c);
    return rc;
} /* ud_bind */

static int
has_work(const struct rconn *c, const struct evpl_bind *bind)
{
    return c->ops || (bind->send_ring.length && !c->peer_paused) ||
           !evpl_dgram_ring_empty(&bind->dgram_send) || (c->ud && c->ud->ready) || ctl_due(c, bind);
} /* has_work */

static void
rc_flush(struct evpl *evpl, struct evpl_bind *bind)
{
    struct rconn *c = bind->backend;
    int rc = 0, failed_alone = 0;

    if (!c || c->state != ST_ESTABLISHED || evpl__bind_closing(bind)) {
        return;
    }
    if (ctl_due(c, bind) && c->wr_count < c->sq_size + RC_CTL_SQ &&
        c->d->sends < c->d->send_room + c->d->ctl_room) {
        /* ahead of everything queued, and of the connections waiting for
         * room (else it waits as data does: has_work) */
        rc = post_ctl(c, bind);
        if (rc < 0) {
            evpl__bind_fail(evpl, bind, rc);
            return;
        }
    }
    if ((c->d->waiting || c->d->woken) && !c->woken) {
        /* others wait for room in the completion queue: behind them */
        if (has_work(c, bind)) {
            wait_add(c);
        }
        return;
    }
    if (c->woken) {
        c->woken = 0;
        c->d->woken--;
    }
    if (c->ud) {
        rc = ud_flush(evpl, c, bind);
    }
    while (!c->ud) {
        struct rop *op = c->ops;

        if (c->wr_count >= c->sq_size) {
            break; /* the next completion flushes again */
        }
        if (c->d->sends >= c->d->send_room) {
            /* the completion queue could overflow: wait for room */
            if (has_work(c, bind)) {
                wait_add(c);
            }
            break;
        }
        if (op && op->barrier <= c->taken) {
            c->ops = op->next;
            if (!c->ops) {
                c->ops_tail = NULL;
            }
            if ((uint32_t) op->niov > (op->write ? c->max_sge : c->max_sge_rd)) {
                /* more pieces than this device takes in one request: this
                 * operation fails, the connection goes on */
                evpl__rdma_complete_later(evpl, bind, EINVAL, op->cb, op->arg);
                op_free(evpl, op);
                failed_alone = 1;
                continue;
            }
            rc = post_op(c, op);
            if (rc < 0) {
                if (op->cb) {
                    evpl__rdma_complete_later(evpl, bind, EIO, op->cb, op->arg);
                }
                op_free(evpl, op);
                break;
            }
            free(op->iov);
            free(op);
            continue;
        }
        if (c->stream) {
            if (!bind->send_ring.length || c->peer_paused || c->inflight >= RC_STREAM_INFLIGHT) {
                break; /* (paused: RC_CTL_RESUME flushes; else a completion) */
            }
            rc = post_stream(evpl, c, bind, op ? op->barrier - c->taken : UINT64_MAX);
        } else {
            if (evpl_dgram_ring_empty(&bind->dgram_send)) {
                break;
            }
            rc = post_datagram(evpl, c, bind);
        }
        if (rc < 0) {
            break;
        }
    }
    if (c->d->waiting && !c->d->woken && c->d->sends < c->d->send_room) {
        wait_wake(evpl, c->d); /* room left that this one did not need */
    }
    if (rc >= 0 && c->stream) {
        evpl_iovec_ring_waits(evpl, &bind->send_ring, 0); /* (nothing of it is posted) */
    }
    if (rc < 0) {
        evpl__bind_fail(evpl, bind, rc);
    } else if (c->ud) {
        ud_report(evpl, c);
    } else if (failed_alone) {
        evpl__bind_sent(evpl, bind, 0, 0); /* that may have been what a finish waited for */
    }
} /* rc_flush */

/* The application drained its receive ring: the peer may send again. */
static void
rc_read_resume(struct evpl *evpl, struct evpl_bind *bind)
{
    struct rconn *c = bind->backend;

    if (c && c->eof_held) {
        evpl__bind_fail(evpl, bind, 0); /* the peer's end, held while paused */
    } else if (c && ctl_due(c, bind)) {
        evpl_defer(evpl, &bind->flush);
    }
} /* rc_read_resume */

static int
rc_send_pending(const struct evpl_bind *bind)
{
    const struct rconn *c = bind->backend;

    /* evpl_finish waits until the peer has every message (UD: until every
     * datagram has left) */
    return c && (c->wr_count || c->ops || (c->ud && c->ud->npend));
} /* rc_send_pending */

/* ---- completions ---- */

/* The connection is up: CONNECTED, and what was queued goes out. */
static void
conn_established(struct evpl *evpl, struct rconn *c)
{
    c->state = ST_ESTABLISHED;
    fill_local(c);
    evpl__bind_connected(evpl, c->bind);
    if (c->bind->send_ring.length || !evpl_dgram_ring_empty(&c->bind->dgram_send) || c->ops) {
        evpl_defer(evpl, &c->bind->flush);
    }
} /* conn_established */

static void
deliver(struct evpl *evpl, struct rconn *c, struct evpl_iovec *iov, uint32_t len)
{
    struct evpl_bind *bind = c->bind;

    iov->length = len;
    if (!bind || evpl__bind_closing(bind)) {
        evpl_iovec_release_internal(evpl, iov);
        return;
    }
    if (c->state != ST_ESTABLISHED) {
        /* the accepting end: the peer's first message can come before the
         * CM's ESTABLISHED (its queue pair was ready at rdma_accept) */
        conn_established(evpl, c);
    }
    if (c->stream) {
        if (len == 0) {
            evpl_iovec_release_internal(evpl, iov);
            return;
        }
        evpl_iovec_ring_append(evpl, &bind->recv_ring, iov);
        evpl__bind_received(evpl, bind);
        if (c->bind && ctl_due(c, c->bind)) {
            /* it paused: the peer is to stop now, not after this poll,
             * which may go on for as long as the peer keeps sending */
            rc_flush(evpl, c->bind);
        }
    } else if (len == 0) {
        /* an empty message has no iovecs (as on every transport) */
        evpl_iovec_release_internal(evpl, iov);
        evpl__bind_received_msg(evpl, bind, iov, 0, 0, bind->remote);
    } else {
        evpl__bind_received_msg(evpl, bind, iov, 1, len, bind->remote);
    }
} /* deliver */

/* A flow-control message from the peer (the receive's buffer is ours to
 * release); 0, or -EPROTO for an immediate we never send. */
static int
ctl_received(struct evpl *evpl, struct rconn *c, struct evpl_iovec *iov, const struct ibv_wc *wc)
{
    uint32_t imm = ntohl(wc->imm_data);

    evpl_iovec_release_internal(evpl, iov);
    if (wc->byte_len != 0 ||
        (imm != (RC_CTL_MAGIC | RC_CTL_PAUSE) && imm != (RC_CTL_MAGIC | RC_CTL_RESUME))) {
        evpl_log_error("rdmacm", "unknown control message %#x (%u bytes): closing", imm,
                       wc->byte_len);
        return -EPROTO;
    }
    if (imm == (RC_CTL_MAGIC | RC_CTL_PAUSE)) {
        c->peer_paused = 1;
    } else if (c->peer_paused) {
        c->peer_paused = 0;
        if (c->bind && c->bind->send_ring.length) {
            evpl_defer(evpl, &c->bind->flush);
        }
    }
    return 0;
} /* ctl_received */

static void
send_done(struct evpl *evpl, struct rconn *c, const struct ibv_wc *wc)
{
    struct rwr *w;
    uint32_t bytes, msgs;
    uint8_t kind;
    void (*cb)(int, void *);
    void *arg;
    int status = 0;

    if (!c->wr_count) {
        evpl_log_error("rdmacm", "completion for no request (qp %u)", wc->qp_num);
        return;
    }
    w = &c->wrs[c->wr_head];
    c->wr_head = (c->wr_head + 1) % c->wr_cap;
    c->wr_count--;
    c->wr_done++;
    c->d->sends--;
    if (c->d->sends < c->d->send_room) {
        wait_wake(evpl, c->d); /* (a control message's room is not theirs) */
    }
    kind = w->kind;
    if (kind == WR_CTL) {
        c->ctl_inflight--;
    } else if (kind == WR_SEND && c->stream) {
        c->inflight -= w->bytes;
    }
    bytes = w->bytes;
    msgs = w->msgs;
    cb = w->cb;
    arg = w->arg;
    wr_release(evpl, w);
    if (c->ud && c->ud->nretired) {
        ud_free_retired(c->ud, 0);
    }
    if (wc->status != IBV_WC_SUCCESS) {
        status = EIO; /* rdma.md §3: any work-completion error */
        if (wc->status != IBV_WC_WR_FLUSH_ERR) {
            evpl_log_error("rdmacm", "work request failed: %s", ibv_wc_status_str(wc->status));
        }
    }
    if (kind != WR_SEND && cb) {
        evpl__rdma_complete_later(evpl, c->bind, status, cb, arg);
    }
    if (!c->bind) {
        conn_maybe_free(c);
        return;
    }
    if (status && kind == WR_CTL && (wc->status == IBV_WC_WR_FLUSH_ERR || c->disconnecting)) {
        return; /* the connection is ending: no more to tell the peer (not a loss) */
    }
    if (status) {
        evpl__bind_fail(evpl, c->bind, wc->status == IBV_WC_WR_FLUSH_ERR ? -ECONNRESET : -EIO);
        return;
    }
    /* SENT: the peer has the message (rdma.md §5); an operation's end can
     * also be what an evpl_finish waits for */
    evpl__bind_sent(evpl, c->bind, kind == WR_SEND ? bytes : 0, kind == WR_SEND ? msgs : 0);
    if (c->bind && has_work(c, c->bind)) {
        rc_flush(evpl, c->bind);
    }
} /* send_done */

/* A budget that reaps everything in the queue when the look starts (it
 * holds at most cqe entries, in order), and no more: what must come first
 * (a peer's data before its disconnect) does, and peers that keep the
 * queue busy still cannot hold the loop. */
static int
drain_budget(const struct rldev *ld)
{
    return ld->cq->cqe + POLL_BATCH;
} /* drain_budget */

static int
rldev_poll(struct rldev *ld, int budget)
{
    struct evpl *evpl = ld->l->evpl;
    struct ibv_wc wc[POLL_BATCH];
    int n, total = 0;

    do {
        n = ibv_poll_cq(ld->cq, POLL_BATCH, wc);
        for (int i = 0; i < n; i++) {
            if (wc[i].wr_id & 1) {
                uint32_t slot = (uint32_t) (wc[i].wr_id >> 1);
                struct evpl_iovec iov = ld->slots[slot];
                struct rconn *c = qp_lookup(ld, wc[i].qp_num);

                memset(&ld->slots[slot], 0, sizeof(ld->slots[slot])); /* the reference moves */
                ld->free_slots[ld->nfree++] = slot;
                ld->posted--;
                evpl->mem.pooled--;
                if (wc[i].status != IBV_WC_SUCCESS) {
                    evpl_iovec_release_internal(evpl, &iov);
                    if (c && c->ud) {
                        /* a datagram that does not fit: that one is lost */
                        evpl_log_debug("rdmacm", "UD receive failed: %s",
                                       ibv_wc_status_str(wc[i].status));
                    } else if (c && wc[i].status != IBV_WC_WR_FLUSH_ERR) {
                        evpl_log_error("rdmacm", "receive failed: %s",
                                       ibv_wc_status_str(wc[i].status));
                        conn_fail(c, wc[i].status == IBV_WC_LOC_LEN_ERR ? -EMSGSIZE : -EIO);
                    }
                    continue;
                }
                if (!c) {
                    evpl_iovec_release_internal(evpl, &iov);
                    continue;
                }
                if (c->ud) {
                    ud_deliver(evpl, c, &iov, &wc[i]);
                } else if (c->flow && (wc[i].wc_flags & IBV_WC_WITH_IMM)) {
                    int rc = ctl_received(evpl, c, &iov, &wc[i]);

                    if (rc < 0) {
                        conn_fail(c, rc);
                    }
                } else {
                    deliver(evpl, c, &iov, wc[i].byte_len);
                }
            } else {
                send_done(evpl, (struct rconn *) (uintptr_t) wc[i].wr_id, &wc[i]);
            }
        }
        total += n > 0 ? n : 0;
        /* receives go back as they are used, not only when the queue is
         * drained: sends that completions flush (answers to what arrived)
         * bring more, and a busy queue is drained for a long time; the
         * peers' datagrams (UD) or RNR retries (RC) would run out first */
        if (ld->posted + ld->batch <= ld->target || ld->posted < ld->target / 2) {
            srq_refill(ld);
        }
    } while (n == POLL_BATCH && total < budget);
    ld->more = n == POLL_BATCH; /* (the budget ran out: there may be more) */
    srq_refill(ld);
    return total;
} /* rldev_poll */

static void
cc_ready(struct evpl *evpl, struct evpl_event *event)
{
    struct rldev *ld = container_of(event, struct rldev, cc_ev);
    struct ibv_cq *cq;
    void *ctx;

    while (ibv_get_cq_event(ld->cc, &cq, &ctx) == 0) {
        ld->cq_events++;
    }
    evpl__event_clear(evpl, event, EVPL_EV_READABLE);
    if (ld->cq_events >= 64) {
        ibv_ack_cq_events(ld->cq, ld->cq_events);
        ld->cq_events = 0;
    }
    if (ld->l->polling) {
        return; /* the loop's poll callback looks, one budget a pass */
    }
    rldev_poll(ld, POLL_BUDGET);
    if (!ld->more) {
        /* re-arm, then look once more: a completion between the two
         * polls would otherwise wait for the next one */
        ibv_req_notify_cq(ld->cq, 0);
        rldev_poll(ld, POLL_BUDGET);
    }
    if (ld->more) {
        /* the rest next pass (no event would say it is there) */
        evpl__event_set(evpl, event, EVPL_EV_READABLE);
    }
} /* cc_ready */

/* While the loop busy-polls, every pass reaps the completion queues (no
 * system call); a completion keeps the loop polling (DESIGN §9.1). */
static void
rloop_poll(struct evpl *evpl, void *arg)
{
    struct rloop *l = arg;
    int n = 0;

    /* (set here, not on entering: a loop configured never to run its
     * polls must keep its completion channels armed) */
    l->polling = 1;
    for (struct rldev *ld = l->devs; ld; ld = ld->next) {
        n += rldev_poll(ld, POLL_BUDGET);
        if (ld->more) {
            /* the rest on the next pass, which is a full one: timers and
             * sockets first (a poll-only run would be up to 1000 looks) */
            evpl__poll_yield(evpl);
        }
    }
    if (n) {
        evpl_activity(evpl);
    }
} /* rloop_poll */

/* Going to sleep: the completion channels wake us again.  What came in
 * before they were armed is reaped here; if that delivered anything, the
 * application has work, and the pass must not sleep (evpl_activity: its
 * wait is then 0), or a peer waiting for our answer waits for ever. */
static void
rloop_poll_exit(struct evpl *evpl, void *arg)
{
    struct rloop *l = arg;
    int n = 0;

    l->polling = 0;
    for (struct rldev *ld = l->devs; ld; ld = ld->next) {
        ibv_req_notify_cq(ld->cq, 0);
        n += rldev_poll(ld, drain_budget(ld)); /* (what came before the arming) */
    }
    if (n) {
        evpl_activity(evpl);
    }
} /* rloop_poll_exit */

/* ---- the connection manager ---- */

static int
cm_status(const struct rdma_cm_event *ev)
{
    switch (ev->event) {
        case RDMA_CM_EVENT_REJECTED:
            return -ECONNREFUSED;
        case RDMA_CM_EVENT_UNREACHABLE:
            return ev->status == -ETIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH;
        case RDMA_CM_EVENT_ADDR_ERROR:
        case RDMA_CM_EVENT_ROUTE_ERROR:
            return ev->status < 0 ? ev->status : -EHOSTUNREACH;
        case RDMA_CM_EVENT_DEVICE_REMOVAL:
            return -ENODEV;
        default:
            return ev->status < 0 ? ev->status : -ECONNABORTED;
    }
} /* cm_status */

static void
qp_error(struct rconn *c)
{
    if (c->qp) {
        struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};

        (void) ibv_modify_qp(c->qp, &a, IBV_QP_STATE);
    }
} /* qp_error */

static void
conn_event(struct evpl *evpl, struct rconn *c, const struct rdma_cm_event *ev)
{
    struct rdma_conn_param p;
    struct rldev *ld;
    uint8_t hello[RC_HELLO_LEN];
    int rc;

    switch (ev->event) {
        case RDMA_CM_EVENT_ADDR_RESOLVED:
            if (!c->bind) {
                c->cm_done = 1;
                conn_maybe_free(c);
                return;
            }
            if (rdma_resolve_route(c->id, (int) cfg()->resolve_timeout_ms) != 0) {
                c->cm_done = 1;
                conn_fail(c, -errno);
            }
            return;
        case RDMA_CM_EVENT_ROUTE_RESOLVED:
            if (!c->bind) {
                c->cm_done = 1;
                conn_maybe_free(c);
                return;
            }
            ld = rldev_get(c->l, c->id->verbs);
            rc = ld ? qp_create(c, ld, IBV_QPT_RC) : -ENODEV;
            if (rc == 0) {
                conn_params(c, &p);
                if (rc_flow_capable(c, c->id)) {
                    rc_hello(hello, RC_HELLO_FLOW); /* (rdma_connect copies it) */
                    p.private_data = hello;
                    p.private_data_len = RC_HELLO_LEN;
                }
                if (rdma_connect(c->id, &p) != 0) {
                    rc = -errno;
                }
            }
            if (rc < 0) {
                c->cm_done = 1;
                conn_fail(c, rc);
                return;
            }
            c->state = ST_CONNECTING;
            return;
        case RDMA_CM_EVENT_ESTABLISHED:
            c->cm_established = 1;
            if (!c->bind) {
                /* closed meanwhile: disconnect now that the CM can; it
                 * reports back with DISCONNECTED */
                c->state = ST_ESTABLISHED;
                if (rdma_disconnect(c->id) != 0) {
                    c->cm_done = 1; /* no DISCONNECTED will come */
                    qp_error(c);
                    conn_maybe_free(c);
                }
                return;
            }
            if (c->stream && !c->passive &&
                (rc_hello_flags(ev->param.conn.private_data, ev->param.conn.private_data_len) &
                 RC_HELLO_FLOW)) {
                c->flow = 1; /* the accepting end agreed (before anything arrives) */
            }
            if (c->state != ST_ESTABLISHED) {
                conn_established(evpl, c); /* (or the peer's first message did) */
            }
            return;
        case RDMA_CM_EVENT_DISCONNECTED:
            if (c->cm_done) {
                return; /* ended already (an error event): done with the CM */
            }
            /* what the peer sent before it left is in the queue: first */
            c->disconnecting = 1;
            if (c->d) {
                rldev_poll(c->d, drain_budget(c->d));
            }
            c->cm_done = 1;
            /* answer the peer's request (it waits for that), and end our
             * queue pair: what is still queued is flushed back to us */
            rdma_disconnect(c->id);
            if (c->bind) {
                /* (a flow-control message in flight is not data lost) */
                int idle = c->wr_count == c->ctl_inflight && !c->ops &&
                           !c->bind->send_ring.length &&
                           evpl_dgram_ring_empty(&c->bind->dgram_send);

                if (idle && (c->bind->flags & (EVPL_BIND_READ_PAUSED | EVPL_BIND_CLOSING)) ==
                                EVPL_BIND_READ_PAUSED) {
                    /* an orderly end while reading is paused waits behind
                     * the data the application has not read, as a TCP
                     * socket's EOF does (net.md statement 29): it ends the
                     * bind once the application drains (rc_read_resume) */
                    c->eof_held = 1;
                    return;
                }
                evpl__bind_fail(evpl, c->bind, idle ? 0 : -ECONNRESET);
            } else {
                conn_maybe_free(c);
            }
            return;
        case RDMA_CM_EVENT_TIMEWAIT_EXIT:
        case RDMA_CM_EVENT_ADDR_CHANGE:
        case RDMA_CM_EVENT_CONNECT_RESPONSE:
            return;
        default:
            c->cm_done = 1;
            qp_error(c); /* requests in flight come back flushed */
            conn_fail(c, cm_status(ev));
            return;
    }
} /* conn_event */

static void
listen_event(struct rlisten *ls, const struct rdma_cm_event *ev)
{
    struct evpl_accepted *conn;
    struct rreq *req;

    if (ev->event != RDMA_CM_EVENT_CONNECT_REQUEST) {
        return;
    }
    pthread_once(&parking_once, parking_init);
    conn = calloc(1, sizeof(*conn));
    req = calloc(1, sizeof(*req));
    if (!conn || !req || !parking || rdma_migrate_id(ev->id, parking) != 0) {
        evpl_log_error("rdmacm", "cannot take a connection request: refused");
        rdma_reject(ev->id, NULL, 0);
        rdma_destroy_id(ev->id);
        free(conn);
        free(req);
        return;
    }
    req->id = ev->id;
    req->initiator_depth = ev->param.conn.initiator_depth;
    req->responder_resources = ev->param.conn.responder_resources;
    req->flow = (rc_hello_flags(ev->param.conn.private_data, ev->param.conn.private_data_len) &
                 RC_HELLO_FLOW) != 0;
    conn->protocol = ls->protocol;
    conn->fd = -1;
    conn->backend = req;
    conn->local = cm_address(rdma_get_local_addr(ev->id));
    conn->remote = cm_address(rdma_get_peer_addr(ev->id));
    evpl__listener_deliver(ls->listener, conn);
} /* listen_event */

static void
cm_ready(struct evpl *evpl, struct evpl_event *event)
{
    struct rloop *l = container_of(event, struct rloop, cm_ev);
    struct rdma_cm_event *ev;

    for (int budget = 256; budget > 0; budget--) {
        struct rdma_cm_event copy;
        uint8_t pdata[UD_HELLO_LEN];
        uint32_t plen = 0;
        void *ctx;

        if (rdma_get_cm_event(l->ch, &ev) != 0) {
            evpl__event_clear(evpl, event, EVPL_EV_READABLE);
            return;
        }
        copy = *ev;
        ctx = ev->id ? ev->id->context : NULL;
        if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
            /* the new id inherited the listener's context: it is nobody's
             * until a loop takes it */
            ctx = ev->listen_id ? ev->listen_id->context : NULL;
            ev->id->context = NULL;
        }
        /* what the peer said (a request's hello, or the answer to ours on
         * a connection) goes with the event */
        if ((ev->event == RDMA_CM_EVENT_CONNECT_REQUEST ||
             (ev->event == RDMA_CM_EVENT_ESTABLISHED && ctx && *(int *) ctx == KIND_CONN)) &&
            ev->param.conn.private_data) {
            plen = ev->param.conn.private_data_len < sizeof(pdata) ? ev->param.conn.private_data_len
                                                                   : (uint32_t) sizeof(pdata);
            memcpy(pdata, ev->param.conn.private_data, plen);
            copy.param.conn.private_data = pdata;
            copy.param.conn.private_data_len = (uint8_t) plen;
        }
        /* acknowledged before it is acted on: destroying an id waits for
         * its events' acknowledgements */
        rdma_ack_cm_event(ev);
        evpl_log_debug("rdmacm", "CM event %s (status %d) for %p", rdma_event_str(copy.event),
                       copy.status, ctx);
        if (!ctx) {
            continue; /* a request's id before a loop took it */
        }
        if (*(int *) ctx == KIND_LISTEN) {
            listen_event(ctx, &copy);
        } else if (*(int *) ctx == KIND_UDPEER) {
            ud_peer_event(evpl, ctx, &copy);
        } else if (copy.event == RDMA_CM_EVENT_CONNECT_REQUEST) {
            if (((struct rconn *) ctx)->ud) {
                ud_request(evpl, ctx, &copy, pdata, plen);
            } else {
                rdma_reject(copy.id, NULL, 0);
                rdma_destroy_id(copy.id);
            }
        } else {
            conn_event(evpl, ctx, &copy);
        }
    }
    /* budget used up: stay readable, continue next pass */
} /* cm_ready */

/* ---- closing ---- */

static void
rc_close(struct evpl *evpl, struct evpl_bind *bind)
{
    struct rconn *c = bind->backend;
    int inflight;

    if (!c) {
        return;
    }
    bind->backend = NULL;
    c->bind = NULL;
    if (c->ud) {
        /* its port is free at once (the queue pair lives on without its id
         * until what it has in flight comes back); then as a connection
         * that never was, below */
        ud_close(evpl, c);
        if (c->id) {
            c->id->qp = NULL;
            rdma_destroy_id(c->id);
            c->id = NULL;
        }
    }
    /* operations never posted, and those in flight, end now: before the
     * bind's DISCONNECTED; the device keeps the buffers until flushed */
    while (c->ops) {
        struct rop *op = c->ops;

        c->ops = op->next;
        if (op->cb) {
            evpl__rdma_complete_later(evpl, bind, ECONNRESET, op->cb, op->arg);
        }
        op_free(evpl, op);
    }
    c->ops_tail = NULL;
    /* posted ones: a connection that ended under them (the peer left, a
     * request failed) flushes them back with errors, EIO (rdma.md §3, and
     * whether their flush or this close comes first is timing); closed by
     * the application, ECONNRESET as for those not yet posted */
    inflight = bind->close_status ? EIO : ECONNRESET;
    for (uint32_t i = 0; i < c->wr_count; i++) {
        struct rwr *w = &c->wrs[(c->wr_head + i) % c->wr_cap];

        if (w->cb) {
            evpl__rdma_complete_later(evpl, bind, inflight, w->cb, w->arg);
            w->cb = NULL;
        }
    }
    evpl__rdma_complete_bind(bind);
    wait_remove(c);
    if (c->d && c->d->waiting && !c->d->woken && c->d->sends < c->d->send_room) {
        wait_wake(evpl, c->d); /* its turn, if it had one, goes on */
    }
    if (c->cm_done) {
        qp_error(c); /* the CM is done already: flush what is left */
    } else if (c->cm_established) {
        /* the queue pair flushes; the CM reports back (or, refused, will
         * say nothing more) */
        if (rdma_disconnect(c->id) != 0) {
            c->cm_done = 1;
            qp_error(c);
        }
    } else if (c->passive && c->state != ST_RESOLVING) {
        /* accepted, and the CM's ESTABLISHED still to come (the peer may
         * have sent already): disconnect once it does, or end on its error */
        qp_error(c);
    } else {
        /* no connection (yet): nothing more to hear from the CM; a
         * connect in progress ends with the id */
        c->cm_done = 1;
        qp_error(c);
    }
    c->dnext = c->l->detached;
    c->l->detached = c;
    conn_maybe_free(c);
} /* rc_close */

/* ---- listening (listener thread) ---- */

static int
rc_listen(struct evpl *evpl, const struct evpl_protocol *protocol, struct evpl_listener *listener,
          struct evpl_address *address, void **state)
{
    struct rloop *l = rloop_get(evpl);
    struct rlisten *ls;
    int rc;

    if (!l) {
        return -errno;
    }
    ls = calloc(1, sizeof(*ls));
    if (!ls) {
        return -ENOMEM;
    }
    ls->kind = KIND_LISTEN;
    ls->protocol = protocol;
    ls->listener = listener;
    if (rdma_create_id(l->ch, &ls->id, ls, RDMA_PS_TCP) != 0) {
        rc = -errno;
        free(ls);
        return rc;
    }
    set_tos(ls->id);
    if (rdma_bind_addr(ls->id, (struct sockaddr *) &address->sa) != 0 ||
        rdma_listen(ls->id, 1024) != 0) {
        rc = -errno;
        rdma_destroy_id(ls->id);
        free(ls);
        return rc;
    }
    *state = ls;
    return 0;
} /* rc_listen */

static void
rc_unlisten(struct evpl *evpl, void *state)
{
    struct rlisten *ls = state;

    (void) evpl;
    rdma_destroy_id(ls->id);
    free(ls);
} /* rc_unlisten */

static void
rc_discard(struct evpl_accepted *conn)
{
    struct rreq *req = conn->backend;

    rdma_reject(req->id, NULL, 0);
    rdma_destroy_id(req->id);
    free(req);
    conn->backend = NULL;
} /* rc_discard */

/* ---- one-sided operations ---- */

static void
rc_address(struct evpl_bind *bind, const struct evpl_iovec *iovec, uint32_t *r_key,
           uint64_t *r_address)
{
    const struct rconn *c = bind->backend;
    struct ibv_mr *mr;

    *r_key = 0;
    *r_address = 0;
    if (!c || !c->d || !iovec) {
        return; /* before CONNECTED there is no device (upstream aborts) */
    }
    mr = iov_mr(c->d->dev, iovec);
    if (mr) {
        *r_key = mr->rkey;
        *r_address = (uint64_t) (uintptr_t) iovec->data;
    }
} /* rc_address */

static void
queue_op(struct evpl *evpl, struct evpl_bind *bind, int write, uint32_t rkey, uint64_t raddr,
         struct evpl_iovec *iov, int niov, int take, void (*cb)(int, void *), void *arg)
{
    struct rconn *c = bind->backend;
    struct rop *op;
    int status = 0;

    if (evpl__bind_closing(bind)) {
        status = ECONNRESET;
    } else if (!c) {
        status = ENOTCONN;
    } else if (niov <= 0 || (c->qp && (uint32_t) niov > (write ? c->max_sge : c->max_sge_rd)) ||
               niov > 64) {
        status = EINVAL;
    } else {
        for (int i = 0; i < niov; i++) {
            if (!iov[i].ref->slab) {
                /* (ref NULL never gets here: evpl_rdma_* refuse it) not in
                 * a slab: the device cannot reach it */
                status = EINVAL;
            }
        }
    }
    op = status ? NULL : calloc(1, sizeof(*op));
    if (!status && op) {
        op->iov = malloc((size_t) niov * sizeof(*op->iov));
        if (!op->iov) {
            free(op);
            op = NULL;
        }
    }
    if (!status && !op) {
        status = ENOMEM;
    }
    if (status) {
        if (take) {
            evpl_iovecs_release_internal(evpl, iov, niov);
        }
        evpl__rdma_complete_later(evpl, bind, status, cb, arg);
        return;
    }
    for (int i = 0; i < niov; i++) {
        if (take) {
            op->iov[i] = iov[i];
        } else {
            evpl_iovec_clone(&op->iov[i], &iov[i]);
        }
    }
    op->niov = niov;
    op->write = write;
    op->rkey = rkey;
    op->raddr = raddr;
    op->cb = cb;
    op->arg = arg;
    /* after what is queued now, before what is queued later */
    op->barrier =
        c->taken + (c->stream ? bind->send_ring.length : evpl_dgram_ring_count(&bind->dgram_send));
    if (c->ops_tail) {
        c->ops_tail->next = op;
    } else {
        c->ops = op;
    }
    c->ops_tail = op;
    evpl_defer(evpl, &bind->flush);
} /* queue_op */

static void
rc_rdma_read(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
             uint64_t remote_address, struct evpl_iovec *iov, int niov,
             void (*callback)(int status, void *private_data), void *private_data)
{
    queue_op(evpl, bind, 0, remote_key, remote_address, iov, niov, 0, callback, private_data);
} /* rc_rdma_read */

static void
rc_rdma_write(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
              uint64_t remote_address, struct evpl_iovec *iov, int niov, unsigned int flags,
              void (*callback)(int status, void *private_data), void *private_data)
{
    queue_op(evpl, bind, 1, remote_key, remote_address, iov, niov,
             (flags & EVPL_RDMA_FLAG_TAKE_REF) != 0, callback, private_data);
} /* rc_rdma_write */

/* ---- availability and teardown ---- */

static int
rc_available(void)
{
    struct ibv_context **list;
    int n = 0;

    if (!cfg()->rdmacm_enabled || access("/dev/infiniband/rdma_cm", R_OK | W_OK) != 0) {
        return 0;
    }
    list = rdma_get_devices(&n);
    if (list) {
        rdma_free_devices(list);
    }
    return n > 0;
} /* rc_available */

void
evpl__rdmacm_loop_cleanup(struct evpl *evpl)
{
    struct rloop *l = evpl->rdmacm;

    if (!l) {
        return;
    }
    /* the binds are gone; connections still tearing down end here */
    evpl_remove_deferral(evpl, &l->reap);
    while (l->detached) {
        struct rconn *c = l->detached;

        l->detached = c->dnext;
        conn_destroy(c);
    }
    while (l->devs) {
        struct rldev *ld = l->devs;

        l->devs = ld->next;
        evpl__event_remove(evpl, &ld->cc_ev);
        if (ld->retry_armed) {
            evpl_remove_timer(evpl, &ld->retry);
        }
        ibv_destroy_srq(ld->srq);
        for (uint32_t i = 0; i < ld->nslots; i++) {
            if (ld->slots[i].ref) {
                evpl_iovec_release_internal(evpl, &ld->slots[i]);
            }
        }
        evpl->mem.pooled -= ld->posted;
        if (ld->arena.ref) {
            evpl_iovec_release_internal(evpl, &ld->arena);
            evpl->mem.pooled--;
        }
        if (ld->cq_events) {
            ibv_ack_cq_events(ld->cq, ld->cq_events);
        }
        ibv_destroy_cq(ld->cq);
        ibv_destroy_comp_channel(ld->cc);
        free(ld->slots);
        free(ld->free_slots);
        free(ld);
    }
    if (l->poll) {
        evpl_remove_poll(evpl, l->poll);
    }
    evpl__event_remove(evpl, &l->cm_ev);
    rdma_destroy_event_channel(l->ch);
    free(l);
    evpl->rdmacm = NULL;
} /* evpl__rdmacm_loop_cleanup */

#define RC_PROTOCOL_COMMON                                                                      \
    .connected = 1, .rdma = 1, .own_connected = 1, .kind = EVPL_EP_NETWORK,                     \
    .available = rc_available, .connect = rc_connect, .attach = rc_attach, .listen = rc_listen, \
    .unlisten = rc_unlisten, .flush = rc_flush, .close = rc_close,                              \
    .send_pending = rc_send_pending, .discard = rc_discard, .rdma_address = rc_address,         \
    .rdma_read = rc_rdma_read, .rdma_write = rc_rdma_write

const struct evpl_protocol evpl_protocol_rdmacm_rc_datagram = {
    .id = EVPL_DATAGRAM_RDMACM_RC,
    .name = "DATAGRAM_RDMACM_RC",
    .stream = 0,
    RC_PROTOCOL_COMMON,
};

const struct evpl_protocol evpl_protocol_rdmacm_rc_stream = {
    .id = EVPL_STREAM_RDMACM_RC,
    .name = "STREAM_RDMACM_RC",
    .stream = 1,
    .read_resume = rc_read_resume,
    RC_PROTOCOL_COMMON,
};

/* unconnected, unreliable datagrams (rdma.md §5): no one-sided operations */
const struct evpl_protocol evpl_protocol_rdmacm_ud_datagram = {
    .id = EVPL_DATAGRAM_RDMACM_UD,
    .name = "DATAGRAM_RDMACM_UD",
    .stream = 0,
    .connected = 0,
    .kind = EVPL_EP_NETWORK,
    .available = rc_available,
    .bind = ud_bind,
    .flush = rc_flush,
    .close = rc_close,
    .send_pending = rc_send_pending,
};
