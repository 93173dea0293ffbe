/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * io_uring as the loop's wait mechanism (EVPL_CORE_MECH_IO_URING, an
 * extension; epoll stays the default).  Every watched fd gets a multishot
 * poll request; the loop submits pending requests and waits for
 * completions in one io_uring_enter.  Like epoll here it behaves edge-
 * triggered: a completion is posted on each wake-up of the file, and the
 * readiness is latched in the event until the owner clears it.
 *
 * Completions can arrive for an fd after it was removed, so poll requests
 * carry a slot index plus a generation, never a pointer: a stale completion
 * finds a newer generation in its slot and is ignored.  Their user_data has
 * bit 0 set; any other user_data is a struct evpl_uring_req of the io_uring
 * backends, which share this ring (one io_uring_enter per pass for all).
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"

#define CANCEL_TAG 0x7fffffffu /* slot number used by the cancels of polls */

struct slot {
    struct evpl_event *event;
    uint32_t gen;
    uint32_t next_free;
};

struct uring_state {
    struct io_uring ring;
    struct slot *slots;
    uint32_t nslots, cap, free_slot;
    int probe_fd; /* epoll set asked whether a character device polls; -1 */
};

static inline uint64_t
tag(uint32_t idx, uint32_t gen)
{
    return ((uint64_t) gen << 32) | ((uint64_t) idx << 1) | 1;
}

static struct io_uring_sqe *
get_sqe(struct uring_state *st)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);

    if (!sqe) {
        /* submission queue full: hand what we have to the kernel */
        io_uring_submit(&st->ring);
        sqe = io_uring_get_sqe(&st->ring);
    }
    return sqe;
}

int
evpl__uring_queue_init(unsigned entries, struct io_uring *ring, unsigned extra)
{
    /* DEFER_TASKRUN: completion work runs when this thread enters the
     * kernel, never interrupting it; TASKRUN_FLAG: the kernel says in the
     * shared ring when such work waits, so polling needs no syscall */
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0,
    };
    int rc = -EINVAL;

    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]) && rc < 0; i++) {
        /* CLAMP: a depth over the kernel's maximum (io_uring_entries is
         * the user's) gets the maximum, not EINVAL */
        rc = io_uring_queue_init(entries, ring, tries[i] | extra | IORING_SETUP_CLAMP);
    }
    if (rc == 0) {
        /* every enter skips the ring file's lookup (fget/fput, ~7% of a
         * busy loop's cycles); the plain fd still works if refused */
        (void) io_uring_register_ring_fd(ring);
    }
    return rc;
} /* evpl__uring_queue_init */

