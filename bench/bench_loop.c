/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * bench-loop: micro-benchmarks of the loop services.
 *   - timer add + remove with N timers armed (heap depth matters)
 *   - timer fire (one-shot add, then fired by evpl_continue)
 *   - deferral arm + run
 *   - cross-thread doorbell round trip (ring -> other loop -> ring back),
 *     with both loops allowed to busy-poll, and with poll mode off (sleeping)
 * Prints ns per operation.  Not a test: numbers only.
 */
#include <evpl/evpl.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
} /* now_ns */

static void
noop_timer(struct evpl *evpl, struct evpl_timer *t)
{
} /* noop_timer */

static void
bench_timers(struct evpl *evpl, int armed)
{
    struct evpl_timer *bg = calloc((size_t) armed + 1, sizeof(*bg));
    struct evpl_timer t;
    const int iters = 2000000;
    uint64_t t0, t1;

    srand(1);
    for (int i = 0; i < armed; i++) {
        evpl_add_oneshot_timer(evpl, &bg[i], noop_timer, 10000000 + (uint64_t) (rand() % 1000000));
    }
    memset(&t, 0, sizeof(t));
    t0 = now_ns();
    for (int i = 0; i < iters; i++) {
        evpl_add_oneshot_timer(evpl, &t, noop_timer, 5000000 + (uint64_t) (i & 1023));
        evpl_remove_timer(evpl, &t);
    }
    t1 = now_ns();
    printf("timer add+remove, %7d armed:   %6.1f ns/pair\n", armed, (double) (t1 - t0) / iters);
    for (int i = 0; i < armed; i++) {
        evpl_remove_timer(evpl, &bg[i]);
    }
    free(bg);
} /* bench_timers */

static int deferral_runs;

static void
deferral_cb(struct evpl *evpl, void *arg)
{
    deferral_runs++;
} /* deferral_cb */

static void
bench_deferral(struct evpl *evpl)
{
    struct evpl_deferral d;
    const int iters = 1000000;
    uint64_t t0, t1;

    evpl_deferral_init(&d, deferral_cb, NULL);
    t0 = now_ns();
    for (int i = 0; i < iters; i++) {
        evpl_defer(evpl, &d);
        evpl_continue(evpl);
    }
    t1 = now_ns();
    printf("deferral arm + evpl_continue pass:    %6.1f ns/pass (%d runs)\n",
           (double) (t1 - t0) / iters, deferral_runs);
} /* bench_deferral */

/* ---- doorbell ping-pong between two loop threads ---- */

struct side {
    struct evpl_doorbell bell;
    struct side *peer;
    _Atomic uint64_t count;
};

static struct side sides[2];
static uint64_t target;
static _Atomic int done;

static void
ping(struct evpl *evpl, struct evpl_doorbell *bell)
{
    struct side *s = (struct side *) bell;
    uint64_t c = atomic_fetch_add(&s->count, 1) + 1;

    if (c >= target) {
        atomic_store(&done, 1);
        return;
    }
    evpl_ring_doorbell(&s->peer->bell);
} /* ping */

static void *
side_init(struct evpl *evpl, void *arg)
{
    evpl_add_doorbell(evpl, &((struct side *) arg)->bell, ping);
    return arg;
} /* side_init */

static void
side_fini(struct evpl *evpl, void *arg)
{
    evpl_remove_doorbell(evpl, &((struct side *) arg)->bell);
} /* side_fini */

static void
bench_doorbell(int poll_mode, uint64_t rounds, const char *label)
{
    struct evpl_thread_config *cfg = evpl_thread_config_init();
    struct evpl_thread *th[2];
    uint64_t t0, t1;

    evpl_thread_config_set_poll_mode(cfg, poll_mode);
    memset(sides, 0, sizeof(sides));
    sides[0].peer = &sides[1];
    sides[1].peer = &sides[0];
    target = rounds;
    atomic_store(&done, 0);
    for (int i = 0; i < 2; i++) {
        th[i] = evpl_thread_create(cfg, side_init, side_fini, &sides[i]);
    }
    t0 = now_ns();
    evpl_ring_doorbell(&sides[0].bell);
    while (!atomic_load(&done)) {
        struct timespec ts = {0, 1000000};

        nanosleep(&ts, NULL);
    }
    t1 = now_ns();
    for (int i = 0; i < 2; i++) {
        evpl_thread_destroy(th[i]);
    }
    evpl_thread_config_release(cfg);
    /* a round trip is two rings */
    printf("doorbell round trip, %-18s %6.0f ns/round trip (%llu rings)\n", label,
           (double) (t1 - t0) /
               ((double) (atomic_load(&sides[0].count) + atomic_load(&sides[1].count)) / 2.0),
           (unsigned long long) (atomic_load(&sides[0].count) + atomic_load(&sides[1].count)));
} /* bench_doorbell */

int
main(void)
{
    struct evpl *evpl = evpl_create(NULL);

    bench_timers(evpl, 0);
    bench_timers(evpl, 1000);
    bench_timers(evpl, 100000);
    bench_deferral(evpl);
    evpl_destroy(evpl);

    bench_doorbell(1, 400000, "poll mode on:");
    bench_doorbell(0, 100000, "poll mode off:");
    return 0;
} /* main */
