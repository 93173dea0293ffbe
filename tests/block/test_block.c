/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Block I/O (block.md §6 statements 1-9, and the block issue's faults) on
 * the backend named by T_BLOCK (io_uring | libaio; both when unset): files
 * the test makes itself, O_DIRECT.
 *
 * Cases that change process-wide state (configuration, mount namespace)
 * run in child processes.  With T_BLOCK_SLEEP the loops never busy-poll
 * (the backends then submit each request at once, not once per pass).
 */
#include <evpl/evpl.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

#define FILE_SIZE (1ull << 30) /* statement 1: 1 GiB (sparse) */

static enum evpl_block_protocol_id proto, other;

/* A loop: the default one, or one that sleeps whenever idle. */
static struct evpl *
t_loop(void)
{
    struct evpl_thread_config *tc;
    struct evpl *evpl;

    if (!getenv("T_BLOCK_SLEEP")) {
        return evpl_create(NULL);
    }
    tc = evpl_thread_config_init();
    evpl_thread_config_set_poll_mode(tc, 0);
    evpl_thread_config_set_wait_ms(tc, 10); /* the pumps below may find nothing */
    evpl = evpl_create(tc);
    evpl_thread_config_release(tc);
    return evpl;
}
static const char *proto_name;
static char dir[256];

struct op {
    int done;
    int status;
    pthread_t thread;
};

static void
op_done(struct evpl *evpl, int status, void *arg)
{
    struct op *o = arg;

    o->done++;
    o->status = status;
    o->thread = pthread_self();
}

#define WAIT(evpl, o)                                  \
    do {                                               \
        uint64_t t_end_ = t_now_ns() + 10000000000ull; \
        while (!(o)->done) {                           \
            T_OK(t_now_ns() < t_end_);                 \
            evpl_continue(evpl);                       \
        }                                              \
    } while (0)

static void
nothing(struct evpl *evpl, void *arg)
{
}

/* One pass that does not block: an idle loop past its spin window sleeps
 * in evpl_continue until an event comes (loop.md §1), and there may be
 * none; a deferral armed before the pass makes its wait 0. */
static void
t_pass_nonblocking(struct evpl *evpl)
{
    struct evpl_deferral d;

    evpl_deferral_init(&d, nothing, NULL);
    evpl_defer(evpl, &d);
    evpl_continue(evpl);
}

/* a few passes, so nothing is left half-done on the loop */
static void
t_pump_quiet(struct evpl *evpl)
{
    for (int i = 0; i < 10; i++) {
        t_pass_nonblocking(evpl);
    }
}

static void
make_file(const char *path, uint64_t size)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    T_OK(fd >= 0);
    T_EQ(ftruncate(fd, (off_t) size), 0);
    close(fd);
}

/* A sparse file of size bytes named name in dir (its path in path), opened
 * as a device of the protocol under test with one queue on evpl. */
static struct evpl_block_queue *
file_queue(struct evpl *evpl, char *path, size_t pathlen, const char *name, uint64_t size,
           struct evpl_block_device **dev)
{
    struct evpl_block_queue *q;

    snprintf(path, pathlen, "%s/%s", dir, name);
    make_file(path, size);
    *dev = evpl_block_open_device(proto, path);
    T_OK(*dev != NULL);
    q = evpl_block_open_queue(evpl, *dev);
    T_OK(q != NULL);
    return q;
} /* file_queue */

static struct evpl_iovec
aligned(struct evpl *evpl, unsigned int len)
{
    struct evpl_iovec v;

    T_EQ(evpl_iovec_alloc(evpl, len, 4096, 1, 0, &v), 1);
    return v;
}

static int
do_write(struct evpl *evpl, struct evpl_block_queue *q, struct evpl_iovec *v, int n, uint64_t off,
         int sync)
{
    struct op o = {0};

    evpl_block_write(evpl, q, v, n, off, sync, op_done, &o);
    T_EQ(o.done, 0); /* asynchronous */
    WAIT(evpl, &o);
    T_EQ(o.done, 1);
    T_OK(pthread_equal(o.thread, pthread_self())); /* statement 9 */
    return o.status;
}

static int
do_read(struct evpl *evpl, struct evpl_block_queue *q, struct evpl_iovec *v, int n, uint64_t off)
{
    struct op o = {0};

    evpl_block_read(evpl, q, v, n, off, op_done, &o);
    T_EQ(o.done, 0);
    WAIT(evpl, &o);
    T_EQ(o.done, 1);
    return o.status;
}

