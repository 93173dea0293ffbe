/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The block API (evpl_block.h) over the backends (block.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"

/* Debug builds: a queue is used with the loop that opened it, on that
 * loop's thread (block.md §2; the loop argument alone was checked, so a
 * queue of another thread's loop went unnoticed: helper-114). */
#ifndef NDEBUG
#define QUEUE_OWNER_ONLY(evpl, q)                                                               \
    do {                                                                                        \
        EVPL_OWNER_ONLY(evpl);                                                                  \
        if (unlikely((q) && (q)->evpl != (evpl))) {                                             \
            evpl_bug("block", "%s: the queue belongs to another loop (block.md §2)", __func__); \
        }                                                                                       \
    } while (0)
#else
#define QUEUE_OWNER_ONLY(evpl, q) ((void) (evpl), (void) (q))
#endif
#include "core/next_pass.h"

#define MAX_REQUEST_FILE (4u << 20)
#define ZERO_CHUNK_MAX   (1u << 20)

#ifdef HAVE_IO_URING
extern const struct evpl_block_backend evpl_block_io_uring;
extern const struct evpl_block_backend evpl_block_io_uring_nvme;
#endif
#ifdef HAVE_LIBAIO
extern const struct evpl_block_backend evpl_block_libaio;
#endif
#ifdef HAVE_VFIO
extern const struct evpl_block_backend evpl_block_vfio;
#endif

static const struct evpl_block_backend *
backend_of(enum evpl_block_protocol_id id)
{
    const struct evpl_block_backend *b = NULL;

    switch (id) {
#ifdef HAVE_IO_URING
        case EVPL_BLOCK_PROTOCOL_IO_URING:
            b = &evpl_block_io_uring;
            break;
        case EVPL_BLOCK_PROTOCOL_IO_URING_NVME:
            b = &evpl_block_io_uring_nvme;
            break;
#endif
#ifdef HAVE_LIBAIO
        case EVPL_BLOCK_PROTOCOL_LIBAIO:
            b = &evpl_block_libaio;
            break;
#endif
#ifdef HAVE_VFIO
        case EVPL_BLOCK_PROTOCOL_VFIO:
            b = &evpl_block_vfio;
            break;
#endif
        default:
            break;
    }
    return b && (!b->available || b->available() > 0) ? b : NULL;
} /* backend_of */

/* ---- devices ---- */

static pthread_mutex_t devices_lock = PTHREAD_MUTEX_INITIALIZER;
static struct evpl_block_device *devices;

int
evpl__block_open_file(struct evpl_block_device *dev, const char *path)
{
    struct stat st;
    int fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);

    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &st) < 0) {
        int rc = -errno;

        close(fd);
        return rc;
    }
    dev->sector = 512;
    if (S_ISBLK(st.st_mode)) {
        uint64_t bytes = 0;
        int ssz = 0;

        if (ioctl(fd, BLKGETSIZE64, &bytes) < 0) {
            int rc = -errno;

            close(fd);
            return rc;
        }
        if (ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz > 0) {
            dev->sector = (uint32_t) ssz;
        }
        dev->size = bytes;
        dev->st_dev = st.st_rdev;
        dev->st_ino = 0;
    } else if (S_ISREG(st.st_mode)) {
#ifdef STATX_DIOALIGN
        struct statx sx;

        /* O_DIRECT's offset alignment, from the file system: 4096 on a
         * device of 4 KiB sectors, where 512-aligned I/O fails with EINVAL
         * (helper-114); 512 when the kernel does not say (before 6.1) */
        if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
            (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align > 512 &&
            sx.stx_dio_offset_align <= 65536 &&
            (sx.stx_dio_offset_align & (sx.stx_dio_offset_align - 1)) == 0) {
            dev->sector = sx.stx_dio_offset_align;
        }
#endif
        dev->size = (uint64_t) st.st_size;
        dev->st_dev = st.st_dev;
        dev->st_ino = st.st_ino;
    } else {
        close(fd);
        return -EINVAL;
    }
    dev->fd = fd;
    dev->max_request = MAX_REQUEST_FILE;
    return 0;
} /* evpl__block_open_file */

