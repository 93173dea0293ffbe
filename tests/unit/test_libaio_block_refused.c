/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit block */
/*
 * libaio block queue when the kernel takes nothing (io_submit fails with
 * EAGAIN: the system's aio-max-nr is used up, say) and nothing of the
 * queue is in flight: closing the queue cannot wait for a completion to
 * make room, so the waiting requests end inside the close with EAGAIN,
 * each exactly once, oldest first; the requests in flight when the
 * refusal began complete normally.  (The close used to retry for ever.)
 *
 * io_submit is interposed: this program's definition is the one the
 * library's static archive resolves to; it forwards to libaio's own unless
 * refusing.
 */
#include <evpl/evpl.h>

#include "t.h"

#ifndef HAVE_LIBAIO
int
main(void)
{
    T_SKIP("built without libaio");
}
#else
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NREQ 8
#define BS   4096

static char path[300];

static int refusing, refusals;

int
io_submit(io_context_t ctx, long nr, struct iocb *ios[])
{
    static int (*real)(io_context_t, long, struct iocb *[]);

    if (refusing) {
        refusals++;
        return -EAGAIN;
    }
    if (!real) {
        real = (int (*)(io_context_t, long, struct iocb *[])) dlsym(RTLD_NEXT, "io_submit");
        T_OK(real != NULL);
    }
    return real(ctx, nr, ios);
}

struct op {
    int done, status, index;
};

static int order[NREQ], norder;

static void
op_done(struct evpl *evpl, int status, void *arg)
{
    struct op *o = arg;

    (void) evpl;
    o->done++;
    o->status = status;
    order[norder++] = o->index;
}

int
main(void)
{
    struct evpl *evpl;
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    struct evpl_iovec v[NREQ];
    struct op ops[NREQ];
    int fd;

    alarm(30); /* a close that retries for ever ends here */
    fd = t_temp_file(path, sizeof(path), "libaio-refused", 1 << 20);
    close(fd);
    dev = evpl_block_open_device(EVPL_BLOCK_PROTOCOL_LIBAIO, path);
    if (!dev) {
        unlink(path);
        T_SKIP("libaio block protocol unavailable");
    }
    {
        /* a loop that never polls submits each request at once (not at
         * the end of the pass): the first half is in the kernel before the
         * refusal starts */
        struct evpl_thread_config *tc = evpl_thread_config_init();

        evpl_thread_config_set_poll_mode(tc, 0);
        evpl = evpl_create(tc);
        evpl_thread_config_release(tc);
    }
    q = evpl_block_open_queue(evpl, dev);
    T_OK(q != NULL);

    memset(ops, 0, sizeof(ops));
    for (int i = 0; i < NREQ; i++) {
        T_EQ(evpl_iovec_alloc(evpl, BS, BS, 1, 0, &v[i]), 1);
        ops[i].index = i;
    }
    /* the first half goes in (not yet reaped), then the kernel refuses */
    for (int i = 0; i < NREQ / 2; i++) {
        evpl_block_read(evpl, q, &v[i], 1, (uint64_t) i * BS, op_done, &ops[i]);
    }
    T_EQ(refusals, 0);
    T_EQ(norder, 0);
    refusing = 1;
    for (int i = NREQ / 2; i < NREQ; i++) {
        evpl_block_read(evpl, q, &v[i], 1, (uint64_t) i * BS, op_done, &ops[i]);
        T_EQ(ops[i].done, 0); /* never inside the call */
    }
    evpl_block_close_queue(evpl, q);
    T_OK(refusals > 0); /* the kernel really was asked, and said no */
    refusing = 0;
    T_EQ(norder, NREQ);
    for (int i = 0; i < NREQ; i++) {
        T_EQ(ops[i].done, 1);
        T_EQ(ops[i].status, i < NREQ / 2 ? 0 : EAGAIN);
        if (i >= NREQ / 2) {
            T_EQ(order[i], i); /* the refused ones, oldest first (the kernel
                                * orders the others) */
        }
        evpl_iovec_release(evpl, &v[i]);
    }
    evpl_block_close_device(dev);
    evpl_destroy(evpl);
    unlink(path);
    return 0;
}
#endif
