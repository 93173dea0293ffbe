/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The io_uring framework (see uring.h).
 *
 * Sharing: when the loop waits on io_uring, the backends' requests go on
 * that ring and the loop's single io_uring_enter per pass submits them and
 * reaps everything.  Otherwise the framework has a ring of its own whose fd
 * the loop's mechanism watches; it is submitted just before the loop waits.
 * In poll mode a poll callback submits and reaps on every pass.
 *
 * Receive buffers: one provided-buffer ring per loop, filled with chunks of
 * slab buffers.  A completion's bytes go to the application as an iovec on
 * that slab buffer (no copy); the chunk is replaced when used up.  Where the
 * kernel has IOU_PBUF_RING_INC (6.12), a chunk is filled piece by piece, so
 * small messages share one chunk instead of taking one each.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/io_uring/uring.h"

/* 2 MiB of receive space per loop either way (one default buffer) */
#define CHUNK_SIZE_INC   (256 * 1024) /* filled piece by piece: few needed */
#define CHUNKS_INC       8
#define CHUNK_SIZE_WHOLE (64 * 1024) /* one receive each */
#define CHUNKS_WHOLE     32
#define REFILL_RETRY_US  1000 /* first retry for memory; doubles up to 64 ms */
#define REFILL_RETRY_MAX 64000

/* ---- availability ---- */

static int available = -1;
static pthread_once_t available_once = PTHREAD_ONCE_INIT;

static void
probe(void)
{
    struct io_uring ring;
    struct io_uring_probe *p;
    static const int ops[] = {IORING_OP_RECV,    IORING_OP_SENDMSG, IORING_OP_ACCEPT,
                              IORING_OP_CONNECT, IORING_OP_SEND_ZC, IORING_OP_ASYNC_CANCEL,
                              IORING_OP_RECVMSG, IORING_OP_POLL_ADD};
    int rc;

    available = 0;
    if (!evpl_shared->config->io_uring_enabled) {
        return;
    }
    rc = io_uring_queue_init(4, &ring, 0);
    if (rc < 0) {
        evpl_log_info("io_uring", "io_uring unavailable (%s): its protocols are not registered",
                      strerror(-rc));
        return;
    }
    p = io_uring_get_probe_ring(&ring);
    available = p != NULL;
    /* SEND_ZC stands in for kernel 6.0, which brought multishot receive */
    for (size_t i = 0; p && i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (!io_uring_opcode_supported(p, ops[i])) {
            evpl_log_info("io_uring", "kernel lacks io_uring opcode %d: protocols not registered",
                          ops[i]);
            available = 0;
        }
    }
    io_uring_free_probe(p);
    io_uring_queue_exit(&ring);
} /* probe */

int
evpl__uring_available(void)
{
    pthread_once(&available_once, probe);
    return available;
} /* evpl__uring_available */

/* ---- submission ---- */

struct io_uring_sqe *
evpl__uring_sqe(struct evpl_uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(u->ring);

    if (!sqe) {
        io_uring_submit(u->ring); /* queue full: hand it to the kernel */
        sqe = io_uring_get_sqe(u->ring);
    }
    if (!sqe) {
        evpl_log_error("io_uring", "no submission queue entry available");
    }
    return sqe;
} /* evpl__uring_sqe */

static struct evpl_uring_req ignore_req; /* cancels' own completions */

static void
ignore_complete(struct evpl *evpl, struct evpl_uring_req *req, int res, uint32_t flags)
{
    struct evpl_uring *u = evpl->uring;

    u->pending--;
} /* ignore_complete */

void
evpl__uring_cancel(struct evpl_uring *u, struct evpl_uring_req *req)
{
    struct io_uring_sqe *sqe = evpl__uring_start(u, &ignore_req);

    if (sqe) {
        io_uring_prep_cancel(sqe, req, 0);
    }
} /* evpl__uring_cancel */

/* ---- receive buffers ---- */

static int
chunk_post(struct evpl *evpl, struct evpl_uring *u, uint32_t bid)
{
    struct evpl_iovec *ch = &u->chunks[bid];

    if (evpl_iovec_alloc(evpl, u->chunk_size, 4096, 1, 0, ch) != 1) {
        ch->ref = NULL;
        return -1;
    }
    u->chunk_off[bid] = 0;
    evpl->mem.pooled++;
    io_uring_buf_ring_add(u->br, ch->data, u->chunk_size, (unsigned short) bid,
                          io_uring_buf_ring_mask(u->br_entries), 0);
    io_uring_buf_ring_advance(u->br, 1);
    return 0;
} /* chunk_post */

static void
wake_starved(struct evpl *evpl, struct evpl_uring *u)
{
    while (u->starved) {
        struct evpl_uring_waiter *w = u->starved;

        evpl__uring_unwait(u, w);
        w->rearm(evpl, w);
    }
} /* wake_starved */