void
evpl__block_close_file(struct evpl_block_device *dev)
{
    close(dev->fd);
} /* evpl__block_close_file */

/* A label value in the text exposition format: \\, \" and \n escaped. */
static char *
label_escape(const char *s)
{
    char *out = evpl__zalloc(2 * strlen(s) + 1), *o = out;

    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            *o++ = '\\';
            *o++ = *s;
        } else if (*s == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else {
            *o++ = *s;
        }
    }
    return out;
} /* label_escape */

static void
dev_free(struct evpl_block_device *dev)
{
    free(dev->uri);
    free(dev->label);
    free(dev);
} /* dev_free */

EVPL_API struct evpl_block_device *
evpl_block_open_device(enum evpl_block_protocol_id protocol, const char *uri)
{
    const struct evpl_block_backend *b;
    struct evpl_block_device *dev, *d;
    int rc;

    evpl_auto_init();
    if ((unsigned) protocol >= EVPL_NUM_BLOCK_PROTOCOL || !uri) {
        evpl_log_error("block", "open %s: invalid protocol %d", uri ? uri : "(null)",
                       (int) protocol);
        return NULL;
    }
    b = backend_of(protocol);
    if (!b) {
        evpl_log_error("block", "open %s: block protocol %d is not available", uri, (int) protocol);
        return NULL;
    }
    dev = evpl__zalloc(sizeof(*dev));
    dev->backend = b;
    dev->fd = -1;
    dev->uri = strdup(uri);
    dev->label = label_escape(uri);
    rc = b->open(dev, uri);
    if (rc < 0) {
        evpl_log_error("block", "open %s (%s): %s", uri, b->name, strerror(-rc));
        dev_free(dev);
        return NULL;
    }
    pthread_mutex_lock(&devices_lock);
    for (d = devices; d; d = d->next) {
        if (d->st_dev == dev->st_dev && d->st_ino == dev->st_ino) {
            break;
        }
    }
    if (d) {
        pthread_mutex_unlock(&devices_lock);
        evpl_log_error("block", "open %s: the device is already open in this process (as %s)", uri,
                       d->uri);
        b->close(dev);
        dev_free(dev);
        return NULL;
    }
    dev->next = devices;
    devices = dev;
    pthread_mutex_unlock(&devices_lock);
    evpl_log_debug("block", "opened %s (%s): %llu bytes, sector %u", uri, b->name,
                   (unsigned long long) dev->size, dev->sector);
    return dev;
} /* evpl_block_open_device */

EVPL_API void
evpl_block_close_device(struct evpl_block_device *dev)
{
    struct evpl_block_device **pp;

    if (!dev) {
        return;
    }
    if (atomic_load(&dev->queues)) {
        evpl_bug("block", "evpl_block_close_device(%s) with %d queues open", dev->uri,
                 atomic_load(&dev->queues));
    }
    pthread_mutex_lock(&devices_lock);
    for (pp = &devices; *pp; pp = &(*pp)->next) {
        if (*pp == dev) {
            *pp = dev->next;
            break;
        }
    }
    pthread_mutex_unlock(&devices_lock);
    dev->backend->close(dev);
    dev_free(dev);
} /* evpl_block_close_device */

EVPL_API uint64_t
evpl_block_size(struct evpl_block_device *dev)
{
    return dev->size;
} /* evpl_block_size */

EVPL_API uint64_t
evpl_block_max_request_size(struct evpl_block_device *dev)
{
    return dev->max_request;
} /* evpl_block_max_request_size */

EVPL_API uint32_t
evpl_block_sector_size(struct evpl_block_device *dev)
{
    return dev->sector;
} /* evpl_block_sector_size */

/* ---- queues ---- */

static void q_free(struct evpl_block_queue *q);
static void queue_unlink(struct evpl_block_queue *q);

