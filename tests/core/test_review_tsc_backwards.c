/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit */
/*
 * Review (white-box): clock.c claims a safety net for "a thread that
 * migrates between CPUs whose TSCs disagree slightly", but a TSC reading
 * only slightly *below* anchor.tsc makes (tsc - anchor.tsc) wrap to ~2^64,
 * which passes the ">= REANCHOR_TICKS" test; reanchor() then extrapolates
 * over ~2^64 ticks and the thread's clock jumps ~centuries ahead, for good
 * (every timer fires at once, every timeout expires).
 *
 * Simulated by moving the thread's anchor a few microseconds' worth of
 * ticks into the future, as a reanchor on a CPU whose TSC is ahead would.
 */
#include "core/clock.c"

#include "t.h"

int
main(void)
{
#if defined(__x86_64__) || defined(__i386__)
    uint64_t before, after;

    evpl__clock_init(1); /* force the TSC clock */
    if (!use_tsc) {
        T_SKIP("TSC calibration failed");
    }
    before = evpl__hf_now_ns(); /* anchors this thread */
    T_OK(anchor.ns != 0);

    /* the anchor was taken on a CPU whose TSC runs 10000 ticks ahead */
    anchor.tsc = rdtsc() + 10000;
    anchor.ns = before;
    anchor.last = before;

    after = evpl__hf_now_ns();
    if (after - before > 1000000000ull) {
        T_FAIL("clock jumped %.3g s ahead after a TSC step back of 10000 ticks",
               (double) (after - before) / 1e9);
    }
    /* and it keeps tracking CLOCK_MONOTONIC */
    T_LT(evpl__hf_now_ns() - mono_ns() + 1000000000ull, 2000000000ull);
    return 0;
#else
    T_SKIP("no TSC on this architecture");
#endif
}