/* statements 1-6, 8, and the argument faults */
static void
basics(void)
{
    char path[300];
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    struct evpl_iovec w = aligned(evpl, 4096), r = aligned(evpl, 4096);
    struct op o = {0};

    snprintf(path, sizeof(path), "%s/basics", dir);
    make_file(path, FILE_SIZE);
    dev = evpl_block_open_device(proto, path);
    T_OK(dev != NULL);
    T_EQ_U(evpl_block_size(dev), FILE_SIZE);              /* 2 */
    T_EQ_U(evpl_block_max_request_size(dev), 4ull << 20); /* 2 */
    T_OK(evpl_block_sector_size(dev) == 512 || evpl_block_sector_size(dev) == 4096);
    T_OK(evpl_block_open_device(proto, path) == NULL); /* opened twice */
    T_OK(evpl_block_open_device(other, path) == NULL); /* by any backend */
    q = evpl_block_open_queue(evpl, dev);
    T_OK(q != NULL);

    /* 1: write, then read back */
    memset(w.data, 0x5a, 4096);
    ((char *) w.data)[17] = 1;
    T_EQ(do_write(evpl, q, &w, 1, 0, 0), 0);
    memset(r.data, 0, 4096);
    T_EQ(do_read(evpl, q, &r, 1, 0), 0);
    T_OK(memcmp(r.data, w.data, 4096) == 0);

    /* sync write, at the far end */
    T_EQ(do_write(evpl, q, &w, 1, FILE_SIZE - 4096, 1), 0);

    /* §3.6: aligned memory of the caller's own, described by data and
     * length only (no reference is taken, so ref may be anything) */
    {
        void *mine, *back;
        struct evpl_iovec m, mb;

        T_EQ(posix_memalign(&mine, 4096, 4096), 0);
        T_EQ(posix_memalign(&back, 4096, 4096), 0);
        memset(mine, 0x3c, 4096);
        memset(&m, 0xbe, sizeof(m)); /* ref and pad: garbage */
        m.data = mine;
        m.length = 4096;
        mb = m;
        mb.data = back;
        T_EQ(do_write(evpl, q, &m, 1, 4 * 4096, 0), 0);
        memset(back, 0, 4096);
        T_EQ(do_read(evpl, q, &mb, 1, 4 * 4096), 0);
        T_OK(memcmp(mine, back, 4096) == 0);
        free(mine);
        free(back);
    }

    /* 3: unaligned memory goes through a bounce buffer */
    {
        char *raw = malloc(3 * 4096 + 1), *raw2 = malloc(3 * 4096 + 1);
        struct evpl_iovec u[2], u2[2];

        memset(u, 0, sizeof(u));
        memset(u2, 0, sizeof(u2));
        for (int i = 0; i < 3 * 4096; i++) {
            raw[1 + i] = (char) (i * 7 + 3);
        }
        u[0].data = raw + 1;
        u[0].length = 4096 + 512;
        u[1].data = raw + 1 + 4096 + 512;
        u[1].length = 4096 - 512;
        T_EQ(do_write(evpl, q, u, 2, 8192, 0), 0);
        u2[0].data = raw2 + 1;
        u2[0].length = 512;
        u2[1].data = raw2 + 1 + 512;
        u2[1].length = 8192 - 512;
        T_EQ(do_read(evpl, q, u2, 2, 8192), 0);
        T_OK(memcmp(raw + 1, raw2 + 1, 8192) == 0);
        free(raw);
        free(raw2);
    }

    /* 4: flush after completed writes */
    evpl_block_flush(evpl, q, op_done, &o);
    WAIT(evpl, &o);
    T_EQ(o.status, 0);

    /* 5: write-zeroes makes the range read as zeros; length 0 at once */
    memset(&o, 0, sizeof(o));
    evpl_block_write_zeroes(evpl, q, 0, 3ull << 20, op_done, &o); /* > one chunk */
    WAIT(evpl, &o);
    T_EQ(o.status, 0);
    T_EQ(do_read(evpl, q, &r, 1, 0), 0);
    for (int i = 0; i < 4096; i++) {
        T_EQ(((char *) r.data)[i], 0);
    }
    memset(&o, 0, sizeof(o));
    evpl_block_write_zeroes(evpl, q, 4096, 0, op_done, &o);
    T_EQ(o.done, 1);
    T_EQ(o.status, 0);
    /* a range whose end wraps past 2^64: refused, not "done" after one
     * chunk (helper-107) */
    memset(&o, 0, sizeof(o));
    evpl_block_write_zeroes(evpl, q, 4096, UINT64_MAX - 4095, op_done, &o);
    WAIT(evpl, &o);
    T_EQ(o.status, EINVAL);

    /* 6: discard calls back before returning */
    memset(&o, 0, sizeof(o));
    evpl_block_discard(evpl, q, 0, 4096, op_done, &o);
    T_EQ(o.done, 1);
    T_EQ(o.status, 0);

    /* 8: past the end of the file: a non-zero status, the queue goes on */
    T_EQ(do_read(evpl, q, &r, 1, FILE_SIZE), EIO); /* a short transfer (block.md §3) */
    /* more iovecs than a request takes, more bytes than the maximum
     * request: refused on a later pass (the copies of r take no reference) */
    {
        struct evpl_iovec many[65], big[3];

        for (int i = 0; i < 65; i++) {
            many[i] = r;
        }
        T_EQ(do_read(evpl, q, many, 65, 0), EINVAL);
        T_EQ(do_read(evpl, q, many, 64, 0), 0); /* the most there may be */
        for (int i = 0; i < 3; i++) {
            big[i] = aligned(evpl, 2 << 20);
        }
        T_OK(6ull << 20 > evpl_block_max_request_size(dev));
        T_EQ(do_write(evpl, q, big, 3, 0, 0), EINVAL);
        T_EQ(do_read(evpl, q, big, 2, 0), 0); /* 4 MiB: the most there may be */
        for (int i = 0; i < 3; i++) {
            evpl_iovec_release(evpl, &big[i]);
        }
    }
    /* misaligned offset and length: a clear error, not a crash */
    T_EQ(do_read(evpl, q, &r, 1, 100), EINVAL);
    {
        struct evpl_iovec odd = r;

        odd.length = 1000;
        T_EQ(do_write(evpl, q, &odd, 1, 0, 0), EINVAL);
        T_EQ(do_read(evpl, q, &r, 0, 0), EINVAL);
    }
    T_EQ(do_read(evpl, q, &r, 1, 0), 0); /* still working */

    T_OK(t_metric("evpl_block_queue_depth") == -1); /* labelled: not a bare name */
    {
        static char m[1 << 16];

        T_OK(evpl_metrics_scrape(m, sizeof(m)) > 0);
        T_OK(strstr(m, "evpl_block_latency_nanoseconds_count{device=") != NULL);
        T_OK(strstr(m, "op=\"read\"") != NULL);
    }

    evpl_block_close_queue(evpl, q);
    evpl_block_close_device(dev);
    evpl_iovec_release(evpl, &w);
    evpl_iovec_release(evpl, &r);
    evpl_destroy(evpl);
    unlink(path);
}

/* 7: NULL for a missing path and an id out of range */
static void
refusals(void)
{
    char path[300];

    snprintf(path, sizeof(path), "%s/does-not-exist", dir);
    T_OK(evpl_block_open_device(proto, path) == NULL);
    T_OK(evpl_block_open_device((enum evpl_block_protocol_id) EVPL_NUM_BLOCK_PROTOCOL, path) ==
         NULL);
    T_OK(evpl_block_open_device((enum evpl_block_protocol_id) - 1, path) == NULL);
}

/* 7: a disabled backend (child: configuration is process-wide) */
static void
disabled_child(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    char path[300];

    if (proto == EVPL_BLOCK_PROTOCOL_IO_URING) {
        evpl_global_config_set_io_uring_enabled(gc, 0);
    } else {
        evpl_global_config_set_libaio_enabled(gc, 0);
    }
    evpl_init(gc);
    snprintf(path, sizeof(path), "%s/disabled", dir);
    make_file(path, 1 << 20);
    T_OK(evpl_block_open_device(proto, path) == NULL);
    T_OK(evpl_block_open_device(other, path) != NULL); /* the other one works */
    unlink(path);
}

/* buffer_size need not be whole pages (core.md §2): emulated write-zeroes
 * still writes whole sectors (its chunk is rounded down), and the range
 * reads back as zeros (review finding: 6000-byte chunks failed EINVAL). */
