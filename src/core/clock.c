/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * High-frequency monotonic time.
 *
 * With an invariant TSC ("nonstop_tsc") the clock is rdtsc scaled by a
 * frequency measured at init, and each thread steers its own TSC clock
 * towards CLOCK_MONOTONIC about three times a second (see reanchor), so
 * calibration error cannot accumulate and the clock never jumps.
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
    uint64_t tsc;   /* the current segment starts here ...     */
    uint64_t ns;    /* ... at this time ...                    */
    uint64_t mult;  /* ... and runs at this rate (ns/tick, 32.32) */
    uint64_t tsc0;  /* the thread's first reading, for the      */
    uint64_t mono0; /* long-term rate estimate                  */
    uint64_t last;
};

/* initial-exec: a plain %fs access, not a __tls_get_addr call per read */
static __thread struct tsc_anchor anchor __attribute__((tls_model("initial-exec")));

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

/*
 * Every REANCHOR_TICKS the thread compares its TSC time with
 * CLOCK_MONOTONIC and, instead of jumping (which would freeze the clock or
 * skip ahead by the accumulated drift), continues from where it is at a
 * rate that absorbs the difference over the next segment: the long-term
 * rate measured since the thread's first reading, corrected by at most
 * 0.1%.  The clock stays continuous and monotonic and tracks
 * CLOCK_MONOTONIC within the drift of one segment.
 */
static void
reanchor(uint64_t tsc)
{
    uint64_t mono = mono_ns();
    uint64_t cur, rate;
    int64_t err, adj, cap;

    if (unlikely(!anchor.ns)) {
        anchor.tsc = anchor.tsc0 = tsc;
        anchor.ns = anchor.mono0 = mono;
        anchor.mult = tsc_mult;
        return;
    }
    cur = anchor.ns + (uint64_t) (((unsigned __int128) (tsc - anchor.tsc) * anchor.mult) >> 32);
    rate = (uint64_t) (((unsigned __int128) (mono - anchor.mono0) << 32) / (tsc - anchor.tsc0));
    err = (int64_t) (mono - cur);
    adj = (int64_t) ((__int128) err * ((__int128) 1 << 32) / (__int128) REANCHOR_TICKS);
    cap = (int64_t) (rate / 1000);
    adj = adj > cap ? cap : adj < -cap ? -cap : adj;
    anchor.mult = (uint64_t) ((int64_t) rate + adj);
    anchor.tsc = tsc;
    anchor.ns = cur;
}

uint64_t
evpl__hf_now_ns(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (likely(use_tsc)) {
        uint64_t tsc = rdtsc();
        uint64_t ns;

        /* a thread moved to a CPU whose TSC is a little behind: no time
         * passed (the difference would otherwise wrap to ~2^64 ticks) */
        if (unlikely((int64_t) (tsc - anchor.tsc) < 0 && anchor.ns)) {
            tsc = anchor.tsc;
        }
        if (unlikely(tsc - anchor.tsc >= REANCHOR_TICKS || !anchor.ns)) {
            reanchor(tsc);
        }
        ns = anchor.ns + (uint64_t) (((unsigned __int128) (tsc - anchor.tsc) * anchor.mult) >> 32);
        /* safety net for a thread that migrates between CPUs whose TSCs
         * disagree slightly */
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
