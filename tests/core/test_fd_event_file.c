/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A caller-owned fd that cannot be polled (a regular file, /dev/null) is treated as
 * always ready: read interest delivers a read callback.  With epoll and
 * io_uring, marking it unreadable ends them (nothing reports a file ready
 * again) and the idle loop sleeps instead of spinning on it; select is
 * level-triggered and reports a file readable on every wait (loop.md §6:
 * "end this burst" is all that is portable).
 */
#include "t_loop.h"

#include <stdio.h>

static int reads;

static void
on_read(struct evpl *evpl, struct evpl_fd_event *ev)
{
    char buf[64];

    reads++;
    T_GE(read(evpl_fd_event_fd(ev), buf, sizeof(buf)), 0);
    evpl_fd_event_mark_unreadable(evpl, ev);
}

/* fd is registered, read to exhaustion once, then must stay quiet. */
static void
check_quiet(struct evpl *evpl, int fd, const char *what)
{
    struct evpl_fd_event ev;
    uint64_t cpu0;

    reads = 0;
    evpl_add_fd_event(evpl, &ev, fd, on_read, NULL, NULL);
    evpl_fd_event_read_interest(evpl, &ev);
    for (int i = 0; i < 5; i++) {
        evpl_continue(evpl);
    }
    if (t_mech_is_select()) {
        T_GE(reads, 1);
        evpl_remove_fd_event(evpl, &ev);
        return;
    }
    T_EQ(reads, 1);

    /* idle with the file still registered: the loop sleeps (20 ms waits) */
    cpu0 = t_cpu_ns();
    for (int i = 0; i < 10; i++) {
        evpl_continue(evpl);
    }
    T_LT(t_cpu_ns() - cpu0, 100ull * 1000000);
    if (reads != 1) {
        fprintf(stderr, "%s: %d read callbacks while idle\n", what, reads);
    }
    T_EQ(reads, 1);

    evpl_fd_event_mark_readable(evpl, &ev); /* resume by hand */
    evpl_continue(evpl);
    T_EQ(reads, 2);

    evpl_remove_fd_event(evpl, &ev);
} /* check_quiet */

int
main(void)
{
    struct evpl_global_config *cfg = t_global_config();
    char path[] = "/tmp/evpl-fd-event-XXXXXX";
    int fd = mkstemp(path);
    struct evpl *evpl;

    T_OK(fd >= 0);
    unlink(path);
    T_EQ(write(fd, "hello", 5), 5);
    evpl_global_config_set_spin_ns(cfg, 1000); /* sleep almost at once when idle */
    evpl_init(cfg);
    evpl = t_loop_create(1, 20);

    check_quiet(evpl, fd, "regular file");
    close(fd);

    /* character devices without a poll method are the same (on io_uring a
     * poll of one completes at once, forever) */
    for (int i = 0; i < 2; i++) {
        const char *dev = i ? "/dev/zero" : "/dev/null";

        fd = open(dev, O_RDONLY | O_NONBLOCK);
        T_OK(fd >= 0);
        check_quiet(evpl, fd, dev);
        close(fd);
    }

    evpl_destroy(evpl);
    return 0;
}
