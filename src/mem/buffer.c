/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Iovec allocation from per-loop caches.
 *
 * Each loop has a current buffer per pool (LOCAL, SHARED) and carves
 * iovecs from it by bumping a fill mark; the loop holds one reference on
 * its current buffer.  When the last reference of a buffer goes, it
 * returns to the releasing loop's free list (SHARED: a cache bounded to
 * 1024, the excess going back in halves), or to the global pool without a
 * loop.  The steady state takes no lock and makes no syscall.
 */
#include <errno.h>
#include <string.h>

#include "core/internal.h"
#include "mem/mem.h"
#include "mem/ring.h"
#include "mem/size.h"

#define SHARED_CACHE_MAX  1024
#define SHARED_CACHE_KEEP 512

static inline uint64_t
align_up(uint64_t v, uint64_t a)
{
    return a ? (v + a - 1) & ~(a - 1) : v;
} /* align_up */

static inline void
buffer_set_count(struct evpl_buffer *b, unsigned int n)
{
    atomic_store_explicit(&b->ref.refcnt_atomic, n, memory_order_relaxed);
} /* buffer_set_count */

/* A free buffer becomes evpl's, empty, with count 1 */
static void
buffer_hand_out(struct evpl *evpl, struct evpl_buffer *b, unsigned int flags)
{
    atomic_fetch_add_explicit(&evpl__buffers_in_use, 1, memory_order_relaxed);
    evpl__buffer_unpoison(b);
    b->next = NULL;
    b->used = 0;
    b->waits = 0;
    atomic_store_explicit(&b->owner, evpl, memory_order_relaxed);
    if (b->ref.flags != flags) {
        /* (a freed GLOBAL buffer given out as GLOBAL again is not written:
         * a late release may be reading its flags on another thread) */
        b->ref.flags = flags;
    }
    buffer_set_count(b, 1);
} /* buffer_hand_out */

/* A fresh buffer (count 1) for pool, or NULL when memory is exhausted. */
static struct evpl_buffer *
buffer_get(struct evpl *evpl, struct evpl_mem_pool *p, unsigned int flags)
{
    struct evpl_buffer *b = p->free;

    if (b) {
        p->free = b->next;
        p->nfree--;
        evpl_counter_add(&evpl->mem.hits, 1);
    } else {
        b = evpl__mem_global_get();
        if (!b) {
            return NULL;
        }
        evpl_counter_add(&evpl->mem.misses, 1);
    }
    buffer_hand_out(evpl, b, flags);
    return b;
} /* buffer_get */

void
evpl__buffer_release(struct evpl *evpl, struct evpl_iovec_ref *ref)
{
    struct evpl_buffer *b = (struct evpl_buffer *) ref;
    unsigned int shared = ref->flags & EVPL_IOVEC_FLAG_SHARED;
    struct evpl_mem_pool *p;

    if (ref->flags & EVPL_IOVEC_FLAG_GLOBAL) {
        /*
         * The owner's single release (evpl_iovec_release).  The library
         * may still hold views of the buffer it took without a count: a
         * send ring's, until the send's completion is reaped, which can be
         * a pass after the peer has every byte (memory.md statement 12).
         * Their releases are no-ops only while the buffer says GLOBAL, so
         * it keeps the flag and goes to a list that hands it out again as
         * GLOBAL: a late release never reaches a count of a buffer given
         * out since (helper-100).  (Other uses take it only when a cap on
         * buffer memory leaves nothing else: evpl__mem_global_get.)  Its
         * count, 1 from allocation to release, catches a second release.
         */
        unsigned int prev = atomic_exchange_explicit(&ref->refcnt_atomic, 0, memory_order_acq_rel);

        evpl_memory_abort_if(prev != 1, "GLOBAL iovec released twice, buffer ref %p", (void *) ref);
        atomic_fetch_sub_explicit(&evpl__buffers_in_use, 1, memory_order_relaxed);
        evpl__buffer_poison(b);
        evpl__mem_global_freed_put(b);
        return;
    }
    buffer_set_count(b, 0);
    atomic_fetch_sub_explicit(&evpl__buffers_in_use, 1, memory_order_relaxed);
    evpl__buffer_poison(b);

    if (!evpl || evpl__mem_capped) {
        /* (a whole buffer's release: one lock per buffer's use, not per
         * iovec) */
        evpl__mem_global_put(b);
        return;
    }
    p = shared ? &evpl->mem.shared : &evpl->mem.local;
    b->next = p->free;
    p->free = b;
    p->nfree++;

    if (shared && p->nfree > SHARED_CACHE_MAX) {
        /* give back the older half in one lock round trip */
        struct evpl_buffer *keep_tail = p->free;

        for (uint32_t i = 1; i < SHARED_CACHE_KEEP; i++) {
            keep_tail = keep_tail->next;
        }
        struct evpl_buffer *head = keep_tail->next, *tail = head;
        uint32_t n = 1;

        while (tail->next) {
            tail = tail->next;
            n++;
        }
        keep_tail->next = NULL;
        p->nfree = SHARED_CACHE_KEEP;
        evpl__mem_global_put_list(head, tail, n);
    }
} /* evpl__buffer_release */

