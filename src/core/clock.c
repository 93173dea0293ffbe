/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * High-frequency monotonic time.
 *
 * With an invariant TSC ("nonstop_tsc") the clock is rdtsc scaled by a
 * frequency measured at init.  Each thread re-anchors its (tsc, ns) pair to
 * CLOCK_MONOTONIC about three times a second, so calibration error cannot
 * accumulate (at 50 ppm it stays below 20 us), and clamps to the last value
 * it returned so the clock never steps back on that thread.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"

static int use_tsc;
static uint64_t tsc_mult; /* ns per tick, 32.32 fixed point */

/* Re-anchor after 2^30 ticks (~0.3 s at 3 GHz). */
#define REANCHOR_TICKS (1ull << 30)

struct tsc_anchor {
    uint64_t tsc;
    uint64_t ns;
    uint64_t last;
};

static __thread struct tsc_anchor anchor;

static inline uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
} /* mono_ns */

#if defined(__x86_64__) || defined(__i386__)
static inline uint64_t
rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t) hi << 32) | lo;
} /* rdtsc */

static int
cpu_has_nonstop_tsc(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[4096];
    int found = 0;

    if (!f) {
        return 0;
    }
    while (!found && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "flags", 5) == 0) {
            found = strstr(line, " nonstop_tsc") != NULL && strstr(line, " constant_tsc") != NULL;
            break;
        }
    }
    fclose(f);
    return found;
} /* cpu_has_nonstop_tsc */

/* Measure the TSC rate against CLOCK_MONOTONIC over ~1 ms. */
static int
calibrate(void)
{
    uint64_t t0, t1, c0, c1;

    t0 = mono_ns();
    c0 = rdtsc();
    do {
        t1 = mono_ns();
    } while (t1 - t0 < 1000000);
    c1 = rdtsc();
    if (c1 <= c0) {
        return -1;
    }
    tsc_mult = (uint64_t) (((unsigned __int128) (t1 - t0) << 32) / (c1 - c0));
    return tsc_mult ? 0 : -1;
} /* calibrate */
#endif /* if defined(__x86_64__) || defined(__i386__) */

void
evpl__clock_init(unsigned int hf_time_mode)
{
    use_tsc = 0;
#if defined(__x86_64__) || defined(__i386__)
    if (hf_time_mode == 2) {
        hf_time_mode = cpu_has_nonstop_tsc() ? 1 : 0;
    }
    if (hf_time_mode == 1) {
        use_tsc = calibrate() == 0;
        if (!use_tsc) {
            evpl_log_info("core", "TSC calibration failed, using clock_gettime");
        }
    }
#else  /* if defined(__x86_64__) || defined(__i386__) */
    (void) hf_time_mode;
#endif /* if defined(__x86_64__) || defined(__i386__) */
    evpl_log_debug("core", "hf clock: %s", use_tsc ? "tsc" : "clock_gettime");
} /* evpl__clock_init */

uint64_t
evpl__hf_now_ns(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (likely(use_tsc)) {
        uint64_t tsc = rdtsc();
        uint64_t ns;

        if (unlikely(tsc - anchor.tsc >= REANCHOR_TICKS || !anchor.ns)) {
            anchor.tsc = rdtsc();
            anchor.ns = mono_ns();
            tsc = anchor.tsc;
        }
        ns = anchor.ns + (uint64_t) (((unsigned __int128) (tsc - anchor.tsc) * tsc_mult) >> 32);
        if (unlikely(ns < anchor.last)) {
            ns = anchor.last;
        }
        anchor.last = ns;
        return ns;
    }
#endif /* if defined(__x86_64__) || defined(__i386__) */
    return mono_ns();
} /* evpl__hf_now_ns */

EVPL_API void
evpl_get_hf_monotonic_time(struct evpl *evpl, struct timespec *ts)
{
    uint64_t ns = evpl__hf_now_ns();

    (void) evpl;
    ts->tv_sec = (time_t) (ns / 1000000000ull);
    ts->tv_nsec = (long) (ns % 1000000000ull);
} /* evpl_get_hf_monotonic_time */

EVPL_API void
evpl_virtual_clock_advance(uint64_t ns)
{
    if (!evpl_shared || !evpl_shared->virtual_clock) {
        evpl_bug("core", "evpl_virtual_clock_advance: the virtual clock is not enabled");
    }
    atomic_fetch_add_explicit(&evpl_shared->virtual_now, ns, memory_order_acq_rel);
} /* evpl_virtual_clock_advance */

EVPL_API uint64_t
evpl_virtual_clock_now(void)
{
    if (!evpl_shared || !evpl_shared->virtual_clock) {
        evpl_bug("core", "evpl_virtual_clock_now: the virtual clock is not enabled");
    }
    return atomic_load_explicit(&evpl_shared->virtual_now, memory_order_acquire);
} /* evpl_virtual_clock_now */