static void
odd_buffer_zeroes_child(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    struct evpl *evpl;
    struct evpl_iovec v;
    struct op o = {0};
    char path[300];
    const unsigned len = (1u << 20) + 4096;

    evpl_global_config_set_buffer_size(gc, 6000);
    evpl_init(gc);
    evpl = t_loop();
    q = file_queue(evpl, path, sizeof(path), "oddzeroes", 4 << 20, &dev);
    v = aligned(evpl, 4096);
    memset(v.data, 0xa5, 4096);
    for (uint64_t off = 0; off < len; off += 4096) {
        T_EQ(do_write(evpl, q, &v, 1, off, 0), 0);
    }
    evpl_block_write_zeroes(evpl, q, 0, len, op_done, &o);
    WAIT(evpl, &o);
    T_EQ(o.status, 0);
    for (uint64_t off = 0; off < len; off += 4096) {
        T_EQ(do_read(evpl, q, &v, 1, off), 0);
        for (int i = 0; i < 4096; i++) {
            T_EQ(((uint8_t *) v.data)[i], 0);
        }
    }
    evpl_iovec_release(evpl, &v);
    evpl_block_close_queue(evpl, q);
    evpl_block_close_device(dev);
    evpl_destroy(evpl);
    unlink(path);
}

/* Integrity: random patterns at random offsets, 64 in flight, through one
 * backend; every byte read back through the other (and this one). */
#define INTEG_FILE (64ull << 20)
#define INTEG_OPS  512

struct integ {
    int done, errors;
};

static void
integ_done(struct evpl *evpl, int status, void *arg)
{
    struct integ *g = arg;

    g->done++;
    if (status) {
        g->errors++;
    }
}

static uint8_t
pat(uint64_t seed, uint64_t off)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + (off >> 3);

    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return (uint8_t) (x >> ((off & 7) * 8));
}

static void
check_file(enum evpl_block_protocol_id p, const char *path, const uint8_t *expect)
{
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev = evpl_block_open_device(p, path);
    struct evpl_block_queue *q;
    struct evpl_iovec v = aligned(evpl, 1 << 20);

    T_OK(dev != NULL);
    q = evpl_block_open_queue(evpl, dev);
    T_OK(q != NULL);
    for (uint64_t off = 0; off < INTEG_FILE; off += 1 << 20) {
        T_EQ(do_read(evpl, q, &v, 1, off), 0);
        if (memcmp(v.data, expect + off, 1 << 20) != 0) {
            T_FAIL("%s: content differs in the MiB at %llu", p == proto ? "same" : "other",
                   (unsigned long long) off);
        }
    }
    evpl_block_close_queue(evpl, q);
    evpl_block_close_device(dev);
    evpl_iovec_release(evpl, &v);
    evpl_destroy(evpl);
}

static void
integrity(void)
{
    char path[300];
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    uint8_t *expect = calloc(1, INTEG_FILE);
    uint64_t *busy = calloc(INTEG_FILE / 4096 / 64, sizeof(uint64_t)); /* pages in flight */
    struct evpl_iovec bufs[64];
    uint64_t offs[64];
    struct integ g = {0};
    uint64_t seed = 12345;
    int issued = 0;

    q = file_queue(evpl, path, sizeof(path), "integrity", INTEG_FILE, &dev);
    for (int i = 0; i < 64; i++) {
        bufs[i] = aligned(evpl, 64 * 1024);
    }
    /* waves of 64 writes to disjoint ranges, in flight together */
    while (issued < INTEG_OPS) {
        int wave = 0, base = g.done;

        memset(busy, 0, INTEG_FILE / 4096 / 8);
        for (int i = 0; i < 64 && issued < INTEG_OPS; i++) {
            uint64_t pages, first, len;
            int clash = 0;

            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            pages = 1 + (seed >> 33) % 16;
            first = (seed >> 13) % (INTEG_FILE / 4096 - pages);
            for (uint64_t p = first; p < first + pages; p++) {
                clash |= (busy[p / 64] >> (p % 64)) & 1;
            }
            if (clash) {
                continue;
            }
            for (uint64_t p = first; p < first + pages; p++) {
                busy[p / 64] |= 1ull << (p % 64);
            }
            len = pages * 4096;
            offs[i] = first * 4096;
            for (uint64_t k = 0; k < len; k++) {
                ((uint8_t *) bufs[i].data)[k] = pat(seed, offs[i] + k);
            }
            memcpy(expect + offs[i], bufs[i].data, len);
            bufs[i].length = (unsigned) len;
            evpl_block_write(evpl, q, &bufs[i], 1, offs[i], 0, integ_done, &g);
            wave++;
            issued++;
        }
        while (g.done < base + wave) {
            evpl_continue(evpl);
        }
    }
    T_EQ(g.errors, 0);
    evpl_block_close_queue(evpl, q);
    evpl_block_close_device(dev);
    for (int i = 0; i < 64; i++) {
        bufs[i].length = 64 * 1024;
        evpl_iovec_release(evpl, &bufs[i]);
    }
    evpl_destroy(evpl);
    check_file(proto, path, expect);
    check_file(other, path, expect);
    free(expect);
    free(busy);
    unlink(path);
}

/* Closing a queue with requests in flight: they finish, callbacks run, no
 * buffer reference or request is lost. */
static void
close_inflight(void)
{
    char path[300];
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    struct evpl_iovec v[64];
    struct integ g = {0};

    q = file_queue(evpl, path, sizeof(path), "inflight", 64 << 20, &dev);
    for (int i = 0; i < 64; i++) {
        v[i] = aligned(evpl, 65536);
        if (i % 2) {
            evpl_block_write(evpl, q, &v[i], 1, (uint64_t) i << 16, 0, integ_done, &g);
        } else {
            evpl_block_read(evpl, q, &v[i], 1, (uint64_t) i << 16, integ_done, &g);
        }
    }
    evpl_block_close_queue(evpl, q); /* nothing submitted yet, even */
    T_EQ(g.done, 64);
    T_EQ(g.errors, 0);
    evpl_block_close_device(dev);
    for (int i = 0; i < 64; i++) {
        evpl_iovec_release(evpl, &v[i]);
    }
    evpl_destroy(evpl);
    unlink(path);
}

/* Requests made by the callbacks a close runs, and refused for their
 * arguments (review): they end inside the close too, never after it
 * returned (the queue is gone then). */
static struct evpl_block_queue *rc_queue;
static struct evpl_iovec rc_iov;
static int rc_done, rc_refused, rc_refused_status, rc_after_close, rc_closed;

static void
rc_refused_cb(struct evpl *evpl, int status, void *arg)
{
    rc_refused++;
    rc_refused_status = status;
    rc_after_close += rc_closed;
}

static void
rc_read_cb(struct evpl *evpl, int status, void *arg)
{
    if (rc_done++ == 0) {
        /* offset 1: refused (unaligned), reported on a later pass */
        evpl_block_read(evpl, rc_queue, &rc_iov, 1, 1, rc_refused_cb, NULL);
    }
}