/*
 * Let references to iovec's buffer cross threads: a LOCAL buffer (counted
 * without atomics, touched only by this loop so far) becomes SHARED.  The
 * count keeps its value; from here on every clone and release is atomic.
 * If it is the LOCAL pool's current buffer the pool lets go of it first,
 * since the pool's fast path counts its slices without atomics.
 */
void
evpl__iovec_make_shared(struct evpl *evpl, const struct evpl_iovec *iovec)
{
    struct evpl_iovec_ref *ref = iovec->ref;

    if (ref->flags != 0) {
        return; /* SHARED or GLOBAL already */
    }
    atomic_thread_fence(memory_order_release);
    ref->flags = EVPL_IOVEC_FLAG_SHARED;
    if (evpl->mem.local.current == (struct evpl_buffer *) ref) {
        evpl->mem.local.current = NULL;
        evpl_iovec_ref_release(evpl, ref); /* the pool's hold */
    }
    if (evpl->mem.compact.current == (struct evpl_buffer *) ref) {
        evpl->mem.compact.current = NULL;
        evpl_iovec_ref_release(evpl, ref);
    }
} /* evpl__iovec_make_shared */

/* Make b the pool's current buffer, dropping the loop's hold on the old. */
static inline void
set_current(struct evpl *evpl, struct evpl_mem_pool *p, struct evpl_buffer *b)
{
    struct evpl_buffer *old = p->current;

    p->current = b;
    if (old) {
        evpl_iovec_ref_release(evpl, &old->ref);
    }
} /* set_current */

static int
check_args(unsigned int length, unsigned int alignment, unsigned int max_iovecs)
{
    if (alignment & (alignment - 1)) {
        evpl_log_error("mem", "alignment %u is not a power of two", alignment);
        return -EINVAL;
    }
    if (alignment > evpl__buffer_size) {
        evpl_log_error("mem", "alignment %u exceeds the buffer size %llu", alignment,
                       (unsigned long long) evpl__buffer_size);
        return -EINVAL;
    }
    if (max_iovecs == 0 && length) {
        evpl_log_error("mem", "max_iovecs of 0 for a %u-byte allocation", length);
        return -EINVAL;
    }
    return 0;
} /* check_args */

/*
 * Place length bytes: in the current buffer if they fit there, otherwise
 * in fresh buffers (whole buffers but the last, which becomes current).
 * With consume == 0 (reserve) the fill mark does not move.
 */
