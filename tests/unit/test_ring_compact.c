/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit */
/*
 * Compaction of queues that wait (evpl__iovec_ring_compact): a queue of
 * short slices, each cut from a buffer that other, short-lived data filled,
 * holds every one of those buffers.  Compaction copies runs of short
 * entries into buffer space of their own: the bytes and their order stay,
 * the buffers go back, the entries the caller keeps (handed to the kernel)
 * are not touched, long entries stay, and each byte is copied at most once.
 */
#include "mem/ring.h"

#include "t.h"

#define SLICE 57
#define HOT   (64 * 1024)

/* Check the ring holds the bytes 0, 1, 2, ... (mod 251) from `from` on. */
static void
check_bytes(struct evpl_iovec_ring *r, uint64_t from)
{
    uint64_t n = 0;

    for (uint32_t i = 0; i < evpl_iovec_fifo_count(&r->fifo); i++) {
        struct evpl_iovec *v = evpl_iovec_fifo_at(&r->fifo, i);

        for (unsigned int k = 0; k < v->length; k++, n++) {
            T_EQ(((unsigned char *) v->data)[k], (from + n) % 251);
        }
    }
    T_EQ_U(n, r->length);
}

/* Append len bytes of the pattern, cut from a fresh allocation; before
 * it, HOT bytes of other data are allocated and released (sent at once). */
static void
append(struct evpl *evpl, struct evpl_iovec_ring *r, uint64_t *next, unsigned int len)
{
    struct evpl_iovec hot, v;

    T_EQ(evpl_iovec_alloc(evpl, HOT, 0, 1, 0, &hot), 1);
    T_EQ(evpl_iovec_alloc(evpl, len, 0, 1, 0, &v), 1);
    evpl_iovec_release(evpl, &hot);
    for (unsigned int k = 0; k < len; k++) {
        ((unsigned char *) v.data)[k] = (unsigned char) ((*next + k) % 251);
    }
    *next += len;
    evpl_iovec_ring_append(evpl, r, &v);
}

