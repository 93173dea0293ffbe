/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Events and the active list.
 *
 * Readiness is latched in event->flags.  An event whose latched readiness
 * matches its interest (or that has an error or a kick pending) holds a
 * slot in evpl->active and gets its callbacks once per pass until the owner
 * clears the latch.  Slots are never reused during a dispatch: removal only
 * NULLs the slot, and the array is compacted when the dispatch ends.  That
 * is what lets any callback remove (and free) any event, its own included.
 */
#include <errno.h>
#include <string.h>

#include "core/internal.h"

static inline int
wants_dispatch(uint32_t f)
{
    return ((f & (EVPL_EV_READABLE | EVPL_EV_READ_INTEREST)) ==
            (EVPL_EV_READABLE | EVPL_EV_READ_INTEREST)) ||
           ((f & (EVPL_EV_WRITABLE | EVPL_EV_WRITE_INTEREST)) ==
            (EVPL_EV_WRITABLE | EVPL_EV_WRITE_INTEREST)) ||
           (f & (EVPL_EV_ERROR | EVPL_EV_KICK));
} /* wants_dispatch */

void
evpl__event_init(struct evpl_event *event, int fd, evpl_event_cb_t read_cb,
                 evpl_event_cb_t write_cb, evpl_event_cb_t error_cb)
{
    memset(event, 0, sizeof(*event));
    event->fd = fd;
    event->active_idx = -1;
    event->read_cb = read_cb;
    event->write_cb = write_cb;
    event->error_cb = error_cb;
} /* evpl__event_init */

static inline void
activate(struct evpl *evpl, struct evpl_event *event)
{
    evpl_array_reserve(evpl->active, evpl->active_cap, evpl->active_len);
    event->active_idx = (int32_t) evpl->active_len;
    event->flags |= EVPL_EV_ACTIVE;
    evpl->active[evpl->active_len++] = event;
} /* activate */

int
evpl__event_add(struct evpl *evpl, struct evpl_event *event)
{
    int rc = evpl->mech->add(evpl, event);

    if (rc == 0) {
        event->flags |= EVPL_EV_REGISTERED;
    }
    return rc;
} /* evpl__event_add */

void
evpl__event_remove(struct evpl *evpl, struct evpl_event *event)
{
    if (event->flags & EVPL_EV_REGISTERED) {
        evpl->mech->remove(evpl, event);
    }
    if (event->flags & EVPL_EV_ACTIVE) {
        evpl->active[event->active_idx] = NULL;
    }
    event->flags = 0;
    event->active_idx = -1;
} /* evpl__event_remove */

void
evpl__event_set(struct evpl *evpl, struct evpl_event *event, uint32_t bits)
{
    event->flags |= bits;
    if (!(event->flags & EVPL_EV_ACTIVE) && wants_dispatch(event->flags)) {
        activate(evpl, event);
    }
} /* evpl__event_set */

void
evpl__event_clear(struct evpl *evpl, struct evpl_event *event, uint32_t bits)
{
    /* The slot is dropped lazily by the next compaction. */
    event->flags &= ~bits;
} /* evpl__event_clear */

uint32_t
evpl__events_compact(struct evpl *evpl)
{
    uint32_t i, n = 0;

    for (i = 0; i < evpl->active_len; i++) {
        struct evpl_event *ev = evpl->active[i];

        if (!ev) {
            continue;
        }
        if (!wants_dispatch(ev->flags)) {
            ev->flags &= ~EVPL_EV_ACTIVE;
            ev->active_idx = -1;
            continue;
        }
        ev->active_idx = (int32_t) n;
        evpl->active[n++] = ev;
    }
    evpl->active_len = n;
    return n;
} /* evpl__events_compact */

unsigned
evpl__events_dispatch(struct evpl *evpl)
{
    unsigned ran = 0;
    uint32_t i, n = evpl->active_len;

    /* Events activated by these callbacks run on the next pass (which does
     * not block: they are active): an event that removes and re-adds itself
     * from its own callback would otherwise run again and again inside one
     * pass, and evpl_continue would never return (loop.md §6: once per
     * pass). */
    for (i = 0; i < n; i++) {
        struct evpl_event *ev = evpl->active[i];
        uint32_t f;

        if (!ev) {
            continue;
        }

        f = ev->flags;
        if (((f & (EVPL_EV_READABLE | EVPL_EV_READ_INTEREST)) ==
             (EVPL_EV_READABLE | EVPL_EV_READ_INTEREST)) ||
            (f & EVPL_EV_KICK)) {
            ev->flags &= ~EVPL_EV_KICK;
            ev->read_cb(evpl, ev);
            ran++;
            if (evpl->active[i] != ev) {
                continue; /* removed (maybe freed) by its callback */
            }
        }

        f = ev->flags;
        if ((f & (EVPL_EV_WRITABLE | EVPL_EV_WRITE_INTEREST)) ==
            (EVPL_EV_WRITABLE | EVPL_EV_WRITE_INTEREST)) {
            ev->write_cb(evpl, ev);
            ran++;
            if (evpl->active[i] != ev) {
                continue;
            }
        }

        if (ev->flags & EVPL_EV_ERROR) {
            /* delivered once per report (upstream repeats it every pass) */
            ev->flags &= ~EVPL_EV_ERROR;
            if (ev->error_cb) {
                ev->error_cb(evpl, ev);
                ran++;
            }
        }
    }

    evpl__events_compact(evpl);
    return ran;
} /* evpl__events_dispatch */
