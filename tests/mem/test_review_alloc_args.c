/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Review: evpl_iovec_alloc validates its arguments only on the slow path.
 * Once the loop has a current buffer with room, max_iovecs == 0 (the fast
 * path in place()) and a non-power-of-two or oversized alignment (the
 * current-buffer branch of place_slow) are accepted and an iovec is
 * written, although evpl_memory.h documents -1 for both - and the same
 * call returns -1 on a loop without a current buffer.
 */
#include <evpl/evpl.h>

#include "t.h"

int
main(void)
{
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_iovec warm, iov[2];
    int n;

    /* no current buffer yet: rejected */
    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 0, 0, iov), -1);
    T_EQ(evpl_iovec_alloc(evpl, 100, 3, 1, 0, iov), -1);

    /* make a current buffer */
    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &warm), 1);

    n = evpl_iovec_alloc(evpl, 100, 0, 0, 0, iov);
    if (n > 0) {
        evpl_iovec_release(evpl, &iov[0]);
    }
    T_EQ(n, -1); /* max_iovecs == 0 */

    n = evpl_iovec_alloc(evpl, 100, 3, 1, 0, iov);
    if (n > 0) {
        evpl_iovec_release(evpl, &iov[0]);
    }
    T_EQ(n, -1); /* alignment not a power of two */

    evpl_iovec_release(evpl, &warm);
    evpl_destroy(evpl);
    return 0;
}
