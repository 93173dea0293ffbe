/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Polls and the hybrid event/poll mode helpers.  Each poll is its own
 * allocation, so handles stay valid whatever order polls are removed in
 * (upstream moves the last poll into the freed slot).  Removal while the
 * polls are being iterated leaves a hole that is compacted afterwards.
 */
#include <stdlib.h>

#include "core/internal.h"

static struct evpl_poll *
add_poll(struct evpl *evpl, evpl_poll_enter_callback_t enter_callback,
         evpl_poll_exit_callback_t exit_callback, evpl_poll_callback_t callback, void *private_data,
         int completion)
{
    struct evpl_poll *poll;

    if (!callback) {
        evpl_bug("core", "evpl_add_poll: callback is required");
    }
    poll = evpl__zalloc(sizeof(*poll));
    poll->enter_callback = enter_callback;
    poll->exit_callback = exit_callback;
    poll->callback = callback;
    poll->private_data = private_data;
    poll->completion = completion;
    evpl->polls_other += !completion;

    evpl_array_reserve(evpl->polls, evpl->polls_cap, evpl->polls_len);
    poll->idx = evpl->polls_len;
    evpl->polls[evpl->polls_len++] = poll;
    /* If the loop is already polling, the poll is entered on a full pass
     * (enter/exit bracket its calls): the next pass is one, so it is
     * called from the pass after (not up to poll_iterations later). */
    if (evpl->poll_mode) {
        evpl->poll_passes = evpl->config.poll_iterations;
    }
    return poll;
} /* add_poll */

EVPL_API struct evpl_poll *
evpl_add_poll(struct evpl *evpl, evpl_poll_enter_callback_t enter_callback,
              evpl_poll_exit_callback_t exit_callback, evpl_poll_callback_t callback,
              void *private_data)
{
    EVPL_OWNER_ONLY(evpl);
    return add_poll(evpl, enter_callback, exit_callback, callback, private_data, 0);
} /* evpl_add_poll */

struct evpl_poll *
evpl__add_completion_poll(struct evpl *evpl, evpl_poll_enter_callback_t enter,
                          evpl_poll_exit_callback_t exit, evpl_poll_callback_t callback,
                          void *private_data)
{
    return add_poll(evpl, enter, exit, callback, private_data, 1);
} /* evpl__add_completion_poll */

static void
compact(struct evpl *evpl)
{
    uint32_t i, n = 0;

    for (i = 0; i < evpl->polls_len; i++) {
        if (evpl->polls[i]) {
            evpl->polls[i]->idx = n;
            evpl->polls[n++] = evpl->polls[i];
        }
    }
    evpl->polls_len = n;
    evpl->polls_holes = 0;
} /* compact */

EVPL_API void
evpl_remove_poll(struct evpl *evpl, struct evpl_poll *poll)
{
    EVPL_OWNER_ONLY(evpl);
    EVPL_ASSERT(poll->idx < evpl->polls_len && evpl->polls[poll->idx] == poll);
    evpl->polls_other -= !poll->completion;
    evpl->polls[poll->idx] = NULL;
    free(poll);
    if (evpl->polls_iterating) {
        evpl->polls_holes = 1;
    } else {
        compact(evpl);
    }
} /* evpl_remove_poll */

/* Call fn-selected callbacks of every poll; safe against removal. */
#define FOR_EACH_POLL(evpl, p, body)                                 \
    do {                                                             \
        (evpl)->polls_iterating++;                                   \
        for (uint32_t i_ = 0; i_ < (evpl)->polls_len; i_++) {        \
            struct evpl_poll *p = (evpl)->polls[i_];                 \
            if (p) {                                                 \
                body;                                                \
            }                                                        \
        }                                                            \
        if (--(evpl)->polls_iterating == 0 && (evpl)->polls_holes) { \
            compact(evpl);                                           \
        }                                                            \
    } while (0)

void
evpl__polls_run(struct evpl *evpl)
{
    FOR_EACH_POLL(evpl, p, if (p->entered) p->callback(evpl, p->private_data));
} /* evpl__polls_run */

/* Exit the entered polls (only the completion polls if completion_only). */
static void
exit_polls(struct evpl *evpl, int completion_only)
{
    FOR_EACH_POLL(
        evpl, p, if (p->entered && (p->completion || !completion_only)) {
            p->entered = 0;
            if (p->exit_callback) {
                p->exit_callback(evpl, p->private_data);
            }
        });
} /* exit_polls */

void
evpl__polls_enter(struct evpl *evpl)
{
    int dormant = evpl__polls_dormant(evpl);

    evpl->polls_asleep = dormant;
    if (dormant) {
        exit_polls(evpl, 1); /* (entered before the last pin or other poll went) */
    }
    FOR_EACH_POLL(
        evpl, p, if (!p->entered && !(dormant && p->completion)) {
            p->entered = 1;
            if (p->enter_callback) {
                p->enter_callback(evpl, p->private_data);
            }
        });
} /* evpl__polls_enter */

void
evpl__polls_exit(struct evpl *evpl)
{
    exit_polls(evpl, 0);
} /* evpl__polls_exit */

void
evpl__polls_destroy(struct evpl *evpl)
{
    for (uint32_t i = 0; i < evpl->polls_len; i++) {
        free(evpl->polls[i]);
    }
    free(evpl->polls);
    evpl->polls = NULL;
    evpl->polls_len = 0;
} /* evpl__polls_destroy */

void
evpl__poll_yield(struct evpl *evpl)
{
    if (evpl->poll_mode) {
        evpl->poll_passes = evpl->config.poll_iterations;
    }
} /* evpl__poll_yield */

EVPL_API void
evpl_activity(struct evpl *evpl)
{
    EVPL_OWNER_ONLY(evpl);
    evpl->activity = 1;
} /* evpl_activity */

EVPL_API void
evpl_poll_pin(struct evpl *evpl)
{
    EVPL_OWNER_ONLY(evpl);
    evpl->pins++;
} /* evpl_poll_pin */

EVPL_API void
evpl_poll_unpin(struct evpl *evpl)
{
    EVPL_OWNER_ONLY(evpl);
    EVPL_ASSERT(evpl->pins > 0);
    if (--evpl->pins == 0 && evpl->poll_mode) {
        /* a loop the pin kept polling spins one more window; a pin that
         * never reached a full pass (pin, unpin, nothing between) is no
         * activity of its own */
        evpl->activity = 1;
    }
} /* evpl_poll_unpin */
