/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * epoll wait mechanism, edge-triggered.  Every fd is registered once for
 * input (and output when the event asks for it); readiness is latched in
 * the event, so interest changes never cost an epoll_ctl.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/internal.h"
#include "core/sys.h"

#define EPOLL_BATCH 256

struct epoll_state {
    struct epoll_event events[EPOLL_BATCH];
    int no_pwait2;
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
    close(evpl->mech_fd);
    free(evpl->mech_state);
} /* ep_destroy */

static int
ep_add(struct evpl *evpl, struct evpl_event *event)
{
    struct epoll_event ee;

    memset(&ee, 0, sizeof(ee));
    ee.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ee.data.ptr = event;
    if (event->flags & EVPL_EV_WANT_WRITE) {
        ee.events |= EPOLLOUT;
    }
    if (epoll_ctl(evpl->mech_fd, EPOLL_CTL_ADD, event->fd, &ee) < 0) {
        return -errno;
    }
    return 0;
} /* ep_add */

static void
ep_remove(struct evpl *evpl, struct evpl_event *event)
{
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
        struct evpl_event *ev = st->events[i].data.ptr;
        uint32_t e = st->events[i].events;
        uint32_t bits = 0;

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
        evpl__event_set(evpl, ev, bits);
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