static void
refill(struct evpl *evpl, struct evpl_timer *timer)
{
    struct evpl_uring *u = container_of(timer, struct evpl_uring, refill_timer);

    for (uint32_t bid = 0; bid < u->nchunks && u->br_missing; bid++) {
        if (!u->chunks[bid].ref) {
            if (chunk_post(evpl, u, bid) < 0) {
                break;
            }
            u->br_missing--;
        }
    }
    if (u->br_missing) {
        u->refill_us = u->refill_us ? u->refill_us * 2 : REFILL_RETRY_US;
        if (u->refill_us > REFILL_RETRY_MAX) {
            u->refill_us = REFILL_RETRY_MAX;
        }
        evpl_add_oneshot_timer(evpl, &u->refill_timer, refill, u->refill_us);
    } else {
        u->refill_us = 0;
    }
    if (u->br_missing < u->nchunks) {
        wake_starved(evpl, u);
    }
} /* refill */

static void
chunk_used_up(struct evpl *evpl, struct evpl_uring *u, uint32_t bid)
{
    u->chunks[bid].ref = NULL;
    evpl->mem.pooled--;
    if (chunk_post(evpl, u, bid) < 0) {
        /* out of buffer memory: receives stop (TCP pushes back on the
         * peer) until the timer finds memory again; nothing is lost */
        if (u->br_missing++ == 0) {
            evpl_log_error("io_uring", "no buffer memory for receives; retrying");
            u->refill_us = REFILL_RETRY_US;
            evpl_add_oneshot_timer(evpl, &u->refill_timer, refill, u->refill_us);
        }
    }
} /* chunk_used_up */

void
evpl__uring_recv_data(struct evpl *evpl, struct evpl_uring *u, int res, uint32_t flags,
                      struct evpl_iovec *iov)
{
    uint32_t bid = flags >> IORING_CQE_BUFFER_SHIFT;
    struct evpl_iovec *ch = &u->chunks[bid];

    iov->data = (char *) ch->data + u->chunk_off[bid];
    iov->length = (unsigned int) res;
    iov->pad = 0;
    if (flags & IORING_CQE_F_BUF_MORE) {
        /* the kernel goes on filling the rest of this chunk */
        u->chunk_off[bid] += (uint32_t) res;
        evpl_iovec_take_ref(iov, ch->ref);
    } else {
        iov->ref = ch->ref; /* the chunk's reference moves to the data */
        chunk_used_up(evpl, u, bid);
    }
} /* evpl__uring_recv_data */

void
evpl__uring_wait_buffers(struct evpl *evpl, struct evpl_uring *u, struct evpl_uring_waiter *w)
{
    if (u->br_missing < u->nchunks) {
        w->rearm(evpl, w); /* buffers were posted since the kernel ran dry */
        return;
    }
    if (w->waiting) {
        return;
    }
    w->waiting = 1;
    w->prev = NULL;
    w->next = u->starved;
    if (w->next) {
        w->next->prev = w;
    }
    u->starved = w;
} /* evpl__uring_wait_buffers */

void
evpl__uring_unwait(struct evpl_uring *u, struct evpl_uring_waiter *w)
{
    if (!w->waiting) {
        return;
    }
    w->waiting = 0;
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        u->starved = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    }
} /* evpl__uring_unwait */

static int
buffers_init(struct evpl *evpl, struct evpl_uring *u)
{
    struct io_uring_buf_reg reg;
    int rc;

    u->br_entries = CHUNKS_WHOLE; /* the ring's size; br_inc posts fewer */
    u->br_bytes = u->br_entries * sizeof(struct io_uring_buf);
    u->br = mmap(NULL, u->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (u->br == MAP_FAILED) {
        u->br = NULL;
        return -errno;
    }
    io_uring_buf_ring_init(u->br);
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uintptr_t) u->br;
    reg.ring_entries = u->br_entries;
    reg.bgid = EVPL_URING_BGID;
    reg.pad = IOU_PBUF_RING_INC; /* the flags field of newer kernels */
    rc = io_uring_register_buf_ring(u->ring, &reg, 0);
    u->br_inc = rc == 0;
    if (rc < 0) {
        reg.pad = 0;
        rc = io_uring_register_buf_ring(u->ring, &reg, 0);
    }
    if (rc < 0) {
        munmap(u->br, u->br_bytes);
        u->br = NULL;
        return rc;
    }
    u->chunk_size = u->br_inc ? CHUNK_SIZE_INC : CHUNK_SIZE_WHOLE;
    u->nchunks = u->br_inc ? CHUNKS_INC : CHUNKS_WHOLE;
    if (u->chunk_size > evpl__buffer_size) {
        u->chunk_size = (uint32_t) evpl__buffer_size;
    }
    u->chunks = evpl__zalloc(u->br_entries * sizeof(*u->chunks));
    u->chunk_off = evpl__zalloc(u->br_entries * sizeof(*u->chunk_off));
    u->br_missing = u->nchunks;
    refill(evpl, &u->refill_timer);
    return 0;
} /* buffers_init */

int
evpl__uring_recv_buffers(struct evpl *evpl, struct evpl_uring *u)
{
    int rc;

    if (u->br) {
        return 0;
    }
    rc = buffers_init(evpl, u);
    if (rc < 0) {
        evpl_log_error("io_uring", "cannot register receive buffers: %s", strerror(-rc));
        return rc;
    }
    evpl_log_debug("io_uring", "loop %p: %u receive chunks of %u KiB%s", (void *) evpl, u->nchunks,
                   u->chunk_size / 1024, u->br_inc ? " (incremental)" : "");
    return 0;
} /* evpl__uring_recv_buffers */

