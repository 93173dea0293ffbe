// SPDX-License-Identifier: LGPL-2.1-only
// A C++ program built only against the installed headers and library: the
// headers compile as C++ (C linkage, no C11 <stdatomic.h> in C++), and the
// inline reference helpers work on SHARED (atomic) iovecs.
#include <evpl/evpl.h>

#include <cstdio>
#include <cstring>

int
main()
{
    struct evpl *evpl = evpl_create(nullptr);
    struct evpl_iovec v, c;

    if (evpl_iovec_alloc(evpl, 4096, 0, 1, EVPL_IOVEC_FLAG_SHARED, &v) != 1) {
        std::fprintf(stderr, "allocation failed\n");
        return 1;
    }
    std::memset(evpl_iovec_data(&v), 7, 4096);
    evpl_iovec_clone(&c, &v);
    evpl_iovec_release(evpl, &v);
    int ok = static_cast<unsigned char *>(evpl_iovec_data(&c))[4095] == 7;
    evpl_iovec_release(evpl, &c);
    evpl_destroy(evpl);
    std::printf("C++ consumer: %s\n", ok ? "ok" : "wrong data");
    return ok ? 0 : 1;
}