/* A request refused for its arguments (no request was made for it). */
struct evpl_block_refused {
    struct evpl_block_refused *next;
    evpl_block_callback_t callback;
    void *private_data;
    int status;
};

/* The oldest of them ends: its callback runs (which may close the queue). */
static void
refused_end(struct evpl *evpl, struct evpl_block_queue *q)
{
    struct evpl_block_refused *f = q->refused_head;
    evpl_block_callback_t callback = f->callback;
    void *private_data = f->private_data;
    int status = f->status;

    q->refused_head = f->next;
    if (!f->next) {
        q->refused_tail = NULL;
    }
    q->refused_n--;
    free(f);
    callback(evpl, status, private_data);
} /* refused_end */

/* Complete the refused requests there were on entry (both kinds), oldest
 * first; a callback may close the queue (it is then freed here, after the
 * last one).  Requests its callbacks get refused wait for a later pass: a
 * callback that retries what keeps being refused must not spin in here,
 * where nothing is reaped that could end the refusal. */
static void
fail_run(struct evpl *evpl, void *arg)
{
    struct evpl_block_queue *q = arg;
    uint64_t n = q->failed.n, m = q->refused_n;
    struct evpl_block_req *r;

    q->failing++;
    q->fail_pass = evpl__pass_id(evpl);
    while (m-- && !q->dead && q->refused_head) {
        refused_end(evpl, q);
    }
    while (n-- && !q->dead && (r = evpl__block_fifo_pop(&q->failed))) {
        evpl__block_complete(evpl, r, r->fail_res);
    }
    if (--q->failing == 0 && q->dead) {
        q_free(q);
        return;
    }
    if ((q->failed.head || q->refused_head) && !q->failing && !q->dead) {
        evpl__defer_next(evpl, &q->fail_deferral);
    }
} /* fail_run */

/* See that fail_run completes what was refused: in this pass, unless it ran
 * in this pass already (the refusal then comes from what its callbacks did,
 * by way of a backend's deferred submission: retried in the same pass, that
 * would never end). */
static void
fail_soon(struct evpl *evpl, struct evpl_block_queue *q)
{
    if (q->failing || q->fail_deferral.armed) {
        return; /* fail_run, now or on the next pass, sees to it */
    }
    if (q->fail_pass == evpl__pass_id(evpl)) {
        evpl__defer_next(evpl, &q->fail_deferral);
    } else {
        evpl_defer(evpl, &q->fail_deferral);
    }
} /* fail_soon */

void
evpl__block_complete_later(struct evpl *evpl, struct evpl_block_req *r, int64_t res)
{
    struct evpl_block_queue *q = r->queue;

    r->fail_res = res;
    evpl__block_fifo_push(&q->failed, r);
    fail_soon(evpl, q);
} /* evpl__block_complete_later */

EVPL_API struct evpl_block_queue *
evpl_block_open_queue(struct evpl *evpl, struct evpl_block_device *dev)
{
    EVPL_OWNER_ONLY(evpl);
    struct evpl_block_queue *q = evpl__zalloc(sizeof(*q));
    int rc;

    q->dev = dev;
    q->evpl = evpl;
    evpl_deferral_init(&q->fail_deferral, fail_run, q);
    rc = dev->backend->queue_open(evpl, q);
    if (rc < 0) {
        evpl_log_error("block", "queue on %s: %s", dev->uri, strerror(-rc));
        free(q);
        return NULL;
    }
    atomic_fetch_add(&dev->queues, 1);
    q->loop_next = evpl->block_queues;
    if (q->loop_next) {
        q->loop_next->loop_prev = q;
    }
    evpl->block_queues = q;
    return q;
} /* evpl_block_open_queue */

static void
queue_unlink(struct evpl_block_queue *q)
{
    if (q->loop_prev) {
        q->loop_prev->loop_next = q->loop_next;
    } else if (q->evpl->block_queues == q) {
        q->evpl->block_queues = q->loop_next;
    }
    if (q->loop_next) {
        q->loop_next->loop_prev = q->loop_prev;
    }
    q->loop_next = q->loop_prev = NULL;
} /* queue_unlink */

