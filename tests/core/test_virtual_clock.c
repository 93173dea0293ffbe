/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * Virtual clock (core §6): statement 12 (never blocks; a 50 ms one-shot
 * fires on the first pass after the clock moved >= 50 ms, not before) and
 * statement 13 (advance aborts when the virtual clock is not enabled).
 */
#include "t_loop.h"

#define MS 1000000ull

/* ---- statement 13 ------------------------------------------------------- */

static void
advance_not_enabled(void *arg)
{
    evpl_init(NULL);
    evpl_virtual_clock_advance(1000);
} /* advance_not_enabled */

static void
advance_disabled_explicitly(void *arg)
{
    struct evpl_global_config *cfg = evpl_global_config_init();

    evpl_global_config_set_virtual_clock(cfg, 0);
    evpl_init(cfg);
    evpl_virtual_clock_advance(1000);
} /* advance_disabled_explicitly */

static void
advance_after_auto_init(void *arg)
{
    struct evpl *evpl = evpl_create(NULL);

    (void) evpl;
    evpl_virtual_clock_advance(1000);
} /* advance_after_auto_init */

static void
advance_uninitialized(void *arg)
{
    evpl_virtual_clock_advance(1000);
} /* advance_uninitialized */

static void
now_not_enabled(void *arg)
{
    evpl_init(NULL);
    (void) evpl_virtual_clock_now();
} /* now_not_enabled */

static void
now_uninitialized(void *arg)
{
    (void) evpl_virtual_clock_now();
} /* now_uninitialized */

/* ---- statement 12 ------------------------------------------------------- */

static int fired;
static uint64_t fired_at_virtual;

static void
on_timer(struct evpl *evpl, struct evpl_timer *t)
{
    fired++;
    fired_at_virtual = evpl_virtual_clock_now();
} /* on_timer */

static void *
advancer(void *arg)
{
    for (int i = 0; i < 100; i++) {
        evpl_virtual_clock_advance(10);
    }
    return NULL;
} /* advancer */

/* A callback that arms another one-shot with delay 0, or re-arms itself. */
static struct evpl_timer zero_b;
static int zero_a_fired, zero_b_fired, self_fired;

static void
on_zero_b(struct evpl *evpl, struct evpl_timer *t)
{
    zero_b_fired++;
} /* on_zero_b */

static void
on_zero_a(struct evpl *evpl, struct evpl_timer *t)
{
    zero_a_fired++;
    evpl_add_oneshot_timer(evpl, &zero_b, on_zero_b, 0);
} /* on_zero_a */

static void
on_self_zero(struct evpl *evpl, struct evpl_timer *t)
{
    if (++self_fired < 3) {
        evpl_add_oneshot_timer(evpl, t, on_self_zero, 0);
    }
} /* on_self_zero */

/* One pass must return promptly (no real blocking). */
static void
timed_pass(struct evpl *evpl)
{
    uint64_t t0 = t_now_ns();

    evpl_continue(evpl);
    T_LT(t_now_ns() - t0, 1000 * MS); /* core 12 */
} /* timed_pass */

