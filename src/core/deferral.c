/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Deferrals: an array of armed tokens.  deferral->armed holds the slot
 * index + 1, so removal is O(1) and "armed" stays a plain non-zero test.
 * A deferral armed for the next pass (evpl__defer_next) sits in a second
 * array, its slot marked with DEFER_NEXT.
 */
#include "core/internal.h"
#include "core/next_pass.h"

#define DEFER_NEXT (UINT64_C(1) << 63)

static void
unlink_slot(struct evpl_deferral **arr, uint32_t *len, struct evpl_deferral *deferral,
            uint64_t mark)
{
    uint64_t slot = (deferral->armed & ~DEFER_NEXT) - 1;
    struct evpl_deferral *last;

    EVPL_ASSERT(slot < *len && arr[slot] == deferral);
    last = arr[--*len];
    arr[slot] = last;
    last->armed = mark | (slot + 1);
    deferral->armed = 0;
} /* unlink_slot */

/* deferral sits in one of evpl's arrays, where its armed says */
static int
armed_on(const struct evpl *evpl, const struct evpl_deferral *deferral)
{
    uint64_t slot = (deferral->armed & ~DEFER_NEXT) - 1;

    if (deferral->armed & DEFER_NEXT) {
        return slot < evpl->deferrals_next_len && evpl->deferrals_next[slot] == deferral;
    }
    return slot < evpl->deferrals_len && evpl->deferrals[slot] == deferral;
} /* armed_on */

EVPL_API void
evpl_deferral_init(struct evpl_deferral *deferral, deferral_callback_t callback, void *private_data)
{
    deferral->callback = callback;
    deferral->private_data = private_data;
    /* Storage need not be zeroed (loop.md §3), but a deferral still armed
     * stays armed, as upstream leaves it: cleared, it was queued twice by
     * the next evpl_defer and could not be removed, so it ran on storage
     * freed after its removal (helper-118).  Whatever armed holds, only a
     * slot of this thread's loops that holds this deferral counts. */
    if (deferral->armed) {
        for (const struct evpl *evpl = evpl__thread_loops(); evpl; evpl = evpl->thread_next) {
            if (armed_on(evpl, deferral)) {
                return;
            }
        }
    }
    deferral->armed = 0;
} /* evpl_deferral_init */

EVPL_API void
evpl_defer(struct evpl *evpl, struct evpl_deferral *deferral)
{
    EVPL_OWNER_ONLY(evpl);
    if (deferral->armed & DEFER_NEXT) {
        /* asked for this pass after all */
        unlink_slot(evpl->deferrals_next, &evpl->deferrals_next_len, deferral, DEFER_NEXT);
    } else if (deferral->armed) {
        return;
    }
    evpl_array_reserve(evpl->deferrals, evpl->deferrals_cap, evpl->deferrals_len);
    evpl->deferrals[evpl->deferrals_len] = deferral;
    deferral->armed = ++evpl->deferrals_len;
} /* evpl_defer */

/* A backend's hand-over to the kernel, once per pass: put off to the
 * pass's deferral dispatch, or done at once when that has run (a request
 * made from the iteration_end hook: block.md §3 rule 1, helper-114). */
void
evpl__defer_handover(struct evpl *evpl, struct evpl_deferral *deferral)
{
    if (evpl->pass_tail) {
        evpl_remove_deferral(evpl, deferral);
        deferral->callback(evpl, deferral->private_data);
        return;
    }
    evpl_defer(evpl, deferral);
} /* evpl__defer_handover */

EVPL_API void
evpl_remove_deferral(struct evpl *evpl, struct evpl_deferral *deferral)
{
    EVPL_OWNER_ONLY(evpl);
    if (deferral->armed & DEFER_NEXT) {
        unlink_slot(evpl->deferrals_next, &evpl->deferrals_next_len, deferral, DEFER_NEXT);
    } else if (deferral->armed) {
        unlink_slot(evpl->deferrals, &evpl->deferrals_len, deferral, 0);
    }
} /* evpl_remove_deferral */

EVPL_API void
evpl__defer_next(struct evpl *evpl, struct evpl_deferral *deferral)
{
    EVPL_OWNER_ONLY(evpl);
    if (deferral->armed) {
        return; /* (armed for this pass: it runs sooner, which is allowed) */
    }
    evpl_array_reserve(evpl->deferrals_next, evpl->deferrals_next_cap, evpl->deferrals_next_len);
    evpl->deferrals_next[evpl->deferrals_next_len] = deferral;
    deferral->armed = DEFER_NEXT | ++evpl->deferrals_next_len;
} /* evpl__defer_next */

EVPL_API uint64_t
evpl__pass(struct evpl *evpl)
{
    return evpl__pass_id(evpl);
} /* evpl__pass */

void
evpl__deferrals_promote(struct evpl *evpl)
{
    /* what the last pass put off is armed for this one */
    while (evpl->deferrals_next_len) {
        struct evpl_deferral *d = evpl->deferrals_next[--evpl->deferrals_next_len];

        d->armed = 0;
        evpl_defer(evpl, d);
    }
} /* evpl__deferrals_promote */

void
evpl__deferrals_run(struct evpl *evpl)
{
    /* LIFO; the spec leaves the order open.  Runs until none is armed, so
     * a callback that re-arms runs again within this pass. */
    while (evpl->deferrals_len) {
        struct evpl_deferral *d = evpl->deferrals[--evpl->deferrals_len];

        d->armed = 0;
        d->callback(evpl, d->private_data);
    }
} /* evpl__deferrals_run */
