/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_doorbell.h directly, include evpl/evpl.h instead"
#endif

/* Opaque caller storage for a cross-thread wakeup; embed it anywhere. */
struct evpl_doorbell {
    uint64_t opaque[8];
};

typedef void (*evpl_doorbell_callback_t)(struct evpl *evpl, struct evpl_doorbell *doorbell);

/*
 * Register doorbell on evpl (owning thread).  Borrows the storage until
 * evpl_remove_doorbell.  callback runs on the loop's thread in a later pass
 * after one or more rings.  Aborts if no eventfd can be created.
 */
EVPL_API void evpl_add_doorbell(struct evpl *evpl, struct evpl_doorbell *doorbell,
                                evpl_doorbell_callback_t callback);

/*
 * Unregister (owning thread, also from any doorbell callback).  After it
 * returns no callback runs and the storage may be freed.
 */
EVPL_API void evpl_remove_doorbell(struct evpl *evpl, struct evpl_doorbell *doorbell);

/*
 * The eventfd the loop waits on, for foreign event loops.  It becomes
 * readable when rung while the owning loop is not busy-polling (a polling
 * loop is told through memory and the write is skipped).
 */
EVPL_API int evpl_doorbell_fd(struct evpl_doorbell *doorbell);

/* Ring: any thread, non-blocking, never fails.  Rings coalesce. */
EVPL_API void evpl_ring_doorbell(struct evpl_doorbell *doorbell);