static void
close_ends_new_refusals(void)
{
    char path[300];
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev;
    struct evpl_iovec v[4];

    rc_queue = file_queue(evpl, path, sizeof(path), "closerefuse", 1 << 20, &dev);
    rc_iov = aligned(evpl, 4096);
    for (int i = 0; i < 4; i++) {
        v[i] = aligned(evpl, 4096);
        evpl_block_read(evpl, rc_queue, &v[i], 1, (uint64_t) i << 12, rc_read_cb, NULL);
    }
    evpl_block_close_queue(evpl, rc_queue);
    rc_closed = 1;
    T_EQ(rc_done, 4);
    T_EQ(rc_refused, 1);
    T_EQ(rc_refused_status, EINVAL);
    t_pump_quiet(evpl); /* nothing may still be due on the loop */
    T_EQ(rc_refused, 1);
    T_EQ(rc_after_close, 0);
    for (int i = 0; i < 4; i++) {
        evpl_iovec_release(evpl, &v[i]);
    }
    evpl_iovec_release(evpl, &rc_iov);
    evpl_block_close_device(dev);
    evpl_destroy(evpl);
    unlink(path);
}

/* A loop destroyed with a queue still open and I/O in flight (the
 * application's mistake, block.md §2): evpl_destroy closes the queue, the
 * requests complete inside it, and the device can then be closed.  A bind
 * still open gets its DISCONNECTED first, and its callback may still use
 * the queue (review: the queue used to be gone by then). */
static struct evpl_block_queue *dq_queue;
static struct evpl_iovec dq_iov;
static struct integ dq_late;

static void
dq_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *arg)
{
    if (n->notify_type == EVPL_NOTIFY_DISCONNECTED) {
        evpl_block_read(evpl, dq_queue, &dq_iov, 1, 0, integ_done, &dq_late);
    }
}

static void
destroy_with_queue_open(void)
{
    char path[300];
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev;
    struct evpl_iovec v[16];
    struct integ g = {0};
    struct evpl_endpoint *ep = evpl_endpoint_create("127.0.0.1", 0);

    dq_queue = file_queue(evpl, path, sizeof(path), "destroyopen", 1 << 20, &dev);
    dq_iov = aligned(evpl, 4096);
    T_OK(evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, ep, dq_notify, NULL) != NULL);
    for (int i = 0; i < 16; i++) {
        v[i] = aligned(evpl, 4096);
        evpl_block_read(evpl, dq_queue, &v[i], 1, (uint64_t) i << 12, integ_done, &g);
    }
    evpl_destroy(evpl); /* neither the bind nor the queue closed by the test */
    T_EQ(g.done, 16);
    T_EQ(g.errors, 0);
    T_EQ(dq_late.done, 1);
    T_EQ(dq_late.errors, 0);
    evpl_iovec_release(NULL, &dq_iov);
    evpl_block_close_device(dev); /* no queue counts as open any more */
    for (int i = 0; i < 16; i++) {
        evpl_iovec_release(NULL, &v[i]);
    }
    unlink(path);
}

/* A queue closed from a completion callback while other requests are in
 * flight (review): the rest complete inside the close, each exactly once,
 * nothing is touched after it is freed. */
static struct evpl_block_queue *cb_queue;
static int cb_done[32];

static void
close_in_callback(struct evpl *evpl, int status, void *arg)
{
    int i = (int) (intptr_t) arg;

    cb_done[i]++;
    if (cb_queue) {
        struct evpl_block_queue *q = cb_queue;

        cb_queue = NULL;
        evpl_block_close_queue(evpl, q);
    }
}

static void
close_from_callback(void)
{
    char path[300];
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev;
    struct evpl_iovec v[32];

    cb_queue = file_queue(evpl, path, sizeof(path), "cbclose", 8 << 20, &dev);
    memset(cb_done, 0, sizeof(cb_done));
    for (int i = 0; i < 32; i++) {
        v[i] = aligned(evpl, 65536);
        evpl_block_read(evpl, cb_queue, &v[i], 1, (uint64_t) i << 16, close_in_callback,
                        (void *) (intptr_t) i);
    }
    while (cb_queue) {
        evpl_continue(evpl);
    }
    for (int i = 0; i < 32; i++) {
        T_EQ(cb_done[i], 1);
        evpl_iovec_release(evpl, &v[i]);
    }
    t_pump_quiet(evpl);
    evpl_block_close_device(dev);
    evpl_destroy(evpl);
    unlink(path);
}

/* Callbacks that submit again, on a file system that completes reads
 * inside the submission (tmpfs): each evpl_continue must still return
 * after at most the requests that were in flight (no livelock). */
#define RS_DEPTH 32
#define RS_TOTAL 20000
static struct evpl_block_queue *rs_queue;
static struct evpl_iovec rs_iov[RS_DEPTH];
static int rs_issued, rs_done, rs_errors;

static void
resubmit_done(struct evpl *evpl, int status, void *arg)
{
    intptr_t i = (intptr_t) arg;

    rs_done++;
    rs_errors += status != 0;
    if (rs_issued < RS_TOTAL) {
        rs_issued++;
        evpl_block_read(evpl, rs_queue, &rs_iov[i], 1, (uint64_t) (rs_issued % 256) << 12,
                        resubmit_done, arg);
    }
}

static void
resubmit_in_callback(void)
{
    char path[300];
    struct evpl *evpl;
    struct evpl_block_device *dev;
    int fd, most = 0;

    snprintf(path, sizeof(path), "/dev/shm/evpl-block-resubmit-%d", (int) getpid());
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, 1 << 20) != 0) {
        fprintf(stderr, "no /dev/shm: resubmission case skipped\n");
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    close(fd);
    dev = evpl_block_open_device(proto, path); /* O_DIRECT: tmpfs has it from Linux 6.6 */
    if (!dev) {
        fprintf(stderr, "tmpfs refuses O_DIRECT here: resubmission case skipped\n");
        unlink(path);
        return;
    }
    evpl = t_loop();
    rs_queue = evpl_block_open_queue(evpl, dev);
    T_OK(rs_queue != NULL);
    rs_issued = rs_done = rs_errors = 0;
    for (intptr_t i = 0; i < RS_DEPTH; i++) {
        rs_iov[i] = aligned(evpl, 4096);
        rs_issued++;
        evpl_block_read(evpl, rs_queue, &rs_iov[i], 1, (uint64_t) i << 12, resubmit_done,
                        (void *) i);
    }
    while (rs_done < RS_TOTAL) {
        int before = rs_done;

        evpl_continue(evpl);
        if (rs_done - before > most) {
            most = rs_done - before;
        }
    }
    T_EQ(rs_errors, 0);
    /* every pass ends: each handles at most what was in flight when it
     * looked, and one pass may look twice (wait, then poll) */
    T_LE(most, 2 * RS_DEPTH);
    for (int i = 0; i < RS_DEPTH; i++) {
        evpl_iovec_release(evpl, &rs_iov[i]);
    }
    evpl_block_close_queue(evpl, rs_queue);
    t_pump_quiet(evpl);
    evpl_block_close_device(dev);
    evpl_destroy(evpl);
    unlink(path);
}