/* evpl_destroy: the queues the application left open (block.md §2 makes
 * closing them its job) are closed here, their I/O waited for, rather than
 * leaving the kernel writing into memory nobody owns any more. */
void
evpl__block_loop_cleanup(struct evpl *evpl)
{
    while (evpl->block_queues) {
        struct evpl_block_queue *q = evpl->block_queues;

        evpl_log_error("block", "evpl_destroy: a queue on %s is still open; closing it",
                       q->dev->uri);
        evpl_block_close_queue(evpl, q);
    }
} /* evpl__block_loop_cleanup */

EVPL_API void
evpl_block_close_queue(struct evpl *evpl, struct evpl_block_queue *q)
{
    QUEUE_OWNER_ONLY(evpl, q);
    if (!q || q->closing) {
        return; /* (again, from a callback that the close runs) */
    }
    q->closing = 1;
    /* requests refused for their arguments, and those a backend refused,
     * end now; then the memory of requests in flight is the caller's: wait
     * until the kernel is done with it (their callbacks run) */
    queue_unlink(q);
    while (q->refused_head || q->outstanding) {
        /* (callbacks run here may make more of either: both are done
         * before the queue goes) */
        struct evpl_block_req *r;

        if (q->refused_head) {
            refused_end(evpl, q);
        } else if ((r = evpl__block_fifo_pop(&q->failed))) {
            evpl__block_complete(evpl, r, r->fail_res);
        } else {
            q->dev->backend->drain(evpl, q); /* returns with only refused ones left */
        }
    }
    evpl_remove_deferral(evpl, &q->fail_deferral);
    q->dev->backend->queue_close(evpl, q);
    atomic_fetch_sub(&q->dev->queues, 1);
    if (q->failing) {
        q->dead = 1; /* closed from a refused request's callback */
        return;
    }
    q_free(q);
} /* evpl_block_close_queue */

static void
q_free(struct evpl_block_queue *q)
{
    while (q->free) {
        struct evpl_block_req *r = q->free;

        q->free = r->next;
        free(r);
    }
    if (q->zero_len) {
        evpl_iovec_release(q->evpl, &q->zero_iov);
    }
    free(q);
} /* q_free */

/* ---- requests ---- */

static struct evpl_block_req *
req_get(struct evpl_block_queue *q)
{
    struct evpl_block_req *r = q->free;

    if (r) {
        q->free = r->next;
    } else if (posix_memalign((void **) &r, 64, sizeof(*r)) != 0) {
        evpl_bug("block", "out of memory for a block request");
    }
    memset(r, 0, offsetof(struct evpl_block_req, iov));
    r->queue = q;
    return r;
} /* req_get */

static void
req_put(struct evpl_block_queue *q, struct evpl_block_req *r)
{
    r->next = q->free;
    q->free = r;
} /* req_put */

static inline unsigned
log2_bucket(uint64_t v)
{
    return v ? 63u - (unsigned) __builtin_clzll(v) : 0;
} /* log2_bucket */

