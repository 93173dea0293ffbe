/* SPDX-License-Identifier: LGPL-2.1-only */
/* memory.md §12 statements 1-9 and the documented argument errors. */
#include <evpl/evpl.h>

#include "t.h"

#define BS (2u * 1024 * 1024) /* default buffer_size */

static struct evpl *evpl;

static void
clone_segment_too_long(void *arg)
{
    struct evpl_iovec src, dst;

    (void) arg;
    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &src), 1);
    evpl_iovec_clone_segment(&dst, &src, 0, src.length + 1); /* must abort */
}

static void
move_segment_too_long(void *arg)
{
    struct evpl_iovec src, dst;

    (void) arg;
    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &src), 1);
    evpl_iovec_move_segment(&dst, &src, 50, 51); /* must abort */
}

static void
double_release(void *arg)
{
    struct evpl_iovec a, copy;

    (void) arg;
    /* a whole buffer, so ours is its only reference (no loop hold) */
    T_EQ(evpl_iovec_alloc(evpl, BS, 0, 1, 0, &a), 1);
    copy = a;
    evpl_iovec_release(evpl, &a);
    evpl_iovec_release(evpl, &copy); /* must abort: no reference left */
}

static void
leak_at_exit(void *arg)
{
    struct evpl_iovec a;

    (void) arg;
    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &a), 1);
    exit(0); /* never released: the exit-time leak check must abort */
}

