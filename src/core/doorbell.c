/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Doorbells: an eventfd per doorbell plus a "rung" flag.
 *
 * A ring sets rung; only the ring that flips it 0 -> 1 signals the loop.
 * If the loop is busy-polling it is told through memory (a counter it
 * checks every pass) and the eventfd write - a syscall - is skipped.  The
 * loop clears its polling flag before it checks the counter and sleeps, and
 * the ringer bumps the counter before it reads the flag (both seq_cst), so
 * one of them always sees the other: no lost wakeup.
 *
 * Rings skip the eventfd only while the loop thread is inside evpl_run
 * (the flag is set there alone, and cleared when it returns).  A loop
 * driven by hand, by a foreign event loop that waits on evpl_doorbell_fd,
 * has every ring make the descriptor readable (loop.md §5).
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/internal.h"

_Static_assert(sizeof(struct evpl_doorbell_impl) <= sizeof(struct evpl_doorbell),
               "doorbell state must fit the public 64-byte storage");

static void
doorbell_read(struct evpl *evpl, struct evpl_event *event)
{
    struct evpl_doorbell_impl *db = container_of(event, struct evpl_doorbell_impl, event);
    uint64_t value;

    if (event->flags & EVPL_EV_READABLE) {
        /* one read drains an eventfd whatever its count */
        if (read(event->fd, &value, sizeof(value)) < 0 && errno != EAGAIN) {
            evpl_log_error("core", "doorbell read: %s", strerror(errno));
        }
        evpl__event_clear(evpl, event, EVPL_EV_READABLE);
    }

    /* clear before the callback: a ring during it triggers another call */
    if (atomic_exchange(&db->rung, 0)) {
        evpl->activity = 1;
        db->callback(evpl, (struct evpl_doorbell *) db);
    }
} /* doorbell_read */

EVPL_API void
evpl_add_doorbell(struct evpl *evpl, struct evpl_doorbell *doorbell,
                  evpl_doorbell_callback_t callback)
{
    EVPL_OWNER_ONLY(evpl);
    struct evpl_doorbell_impl *db = (struct evpl_doorbell_impl *) doorbell;
    int fd, rc;

    fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
        evpl_bug("core", "evpl_add_doorbell: eventfd: %s", strerror(errno));
    }

    memset(doorbell, 0, sizeof(*doorbell));
    evpl__event_init(&db->event, fd, doorbell_read, NULL, NULL);
    db->event.flags = EVPL_EV_READ_INTEREST;
    db->callback = callback;
    db->evpl = evpl;
    atomic_init(&db->rung, 0);

    rc = evpl__event_add(evpl, &db->event);
    if (rc < 0) {
        close(fd);
        evpl_bug("core", "evpl_add_doorbell: cannot watch eventfd: %s", strerror(-rc));
    }

    evpl_array_reserve(evpl->doorbells, evpl->doorbells_cap, evpl->doorbells_len);
    db->idx = evpl->doorbells_len;
    evpl->doorbells[evpl->doorbells_len++] = db;
} /* evpl_add_doorbell */

EVPL_API void
evpl_remove_doorbell(struct evpl *evpl, struct evpl_doorbell *doorbell)
{
    EVPL_OWNER_ONLY(evpl);
    struct evpl_doorbell_impl *db = (struct evpl_doorbell_impl *) doorbell;
    struct evpl_doorbell_impl *last;

    EVPL_ASSERT(db->idx < evpl->doorbells_len && evpl->doorbells[db->idx] == db);

    last = evpl->doorbells[--evpl->doorbells_len];
    evpl->doorbells[db->idx] = last;
    last->idx = db->idx;

    evpl__event_remove(evpl, &db->event);
    close(db->event.fd);
    db->event.fd = -1;
} /* evpl_remove_doorbell */

EVPL_API int
evpl_doorbell_fd(struct evpl_doorbell *doorbell)
{
    return ((struct evpl_doorbell_impl *) doorbell)->event.fd;
} /* evpl_doorbell_fd */

EVPL_API void
evpl_ring_doorbell(struct evpl_doorbell *doorbell)
{
    struct evpl_doorbell_impl *db = (struct evpl_doorbell_impl *) doorbell;
    struct evpl *evpl = db->evpl;
    uint64_t one = 1;

    if (atomic_exchange(&db->rung, 1)) {
        return; /* already pending: its callback has not started yet */
    }
    atomic_fetch_add(&evpl->doorbells_pending, 1);
    if (atomic_load(&evpl->polling)) {
        return; /* the loop checks doorbells_pending on every pass */
    }
    /* EAGAIN only at a counter near 2^64: already readable, so fine */
    (void) !write(db->event.fd, &one, sizeof(one));
} /* evpl_ring_doorbell */

void
evpl__doorbells_collect(struct evpl *evpl)
{
    uint32_t i;

    /* the exchange synchronises with the ringers' increments, so every
     * rung flag set before them is visible below */
    (void) atomic_exchange(&evpl->doorbells_pending, 0);
    /* callbacks run through the active list, where removal is safe */
    for (i = 0; i < evpl->doorbells_len; i++) {
        struct evpl_doorbell_impl *db = evpl->doorbells[i];

        if (atomic_load(&db->rung)) {
            evpl__event_set(evpl, &db->event, EVPL_EV_KICK);
        }
    }
} /* evpl__doorbells_collect */

void
evpl__doorbells_quiesce(struct evpl *evpl)
{
    uint64_t one = 1;

    atomic_store(&evpl->polling, 0);
    /* a ringer that saw polling == 1 bumped the counter first */
    if (!atomic_load(&evpl->doorbells_pending)) {
        return;
    }
    for (uint32_t i = 0; i < evpl->doorbells_len; i++) {
        struct evpl_doorbell_impl *db = evpl->doorbells[i];

        if (atomic_load(&db->rung)) {
            (void) !write(db->event.fd, &one, sizeof(one));
        }
    }
} /* evpl__doorbells_quiesce */
