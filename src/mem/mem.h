/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Private memory layer: slabs, buffers, per-loop caches, registration of
 * slabs with frameworks (RDMA, libfabric, io_uring fixed buffers, VFIO).
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <evpl/evpl.h>

#define EVPL_MEM_MAX_FRAMEWORKS 8

/* A buffer: the ref header is the first member, so ref <-> buffer is a cast. */
struct evpl_buffer {
    struct evpl_iovec_ref ref;
    char *data;
    uint32_t used;                /* fill mark while it is a loop's current buffer */
    uint32_t index;               /* within its slab */
    uint32_t waits;               /* taken for the compact pool (data that waits) */
    struct evpl_buffer *next;     /* free-list link */
    _Atomic(struct evpl *) owner; /* loop that last took it (leak reports) */
};

struct evpl_slab {
    char *base;
    uint64_t size;
    uint32_t nbuffers; /* 0 for a whole-slab loan (evpl_slab_alloc) */
    int huge;
    struct evpl_buffer *buffers;
    struct evpl_slab *next;
    /* per-framework registration handle: iovec -> buffer -> slab -> handle */
    void *reg[EVPL_MEM_MAX_FRAMEWORKS];
};

/* One pool (LOCAL or SHARED) of one loop. */
struct evpl_mem_pool {
    struct evpl_buffer *current;
    uint32_t buffer_size; /* copy of the global, next to current (fast path) */
    uint32_t nfree;
    struct evpl_buffer *free;
};

struct evpl_mem_cache {
    struct evpl_mem_pool local;
    struct evpl_mem_pool shared;
    /* current buffer only: where queues that wait are compacted to
     * (evpl__iovec_ring_compact), apart from short-lived data, so what
     * lives long is packed together; its buffers come from local's */
    struct evpl_mem_pool compact;
    _Atomic uint64_t hits;   /* buffers taken from this loop's free lists */
    _Atomic uint64_t misses; /* buffers taken from the global pool */
    uint64_t pooled;         /* references backends keep as receive space (not leaks) */
};

/*
 * A framework that needs every slab registered.  register_slab returns a
 * handle (non-NULL) or NULL on failure; it is called for every existing
 * slab at registration and for every new slab after.
 */
struct evpl_mem_framework {
    const char *name;
    void *(*register_slab)(void *arg, void *base, uint64_t size);
    void (*unregister_slab)(void *arg, void *base, uint64_t size, void *handle);
    void *arg;
};

/* Returns the framework's id (index into slab->reg) or a negative errno.
 * fw is kept (not copied) until evpl__mem_framework_unregister. */
int evpl__mem_framework_register(const struct evpl_mem_framework *fw);
void evpl__mem_framework_unregister(int id);

/* O(1): the framework's handle for the slab holding iovec. */
static inline void *
evpl__iovec_mem_handle(const struct evpl_iovec *iovec, int framework_id)
{
    return iovec->ref->slab->reg[framework_id];
} /* evpl__iovec_mem_handle */

static inline struct evpl_buffer *
evpl__iovec_buffer(const struct evpl_iovec *iovec)
{
    return (struct evpl_buffer *) iovec->ref;
} /* evpl__iovec_buffer */

struct evpl_mem_stats {
    uint64_t slabs; /* slabs ever mapped (buffer slabs and loans) */
    uint64_t mapped_bytes;
    uint64_t free_buffers;   /* on the global free list */
    uint64_t buffers_in_use; /* on no free list */
    uint64_t buffer_size;
};

void evpl__mem_stats(struct evpl_mem_stats *stats);

/* Process-wide setup from the installed config (called by evpl_init). */
void evpl__mem_init(const struct evpl_global_config *config);
/* At exit: abort if buffers are still referenced (see memory.md §8). */
void evpl__mem_exit_check(void);

/* Debug leak report for a loop being destroyed; returns buffers still held. */
uint64_t evpl__mem_report_owned(struct evpl *evpl);

/* A LOCAL buffer becomes SHARED before a reference crosses threads. */
void evpl__iovec_make_shared(struct evpl *evpl, const struct evpl_iovec *iovec);

/* Receive space for transports (see buffer.c). */
int evpl__iovec_reserve_tail(struct evpl *evpl, unsigned int min, struct evpl_iovec *iov);

/* Per-loop cache. */
void evpl__mem_loop_init(struct evpl *evpl);
void evpl__mem_loop_cleanup(struct evpl *evpl);

/* Internal for slab.c <-> buffer.c. */
/* The pool buffer holding [data, data + len), found by address (not from
 * an iovec's ref, which memory the caller describes may not set), or NULL. */
struct evpl_buffer *evpl__mem_buffer_of(const void *data, uint64_t len);

struct evpl_buffer *evpl__mem_global_get(void);
void evpl__mem_global_put(struct evpl_buffer *buf);
void evpl__mem_global_put_list(struct evpl_buffer *head, struct evpl_buffer *tail, uint32_t n);
/* Freed GLOBAL buffers, kept apart: see evpl__buffer_release */
void evpl__mem_global_freed_put(struct evpl_buffer *buf);
struct evpl_buffer *evpl__mem_global_freed_get(void);
void evpl__buffer_release(struct evpl *evpl, struct evpl_iovec_ref *ref);
void evpl__buffer_poison(struct evpl_buffer *buf);
void evpl__buffer_unpoison(struct evpl_buffer *buf);

extern uint64_t evpl__buffer_size;
extern _Atomic int64_t evpl__buffers_in_use;
/* A cap on buffer memory is set (max_slabs): freed buffers go back to the
 * global pool, not to the freeing loop's own lists, where no other loop
 * could take them (an allocation failed with none in use: helper-117). */
extern int evpl__mem_capped;