/* A request the kernel refuses at submission (an offset past 2^63), next
 * to good ones, whose callback submits again: every callback runs once,
 * never inside the evpl_block_* call, and the queue closes cleanly. */
static int rf_calls[3], rf_status[3], rf_inside;
static struct evpl_block_queue *rf_queue;
static struct evpl_iovec rf_iov[3];

static void
refused_done(struct evpl *evpl, int status, void *arg)
{
    intptr_t i = (intptr_t) arg;

    T_EQ(rf_inside, 0);
    rf_calls[i]++;
    rf_status[i] = status;
    if (i == 0) {
        /* a good read from the refused one's callback */
        rf_inside = 1;
        evpl_block_read(evpl, rf_queue, &rf_iov[2], 1, 8192, refused_done, (void *) 2);
        rf_inside = 0;
    }
}

static void
refused_submission(void)
{
    char path[300];
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev;
    uint64_t end = t_now_ns() + 10000000000ull;

    rf_queue = file_queue(evpl, path, sizeof(path), "refused", 1 << 20, &dev);
    memset(rf_calls, 0, sizeof(rf_calls));
    for (int i = 0; i < 3; i++) {
        rf_iov[i] = aligned(evpl, 4096);
    }
    rf_inside = 1;
    evpl_block_read(evpl, rf_queue, &rf_iov[0], 1, 1ull << 63, refused_done, (void *) 0);
    evpl_block_read(evpl, rf_queue, &rf_iov[1], 1, 4096, refused_done, (void *) 1);
    rf_inside = 0;
    while (rf_calls[0] + rf_calls[1] + rf_calls[2] < 3) {
        T_OK(t_now_ns() < end);
        evpl_continue(evpl);
    }
    t_pump_quiet(evpl);
    for (int i = 0; i < 3; i++) {
        T_EQ(rf_calls[i], 1);
        evpl_iovec_release(evpl, &rf_iov[i]);
    }
    T_NE(rf_status[0], 0);
    T_EQ(rf_status[1], 0);
    T_EQ(rf_status[2], 0);
    evpl_block_close_queue(evpl, rf_queue);
    evpl_block_close_device(dev);
    evpl_destroy(evpl);
    unlink(path);
}

/* A callback that retries a request that is refused again, every time:
 * an unaligned read and no iovec at all (refused by the block layer), and
 * an offset past 2^63 (refused by the kernel at submission).  Each pass
 * runs the callbacks of what was refused before it, so the retries spread
 * over passes and evpl_continue returns (helper-83: one pass ran all
 * 200000 retries, and without a limit never returned). */
#define RT_LIMIT 1000
static int rt_calls, rt_kind, rt_bad_status;
static struct evpl_block_queue *rt_queue;
static struct evpl_iovec rt_iov;

static void retry_issue(struct evpl *evpl);

static void
retry_cb(struct evpl *evpl, int status, void *arg)
{
    rt_calls++;
    rt_bad_status += status == 0;
    if (rt_calls < RT_LIMIT) {
        retry_issue(evpl);
    }
}

static void
retry_issue(struct evpl *evpl)
{
    struct evpl_iovec v = rt_iov;

    switch (rt_kind) {
        case 0:
            v.length = 100; /* not whole sectors */
            evpl_block_read(evpl, rt_queue, &v, 1, 0, retry_cb, NULL);
            break;
        case 1:
            evpl_block_read(evpl, rt_queue, &v, 0, 0, retry_cb, NULL);
            break;
        default:
            evpl_block_read(evpl, rt_queue, &v, 1, 1ull << 63, retry_cb, NULL);
            break;
    }
}

static void
retry_refused(void)
{
    for (rt_kind = 0; rt_kind < 3; rt_kind++) {
        char path[300];
        struct evpl *evpl = t_loop();
        struct evpl_block_device *dev;
        uint64_t end = t_now_ns() + 20000000000ull;
        int most = 0;

        rt_queue = file_queue(evpl, path, sizeof(path), "retry", 1 << 20, &dev);
        rt_iov = aligned(evpl, 4096);
        rt_calls = rt_bad_status = 0;
        retry_issue(evpl);
        while (rt_calls < RT_LIMIT) {
            int before = rt_calls;

            T_OK(t_now_ns() < end);
            evpl_continue(evpl);
            if (rt_calls - before > most) {
                most = rt_calls - before;
            }
        }
        fprintf(stderr, "refused retry kind %d: at most %d callbacks in one pass\n", rt_kind, most);
        T_EQ(rt_bad_status, 0);
        T_LE(most, 2);
        evpl_iovec_release(evpl, &rt_iov);
        evpl_block_close_queue(evpl, rt_queue);
        evpl_block_close_device(dev);
        evpl_destroy(evpl);
        unlink(path);
    }
}

/* The same under the virtual clock: the next pass needs no timer (one
 * would wait for the clock to be advanced; review finding). */
static void
retry_virtual_clock_child(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    char probe[300];
    struct evpl_block_device *d;

    evpl_global_config_set_virtual_clock(gc, 1);
    evpl_init(gc);
    snprintf(probe, sizeof(probe), "%s/vprobe", dir);
    make_file(probe, 1 << 20);
    d = evpl_block_open_device(proto, probe);
    unlink(probe);
    if (!d) {
        exit(77);
    }
    evpl_block_close_device(d);
    retry_refused();
}

/* A burst far larger than the ring, queued in one go (no pass between):
 * every request completes once, successfully, never inside the call. */
#define BURST 20000
static int burst_done, burst_errors, burst_inside;

static void
burst_cb(struct evpl *evpl, int status, void *arg)
{
    T_EQ(burst_inside, 0);
    burst_done++;
    burst_errors += status != 0;
}

static void
burst(void)
{
    char path[300];
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    struct evpl_iovec v = aligned(evpl, 4096);
    uint64_t end = t_now_ns() + 30000000000ull;

    q = file_queue(evpl, path, sizeof(path), "burst", 1 << 20, &dev);
    burst_done = burst_errors = 0;
    burst_inside = 1;
    for (int i = 0; i < BURST; i++) {
        evpl_block_read(evpl, q, &v, 1, (uint64_t) (i % 256) << 12, burst_cb, NULL);
    }
    burst_inside = 0;
    while (burst_done < BURST) {
        if (t_now_ns() > end) {
            fprintf(stderr, "burst: %d of %d done\n", burst_done, BURST);
        }
        T_OK(t_now_ns() < end);
        evpl_continue(evpl);
    }
    fprintf(stderr, "burst of %d: %d errors\n", BURST, burst_errors);
    T_EQ(burst_errors, 0);
    evpl_iovec_release(evpl, &v);
    evpl_block_close_queue(evpl, q);
    evpl_block_close_device(dev);
    evpl_destroy(evpl);
    unlink(path);
}

