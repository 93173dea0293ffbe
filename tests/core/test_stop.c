/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * evpl_run / evpl_stop (core §5): statement 9 (a stop from another thread
 * makes a blocked evpl_run return within one pass), statement 10 (after a
 * stop evpl_run returns immediately), plus stop from a callback, a second
 * stop being a no-op (our header) and evpl_continue still working.
 */
#include "t_loop.h"

#include <unistd.h>

#include <sched.h>

#include <fcntl.h>

#define MS 1000000ull

/* ---- statement 9 -------------------------------------------------------- */

static struct evpl *shared_loop; /* published before the thread starts */
static atomic_int loop_ready;
static atomic_int stop_requested;
static atomic_int passes_after_stop;
static atomic_int run_returned;
static atomic_ullong run_returned_at;

static void
count_late_pass(struct evpl *evpl, void *p)
{
    if (atomic_load(&stop_requested)) {
        atomic_fetch_add(&passes_after_stop, 1);
    }
} /* count_late_pass */

static void *
loop_thread(void *arg)
{
    struct evpl_loop_hooks h = {.iteration_end = count_late_pass};
    struct evpl *evpl = t_loop_create(1, -1); /* wait_ms = -1: unbounded */

    evpl_set_loop_hooks(evpl, &h);
    shared_loop = evpl;
    atomic_store(&loop_ready, 1);
    evpl_run(evpl);
    atomic_store(&run_returned_at, t_now_ns());
    atomic_store(&run_returned, 1);
    /* statement 10 on the same loop: a later evpl_run returns immediately */
    evpl_run(evpl);
    evpl_destroy(evpl);
    return NULL;
} /* loop_thread */

static void
stop_from_other_thread(void)
{
    pthread_t tid;
    uint64_t t0;

    T_EQ(pthread_create(&tid, NULL, loop_thread, NULL), 0);
    while (!atomic_load(&loop_ready)) {
        t_sleep_ms(1);
    }
    /* long enough for the spin window to end: the loop is now asleep */
    t_sleep_ms(300);
    T_EQ(atomic_load(&run_returned), 0);
    atomic_store(&stop_requested, 1);
    t0 = t_now_ns();
    evpl_stop(shared_loop); /* core 9 */
    while (!atomic_load(&run_returned)) {
        if (t_now_ns() - t0 > 3000 * MS) {
            T_FAIL("evpl_run did not return after evpl_stop from another thread");
        }
        t_sleep_ms(1);
    }
    pthread_join(tid, NULL);
    /* woken promptly, and within one pass */
    T_LT(atomic_load(&run_returned_at) - t0, 1000 * MS); /* core 9 */
    T_LE(atomic_load(&passes_after_stop), 1);            /* core 9 */
} /* stop_from_other_thread */

/* ---- stop from the loop's own callback --------------------------------- */

static int deferral_runs;
static int passes;

static void
stop_in_deferral(struct evpl *evpl, void *p)
{
    deferral_runs++;
    evpl_stop(evpl);
    evpl_stop(evpl); /* a second stop is a no-op (our header) */
} /* stop_in_deferral */

static void
count_pass(struct evpl *evpl, void *p)
{
    passes++;
} /* count_pass */

static void
on_deferral(struct evpl *evpl, void *p)
{
    deferral_runs++;
} /* on_deferral */

static int timer_fired;

static void
on_timer(struct evpl *evpl, struct evpl_timer *t)
{
    timer_fired++;
    evpl_stop(evpl);
} /* on_timer */

static void
stop_on_own_thread(void)
{
    struct evpl_loop_hooks h = {.iteration_end = count_pass};
    struct evpl *evpl;
    struct evpl_deferral d;
    struct evpl_timer t;
    uint64_t t0;

    /* stop from a callback: evpl_run returns after that pass */
    evpl = t_loop_create(1, -1);
    evpl_set_loop_hooks(evpl, &h);
    memset(&d, 0, sizeof(d));
    evpl_deferral_init(&d, stop_in_deferral, NULL);
    evpl_defer(evpl, &d);
    passes = 0;
    evpl_run(evpl);
    T_EQ(deferral_runs, 1);
    T_EQ(passes, 1);

    /* statement 10: after the stop evpl_run returns immediately, without
     * blocking (wait_ms = -1 and nothing to do would otherwise hang) */
    t0 = t_now_ns();
    evpl_run(evpl);                   /* core 10 */
    evpl_run(evpl);                   /* core 10 */
    T_LT(t_now_ns() - t0, 1000 * MS); /* core 10 */
    T_LE(passes, 3);                  /* core 10 */

    /* evpl_continue keeps working after a stop */
    evpl_deferral_init(&d, on_deferral, NULL);
    evpl_defer(evpl, &d);
    evpl_continue(evpl);
    T_EQ(deferral_runs, 2);
    evpl_stop(evpl); /* still a no-op */
    evpl_destroy(evpl);

    /* stop from a timer callback while evpl_run sleeps between timers */
    evpl = t_loop_create(1, -1);
    memset(&t, 0, sizeof(t));
    evpl_add_oneshot_timer(evpl, &t, on_timer, 20000);
    t0 = t_now_ns();
    evpl_run(evpl);
    T_EQ(timer_fired, 1);
    T_GE(t_now_ns() - t0, 19 * MS);
    evpl_destroy(evpl);

    /* statement 10 for a loop stopped before it ever ran */
    evpl = t_loop_create(0, -1);
    evpl_stop(evpl);
    t0 = t_now_ns();
    evpl_run(evpl);                   /* core 10 */
    T_LT(t_now_ns() - t0, 1000 * MS); /* core 10 */
    evpl_destroy(evpl);
} /* stop_on_own_thread */

/* ---- a stop racing the owner's destroy -------------------------------- */

/* The usual shutdown: another thread calls evpl_stop and joins; the owner
 * returns from evpl_run and destroys the loop at once.  The stopper may
 * still be ringing the wake doorbell then: its eventfd write used to land
 * in whatever file took the closed descriptor's number (16 of 3000 runs),
 * and TSan saw the write race the close (helper-80).  Here the owner opens
 * a pipe right after destroying; nothing may ever arrive in it. */
static _Atomic(struct evpl *) race_loop;
static atomic_int race_stray;

static void *
race_owner(void *arg)
{
    struct evpl *evpl = t_loop_create(0, 0); /* passes that do not block */
    int fds[2];
    uint64_t v;

    (void) arg;
    atomic_store(&race_loop, evpl);
    evpl_run(evpl);
    evpl_destroy(evpl);
    T_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    if (read(fds[0], &v, sizeof(v)) > 0) {
        atomic_fetch_add(&race_stray, 1);
    }
    close(fds[0]);
    close(fds[1]);
    return NULL;
} /* race_owner */

static void
stop_racing_destroy(void)
{
    for (int i = 0; i < 2000; i++) {
        pthread_t t;
        struct evpl *evpl;

        atomic_store(&race_loop, NULL);
        T_EQ(pthread_create(&t, NULL, race_owner, NULL), 0);
        while ((evpl = atomic_load(&race_loop)) == NULL) {
            sched_yield();
        }
        evpl_stop(evpl);
        T_EQ(pthread_join(t, NULL), 0);
    }
    T_EQ(atomic_load(&race_stray), 0);
} /* stop_racing_destroy */

int
main(void)
{
    alarm(30);
    evpl_init(t_global_config());
    stop_on_own_thread();
    stop_from_other_thread();
    stop_racing_destroy();
    return 0;
} /* main */