int
main(void)
{
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_iovec_ring r;
    struct evpl_iovec kept[3];
    uint64_t next = 0, base;

    /* start small and wrap the indexes before filling */
    evpl_iovec_ring_init(&r, 8);
    for (int i = 0; i < 6; i++) {
        append(evpl, &r, &next, SLICE);
    }
    evpl_iovec_ring_consume(evpl, &r, 6 * SLICE);
    base = next;

    /* 400 short slices, each after 64 KiB of other data: ~13 buffers */
    for (int i = 0; i < 400; i++) {
        append(evpl, &r, &next, SLICE);
    }
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 400);
    int64_t before = t_metric("evpl_allocator_buffers_in_use");
    T_GE(before, 12);
    for (int i = 0; i < 3; i++) {
        kept[i] = *evpl_iovec_fifo_at(&r.fifo, i);
    }

    /* the first 3 are in the kernel's hands: they stay as they are */
    evpl__iovec_ring_compact(evpl, &r, 3);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 4);
    for (int i = 0; i < 3; i++) {
        T_OK(evpl_iovec_fifo_at(&r.fifo, i)->data == kept[i].data);
        T_EQ(evpl_iovec_fifo_at(&r.fifo, i)->length, SLICE);
    }
    T_EQ(evpl_iovec_fifo_at(&r.fifo, 3)->length, 397 * SLICE);
    T_EQ_U(r.length, 400 * SLICE);
    check_bytes(&r, base);
    /* left: the kept slices' buffer, the compacted copy's, the current one */
    T_LE(t_metric("evpl_allocator_buffers_in_use"), 3);

    /* looked at already: a second call copies nothing */
    {
        void *at = evpl_iovec_fifo_at(&r.fifo, 3)->data;

        evpl__iovec_ring_compact(evpl, &r, 0);
        T_EQ(evpl_iovec_fifo_count(&r.fifo), 4);
        T_OK(evpl_iovec_fifo_at(&r.fifo, 3)->data == at);
    }

    /* fewer than 8 short entries in a run are left alone; a long entry
     * (>= 2 KiB) stays and cuts runs */
    for (int i = 0; i < 7; i++) {
        append(evpl, &r, &next, SLICE);
    }
    append(evpl, &r, &next, 4096);
    evpl__iovec_ring_compact(evpl, &r, 0);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 4 + 8);
    for (int i = 0; i < 9; i++) {
        append(evpl, &r, &next, SLICE);
    }
    append(evpl, &r, &next, 2047); /* short: part of the run */
    evpl__iovec_ring_compact(evpl, &r, 0);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 4 + 8 + 1);
    T_EQ(evpl_iovec_fifo_at(&r.fifo, 11)->length, 4096);
    T_EQ(evpl_iovec_fifo_at(&r.fifo, 12)->length, 9 * SLICE + 2047);
    check_bytes(&r, base);

    /* the front consumed past what was looked at: a new run is found */
    evpl_iovec_ring_consume(evpl, &r, r.length - 100);
    base = next - 100;
    for (int i = 0; i < 20; i++) {
        append(evpl, &r, &next, SLICE);
    }
    evpl__iovec_ring_compact(evpl, &r, 0);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 2);
    check_bytes(&r, base);

    /* a keep beyond the queue keeps everything */
    for (int i = 0; i < 20; i++) {
        append(evpl, &r, &next, SLICE);
    }
    evpl__iovec_ring_compact(evpl, &r, 1000);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 22);
    check_bytes(&r, base);
    evpl_iovec_ring_cleanup(evpl, &r);

    /* a short run at the end is looked at again as it grows (a queue
     * that gets a few answers per pass); growing the ring keeps its
     * indexes, so what was looked at stays looked at */
    evpl_iovec_ring_init(&r, 8);
    next = 0;
    for (int i = 0; i < 20; i++) {
        append(evpl, &r, &next, 4096); /* moves the indexes off 0 */
        evpl__iovec_ring_compact(evpl, &r, 0);
        evpl_iovec_ring_consume(evpl, &r, 4096);
    }
    base = next;
    for (int i = 0; i < 5; i++) {
        append(evpl, &r, &next, SLICE);
    }
    evpl__iovec_ring_compact(evpl, &r, 0);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 5);
    for (int i = 0; i < 3; i++) {
        append(evpl, &r, &next, SLICE); /* 8 entries */
    }
    evpl__iovec_ring_compact(evpl, &r, 0);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 1);
    for (int i = 0; i < 3; i++) {
        append(evpl, &r, &next, SLICE);
    }
    append(evpl, &r, &next, 4096); /* the 3 before it are settled */
    for (int i = 0; i < 8; i++) {
        append(evpl, &r, &next, SLICE);
    }
    for (int i = 0; i < 12; i++) {
        append(evpl, &r, &next, 4096); /* grows the ring twice */
    }
    T_GE(r.fifo.mask + 1, 32);
    evpl__iovec_ring_compact(evpl, &r, 0);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 1 + 3 + 1 + 1 + 12);
    for (int i = 0; i < 8; i++) {
        append(evpl, &r, &next, SLICE);
    }
    evpl__iovec_ring_compact(evpl, &r, 0);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 1 + 3 + 1 + 1 + 12 + 1);
    T_EQ(evpl_iovec_fifo_at(&r.fifo, 1)->length, SLICE); /* not looked at again */
    check_bytes(&r, base);
    evpl_iovec_ring_cleanup(evpl, &r);

    /* a run longer than a buffer is copied in buffer-sized pieces */
    evpl_iovec_ring_init(&r, 4);
    {
        struct evpl_iovec v;
        unsigned int n = (3u << 20) / SLICE;

        next = 0;
        for (unsigned int i = 0; i < n; i++) {
            T_EQ(evpl_iovec_alloc(evpl, SLICE, 0, 1, 0, &v), 1);
            for (unsigned int k = 0; k < SLICE; k++) {
                ((unsigned char *) v.data)[k] = (unsigned char) ((next + k) % 251);
            }
            next += SLICE;
            evpl_iovec_ring_append(evpl, &r, &v);
        }
        evpl__iovec_ring_compact(evpl, &r, 0);
        T_EQ(evpl_iovec_fifo_count(&r.fifo), 2);
        T_EQ_U(evpl_iovec_fifo_at(&r.fifo, 0)->length, (2u << 20) / SLICE * SLICE);
        check_bytes(&r, 0);
    }
    evpl_iovec_ring_cleanup(evpl, &r);

    /* compact_all leaves what the waiting-queue rule moved where it is
     * (helper-95: a pause, then a park, copied the same bytes twice) */
    evpl_iovec_ring_init(&r, 4);
    next = 0;
    for (int i = 0; i < 10; i++) {
        append(evpl, &r, &next, SLICE);
    }
    evpl__iovec_ring_compact(evpl, &r, 0);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 1);
    {
        void *at = evpl_iovec_fifo_front(&r.fifo)->data;

        append(evpl, &r, &next, 100);
        evpl__iovec_ring_compact_all(evpl, &r);
        T_EQ(evpl_iovec_fifo_count(&r.fifo), 2);
        T_OK(evpl_iovec_fifo_front(&r.fifo)->data == at);
        T_OK(evpl_iovec_fifo_at(&r.fifo, 1)->data != NULL);
        check_bytes(&r, 0);
    }
    evpl_iovec_ring_cleanup(evpl, &r);

    /* compact_all: a short receive queue of long reads moves whole */
    evpl_iovec_ring_init(&r, 4);
    next = 0;
    append(evpl, &r, &next, 200000);
    append(evpl, &r, &next, 300000);
    append(evpl, &r, &next, 9);
    evpl__iovec_ring_compact(evpl, &r, 0);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 3); /* (the waiting-queue rule) */
    evpl__iovec_ring_compact_all(evpl, &r);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 1);
    T_EQ_U(r.length, 500009);
    check_bytes(&r, 0);
    /* called again as bytes arrive, it moves only those (helper-94: every
     * call copied the whole queue again) */
    {
        void *at = evpl_iovec_fifo_front(&r.fifo)->data;

        append(evpl, &r, &next, 3000);
        append(evpl, &r, &next, 40);
        evpl__iovec_ring_compact_all(evpl, &r);
        T_EQ(evpl_iovec_fifo_count(&r.fifo), 2);
        T_OK(evpl_iovec_fifo_front(&r.fifo)->data == at);
        T_EQ(evpl_iovec_fifo_at(&r.fifo, 1)->length, 3040);
        check_bytes(&r, 0);
    }
    evpl_iovec_ring_cleanup(evpl, &r);

    evpl_destroy(evpl);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 0);
    return 0;
}
