/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Exhaustion: with a cap of one slab of four buffers, allocations past it
 * return -1 (never abort), and succeed again once memory is released.
 * Also: a slab smaller than a buffer, huge pages falling back, metrics.
 * Memory freed on another loop than the one that took it is any loop's
 * again: it went to the freeing loop's own lists, where the allocating
 * loop found nothing with no buffer in use (helper-117).
 */
#include <evpl/evpl.h>

#include "t.h"

#define BUF (64u * 1024)

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    struct evpl_iovec iov[8], g;
    struct evpl *evpl;

    evpl_global_config_set_buffer_size(cfg, BUF);
    evpl_global_config_set_slab_size(cfg, 4 * BUF);
    evpl_global_config_set_max_slabs(cfg, 1);
    /* huge pages asked for: without a hugetlb pool this must fall back */
    evpl_global_config_set_huge_pages(cfg, 1);
    evpl_global_config_set_huge_page_size(cfg, 3 * 1024 * 1024); /* rejected: not 2^n */
    evpl_init(cfg);

    evpl = evpl_create(NULL);
    T_EQ_U(evpl_get_slab_size(), 4 * BUF);

    for (int i = 0; i < 4; i++) {
        T_EQ(evpl_iovec_alloc(evpl, BUF, 0, 1, 0, &iov[i]), 1);
        memset(iov[i].data, i, BUF);
    }
    T_EQ(t_metric("evpl_allocator_total_slabs"), 1);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 4);

    /* slab cap reached: a clean error, repeatedly */
    for (int i = 0; i < 3; i++) {
        T_EQ(evpl_iovec_alloc(evpl, BUF, 0, 1, 0, &iov[4]), -1);
        T_EQ(evpl_iovec_alloc(evpl, 2 * BUF, 0, 4, EVPL_IOVEC_FLAG_SHARED, &iov[4]), -1);
    }
    evpl_iovec_alloc_global(evpl, &g);
    T_OK(g.data == NULL);
    T_EQ(g.length, 0);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 4);

    /* memory comes back: allocation works again, and data elsewhere is intact */
    evpl_iovec_release(evpl, &iov[1]);
    T_EQ(evpl_iovec_alloc(evpl, BUF, 0, 1, 0, &iov[1]), 1);
    for (int i = 0; i < 4; i += 2) {
        T_EQ(((unsigned char *) iov[i].data)[BUF - 1], i);
    }
    /* a multi-piece request that cannot be completed owns nothing */
    evpl_iovec_release(evpl, &iov[3]);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 3);
    T_EQ(evpl_iovec_alloc(evpl, 2 * BUF, 0, 2, 0, &iov[4]), -1);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 3);

    for (int i = 0; i < 3; i++) {
        evpl_iovec_release(evpl, &iov[i]);
    }
    evpl_destroy(evpl);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 0);
    T_EQ(t_metric("evpl_allocator_free_buffers"), 4);

    /* buffers freed from GLOBAL use are kept for GLOBAL allocations, but
     * not at the price of an error: with the cap reached, other
     * allocations get them */
    evpl = evpl_create(NULL);
    for (int i = 0; i < 4; i++) {
        evpl_iovec_alloc_global(evpl, &iov[i]);
        T_OK(iov[i].data != NULL);
    }
    for (int i = 0; i < 4; i++) {
        evpl_iovec_release(evpl, &iov[i]);
    }
    T_EQ(t_metric("evpl_allocator_free_buffers"), 4);
    for (int i = 0; i < 4; i++) {
        T_EQ(evpl_iovec_alloc(evpl, BUF, 0, 1, i % 2 ? EVPL_IOVEC_FLAG_SHARED : 0, &iov[i]), 1);
        memset(iov[i].data, i, BUF);
    }
    T_EQ(evpl_iovec_alloc(evpl, BUF, 0, 1, 0, &iov[4]), -1);
    for (int i = 0; i < 4; i++) {
        T_EQ(((unsigned char *) iov[i].data)[0], i);
        evpl_iovec_release(evpl, &iov[i]);
    }
    evpl_destroy(evpl);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 0);

    /* freed by another loop (memory.md §4 lets any thread release a
     * SHARED iovec; two loops of one thread here): the first loop takes
     * the buffers again, and so does the second, and again */
    {
        struct evpl *a = evpl_create(NULL), *b = evpl_create(NULL);

        for (int round = 0; round < 3; round++) {
            struct evpl *take = round % 2 ? b : a, *give = round % 2 ? a : b;

            for (int i = 0; i < 4; i++) {
                T_EQ(evpl_iovec_alloc(take, BUF, 0, 1, EVPL_IOVEC_FLAG_SHARED, &iov[i]), 1);
            }
            T_EQ(evpl_iovec_alloc(take, BUF, 0, 1, 0, &iov[4]), -1);
            for (int i = 0; i < 4; i++) {
                evpl_iovec_release(give, &iov[i]);
            }
            T_EQ(t_metric("evpl_allocator_buffers_in_use"), 0);
            /* and the loop that freed them takes one too */
            T_EQ(evpl_iovec_alloc(take, BUF, 0, 1, 0, &iov[0]), 1);
            T_EQ(evpl_iovec_alloc(give, BUF, 0, 1, 0, &iov[1]), 1);
            evpl_iovec_release(take, &iov[0]);
            evpl_iovec_release(give, &iov[1]);
        }
        evpl_destroy(a);
        evpl_destroy(b);
    }
    return 0;
}
