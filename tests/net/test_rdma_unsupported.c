/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * rdma.md statement 1 (and 5 for the non-RDMA path): on a TCP bind,
 * evpl_rdma_read/write call the callback with ENOTSUP before returning,
 * evpl_rdma_get_address yields 0/0, evpl_bind_is_rdma is 0; a write with
 * TAKE_REF releases the references it took, one without leaves ours.
 */
#include <evpl/evpl.h>

#include "t.h"

static int calls, last_status;

static void
done(int status, void *arg)
{
    calls++;
    last_status = status;
    T_EQ_PTR(arg, &calls);
}

static void
notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
}

int
main(void)
{
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_endpoint *ep = evpl_endpoint_create("127.0.0.1", 9); /* discard: refused */
    struct evpl_bind *bind =
        evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, ep, notify, NULL, NULL);
    struct evpl_iovec iov[2];
    uint32_t key = 7;
    uint64_t addr = 7;
    int64_t base;

    T_OK(bind != NULL);
    T_EQ(evpl_bind_is_rdma(bind), 0);
    T_EQ(evpl_iovec_alloc(evpl, 4096, 0, 1, 0, &iov[0]), 1);
    T_EQ(evpl_iovec_alloc(evpl, 2 * 1024 * 1024, 0, 1, 0, &iov[1]), 1); /* a whole buffer */
    base = t_metric("evpl_allocator_buffers_in_use");

    evpl_rdma_get_address(evpl, bind, &iov[0], &key, &addr);
    T_EQ(key, 0);
    T_EQ(addr, 0);

    evpl_rdma_read(evpl, bind, 1, 4096, iov, 1, done, &calls);
    T_EQ(calls, 1); /* synchronously */
    T_EQ(last_status, ENOTSUP);

    evpl_rdma_write(evpl, bind, 1, 4096, iov, 2, 0, done, &calls);
    T_EQ(calls, 2);
    T_EQ(last_status, ENOTSUP);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), base); /* ours untouched */

    evpl_rdma_write(evpl, bind, 1, 4096, &iov[1], 1, EVPL_RDMA_FLAG_TAKE_REF, done, &calls);
    T_EQ(calls, 3);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), base - 1); /* taken and released */

    /* niov 0 too: the bind cannot do RDMA at all (rdma.md §4's no-callback
     * QUIRK is for RDMA binds) */
    last_status = 0;
    evpl_rdma_write(evpl, bind, 1, 4096, iov, 0, 0, done, &calls);
    T_EQ(calls, 4);
    T_EQ(last_status, ENOTSUP);
    last_status = 0;
    evpl_rdma_read(evpl, bind, 1, 4096, iov, 0, done, &calls);
    T_EQ(calls, 5);
    T_EQ(last_status, ENOTSUP);

    evpl_iovec_release(evpl, &iov[0]);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
