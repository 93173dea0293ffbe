/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * select(2) wait mechanism: the portable fallback.  Level-triggered, so
 * an fd is only asked about while its interest is set and its latch is
 * clear; that gives the same latched behaviour as epoll.  Limited to
 * descriptors below FD_SETSIZE.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "core/internal.h"

struct select_state {
    struct evpl_event *by_fd[FD_SETSIZE];
    int max_fd;
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
    free(evpl->mech_state);
} /* sel_destroy */

static int
sel_add(struct evpl *evpl, struct evpl_event *event)
{
    struct select_state *st = evpl->mech_state;

    if (event->fd < 0 || event->fd >= FD_SETSIZE) {
        return -EMFILE;
    }
    if (st->by_fd[event->fd]) {
        return -EEXIST;
    }
    st->by_fd[event->fd] = event;
    if (event->fd > st->max_fd) {
        st->max_fd = event->fd;
    }
    return 0;
} /* sel_add */

static void
sel_remove(struct evpl *evpl, struct evpl_event *event)
{
    struct select_state *st = evpl->mech_state;

    if (event->fd < 0 || event->fd >= FD_SETSIZE || st->by_fd[event->fd] != event) {
        return;
    }
    st->by_fd[event->fd] = NULL;
    while (st->max_fd >= 0 && !st->by_fd[st->max_fd]) {
        st->max_fd--;
    }
} /* sel_remove */

static int
sel_wait(struct evpl *evpl, int64_t timeout_ns)
{
    struct select_state *st = evpl->mech_state;
    fd_set rfds, wfds;
    struct timeval tv, *tvp = NULL;
    int fd, n, reported = 0;

    FD_ZERO(&rfds);
    FD_ZERO(&wfds);
    for (fd = 0; fd <= st->max_fd; fd++) {
        struct evpl_event *ev = st->by_fd[fd];

        if (!ev) {
            continue;
        }
        if ((ev->flags & EVPL_EV_READ_INTEREST) && !(ev->flags & EVPL_EV_READABLE)) {
            FD_SET(fd, &rfds);
        }
        if ((ev->flags & EVPL_EV_WRITE_INTEREST) && !(ev->flags & EVPL_EV_WRITABLE)) {
            FD_SET(fd, &wfds);
        }
    }

    if (timeout_ns >= 0) {
        /* round up: a short sleep must not wake before a timer is due */
        int64_t us = (timeout_ns + 999) / 1000;

        tv.tv_sec = us / 1000000;
        tv.tv_usec = us % 1000000;
        tvp = &tv;
    }

    n = select(st->max_fd + 1, &rfds, &wfds, NULL, tvp);
    if (n <= 0) {
        return 0;
    }

    for (fd = 0; fd <= st->max_fd && n > 0; fd++) {
        uint32_t bits = 0;

        if (FD_ISSET(fd, &rfds)) {
            bits |= EVPL_EV_READABLE;
        }
        if (FD_ISSET(fd, &wfds)) {
            bits |= EVPL_EV_WRITABLE;
        }
        if (bits && st->by_fd[fd]) {
            evpl__event_set(evpl, st->by_fd[fd], bits);
            reported++;
        }
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
