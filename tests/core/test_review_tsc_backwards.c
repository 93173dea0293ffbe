/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit */
/*
 * Review (white-box): a TSC reading slightly *below* the segment's start
 * (a CPU whose TSC is a little behind the one that started the segment)
 * must not make (tsc - start) wrap to ~2^64, which would pass the
 * ">= SEGMENT_TICKS" test, extrapolate over ~2^64 ticks and jump the clock
 * ~centuries ahead, for good (every timer fires at once, every timeout
 * expires).
 *
 * Simulated by moving the segment's start a few microseconds' worth of
 * ticks into the future, as a segment started on a CPU whose TSC is ahead
 * would.
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
    before = evpl__hf_now_ns();
    T_OK(atomic_load(&seg.ns) != 0);

    /* the segment was started on a CPU whose TSC runs 10000 ticks ahead */
    atomic_store(&seg.tsc, rdtsc() + 10000);
    atomic_store(&seg.ns, before);

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
