/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_timer.h directly, include evpl/evpl.h instead"
#endif

#include <sys/time.h>

struct evpl_timer;

typedef void (*evpl_timer_callback_t)(struct evpl *evpl, struct evpl_timer *timer);

/*
 * Caller storage, valid while armed.  The library writes every member on
 * add: interval in microseconds, deadline in loop clock units (ns),
 * oneshot 0/1.  Do not modify an armed timer.
 */
struct evpl_timer {
    evpl_timer_callback_t callback;
    uint64_t interval;
    uint64_t deadline;
    int oneshot;
};

/*
 * Periodic timer: first fires interval_us from now; after each callback it
 * is re-armed for (time after the callback) + interval.  interval_us must be
 * > 0.  Borrows timer until removed.  Owning thread; callable from callbacks.
 */
EVPL_API void evpl_add_timer(struct evpl *evpl, struct evpl_timer *timer,
                             evpl_timer_callback_t callback, uint64_t interval_us);

/*
 * One-shot timer: fires once, delay_us from now.  It is disarmed before its
 * callback runs, so the callback may free or re-add it.
 */
EVPL_API void evpl_add_oneshot_timer(struct evpl *evpl, struct evpl_timer *timer,
                                     evpl_timer_callback_t callback, uint64_t delay_us);

/*
 * Disarm a timer; no-op when not armed.  Works for any timer from any
 * callback, a periodic timer's own included.  O(log n).  Owning thread.
 */
EVPL_API void evpl_remove_timer(struct evpl *evpl, struct evpl_timer *timer);
