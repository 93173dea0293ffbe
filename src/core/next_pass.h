/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Work bounded per loop pass, for the module libraries (libevpl_http): a
 * connection that has done its share of a pass puts the rest off to the
 * next one, so one busy peer cannot hold the loop.  Internal to our
 * libraries: exported by libevpl.so for them, declared in no public header.
 */
#ifndef EVPL_CORE_NEXT_PASS_H
#define EVPL_CORE_NEXT_PASS_H

#include <stdint.h>

#include <evpl/evpl.h>

/* Arm deferral to run in the next pass's deferral dispatch, not in this
 * pass's (evpl_defer re-runs a deferral armed from a deferral in the same
 * pass).  A loop with one armed does not sleep.  No-op when the deferral
 * is armed already; evpl_defer brings it forward to this pass,
 * evpl_remove_deferral disarms it.  Owning thread. */
EVPL_API void evpl__defer_next(struct evpl *evpl, struct evpl_deferral *deferral);

/* The number of the loop's current pass (never 0): a per-pass budget is
 * reset when it changes.  Owning thread. */
EVPL_API uint64_t evpl__pass(struct evpl *evpl);

#endif