static __attribute__((noinline)) int
place_slow(struct evpl *evpl, struct evpl_mem_pool *p, unsigned int flags, unsigned int length,
           unsigned int alignment, unsigned int max_iovecs, int consume, struct evpl_iovec *r_iovec)
{
    struct evpl_buffer *cur = p->current;
    uint64_t bs = evpl__buffer_size;
    uint64_t off;
    unsigned int n, i;

    if (unlikely(length == 0)) {
        return 0;
    }
    if (unlikely(check_args(length, alignment, max_iovecs) < 0)) {
        return -1;
    }

    if (likely(cur)) {
        off = align_up(cur->used, alignment);
        if (off + length <= bs) {
            r_iovec->data = cur->data + off;
            r_iovec->length = length;
            r_iovec->pad = 0;
            evpl_iovec_take_ref(r_iovec, &cur->ref);
            if (consume) {
                /* never past the end: the next request must see no room */
                uint64_t end = align_up(off + length, alignment);

                cur->used = (uint32_t) (end < bs ? end : bs);
            }
            return 1;
        }
    }

    n = (unsigned int) ((length + bs - 1) / bs);
    if (n > max_iovecs) {
        evpl_log_debug("mem", "%u bytes need %u iovecs, only %u allowed", length, n, max_iovecs);
        return -1;
    }

    for (i = 0; i < n; i++) {
        unsigned int piece = (unsigned int) (i + 1 < n ? bs : length - (n - 1) * bs);
        struct evpl_buffer *b = buffer_get(evpl, p, flags);

        if (!b) {
            evpl_log_error("mem", "cannot allocate %u bytes: out of buffer memory", length);
            for (unsigned int j = 0; j < i; j++) {
                evpl_iovec_release_internal(evpl, &r_iovec[j]);
            }
            return -1;
        }
        r_iovec[i].data = b->data;
        r_iovec[i].length = piece;
        r_iovec[i].pad = 0;
        r_iovec[i].ref = &b->ref; /* the count of 1 from buffer_get */
        if (i + 1 == n && piece < bs) {
            /* the last piece's buffer becomes current: the loop adds its hold */
            evpl_iovec_ref_incr(&b->ref);
            if (consume) {
                uint64_t end = align_up(piece, alignment);

                b->used = (uint32_t) (end < bs ? end : bs);
            }
            set_current(evpl, p, b);
        }
    }
    return (int) n;
} /* place_slow */

/*
 * The steady-state path: the request fits in the current buffer.  Kept
 * small enough to inline into the exported functions (no call, no
 * argument shuffling); everything else goes to place_slow.
 */
static inline int
place(struct evpl *evpl, struct evpl_mem_pool *p, unsigned int flags, unsigned int length,
      unsigned int alignment, unsigned int max_iovecs, int consume, struct evpl_iovec *r_iovec)
{
    struct evpl_buffer *cur = p->current;

    /* length 0 wraps to UINT_MAX and fails the fit test: slow path */
    if (likely(cur && (alignment | !max_iovecs) == 0)) {
        uint32_t off = cur->used;

        if (likely(length - 1u < p->buffer_size - off)) {
            r_iovec->data = cur->data + off;
            r_iovec->length = length;
            r_iovec->ref = &cur->ref; /* pad is reserved: left as the caller had it */
            if (flags & EVPL_IOVEC_FLAG_SHARED) {
                atomic_fetch_add_explicit(&cur->ref.refcnt_atomic, 1, memory_order_relaxed);
            } else {
                cur->ref.refcnt++;
            }
            if (consume) {
                cur->used = off + length;
            }
            return 1;
        }
    }
    return place_slow(evpl, p, flags, length, alignment, max_iovecs, consume, r_iovec);
} /* place */

EVPL_API int
evpl_iovec_alloc(struct evpl *evpl, unsigned int length, unsigned int alignment,
                 unsigned int max_iovecs, unsigned int flags, struct evpl_iovec *r_iovec)
{
    if (flags & EVPL_IOVEC_FLAG_SHARED) {
        return place(evpl, &evpl->mem.shared, EVPL_IOVEC_FLAG_SHARED, length, alignment, max_iovecs,
                     1, r_iovec);
    }
    return place(evpl, &evpl->mem.local, 0, length, alignment, max_iovecs, 1, r_iovec);
} /* evpl_iovec_alloc */

EVPL_API int
evpl_iovec_reserve(struct evpl *evpl, unsigned int length, unsigned int alignment,
                   unsigned int max_vec, struct evpl_iovec *r_iovec)
{
    return place(evpl, &evpl->mem.local, 0, length, alignment, max_vec, 0, r_iovec);
} /* evpl_iovec_reserve */

EVPL_API void
evpl_iovec_commit(struct evpl *evpl, unsigned int alignment, struct evpl_iovec *iovecs, int niovs)
{
    for (int i = 0; i < niovs; i++) {
        struct evpl_buffer *b = evpl__iovec_buffer(&iovecs[i]);
        uint64_t end = (uint64_t) ((char *) iovecs[i].data - b->data) + iovecs[i].length;

        end = align_up(end, alignment);
        if (end > b->used) {
            b->used = (uint32_t) (end < evpl__buffer_size ? end : evpl__buffer_size);
        }
    }
} /* evpl_iovec_commit */

