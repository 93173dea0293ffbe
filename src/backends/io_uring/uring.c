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
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backends/io_uring/uring.h"

/* 2 MiB of receive space per loop either way (one default buffer) */
#define CHUNK_SIZE_INC   (256 * 1024) /* filled piece by piece: few needed */
#define CHUNKS_INC       8
#define CHUNK_SIZE_WHOLE (64 * 1024) /* one receive each */
#define CHUNKS_WHOLE     32
#define REFILL_RETRY_US  1000 /* first retry for memory; doubles up to 64 ms */
#define REFILL_RETRY_MAX 64000
#define FILE_SLOTS       4096 /* registered-file table per ring */
#define FIXED_BUFS       1024 /* registered slab buffers per ring (pinned) */

/* ---- availability ---- */

/* 1 or 0 once known; -1 until then (and after a failure that may pass:
 * out of descriptors or memory is no answer for the life of the process) */
static int available = -1;
static pthread_mutex_t available_lock = PTHREAD_MUTEX_INITIALIZER;

/* 1, 0, or -errno for a failure that may pass */
static int
probe(void)
{
    struct io_uring ring;
    struct io_uring_probe *p;
    static const int ops[] = {IORING_OP_RECV,    IORING_OP_SENDMSG, IORING_OP_ACCEPT,
                              IORING_OP_CONNECT, IORING_OP_SEND_ZC, IORING_OP_ASYNC_CANCEL,
                              IORING_OP_RECVMSG, IORING_OP_POLL_ADD};
    int rc, ok;

    rc = io_uring_queue_init(4, &ring, 0);
    if (rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM || rc == -EAGAIN || rc == -EINTR) {
        return rc;
    }
    if (rc < 0) {
        evpl_log_info("io_uring", "io_uring unavailable (%s): its protocols are not registered",
                      strerror(-rc));
        return 0;
    }
    p = io_uring_get_probe_ring(&ring);
    ok = p != NULL;
    /* SEND_ZC stands in for kernel 6.0, which brought multishot receive */
    for (size_t i = 0; p && i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (!io_uring_opcode_supported(p, ops[i])) {
            evpl_log_info("io_uring", "kernel lacks io_uring opcode %d: protocols not registered",
                          ops[i]);
            ok = 0;
        }
    }
    io_uring_free_probe(p);
    io_uring_queue_exit(&ring);
    return ok;
} /* probe */

static void *
probe_thread(void *arg)
{
    *(int *) arg = probe();
    return NULL;
} /* probe_thread */