int
main(void)
{
    struct evpl_iovec iov[8], a, b, c;
    int n;

    evpl = evpl_create(NULL);

    /* 1: zero length */
    T_EQ(evpl_iovec_alloc(evpl, 0, 0, 4, 0, iov), 0);

    /* 2: any L <= buffer_size gives one iovec, whatever came before */
    {
        unsigned int sizes[] = {1, 100, 4096, 65536, BS / 2 + 1, BS - 1, BS, 3, BS};

        for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            n = evpl_iovec_alloc(evpl, sizes[i], 0, 1, 0, &iov[0]);
            T_EQ(n, 1);
            T_EQ(iov[0].length, sizes[i]);
            memset(iov[0].data, 0xA5, iov[0].length); /* writable, in bounds (ASan) */
            evpl_iovec_release(evpl, &iov[0]);
        }
    }

    /* 3: 3 buffers' worth with max 2 iovecs fails and owns nothing */
    {
        int64_t before = t_metric("evpl_allocator_buffers_in_use");

        T_EQ(evpl_iovec_alloc(evpl, 3 * BS, 0, 2, 0, iov), -1);
        T_EQ(t_metric("evpl_allocator_buffers_in_use"), before);
        n = evpl_iovec_alloc(evpl, 3 * BS, 0, 3, 0, iov);
        T_EQ(n, 3);
        T_EQ(iov[0].length + iov[1].length + iov[2].length, 3 * BS);
        evpl_iovecs_release(evpl, iov, n);
        n = evpl_iovec_alloc(evpl, 2 * BS + 10, 0, 8, 0, iov);
        T_EQ(n, 3);
        T_EQ(iov[0].length, BS);
        T_EQ(iov[1].length, BS);
        T_EQ(iov[2].length, 10);
        evpl_iovecs_release(evpl, iov, n);
    }

    /* 4: alignment */
    for (int i = 0; i < 16; i++) {
        T_EQ(evpl_iovec_alloc(evpl, 1 + i * 77, 4096, 1, 0, &iov[0]), 1);
        T_EQ((uintptr_t) iov[0].data % 4096, 0);
        evpl_iovec_release(evpl, &iov[0]);
        T_EQ(evpl_iovec_alloc(evpl, 13, 64, 1, EVPL_IOVEC_FLAG_SHARED, &iov[0]), 1);
        T_EQ((uintptr_t) iov[0].data % 64, 0);
        evpl_iovec_release(evpl, &iov[0]);
    }

    /* 5: consecutive small allocations never overlap */
    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &a), 1);
    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &b), 1);
    T_OK((char *) a.data + a.length <= (char *) b.data ||
         (char *) b.data + b.length <= (char *) a.data);
    memset(a.data, 1, a.length);
    memset(b.data, 2, b.length);
    T_EQ(((unsigned char *) a.data)[99], 1);
    evpl_iovec_release(evpl, &a);
    evpl_iovec_release(evpl, &b);

    /* 6: reserve, use M of N, commit: the next allocation is past them */
    n = evpl_iovec_reserve(evpl, 1000, 0, 1, &a);
    T_EQ(n, 1);
    T_EQ(a.length, 1000);
    memset(a.data, 7, 300);
    evpl_iovec_set_length(&a, 300);
    evpl_iovec_commit(evpl, 0, &a, 1);
    T_EQ(evpl_iovec_alloc(evpl, 500, 0, 1, 0, &b), 1);
    T_OK((char *) b.data >= (char *) a.data + 300 || (char *) b.data + 500 <= (char *) a.data);
    memset(b.data, 9, 500);
    for (int i = 0; i < 300; i++) {
        T_EQ(((unsigned char *) a.data)[i], 7);
    }
    evpl_iovec_release(evpl, &a);
    evpl_iovec_release(evpl, &b);
    /* without commit the same bytes come back (documented quirk) */
    T_EQ(evpl_iovec_reserve(evpl, 64, 0, 1, &a), 1);
    T_EQ(evpl_iovec_alloc(evpl, 64, 0, 1, 0, &b), 1);
    T_EQ_PTR(a.data, b.data);
    evpl_iovec_release(evpl, &a);
    evpl_iovec_release(evpl, &b);

    /* 7: clone, release both: the buffer returns exactly once */
    {
        int64_t before = t_metric("evpl_allocator_buffers_in_use");

        T_EQ(evpl_iovec_alloc(evpl, BS, 0, 1, 0, &a), 1); /* a whole fresh buffer */
        T_EQ(t_metric("evpl_allocator_buffers_in_use"), before + 1);
        evpl_iovec_clone(&b, &a);
        T_EQ_PTR(b.data, a.data);
        T_EQ(b.length, a.length);
        evpl_iovec_clone_segment(&c, &a, 10, 20);
        T_EQ_PTR(c.data, (char *) a.data + 10);
        T_EQ(c.length, 20);
        evpl_iovec_release(evpl, &a);
        evpl_iovec_release(evpl, &c);
        T_EQ(t_metric("evpl_allocator_buffers_in_use"), before + 1);
        evpl_iovec_release(evpl, &b);
        T_EQ(t_metric("evpl_allocator_buffers_in_use"), before);
    }

    /* 8: move clears src->data; releasing dst once balances */
    {
        int64_t before = t_metric("evpl_allocator_buffers_in_use");

        T_EQ(evpl_iovec_alloc(evpl, BS, 0, 1, 0, &a), 1);
        evpl_iovec_move(&b, &a);
        T_OK(a.data == NULL);
        T_OK(b.data != NULL);
        evpl_iovec_move_segment(&c, &b, 5, 5);
        T_OK(b.data != NULL); /* left looking valid, owns nothing */
        T_EQ(c.length, 5);
        evpl_iovec_release(evpl, &c);
        T_EQ(t_metric("evpl_allocator_buffers_in_use"), before);
    }

    /* accessors */
    T_EQ(evpl_iovec_alloc(evpl, 42, 0, 1, 0, &a), 1);
    T_EQ_PTR(evpl_iovec_data(&a), a.data);
    T_EQ(evpl_iovec_length(&a), 42);
    evpl_iovec_set_length(&a, 40);
    T_EQ(evpl_iovec_length(&a), 40);
    T_EQ_PTR(evpl_iovec_get_ref(&a), a.ref);
    evpl_iovec_release(evpl, &a);

    /* argument errors: documented -1, never an abort */
    T_EQ(evpl_iovec_alloc(evpl, BS, 3, 1, 0, iov), -1);      /* alignment not 2^n */
    T_EQ(evpl_iovec_alloc(evpl, BS, 0, 0, 0, iov), -1);      /* max_iovecs 0 */
    T_EQ(evpl_iovec_alloc(evpl, 10, 2 * BS, 1, 0, iov), -1); /* alignment > buffer */
    T_EQ(evpl_iovec_reserve(evpl, 3 * BS, 0, 1, iov), -1);

    /* 9 and friends: misuse aborts */
    T_EQ(t_child_signal(clone_segment_too_long, NULL), SIGABRT);
    T_EQ(t_child_signal(move_segment_too_long, NULL), SIGABRT);
    T_EQ(t_child_signal(double_release, NULL), SIGABRT);
    T_EQ(t_child_signal(leak_at_exit, NULL), SIGABRT);

    /* slab size query */
    T_EQ_U(evpl_get_slab_size(), 1024ull * 1024 * 1024);

    evpl_destroy(evpl);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 0);
    return 0;
}
