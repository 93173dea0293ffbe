/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Hot-path system calls without glibc's cancellation wrappers.
 *
 * read, writev, epoll_wait and friends are pthread cancellation points:
 * glibc brackets each with an enable/disable of asynchronous cancellation,
 * which profiling showed at ~10% of a busy ping-pong loop.  The library
 * never relies on cancellation (a cancelled loop thread would leak every
 * bind), so the loop's own I/O goes straight to the kernel.  The return
 * convention is the libc one: -1 with errno set.
 */
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static inline ssize_t
evpl_sys_read(int fd, void *buf, size_t len)
{
    return syscall(SYS_read, fd, buf, len);
}

static inline ssize_t
evpl_sys_writev(int fd, const struct iovec *iov, int n)
{
    return syscall(SYS_writev, fd, iov, n);
}

static inline int
evpl_sys_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout_ms)
{
    return (int) syscall(SYS_epoll_wait, epfd, ev, max, timeout_ms);
}

static inline int
evpl_sys_epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *ts)
{
    return (int) syscall(SYS_epoll_pwait2, epfd, ev, max, ts, NULL, 0);
}

static inline int
evpl_sys_sendmmsg(int fd, struct mmsghdr *m, unsigned int n, int flags)
{
    return (int) syscall(SYS_sendmmsg, fd, m, n, flags);
}

static inline int
evpl_sys_recvmmsg(int fd, struct mmsghdr *m, unsigned int n, int flags)
{
    return (int) syscall(SYS_recvmmsg, fd, m, n, flags, NULL);
}
