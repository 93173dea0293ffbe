/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_deferral.h directly, include evpl/evpl.h instead"
#endif

typedef void (*deferral_callback_t)(struct evpl *evpl, void *private_data);

/*
 * A reusable "run this later in this pass" token in caller storage.
 * armed is non-zero while queued (it holds the queue position); do not
 * modify the members of an armed deferral.
 */
struct evpl_deferral {
    deferral_callback_t callback;
    void *private_data;
    uint64_t armed;
};

/* Store callback and argument and clear armed.  Borrows deferral. */
EVPL_API void evpl_deferral_init(struct evpl_deferral *deferral, deferral_callback_t callback,
                                 void *private_data);

/*
 * Queue the deferral on evpl unless already queued.  It runs after event
 * dispatch of the current pass (or the next pass when armed outside one);
 * a callback may re-arm its own deferral, which runs again in the same pass.
 * Owning thread; callable from callbacks.
 */
EVPL_API void evpl_defer(struct evpl *evpl, struct evpl_deferral *deferral);

/* Disarm without running; no-op when not armed.  Owning thread. */
EVPL_API void evpl_remove_deferral(struct evpl *evpl, struct evpl_deferral *deferral);
