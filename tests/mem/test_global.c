/* SPDX-License-Identifier: LGPL-2.1-only */
/* GLOBAL iovecs: one whole buffer, not counted, freed by one release. */
#include <evpl/evpl.h>

#include "t.h"

static struct evpl *evpl;

static void
global_double_release(void *arg)
{
    struct evpl_iovec g, copy;

    (void) arg;
    evpl_iovec_alloc_global(evpl, &g);
    copy = g;
    evpl_iovec_release(evpl, &g);
    evpl_iovec_release(evpl, &copy); /* freed already: must abort */
}

int
main(void)
{
    struct evpl_iovec g, c;
    int64_t base;

    evpl = evpl_create(NULL);
    base = t_metric("evpl_allocator_buffers_in_use");

    evpl_iovec_alloc_global(evpl, &g);
    T_OK(g.data != NULL);
    T_EQ(g.length, 2 * 1024 * 1024); /* 12: length == buffer_size */
    T_EQ(evpl_iovec_get_ref(&g)->flags, EVPL_IOVEC_FLAG_SHARED | EVPL_IOVEC_FLAG_GLOBAL);
    memset(g.data, 0x5a, g.length);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), base + 1);

    /* clones and internal releases are not counted: the buffer stays */
    evpl_iovec_clone(&c, &g);
    evpl_iovec_release_internal(evpl, &c);
    evpl_iovec_release_internal(evpl, &c);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), base + 1);
    T_EQ(((unsigned char *) g.data)[12345], 0x5a);

    /* the application's single release frees it and clears data */
    evpl_iovec_release(evpl, &g);
    T_OK(g.data == NULL);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), base);

    T_EQ(t_child_signal(global_double_release, NULL), SIGABRT);

    evpl_destroy(evpl);
    return 0;
}
