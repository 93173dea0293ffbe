/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The io_uring framework: one ring per loop (the wait mechanism's own when
 * the loop waits on io_uring, else a ring of the framework watched by the
 * loop's mechanism), one provided-buffer ring of slab memory for receives,
 * and the bookkeeping that lets a loop be destroyed with requests in flight.
 * The TCP (tcp.c) and UDP (udp.c) backends sit on top.
 */
#pragma once

#include <liburing.h>

#include "net/net.h"

/* kernel 6.12 uapi, newer than Debian's liburing 2.3 headers */
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif

/* Receive buffer groups: the group id is the kind. */
enum {
    EVPL_URING_POOL_STREAM = 0, /* chunks filled piece by piece where the kernel can */
    EVPL_URING_POOL_DGRAM = 1,  /* one datagram per chunk */
    EVPL_URING_POOLS = 2,
};

/* recvmsg's header, the sender's address and a UDP_GRO control message
 * before the payload of a multishot datagram receive */
#define EVPL_URING_DGRAM_NAMELEN ((unsigned) sizeof(struct sockaddr_storage))
#define EVPL_URING_DGRAM_CTRLLEN ((unsigned) CMSG_SPACE(sizeof(int)))
#define EVPL_URING_DGRAM_OVERHEAD                                                \
    ((unsigned) sizeof(struct io_uring_recvmsg_out) + EVPL_URING_DGRAM_NAMELEN + \
     EVPL_URING_DGRAM_CTRLLEN)

struct evpl_uring_waiter;

/* One provided-buffer ring of slab chunks. */
struct evpl_uring_pool {
    uint16_t bgid;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint32_t br_entries; /* the ring's size */
    int inc;             /* IOU_PBUF_RING_INC: the kernel fills a chunk piece by piece */
    uint32_t chunk_size;
    uint32_t nchunks;          /* ids in use: 0 .. nchunks-1 */
    struct evpl_iovec *chunks; /* by buffer id; ref NULL = not posted */
    uint32_t *chunk_off;       /* inc: bytes of the chunk already handed out */
    uint32_t missing;          /* ids left empty (no memory): refilled by timer */
    struct evpl_timer refill_timer;
    uint32_t refill_us;                /* current retry interval */
    struct evpl_uring_waiter *starved; /* receivers stopped for want of buffers */
};

/* A ring of its own that the loop's mechanism watches through an eventfd
 * the kernel signals when completion work waits (the fd of a
 * DEFER_TASKRUN ring does not wake a poller for it). */
struct evpl_uring_watch {
    struct io_uring *ring;
    int efd;
    struct evpl_event event;
    /* optional (zero: evpl__uring_reap): the owner's reap, for an owner
     * that must outlive a callback closing it */
    void (*reap)(struct evpl *evpl, struct evpl_uring_watch *w);
};

int evpl__uring_watch(struct evpl *evpl, struct evpl_uring_watch *w, struct io_uring *ring);
/* Work left after a reap that returned reaped (the watch's eventfd will
 * not say so). */
int evpl__uring_unreaped(struct io_uring *ring, int reaped);
void evpl__uring_unwatch(struct evpl *evpl, struct evpl_uring_watch *w);

/* Hand over what is queued and run what completed; enters the kernel only
 * when there is something to hand over or collect.  Returns completions. */
int evpl__uring_reap(struct evpl *evpl, struct io_uring *ring);

struct evpl_uring {
    struct io_uring *ring; /* the mechanism's, or &own */
    struct io_uring own;
    int owned;
    struct evpl_uring_watch *watch; /* own ring: how the loop hears of it */
    struct evpl_poll *poll;         /* poll mode: submit and reap on every pass */
    uint64_t pending;               /* requests whose last completion is still due */
    uint64_t objects;               /* connections and listeners not yet freed */
    struct evpl_uring_pool pools[EVPL_URING_POOLS];
    /* registered buffers: slab buffers used by block I/O, pinned once */
    int fixed_ok;            /* sparse table registered */
    uint32_t fixed_used;     /* slots taken */
    const void **fixed_keys; /* open addressing: buffer -> slot + 1 */
    uint32_t *fixed_vals;
    /* registered files: requests on them skip the fd table lookup */
    uint32_t *free_slots; /* stack of unused slots */
    uint32_t nfree_slots;
    int refusing; /* the kernel refused the last entry (logged) */
};

/* Someone whose multishot receive ended with -ENOBUFS. */
struct evpl_uring_waiter {
    struct evpl_uring_waiter *next, *prev;
    int waiting;
    void (*rearm)(struct evpl *evpl, struct evpl_uring_waiter *w);
};

/* io_uring usable here (config, kernel, seccomp)?  Cached. */
int evpl__uring_available(void);

/* This loop's framework, created on first use; NULL if it cannot be. */
struct evpl_uring *evpl__uring_get(struct evpl *evpl);

/* A submission entry (submitting when the queue is full); NULL only when
 * the kernel refuses submissions altogether. */
struct io_uring_sqe *evpl__uring_sqe(struct evpl_uring *u);
/* White-box tests: the next this many entries are refused. */
extern unsigned evpl__uring_refuse_sqes;

/* Queue a request; pending counts it until its last completion. */
static inline struct io_uring_sqe *
evpl__uring_start(struct evpl_uring *u, struct evpl_uring_req *req)
{
    struct io_uring_sqe *sqe = evpl__uring_sqe(u);

    if (sqe) {
        io_uring_sqe_set_data(sqe, req);
        u->pending++;
    }
    return sqe;
} /* evpl__uring_start */

/* A registered-file slot for fd (-1 when none is left, or the kernel
 * refused the table), and its release. */
int evpl__uring_file_add(struct evpl_uring *u, int fd);
void evpl__uring_file_remove(struct evpl_uring *u, int slot);

/* After io_uring_prep_*(sqe, fd, ...): use the slot if fd has one. */
static inline void
evpl__uring_sqe_file(struct io_uring_sqe *sqe, int slot)
{
    if (slot >= 0) {
        sqe->fd = slot;
        sqe->flags |= IOSQE_FIXED_FILE;
    }
} /* evpl__uring_sqe_file */

/* The registered-buffer index of a slab buffer holding [data, data+len),
 * registering it on first use; -1 when it is not a slab buffer or no slot
 * is left (the request then goes without). */
int evpl__uring_fixed_buffer(struct evpl_uring *u, const void *data, uint64_t len);

/* Cancel an armed request (its completion still arrives, -ECANCELED). */
void evpl__uring_cancel(struct evpl_uring *u, struct evpl_uring_req *req);

/* A receive buffer group, set up on first use (a listener's loop never
 * needs one); NULL when it cannot be. */
struct evpl_uring_pool *evpl__uring_pool(struct evpl *evpl, struct evpl_uring *u, int kind);

/* The bytes of a completion with IORING_CQE_F_BUFFER, from the start of
 * what it filled, as an iovec holding its own reference; the chunk is
 * replaced when used up. */
void evpl__uring_recv_data(struct evpl *evpl, struct evpl_uring_pool *p, int res, uint32_t flags,
                           struct evpl_iovec *iov);

/* -ENOBUFS: re-arm w once buffers are back (at once if they are). */
void evpl__uring_wait_buffers(struct evpl *evpl, struct evpl_uring_pool *p,
                              struct evpl_uring_waiter *w);
/* The ring ran dry: post what memory allows now; 1 if not one chunk could
 * be posted (buffer memory is exhausted), 0 if receives can go on. */
int evpl__uring_pool_exhausted(struct evpl *evpl, struct evpl_uring_pool *p);
void evpl__uring_unwait(struct evpl_uring_pool *p, struct evpl_uring_waiter *w);
