/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Deferrals: an array of armed tokens.  deferral->armed holds the slot
 * index + 1, so removal is O(1) and "armed" stays a plain non-zero test.
 */
#include "core/internal.h"

EVPL_API void
evpl_deferral_init(struct evpl_deferral *deferral, deferral_callback_t callback, void *private_data)
{
    deferral->callback = callback;
    deferral->private_data = private_data;
    deferral->armed = 0; /* upstream leaves it; storage need not be zeroed */
} /* evpl_deferral_init */

EVPL_API void
evpl_defer(struct evpl *evpl, struct evpl_deferral *deferral)
{
    EVPL_OWNER_ONLY(evpl);
    if (deferral->armed) {
        return;
    }
    evpl_array_reserve(evpl->deferrals, evpl->deferrals_cap, evpl->deferrals_len);
    evpl->deferrals[evpl->deferrals_len] = deferral;
    deferral->armed = ++evpl->deferrals_len;
} /* evpl_defer */

EVPL_API void
evpl_remove_deferral(struct evpl *evpl, struct evpl_deferral *deferral)
{
    EVPL_OWNER_ONLY(evpl);
    uint64_t slot;
    struct evpl_deferral *last;

    if (!deferral->armed) {
        return;
    }
    slot = deferral->armed - 1;
    EVPL_ASSERT(slot < evpl->deferrals_len && evpl->deferrals[slot] == deferral);
    last = evpl->deferrals[--evpl->deferrals_len];
    evpl->deferrals[slot] = last;
    last->armed = slot + 1;
    deferral->armed = 0;
} /* evpl_remove_deferral */

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