static void
account(struct evpl_block_device *dev, unsigned op, uint64_t ns, uint64_t bytes)
{
    struct evpl_block_stats *s = &dev->stats;

    atomic_fetch_add_explicit(&s->count[op], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->lat_sum[op], ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->lat[op][log2_bucket(ns)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes_sum[op], bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes[op][log2_bucket(bytes)], 1, memory_order_relaxed);
} /* account */

static void
start(struct evpl *evpl, struct evpl_block_queue *q, struct evpl_block_req *r)
{
    q->outstanding++;
    atomic_fetch_add_explicit(&q->dev->stats.depth, 1, memory_order_relaxed);
    r->start_ns = evpl__hf_now_ns();
    q->dev->backend->submit(evpl, q, r);
} /* start */

static void zero_next(struct evpl *evpl, struct evpl_block_req *r);

void
evpl__block_complete(struct evpl *evpl, struct evpl_block_req *r, int64_t res)
{
    struct evpl_block_queue *q = r->queue;
    int status;

    if (res < 0) {
        status = (int) -res;
    } else if (r->op != EVPL_BLOCK_OP_FLUSH && (uint64_t) res != r->bytes) {
        status = EIO; /* short transfer: past the end of a file */
    } else {
        status = 0;
    }
    if (r->bounce) {
        if (status == 0 && r->op == EVPL_BLOCK_OP_READ) {
            uint64_t off = 0;

            for (int i = 0; i < r->niov; i++) {
                if (r->iov[i].iov_len) { /* an empty iovec may be {NULL, 0} */
                    memcpy(r->iov[i].iov_base, (char *) r->bounce + off, r->iov[i].iov_len);
                }
                off += r->iov[i].iov_len;
            }
        }
        if (!r->zeroes) {
            free(r->bounce);
        }
        r->bounce = NULL;
    }
    account(q->dev, r->op, evpl__hf_now_ns() - r->start_ns, r->bytes);
    atomic_fetch_sub_explicit(&q->dev->stats.depth, 1, memory_order_relaxed);
    q->outstanding--;
    if (r->zeroes) {
        if (status && !r->zero_status) {
            r->zero_status = status;
        }
        r->offset += r->bytes;
        if (!r->zero_status && r->offset < r->zero_end) {
            zero_next(evpl, r); /* the next chunk, serially */
            return;
        }
        status = r->zero_status;
    }
    evpl_activity(evpl);
    {
        /* the request goes back first: the callback may close the queue */
        evpl_block_callback_t cb = r->callback;
        void *priv = r->private_data;

        req_put(q, r);
        cb(evpl, status, priv);
    }
} /* evpl__block_complete */

/* Iovecs the kernel can use in place, or one aligned bounce buffer. */
static int
prepare_data(struct evpl_block_req *r, int is_write)
{
    int aligned = !(r->queue->dev->caps & EVPL_BLOCK_CAP_NO_BOUNCE) ? 1 : 2;

    if (aligned == 2) {
        r->kiov = r->iov; /* registered memory only: the backend checks */
        r->nkiov = r->niov;
        return 0;
    }

    for (int i = 0; i < r->niov; i++) {
        if (((uintptr_t) r->iov[i].iov_base | r->iov[i].iov_len) & (EVPL_BLOCK_ALIGN - 1)) {
            aligned = 0;
        }
    }
    if (aligned) {
        r->kiov = r->iov;
        r->nkiov = r->niov;
        return 0;
    }
    /* correct, slower: the caller's memory is not 4 KiB aligned */
    if (posix_memalign(&r->bounce, EVPL_BLOCK_ALIGN,
                       (r->bytes + EVPL_BLOCK_ALIGN - 1) & ~(uint64_t) (EVPL_BLOCK_ALIGN - 1))) {
        return -ENOMEM;
    }
    if (is_write) {
        uint64_t off = 0;

        for (int i = 0; i < r->niov; i++) {
            if (r->iov[i].iov_len) { /* an empty iovec may be {NULL, 0} */
                memcpy((char *) r->bounce + off, r->iov[i].iov_base, r->iov[i].iov_len);
            }
            off += r->iov[i].iov_len;
        }
    }
    r->bounce_iov.iov_base = r->bounce;
    r->bounce_iov.iov_len = r->bytes;
    r->kiov = &r->bounce_iov;
    r->nkiov = 1;
    return 0;
} /* prepare_data */

/* Arguments wrong in a way the kernel would not report clearly (or a
 * request with nothing to do on a backend that must not call back at
 * once): end the request through its callback with status, from fail_run
 * (never re-entrantly: later in this pass, or the next one), or when the
 * queue is closed, whichever comes first. */
static void
end_later(struct evpl *evpl, struct evpl_block_queue *q, evpl_block_callback_t callback,
          void *private_data, int status)
{
    struct evpl_block_refused *f = evpl__zalloc(sizeof(*f));

    f->callback = callback;
    f->private_data = private_data;
    f->status = status;
    if (q->refused_tail) {
        q->refused_tail->next = f;
    } else {
        q->refused_head = f;
    }
    q->refused_tail = f;
    q->refused_n++;
    fail_soon(evpl, q);
} /* end_later */

static void
rw(struct evpl *evpl, struct evpl_block_queue *q, const struct evpl_iovec *iov, int niov,
   uint64_t offset, int sync, int op, evpl_block_callback_t callback, void *private_data)
{
    struct evpl_block_req *r;
    uint64_t bytes = 0;

    if (niov < 1 || niov > EVPL_BLOCK_MAX_IOV || !iov) {
        evpl_log_error("block", "%s: %d iovecs (1..%d)", op ? "write" : "read", niov,
                       EVPL_BLOCK_MAX_IOV);
        end_later(evpl, q, callback, private_data, EINVAL);
        return;
    }
    r = req_get(q);
    for (int i = 0; i < niov; i++) {
        r->iov[i].iov_base = iov[i].data;
        r->iov[i].iov_len = iov[i].length;
        bytes += iov[i].length;
    }
    r->niov = niov;
    r->bytes = bytes;
    r->offset = offset;
    r->op = (uint8_t) op;
    r->sync = sync != 0;
    r->callback = callback;
    r->private_data = private_data;
    if (bytes > q->dev->max_request || (offset | bytes) & (q->dev->sector - 1)) {
        evpl_log_error("block",
                       "%s %s: %llu bytes at %llu: not whole sectors of %u, or more "
                       "than %llu bytes",
                       q->dev->uri, op ? "write" : "read", (unsigned long long) bytes,
                       (unsigned long long) offset, q->dev->sector,
                       (unsigned long long) q->dev->max_request);
        req_put(q, r);
        end_later(evpl, q, callback, private_data, EINVAL);
        return;
    }
    if (prepare_data(r, op == EVPL_BLOCK_OP_WRITE) < 0) {
        req_put(q, r);
        end_later(evpl, q, callback, private_data, ENOMEM);
        return;
    }
    start(evpl, q, r);
} /* rw */

EVPL_API void
evpl_block_read(struct evpl *evpl, struct evpl_block_queue *queue, struct evpl_iovec *iov, int niov,
                uint64_t offset, evpl_block_callback_t callback, void *private_data)
{
    QUEUE_OWNER_ONLY(evpl, queue);
    rw(evpl, queue, iov, niov, offset, 0, EVPL_BLOCK_OP_READ, callback, private_data);
} /* evpl_block_read */

EVPL_API void
evpl_block_write(struct evpl *evpl, struct evpl_block_queue *queue, const struct evpl_iovec *iov,
                 int niov, uint64_t offset, int sync, evpl_block_callback_t callback,
                 void *private_data)
{
    QUEUE_OWNER_ONLY(evpl, queue);
    rw(evpl, queue, iov, niov, offset, sync, EVPL_BLOCK_OP_WRITE, callback, private_data);
} /* evpl_block_write */

EVPL_API void
evpl_block_flush(struct evpl *evpl, struct evpl_block_queue *queue, evpl_block_callback_t callback,
                 void *private_data)
{
    QUEUE_OWNER_ONLY(evpl, queue);
    struct evpl_block_req *r = req_get(queue);

    r->op = EVPL_BLOCK_OP_FLUSH;
    r->callback = callback;
    r->private_data = private_data;
    start(evpl, queue, r);
} /* evpl_block_flush */

EVPL_API void
evpl_block_discard(struct evpl *evpl, struct evpl_block_queue *queue, uint64_t offset,
                   uint64_t length, evpl_block_callback_t callback, void *private_data)
{
    QUEUE_OWNER_ONLY(evpl, queue);
    struct evpl_block_req *r;

    if (!(queue->dev->caps & EVPL_BLOCK_CAP_DISCARD)) {
        /* a hint the file backends do not act on (spec: completes at once) */
        account(queue->dev, EVPL_BLOCK_OP_DISCARD, 0, length);
        callback(evpl, 0, private_data);
        return;
    }
    if (length == 0) {
        /* nothing for the device; a backend with discard calls back later
         * like for any other (block.md §3 rule 1) */
        account(queue->dev, EVPL_BLOCK_OP_DISCARD, 0, 0);
        end_later(evpl, queue, callback, private_data, 0);
        return;
    }
    if (((offset | length) & (queue->dev->sector - 1)) || length > UINT64_MAX - offset) {
        end_later(evpl, queue, callback, private_data, EINVAL); /* (or a range past 2^64) */
        return;
    }
    r = req_get(queue);
    r->op = EVPL_BLOCK_OP_DISCARD;
    r->offset = offset;
    r->bytes = length;
    r->callback = callback;
    r->private_data = private_data;
    start(evpl, queue, r);
} /* evpl_block_discard */

static void
zero_next(struct evpl *evpl, struct evpl_block_req *r)
{
    struct evpl_block_queue *q = r->queue;
    uint64_t n = r->zero_end - r->offset;

    if (r->native) {
        if (n > q->dev->max_zeroes) {
            n = q->dev->max_zeroes;
        }
        r->bytes = n;
        r->nkiov = 0;
        start(evpl, q, r);
        return;
    }
    if (n > q->zero_len) {
        n = q->zero_len;
    }
    r->bytes = n;
    r->kiov = r->iov;
    r->nkiov = 1;
    r->iov[0].iov_base = q->zero_iov.data;
    r->iov[0].iov_len = n;
    start(evpl, q, r);
} /* zero_next */

EVPL_API void
evpl_block_write_zeroes(struct evpl *evpl, struct evpl_block_queue *queue, uint64_t offset,
                        uint64_t length, evpl_block_callback_t callback, void *private_data)
{
    QUEUE_OWNER_ONLY(evpl, queue);
    struct evpl_block_req *r;

    if (length == 0) {
        /* at once, except on VFIO (block.md §3 rule 1 and §6 statement 5:
         * NVMe passthrough's native write-zeroes is our addition) */
        if (queue->dev->backend->id == EVPL_BLOCK_PROTOCOL_VFIO) {
            end_later(evpl, queue, callback, private_data, 0);
        } else {
            callback(evpl, 0, private_data);
        }
        return;
    }
    if (((offset | length) & (queue->dev->sector - 1)) || length > UINT64_MAX - offset) {
        end_later(evpl, queue, callback, private_data, EINVAL); /* (or a range past 2^64) */
        return;
    }
    if (queue->dev->caps & EVPL_BLOCK_CAP_ZEROES) {
        r = req_get(queue);
        r->op = EVPL_BLOCK_OP_WRITE; /* counted as a write (spec) */
        r->zeroes = 1;
        r->native = 1;
        r->offset = offset;
        r->zero_end = offset + length;
        r->callback = callback;
        r->private_data = private_data;
        zero_next(evpl, r);
        return;
    }
    if (!queue->zero_len) {
        /* chunked by at most 1 MiB, the request limit and the buffer size:
         * never one allocation of the whole range (upstream quirk 5).  A
         * slab buffer: registered memory, which VFIO can map */
        uint64_t len =
            queue->dev->max_request < ZERO_CHUNK_MAX ? queue->dev->max_request : ZERO_CHUNK_MAX;

        if (len > evpl_shared->config->buffer_size) {
            len = evpl_shared->config->buffer_size;
        }
        /* whole sectors and O_DIRECT-aligned (buffer_size need not be
         * whole pages; it is at least 4 KiB) */
        len -=
            len % (queue->dev->sector > EVPL_BLOCK_ALIGN ? queue->dev->sector : EVPL_BLOCK_ALIGN);
        if (len == 0 ||
            evpl_iovec_alloc(evpl, (unsigned) len, EVPL_BLOCK_ALIGN, 1, 0, &queue->zero_iov) != 1) {
            end_later(evpl, queue, callback, private_data, ENOMEM);
            return;
        }
        memset(queue->zero_iov.data, 0, len);
        queue->zero_len = len;
    }
    r = req_get(queue);
    r->op = EVPL_BLOCK_OP_WRITE;
    r->zeroes = 1;
    r->offset = offset;
    r->zero_end = offset + length;
    r->niov = 1;
    r->callback = callback;
    r->private_data = private_data;
    zero_next(evpl, r);
} /* evpl_block_write_zeroes */

/* ---- metrics ---- */

static const char *const op_names[EVPL_BLOCK_NOPS] = {"read", "write", "flush", "discard"};

static int
hist(char *buf, int size, int len, const char *name, struct evpl_block_device *d,
     _Atomic uint64_t (*buckets)[64], _Atomic uint64_t *sums, _Atomic uint64_t *counts)
{
    for (int op = 0; op < EVPL_BLOCK_NOPS; op++) {
        uint64_t cum = 0;

        for (int b = 0; b < 64; b++) {
            uint64_t v = atomic_load_explicit(&buckets[op][b], memory_order_relaxed);

            cum += v;
            if (!v && b != 63) {
                continue;
            }
            char le[32];

            if (b == 63) {
                snprintf(le, sizeof(le), "+Inf");
            } else {
                snprintf(le, sizeof(le), "%llu", (unsigned long long) ((2ull << b) - 1));
            }
            len += snprintf(buf + len, len < size ? (size_t) (size - len) : 0,
                            "%s_bucket{device=\"%s\",type=\"%s\",op=\"%s\",le=\"%s\"} %llu\n", name,
                            d->label, d->backend->name, op_names[op], le, (unsigned long long) cum);
        }
        len +=
            snprintf(buf + len, len < size ? (size_t) (size - len) : 0,
                     "%s_sum{device=\"%s\",type=\"%s\",op=\"%s\"} %llu\n"
                     "%s_count{device=\"%s\",type=\"%s\",op=\"%s\"} %llu\n",
                     name, d->label, d->backend->name, op_names[op],
                     (unsigned long long) atomic_load(&sums[op]), name, d->label, d->backend->name,
                     op_names[op], (unsigned long long) atomic_load(&counts[op]));
    }
    return len;
} /* hist */

int
evpl__block_metrics(char *buf, int size)
{
    int len = 0;

    pthread_mutex_lock(&devices_lock);
    len += snprintf(buf, (size_t) size,
                    "# HELP evpl_block_latency_nanoseconds Block request latency.\n"
                    "# TYPE evpl_block_latency_nanoseconds histogram\n");
    for (struct evpl_block_device *d = devices; d; d = d->next) {
        len = hist(buf, size, len, "evpl_block_latency_nanoseconds", d, d->stats.lat,
                   d->stats.lat_sum, d->stats.count);
    }
    len += snprintf(buf + len, len < size ? (size_t) (size - len) : 0,
                    "# HELP evpl_block_request_bytes Block request sizes.\n"
                    "# TYPE evpl_block_request_bytes histogram\n");
    for (struct evpl_block_device *d = devices; d; d = d->next) {
        len = hist(buf, size, len, "evpl_block_request_bytes", d, d->stats.bytes,
                   d->stats.bytes_sum, d->stats.count);
    }
    len += snprintf(buf + len, len < size ? (size_t) (size - len) : 0,
                    "# HELP evpl_block_queue_depth Outstanding block requests.\n"
                    "# TYPE evpl_block_queue_depth gauge\n");
    for (struct evpl_block_device *d = devices; d; d = d->next) {
        len += snprintf(buf + len, len < size ? (size_t) (size - len) : 0,
                        "evpl_block_queue_depth{device=\"%s\",type=\"%s\"} %lld\n", d->label,
                        d->backend->name, (long long) atomic_load(&d->stats.depth));
    }
    pthread_mutex_unlock(&devices_lock);
    return len < size ? len : -1;
} /* evpl__block_metrics */
