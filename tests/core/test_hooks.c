/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Loop hooks (core §5): core statement 11 and loop statement 22.
 * iteration_end runs once per evpl_continue (poll-only passes included),
 * pre_wait/post_wait once per full pass, in that order around the wait,
 * also when the wait has a zero timeout; NULL clears every hook; hooks may
 * be replaced from inside a hook; private_data is passed through.
 */
#include "t_loop.h"

#define MS 1000000ull

static char log_buf[8192];
static int log_len;
static int wrong_private;

static void
log_ev(char c)
{
    if (log_len < (int) sizeof(log_buf) - 1) {
        log_buf[log_len++] = c;
        log_buf[log_len] = '\0';
    }
} /* log_ev */

static int tag_a = 1, tag_b = 2;
static uint64_t pre_at, post_at, max_wait_ns;

static void
pre_a(struct evpl *evpl, void *p)
{
    if (p != &tag_a) {
        wrong_private++;
    }
    pre_at = t_now_ns();
    log_ev('P');
} /* pre_a */

static void
post_a(struct evpl *evpl, void *p)
{
    if (p != &tag_a) {
        wrong_private++;
    }
    post_at = t_now_ns();
    if (post_at - pre_at > max_wait_ns) {
        max_wait_ns = post_at - pre_at;
    }
    log_ev('W');
} /* post_a */

static void
iter_a(struct evpl *evpl, void *p)
{
    if (p != &tag_a) {
        wrong_private++;
    }
    log_ev('I');
} /* iter_a */

static void
iter_b(struct evpl *evpl, void *p)
{
    if (p != &tag_b) {
        wrong_private++;
    }
    log_ev('i');
} /* iter_b */

static const struct evpl_loop_hooks hooks_a = {
    .iteration_end = iter_a,
    .pre_wait = pre_a,
    .post_wait = post_a,
    .private_data = &tag_a,
};

/* only iteration_end; the wait hooks are NULL */
static const struct evpl_loop_hooks hooks_b = {
    .iteration_end = iter_b,
    .private_data = &tag_b,
};

/* An iteration_end hook that swaps itself for hooks_b. */
static void
iter_swap(struct evpl *evpl, void *p)
{
    log_ev('S');
    evpl_set_loop_hooks(evpl, &hooks_b);
} /* iter_swap */

/* A pre_wait hook that clears every hook. */
static void
pre_clear(struct evpl *evpl, void *p)
{
    log_ev('C');
    evpl_set_loop_hooks(evpl, NULL);
} /* pre_clear */

static void
on_deferral(struct evpl *evpl, void *p)
{
    log_ev('D');
} /* on_deferral */

static struct evpl_deferral deferral;
static int pipe_fds[2];

static void
on_read(struct evpl *evpl, struct evpl_fd_event *ev)
{
    char b[16];
    ssize_t r;

    log_ev('R');
    while ((r = read(pipe_fds[0], b, sizeof(b))) > 0) {
    }
    evpl_fd_event_mark_unreadable(evpl, ev);
    evpl_defer(evpl, &deferral);
} /* on_read */

/* pre_wait that makes the pipe readable: the wait between P and W reports it */
static void
pre_write(struct evpl *evpl, void *p)
{
    log_ev('P');
    T_EQ(write(pipe_fds[1], "x", 1), 1);
} /* pre_write */

static int timer_fired;

static void
on_timer(struct evpl *evpl, struct evpl_timer *t)
{
    timer_fired++;
    /* keep only what follows the timer (a sub-ms remainder may spin) */
    log_len = 0;
    log_buf[0] = '\0';
    log_ev('T');
    /* armed before the wait timeout is computed: this pass must not sleep */
    evpl_defer(evpl, &deferral);
} /* on_timer */

static void
expect_log(const char *want)
{
    if (strcmp(log_buf, want) != 0) {
        T_FAIL("hook sequence \"%s\", expected \"%s\"", log_buf, want);
    }
    log_len = 0;
    log_buf[0] = '\0';
} /* expect_log */