EVPL_API void
evpl_iovec_alloc_global(struct evpl *evpl, struct evpl_iovec *r_iovec)
{
    const unsigned int flags = EVPL_IOVEC_FLAG_SHARED | EVPL_IOVEC_FLAG_GLOBAL;
    struct evpl_buffer *b = evpl__mem_global_freed_get();

    if (b) {
        buffer_hand_out(evpl, b, flags); /* (a freed GLOBAL one: evpl__buffer_release) */
    } else {
        b = buffer_get(evpl, &evpl->mem.shared, flags);
    }

    if (!b) {
        evpl_log_error("mem", "evpl_iovec_alloc_global: out of buffer memory");
        memset(r_iovec, 0, sizeof(*r_iovec));
        return;
    }
    r_iovec->data = b->data;
    r_iovec->length = (unsigned int) evpl__buffer_size;
    r_iovec->pad = 0;
    r_iovec->ref = &b->ref;
} /* evpl_iovec_alloc_global */

void
evpl__mem_loop_init(struct evpl *evpl)
{
    memset(&evpl->mem, 0, sizeof(evpl->mem));
    evpl->mem.local.buffer_size = (uint32_t) evpl__buffer_size;
    evpl->mem.shared.buffer_size = (uint32_t) evpl__buffer_size;
} /* evpl__mem_loop_init */

static void
pool_drain(struct evpl *evpl, struct evpl_mem_pool *p)
{
    set_current(evpl, p, NULL);
    if (p->free) {
        struct evpl_buffer *tail = p->free;

        while (tail->next) {
            tail = tail->next;
        }
        evpl__mem_global_put_list(p->free, tail, p->nfree);
        p->free = NULL;
        p->nfree = 0;
    }
} /* pool_drain */

void
evpl__mem_loop_cleanup(struct evpl *evpl)
{
    /* dropping the current buffers may put them on our free lists: drain after */
    set_current(evpl, &evpl->mem.local, NULL);
    set_current(evpl, &evpl->mem.shared, NULL);
    set_current(evpl, &evpl->mem.compact, NULL);
    pool_drain(evpl, &evpl->mem.local);
    pool_drain(evpl, &evpl->mem.shared);
#ifndef NDEBUG
    evpl__mem_report_owned(evpl);
#endif
} /* evpl__mem_loop_cleanup */

/*
 * Receive space for a transport: the rest of the current LOCAL buffer when
 * at least min bytes are left there, else a whole fresh buffer (which
 * becomes current).  Reserved, not consumed: set iov->length to what was
 * filled and evpl_iovec_commit it, or release it.  0, or -1 without memory.
 */
int
evpl__iovec_reserve_tail(struct evpl *evpl, unsigned int min, struct evpl_iovec *iov)
{
    struct evpl_mem_pool *p = &evpl->mem.local;
    struct evpl_buffer *cur = p->current;
    uint32_t left = cur ? (uint32_t) (evpl__buffer_size - cur->used) : 0;

    if (!cur || left < min) {
        struct evpl_buffer *b = buffer_get(evpl, p, 0);

        if (!b) {
            return -1;
        }
        set_current(evpl, p, b); /* buffer_get's count is the loop's hold */
        cur = b;
        left = (uint32_t) evpl__buffer_size;
    }
    iov->data = cur->data + cur->used;
    iov->length = left;
    iov->pad = 0;
    evpl_iovec_take_ref(iov, &cur->ref);
    return 0;
}

uint64_t
evpl__iovec_buffer_size(void)
{
    return evpl__buffer_size;
} /* evpl__iovec_buffer_size */

/* The waiting-queue policy: entries shorter than COMPACT_PIECE, in runs
 * of at least COMPACT_RUN (a lone short message pins little).  Runs are
 * cut at one buffer's worth, so each copy is one iovec. */
#define COMPACT_PIECE 2048
#define COMPACT_RUN   8

