/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * evpl-demo: what `make run` shows until the networking layer lands.
 *
 * Two loop threads play ping-pong with doorbells (each ring wakes the
 * other thread, which rings back), while the main thread runs its own loop
 * with a periodic timer that reports progress and a one-shot timer that
 * ends the demo.
 */
#include <evpl/evpl.h>

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct player {
    struct evpl_doorbell bell; /* rung by the other player */
    struct player *peer;
    _Atomic uint64_t hits;
    _Atomic int ready;
    struct evpl_doorbell *peer_bell;
};

static struct player players[2];
static _Atomic int playing = 1;
static uint64_t rounds_target;

static _Atomic int inflight; /* rings being made right now */

static void
on_ring(struct evpl *evpl, struct evpl_doorbell *bell)
{
    struct player *me = (struct player *) bell; /* bell is the first member */

    atomic_fetch_add(&me->hits, 1);
    /* announce the ring before checking: main stops the game, then waits
     * for inflight to drain, so no ring reaches a doorbell being removed */
    atomic_fetch_add(&inflight, 1);
    if (atomic_load(&playing) && atomic_load(&me->hits) < rounds_target) {
        evpl_ring_doorbell(&me->peer->bell);
    }
    atomic_fetch_sub(&inflight, 1);
} /* on_ring */

static void *
player_init(struct evpl *evpl, void *arg)
{
    struct player *me = arg;

    /* a doorbell belongs to the loop of the thread that adds it */
    evpl_add_doorbell(evpl, &me->bell, on_ring);
    atomic_store(&me->ready, 1);
    return me;
} /* player_init */

static void
player_shutdown(struct evpl *evpl, void *arg)
{
    struct player *me = arg;

    evpl_remove_doorbell(evpl, &me->bell);
} /* player_shutdown */

struct report {
    struct evpl_timer tick;
    struct evpl_timer end;
    int ticks;
    uint64_t start_ns;
};

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
} /* now_ns */

static void
on_tick(struct evpl *evpl, struct evpl_timer *timer)
{
    struct report *r = (struct report *) timer; /* tick is the first member */

    r->ticks++;
    printf("  tick %2d: %llu + %llu doorbell rings delivered\n", r->ticks,
           (unsigned long long) atomic_load(&players[0].hits),
           (unsigned long long) atomic_load(&players[1].hits));
} /* on_tick */

static void
on_end(struct evpl *evpl, struct evpl_timer *timer)
{
    evpl_stop(evpl);
} /* on_end */

int
main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    uint64_t duration = quick ? 300000 : 2000000; /* us */
    struct evpl_thread *threads[2];
    struct report report;
    struct evpl *evpl;
    uint64_t total, elapsed;

    rounds_target = UINT64_MAX;
    players[0].peer = &players[1];
    players[1].peer = &players[0];

    printf("evpl %s demo: two loop threads ping-pong through doorbells for %.1f s\n",
           EVPL_VERSION_STRING, (double) duration / 1e6);

    for (int i = 0; i < 2; i++) {
        threads[i] = evpl_thread_create(NULL, player_init, player_shutdown, &players[i]);
    }

    evpl = evpl_create(NULL);
    memset(&report, 0, sizeof(report));
    evpl_add_timer(evpl, &report.tick, on_tick, quick ? 100000 : 250000);
    evpl_add_oneshot_timer(evpl, &report.end, on_end, duration);

    report.start_ns = now_ns();
    evpl_ring_doorbell(&players[0].bell); /* serve */
    evpl_run(evpl);
    atomic_store(&playing, 0);
    while (atomic_load(&inflight)) {
        /* a ring that saw playing == 1 is finishing */
    }
    elapsed = now_ns() - report.start_ns;

    evpl_remove_timer(evpl, &report.tick);
    evpl_destroy(evpl);
    for (int i = 0; i < 2; i++) {
        evpl_thread_destroy(threads[i]);
    }

    total = atomic_load(&players[0].hits) + atomic_load(&players[1].hits);
    printf("done: %d timer ticks, %llu cross-thread doorbell rings in %.3f s, "
           "%.0f ns per one-way wakeup\n",
           report.ticks, (unsigned long long) total, (double) elapsed / 1e9,
           total ? (double) elapsed / (double) total : 0.0);
    /* a demo that moved nothing is a failure */
    return total > 0 && report.ticks > 0 ? 0 : 1;
} /* main */
