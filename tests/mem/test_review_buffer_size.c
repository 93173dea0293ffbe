/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Buffer sizes that are not whole pages (core.md §2: setters store what
 * they are given).  6000 is accepted: one contiguous iovec holds up to 6000
 * bytes, 6001 take two, and buffers still start on page boundaries, so an
 * alignment of 4096 is absolute (memory.md §3.4).  An aligned allocation
 * near the end of such a buffer leaves the next one no room instead of
 * memory beyond it (a review finding: the fill mark once ran past the
 * end).  4 GiB is refused (32-bit fill marks), keeping the previous value.
 */
#include <evpl/evpl.h>

#include "t.h"

#define BS 6000u

static int
overlap(const struct evpl_iovec *x, const struct evpl_iovec *y)
{
    const char *a = x->data, *b = y->data;

    return a < b + y->length && b < a + x->length;
}

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    struct evpl *evpl;
    struct evpl_iovec a, b, c, g, v[3];

    evpl_global_config_set_buffer_size(cfg, BS);
    evpl_global_config_set_buffer_size(cfg, 4ull << 30); /* refused */
    evpl_global_config_set_slab_size(cfg, 1 << 20);
    evpl_init(cfg);
    evpl = evpl_create(NULL);

    evpl_iovec_alloc_global(evpl, &g);
    T_EQ(g.length, BS); /* the last accepted value */
    T_EQ((uintptr_t) g.data % 4096, 0);
    evpl_iovec_release(evpl, &g);

    /* the largest contiguous allocation is buffer_size */
    T_EQ(evpl_iovec_alloc(evpl, BS, 0, 1, 0, v), 1);
    T_EQ(v[0].length, BS);
    memset(v[0].data, 9, BS);
    evpl_iovec_release(evpl, &v[0]);
    T_EQ(evpl_iovec_alloc(evpl, BS + 1, 0, 1, 0, v), -1);
    T_EQ(evpl_iovec_alloc(evpl, BS + 1, 0, 3, 0, v), 2);
    T_EQ(v[0].length, BS);
    T_EQ(v[1].length, 1);
    T_OK(!overlap(&v[0], &v[1]));
    memset(v[0].data, 7, v[0].length);
    evpl_iovec_release(evpl, &v[0]);
    evpl_iovec_release(evpl, &v[1]);

    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &a), 1);
    T_EQ(evpl_iovec_alloc(evpl, 100, 4096, 1, 0, &b), 1); /* page-aligned, absolutely */
    T_EQ((uintptr_t) b.data % 4096, 0);
    T_EQ(evpl_iovec_alloc(evpl, 100, 8192, 1, 0, &c), -1); /* alignment above buffer_size */
    /* the fill mark after b rounds to 8192, past BS: c goes elsewhere */
    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &c), 1);
    T_OK(!overlap(&a, &b) && !overlap(&a, &c) && !overlap(&b, &c));
    memset(a.data, 1, a.length);
    memset(b.data, 2, b.length);
    memset(c.data, 3, c.length); /* ASan: inside a mapped, live buffer */
    T_EQ(((unsigned char *) a.data)[99], 1);
    T_EQ(((unsigned char *) b.data)[99], 2);
    evpl_iovec_release(evpl, &a);
    evpl_iovec_release(evpl, &b);
    evpl_iovec_release(evpl, &c);

    /* many buffers: each starts on a page, none overlaps the next */
    {
        struct evpl_iovec w[64];

        for (int i = 0; i < 64; i++) {
            T_EQ(evpl_iovec_alloc(evpl, BS, 0, 1, 0, &w[i]), 1);
            T_EQ((uintptr_t) w[i].data % 4096, 0);
            memset(w[i].data, i, BS);
        }
        for (int i = 0; i < 64; i++) {
            for (int j = i + 1; j < 64; j++) {
                T_OK(!overlap(&w[i], &w[j]));
            }
            T_EQ(((unsigned char *) w[i].data)[BS - 1], i);
            evpl_iovec_release(evpl, &w[i]);
        }
    }

    /* argument checks hold when the current buffer has room too */
    T_EQ(evpl_iovec_alloc(evpl, 10, 0, 1, 0, &a), 1);
    T_EQ(evpl_iovec_alloc(evpl, 10, 0, 0, 0, &g), -1); /* max_iovecs 0 */
    T_EQ(evpl_iovec_alloc(evpl, 10, 3, 1, 0, &g), -1); /* alignment not 2^n */
    evpl_iovec_release(evpl, &a);

    evpl_destroy(evpl);
    return 0;
}
