/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_rdma.h directly, include evpl/evpl.h instead"
#endif

#define EVPL_RDMA_FLAG_TAKE_REF 0x01

/*
 * The (key, address) a peer on bind uses to read or write the memory of
 * iovec (library memory only).  0/0 on binds without one-sided operations
 * (evpl_bind_is_rdma() == 0).  Owning thread.
 */
EVPL_API void evpl_rdma_get_address(struct evpl *evpl, struct evpl_bind *bind,
                                    struct evpl_iovec *iovec, uint32_t *r_key, uint64_t *r_address);

/*
 * Copy from the peer's memory into iov[0..niov-1].  Borrows iov (the
 * library takes its own references while the read is in flight).
 * callback(status, private_data) reports 0 or a positive errno; on a bind
 * without one-sided operations it runs before this call returns, with
 * ENOTSUP.  Owning thread.
 */
EVPL_API void evpl_rdma_read(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
                             uint64_t remote_address, struct evpl_iovec *iov, int niov,
                             void (*callback)(int status, void *private_data), void *private_data);

/*
 * Copy iov[0..niov-1] into the peer's memory.  flags 0 borrows iov (cloned);
 * EVPL_RDMA_FLAG_TAKE_REF takes the caller's references.  niov == 0 does
 * nothing (no callback).  On a bind without one-sided operations the
 * callback runs before this call returns, with ENOTSUP (taken references
 * are released).  Owning thread.
 */
EVPL_API void evpl_rdma_write(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
                              uint64_t remote_address, struct evpl_iovec *iov, int niov,
                              unsigned int flags, void (*callback)(int status, void *private_data),
                              void *private_data);