static int
compact_place(struct evpl *evpl, uint32_t bytes, struct evpl_iovec *out)
{
    struct evpl_buffer *b = evpl->mem.compact.current;

    if (!b || evpl__buffer_size - b->used < bytes) {
        b = buffer_get(evpl, &evpl->mem.local, 0);
        if (!b) {
            return -1;
        }
        b->waits = 1;
        set_current(evpl, &evpl->mem.compact, b); /* buffer_get's count: the hold */
    }
    out->data = b->data + b->used;
    out->length = bytes;
    out->pad = 0;
    evpl_iovec_take_ref(out, &b->ref);
    b->used += bytes;
    return 0;
} /* compact_place */

/* Whether v lies in the compact pool already (moved once: stays). */
static inline int
compacted_already(const struct evpl_iovec *v)
{
    return v->ref && v->ref->release == evpl__buffer_release &&
           ((const struct evpl_buffer *) v->ref)->waits;
} /* compacted_already */

/* Move entry rd of f to wr (wr <= rd). */
static inline void
compact_keep(struct evpl_iovec_fifo *f, uint32_t wr, uint32_t rd)
{
    if (wr != rd) {
        *evpl_iovec_fifo_at(f, wr) = *evpl_iovec_fifo_at(f, rd);
    }
} /* compact_keep */

/* Entries from index rd on shorter than piece, in runs of at least run,
 * are copied to the compact pool. */
static void
ring_compact(struct evpl *evpl, struct evpl_iovec_ring *r, uint32_t rd, uint64_t piece,
             uint32_t run)
{
    struct evpl_iovec_fifo *f = &r->fifo;
    uint32_t count = evpl_iovec_fifo_count(f), wr = rd, mark = UINT32_MAX;

    while (rd < count) {
        uint32_t end = rd;
        uint64_t bytes = 0;

        while (end < count && evpl_iovec_fifo_at(f, end)->length < piece &&
               bytes + evpl_iovec_fifo_at(f, end)->length <= evpl__buffer_size &&
               !compacted_already(evpl_iovec_fifo_at(f, end))) {
            bytes += evpl_iovec_fifo_at(f, end)->length;
            end++;
        }
        if (end - rd >= run) {
            struct evpl_iovec copy;
            char *to;

            if (compact_place(evpl, (uint32_t) bytes, &copy) < 0) {
                mark = wr; /* no memory: the rest stays, to be tried again */
                break;
            }
            to = copy.data;
            for (; rd < end; rd++) {
                struct evpl_iovec *v = evpl_iovec_fifo_at(f, rd);

                memcpy(to, v->data, v->length);
                to += v->length;
                evpl_iovec_release_internal(evpl, v);
            }
            *evpl_iovec_fifo_at(f, wr++) = copy;
            continue;
        }
        if (end == rd) {
            end++; /* a long entry stays */
        } else if (end == count) {
            mark = wr; /* a short run at the end may grow: looked at again */
        }
        for (; rd < end; rd++, wr++) {
            compact_keep(f, wr, rd);
        }
    }
    for (; rd < count; rd++, wr++) {
        compact_keep(f, wr, rd);
    }
    f->tail = f->head + wr;
    r->compacted = f->head + (mark < wr ? mark : wr);
} /* ring_compact */

void
evpl__iovec_ring_compact(struct evpl *evpl, struct evpl_iovec_ring *r, uint32_t keep)
{
    uint32_t count = evpl_iovec_fifo_count(&r->fifo);
    uint32_t from = r->compacted - r->fifo.head; /* past what it looked at */

    if (from > count) {
        from = 0; /* (what it looked at has all been consumed) */
    }
    if (from < keep) {
        from = keep < count ? keep : count;
    }
    ring_compact(evpl, r, from, COMPACT_PIECE, COMPACT_RUN);
} /* evpl__iovec_ring_compact */

void
evpl__iovec_ring_compact_all(struct evpl *evpl, struct evpl_iovec_ring *r)
{
    uint32_t count = evpl_iovec_fifo_count(&r->fifo);
    uint32_t from = r->parked - r->fifo.head; /* (moved already) */

    ring_compact(evpl, r, from > count ? 0 : from, evpl__buffer_size, 1);
    r->parked = r->compacted;
} /* evpl__iovec_ring_compact_all */
