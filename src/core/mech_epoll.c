/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * epoll wait mechanism, edge-triggered.  Every fd is registered once for
 * input (and output when the event asks for it); readiness is latched in
 * the event, so interest changes never cost an epoll_ctl.
 *
 * A report carries the fd number and a generation, never the event's
 * address, and is looked up in a table indexed by fd.  An fd the program
 * closed before removing its event (loop.md §6 says not to) cannot be
 * taken out of the epoll set if a dup keeps its file open: that entry
 * goes on reporting, and its old generation makes the report harmless
 * instead of a write into freed memory.  The table also says which event
 * owns a number, so removing such a stale event leaves alone a newer one
 * that got the same number.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/internal.h"
#include "core/sys.h"

#define EPOLL_BATCH 256

struct ep_slot {
    struct evpl_event *ev; /* NULL: no event owns this number */
    uint32_t gen;
};

struct epoll_state {
    struct epoll_event events[EPOLL_BATCH];
    int no_pwait2;
    struct ep_slot *by_fd;
    uint32_t cap;
};

static int
ep_create(struct evpl *evpl)
{
    struct epoll_state *st;

    evpl->mech_fd = epoll_create1(EPOLL_CLOEXEC);
    if (evpl->mech_fd < 0) {
        return -errno;
    }
    st = evpl__zalloc(sizeof(*st));
    evpl->mech_state = st;
    return 0;
} /* ep_create */

static void
ep_destroy(struct evpl *evpl)
{
    struct epoll_state *st = evpl->mech_state;

    close(evpl->mech_fd);
    free(st->by_fd);
    free(st);
} /* ep_destroy */

static int
ep_add(struct evpl *evpl, struct evpl_event *event)
{
    struct epoll_state *st = evpl->mech_state;
    struct epoll_event ee;
    uint32_t oldcap = st->cap;
    struct ep_slot *slot;

    if (event->fd < 0) {
        return -EBADF;
    }
    evpl_array_reserve(st->by_fd, st->cap, (uint32_t) event->fd);
    if (st->cap != oldcap) {
        memset(st->by_fd + oldcap, 0, (st->cap - oldcap) * sizeof(*st->by_fd));
    }
    slot = &st->by_fd[event->fd];

    memset(&ee, 0, sizeof(ee));
    ee.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ee.data.u64 = ((uint64_t) (slot->gen + 1) << 32) | (uint32_t) event->fd;
    if (event->flags & EVPL_EV_WANT_WRITE) {
        ee.events |= EPOLLOUT;
    }
    /* the kernel refuses the same open file twice (EEXIST); if it accepts
     * a number an event still owns, that event's fd was closed under it */
    if (epoll_ctl(evpl->mech_fd, EPOLL_CTL_ADD, event->fd, &ee) < 0) {
        return -errno;
    }
    slot->gen++;
    slot->ev = event;
    return 0;
} /* ep_add */

static void
ep_remove(struct evpl *evpl, struct evpl_event *event)
{
    struct epoll_state *st = evpl->mech_state;
    struct ep_slot *slot;

    if (event->fd < 0 || (uint32_t) event->fd >= st->cap || st->by_fd[event->fd].ev != event) {
        return; /* never added, or its number went to a newer event */
    }
    slot = &st->by_fd[event->fd];
    slot->ev = NULL;
    slot->gen++; /* reports still queued for it are stale from now on */
    /* EBADF/ENOENT: the owner closed the fd first; nothing left to undo */
    (void) epoll_ctl(evpl->mech_fd, EPOLL_CTL_DEL, event->fd, NULL);
} /* ep_remove */

static int
ep_wait(struct evpl *evpl, int64_t timeout_ns)
{
    struct epoll_state *st = evpl->mech_state;
    int n, i;

    if (timeout_ns == 0) {
        n = evpl_sys_epoll_wait(evpl->mech_fd, st->events, EPOLL_BATCH, 0);
    } else if (!st->no_pwait2) {
        struct timespec ts, *tsp = NULL;

        if (timeout_ns > 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            tsp = &ts;
        }
        /* ns precision: sleep exactly until the next timer (kernel 5.11+) */
        n = evpl_sys_epoll_pwait2(evpl->mech_fd, st->events, EPOLL_BATCH, tsp);
        if (n < 0 && errno == ENOSYS) {
            st->no_pwait2 = 1;
            return 0;
        }
    } else {
        /* round up so a timer is never reached early by a short sleep */
        int ms = timeout_ns < 0 ? -1 : (int) ((timeout_ns + 999999) / 1000000);

        n = evpl_sys_epoll_wait(evpl->mech_fd, st->events, EPOLL_BATCH, ms);
    }

    if (n <= 0) {
        evpl->mech_full = 0;
        return 0; /* EINTR counts as nothing ready */
    }

    for (i = 0; i < n; i++) {
        uint64_t data = st->events[i].data.u64;
        uint32_t fd = (uint32_t) data;
        uint32_t e = st->events[i].events;
        uint32_t bits = 0;
        struct ep_slot *slot;

        if (unlikely(fd >= st->cap)) {
            continue;
        }
        slot = &st->by_fd[fd];
        if (unlikely(!slot->ev || slot->gen != (uint32_t) (data >> 32))) {
            continue; /* a removed event, or the stale entry of a closed fd */
        }

        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            bits |= EVPL_EV_READABLE;
        }
        if (e & EPOLLOUT) {
            bits |= EVPL_EV_WRITABLE;
        }
        if (e & (EPOLLERR | EPOLLHUP)) {
            bits |= EVPL_EV_ERROR;
        }
        if (e & (EPOLLRDHUP | EPOLLHUP)) {
            bits |= EVPL_EV_RDHUP;
        }
        evpl__event_set(evpl, slot->ev, bits);
    }
    /* a full batch means more may be waiting: do not sleep next time */
    evpl->mech_full = (n == EPOLL_BATCH);
    return n;
} /* ep_wait */

const struct evpl_mech_ops evpl_mech_epoll = {
    .name = "epoll",
    .create = ep_create,
    .destroy = ep_destroy,
    .add = ep_add,
    .remove = ep_remove,
    .wait = ep_wait,
};
