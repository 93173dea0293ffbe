/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * A loop with nothing to do sleeps.  With spin_ns = 100 us, a loop driven
 * by evpl_continue for 1 s and woken only rarely must use almost no CPU
 * (< 100 ms of process CPU time per second):
 *   A. woken by a 250 ms periodic timer;
 *   B. the same with a registered poll that reports no activity (poll mode
 *      is entered after each wakeup and left after spin_ns);
 *   C. woken by a doorbell rung from another thread every 200 ms.
 * Process CPU time includes the ringing thread (negligible).
 */
#include "t_loop.h"

#define MS 1000000ull

static int timer_fires;

static void
on_timer(struct evpl *evpl, struct evpl_timer *t)
{
    timer_fires++;
} /* on_timer */

static atomic_int db_calls;
static atomic_int ringing;

static void
on_db(struct evpl *evpl, struct evpl_doorbell *db)
{
    atomic_fetch_add(&db_calls, 1);
} /* on_db */

static void *
ringer(void *arg)
{
    while (atomic_load(&ringing)) {
        t_sleep_ms(200);
        evpl_ring_doorbell(arg);
    }
    return NULL;
} /* ringer */

static int polls;

static void
idle_poll(struct evpl *evpl, void *p)
{
    polls++;
} /* idle_poll */

/* Drive the loop for 1 s of wall time; return CPU ns used. */
static uint64_t
drive_1s(struct evpl *evpl, int *passes)
{
    uint64_t cpu0 = t_cpu_ns();
    uint64_t end = t_now_ns() + 1000 * MS;

    *passes = 0;
    while (t_now_ns() < end) {
        evpl_continue(evpl);
        (*passes)++;
    }
    return t_cpu_ns() - cpu0;
} /* drive_1s */

int
main(void)
{
    struct evpl_global_config *cfg = t_global_config();
    struct evpl *evpl;
    struct evpl_timer timer;
    struct evpl_doorbell db;
    struct evpl_poll *poll;
    pthread_t tid;
    uint64_t cpu;
    int passes;

    alarm(30);
    evpl_global_config_set_spin_ns(cfg, 100000); /* 100 us */
    evpl_init(cfg);
    evpl = evpl_create(NULL); /* defaults: poll_mode = 1, wait_ms = -1 */

    /* A: periodic timer only */
    memset(&timer, 0, sizeof(timer));
    evpl_add_timer(evpl, &timer, on_timer, 250000);
    cpu = drive_1s(evpl, &passes);
    fprintf(stderr, "A: cpu %" PRIu64 " us, %d passes, %d timer fires\n", cpu / 1000, passes,
            timer_fires);
    T_GE(timer_fires, 2); /* the loop did run */
    T_LT(cpu, 100 * MS);

    /* B: plus a poll that never reports activity */
    poll = evpl_add_poll(evpl, NULL, NULL, idle_poll, NULL);
    cpu = drive_1s(evpl, &passes);
    fprintf(stderr, "B: cpu %" PRIu64 " us, %d passes, %d polls\n", cpu / 1000, passes, polls);
    T_LT(cpu, 100 * MS);
    evpl_remove_poll(evpl, poll);
    evpl_remove_timer(evpl, &timer);

    /* C: a doorbell rung by another thread */
    evpl_add_doorbell(evpl, &db, on_db);
    atomic_store(&ringing, 1);
    T_EQ(pthread_create(&tid, NULL, ringer, &db), 0);
    cpu = drive_1s(evpl, &passes);
    fprintf(stderr, "C: cpu %" PRIu64 " us, %d passes, %d rings seen\n", cpu / 1000, passes,
            atomic_load(&db_calls));
    T_GE(atomic_load(&db_calls), 2);
    T_LT(cpu, 100 * MS);
    atomic_store(&ringing, 0);
    pthread_join(tid, NULL);
    /* consume a last ring, if any, before removing */
    evpl_remove_doorbell(evpl, &db);

    evpl_destroy(evpl);
    return 0;
} /* main */
