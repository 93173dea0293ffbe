/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Review findings on buffer sizes.  A buffer_size that is not whole pages
 * (6000) let an aligned allocation push the fill mark past the end of the
 * buffer, and the next allocation got memory beyond it; one of 4 GiB
 * wrapped the 32-bit fill mark.  Now the setter refuses both (keeping the
 * previous value), and with a legal but odd size (3 pages) an aligned
 * allocation near the end leaves the next one no room instead of memory
 * outside the buffer.
 */
#include <evpl/evpl.h>

#include "t.h"

#define BS (3u * 4096)

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
    struct evpl_iovec a, b, c, g;

    evpl_global_config_set_buffer_size(cfg, 6000);       /* refused */
    evpl_global_config_set_buffer_size(cfg, 4ull << 30); /* refused */
    evpl_global_config_set_buffer_size(cfg, BS);         /* whole pages: fine */
    evpl_global_config_set_slab_size(cfg, 16 * BS);
    evpl_init(cfg);
    evpl = evpl_create(NULL);

    evpl_iovec_alloc_global(evpl, &g);
    T_EQ(g.length, BS); /* the last accepted value */
    evpl_iovec_release(evpl, &g);

    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &a), 1);
    T_EQ(evpl_iovec_alloc(evpl, 100, 8192, 1, 0, &b), 1); /* fill mark rounds to 16384 > BS */
    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &c), 1);    /* must not land past the buffer */
    T_OK(!overlap(&a, &b) && !overlap(&a, &c) && !overlap(&b, &c));
    memset(a.data, 1, a.length);
    memset(b.data, 2, b.length);
    memset(c.data, 3, c.length); /* ASan: inside a mapped, live buffer */
    T_EQ(((unsigned char *) a.data)[99], 1);
    T_EQ(((unsigned char *) b.data)[99], 2);

    /* argument checks hold when the current buffer has room too */
    T_EQ(evpl_iovec_alloc(evpl, 10, 0, 0, 0, &g), -1); /* max_iovecs 0 */
    T_EQ(evpl_iovec_alloc(evpl, 10, 3, 1, 0, &g), -1); /* alignment not 2^n */

    evpl_iovec_release(evpl, &a);
    evpl_iovec_release(evpl, &b);
    evpl_iovec_release(evpl, &c);
    evpl_destroy(evpl);
    return 0;
}