/* ENOSPC and a read-only file system: tmpfs mounts in a private mount
 * namespace (child).  The error reaches the callback; the queue goes on. */
static void
fs_faults_child(void)
{
    char mnt[300], path[400];
    struct evpl *evpl;
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    struct evpl_iovec v;
    int st;

    snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mkdir(mnt, 0700) < 0 || mount("evpl-test", mnt, "tmpfs", 0, "size=1m") < 0) {
        exit(77);
    }
    snprintf(path, sizeof(path), "%s/full", mnt);
    make_file(path, 8 << 20); /* sparse: larger than the file system */
    evpl = t_loop();
    dev = evpl_block_open_device(proto, path);
    if (!dev) {
        exit(77); /* no O_DIRECT on tmpfs (before Linux 6.6) */
    }
    q = evpl_block_open_queue(evpl, dev);
    v = aligned(evpl, 2 << 20);
    memset(v.data, 1, 2 << 20);
    st = do_write(evpl, q, &v, 1, 0, 0);
    fprintf(stderr, "%s: 2 MiB into a 1 MiB file system: status %d (%s)\n", proto_name, st,
            strerror(st));
    T_OK(st == ENOSPC || st == EIO);
    v.length = 4096;
    T_EQ(do_read(evpl, q, &v, 1, 0), 0); /* the queue keeps working */
    evpl_block_close_queue(evpl, q);
    evpl_block_close_device(dev);
    evpl_iovec_release(evpl, &v);

    /* read-only: the device cannot be opened read-write.  A ring lets go
     * of a closed file asynchronously (the kernel's deferred fput), so the
     * remount can see it still open for writing for a moment: EBUSY */
    for (int tries = 0;; tries++) {
        if (mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL) == 0) {
            break;
        }
        T_OK(errno == EBUSY && tries < 200);
        t_pass_nonblocking(evpl);
        usleep(10000);
    }
    T_OK(evpl_block_open_device(proto, path) == NULL);
    evpl_destroy(evpl);
}

/* A block device (a loop device over a file the test makes), detached at
 * the end: size and sector from the device, I/O through both backends. */
static void
loop_device(void)
{
    char path[300], cmd[400], devname[64] = "";
    FILE *p;
    struct evpl *evpl;
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    struct evpl_iovec v;

    snprintf(path, sizeof(path), "%s/loopback.img", dir);
    make_file(path, 32 << 20);
    snprintf(cmd, sizeof(cmd), "losetup --find --show --direct-io=on %s 2>/dev/null", path);
    p = popen(cmd, "r");
    if (!p || !fgets(devname, sizeof(devname), p) || devname[0] != '/') {
        if (p) {
            pclose(p);
        }
        unlink(path);
        fprintf(stderr, "loop device: losetup unavailable here, skipped\n");
        return;
    }
    pclose(p);
    devname[strcspn(devname, "\n")] = '\0';
    evpl = t_loop();
    for (int k = 0; k < 2; k++) {
        enum evpl_block_protocol_id id = k ? other : proto;

        dev = evpl_block_open_device(id, devname);
        T_OK(dev != NULL);
        T_EQ_U(evpl_block_size(dev), 32ull << 20);
        q = evpl_block_open_queue(evpl, dev);
        v = aligned(evpl, 65536);
        memset(v.data, 'a' + k, 65536);
        T_EQ(do_write(evpl, q, &v, 1, (32 << 20) - 65536, 1), 0);
        memset(v.data, 0, 65536);
        T_EQ(do_read(evpl, q, &v, 1, (32 << 20) - 65536), 0);
        T_EQ(((char *) v.data)[65535], 'a' + k);
        T_OK(do_read(evpl, q, &v, 1, 32 << 20) != 0); /* past the end of the device */
        evpl_block_close_queue(evpl, q);
        evpl_block_close_device(dev);
        evpl_iovec_release(evpl, &v);
    }
    evpl_destroy(evpl);
    snprintf(cmd, sizeof(cmd), "losetup -d %s", devname);
    T_EQ(system(cmd), 0);
    unlink(path);
}

/* A file on a file system over 4 KiB sectors (a loop device with
 * --sector-size 4096, ext4, in a private mount namespace; child): its
 * sector size is 4096, as O_DIRECT there takes 4096-aligned offsets only
 * (it said 512, and 512-aligned requests the library took failed with
 * EINVAL from the kernel: helper-114). */
static void
sector4k_child(void)
{
    static unsigned char data[16384];
    char img[300], mnt[300], path[400], cmd[800], devname[64] = "";
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    struct evpl_iovec v;
    struct evpl *evpl;
    FILE *p;
    int fd, ok;

    snprintf(img, sizeof(img), "%s/4k.img", dir);
    snprintf(mnt, sizeof(mnt), "%s/mnt4k", dir);
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mkdir(mnt, 0700) < 0) {
        exit(77);
    }
    make_file(img, 64 << 20);
    snprintf(cmd, sizeof(cmd), "losetup --find --show --sector-size 4096 %s 2>/dev/null", img);
    p = popen(cmd, "r");
    ok = p && fgets(devname, sizeof(devname), p) && devname[0] == '/';
    if (p) {
        pclose(p);
    }
    if (!ok) {
        unlink(img);
        rmdir(mnt);
        exit(77); /* no loop devices here */
    }
    devname[strcspn(devname, "\n")] = '\0';
    snprintf(cmd, sizeof(cmd), "mkfs.ext4 -q -F -b 4096 %s >/dev/null 2>&1", devname);
    if (system(cmd) != 0 || mount(devname, mnt, "ext4", 0, NULL) < 0) {
        snprintf(cmd, sizeof(cmd), "losetup -d %s", devname);
        (void) system(cmd);
        unlink(img);
        rmdir(mnt);
        exit(77);
    }
    /* detached now: the kernel lets it go when it is unmounted, which the
     * end of the mount namespace does if the test fails on the way */
    snprintf(cmd, sizeof(cmd), "losetup -d %s", devname);
    T_EQ(system(cmd), 0);

    /* written through the page cache: no holes (a hole reads at any offset) */
    snprintf(path, sizeof(path), "%s/data", mnt);
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (unsigned char) (i * 13 + 7);
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    T_OK(fd >= 0);
    T_EQ(write(fd, data, sizeof(data)), (ssize_t) sizeof(data));
    T_EQ(fsync(fd), 0);
    close(fd);

    evpl = t_loop();
    for (int k = 0; k < 2; k++) {
        enum evpl_block_protocol_id id = k ? other : proto;

        dev = evpl_block_open_device(id, path);
        T_OK(dev != NULL);
        T_EQ(evpl_block_sector_size(dev), 4096);
        q = evpl_block_open_queue(evpl, dev);
        v = aligned(evpl, 4096);
        T_EQ(do_read(evpl, q, &v, 1, 4096), 0);
        T_OK(memcmp(v.data, data + 4096, 4096) == 0);
        /* a whole sector, as the device says, or refused up front */
        v.length = 512;
        T_EQ(do_read(evpl, q, &v, 1, 512), EINVAL);
        evpl_block_close_queue(evpl, q);
        evpl_block_close_device(dev);
        evpl_iovec_release(evpl, &v);
    }
    evpl_destroy(evpl);
    T_EQ(umount(mnt), 0);
    T_EQ(rmdir(mnt), 0);
    unlink(img);
} /* sector4k_child */