static void
buffers_cleanup(struct evpl *evpl, struct evpl_uring *u)
{
    if (!u->br) {
        return;
    }
    evpl_remove_timer(evpl, &u->refill_timer);
    io_uring_unregister_buf_ring(u->ring, EVPL_URING_BGID);
    for (uint32_t bid = 0; bid < u->br_entries; bid++) {
        if (u->chunks[bid].ref) {
            evpl_iovec_release(evpl, &u->chunks[bid]);
            evpl->mem.pooled--;
        }
    }
    free(u->chunks);
    free(u->chunk_off);
    munmap(u->br, u->br_bytes);
    u->br = NULL;
} /* buffers_cleanup */

/* ---- reaping ---- */

static void
reap(struct evpl *evpl, struct evpl_uring *u)
{
    if (evpl__uring_need_enter(u->ring)) {
        io_uring_submit_and_get_events(u->ring);
    }
    if (evpl__uring_process(evpl, u->ring) > 0) {
        evpl_activity(evpl);
    }
} /* reap */

static void
own_ring_ready(struct evpl *evpl, struct evpl_event *event)
{
    struct evpl_uring *u = container_of(event, struct evpl_uring, event);

    uint64_t count;

    /* reset the counter first: a signal after this read is a new edge */
    (void) read(u->efd, &count, sizeof(count));
    evpl__event_clear(evpl, event, EVPL_EV_READABLE);
    reap(evpl, u);
} /* own_ring_ready */

static void
poll_callback(struct evpl *evpl, void *private_data)
{
    reap(evpl, private_data);
} /* poll_callback */

void
evpl__uring_pre_wait(struct evpl *evpl)
{
    struct evpl_uring *u = evpl->uring;

    if (u->owned && io_uring_sq_ready(u->ring)) {
        io_uring_submit(u->ring);
    }
} /* evpl__uring_pre_wait */

struct evpl_uring *
evpl__uring_get(struct evpl *evpl)
{
    struct evpl_uring *u = evpl->uring;
    int rc;

    if (u) {
        return u;
    }
    if (!evpl__uring_available()) {
        return NULL;
    }
    u = evpl__zalloc(sizeof(*u));
    u->ring = evpl__mech_uring_ring(evpl);
    if (!u->ring) {
        unsigned entries = evpl_shared->config->io_uring_entries;

        rc = evpl__uring_queue_init(entries, &u->own);
        if (rc < 0) {
            evpl_log_error("io_uring", "cannot create a ring: %s", strerror(-rc));
            free(u);
            return NULL;
        }
        u->ring = &u->own;
        u->owned = 1;
        /* the loop's mechanism watches an eventfd the kernel signals when
         * completion work is waiting (the ring fd of a DEFER_TASKRUN ring
         * does not wake a poller for it) */
        u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        rc = u->efd < 0 ? -errno : io_uring_register_eventfd(&u->own, u->efd);
        if (rc == 0) {
            evpl__event_init(&u->event, u->efd, own_ring_ready, NULL, NULL);
            u->event.flags = EVPL_EV_READ_INTEREST;
            rc = evpl__event_add(evpl, &u->event);
        }
        if (rc < 0) {
            evpl_log_error("io_uring", "cannot watch the ring: %s", strerror(-rc));
            if (u->efd >= 0) {
                close(u->efd);
            }
            io_uring_queue_exit(&u->own);
            free(u);
            return NULL;
        }
    }
    evpl->uring = u;
    ignore_req.complete = ignore_complete;
    u->poll = evpl_add_poll(evpl, NULL, NULL, poll_callback, u);
    evpl_log_debug("io_uring", "loop %p: %s ring", (void *) evpl, u->owned ? "own" : "shared");
    return u;
} /* evpl__uring_get */

#define DRAIN_MAX_MS 5000

void
evpl__uring_loop_cleanup(struct evpl *evpl)
{
    struct evpl_uring *u = evpl->uring;
    int ms = 0;

    /* requests of closed connections finish (they were cancelled and
     * their sockets shut down) before the buffers and ring go away */
    while ((u->pending || u->objects) && ms < DRAIN_MAX_MS) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000};
        struct io_uring_cqe *cqe;

        io_uring_submit_and_wait_timeout(u->ring, &cqe, 1, &ts, NULL);
        evpl__uring_process(evpl, u->ring);
        ms += 10;
    }
    if (u->pending || u->objects) {
        evpl_log_error("io_uring", "loop destroyed with %llu requests still in flight",
                       (unsigned long long) u->pending);
    }
    if (u->poll) {
        evpl_remove_poll(evpl, u->poll);
    }
    buffers_cleanup(evpl, u);
    if (u->owned) {
        evpl__event_remove(evpl, &u->event);
        io_uring_queue_exit(&u->own);
        close(u->efd);
    }
    evpl->uring = NULL;
    free(u);
} /* evpl__uring_loop_cleanup */
