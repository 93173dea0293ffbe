/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_memory.h directly, include evpl/evpl.h instead"
#endif

/* C11 atomics in C; in C++ (no <stdatomic.h> inside extern "C") the same
 * storage, a plain unsigned int, updated with the compiler's builtins */
#ifdef __cplusplus
#define EVPL__ATOMIC_UINT                 unsigned int
#define evpl__atomic_fetch_sub_acq_rel(p) __atomic_fetch_sub((p), 1u, __ATOMIC_ACQ_REL)
#define evpl__atomic_fetch_add_relaxed(p) __atomic_fetch_add((p), 1u, __ATOMIC_RELAXED)
#else
#include <stdatomic.h>
#define EVPL__ATOMIC_UINT                 atomic_uint
#define evpl__atomic_fetch_sub_acq_rel(p) atomic_fetch_sub_explicit((p), 1, memory_order_acq_rel)
#define evpl__atomic_fetch_add_relaxed(p) atomic_fetch_add_explicit((p), 1, memory_order_relaxed)
#endif

/*
 * Zero-copy buffers.  Data lives in large slabs carved into fixed-size
 * buffers (global config buffer_size, default 2 MiB) with a reference
 * count.  An iovec is a slice of one buffer plus a pointer to that count.
 *
 * Copying a struct evpl_iovec makes a borrowed view with no reference of
 * its own; evpl_iovec_clone* add a reference, evpl_iovec_release drops one.
 * The layout of both structs never depends on build flags.
 */

#define EVPL_IOVEC_FLAG_SHARED 1 /* atomic count: any thread may clone/release */
#define EVPL_IOVEC_FLAG_GLOBAL 2 /* not counted: the application frees it once */

struct evpl_slab;

/* INTERNAL: the reference-counted header of a buffer. */
struct evpl_iovec_ref {
    union {
        unsigned int refcnt;
        EVPL__ATOMIC_UINT refcnt_atomic;
    };
    unsigned int flags;
    struct evpl_slab *slab;
    void (*release)(struct evpl *evpl, struct evpl_iovec_ref *ref);
};

struct evpl_iovec {
    void *data;
    unsigned int length;
    unsigned int pad;
    struct evpl_iovec_ref *ref;
};

#define evpl_memory_abort_if(cond, ...)                          \
    do {                                                         \
        if (__builtin_expect(!!(cond), 0)) {                     \
            evpl_abort("core", __FILE__, __LINE__, __VA_ARGS__); \
        }                                                        \
    } while (0)

/* Profiling hooks: no-ops in this build (EVPL_IOVEC_PROFILE is not supported). */
EVPL_API void evpl_iovec_profile_dump(const char *reason);

static inline void
evpl_iovec_profile_assign(struct evpl_iovec *iovec)
{
    (void) iovec;
} /* evpl_iovec_profile_assign */

static inline void
evpl_iovec_profile_release(struct evpl_iovec *iovec)
{
    (void) iovec;
} /* evpl_iovec_profile_release */

static inline void
evpl_iovec_profile_move(struct evpl_iovec *dst, struct evpl_iovec *src)
{
    (void) dst;
    (void) src;
} /* evpl_iovec_profile_move */

/*
 * Allocate length bytes as 1..max_iovecs iovecs in r_iovec[] (flags 0:
 * this loop's LOCAL pool; EVPL_IOVEC_FLAG_SHARED: the shared pool).  Any
 * length up to buffer_size (minus alignment padding) gives one contiguous
 * iovec.  alignment is 0 or a power of two.  Returns the number of iovecs
 * (each carrying one reference the caller owns), 0 for length 0, or -1
 * when more than max_iovecs would be needed, max_iovecs is 0, the alignment
 * is invalid, or memory is exhausted (nothing is owned then; a log line
 * says why).  Owning thread of evpl.
 */
EVPL_API int evpl_iovec_alloc(struct evpl *evpl, unsigned int length, unsigned int alignment,
                              unsigned int max_iovecs, unsigned int flags,
                              struct evpl_iovec *r_iovec);