/* The device label in the metrics is escaped: a path with a quote, a
 * backslash and a newline cannot break the exposition format. */
static void
metric_label(void)
{
    char path[300], want[700], *buf = malloc(1 << 20);
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    struct evpl_iovec v = aligned(evpl, 4096);

    snprintf(path, sizeof(path), "%s/we\"ird\\na\nme", dir);
    make_file(path, 1 << 20);
    dev = evpl_block_open_device(proto, path);
    T_OK(dev != NULL);
    q = evpl_block_open_queue(evpl, dev);
    T_EQ(do_read(evpl, q, &v, 1, 0), 0);
    T_GT(evpl_metrics_scrape(buf, 1 << 20), 0);
    snprintf(want, sizeof(want), "evpl_block_queue_depth{device=\"%s/we\\\"ird\\\\na\\nme\",", dir);
    T_OK(strstr(buf, want) != NULL);
    evpl_block_close_queue(evpl, q);
    evpl_block_close_device(dev);
    evpl_iovec_release(evpl, &v);
    evpl_destroy(evpl);
    unlink(path);
    free(buf);
}

/* loop.md §1: pre_wait and post_wait bracket the readiness wait alone;
 * completion callbacks run after it (on a loop waiting on io_uring they
 * used to run inside, between the two hooks) */
static int in_wait, cb_in_wait;

static void
hook_pre(struct evpl *evpl, void *p)
{
    in_wait = 1;
}

static void
hook_post(struct evpl *evpl, void *p)
{
    in_wait = 0;
}

static void
op_done_outside_wait(struct evpl *evpl, int status, void *arg)
{
    cb_in_wait += in_wait;
    op_done(evpl, status, arg);
}

static void
hooks_bracket_wait(void)
{
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev;
    struct evpl_loop_hooks h = {NULL, hook_pre, hook_post, NULL};
    struct evpl_block_queue *q;
    char path[300];

    q = file_queue(evpl, path, sizeof(path), "hooks", 1 << 20, &dev);
    evpl_set_loop_hooks(evpl, &h);
    for (int i = 0; i < 20; i++) {
        struct op o = {0};

        evpl_block_flush(evpl, q, op_done_outside_wait, &o);
        WAIT(evpl, &o);
        T_EQ(o.status, 0);
    }
    T_EQ(cb_in_wait, 0);
    evpl_set_loop_hooks(evpl, NULL);
    evpl_block_close_queue(evpl, q);
    evpl_destroy(evpl);
    evpl_block_close_device(dev);
    T_EQ(unlink(path), 0);
} /* hooks_bracket_wait */

/* block.md §3 rule 1: a request reaches the kernel no later than the end
 * of the pass that made it, even when the loop is not run again (a polling
 * io_uring loop used to leave it queued for the next pass); also when it
 * is made from the iteration_end hook, after the pass's deferrals and the
 * io_uring submit (left for the next pass on both backends: helper-114) */
static struct evpl_block_queue *handover_q;
static struct evpl_iovec handover_v;
static struct op handover_op;

static void
handover_write(struct evpl *evpl, void *arg)
{
    evpl_block_write(evpl, handover_q, &handover_v, 1, 8192, 0, op_done, &handover_op);
}

static int handover_hook_armed;

static void
handover_hook(struct evpl *evpl, void *arg)
{
    if (handover_hook_armed) {
        handover_hook_armed = 0;
        handover_write(evpl, arg);
    }
}