int
evpl__uring_available(void)
{
    static int logged;
    int known = __atomic_load_n(&available, __ATOMIC_ACQUIRE), rc;
    sigset_t all, old;
    pthread_t th;

    if (known >= 0) {
        return known;
    }
    pthread_mutex_lock(&available_lock);
    if (available >= 0) {
        pthread_mutex_unlock(&available_lock);
        return available;
    }
    if (!evpl_shared->config->io_uring_enabled) {
        rc = 0;
    } else {
        /* on a thread of its own, signals blocked: the ring's teardown
         * interrupts a blocking call of the thread that made it (EINTR
         * from a read with SO_RCVTIMEO, seen on 6.18: helper-116); the
         * application's thread is not that one */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        if (pthread_create(&th, NULL, probe_thread, &rc) == 0) {
            pthread_join(th, NULL);
        } else {
            rc = probe(); /* no thread to be had: here, then */
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (rc < 0) {
        if (!logged) {
            evpl_log_error("io_uring",
                           "cannot create a ring (%s): io_uring protocols unavailable for now",
                           strerror(-rc));
            logged = 1;
        }
        pthread_mutex_unlock(&available_lock);
        return -1;
    }
    __atomic_store_n(&available, rc, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&available_lock);
    return rc;
} /* evpl__uring_available */

/* ---- submission ---- */

unsigned evpl__uring_refuse_sqes;

/* white-box tests: take one from the refusal count, if any is left */
static int
refuse_one(void)
{
    unsigned n = __atomic_load_n(&evpl__uring_refuse_sqes, __ATOMIC_RELAXED);

    while (n && !__atomic_compare_exchange_n(&evpl__uring_refuse_sqes, &n, n - 1, 0,
                                             __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return n != 0;
} /* refuse_one */

struct io_uring_sqe *
evpl__uring_sqe(struct evpl_uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(u->ring);

    if (!sqe) {
        io_uring_submit(u->ring); /* queue full: hand it to the kernel */
        sqe = io_uring_get_sqe(u->ring);
    }
    if (__builtin_expect(__atomic_load_n(&evpl__uring_refuse_sqes, __ATOMIC_RELAXED) != 0, 0) &&
        sqe && refuse_one()) {
        io_uring_prep_nop(sqe); /* the entry goes out as a no-op */
        io_uring_sqe_set_data64(sqe, 0);
        sqe = NULL;
    }
    if (!sqe && !u->refusing) {
        evpl_log_error("io_uring", "no submission queue entry available");
    }
    u->refusing = sqe == NULL; /* logged once per stall */
    return sqe;
} /* evpl__uring_sqe */

static void ignore_complete(struct evpl *evpl, struct evpl_uring_req *req, int res, uint32_t flags);

/* cancels' own completions (read-only: shared by every loop) */
static const struct evpl_uring_req ignore_req = {.complete = ignore_complete};

static void
ignore_complete(struct evpl *evpl, struct evpl_uring_req *req, int res, uint32_t flags)
{
    struct evpl_uring *u = evpl->uring;

    u->pending--;
} /* ignore_complete */

void
evpl__uring_cancel(struct evpl_uring *u, struct evpl_uring_req *req)
{
    struct io_uring_sqe *sqe = evpl__uring_start(u, (struct evpl_uring_req *) &ignore_req);

    if (sqe) {
        io_uring_prep_cancel(sqe, req, 0);
    }
} /* evpl__uring_cancel */

/* ---- registered files ---- */

static void
files_init(struct evpl_uring *u)
{
    struct io_uring_rsrc_register reg;
    struct rlimit rl;
    uint32_t n = FILE_SLOTS;

    /* the kernel refuses a table larger than the descriptor limit;
     * liburing's helper would raise the process's limit to fit (not ours
     * to change), so the table is registered here directly */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n) {
        n = (uint32_t) rl.rlim_cur;
    }
    memset(&reg, 0, sizeof(reg));
    reg.nr = n;
    reg.flags = IORING_RSRC_REGISTER_SPARSE;
    if (n == 0 || syscall(__NR_io_uring_register, u->ring->ring_fd, IORING_REGISTER_FILES2, &reg,
                          sizeof(reg)) < 0) {
        return; /* plain descriptors then */
    }
    u->free_slots = evpl__zalloc(n * sizeof(*u->free_slots));
    for (uint32_t i = 0; i < n; i++) {
        u->free_slots[i] = n - 1 - i;
    }
    u->nfree_slots = n;
} /* files_init */

int
evpl__uring_file_add(struct evpl_uring *u, int fd)
{
    uint32_t slot;

    if (!u->nfree_slots) {
        return -1;
    }
    slot = u->free_slots[u->nfree_slots - 1];
    if (io_uring_register_files_update(u->ring, slot, &fd, 1) != 1) {
        return -1;
    }
    u->nfree_slots--;
    return (int) slot;
} /* evpl__uring_file_add */

void
evpl__uring_file_remove(struct evpl_uring *u, int slot)
{
    int none = -1;

    if (slot < 0) {
        return;
    }
    /* requests still holding the file keep it until they complete */
    (void) io_uring_register_files_update(u->ring, (unsigned) slot, &none, 1);
    u->free_slots[u->nfree_slots++] = (uint32_t) slot;
} /* evpl__uring_file_remove */

/* ---- registered buffers ---- */

static void
fixed_init(struct evpl_uring *u)
{
    if (io_uring_register_buffers_sparse(u->ring, FIXED_BUFS) < 0) {
        return; /* (RLIMIT_MEMLOCK, old kernel): plain requests */
    }
    u->fixed_ok = 1;
    u->fixed_keys = evpl__zalloc(2 * FIXED_BUFS * sizeof(*u->fixed_keys));
    u->fixed_vals = evpl__zalloc(2 * FIXED_BUFS * sizeof(*u->fixed_vals));
} /* fixed_init */

int
evpl__uring_fixed_buffer(struct evpl_uring *u, const void *data, uint64_t len)
{
    struct evpl_buffer *b;
    uint32_t h;

    if (!u->fixed_ok || !(b = evpl__mem_buffer_of(data, len))) {
        return -1; /* not within one of the pool's buffers */
    }
    h = (uint32_t) (((uintptr_t) b >> 6) * 2654435761u) & (2 * FIXED_BUFS - 1);
    while (u->fixed_keys[h]) {
        if (u->fixed_keys[h] == b) {
            return (int) u->fixed_vals[h];
        }
        h = (h + 1) & (2 * FIXED_BUFS - 1);
    }
    if (u->fixed_used == FIXED_BUFS) {
        return -1;
    }
    {
        struct iovec iov = {b->data, evpl__buffer_size};
        __u64 tag = 0;

        /* pins the buffer's pages once; the kernel skips that per request */
        if (io_uring_register_buffers_update_tag(u->ring, u->fixed_used, &iov, &tag, 1) != 1) {
            u->fixed_ok = 0; /* e.g. over RLIMIT_MEMLOCK: stop trying */
            return -1;
        }
    }
    u->fixed_keys[h] = b;
    u->fixed_vals[h] = u->fixed_used;
    return (int) u->fixed_used++;
} /* evpl__uring_fixed_buffer */

/* ---- receive buffers ---- */

static int
chunk_post(struct evpl *evpl, struct evpl_uring_pool *p, uint32_t bid)
{
    struct evpl_iovec *ch = &p->chunks[bid];

    if (evpl_iovec_alloc(evpl, p->chunk_size, 64, 1, 0, ch) != 1) {
        ch->ref = NULL;
        return -1;
    }
    p->chunk_off[bid] = 0;
    evpl->mem.pooled++;
    io_uring_buf_ring_add(p->br, ch->data, p->chunk_size, (unsigned short) bid,
                          io_uring_buf_ring_mask(p->br_entries), 0);
    io_uring_buf_ring_advance(p->br, 1);
    return 0;
} /* chunk_post */

static void
wake_starved(struct evpl *evpl, struct evpl_uring_pool *p)
{
    while (p->starved) {
        struct evpl_uring_waiter *w = p->starved;

        evpl__uring_unwait(p, w);
        w->rearm(evpl, w);
    }
} /* wake_starved */

/* Post chunks in the empty slots while buffer memory allows. */
static void
post_missing(struct evpl *evpl, struct evpl_uring_pool *p)
{
    for (uint32_t bid = 0; bid < p->nchunks && p->missing; bid++) {
        if (!p->chunks[bid].ref) {
            if (chunk_post(evpl, p, bid) < 0) {
                break;
            }
            p->missing--;
        }
    }
} /* post_missing */

static void
refill(struct evpl *evpl, struct evpl_timer *timer)
{
    struct evpl_uring_pool *p = container_of(timer, struct evpl_uring_pool, refill_timer);

    post_missing(evpl, p);
    if (p->missing) {
        p->refill_us = p->refill_us ? p->refill_us * 2 : REFILL_RETRY_US;
        if (p->refill_us > REFILL_RETRY_MAX) {
            p->refill_us = REFILL_RETRY_MAX;
        }
        evpl_add_oneshot_timer(evpl, &p->refill_timer, refill, p->refill_us);
    } else {
        p->refill_us = 0;
    }
    if (p->missing < p->nchunks) {
        wake_starved(evpl, p);
    }
} /* refill */

static void
chunk_used_up(struct evpl *evpl, struct evpl_uring_pool *p, uint32_t bid)
{
    p->chunks[bid].ref = NULL;
    evpl->mem.pooled--;
    if (chunk_post(evpl, p, bid) < 0) {
        /* out of buffer memory: receives stop (TCP pushes back on the
         * peer) until the timer finds memory again; nothing is lost */
        if (p->missing++ == 0) {
            evpl_log_error("io_uring", "no buffer memory for receives; retrying");
            p->refill_us = REFILL_RETRY_US;
            evpl_add_oneshot_timer(evpl, &p->refill_timer, refill, p->refill_us);
        }
    }
} /* chunk_used_up */

void
evpl__uring_recv_data(struct evpl *evpl, struct evpl_uring_pool *p, int res, uint32_t flags,
                      struct evpl_iovec *iov)
{
    uint32_t bid = flags >> IORING_CQE_BUFFER_SHIFT;
    struct evpl_iovec *ch = &p->chunks[bid];

    iov->data = (char *) ch->data + p->chunk_off[bid];
    iov->length = (unsigned int) res;
    iov->pad = 0;
    if (flags & IORING_CQE_F_BUF_MORE) {
        /* the kernel goes on filling the rest of this chunk */
        p->chunk_off[bid] += (uint32_t) res;
        evpl_iovec_take_ref(iov, ch->ref);
    } else {
        iov->ref = ch->ref; /* the chunk's reference moves to the data */
        chunk_used_up(evpl, p, bid);
    }
} /* evpl__uring_recv_data */

int
evpl__uring_pool_exhausted(struct evpl *evpl, struct evpl_uring_pool *p)
{
    post_missing(evpl, p);
    return p->missing == p->nchunks;
} /* evpl__uring_pool_exhausted */

void
evpl__uring_wait_buffers(struct evpl *evpl, struct evpl_uring_pool *p, struct evpl_uring_waiter *w)
{
    if (p->missing < p->nchunks) {
        w->rearm(evpl, w); /* buffers were posted since the kernel ran dry */
        return;
    }
    if (w->waiting) {
        return;
    }
    w->waiting = 1;
    w->prev = NULL;
    w->next = p->starved;
    if (w->next) {
        w->next->prev = w;
    }
    p->starved = w;
} /* evpl__uring_wait_buffers */

void
evpl__uring_unwait(struct evpl_uring_pool *p, struct evpl_uring_waiter *w)
{
    if (!w->waiting) {
        return;
    }
    w->waiting = 0;
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        p->starved = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    }
} /* evpl__uring_unwait */

static int
pool_init(struct evpl *evpl, struct evpl_uring *u, struct evpl_uring_pool *p, int kind)
{
    struct io_uring_buf_reg reg;
    int rc;

    p->bgid = (uint16_t) kind;
    if (kind == EVPL_URING_POOL_STREAM) {
        p->br_entries = CHUNKS_WHOLE; /* the ring's size; incremental posts fewer */
    } else {
        /* a datagram needs a whole chunk: room for two batches */
        uint32_t want = 2 * evpl_shared->config->max_datagram_batch;

        p->br_entries = 16;
        while (p->br_entries < want && p->br_entries < 256) {
            p->br_entries *= 2;
        }
    }
    p->br_bytes = p->br_entries * sizeof(struct io_uring_buf);
    p->br = mmap(NULL, p->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (p->br == MAP_FAILED) {
        p->br = NULL;
        return -errno;
    }
    io_uring_buf_ring_init(p->br);
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uintptr_t) p->br;
    reg.ring_entries = p->br_entries;
    reg.bgid = p->bgid;
    rc = -EINVAL;
    if (kind == EVPL_URING_POOL_STREAM) {
        /* a stream may take any piece of a chunk; a datagram may not (it
         * would be cut at the chunk's end) */
        reg.pad = IOU_PBUF_RING_INC; /* the flags field of newer kernels */
        rc = io_uring_register_buf_ring(u->ring, &reg, 0);
        p->inc = rc == 0;
    }
    if (rc < 0) {
        reg.pad = 0;
        rc = io_uring_register_buf_ring(u->ring, &reg, 0);
    }
    if (rc < 0) {
        munmap(p->br, p->br_bytes);
        p->br = NULL;
        return rc;
    }
    if (kind == EVPL_URING_POOL_STREAM) {
        p->chunk_size = p->inc ? CHUNK_SIZE_INC : CHUNK_SIZE_WHOLE;
        p->nchunks = p->inc ? CHUNKS_INC : CHUNKS_WHOLE;
    } else {
        p->chunk_size = EVPL_URING_DGRAM_OVERHEAD + evpl_shared->config->max_datagram_size;
        p->nchunks = p->br_entries;
    }
    if (p->chunk_size > evpl__buffer_size) {
        p->chunk_size = (uint32_t) evpl__buffer_size;
    }
    p->chunks = evpl__zalloc(p->br_entries * sizeof(*p->chunks));
    p->chunk_off = evpl__zalloc(p->br_entries * sizeof(*p->chunk_off));
    p->missing = p->nchunks;
    refill(evpl, &p->refill_timer);
    return 0;
} /* pool_init */

struct evpl_uring_pool *
evpl__uring_pool(struct evpl *evpl, struct evpl_uring *u, int kind)
{
    struct evpl_uring_pool *p = &u->pools[kind];
    int rc;

    if (p->br) {
        return p;
    }
    rc = pool_init(evpl, u, p, kind);
    if (rc < 0) {
        evpl_log_error("io_uring", "cannot register receive buffers: %s", strerror(-rc));
        return NULL;
    }
    evpl_log_debug("io_uring", "loop %p: group %u, %u receive chunks of %u bytes%s", (void *) evpl,
                   p->bgid, p->nchunks, p->chunk_size, p->inc ? " (incremental)" : "");
    return p;
} /* evpl__uring_pool */

static void
pool_cleanup(struct evpl *evpl, struct evpl_uring *u, struct evpl_uring_pool *p)
{
    if (!p->br) {
        return;
    }
    evpl_remove_timer(evpl, &p->refill_timer);
    io_uring_unregister_buf_ring(u->ring, p->bgid);
    for (uint32_t bid = 0; bid < p->br_entries; bid++) {
        if (p->chunks[bid].ref) {
            evpl_iovec_release(evpl, &p->chunks[bid]);
            evpl->mem.pooled--;
        }
    }
    free(p->chunks);
    free(p->chunk_off);
    munmap(p->br, p->br_bytes);
    p->br = NULL;
} /* pool_cleanup */

/* ---- reaping ---- */

int
evpl__uring_reap(struct evpl *evpl, struct io_uring *ring)
{
    int n;

    if (evpl__uring_need_enter(ring)) {
        io_uring_submit_and_get_events(ring);
    }
    n = evpl__uring_process(evpl, ring);
    if (n > 0) {
        evpl_activity(evpl);
    }
    return n;
} /* evpl__uring_reap */

static void
watch_ready(struct evpl *evpl, struct evpl_event *event)
{
    struct evpl_uring_watch *w = container_of(event, struct evpl_uring_watch, event);
    uint64_t count;

    /* reset the counter first: a signal after this read is a new edge */
    (void) read(w->efd, &count, sizeof(count));
    evpl__event_clear(evpl, event, EVPL_EV_READABLE);
    if (w->reap) {
        w->reap(evpl, w); /* may free w */
        return;
    }
    if (evpl__uring_unreaped(w->ring, evpl__uring_reap(evpl, w->ring))) {
        evpl__event_set(evpl, event, EVPL_EV_READABLE); /* the next pass */
    }
} /* watch_ready */

int
evpl__uring_unreaped(struct io_uring *ring, int reaped)
{
    /* completions of requests made while reaping, completions the kernel
     * holds back because the completion queue was full, and deferred work
     * a reap left (one enter runs only part of it: 20 items on recent
     * kernels): none of them signals the eventfd again.  The last only
     * after a reap that found completions: the flag can also be left set
     * with nothing behind it (the kernel raced with itself setting it),
     * and trusting it then would keep the loop from ever sleeping. */
    unsigned flags = IORING_SQ_CQ_OVERFLOW;

    if (reaped > 0 && (ring->flags & IORING_SETUP_TASKRUN_FLAG)) {
        flags |= IORING_SQ_TASKRUN;
    }
    return io_uring_cq_ready(ring) != 0 || (IO_URING_READ_ONCE(*ring->sq.kflags) & flags) != 0;
} /* evpl__uring_unreaped */

int
evpl__uring_watch(struct evpl *evpl, struct evpl_uring_watch *w, struct io_uring *ring)
{
    int rc;

    w->ring = ring;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    rc = w->efd < 0 ? -errno : io_uring_register_eventfd(ring, w->efd);
    if (rc == 0) {
        evpl__event_init(&w->event, w->efd, watch_ready, NULL, NULL);
        w->event.flags = EVPL_EV_READ_INTEREST;
        rc = evpl__event_add(evpl, &w->event);
    }
    if (rc < 0 && w->efd >= 0) {
        close(w->efd);
    }
    return rc;
} /* evpl__uring_watch */

void
evpl__uring_unwatch(struct evpl *evpl, struct evpl_uring_watch *w)
{
    evpl__event_remove(evpl, &w->event);
    close(w->efd);
} /* evpl__uring_unwatch */

static void
poll_callback(struct evpl *evpl, void *private_data)
{
    struct evpl_uring *u = private_data;

    evpl__uring_reap(evpl, u->ring);
} /* poll_callback */

/*
 * An own ring's eventfd only wakes a sleeping loop.  While the loop polls
 * (it reaps the ring on every pass), the kernel is told not to signal it:
 * each signal would cost a wake-up in epoll, an event, and a read() of the
 * counter, per completion (a flag in the shared ring, no system call).
 */
static void
poll_enter(struct evpl *evpl, void *private_data)
{
    struct evpl_uring *u = private_data;

    if (u->owned && u->ring->cq.kflags) {
        (void) __atomic_or_fetch(u->ring->cq.kflags, (unsigned) IORING_CQ_EVENTFD_DISABLED,
                                 __ATOMIC_RELAXED);
    }
} /* poll_enter */

static void
poll_exit(struct evpl *evpl, void *private_data)
{
    struct evpl_uring *u = private_data;

    if (u->owned && u->ring->cq.kflags && !io_uring_cq_eventfd_enabled(u->ring)) {
        /* a locked read-modify-write: the flag is visible before the
         * ring is looked at again (a full barrier, which TSan also knows) */
        (void) __atomic_and_fetch(u->ring->cq.kflags, ~(unsigned) IORING_CQ_EVENTFD_DISABLED,
                                  __ATOMIC_SEQ_CST);
        /* one more reap before the loop sleeps, whatever the ring shows
         * now: a completion posted from another CPU (io-wq) while the
         * flag changed may have found it still off, with its tail not yet
         * visible here; by the next pass either it is in the ring or the
         * kernel has seen the flag on and signals */
        evpl__event_set(evpl, &u->watch->event, EVPL_EV_READABLE);
    }
} /* poll_exit */

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
    if (evpl__uring_available() <= 0) {
        return NULL;
    }
    u = evpl__zalloc(sizeof(*u));
    u->ring = evpl__mech_uring_ring(evpl);
    if (!u->ring) {
        unsigned entries = evpl_shared->config->io_uring_entries;

        rc = evpl__uring_queue_init(entries, &u->own, 0);
        if (rc < 0) {
            evpl_log_error("io_uring", "cannot create a ring: %s", strerror(-rc));
            free(u);
            return NULL;
        }
        u->ring = &u->own;
        u->owned = 1;
        u->watch = evpl__zalloc(sizeof(*u->watch));
        rc = evpl__uring_watch(evpl, u->watch, &u->own);
        if (rc < 0) {
            evpl_log_error("io_uring", "cannot watch the ring: %s", strerror(-rc));
            io_uring_queue_exit(&u->own);
            free(u->watch);
            free(u);
            return NULL;
        }
    }
    evpl->uring = u;
    files_init(u);
    fixed_init(u);
    u->poll = evpl__add_completion_poll(evpl, poll_enter, poll_exit, poll_callback, u);
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
    if (u->pending) {
        /* a receive that picked a chunk may still write into it: leave the
         * chunks referenced (leaked, reported) rather than reuse them */
        for (int k = 0; k < EVPL_URING_POOLS; k++) {
            evpl->mem.pooled -= u->pools[k].br ? u->pools[k].nchunks - u->pools[k].missing : 0;
        }
    } else {
        for (int k = 0; k < EVPL_URING_POOLS; k++) {
            pool_cleanup(evpl, u, &u->pools[k]);
        }
    }
    /* registered files and buffers go with the ring (the mechanism's is
     * destroyed with the loop right after this): unregistering them first
     * would wait for the kernel's deferred resource release, about a
     * second per loop on Linux 6.1 */
    free(u->fixed_keys);
    free(u->fixed_vals);
    free(u->free_slots);
    if (u->owned) {
        evpl__uring_unwatch(evpl, u->watch);
        io_uring_queue_exit(&u->own);
        free(u->watch);
    }
    evpl->uring = NULL;
    free(u);
} /* evpl__uring_loop_cleanup */