/*
 * One whole fresh buffer (length == buffer_size), SHARED|GLOBAL: the
 * library never counts references on it; release it exactly once with
 * evpl_iovec_release after every operation using it completed.  On memory
 * exhaustion r_iovec->data is NULL and length 0.
 */
EVPL_API void evpl_iovec_alloc_global(struct evpl *evpl, struct evpl_iovec *r_iovec);

/*
 * Like evpl_iovec_alloc (LOCAL pool) but the space is not consumed until
 * evpl_iovec_commit, which must come before any other allocation on this
 * loop.  Returns the iovec count or -1.
 */
EVPL_API int evpl_iovec_reserve(struct evpl *evpl, unsigned int length, unsigned int alignment,
                                unsigned int max_vec, struct evpl_iovec *r_iovec);

/* Consume reserved space up to data + length of each iovec (rounded up to
 * alignment).  References are unchanged. */
EVPL_API void evpl_iovec_commit(struct evpl *evpl, unsigned int alignment,
                                struct evpl_iovec *iovecs, int niovs);

/* INTERNAL: drop one count; the last one recycles the buffer. */
static inline void
evpl_iovec_ref_release(struct evpl *evpl, struct evpl_iovec_ref *ref)
{
    unsigned int flags = ref->flags, prev;

    /* LOCAL (flags 0) is the common case: one compare to reach it */
    if (__builtin_expect(flags == 0, 1)) {
        prev = ref->refcnt--;
    } else if (flags & EVPL_IOVEC_FLAG_GLOBAL) {
        return;
    } else {
        prev = evpl__atomic_fetch_sub_acq_rel(&ref->refcnt_atomic);
    }
    evpl_memory_abort_if(prev == 0,
                         "iovec released with no reference left "
                         "(double release or release of a borrowed view), buffer ref %p",
                         (void *) ref);
    if (prev == 1) {
        ref->release(evpl, ref);
    }
} /* evpl_iovec_ref_release */

/* INTERNAL: release without the GLOBAL special case (no-op for GLOBAL). */
static inline void
evpl_iovec_release_internal(struct evpl *evpl, struct evpl_iovec *iovec)
{
    evpl_iovec_profile_release(iovec);
    evpl_iovec_ref_release(evpl, iovec->ref);
} /* evpl_iovec_release_internal */

static inline void
evpl_iovecs_release_internal(struct evpl *evpl, struct evpl_iovec *iov, int niov)
{
    for (int i = 0; i < niov; i++) {
        evpl_iovec_release_internal(evpl, &iov[i]);
    }
} /* evpl_iovecs_release_internal */

/*
 * Drop the reference iovec holds.  evpl is the caller's own loop or NULL.
 * A GLOBAL iovec's buffer is freed unconditionally and iovec->data cleared.
 * LOCAL iovecs: on the thread owning the reference only.
 */
static inline void
evpl_iovec_release(struct evpl *evpl, struct evpl_iovec *iovec)
{
    if (__builtin_expect((iovec->ref->flags & EVPL_IOVEC_FLAG_GLOBAL) != 0, 0)) {
        evpl_iovec_profile_release(iovec);
        iovec->ref->release(evpl, iovec->ref);
        iovec->data = NULL;
        return;
    }
    evpl_iovec_release_internal(evpl, iovec);
} /* evpl_iovec_release */

static inline void
evpl_iovecs_release(struct evpl *evpl, struct evpl_iovec *iov, int niov)
{
    for (int i = 0; i < niov; i++) {
        evpl_iovec_release(evpl, &iov[i]);
    }
} /* evpl_iovecs_release */

static inline void *
evpl_iovec_data(const struct evpl_iovec *iovec)
{
    return iovec->data;
} /* evpl_iovec_data */

static inline unsigned int
evpl_iovec_length(const struct evpl_iovec *iovec)
{
    return iovec->length;
} /* evpl_iovec_length */

