/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_block.h directly, include evpl/evpl.h instead"
#endif

/*
 * Block I/O from the event loop: files and block devices (io_uring,
 * libaio), NVMe (io_uring passthrough, VFIO).  A device is opened once per
 * process; every loop doing I/O opens its own queue on it.
 */

struct evpl_block_device;
struct evpl_block_queue;

/* status: 0, or a positive errno (EIO for a short transfer). */
typedef void (*evpl_block_callback_t)(struct evpl *evpl, int status, void *private_data);

/* Any thread.  NULL: protocol out of range or unavailable, the open failed,
 * or the device is already open in this process. */
EVPL_API struct evpl_block_device *evpl_block_open_device(enum evpl_block_protocol_id protocol,
                                                          const char *uri);

/* Every queue must be closed first. */
EVPL_API void evpl_block_close_device(struct evpl_block_device *blockdev);

/* Capacity in bytes. */
EVPL_API uint64_t evpl_block_size(struct evpl_block_device *blockdev);

/* Largest byte count of one read or write; callers split larger ones. */
EVPL_API uint64_t evpl_block_max_request_size(struct evpl_block_device *blockdev);

/* Extension: the logical sector size; offsets and lengths are multiples. */
EVPL_API uint32_t evpl_block_sector_size(struct evpl_block_device *blockdev);

/* A queue for the calling loop (never shared between threads). */
EVPL_API struct evpl_block_queue *evpl_block_open_queue(struct evpl *evpl,
                                                        struct evpl_block_device *blockdev);

/* Operations still in flight are waited for (their callbacks run) first. */
EVPL_API void evpl_block_close_queue(struct evpl *evpl, struct evpl_block_queue *queue);

/*
 * No reference is taken on the iovecs: the memory must stay (unchanged, for
 * writes) until the callback.  At most 64 iovecs.  Iovecs whose address
 * and length are multiples of 4096 are used in place; others go through an
 * aligned bounce buffer.
 */
EVPL_API void evpl_block_read(struct evpl *evpl, struct evpl_block_queue *queue,
                              struct evpl_iovec *iov, int niov, uint64_t offset,
                              evpl_block_callback_t callback, void *private_data);

/* sync != 0: durable when the callback reports success. */
EVPL_API void evpl_block_write(struct evpl *evpl, struct evpl_block_queue *queue,
                               const struct evpl_iovec *iov, int niov, uint64_t offset, int sync,
                               evpl_block_callback_t callback, void *private_data);

/* Make every write that completed before this call durable. */
EVPL_API void evpl_block_flush(struct evpl *evpl, struct evpl_block_queue *queue,
                               evpl_block_callback_t callback, void *private_data);

/* Advisory; backends without discard call back with 0 before returning. */
EVPL_API void evpl_block_discard(struct evpl *evpl, struct evpl_block_queue *queue, uint64_t offset,
                                 uint64_t length, evpl_block_callback_t callback,
                                 void *private_data);

/* The range reads as zeros after success (emulated by writes where the
 * device has no such command; length 0 calls back before returning). */
EVPL_API void evpl_block_write_zeroes(struct evpl *evpl, struct evpl_block_queue *queue,
                                      uint64_t offset, uint64_t length,
                                      evpl_block_callback_t callback, void *private_data);
