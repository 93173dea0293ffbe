/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Rings used by binds: a FIFO of iovecs (send queue, stream receive
 * queue) and a FIFO of datagram descriptors.  Capacity is a power of two
 * (masks, no modulo); a full ring doubles instead of dropping anything.
 * Owned by one loop: no atomics.
 */
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "core/internal.h"

/*
 * EVPL_RING_DEFINE(name, type) defines struct name with head/tail indexes
 * that only grow (wrap-around by unsigned arithmetic) and:
 *   name_init(r, size)  size: power of two > 0
 *   name_cleanup(r)     frees storage (elements are the caller's business)
 *   name_count(r), name_empty(r)
 *   name_push(r)        returns a slot at the tail to fill in
 *   name_front(r)       oldest element or NULL
 *   name_pop(r)         drops the oldest element
 *   name_at(r, i)       i-th oldest element (i < count)
 */
#define EVPL_RING_DEFINE(name, type)                                                      \
    struct name {                                                                         \
        type *elems;                                                                      \
        uint32_t mask;                                                                    \
        uint32_t head; /* next to pop */                                                  \
        uint32_t tail; /* next to push */                                                 \
    };                                                                                    \
                                                                                          \
    static inline __attribute__((unused)) void name##_init(struct name *r, uint32_t size) \
    {                                                                                     \
        EVPL_ASSERT(size && !(size & (size - 1)));                                        \
        r->elems = NULL; /* allocated by the first push */                                \
        r->mask = size - 1;                                                               \
        r->head = r->tail = 0;                                                            \
    }                                                                                     \
                                                                                          \
    static inline __attribute__((unused)) void name##_cleanup(struct name *r)             \
    {                                                                                     \
        free(r->elems);                                                                   \
        r->elems = NULL;                                                                  \
    }                                                                                     \
                                                                                          \
    static inline __attribute__((unused)) uint32_t name##_count(const struct name *r)     \
    {                                                                                     \
        return r->tail - r->head;                                                         \
    }                                                                                     \
                                                                                          \
    static inline __attribute__((unused)) int name##_empty(const struct name *r)          \
    {                                                                                     \
        return r->tail == r->head;                                                        \
    }                                                                                     \
                                                                                          \
    /* Double the capacity; the indexes stay (marks kept by index hold). */               \
    static inline __attribute__((unused)) void name##_grow(struct name *r)                \
    {                                                                                     \
        uint32_t size = r->mask + 1;                                                      \
        type *e = evpl__zalloc((size_t) size * 2 * sizeof(type));                         \
                                                                                          \
        for (uint32_t i = r->head; i != r->tail; i++) {                                   \
            e[i & (size * 2 - 1)] = r->elems[i & r->mask];                                \
        }                                                                                 \
        free(r->elems);                                                                   \
        r->elems = e;                                                                     \
        r->mask = size * 2 - 1;                                                           \
    }                                                                                     \
                                                                                          \
    static inline __attribute__((unused)) type *name##_push(struct name *r)               \
    {                                                                                     \
        if (unlikely(!r->elems)) {                                                        \
            r->elems = evpl__zalloc((size_t) (r->mask + 1) * sizeof(type));               \
        }                                                                                 \
        if (unlikely(name##_count(r) > r->mask)) {                                        \
            name##_grow(r);                                                               \
        }                                                                                 \
        return &r->elems[r->tail++ & r->mask];                                            \
    }                                                                                     \
                                                                                          \
    static inline __attribute__((unused)) type *name##_front(struct name *r)              \
    {                                                                                     \
        return name##_empty(r) ? NULL : &r->elems[r->head & r->mask];                     \
    }                                                                                     \
                                                                                          \
    static inline __attribute__((unused)) void name##_pop(struct name *r)                 \
    {                                                                                     \
        EVPL_ASSERT(!name##_empty(r));                                                    \
        r->head++;                                                                        \
    }                                                                                     \
                                                                                          \
    static inline __attribute__((unused)) type *name##_at(struct name *r, uint32_t i)     \
    {                                                                                     \
        return &r->elems[(r->head + i) & r->mask];                                        \
    }

EVPL_RING_DEFINE(evpl_iovec_fifo, struct evpl_iovec)

/*
 * Byte queue of iovecs: a FIFO that also tracks the total length, with
 * helpers to consume bytes from the front.  Every iovec in it holds one
 * reference owned by the ring.
 */
struct evpl_iovec_ring {
    struct evpl_iovec_fifo fifo;
    uint64_t length;
    uint32_t compacted; /* fifo index up to which compaction looked */
    uint32_t parked;    /* ... and up to which compact_all moved everything */
};

static inline void
evpl_iovec_ring_init(struct evpl_iovec_ring *r, uint32_t size)
{
    evpl_iovec_fifo_init(&r->fifo, size);
    r->length = 0;
    r->compacted = 0;
    r->parked = 0;
} /* evpl_iovec_ring_init */

/*
 * A queue that waits (its socket is full, its peer reads nothing): copy
 * runs of small entries (slices of buffers shared with other connections'
 * data, e.g. thousands of short answers) into buffer space of their own
 * and release the slices, so the buffers they pinned can go back; a few
 * bytes left in each of many 2 MiB buffers otherwise hold them all.  Looks
 * at entries past those it looked at before (each byte is copied at most
 * once) and at least keep entries from the front, which the caller may
 * have handed to the kernel.  Leaves the queue as it was when there is no
 * memory for the copy.  In buffer.c.
 */
void evpl__iovec_ring_compact(struct evpl *evpl, struct evpl_iovec_ring *r, uint32_t keep);
/* The same for a queue known to be short that will wait long (a receive
 * queue its reader stopped taking from): every entry shorter than a
 * buffer past those looked at before is copied (called again as bytes
 * arrive, it copies only those). */
void evpl__iovec_ring_compact_all(struct evpl *evpl, struct evpl_iovec_ring *r);

/* A stream's send queue waits for its peer (the socket buffer is full, the
 * window closed): compacted once it is 64 KiB or more.  Byte streams only:
 * a datagram queue's entries are counted per message. */
static inline void
evpl_iovec_ring_waits(struct evpl *evpl, struct evpl_iovec_ring *r, uint32_t keep)
{
    if (r->length >= 64 * 1024) {
        evpl__iovec_ring_compact(evpl, r, keep);
    }
} /* evpl_iovec_ring_waits */

/* Takes iovec's reference.  Zero-length iovecs are released at once. */
static inline void
evpl_iovec_ring_append(struct evpl *evpl, struct evpl_iovec_ring *r, struct evpl_iovec *iovec)
{
    if (!iovec->length) {
        evpl_iovec_release_internal(evpl, iovec);
        return;
    }
    *evpl_iovec_fifo_push(&r->fifo) = *iovec;
    r->length += iovec->length;
} /* evpl_iovec_ring_append */

/*
 * Append bytes that directly follow the last iovec in the same buffer by
 * extending it (receive path: contiguous reads coalesce).  Takes iovec's
 * reference either way.
 */
static inline void
evpl_iovec_ring_append_coalesce(struct evpl *evpl, struct evpl_iovec_ring *r,
                                struct evpl_iovec *iovec)
{
    if (!evpl_iovec_fifo_empty(&r->fifo)) {
        struct evpl_iovec *last = evpl_iovec_fifo_at(&r->fifo, evpl_iovec_fifo_count(&r->fifo) - 1);

        if (last->ref == iovec->ref && (char *) last->data + last->length == iovec->data) {
            last->length += iovec->length;
            r->length += iovec->length;
            evpl_iovec_release_internal(evpl, iovec);
            return;
        }
    }
    evpl_iovec_ring_append(evpl, r, iovec);
} /* evpl_iovec_ring_append_coalesce */

/*
 * Fill out[0..max) with the queued bytes from the front, one kernel iovec
 * per run of entries that are adjacent in memory (messages cut from one
 * receive chunk and echoed, or copied one after another into one buffer,
 * go to the kernel as one iovec).  Returns the iovecs filled; *entries is
 * how many ring entries they cover and *bytes how many bytes.
 */
static inline uint32_t
evpl_iovec_ring_gather(struct evpl_iovec_ring *r, struct iovec *out, uint32_t max,
                       uint32_t *entries, uint64_t *bytes)
{
    uint32_t count = evpl_iovec_fifo_count(&r->fifo), n = 0, i;
    uint64_t total = 0;

    for (i = 0; i < count; i++) {
        struct evpl_iovec *v = evpl_iovec_fifo_at(&r->fifo, i);

        if (n && (char *) out[n - 1].iov_base + out[n - 1].iov_len == (char *) v->data) {
            out[n - 1].iov_len += v->length;
        } else if (n == max) {
            break;
        } else {
            out[n].iov_base = v->data;
            out[n].iov_len = v->length;
            n++;
        }
        total += v->length;
    }
    *entries = i;
    *bytes = total;
    return n;
} /* evpl_iovec_ring_gather */

/* Drop length bytes from the front (length <= r->length). */
static inline void
evpl_iovec_ring_consume(struct evpl *evpl, struct evpl_iovec_ring *r, uint64_t length)
{
    EVPL_ASSERT(length <= r->length);
    r->length -= length;
    while (length) {
        struct evpl_iovec *f = evpl_iovec_fifo_front(&r->fifo);

        if (f->length > length) {
            f->data = (char *) f->data + length;
            f->length -= (unsigned int) length;
            return;
        }
        length -= f->length;
        evpl_iovec_release_internal(evpl, f);
        evpl_iovec_fifo_pop(&r->fifo);
    }
} /* evpl_iovec_ring_consume */

/* Release everything and free the storage. */
static inline void
evpl_iovec_ring_cleanup(struct evpl *evpl, struct evpl_iovec_ring *r)
{
    while (!evpl_iovec_fifo_empty(&r->fifo)) {
        evpl_iovec_release_internal(evpl, evpl_iovec_fifo_front(&r->fifo));
        evpl_iovec_fifo_pop(&r->fifo);
    }
    r->length = 0;
    evpl_iovec_fifo_cleanup(&r->fifo);
} /* evpl_iovec_ring_cleanup */

/*
 * Datagram descriptors: one per message, its payload is the next niov
 * iovecs of the bind's iovec ring.  addr is a referenced address (the
 * networking layer owns its type).
 */
struct evpl_dgram {
    uint32_t niov;
    uint32_t length;
    void *addr;
};

EVPL_RING_DEFINE(evpl_dgram_ring, struct evpl_dgram)