static void
virtual_scenarios(void *arg)
{
    struct evpl_global_config *cfg = t_global_config();
    struct evpl *evpl, *evpl2;
    struct evpl_timer t, far;
    struct timespec ts0, ts1;
    uint64_t hf0, hf1, v;
    int i;
    pthread_t tid;

    evpl_global_config_set_virtual_clock(cfg, 1);
    evpl_init(cfg);

    /* the clock starts at 0 and only moves when advanced */
    T_EQ_U(evpl_virtual_clock_now(), 0);
    t_sleep_ms(20);
    T_EQ_U(evpl_virtual_clock_now(), 0);
    evpl_virtual_clock_advance(5);
    T_EQ_U(evpl_virtual_clock_now(), 5);

    /* any thread may advance it */
    T_EQ(pthread_create(&tid, NULL, advancer, NULL), 0);
    pthread_join(tid, NULL);
    T_EQ_U(evpl_virtual_clock_now(), 1005);

    /* evpl_get_hf_monotonic_time is real time, not virtual */
    evpl_get_hf_monotonic_time(NULL, &ts0);
    t_sleep_ms(20);
    evpl_get_hf_monotonic_time(NULL, &ts1);
    hf0 = (uint64_t) ts0.tv_sec * 1000000000ull + ts0.tv_nsec;
    hf1 = (uint64_t) ts1.tv_sec * 1000000000ull + ts1.tv_nsec;
    T_GE(hf1 - hf0, 15 * MS);
    T_EQ_U(evpl_virtual_clock_now(), 1005);

    /* statement 12: never blocks, even with wait_ms = -1, poll_mode = 0,
     * nothing registered, or only a timer 10 s (virtual) away */
    evpl = t_loop_create(0, -1);
    for (i = 0; i < 50; i++) {
        timed_pass(evpl); /* core 12 */
    }
    memset(&far, 0, sizeof(far));
    evpl_add_oneshot_timer(evpl, &far, on_timer, 10000000);
    for (i = 0; i < 50; i++) {
        timed_pass(evpl); /* core 12 */
    }
    evpl_remove_timer(evpl, &far);
    T_EQ(fired, 0);

    /* statement 12: a 50 ms one-shot fires on the first pass after >= 50 ms */
    v = evpl_virtual_clock_now();
    memset(&t, 0, sizeof(t));
    evpl_add_oneshot_timer(evpl, &t, on_timer, 50000);
    for (i = 0; i < 10; i++) {
        timed_pass(evpl);
    }
    T_EQ(fired, 0);
    evpl_virtual_clock_advance(25 * MS);
    for (i = 0; i < 10; i++) {
        timed_pass(evpl);
    }
    T_EQ(fired, 0);                          /* core 12 */
    evpl_virtual_clock_advance(25 * MS - 1); /* 1 ns short */
    for (i = 0; i < 10; i++) {
        timed_pass(evpl);
    }
    T_EQ(fired, 0);                /* core 12 */
    evpl_virtual_clock_advance(1); /* exactly 50 ms */
    timed_pass(evpl);
    T_EQ(fired, 1); /* core 12 */
    T_EQ_U(fired_at_virtual, v + 50 * MS);
    evpl_virtual_clock_advance(1000 * MS);
    for (i = 0; i < 10; i++) {
        timed_pass(evpl);
    }
    T_EQ(fired, 1);

    /* a large jump: fires on the first pass after it */
    fired = 0;
    memset(&t, 0, sizeof(t));
    evpl_add_oneshot_timer(evpl, &t, on_timer, 50000);
    evpl_virtual_clock_advance(3600000 * MS);
    timed_pass(evpl);
    T_EQ(fired, 1); /* core 12 */

    /* the same clock drives a second loop; a pass with poll_mode=1 also
     * never blocks (the spin window is long over in virtual time) */
    evpl2 = t_loop_create(1, -1);
    evpl_virtual_clock_advance(3600000 * MS);
    fired = 0;
    memset(&t, 0, sizeof(t));
    evpl_add_oneshot_timer(evpl2, &t, on_timer, 50000);
    for (i = 0; i < 20; i++) {
        timed_pass(evpl2); /* core 12 */
    }
    T_EQ(fired, 0);
    evpl_virtual_clock_advance(50 * MS);
    timed_pass(evpl2); /* not in poll mode: every pass is a full pass */
    T_EQ(fired, 1);    /* core 12 */

    /* loop §2: a one-shot armed inside a timer callback fires at now +
     * delay; with delay 0 that is the next pass, without the clock moving
     * (not in the same pass: a callback cannot make its run endless) */
    {
        struct evpl_timer a, self;

        memset(&a, 0, sizeof(a));
        memset(&zero_b, 0, sizeof(zero_b));
        evpl_add_oneshot_timer(evpl, &a, on_zero_a, 0);
        timed_pass(evpl);
        T_EQ(zero_a_fired, 1);
        T_EQ(zero_b_fired, 0);
        v = evpl_virtual_clock_now();
        timed_pass(evpl);
        T_EQ(zero_b_fired, 1);
        T_EQ_U(evpl_virtual_clock_now(), v);

        /* loop #2: a one-shot re-added by its own callback fires again after
         * the new delay: once per pass with delay 0 */
        memset(&self, 0, sizeof(self));
        evpl_add_oneshot_timer(evpl, &self, on_self_zero, 0);
        for (i = 1; i <= 3; i++) {
            timed_pass(evpl);
            T_EQ(self_fired, i);
        }
        for (i = 0; i < 5; i++) {
            timed_pass(evpl);
        }
        T_EQ(self_fired, 3);
    }

    evpl_destroy(evpl2);
    evpl_destroy(evpl);
} /* virtual_scenarios */

int
main(void)
{
    alarm(60);
    T_EQ(t_child_signal(advance_not_enabled, NULL), SIGABRT);         /* core 13 */
    T_EQ(t_child_signal(advance_disabled_explicitly, NULL), SIGABRT); /* core 13 */
    T_EQ(t_child_signal(advance_after_auto_init, NULL), SIGABRT);     /* core 13 */
    T_EQ(t_child_signal(advance_uninitialized, NULL), SIGABRT);       /* core §6 */
    T_EQ(t_child_signal(now_not_enabled, NULL), SIGABRT);             /* core §6 */
    T_EQ(t_child_signal(now_uninitialized, NULL), SIGABRT);           /* core §6 */
    t_run_child("virtual clock", virtual_scenarios, NULL);            /* core 12 */
    return 0;
} /* main */
