/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Debug builds poison a buffer's memory while it sits on a free list, so
 * touching an iovec after its last release is reported by AddressSanitizer
 * at the faulting line.  Only meaningful under ASan: skipped otherwise.
 */
#include <evpl/evpl.h>

#include "t.h"

int
main(void)
{
#if !defined(__SANITIZE_ADDRESS__)
    T_SKIP("needs an AddressSanitizer build");
#else
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_iovec iov;
    pid_t pid;
    int status;

    /* a whole buffer: releasing it returns the buffer to the free list */
    T_EQ(evpl_iovec_alloc(evpl, 2 * 1024 * 1024, 0, 1, 0, &iov), 1);
    memset(iov.data, 1, iov.length); /* fine while referenced */
    evpl_iovec_release(evpl, &iov);

    pid = fork();
    if (pid == 0) {
        /* ASan must stop this write; keep its report short */
        ((volatile char *) iov.data)[100] = 2;
        _exit(0);
    }
    T_EQ(waitpid(pid, &status, 0), pid);
    T_OK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));

    /* and the buffer is usable again once handed out anew */
    T_EQ(evpl_iovec_alloc(evpl, 2 * 1024 * 1024, 0, 1, 0, &iov), 1);
    memset(iov.data, 3, iov.length);
    evpl_iovec_release(evpl, &iov);
    evpl_destroy(evpl);
    return 0;
#endif
}