static void
handover(int from_hook)
{
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev;
    struct evpl_deferral d;
    struct evpl_loop_hooks hooks = {handover_hook, NULL, NULL, NULL};
    uint8_t back[4096];
    char path[300];
    int fd;

    handover_q = file_queue(evpl, path, sizeof(path), "handover", 1 << 20, &dev);
    handover_v = aligned(evpl, 4096);
    memset(handover_v.data, 0xcc, 4096);
    memset(&handover_op, 0, sizeof(handover_op));
    t_pump_quiet(evpl);
    if (from_hook) {
        struct evpl_iovec r = aligned(evpl, 4096);

        /* completions just now: a loop that may poll is polling */
        for (int i = 0; i < 3; i++) {
            T_EQ(do_read(evpl, handover_q, &r, 1, 0), 0);
        }
        evpl_iovec_release(evpl, &r);
        evpl_set_loop_hooks(evpl, &hooks);
        handover_hook_armed = 1;
        evpl_continue(evpl); /* the write is made at the end of this pass */
        T_EQ(handover_hook_armed, 0);
    } else {
        evpl_deferral_init(&d, handover_write, NULL);
        evpl_defer(evpl, &d);
        evpl_continue(evpl); /* the write is made in this pass */
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    T_OK(fd >= 0);
    for (int i = 0; i < 100; i++) {
        T_EQ(pread(fd, back, sizeof(back), 8192), (ssize_t) sizeof(back));
        if (back[0] == 0xcc && back[4095] == 0xcc) {
            break;
        }
        usleep(5000); /* the loop is not run meanwhile */
    }
    close(fd);
    T_EQ(back[0], 0xcc);
    T_EQ(back[4095], 0xcc);
    WAIT(evpl, &handover_op);
    T_EQ(handover_op.status, 0);
    evpl_set_loop_hooks(evpl, NULL);
    evpl_iovec_release(evpl, &handover_v);
    evpl_block_close_queue(evpl, handover_q);
    evpl_destroy(evpl);
    evpl_block_close_device(dev);
    T_EQ(unlink(path), 0);
} /* handover */

/* Statement 9 with queues on two worker threads at once, on one device:
 * every completion runs on the thread whose loop owns the queue, and each
 * worker's writes read back as written by it. */
#define TW_OPS 64

struct tworker {
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    struct evpl_iovec v;
    pthread_t self;
    int id, issued, done, wrong_thread, errors;
    atomic_int finished;
};

static void tw_next(struct evpl *evpl, struct tworker *w);

static void
tw_done(struct evpl *evpl, int status, void *arg)
{
    struct tworker *w = arg;

    w->done++;
    w->wrong_thread += !pthread_equal(pthread_self(), w->self);
    w->errors += status != 0;
    if (w->done % 2 == 0) {
        /* the read of a block just written: its bytes are this worker's */
        const uint8_t *p = w->v.data;

        w->errors += p[0] != (uint8_t) (w->id * 64 + w->done / 2) || p[4095] != p[0];
    }
    tw_next(evpl, w);
}

static void
tw_next(struct evpl *evpl, struct tworker *w)
{
    uint64_t off = ((uint64_t) w->id * TW_OPS + (uint64_t) (w->issued / 2)) << 12;

    if (w->issued == 2 * TW_OPS) {
        atomic_store(&w->finished, 1);
        return;
    }
    if (w->issued % 2 == 0) {
        memset(w->v.data, w->id * 64 + w->issued / 2 + 1, 4096);
        evpl_block_write(evpl, w->q, &w->v, 1, off, 0, tw_done, w);
    } else {
        memset(w->v.data, 0, 4096);
        evpl_block_read(evpl, w->q, &w->v, 1, off, tw_done, w);
    }
    w->issued++;
}

static void *
tw_init(struct evpl *evpl, void *arg)
{
    struct tworker *w = arg;

    w->self = pthread_self();
    w->q = evpl_block_open_queue(evpl, w->dev);
    T_OK(w->q != NULL);
    w->v = aligned(evpl, 4096);
    tw_next(evpl, w);
    return w;
}

static void
tw_shutdown(struct evpl *evpl, void *arg)
{
    struct tworker *w = arg;

    evpl_block_close_queue(evpl, w->q);
    evpl_iovec_release(evpl, &w->v);
}

static void
queues_on_two_threads(void)
{
    char path[300];
    struct tworker w[2];
    struct evpl_thread *t[2];
    uint64_t end = t_now_ns() + 20000000000ull;

    snprintf(path, sizeof(path), "%s/twothreads", dir);
    make_file(path, 1 << 20);
    memset(w, 0, sizeof(w));
    w[0].dev = evpl_block_open_device(proto, path);
    T_OK(w[0].dev != NULL);
    for (int i = 0; i < 2; i++) {
        w[i].dev = w[0].dev;
        w[i].id = i;
        t[i] = evpl_thread_create(NULL, tw_init, tw_shutdown, &w[i]);
    }
    while (!atomic_load(&w[0].finished) || !atomic_load(&w[1].finished)) {
        T_OK(t_now_ns() < end);
        usleep(1000);
    }
    for (int i = 0; i < 2; i++) {
        evpl_thread_destroy(t[i]);
        T_EQ(w[i].done, 2 * TW_OPS);
        T_EQ(w[i].wrong_thread, 0);
        T_EQ(w[i].errors, 0);
    }
    evpl_block_close_device(w[0].dev);
    T_EQ(unlink(path), 0);
} /* queues_on_two_threads */

/* An empty {NULL, 0} iovec beside an unaligned one (the bounce path) works
 * both ways; and a request refused for its arguments has had its callback
 * when evpl_block_close_queue returns (evpl_block.h: close waits for every
 * callback; a refused one used to run after, or never once the loop was
 * gone) */
static void
odd_iovecs_and_close(void)
{
    struct evpl *evpl = t_loop();
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    struct evpl_iovec u[2];
    struct op w = {0}, r = {0}, refused = {0};
    char path[300], *b = malloc(4097), *back = malloc(4097);

    T_OK(b != NULL && back != NULL);
    q = file_queue(evpl, path, sizeof(path), "odd", 1 << 20, &dev);
    memset(b, 7, 4097);
    memset(u, 0, sizeof(u));
    u[0].data = b + 1; /* unaligned: bounced */
    u[0].length = 4096;
    evpl_block_write(evpl, q, u, 2, 0, 0, op_done, &w);
    WAIT(evpl, &w);
    T_EQ(w.status, 0);
    u[0].data = back + 1;
    evpl_block_read(evpl, q, u, 2, 0, op_done, &r);
    WAIT(evpl, &r);
    T_EQ(r.status, 0);
    T_OK(memcmp(back + 1, b + 1, 4096) == 0);

    u[0].data = b;
    evpl_block_write(evpl, q, u, 1, 1, 0, op_done, &refused); /* offset 1: EINVAL */
    T_EQ(refused.done, 0);
    evpl_block_close_queue(evpl, q);
    T_EQ(refused.done, 1);
    T_EQ(refused.status, EINVAL);
    evpl_destroy(evpl);
    evpl_block_close_device(dev);
    T_EQ(unlink(path), 0);
    free(b);
    free(back);
} /* odd_iovecs_and_close */

static void
run_child(const char *name, void (*fn)(void))
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        fn();
        exit(0);
    }
    T_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        fprintf(stderr, "%s: skipped\n", name);
        return;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        T_FAIL("%s: child ended with status %#x", name, status);
    }
}

int
main(void)
{
    const char *b = getenv("T_BLOCK");

    alarm(120);
    proto_name = b && *b ? b : "io_uring";
    proto = strcmp(proto_name, "libaio") == 0 ? EVPL_BLOCK_PROTOCOL_LIBAIO
                                              : EVPL_BLOCK_PROTOCOL_IO_URING;
    other = proto == EVPL_BLOCK_PROTOCOL_IO_URING ? EVPL_BLOCK_PROTOCOL_LIBAIO
                                                  : EVPL_BLOCK_PROTOCOL_IO_URING;
    snprintf(dir, sizeof(dir), "%s/evpl-block-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp");
    T_OK(mkdtemp(dir) != NULL);
    fprintf(stderr, "block protocol: %s, files in %s\n", proto_name, dir);

    /* before the library is initialised here: children set their config */
    run_child("disabled", disabled_child);
    run_child("fs_faults", fs_faults_child);
    run_child("sector4k", sector4k_child);
    run_child("odd_buffer_zeroes", odd_buffer_zeroes_child);
    run_child("retry_virtual_clock", retry_virtual_clock_child);
    {
        char mnt[320];

        snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
        rmdir(mnt);
    }
    {
        /* the backend may be missing from this build or machine */
        char probe[300];
        struct evpl_block_device *d;

        snprintf(probe, sizeof(probe), "%s/probe", dir);
        make_file(probe, 1 << 20);
        d = evpl_block_open_device(proto, probe);
        unlink(probe);
        if (!d) {
            rmdir(dir);
            T_SKIP("block protocol %s unavailable", proto_name);
        }
        evpl_block_close_device(d);
    }
    basics();
    refusals();
    integrity();
    close_inflight();
    close_ends_new_refusals();
    destroy_with_queue_open();
    close_from_callback();
    resubmit_in_callback();
    refused_submission();
    retry_refused();
    burst();
    metric_label();
    hooks_bracket_wait();
    handover(0);
    handover(1);
    queues_on_two_threads();
    odd_iovecs_and_close();
    loop_device();
    T_EQ(rmdir(dir), 0);
    return 0;
}