int
evpl__uring_need_enter(struct io_uring *ring)
{
    if (io_uring_sq_ready(ring)) {
        return 1;
    }
    if (ring->flags & IORING_SETUP_TASKRUN_FLAG) {
        return (IO_URING_READ_ONCE(*ring->sq.kflags) &
                (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
    }
    /* deferred work is invisible without the flag: look */
    return (ring->flags & IORING_SETUP_DEFER_TASKRUN) != 0;
} /* evpl__uring_need_enter */

static int
ur_create(struct evpl *evpl)
{
    struct uring_state *st = evpl__zalloc(sizeof(*st));
    int rc;

    /* the loop is the only submitter: the cheapest modes, if the kernel has them */
    /* its depth is the config's (core.md §2.1): the io_uring backends share
     * this ring when the loop waits on it */
    rc = evpl__uring_queue_init(evpl_shared->config->io_uring_entries, &st->ring, 0);
    if (rc < 0) {
        free(st);
        return rc;
    }
    st->free_slot = UINT32_MAX;
    st->probe_fd = -1;
    evpl->mech_fd = st->ring.ring_fd;
    evpl->mech_state = st;
    return 0;
}

static void
ur_destroy(struct evpl *evpl)
{
    struct uring_state *st = evpl->mech_state;

    io_uring_queue_exit(&st->ring);
    if (st->probe_fd >= 0) {
        close(st->probe_fd);
    }
    free(st->slots);
    free(st);
}

/* Whether a poll of fd waits for something.  A character device may or
 * may not have a poll method (a tty has, /dev/null has not); epoll is the
 * kernel's only way to tell, so a spare epoll set answers for them. */
static int
pollable(struct uring_state *st, int fd, mode_t mode)
{
    struct epoll_event ee = {.events = EPOLLIN};

    if (S_ISREG(mode) || S_ISDIR(mode) || S_ISBLK(mode)) {
        return 0;
    }
    if (!S_ISCHR(mode)) {
        return 1;
    }
    if (st->probe_fd < 0) {
        st->probe_fd = epoll_create1(EPOLL_CLOEXEC);
        if (st->probe_fd < 0) {
            return 1; /* cannot tell: poll it, as before */
        }
    }
    if (epoll_ctl(st->probe_fd, EPOLL_CTL_ADD, fd, &ee) < 0) {
        return errno != EPERM;
    }
    (void) epoll_ctl(st->probe_fd, EPOLL_CTL_DEL, fd, NULL);
    return 1;
} /* pollable */

static int
ur_add(struct evpl *evpl, struct evpl_event *event)
{
    struct uring_state *st = evpl->mech_state;
    struct io_uring_sqe *sqe;
    uint32_t idx;
    unsigned mask = POLLIN | POLLRDHUP;
    struct stat sb;

    /* like epoll: regular files, directories, block devices and character
     * devices without a poll method (/dev/null) cannot be polled (their
     * poll completes at once, forever); the caller treats them as ready */
    if (fstat(event->fd, &sb) == 0 && !pollable(st, event->fd, sb.st_mode)) {
        return -EPERM;
    }
    if (st->free_slot != UINT32_MAX) {
        idx = st->free_slot;
        st->free_slot = st->slots[idx].next_free;
    } else {
        evpl_array_reserve(st->slots, st->cap, st->nslots);
        idx = st->nslots++;
        st->slots[idx].gen = 0;
    }
    st->slots[idx].event = event;
    /* the event remembers its slot in its spare field */
    event->unused = idx;

    if (event->flags & EVPL_EV_WANT_WRITE) {
        mask |= POLLOUT;
    }
    sqe = get_sqe(st);
    if (!sqe) {
        st->slots[idx].event = NULL;
        st->slots[idx].next_free = st->free_slot;
        st->free_slot = idx;
        return -EBUSY;
    }
    io_uring_prep_poll_multishot(sqe, event->fd, mask);
    io_uring_sqe_set_data64(sqe, tag(idx, st->slots[idx].gen));
    return 0;
}

static void
ur_remove(struct evpl *evpl, struct evpl_event *event)
{
    struct uring_state *st = evpl->mech_state;
    uint32_t idx = event->unused;
    struct io_uring_sqe *sqe;

    if (idx >= st->nslots || st->slots[idx].event != event) {
        return;
    }
    sqe = get_sqe(st);
    if (sqe) {
        /* an async cancel, not a poll remove: a remove fails with -EALREADY
         * while a wake-up of the poll is still queued as task work (a
         * socket that just sent something), and leaves the poll armed;
         * the cancel marks the request and it ends with -ECANCELED */
        io_uring_prep_cancel64(sqe, tag(idx, st->slots[idx].gen), 0);
        io_uring_sqe_set_data64(sqe, tag(CANCEL_TAG, 0));
        /* now, not at the next wait: an armed poll keeps the file open, so
         * a closed listening socket would go on accepting connections.
         * get_events also runs the deferred task work that drops the
         * request's reference to the file. */
        io_uring_submit_and_get_events(&st->ring);
    }
    /* late completions of the old request carry the old generation */
    st->slots[idx].gen++;
    st->slots[idx].event = NULL;
    st->slots[idx].next_free = st->free_slot;
    st->free_slot = idx;
}

/* A poll request's completion: latch the readiness into its event. */
static int
poll_complete(struct evpl *evpl, struct uring_state *st, const struct io_uring_cqe *cqe,
              uint64_t data)
{
    uint32_t idx = (uint32_t) data >> 1, gen = (uint32_t) (data >> 32);
    struct evpl_event *ev;
    uint32_t bits = 0;

    if (!st || idx == CANCEL_TAG || idx >= st->nslots || st->slots[idx].gen != gen ||
        !(ev = st->slots[idx].event)) {
        return 0; /* a cancel's own completion, or a removed fd's last word */
    }
    if (cqe->res < 0) {
        /* the poll request failed (e.g. the fd was closed): report an error */
        bits = EVPL_EV_READABLE | EVPL_EV_ERROR;
    } else {
        if (cqe->res & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) {
            bits |= EVPL_EV_READABLE;
        }
        if (cqe->res & POLLOUT) {
            bits |= EVPL_EV_WRITABLE;
        }
        if (cqe->res & (POLLERR | POLLHUP)) {
            bits |= EVPL_EV_ERROR;
        }
        if (cqe->res & (POLLRDHUP | POLLHUP)) {
            bits |= EVPL_EV_RDHUP;
        }
    }
    evpl__event_set(evpl, ev, bits);
    if (!(cqe->flags & IORING_CQE_F_MORE) && cqe->res >= 0) {
        /* the kernel ended the multishot request: arm a new one */
        struct io_uring_sqe *sqe = get_sqe(st);

        if (sqe) {
            unsigned mask = POLLIN | POLLRDHUP | ((ev->flags & EVPL_EV_WANT_WRITE) ? POLLOUT : 0);

            io_uring_prep_poll_multishot(sqe, ev->fd, mask);
            io_uring_sqe_set_data64(sqe, tag(idx, gen));
        }
    }
    return 1;
} /* poll_complete */

int
evpl__uring_process(struct evpl *evpl, struct io_uring *ring)
{
    struct uring_state *st = evpl->mech == &evpl_mech_io_uring ? evpl->mech_state : NULL;
    struct io_uring_cqe *cqe;
    int reported = 0;

    if (st && ring != &st->ring) {
        st = NULL; /* a backend's own ring carries no poll requests */
    }
    /* each completion is retired before it is dispatched: a callback may
     * submit, or wait on this ring itself (closing a block queue with I/O
     * in flight), and must never see it again.  Only what was there on
     * entry: requests the callbacks submit may complete at once (a file
     * read from the page cache), and handling those here too would never
     * return to the loop; the rest is left for the next pass */
    for (unsigned budget = io_uring_cq_ready(ring); budget; budget--) {
        struct io_uring_cqe c;
        unsigned head;
        uint64_t data;

        cqe = NULL;
        io_uring_for_each_cqe(ring, head, cqe)
        {
            break;
        }
        if (!cqe) {
            break;
        }
        c = *cqe;
        io_uring_cq_advance(ring, 1);
        data = io_uring_cqe_get_data64(&c);
        if (data & 1) {
            reported += poll_complete(evpl, st, &c, data);
        } else if (data) {
            struct evpl_uring_req *req = (struct evpl_uring_req *) (uintptr_t) data;

            req->complete(evpl, req, c.res, c.flags);
            reported++;
        }
    }
    return reported;
} /* evpl__uring_process */

struct io_uring *
evpl__mech_uring_ring(struct evpl *evpl)
{
    if (evpl->mech != &evpl_mech_io_uring) {
        return NULL;
    }
    return &((struct uring_state *) evpl->mech_state)->ring;
} /* evpl__mech_uring_ring */

static int
ur_wait(struct evpl *evpl, int64_t timeout_ns)
{
    struct uring_state *st = evpl->mech_state;
    struct io_uring_cqe *cqe;
    int rc;

    if (timeout_ns == 0) {
        /* polling: no syscall unless there is something to hand over */
        rc = evpl__uring_need_enter(&st->ring) ? io_uring_submit_and_get_events(&st->ring) : 0;
    } else if (timeout_ns < 0) {
        rc = io_uring_submit_and_wait(&st->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
                                       .tv_nsec = timeout_ns % 1000000000};

        rc = io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1, &ts, NULL);
    }
    (void) rc; /* -ETIME / -EINTR: nothing ready */
    /* completions run their callbacks in ur_reap, after post_wait (loop.md
     * §1: the hooks bracket the wait alone); ur_reap's count is the pass's */
    return 0;
}

static int
ur_reap(struct evpl *evpl)
{
    struct uring_state *st = evpl->mech_state;
    int reported = evpl__uring_process(evpl, &st->ring);

    /* completions left for the next pass (in the ring, or held back by
     * the kernel while it was full): it must not sleep */
    evpl->mech_full = io_uring_cq_ready(&st->ring) != 0 ||
                      (IO_URING_READ_ONCE(*st->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW) != 0;
    return reported;
}

void
evpl__uring_pass_end(struct evpl *evpl)
{
    if (evpl->mech == &evpl_mech_io_uring) {
        struct uring_state *st = evpl->mech_state;

        if (io_uring_sq_ready(&st->ring)) {
            io_uring_submit(&st->ring);
        }
    }
    if (evpl->uring) {
        evpl__uring_pre_wait(evpl); /* a backend ring of its own */
    }
} /* evpl__uring_pass_end */

const struct evpl_mech_ops evpl_mech_io_uring = {
    .name = "io_uring",
    .holds_files = 1,
    .create = ur_create,
    .destroy = ur_destroy,
    .add = ur_add,
    .remove = ur_remove,
    .wait = ur_wait,
    .reap = ur_reap,
};
