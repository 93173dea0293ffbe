/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Time.
 *
 * The loop's own clock (timer deadlines, the spin window) is
 * CLOCK_MONOTONIC itself, so a timer never fires before its delay has
 * passed on that clock, whichever thread looks.  evpl_get_hf_monotonic_time
 * may use the TSC instead (hf_time_mode): rdtsc scaled by a rate measured
 * at init, in segments shared by every thread.  About three times a second
 * the first thread to cross a segment's end starts a new one, at the value
 * the old one reached and at a rate that steers it towards CLOCK_MONOTONIC
 * (at most 0.1% off the long-term rate).  Being one clock for all threads,
 * a reading is never less than a reading another thread made before it.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"

static int use_tsc;

/* A new segment after 2^30 ticks (~0.3 s at 3 GHz). */
#define SEGMENT_TICKS (1ull << 30)

/* One segment of the TSC clock, under a sequence lock (odd: being moved). */
static _Alignas(EVPL_CACHELINE) struct {
    _Atomic uint32_t seq;
    _Atomic uint64_t tsc;  /* the segment starts here ...         */
    _Atomic uint64_t ns;   /* ... at this time ...                */
    _Atomic uint64_t mult; /* ... and runs at this rate (ns/tick, 32.32) */
    uint64_t tsc0;         /* init: for the long-term rate        */
    uint64_t mono0;
} seg;

/* a thread's last reading: it never goes back even if the thread moves to
 * a CPU whose TSC is slightly behind */
static __thread uint64_t last_ns __attribute__((tls_model("initial-exec")));

static inline uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
} /* mono_ns */

uint64_t
evpl__mono_ns(void)
{
    return mono_ns();
} /* evpl__mono_ns */

#if defined(__x86_64__) || defined(__i386__)
static inline uint64_t
rdtsc(void)
{
    uint32_t lo, hi;

    /* lfence: the counter is read after the loads before it, so a reading
     * made after seeing another thread's is taken after it */
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
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

/* A (CLOCK_MONOTONIC, TSC) pair read as close together as possible: the
 * tightest of a few tries, the TSC taken as the middle of its window (a
 * thread preempted between the two reads would skew the rate for good). */
static void
sample(uint64_t *mono, uint64_t *tsc)
{
    uint64_t best = UINT64_MAX;

    for (int i = 0; i < 8; i++) {
        uint64_t a = rdtsc(), m = mono_ns(), b = rdtsc();

        if (b > a && b - a < best) {
            best = b - a;
            *mono = m;
            *tsc = a + (b - a) / 2;
        }
    }
} /* sample */

/* Measure the TSC rate against CLOCK_MONOTONIC over ~2 ms; start the
 * first segment there. */
static int
calibrate(void)
{
    uint64_t t0 = 0, t1 = 0, c0 = 0, c1 = 0, mult;

    sample(&t0, &c0);
    do {
        sample(&t1, &c1);
    } while (t1 - t0 < 2000000);
    if (c1 <= c0) {
        return -1;
    }
    mult = (uint64_t) (((unsigned __int128) (t1 - t0) << 32) / (c1 - c0));
    if (!mult) {
        return -1;
    }
    seg.tsc0 = c0;
    seg.mono0 = t0;
    atomic_store(&seg.tsc, c1);
    atomic_store(&seg.ns, t1);
    atomic_store(&seg.mult, mult);
    return 0;
} /* calibrate */

/*
 * Start a new segment at tsc (the caller holds the sequence lock), where
 * the clock reads cur: at the long-term rate, corrected by at most 0.1% so
 * that the difference from CLOCK_MONOTONIC is absorbed over the next
 * segment.  A clock that is behind by more than 100 us jumps forward to
 * CLOCK_MONOTONIC instead; it never jumps back.
 */
static void
new_segment(uint64_t tsc, uint64_t cur)
{
    uint64_t mono = 0, at = 0, rate;
    int64_t err, adj, cap;

    sample(&mono, &at);
    /* CLOCK_MONOTONIC as it was at tsc */
    mono -= (uint64_t) (((unsigned __int128) (at > tsc ? at - tsc : 0) * seg.mult) >> 32);
    rate = (uint64_t) (((unsigned __int128) (mono - seg.mono0) << 32) / (tsc - seg.tsc0));
    if (mono > cur + 100000) {
        cur = mono;
    }
    err = (int64_t) (mono - cur);
    adj = (int64_t) ((__int128) err * ((__int128) 1 << 32) / (__int128) SEGMENT_TICKS);
    cap = (int64_t) (rate / 1000);
    adj = adj > cap ? cap : adj < -cap ? -cap : adj;
    atomic_store_explicit(&seg.tsc, tsc, memory_order_relaxed);
    atomic_store_explicit(&seg.ns, cur, memory_order_relaxed);
    atomic_store_explicit(&seg.mult, (uint64_t) ((int64_t) rate + adj), memory_order_relaxed);
} /* new_segment */

static uint64_t
tsc_now_ns(void)
{
    uint64_t tsc, base, ns, mult, cur;
    uint32_t s;

    for (;;) {
        s = atomic_load_explicit(&seg.seq, memory_order_acquire);
        if (unlikely(s & 1)) {
            continue; /* another thread is starting a segment */
        }
        /* acquire loads: the second look at seq cannot move before them
         * (free on x86) */
        base = atomic_load_explicit(&seg.tsc, memory_order_acquire);
        ns = atomic_load_explicit(&seg.ns, memory_order_acquire);
        mult = atomic_load_explicit(&seg.mult, memory_order_acquire);
        tsc = rdtsc();
        if (atomic_load_explicit(&seg.seq, memory_order_relaxed) != s) {
            continue;
        }
        /* a CPU whose TSC is a little behind the segment's start: no time
         * has passed yet (the difference would wrap to ~2^64 ticks) */
        if (unlikely((int64_t) (tsc - base) < 0)) {
            tsc = base;
        }
        cur = ns + (uint64_t) (((unsigned __int128) (tsc - base) * mult) >> 32);
        if (unlikely(tsc - base >= SEGMENT_TICKS) &&
            atomic_compare_exchange_strong(&seg.seq, &s, s + 1)) {
            new_segment(tsc, cur);
            atomic_store_explicit(&seg.seq, s + 2, memory_order_release);
        }
        return cur;
    }
} /* tsc_now_ns */
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
        uint64_t ns = tsc_now_ns();

        if (unlikely(ns < last_ns)) {
            ns = last_ns;
        }
        last_ns = ns;
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
