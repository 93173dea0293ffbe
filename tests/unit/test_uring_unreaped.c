/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit */
/*
 * evpl__uring_unreaped, which decides whether a ring watched through an
 * eventfd (io_uring transports on an epoll or select loop) must be reaped
 * again on the next pass: with DEFER_TASKRUN one reap runs only part of
 * the kernel's waiting work (20 items on 6.x kernels) and flags the rest
 * with IORING_SQ_TASKRUN, without signalling the eventfd again; if the
 * part run produced no completion, nothing else would wake the loop.
 * Forty ready sockets with multishot polls: after a reap that found
 * completions, work still flagged counts as unreaped (it used to look only
 * at completions and overflow).  But the flag can also be left set with
 * nothing behind it (the kernel sets it after queueing work that an enter
 * may already have run): after a reap that found nothing it must not
 * count, or an epoll loop would never sleep again (review).  Skipped on a
 * kernel that runs all the waiting work in one enter.
 */
#include <evpl/evpl.h>

#include "t.h"

#ifndef HAVE_IO_URING
int
main(void)
{
    T_SKIP("built without io_uring");
}
#else
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/internal.h"
#include "backends/io_uring/uring.h"

#define NSOCK 40

int
main(void)
{
    struct io_uring ring;
    int sv[NSOCK][2], rc;
    unsigned total = 0, rounds = 0, flagged_rounds = 0;

    rc = io_uring_queue_init(256, &ring,
                             IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                 IORING_SETUP_TASKRUN_FLAG);
    if (rc < 0) {
        T_SKIP("io_uring with DEFER_TASKRUN unavailable: %d", rc);
    }
    for (int i = 0; i < NSOCK; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

        T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]), 0);
        T_OK(sqe != NULL);
        io_uring_prep_poll_multishot(sqe, sv[i][0], POLLIN);
        io_uring_sqe_set_data64(sqe, (uint64_t) i + 1);
    }
    T_EQ(io_uring_submit(&ring), NSOCK);
    for (int i = 0; i < NSOCK; i++) {
        T_EQ(write(sv[i][1], "x", 1), 1);
    }
    /* reap as the watch does, until every socket has reported once */
    while (total < NSOCK) {
        unsigned n;

        T_OK(rounds++ < 100);
        io_uring_submit_and_get_events(&ring);
        n = io_uring_cq_ready(&ring);
        io_uring_cq_advance(&ring, n);
        total += n;
        if (IO_URING_READ_ONCE(*ring.sq.kflags) & IORING_SQ_TASKRUN) {
            flagged_rounds++;
            T_OK(n > 0);
            T_OK(evpl__uring_unreaped(&ring, (int) n)); /* work left: reap again */
        }
    }
    T_EQ(total, NSOCK);
    /* nothing waits now; a flag left set as the race leaves it */
    io_uring_submit_and_get_events(&ring);
    T_EQ(io_uring_cq_ready(&ring), 0);
    __atomic_or_fetch(ring.sq.kflags, IORING_SQ_TASKRUN, __ATOMIC_SEQ_CST);
    T_OK(!evpl__uring_unreaped(&ring, 0));
    __atomic_and_fetch(ring.sq.kflags, ~(unsigned) IORING_SQ_TASKRUN, __ATOMIC_SEQ_CST);
    fprintf(stderr, "%u reaps for %d sockets, %u left work flagged\n", rounds, NSOCK,
            flagged_rounds);
    io_uring_queue_exit(&ring);
    for (int i = 0; i < NSOCK; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    if (flagged_rounds == 0) {
        T_SKIP("this kernel ran all the waiting work in one enter");
    }
    return 0;
}
#endif
