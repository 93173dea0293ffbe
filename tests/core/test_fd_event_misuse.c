/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * fd events under conditions the program should avoid, or did not expect:
 * none may corrupt memory, go deaf or keep the loop busy.
 *
 * 1. An fd closed before its event is removed (loop.md §6 says remove
 *    first) while a dup keeps its file open: epoll cannot take that entry
 *    out of its set, and its reports must not reach the event's freed
 *    storage (ASan sees the write).
 * 2. The same, then the number reused for a new event: removing the stale
 *    event must not unregister the new one.  The select mechanism keeps
 *    one event per number and refuses the second (a clear abort), so this
 *    part runs on epoll and io_uring.
 * 3. Removing an fd event is no activity: it does not put an idle loop
 *    back into poll mode (io_uring's cancel completes on the ring).
 * 4. More registered fds than the soft RLIMIT_NOFILE, lowered after they
 *    were opened (ppoll refuses that many): ready ones are still reported.
 */
#include "t_loop.h"

#include <stdlib.h>
#include <sys/resource.h>

struct pipe_ev {
    struct evpl_fd_event ev;
    int fd;
    int reads;
};

static void
on_read(struct evpl *evpl, struct evpl_fd_event *ev)
{
    struct pipe_ev *p = t_container_of(ev, struct pipe_ev, ev);
    char buf[64];

    while (read(p->fd, buf, sizeof(buf)) > 0) {
    }
    p->reads++;
    evpl_fd_event_mark_unreadable(evpl, ev);
} /* on_read */

static void
run(struct evpl *evpl, int passes)
{
    for (int i = 0; i < passes; i++) {
        evpl_continue(evpl);
    }
} /* run */

static void
watch(struct evpl *evpl, struct pipe_ev *p, int fd)
{
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    evpl_add_fd_event(evpl, &p->ev, fd, on_read, NULL, NULL);
    evpl_fd_event_read_interest(evpl, &p->ev);
} /* watch */

static void
closed_with_dup(struct evpl *evpl)
{
    struct pipe_ev *p = malloc(sizeof(*p));
    int fds[2], keep;

    T_OK(p != NULL);
    T_EQ(pipe2(fds, O_NONBLOCK), 0);
    keep = dup(fds[0]);
    T_GE(keep, 0);
    watch(evpl, p, fds[0]);
    run(evpl, 2);
    close(fds[0]);
    evpl_remove_fd_event(evpl, &p->ev);
    free(p);
    T_EQ(write(fds[1], "x", 1), 1); /* the file, still open, becomes readable */
    run(evpl, 3);
    close(keep);
    close(fds[1]);
} /* closed_with_dup */

static void
number_reused(struct evpl *evpl)
{
    struct pipe_ev a, b;
    int p[2], q[2];

    T_EQ(pipe2(p, O_NONBLOCK), 0);
    watch(evpl, &a, p[0]);
    run(evpl, 1);
    close(p[0]);
    T_EQ(pipe2(q, O_NONBLOCK), 0);
    if (q[0] != p[0]) {
        T_EQ(dup2(q[0], p[0]), p[0]);
        close(q[0]);
        q[0] = p[0];
    }
    watch(evpl, &b, q[0]);
    run(evpl, 1);
    evpl_remove_fd_event(evpl, &a.ev); /* stale: its fd is b's now */
    T_EQ(write(q[1], "b", 1), 1);
    run(evpl, 4);
    T_EQ(b.reads, 1);
    T_EQ(a.reads, 0);
    evpl_remove_fd_event(evpl, &b.ev);
    close(q[0]);
    close(q[1]);
    close(p[1]);
} /* number_reused */

static int enters;

static void
on_enter(struct evpl *evpl, void *arg)
{
    enters++;
} /* on_enter */

static void
on_exit_poll(struct evpl *evpl, void *arg)
{
} /* on_exit_poll */

static void
on_poll(struct evpl *evpl, void *arg)
{
} /* on_poll */

static void
idle_for(struct evpl *evpl, uint64_t ms)
{
    uint64_t end = t_now_ns() + ms * 1000000;

    while (t_now_ns() < end) {
        evpl_continue(evpl);
    }
} /* idle_for */

static void
removal_is_no_activity(void)
{
    struct evpl *evpl = t_loop_create(1, 2);
    struct pipe_ev p;
    int fds[2], before;

    evpl_add_poll(evpl, on_enter, on_exit_poll, on_poll, NULL);
    idle_for(evpl, 30); /* past the spin window: out of poll mode */
    before = enters;
    T_EQ(pipe2(fds, O_NONBLOCK), 0);
    for (int i = 0; i < 5; i++) {
        watch(evpl, &p, fds[0]);
        idle_for(evpl, 10);
        evpl_remove_fd_event(evpl, &p.ev);
        idle_for(evpl, 10);
    }
    T_EQ(enters, before);
    T_EQ(p.reads, 0);
    close(fds[0]);
    close(fds[1]);
    evpl_destroy(evpl);
} /* removal_is_no_activity */

#define NPIPES 300

static void
over_nofile(struct evpl *evpl)
{
    static struct pipe_ev evs[NPIPES];
    static int wfd[NPIPES];
    struct rlimit rl, old;

    for (int i = 0; i < NPIPES; i++) {
        int fds[2];

        T_EQ(pipe2(fds, O_NONBLOCK), 0);
        watch(evpl, &evs[i], fds[0]);
        wfd[i] = fds[1];
    }
    T_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    rl = old;
    rl.rlim_cur = NPIPES / 2;
    T_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    T_EQ(write(wfd[0], "x", 1), 1);
    T_EQ(write(wfd[NPIPES - 1], "x", 1), 1);
    for (int i = 0; i < 50 && evs[0].reads + evs[NPIPES - 1].reads < 2; i++) {
        evpl_continue(evpl);
    }
    T_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    T_EQ(evs[0].reads, 1);
    T_EQ(evs[NPIPES - 1].reads, 1);
    for (int i = 0; i < NPIPES; i++) {
        evpl_remove_fd_event(evpl, &evs[i].ev);
        close(evs[i].fd);
        close(wfd[i]);
    }
} /* over_nofile */

int
main(void)
{
    struct evpl_global_config *cfg = t_global_config();
    struct evpl *evpl;

    evpl_init(cfg);
    evpl = t_loop_create(0, 5);

    closed_with_dup(evpl);
    if (!t_mech_is_select()) {
        number_reused(evpl);
    }
    over_nofile(evpl);
    evpl_destroy(evpl);

    removal_is_no_activity();
    return 0;
}
