/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit block */
/*
 * io_uring block queue when the kernel takes no submission entry (the
 * framework's fault hook refuses them, as the kernel would under memory
 * pressure): requests wait in order and go in once entries are taken
 * again, their callbacks never run inside evpl_block_*; closing the queue
 * while the kernel still refuses ends the waiting ones with EAGAIN, each
 * exactly once, after the requests in flight completed normally.
 */
#include <evpl/evpl.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "backends/io_uring/uring.h"

#include "t.h"

#define NREQ 16
#define BS   4096

static char path[300];

struct op {
    int done;
    int status;
    int index;
};

static int order[NREQ * 2], norder;

static void
op_done(struct evpl *evpl, int status, void *arg)
{
    struct op *o = arg;

    (void) evpl;
    o->done++;
    o->status = status;
    order[norder++] = o->index;
}

static void
pump_until(struct evpl *evpl, struct op *ops, int n)
{
    uint64_t end = t_now_ns() + 10000000000ull;

    for (;;) {
        int all = 1;

        for (int i = 0; i < n; i++) {
            all &= ops[i].done != 0;
        }
        if (all) {
            return;
        }
        T_OK(t_now_ns() < end);
        evpl_continue(evpl);
    }
}

static uint8_t
pat(int block, int i)
{
    return (uint8_t) (block * 31 + i * 7 + 1);
}

/* refused for a while: everything is read, in submission order of entry */
static void
refused_then_taken(struct evpl *evpl, struct evpl_block_queue *q)
{
    struct evpl_iovec v[NREQ];
    struct op ops[NREQ];

    memset(ops, 0, sizeof(ops));
    norder = 0;
    evpl__uring_refuse_sqes = 5;
    for (int i = 0; i < NREQ; i++) {
        T_EQ(evpl_iovec_alloc(evpl, BS, BS, 1, 0, &v[i]), 1);
        ops[i].index = i;
        evpl_block_read(evpl, q, &v[i], 1, (uint64_t) i * BS, op_done, &ops[i]);
    }
    for (int i = 0; i < NREQ; i++) {
        T_EQ(ops[i].done, 0); /* never inside the call */
    }
    pump_until(evpl, ops, NREQ);
    T_EQ(evpl__uring_refuse_sqes, 0);
    for (int i = 0; i < NREQ; i++) {
        const uint8_t *p = evpl_iovec_data(&v[i]);

        T_EQ(ops[i].done, 1);
        T_EQ(ops[i].status, 0);
        for (int j = 0; j < BS; j++) {
            if (p[j] != pat(i, j)) {
                T_FAIL("request %d byte %d: %u, expected %u", i, j, p[j], pat(i, j));
            }
        }
        evpl_iovec_release(evpl, &v[i]);
    }
}

/* closed while the kernel takes nothing: the in-flight ones complete, the
 * waiting ones end with EAGAIN, each callback exactly once */
static void
close_while_refused(struct evpl *evpl, struct evpl_block_device *dev)
{
    struct evpl_block_queue *q = evpl_block_open_queue(evpl, dev);
    struct evpl_iovec v[NREQ];
    struct op ops[NREQ];

    T_OK(q != NULL);
    memset(ops, 0, sizeof(ops));
    norder = 0;
    for (int i = 0; i < NREQ; i++) {
        T_EQ(evpl_iovec_alloc(evpl, BS, BS, 1, 0, &v[i]), 1);
        ops[i].index = i;
        if (i == NREQ / 2) {
            evpl__uring_refuse_sqes = ~0u; /* from here on, for good */
        }
        evpl_block_read(evpl, q, &v[i], 1, (uint64_t) i * BS, op_done, &ops[i]);
    }
    for (int i = 0; i < 3; i++) {
        evpl_continue(evpl); /* retries meet refusal */
    }
    evpl_block_close_queue(evpl, q);
    evpl__uring_refuse_sqes = 0;
    for (int i = 0; i < NREQ; i++) {
        T_EQ(ops[i].done, 1);
        T_EQ(ops[i].status, i < NREQ / 2 ? 0 : EAGAIN);
        evpl_iovec_release(evpl, &v[i]);
    }
    T_EQ(norder, NREQ);
    for (int i = NREQ / 2; i < NREQ; i++) {
        T_EQ(order[i], i); /* the waiting ones, oldest first */
    }
    /* nothing fires later: the retry timer went with the queue */
    for (int i = 0; i < 5; i++) {
        evpl_continue(evpl);
    }
    T_EQ(norder, NREQ);
}

int
main(void)
{
    struct evpl *evpl;
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    uint8_t *buf;
    int fd;

    evpl = evpl_create(NULL);
    if (!evpl__uring_available()) {
        T_SKIP("io_uring unavailable");
    }
    fd = t_temp_file(path, sizeof(path), "refused", 0);
    buf = malloc(NREQ * BS);
    for (int b = 0; b < NREQ; b++) {
        for (int i = 0; i < BS; i++) {
            buf[b * BS + i] = pat(b, i);
        }
    }
    T_EQ(pwrite(fd, buf, NREQ * BS, 0), NREQ * BS);
    free(buf);
    close(fd);

    dev = evpl_block_open_device(EVPL_BLOCK_PROTOCOL_IO_URING, path);
    if (!dev) {
        unlink(path);
        T_SKIP("no O_DIRECT io_uring device on %s", path);
    }
    q = evpl_block_open_queue(evpl, dev);
    T_OK(q != NULL);
    refused_then_taken(evpl, q);
    evpl_block_close_queue(evpl, q);
    close_while_refused(evpl, dev);
    evpl_block_close_device(dev);
    evpl_destroy(evpl);
    unlink(path);
    return 0;
}
