/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Timers on the real clock (loop.md §2): statement 7 (with wait_ms bounded
 * to 1 a timer never fires early and a periodic timer fires at most once
 * per pass), statements 1/3/5 with real sleeping (deadline -> wait timeout
 * conversion, truncation to whole milliseconds), and a sub-millisecond
 * timer (0 ms wait: the loop spins until it is due, never early).
 * Times are taken with clock_gettime(CLOCK_MONOTONIC), with no tolerance:
 * "never early" holds on the system's clock (a TSC-based loop clock, each
 * thread steering its own, used to fire timers up to ~35 us early by it).
 * Upper bounds are generous.
 */
#include "t_loop.h"

#define US     1000ull
#define MS     1000000ull
#define TOL_NS 0ull

struct rt {
    struct evpl_timer t;
    uint64_t added_at;
    uint64_t delay_ns;
    uint64_t last_fire;
    int fires;
    int fires_this_pass;
    int max_per_pass;
    int id;
};

static long early_fires;

/* Armed by every timer callback: the pass that fired a timer must not then
 * sleep (wait_ms = -1 with nothing else due would never return). */
static struct evpl_deferral kick;

static void
nop(struct evpl *evpl, void *p)
{
} /* nop */
static int order[64], norder;

static void
on_rt(struct evpl *evpl, struct evpl_timer *t)
{
    struct rt *r = t_container_of(t, struct rt, t);
    uint64_t now = t_now_ns();
    uint64_t due = r->fires == 0 ? r->added_at + r->delay_ns : r->last_fire + r->delay_ns;

    if (now + TOL_NS < due) {
        early_fires++;
        fprintf(stderr, "timer %d fired %" PRIu64 " ns early\n", r->id, due - now);
    }
    r->fires++;
    r->fires_this_pass++;
    if (r->fires_this_pass > r->max_per_pass) {
        r->max_per_pass = r->fires_this_pass;
    }
    /* periodic: re-armed after the callback, so the next deadline is at
     * least one interval after this moment */
    r->last_fire = t_now_ns();
    if (norder < 64) {
        order[norder++] = r->id;
    }
    evpl_defer(evpl, &kick);
} /* on_rt */

static struct rt *pass_watch[64];
static int npass_watch;

static void
reset_per_pass(struct evpl *evpl, void *p)
{
    for (int i = 0; i < npass_watch; i++) {
        pass_watch[i]->fires_this_pass = 0;
    }
} /* reset_per_pass */

static void
add_oneshot(struct evpl *evpl, struct rt *r, int id, uint64_t delay_us)
{
    memset(r, 0, sizeof(*r));
    r->id = id;
    r->delay_ns = delay_us * US;
    r->added_at = t_now_ns();
    evpl_add_oneshot_timer(evpl, &r->t, on_rt, delay_us);
} /* add_oneshot */

static void
add_periodic(struct evpl *evpl, struct rt *r, int id, uint64_t interval_us)
{
    memset(r, 0, sizeof(*r));
    r->id = id;
    r->delay_ns = interval_us * US;
    r->added_at = t_now_ns();
    evpl_add_timer(evpl, &r->t, on_rt, interval_us);
} /* add_periodic */

static void
run_for(struct evpl *evpl, uint64_t ns)
{
    uint64_t end = t_now_ns() + ns;

    while (t_now_ns() < end) {
        evpl_continue(evpl);
    }
} /* run_for */

