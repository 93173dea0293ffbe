/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit */
/* The iovec and datagram rings: FIFO order across growth and wrap-around,
 * byte accounting, consume, coalescing, nothing dropped, nothing leaked. */
#include "mem/ring.h"

#include "t.h"

int
main(void)
{
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_iovec_ring r;
    struct evpl_dgram_ring d;
    struct evpl_iovec iov, big;
    uint64_t expect = 0;

    /* datagram ring: start tiny so growth happens with the indexes wrapped */
    evpl_dgram_ring_init(&d, 2);
    T_OK(evpl_dgram_ring_front(&d) == NULL);
    {
        uint32_t pushed = 0, popped = 0;

        for (int round = 0; round < 1000; round++) {
            int burst = round % 7 + 1;

            for (int i = 0; i < burst; i++) {
                struct evpl_dgram *g = evpl_dgram_ring_push(&d);

                g->niov = 1;
                g->length = pushed++;
                g->addr = NULL;
            }
            for (int i = 0; i < burst - (round % 3 == 0); i++) {
                T_EQ(evpl_dgram_ring_front(&d)->length, popped);
                evpl_dgram_ring_pop(&d);
                popped++;
            }
            T_EQ(evpl_dgram_ring_count(&d), pushed - popped);
            /* capacity is always a power of two and holds everything */
            T_EQ((d.mask + 1) & d.mask, 0);
            T_GE(d.mask + 1, evpl_dgram_ring_count(&d));
        }
        for (uint32_t i = 0; i < pushed - popped; i++) {
            T_EQ(evpl_dgram_ring_at(&d, i)->length, popped + i);
        }
    }
    evpl_dgram_ring_cleanup(&d);

    /* iovec ring: references owned by the ring, bytes counted */
    evpl_iovec_ring_init(&r, 4);
    T_EQ(evpl_iovec_alloc(evpl, 1 << 20, 0, 1, 0, &big), 1);
    for (int i = 0; i < 1000; i++) {
        evpl_iovec_clone_segment(&iov, &big, (unsigned) i * 1000, 1000);
        memset(iov.data, i & 0xff, 1000);
        evpl_iovec_ring_append(evpl, &r, &iov);
        expect += 1000;
    }
    evpl_iovec_release(evpl, &big);
    T_EQ_U(r.length, expect);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 1000);

    /* consume across iovec boundaries: the front advances by bytes */
    evpl_iovec_ring_consume(evpl, &r, 1500);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 999);
    T_EQ(evpl_iovec_fifo_front(&r.fifo)->length, 500);
    T_EQ(((unsigned char *) evpl_iovec_fifo_front(&r.fifo)->data)[0], 1);
    evpl_iovec_ring_consume(evpl, &r, 500);
    T_EQ(((unsigned char *) evpl_iovec_fifo_front(&r.fifo)->data)[0], 2);
    T_EQ_U(r.length, expect - 2000);

    /* coalescing: adjacent bytes of the same buffer extend the last iovec */
    {
        struct evpl_iovec_ring c;
        struct evpl_iovec a, b;

        evpl_iovec_ring_init(&c, 1);
        T_EQ(evpl_iovec_alloc(evpl, 4096, 0, 1, 0, &big), 1);
        evpl_iovec_clone_segment(&a, &big, 0, 100);
        evpl_iovec_clone_segment(&b, &big, 100, 200);
        evpl_iovec_ring_append_coalesce(evpl, &c, &a);
        evpl_iovec_ring_append_coalesce(evpl, &c, &b);
        T_EQ(evpl_iovec_fifo_count(&c.fifo), 1);
        T_EQ(evpl_iovec_fifo_front(&c.fifo)->length, 300);
        evpl_iovec_clone_segment(&a, &big, 1000, 10); /* not adjacent */
        evpl_iovec_ring_append_coalesce(evpl, &c, &a);
        T_EQ(evpl_iovec_fifo_count(&c.fifo), 2);
        T_EQ_U(c.length, 310);
        evpl_iovec_release(evpl, &big);
        evpl_iovec_ring_cleanup(evpl, &c);
    }

    /* gather: adjacent entries become one kernel iovec, the output limit
     * counts kernel iovecs (not entries), and the covered entries and bytes
     * are reported */
    {
        struct evpl_iovec_ring g;
        struct evpl_iovec a;
        struct iovec out[3];
        uint32_t entries, n;
        uint64_t bytes;

        evpl_iovec_ring_init(&g, 4);
        T_EQ(evpl_iovec_alloc(evpl, 8192, 0, 1, 0, &big), 1);
        for (int i = 0; i < 16; i++) { /* 16 x 64 B back to back: one run */
            evpl_iovec_clone_segment(&a, &big, (unsigned) i * 64, 64);
            evpl_iovec_ring_append(evpl, &g, &a);
        }
        evpl_iovec_clone_segment(&a, &big, 2048, 10); /* a gap: a new run */
        evpl_iovec_ring_append(evpl, &g, &a);
        evpl_iovec_clone_segment(&a, &big, 4096, 10);
        evpl_iovec_ring_append(evpl, &g, &a);
        evpl_iovec_clone_segment(&a, &big, 4106, 5); /* adjacent to the last */
        evpl_iovec_ring_append(evpl, &g, &a);
        evpl_iovec_clone_segment(&a, &big, 6000, 7);
        evpl_iovec_ring_append(evpl, &g, &a);

        n = evpl_iovec_ring_gather(&g, out, 3, &entries, &bytes);
        T_EQ(n, 3);
        T_EQ(entries, 19);
        T_EQ_U(bytes, 16 * 64 + 10 + 15);
        T_OK(out[0].iov_base == big.data);
        T_EQ_U(out[0].iov_len, 1024);
        T_OK(out[1].iov_base == (char *) big.data + 2048);
        T_EQ_U(out[1].iov_len, 10);
        T_OK(out[2].iov_base == (char *) big.data + 4096);
        T_EQ_U(out[2].iov_len, 15);

        n = evpl_iovec_ring_gather(&g, out, 1, &entries, &bytes);
        T_EQ(n, 1);
        T_EQ(entries, 16);
        T_EQ_U(bytes, 1024);

        /* after a partial consume the front run starts mid-entry */
        evpl_iovec_ring_consume(evpl, &g, 100);
        n = evpl_iovec_ring_gather(&g, out, 3, &entries, &bytes);
        T_EQ(n, 3);
        T_EQ(entries, 18); /* 15 of the 64 B entries are left, then 1 + 2 */
        T_OK(out[0].iov_base == (char *) big.data + 100);
        T_EQ_U(out[0].iov_len, 924);
        T_EQ_U(bytes, g.length - 7);

        evpl_iovec_release(evpl, &big);
        evpl_iovec_ring_cleanup(evpl, &g);
    }

    /* zero-length appends are released, not queued */
    T_EQ(evpl_iovec_alloc(evpl, 10, 0, 1, 0, &iov), 1);
    iov.length = 0;
    evpl_iovec_ring_append(evpl, &r, &iov);
    T_EQ(evpl_iovec_fifo_count(&r.fifo), 998);

    evpl_iovec_ring_cleanup(evpl, &r);
    evpl_destroy(evpl);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 0);
    return 0;
}
