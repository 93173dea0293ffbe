/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_poll.h directly, include evpl/evpl.h instead"
#endif

typedef void (*evpl_poll_enter_callback_t)(struct evpl *evpl, void *private_data);

typedef void (*evpl_poll_exit_callback_t)(struct evpl *evpl, void *private_data);

typedef void (*evpl_poll_callback_t)(struct evpl *evpl, void *private_data);

struct evpl_poll;

/*
 * Register a busy-poll callback (required; enter/exit may be NULL).  While
 * the loop is in poll mode callback runs every pass; enter/exit bracket each
 * poll-mode period.  Returns borrowed, valid until evpl_remove_poll; handles
 * stay valid whatever order polls are removed in.  Owning thread.
 */
EVPL_API struct evpl_poll *evpl_add_poll(struct evpl *evpl,
                                         evpl_poll_enter_callback_t enter_callback,
                                         evpl_poll_exit_callback_t exit_callback,
                                         evpl_poll_callback_t callback, void *private_data);

/* Unregister; legal from any poll callback.  Owning thread. */
EVPL_API void evpl_remove_poll(struct evpl *evpl, struct evpl_poll *poll);

/*
 * Record useful work: keeps the loop in poll mode for another spin_ns.
 * Socket readiness, doorbell rings and timer expiries count on their own.
 */
EVPL_API void evpl_activity(struct evpl *evpl);

/* Counted pin: while held, the loop stays in poll mode (if poll_mode=1). */
EVPL_API void evpl_poll_pin(struct evpl *evpl);

EVPL_API void evpl_poll_unpin(struct evpl *evpl);