int
main(void)
{
    struct evpl *evpl;
    struct evpl_fd_event ev;
    struct evpl_timer t;
    struct evpl_loop_hooks h;
    struct t_pstate ps = {0};
    struct evpl_poll *poll;
    int i, n;

    alarm(30);
    evpl_init(t_global_config());

    /* poll_mode = 0: every pass is a full pass */
    evpl = t_loop_create(0, 0);
    memset(&deferral, 0, sizeof(deferral));
    evpl_deferral_init(&deferral, on_deferral, NULL);

    /* statement 11/22: per pass P (pre_wait), W (post_wait), I (iteration_end) */
    evpl_set_loop_hooks(evpl, &hooks_a);
    for (i = 0; i < 5; i++) {
        evpl_continue(evpl);
    }
    expect_log("PWIPWIPWIPWIPWI"); /* core 11, loop 22 */

    /* the struct is copied: changing the caller's copy changes nothing */
    h = hooks_a;
    evpl_set_loop_hooks(evpl, &h);
    memset(&h, 0, sizeof(h));
    evpl_continue(evpl);
    expect_log("PWI");

    /* zero-timeout wait (a deferral is armed) still calls pre/post; the
     * deferral runs after the wait and before iteration_end */
    evpl_defer(evpl, &deferral);
    evpl_continue(evpl);
    expect_log("PWDI"); /* loop 22 */

    /* pass anatomy: wait (P..W), then dispatch (R), then deferrals (D),
     * then iteration_end (I).  pre_wait writes to the pipe, so readiness is
     * reported by the very wait the hooks bracket */
    t_pipe(pipe_fds);
    evpl_add_fd_event(evpl, &ev, pipe_fds[0], on_read, NULL, NULL);
    evpl_fd_event_read_interest(evpl, &ev);
    evpl_continue(evpl);
    expect_log("PWI");
    h = hooks_a;
    h.pre_wait = pre_write;
    evpl_set_loop_hooks(evpl, &h);
    evpl_continue(evpl);
    expect_log("PWRDI"); /* core 11, loop 22 */
    evpl_set_loop_hooks(evpl, &hooks_a);
    evpl_remove_fd_event(evpl, &ev);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    evpl_destroy(evpl);

    /* a real wait happens between pre_wait and post_wait: a loop with
     * wait_ms = -1 and a 30 ms timer sleeps inside that bracket; timers
     * fire before the wait (T before P) */
    evpl = t_loop_create(0, -1);
    evpl_set_loop_hooks(evpl, &hooks_a);
    memset(&t, 0, sizeof(t));
    max_wait_ns = 0;
    evpl_add_oneshot_timer(evpl, &t, on_timer, 30000);
    while (!timer_fired) {
        evpl_continue(evpl);
    }
    T_GE(max_wait_ns, 20 * MS); /* core 11 */
    expect_log("TPWDI");

    /* replacing hooks from inside a hook: takes effect from the next call
     * on; private_data follows the installed struct */
    h = hooks_a;
    h.iteration_end = iter_swap;
    evpl_set_loop_hooks(evpl, &h);
    evpl_defer(evpl, &deferral);
    evpl_continue(evpl);
    evpl_defer(evpl, &deferral);
    evpl_continue(evpl);
    evpl_defer(evpl, &deferral);
    evpl_continue(evpl);
    expect_log("PWDSDiDi"); /* hooks_b has no wait hooks */

    /* clearing from inside pre_wait: post_wait and iteration_end of that
     * same pass are already gone */
    h = hooks_a;
    h.pre_wait = pre_clear;
    evpl_set_loop_hooks(evpl, &h);
    evpl_defer(evpl, &deferral);
    evpl_continue(evpl);
    if (strcmp(log_buf, "CD") != 0 && strcmp(log_buf, "CWDI") != 0) {
        T_FAIL("clearing hooks from pre_wait: got \"%s\"", log_buf);
    }
    log_len = 0;
    log_buf[0] = '\0';
    evpl_defer(evpl, &deferral);
    evpl_continue(evpl);
    expect_log("D");

    /* statement 11: after evpl_set_loop_hooks(evpl, NULL) none is invoked */
    evpl_set_loop_hooks(evpl, &hooks_a);
    evpl_set_loop_hooks(evpl, NULL);
    for (i = 0; i < 5; i++) {
        evpl_defer(evpl, &deferral);
        evpl_continue(evpl);
    }
    expect_log("DDDDD"); /* core 11 */
    evpl_destroy(evpl);

    /* statement 11/22 in poll mode: iteration_end on every evpl_continue
     * (poll-only passes included); pre/post only on full passes, paired */
    evpl = t_loop_create(1, -1);
    t_ps_hooks(evpl, &ps);
    poll = t_ps_add_poll(evpl, &ps);
    evpl_poll_pin(evpl);
    n = 0;
    for (i = 0; i < 5005; i++) {
        evpl_continue(evpl);
        n++;
        T_EQ(ps.iter, n);      /* core 11, loop 22 */
        T_EQ(ps.pre, ps.post); /* core 11 */
    }
    T_GE(ps.polls, 4000); /* mostly poll-only passes ... */
    T_GE(ps.pre, 5);      /* ... with a full pass every 1001 */
    T_LE(ps.pre, 7);
    evpl_poll_unpin(evpl);
    evpl_remove_poll(evpl, poll);
    evpl_set_loop_hooks(evpl, NULL);
    evpl_destroy(evpl);

    T_EQ(wrong_private, 0);
    return 0;
} /* main */