/* statement 7: wait_ms = 1 */
static void
bounded_wait(void)
{
    struct evpl *evpl = t_loop_create(0, 1);
    struct evpl_loop_hooks hooks = {.iteration_end = reset_per_pass};
    struct rt one[20], fast, p2, p3;
    int i;

    evpl_set_loop_hooks(evpl, &hooks);
    for (i = 0; i < 20; i++) {
        add_oneshot(evpl, &one[i], i, 1500 + i * 2300); /* 1.5 .. 45.2 ms */
    }
    /* 1 us interval: due again immediately, still at most once per pass */
    add_periodic(evpl, &fast, 100, 1);
    add_periodic(evpl, &p2, 101, 2000);
    add_periodic(evpl, &p3, 102, 3700);
    npass_watch = 3;
    pass_watch[0] = &fast;
    pass_watch[1] = &p2;
    pass_watch[2] = &p3;

    run_for(evpl, 60 * MS);
    T_EQ(early_fires, 0); /* loop 7 */
    for (i = 0; i < 20; i++) {
        T_EQ(one[i].fires, 1); /* loop 1 */
    }
    T_EQ(fast.max_per_pass, 1); /* loop 7 */
    T_EQ(p2.max_per_pass, 1);   /* loop 7 */
    T_EQ(p3.max_per_pass, 1);   /* loop 7 */
    T_GE(fast.fires, 10);
    T_GE(p2.fires, 5);  /* loop 3 */
    T_LE(p2.fires, 30); /* <= 60 ms / 2 ms: never early */
    T_GE(p3.fires, 3);  /* loop 3 */
    T_LE(p3.fires, 17);
    evpl_remove_timer(evpl, &fast.t);
    evpl_remove_timer(evpl, &p2.t);
    evpl_remove_timer(evpl, &p3.t);
    npass_watch = 0;
    i = p2.fires;
    run_for(evpl, 20 * MS);
    T_EQ(p2.fires, i); /* loop 3 */
    evpl_set_loop_hooks(evpl, NULL);
    evpl_destroy(evpl);
} /* bounded_wait */

/* unbounded wait: the loop sleeps until the next deadline */
static void
sleeping_loop(void)
{
    struct evpl *evpl = t_loop_create(0, -1);
    struct rt a, b, sub, per;
    uint64_t t0;
    int passes = 0;

    /* statement 5 on the real clock: added later-first */
    norder = 0;
    add_oneshot(evpl, &b, 2, 40000);
    add_oneshot(evpl, &a, 1, 25000);
    while (b.fires == 0) {
        evpl_continue(evpl);
        passes++;
    }
    T_EQ(norder, 2);
    T_EQ(order[0], 1);    /* loop 5 */
    T_EQ(order[1], 2);    /* loop 5 */
    T_EQ(early_fires, 0); /* loop 1 */
    /* it slept rather than spun for 40 ms (generous: the last < 1 ms
     * before each deadline may spin with a 0 ms wait) */
    T_LT(passes, 15000);

    /* sub-millisecond one-shot: the 0 ms wait spins until due */
    add_oneshot(evpl, &sub, 3, 700);
    t0 = t_now_ns();
    while (sub.fires == 0) {
        evpl_continue(evpl);
        T_LT(t_now_ns() - t0, 1000 * MS);
    }
    T_EQ(early_fires, 0); /* loop 1 */

    /* odd deadlines (x.9 ms): ms truncation of the wait must not fire early */
    add_periodic(evpl, &per, 4, 2900);
    t0 = t_now_ns();
    while (per.fires < 10) {
        evpl_continue(evpl);
        T_LT(t_now_ns() - t0, 2000 * MS);
    }
    T_EQ(early_fires, 0); /* loop 1, 3 */
    evpl_remove_timer(evpl, &per.t);
    evpl_destroy(evpl);
} /* sleeping_loop */

/* many one-shots with pseudo-random delays on a sleeping loop */
static void
random_oneshots(void)
{
    struct evpl *evpl = t_loop_create(1, -1);
    struct rt *r = calloc(1000, sizeof(*r));
    uint64_t t0;
    int i, done;

    srand(4242);
    for (i = 0; i < 1000; i++) {
        add_oneshot(evpl, &r[i], 1000 + i, 100 + rand() % 100000);
    }
    t0 = t_now_ns();
    do {
        evpl_continue(evpl);
        T_LT(t_now_ns() - t0, 3000 * MS);
        done = 1;
        for (i = 0; i < 1000; i++) {
            if (r[i].fires == 0) {
                done = 0;
                break;
            }
        }
    } while (!done);
    for (i = 0; i < 1000; i++) {
        T_EQ(r[i].fires, 1); /* loop 1 */
    }
    T_EQ(early_fires, 0); /* loop 1 */
    free(r);
    evpl_destroy(evpl);
} /* random_oneshots */

int
main(void)
{
    alarm(30);
    evpl_init(t_global_config());
    memset(&kick, 0, sizeof(kick));
    evpl_deferral_init(&kick, nop, NULL);
    bounded_wait();
    sleeping_loop();
    random_oneshots();
    return 0;
} /* main */
