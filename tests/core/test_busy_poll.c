/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * A busy loop stays in poll mode (real clock, spin_ns = 250 ms):
 *  1. a poll callback reporting evpl_activity keeps the loop in poll mode
 *     (no exit callback) for 500 ms; once activity stops, exit comes after
 *     spin_ns and not before (loop.md statements 16, 17);
 *  2. our behaviour (DESIGN §9.1, evpl_poll.h): timer expiries and doorbell
 *     rings count as activity on their own, so they also keep the loop in
 *     poll mode, and it exits spin_ns after they stop.
 * Activity reported since the previous full pass counts as "now" at the
 * next full pass, so scheduling delays cannot cause a false exit.
 */
#include "t_loop.h"

#define MS   1000000ull
#define SPIN (250 * MS)

static struct t_pstate ps;
static int report_activity;
static uint64_t last_activity_ns;

static void
busy_poll(struct evpl *evpl, void *p)
{
    ps.polls++;
    if (report_activity) {
        evpl_activity(evpl);
        last_activity_ns = t_now_ns();
    }
} /* busy_poll */

static void
run_for(struct evpl *evpl, uint64_t ns)
{
    uint64_t end = t_now_ns() + ns;

    while (t_now_ns() < end) {
        evpl_continue(evpl);
    }
} /* run_for */

/* Run until the exit callback count reaches want; returns when it did. */
static uint64_t
run_until_exit(struct evpl *evpl, int want)
{
    uint64_t t0 = t_now_ns();

    while (ps.exit < want) {
        if (t_now_ns() - t0 > 5000 * MS) {
            T_FAIL("no exit from poll mode %" PRIu64 " ms after activity stopped",
                   (uint64_t) ((t_now_ns() - t0) / MS));
        }
        evpl_continue(evpl);
    }
    return t_now_ns();
} /* run_until_exit */

static int timer_fires;
static uint64_t last_timer_ns;

static void
on_timer(struct evpl *evpl, struct evpl_timer *t)
{
    timer_fires++;
    last_timer_ns = t_now_ns();
} /* on_timer */

static atomic_int db_calls;
static atomic_int ringing;
static uint64_t last_db_ns;

static void
on_db(struct evpl *evpl, struct evpl_doorbell *db)
{
    atomic_fetch_add(&db_calls, 1);
    last_db_ns = t_now_ns();
} /* on_db */

static void *
ringer(void *arg)
{
    while (atomic_load(&ringing)) {
        evpl_ring_doorbell(arg);
        t_sleep_ms(20);
    }
    return NULL;
} /* ringer */

int
main(void)
{
    struct evpl_global_config *cfg = t_global_config();
    struct evpl *evpl;
    struct evpl_poll *poll;
    struct evpl_timer timer;
    struct evpl_doorbell db;
    pthread_t tid;
    uint64_t exit_at;
    int polls, pre;

    alarm(30);
    evpl_global_config_set_spin_ns(cfg, SPIN);
    evpl_init(cfg);
    /* wait_ms = 20: after leaving poll mode the loop sleeps in 20 ms steps,
     * so the checks below can keep calling evpl_continue */
    evpl = t_loop_create(1, 20);
    t_ps_hooks(evpl, &ps);
    poll = evpl_add_poll(evpl, t_ps_enter, t_ps_exit, busy_poll, &ps);

    /* 1. activity from the poll callback keeps it in poll mode */
    report_activity = 1;
    run_for(evpl, 500 * MS);
    T_EQ(ps.enter, 1);           /* loop 16 */
    T_EQ(ps.exit, 0);            /* loop 17 */
    T_GE(ps.polls, 1000);        /* busy polling, not sleeping */
    T_GE(ps.iter, ps.pre * 100); /* mostly poll-only passes */

    /* activity stops: exit after spin_ns, not before; polls continue
     * until then and stop afterwards */
    report_activity = 0;
    polls = ps.polls;
    exit_at = run_until_exit(evpl, 1);
    T_GE(exit_at - last_activity_ns, SPIN - 5 * MS); /* loop 16 */
    T_GT(ps.polls, polls);
    polls = ps.polls;
    pre = ps.pre;
    run_for(evpl, 200 * MS);
    T_EQ(ps.polls, polls);
    T_EQ(ps.exit, 1);
    T_LE(ps.pre - pre, 100); /* sleeping in 20 ms waits, not spinning */

    /* 2a. timer expiries count as activity (our behaviour) */
    evpl_activity(evpl);
    memset(&timer, 0, sizeof(timer));
    evpl_add_timer(evpl, &timer, on_timer, 20000);
    run_for(evpl, 600 * MS);
    T_EQ(ps.enter, 2);
    T_EQ(ps.exit, 1); /* DESIGN 9.1 */
    T_GE(timer_fires, 5);
    evpl_remove_timer(evpl, &timer);
    exit_at = run_until_exit(evpl, 2);
    T_GE(exit_at - last_timer_ns, SPIN - 5 * MS); /* DESIGN 9.1 */

    /* 2b. doorbell rings from another thread count as activity */
    evpl_add_doorbell(evpl, &db, on_db);
    atomic_store(&ringing, 1);
    T_EQ(pthread_create(&tid, NULL, ringer, &db), 0);
    while (atomic_load(&db_calls) == 0) {
        evpl_continue(evpl);
    }
    run_for(evpl, 600 * MS);
    T_EQ(ps.enter, 3);
    T_EQ(ps.exit, 2); /* DESIGN 9.1 */
    T_GE(atomic_load(&db_calls), 5);
    atomic_store(&ringing, 0);
    pthread_join(tid, NULL);
    /* drain a ring that may still be in flight, then time the exit */
    run_for(evpl, 30 * MS);
    exit_at = run_until_exit(evpl, 3);
    T_GE(exit_at - last_db_ns, SPIN - 5 * MS); /* DESIGN 9.1 */
    evpl_remove_doorbell(evpl, &db);

    T_EQ(ps.enter, 3);
    evpl_remove_poll(evpl, poll);
    evpl_set_loop_hooks(evpl, NULL);
    evpl_destroy(evpl);
    return 0;
} /* main */