static inline void
evpl_iovec_set_length(struct evpl_iovec *iovec, unsigned int length)
{
    iovec->length = length;
} /* evpl_iovec_set_length */

/* INTERNAL: +1 (atomic for SHARED, nothing for GLOBAL). */
static inline void
evpl_iovec_ref_incr(struct evpl_iovec_ref *ref)
{
    if (ref->flags & EVPL_IOVEC_FLAG_GLOBAL) {
        return;
    }
    if (ref->flags & EVPL_IOVEC_FLAG_SHARED) {
        evpl__atomic_fetch_add_relaxed(&ref->refcnt_atomic);
    } else {
        ref->refcnt++;
    }
} /* evpl_iovec_ref_incr */

/* INTERNAL: +1 on ref and store it in dst. */
static inline void
evpl_iovec_take_ref(struct evpl_iovec *dst, struct evpl_iovec_ref *src)
{
    evpl_iovec_ref_incr(src);
    dst->ref = src;
} /* evpl_iovec_take_ref */

/* dst = [src->data + offset, length] with a reference of its own. */
static inline void
evpl_iovec_clone_segment(struct evpl_iovec *dst, const struct evpl_iovec *src, unsigned int offset,
                         unsigned int length)
{
    evpl_memory_abort_if((uint64_t) offset + length > src->length,
                         "evpl_iovec_clone_segment: offset %u + length %u beyond iovec length %u",
                         offset, length, src->length);
    dst->data = (char *) src->data + offset;
    dst->length = length;
    dst->pad = 0;
    evpl_iovec_take_ref(dst, src->ref);
    evpl_iovec_profile_assign(dst);
} /* evpl_iovec_clone_segment */

/* dst describes the same range as src, with a reference of its own. */
static inline void
evpl_iovec_clone(struct evpl_iovec *dst, struct evpl_iovec *src)
{
    dst->data = src->data;
    dst->length = src->length;
    dst->pad = 0;
    evpl_iovec_take_ref(dst, src->ref);
    evpl_iovec_profile_assign(dst);
} /* evpl_iovec_clone */

/* dst = [src->data + offset, length] taking src's reference; src then owns
 * nothing (its members are left as they were). */
static inline void
evpl_iovec_move_segment(struct evpl_iovec *dst, struct evpl_iovec *src, unsigned int offset,
                        unsigned int length)
{
    evpl_memory_abort_if((uint64_t) offset + length > src->length,
                         "evpl_iovec_move_segment: offset %u + length %u beyond iovec length %u",
                         offset, length, src->length);
    dst->data = (char *) src->data + offset;
    dst->length = length;
    dst->pad = 0;
    dst->ref = src->ref;
    evpl_iovec_profile_move(dst, src);
} /* evpl_iovec_move_segment */

/* *dst = *src, then src->data = NULL: ownership moves to dst. */
static inline void
evpl_iovec_move(struct evpl_iovec *dst, struct evpl_iovec *src)
{
    evpl_memory_abort_if(!dst || !src, "evpl_iovec_move: NULL iovec");
    *dst = *src;
    src->data = NULL;
    evpl_iovec_profile_move(dst, src);
} /* evpl_iovec_move */

/* INTERNAL: store ref in iovec without counting. */
static inline void
evpl_iovec_set_ref(struct evpl_iovec *iovec, struct evpl_iovec_ref *ref)
{
    iovec->ref = ref;
} /* evpl_iovec_set_ref */

static inline struct evpl_iovec_ref *
evpl_iovec_get_ref(const struct evpl_iovec *iovec)
{
    return iovec->ref;
} /* evpl_iovec_get_ref */

/* INTERNAL: the configured slab size (auto-initialises). */
EVPL_API uint64_t evpl_get_slab_size(void);

/*
 * INTERNAL: a whole registered slab for an external stack, never carved
 * into buffers, freed at exit.  Returns its base (NULL if memory is
 * exhausted) and an opaque handle in *slab_private.
 */
EVPL_API void *evpl_slab_alloc(void **slab_private);
