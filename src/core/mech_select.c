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
#include <sys/resource.h>

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
    int split_logged;
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

/* ppoll the descriptors in parts of at most *part, halving it on failure. */
static int
sel_poll_parts(struct select_state *st, uint32_t npfd, uint32_t *part, const struct timespec *t)
{
    int total = 0;

    for (uint32_t off = 0; off < npfd;) {
        uint32_t len = npfd - off < *part ? npfd - off : *part;
        int n = ppoll(st->pfds + off, len, t, NULL);

        if (n < 0 && errno == EINTR) {
            break;
        }
        if (n < 0) {
            if (len == 1) {
                return -1; /* no smaller part to try */
            }
            *part = len / 2;
            continue;
        }
        total += n;
        off += len;
    }
    return total;
} /* sel_poll_parts */

/*
 * ppoll refuses more descriptors than RLIMIT_NOFILE allows (EINVAL; the
 * program lowered it with descriptors open) and fails for lack of kernel
 * memory (ENOMEM).  Ask in parts instead, no larger than the limit; none
 * may wait while the others are not asked, so all are asked without
 * waiting, and if nothing is ready the first part is waited on for at
 * most a millisecond.  Slower, but nothing goes unreported and the loop
 * does not spin.
 */
static int
sel_poll_split(struct select_state *st, uint32_t npfd, const struct timespec *tsp)
{
    static const struct timespec zero = {0, 0}, ms = {0, 1000000};
    struct rlimit rl;
    uint32_t part = npfd / 2 ? npfd / 2 : 1;
    int n;

    if (!st->split_logged) {
        st->split_logged = 1;
        evpl_log_error("core",
                       "select mechanism: ppoll of %u descriptors failed (%s); "
                       "polling them in parts",
                       npfd, strerror(errno));
    }
    if (errno == EINVAL && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < npfd) {
        part = rl.rlim_cur > 0 ? (uint32_t) rl.rlim_cur : 1;
    }
    n = sel_poll_parts(st, npfd, &part, &zero);
    if (n != 0 || (tsp && tsp->tv_sec == 0 && tsp->tv_nsec == 0)) {
        return n;
    }
    if (tsp && tsp->tv_sec == 0 && tsp->tv_nsec < ms.tv_nsec) {
        return sel_poll_parts(st, part < npfd ? part : npfd, &part, tsp);
    }
    return sel_poll_parts(st, part < npfd ? part : npfd, &part, &ms);
} /* sel_poll_split */

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
    if (n < 0 && (errno == EINVAL || errno == ENOMEM)) {
        n = sel_poll_split(st, npfd, tsp);
    }
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
