/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The portable, level-triggered wait mechanism (EVPL_CORE_MECH_SELECT).
 * It waits with ppoll(2) rather than select(2): the same level-triggered
 * readiness, but no FD_SETSIZE ceiling, and errors and hang-ups are
 * reported for every descriptor, including one nobody is reading (a paused
 * bind learns of a reset at once, as on epoll).
 *
 * A descriptor is asked for what it is interested in and whose latch is
 * clear.  A descriptor asked for nothing (paused, or its latches set) is
 * still watched for errors and hang-ups until one has been reported, so a
 * lasting hang-up does not end every wait at once.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#ifndef POLLRDHUP
#define POLLRDHUP 0
#endif

struct select_slot {
    struct evpl_event *ev;
    int err_seen; /* an error or hang-up was reported and not seen to pass */
};

struct select_state {
    struct select_slot *by_fd; /* registered events, indexed by descriptor */
    uint32_t cap;
    int max_fd;
    struct pollfd *pfds; /* built anew by every wait */
    uint32_t pfds_cap;
};

static int
sel_create(struct evpl *evpl)
{
    struct select_state *st = evpl__zalloc(sizeof(*st));

    st->max_fd = -1;
    evpl->mech_fd = -1;
    evpl->mech_state = st;
    return 0;
} /* sel_create */

static void
sel_destroy(struct evpl *evpl)
{
    struct select_state *st = evpl->mech_state;

    free(st->by_fd);
    free(st->pfds);
    free(st);
} /* sel_destroy */

static int
sel_add(struct evpl *evpl, struct evpl_event *event)
{
    struct select_state *st = evpl->mech_state;
    uint32_t oldcap = st->cap;

    if (event->fd < 0) {
        return -EBADF;
    }
    evpl_array_reserve(st->by_fd, st->cap, (uint32_t) event->fd);
    if (st->cap != oldcap) {
        memset(st->by_fd + oldcap, 0, (st->cap - oldcap) * sizeof(*st->by_fd));
    }
    if (st->by_fd[event->fd].ev) {
        return -EEXIST;
    }
    st->by_fd[event->fd] = (struct select_slot){.ev = event};
    if (event->fd > st->max_fd) {
        st->max_fd = event->fd;
    }
    return 0;
} /* sel_add */

static void
sel_remove(struct evpl *evpl, struct evpl_event *event)
{
    struct select_state *st = evpl->mech_state;

    if (event->fd < 0 || (uint32_t) event->fd >= st->cap || st->by_fd[event->fd].ev != event) {
        return;
    }
    st->by_fd[event->fd].ev = NULL;
    while (st->max_fd >= 0 && !st->by_fd[st->max_fd].ev) {
        st->max_fd--;
    }
} /* sel_remove */

static int
sel_wait(struct evpl *evpl, int64_t timeout_ns)
{
    struct select_state *st = evpl->mech_state;
    struct timespec ts, *tsp = NULL;
    uint32_t npfd = 0;
    int n, reported = 0;

    for (int fd = 0; fd <= st->max_fd; fd++) {
        struct evpl_event *ev = st->by_fd[fd].ev;
        short events = 0;

        if (!ev) {
            continue;
        }
        if ((ev->flags & EVPL_EV_READ_INTEREST) && !(ev->flags & EVPL_EV_READABLE)) {
            events |= POLLIN | POLLRDHUP;
        }
        if ((ev->flags & EVPL_EV_WRITE_INTEREST) && !(ev->flags & EVPL_EV_WRITABLE)) {
            events |= POLLOUT;
        }
        if (!events && st->by_fd[fd].err_seen) {
            continue; /* its hang-up is known: nothing new to ask */
        }
        evpl_array_reserve(st->pfds, st->pfds_cap, npfd);
        st->pfds[npfd].fd = fd;
        st->pfds[npfd].events = events; /* 0: errors and hang-ups only */
        st->pfds[npfd].revents = 0;
        npfd++;
    }

    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }

    n = ppoll(st->pfds, npfd, tsp, NULL);
    if (n <= 0) {
        return 0; /* EINTR counts as nothing ready */
    }

    for (uint32_t i = 0; i < npfd; i++) {
        struct select_slot *slot = &st->by_fd[st->pfds[i].fd];
        short re = st->pfds[i].revents;
        uint32_t bits = 0;

        if (st->pfds[i].events && !(re & (POLLERR | POLLHUP | POLLNVAL))) {
            slot->err_seen = 0; /* asked and no error: a new one is news */
        }
        if (!re) {
            continue;
        }
        if (re & (POLLIN | POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
            bits |= EVPL_EV_READABLE;
        }
        if (re & POLLOUT) {
            bits |= EVPL_EV_WRITABLE;
        }
        if (re & (POLLERR | POLLHUP | POLLNVAL)) {
            bits |= EVPL_EV_ERROR;
            slot->err_seen = 1;
        }
        if (re & (POLLRDHUP | POLLHUP)) {
            bits |= EVPL_EV_RDHUP;
        }
        evpl__event_set(evpl, slot->ev, bits);
        reported++;
    }
    return reported;
} /* sel_wait */

const struct evpl_mech_ops evpl_mech_select = {
    .name = "select",
    .create = sel_create,
    .destroy = sel_destroy,
    .add = sel_add,
    .remove = sel_remove,
    .wait = sel_wait,
};
