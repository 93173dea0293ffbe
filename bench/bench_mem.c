/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * bench-mem: evpl_iovec_alloc + release against malloc + free, in one run.
 *   pair:  allocate and release immediately (the allocator's best case)
 *   batch: allocate 64, then release the 64 (a send queue's pattern)
 * and the peak RSS while 1 GiB flows through in 64 KiB pieces.
 * Numbers only; not a test.
 */
#include <evpl/evpl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/* keep the compiler from dropping the work */
static volatile uintptr_t sink;

static double
evpl_pair(struct evpl *evpl, unsigned size, unsigned flags, int iters)
{
    struct evpl_iovec iov;
    uint64_t t0 = now_ns();

    for (int i = 0; i < iters; i++) {
        evpl_iovec_alloc(evpl, size, 0, 1, flags, &iov);
        sink ^= (uintptr_t) iov.data;
        evpl_iovec_release(evpl, &iov);
    }
    return (double) (now_ns() - t0) / iters;
}

static double
malloc_pair(unsigned size, int iters)
{
    uint64_t t0 = now_ns();

    for (int i = 0; i < iters; i++) {
        void *p = malloc(size);

        sink ^= (uintptr_t) p;
        free(p);
    }
    return (double) (now_ns() - t0) / iters;
}

static double
evpl_batch(struct evpl *evpl, unsigned size, int iters)
{
    struct evpl_iovec iov[64];
    uint64_t t0 = now_ns();

    for (int i = 0; i < iters; i += 64) {
        for (int j = 0; j < 64; j++) {
            evpl_iovec_alloc(evpl, size, 0, 1, 0, &iov[j]);
            sink ^= (uintptr_t) iov[j].data;
        }
        evpl_iovecs_release(evpl, iov, 64);
    }
    return (double) (now_ns() - t0) / iters;
}

static double
malloc_batch(unsigned size, int iters)
{
    void *p[64];
    uint64_t t0 = now_ns();

    for (int i = 0; i < iters; i += 64) {
        for (int j = 0; j < 64; j++) {
            p[j] = malloc(size);
            sink ^= (uintptr_t) p[j];
        }
        for (int j = 0; j < 64; j++) {
            free(p[j]);
        }
    }
    return (double) (now_ns() - t0) / iters;
}

static long
peak_rss_kib(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

int
main(void)
{
    struct evpl *evpl = evpl_create(NULL);
    unsigned sizes[] = {64, 4096, 65536};
    int iters = 20000000;

    printf("%-8s %-6s %12s %12s %8s\n", "size", "shape", "evpl ns/op", "malloc ns/op", "ratio");
    for (unsigned s = 0; s < 3; s++) {
        int n = sizes[s] >= 65536 ? iters / 10 : iters;
        double e, m;

        /* warm both allocators first */
        evpl_pair(evpl, sizes[s], 0, n / 10);
        malloc_pair(sizes[s], n / 10);

        e = evpl_pair(evpl, sizes[s], 0, n);
        m = malloc_pair(sizes[s], n);
        printf("%-8u %-6s %12.2f %12.2f %7.1fx\n", sizes[s], "pair", e, m, m / e);
        e = evpl_batch(evpl, sizes[s], n);
        m = malloc_batch(sizes[s], n);
        printf("%-8u %-6s %12.2f %12.2f %7.1fx\n", sizes[s], "batch", e, m, m / e);
        e = evpl_pair(evpl, sizes[s], EVPL_IOVEC_FLAG_SHARED, n);
        printf("%-8u %-6s %12.2f %12s\n", sizes[s], "shared", e, "-");
    }

    /* 1 GiB through in 64 KiB pieces, 16 live at a time (1 MiB working set) */
    {
        struct evpl_iovec live[16];
        long before = peak_rss_kib();

        for (int i = 0; i < 16384; i++) {
            if (i >= 16) {
                evpl_iovec_release(evpl, &live[i % 16]);
            }
            evpl_iovec_alloc(evpl, 65536, 0, 1, 0, &live[i % 16]);
            memset(live[i % 16].data, i, 65536); /* touch every page */
        }
        evpl_iovecs_release(evpl, live, 16);
        printf("1 GiB in 64 KiB pieces, 1 MiB live: peak RSS grew %ld KiB (buffer 2048 KiB)\n",
               peak_rss_kib() - before);
    }

    evpl_destroy(evpl);
    return 0;
}
