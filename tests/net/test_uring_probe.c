/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Whether io_uring can be used is probed once, on first use (helper-116):
 *
 * 1. A probe made while the process is out of descriptors is no answer:
 *    the io_uring protocols are unavailable then, and available again once
 *    descriptors are free (they stayed unavailable for the life of the
 *    process).  Run in a child of its own, before anything probed.
 * 2. The probe's ring is made and torn down on a thread of the library's:
 *    its teardown interrupted a blocking call of the thread that asked
 *    (EINTR from a read with SO_RCVTIMEO, about 20 ms later, on 6.18).
 */
#include <sys/resource.h>
#include <sys/wait.h>

#include "t_net.h"

#define MAXFILL 4096

/* Part 1, in a child: 0 passed, 77 no io_uring here at all. */
static int
emfile_child(void)
{
    static int fill[MAXFILL];
    struct rlimit rl, low;
    int nfill = 0, fd, before, after;

    evpl_init(NULL);
    T_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    T_OK(fd >= 0);
    low = rl;
    low.rlim_cur = (rlim_t) fd + 64;
    close(fd);
    T_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    while (nfill < MAXFILL && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) {
        fill[nfill++] = fd;
    }
    T_EQ(errno, EMFILE);
    before = evpl_protocol_available(EVPL_STREAM_IO_URING_TCP);
    while (nfill > 0) {
        close(fill[--nfill]);
    }
    T_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    after = evpl_protocol_available(EVPL_STREAM_IO_URING_TCP);
    fprintf(stderr, "io_uring TCP available: %d out of descriptors, %d after\n", before, after);
    T_EQ(before, 0);
    if (!after) {
        return 77;
    }
    T_EQ(evpl_protocol_available(EVPL_DATAGRAM_IO_URING_UDP), 1);
    return 0;
} /* emfile_child */

int
main(void)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
    int sv[2], status, child_rc;
    char byte;
    pid_t pid;

    t_net_guard(30);
    pid = fork();
    T_OK(pid >= 0);
    if (pid == 0) {
        _exit(emfile_child());
    }
    T_EQ(waitpid(pid, &status, 0), pid);
    T_OK(WIFEXITED(status));
    child_rc = WEXITSTATUS(status);
    T_OK(child_rc == 0 || child_rc == 77);

    /* part 2: the first probe of this process, then a blocking read that
     * must end by its timeout, three times over (the interruption came
     * within ~20 ms of the probe, 6 runs in 8) */
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    T_EQ(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    T_EQ(evpl_protocol_available(EVPL_STREAM_IO_URING_TCP), child_rc == 0);
    for (int i = 0; i < 3; i++) {
        errno = 0;
        T_EQ(read(sv[0], &byte, 1), -1);
        if (errno != EAGAIN) {
            fprintf(stderr, "read %d: %s\n", i, strerror(errno));
        }
        T_EQ(errno, EAGAIN);
    }
    close(sv[0]);
    close(sv[1]);
    if (child_rc == 77) {
        T_SKIP("io_uring unavailable here");
    }
    return 0;
}
