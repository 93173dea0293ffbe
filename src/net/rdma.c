/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * One-sided operations.  A protocol with RDMA semantics (rdma.md §1)
 * supplies them through its operation table; every other bind takes the
 * documented non-RDMA path: address 0/0, and ENOTSUP reported to the
 * callback before the call returns (rdma.md §1, statement 1).
 */
#include <errno.h>

#include "net/net.h"

EVPL_API void
evpl_rdma_get_address(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *iovec,
                      uint32_t *r_key, uint64_t *r_address)
{
    EVPL_OWNER_ONLY(evpl);
    *r_key = 0;
    *r_address = 0;
    if (bind->protocol->rdma_address) {
        bind->protocol->rdma_address(bind, iovec, r_key, r_address);
    }
}

EVPL_API void
evpl_rdma_read(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
               uint64_t remote_address, struct evpl_iovec *iov, int niov,
               void (*callback)(int status, void *private_data), void *private_data)
{
    EVPL_OWNER_ONLY(evpl);
    if (bind->protocol->rdma_read) {
        bind->protocol->rdma_read(evpl, bind, remote_key, remote_address, iov, niov, callback,
                                  private_data);
        return;
    }
    if (callback) {
        callback(ENOTSUP, private_data);
    }
}

EVPL_API void
evpl_rdma_write(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
                uint64_t remote_address, struct evpl_iovec *iov, int niov, unsigned int flags,
                void (*callback)(int status, void *private_data), void *private_data)
{
    EVPL_OWNER_ONLY(evpl);
    if (niov <= 0) {
        return; /* nothing queued, no callback (as upstream) */
    }
    if (bind->protocol->rdma_write) {
        bind->protocol->rdma_write(evpl, bind, remote_key, remote_address, iov, niov, flags,
                                   callback, private_data);
        return;
    }
    if (flags & EVPL_RDMA_FLAG_TAKE_REF) {
        evpl_iovecs_release_internal(evpl, iov, niov);
    }
    if (callback) {
        callback(ENOTSUP, private_data);
    }
}
