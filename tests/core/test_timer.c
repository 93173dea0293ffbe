/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Timers under the virtual clock (loop.md §2, statements 1-5): exact,
 * deterministic deadlines.  The loop uses poll_mode = 0 so that every
 * evpl_continue is a full pass (timers only fire on full passes).
 */
#include "t_loop.h"

#define US 1000ull
#define MS 1000000ull

struct rec {
    struct evpl_timer t;
    int id;
    int fires;
    uint64_t fired_at[64];
    int rearm_us; /* one-shot: re-add with this delay once */
    int free_me;  /* one-shot: free the storage */
};

static int fire_order[256];
static int nfire;

static void
on_fire(struct evpl *evpl, struct evpl_timer *t)
{
    struct rec *r = t_container_of(t, struct rec, t);

    if (r->fires < 64) {
        r->fired_at[r->fires] = evpl_virtual_clock_now();
    }
    r->fires++;
    if (nfire < 256) {
        fire_order[nfire++] = r->id;
    }
    if (r->rearm_us) {
        int d = r->rearm_us;

        r->rearm_us = 0;
        evpl_add_oneshot_timer(evpl, t, on_fire, d);
    }
} /* on_fire */

static int freed_fires;

static void
on_fire_free(struct evpl *evpl, struct evpl_timer *t)
{
    freed_fires++;
    memset(t, 0x6b, sizeof(*t));
    free(t);
} /* on_fire_free */

static void
on_fire_to_periodic(struct evpl *evpl, struct evpl_timer *t)
{
    struct rec *r = t_container_of(t, struct rec, t);

    on_fire(evpl, t);
    if (r->fires == 1) {
        evpl_add_timer(evpl, t, on_fire_to_periodic, 3000);
    }
} /* on_fire_to_periodic */

static struct rec *
rec_new(int id)
{
    struct rec *r = calloc(1, sizeof(*r));

    r->id = id;
    return r;
} /* rec_new */

/* Advance the virtual clock by ns and run one (full) pass. */
static void
step(struct evpl *evpl, uint64_t ns)
{
    if (ns) {
        evpl_virtual_clock_advance(ns);
    }
    evpl_continue(evpl);
} /* step */

static void
oneshot_basic(struct evpl *evpl)
{
    struct rec *r = rec_new(1);
    uint64_t t0 = evpl_virtual_clock_now();
    int i;

    /* statement 1: D = 10 ms never fires early, exactly once */
    evpl_add_oneshot_timer(evpl, &r->t, on_fire, 10000);
    T_EQ(r->t.oneshot, 1);
    T_EQ_U(r->t.interval, 10000);
    T_EQ_U(r->t.deadline, t0 + 10 * MS); /* our header: loop clock in ns */
    step(evpl, 0);
    for (i = 0; i < 99; i++) {
        step(evpl, 100 * US); /* up to 9.9 ms */
    }
    step(evpl, 99 * US);    /* 9.999 ms */
    T_EQ(r->fires, 0);      /* loop 1 */
    step(evpl, 1 * US - 1); /* 1 ns short */
    T_EQ(r->fires, 0);      /* loop 1 */
    step(evpl, 1);          /* exactly D */
    T_EQ(r->fires, 1);      /* loop 1 */
    T_EQ_U(r->fired_at[0], t0 + 10 * MS);
    for (i = 0; i < 50; i++) {
        step(evpl, 1 * MS);
    }
    T_EQ(r->fires, 1); /* loop 1 */
    free(r);
} /* oneshot_basic */

static void
oneshot_free_and_readd(struct evpl *evpl)
{
    struct evpl_timer *t = calloc(1, sizeof(*t));
    struct rec *r = rec_new(2);
    uint64_t t0;
    int i;

    /* statement 2: the callback frees its timer (ASan checks the rest) */
    evpl_add_oneshot_timer(evpl, t, on_fire_free, 1000);
    step(evpl, 1 * MS);
    T_EQ(freed_fires, 1); /* loop 2 */
    for (i = 0; i < 10; i++) {
        step(evpl, 1 * MS);
    }
    T_EQ(freed_fires, 1);

    /* statement 2: re-added from its own callback with a new delay; fires
     * again after the new delay (measured from the first firing), not before */
    r->rearm_us = 5000;
    t0 = evpl_virtual_clock_now();
    evpl_add_oneshot_timer(evpl, &r->t, on_fire, 2000);
    step(evpl, 2 * MS);
    T_EQ(r->fires, 1);
    T_EQ_U(r->fired_at[0], t0 + 2 * MS);
    step(evpl, 4999 * US);
    T_EQ(r->fires, 1); /* loop 2 */
    step(evpl, 1 * US);
    T_EQ(r->fires, 2); /* loop 2 */
    T_EQ_U(r->fired_at[1], t0 + 7 * MS);
    T_EQ(r->t.oneshot, 1);
    for (i = 0; i < 20; i++) {
        step(evpl, 1 * MS);
    }
    T_EQ(r->fires, 2);

    free(r);

    /* statement 2: re-added as a periodic timer from its own callback */
    r = rec_new(4);
    t0 = evpl_virtual_clock_now();
    evpl_add_oneshot_timer(evpl, &r->t, on_fire_to_periodic, 1000);
    for (i = 0; i < 10; i++) {
        step(evpl, 1 * MS);
    }
    /* fired at 1 ms (one-shot), then every 3 ms: 4, 7, 10 */
    T_EQ(r->fires, 4); /* loop 2 */
    T_EQ_U(r->fired_at[3], t0 + 10 * MS);
    T_EQ(r->t.oneshot, 0);
    evpl_remove_timer(evpl, &r->t);
    free(r);
} /* oneshot_free_and_readd */

static void
periodic_basic(struct evpl *evpl)
{
    struct rec *r = rec_new(3);
    uint64_t t0 = evpl_virtual_clock_now();
    int i;

    /* statement 3: 10 ms periodic: fires at 10, 20, 30 ... ms */
    evpl_add_timer(evpl, &r->t, on_fire, 10000);
    T_EQ(r->t.oneshot, 0);
    T_EQ_U(r->t.interval, 10000);
    for (i = 0; i < 100; i++) {
        step(evpl, 1 * MS);
    }
    T_EQ(r->fires, 10); /* loop 3 */
    for (i = 0; i < 10; i++) {
        T_EQ_U(r->fired_at[i], t0 + (uint64_t) (i + 1) * 10 * MS); /* loop 3 */
    }
    /* no catch-up after a long gap: one firing, then interval from then */
    step(evpl, 35 * MS);
    T_EQ(r->fires, 11);
    step(evpl, 9 * MS);
    T_EQ(r->fires, 11);
    step(evpl, 1 * MS);
    T_EQ(r->fires, 12);
    T_EQ_U(r->fired_at[11], r->fired_at[10] + 10 * MS);
    /* removed: never fires again */
    evpl_remove_timer(evpl, &r->t); /* loop 3 */
    for (i = 0; i < 100; i++) {
        step(evpl, 1 * MS);
    }
    T_EQ(r->fires, 12); /* loop 3 */
    free(r);
} /* periodic_basic */

static void
remove_noops(struct evpl *evpl)
{
    struct rec *fired = rec_new(10), *removed = rec_new(11), *zero = rec_new(12);
    struct rec *s[3];
    int i;

    for (i = 0; i < 3; i++) {
        s[i] = rec_new(20 + i);
    }
    /* a fired one-shot */
    evpl_add_oneshot_timer(evpl, &fired->t, on_fire, 1000);
    step(evpl, 1 * MS);
    T_EQ(fired->fires, 1);
    /* sentinels armed afterwards (they may reuse the fired timer's slot) */
    evpl_add_oneshot_timer(evpl, &s[0]->t, on_fire, 5000);
    evpl_add_timer(evpl, &s[1]->t, on_fire, 3000);
    evpl_add_oneshot_timer(evpl, &s[2]->t, on_fire, 7000);
    /* an armed-then-removed one */
    evpl_add_oneshot_timer(evpl, &removed->t, on_fire, 2000);
    evpl_remove_timer(evpl, &removed->t);

    /* statement 4: all of these are no-ops */
    evpl_remove_timer(evpl, &fired->t);   /* loop 4 */
    evpl_remove_timer(evpl, &fired->t);   /* loop 4 */
    evpl_remove_timer(evpl, &removed->t); /* loop 4 */
    evpl_remove_timer(evpl, &zero->t);    /* loop 4 */

    for (i = 0; i < 10; i++) {
        step(evpl, 1 * MS);
    }
    /* the sentinels are unaffected */
    T_EQ(s[0]->fires, 1); /* loop 4 */
    T_EQ(s[1]->fires, 3); /* loop 4 */
    T_EQ(s[2]->fires, 1); /* loop 4 */
    T_EQ(removed->fires, 0);
    T_EQ(fired->fires, 1);
    T_EQ(zero->fires, 0);
    evpl_remove_timer(evpl, &s[1]->t);
    for (i = 0; i < 3; i++) {
        free(s[i]);
    }
    free(fired);
    free(removed);
    free(zero);
} /* remove_noops */

static void
ordering(struct evpl *evpl)
{
    struct rec *late = rec_new(30), *early = rec_new(31);
    struct rec *many[100];
    uint64_t prev, deadline[100], t0;
    int i;

    /* statement 5: added later-first, both due in the same pass: the
     * earlier deadline fires first */
    nfire = 0;
    evpl_add_oneshot_timer(evpl, &late->t, on_fire, 30000);
    evpl_add_oneshot_timer(evpl, &early->t, on_fire, 20000);
    step(evpl, 40 * MS);
    T_EQ(nfire, 2);
    T_EQ(fire_order[0], 31); /* loop 5 */
    T_EQ(fire_order[1], 30); /* loop 5 */
    /* and in added-earlier-first order too */
    nfire = 0;
    late->fires = early->fires = 0;
    evpl_add_oneshot_timer(evpl, &early->t, on_fire, 20000);
    evpl_add_oneshot_timer(evpl, &late->t, on_fire, 30000);
    step(evpl, 40 * MS);
    T_EQ(nfire, 2);
    T_EQ(fire_order[0], 31); /* loop 5 */
    T_EQ(fire_order[1], 30); /* loop 5 */
    free(late);
    free(early);

    /* 100 timers with pseudo-random deadlines all due in one pass: all fire
     * in that pass, in non-decreasing deadline order */
    nfire = 0;
    srand(12345);
    t0 = evpl_virtual_clock_now();
    for (i = 0; i < 100; i++) {
        int d = 1 + rand() % 50000;

        many[i] = rec_new(100 + i);
        deadline[i] = t0 + (uint64_t) d * US;
        evpl_add_oneshot_timer(evpl, &many[i]->t, on_fire, d);
    }
    step(evpl, 50 * MS);
    T_EQ(nfire, 100);
    prev = 0;
    for (i = 0; i < 100; i++) {
        int k = fire_order[i] - 100;

        T_GE(deadline[k], prev); /* loop 5 */
        prev = deadline[k];
        T_EQ(many[k]->fires, 1);
    }
    for (i = 0; i < 100; i++) {
        free(many[i]);
    }
} /* ordering */

static void
more_than_256(struct evpl *evpl)
{
    const int N = 2000;
    struct rec *r = calloc(N, sizeof(*r));
    uint64_t t0 = evpl_virtual_clock_now();
    int i;

    /* no fixed capacity (DESIGN §9.4/9.7): 2000 armed timers */
    for (i = 0; i < N; i++) {
        r[i].id = 1000 + i;
        evpl_add_oneshot_timer(evpl, &r[i].t, on_fire, 1000 + (i % 97) * 100);
    }
    for (i = 0; i < 12; i++) {
        step(evpl, 1 * MS);
    }
    for (i = 0; i < N; i++) {
        T_EQ(r[i].fires, 1);
        /* never early; on the first pass at or after the deadline */
        T_EQ_U(r[i].fired_at[0], t0 + (uint64_t) ((1000 + (i % 97) * 100 + 999) / 1000) * MS);
    }
    free(r);
} /* more_than_256 */

int
main(void)
{
    struct evpl_global_config *cfg = t_global_config();
    struct evpl *evpl;

    alarm(30);
    evpl_global_config_set_virtual_clock(cfg, 1);
    evpl_init(cfg);
    evpl = t_loop_create(0, -1);

    oneshot_basic(evpl);          /* loop 1 */
    oneshot_free_and_readd(evpl); /* loop 2 */
    periodic_basic(evpl);         /* loop 3 */
    remove_noops(evpl);           /* loop 4 */
    ordering(evpl);               /* loop 5 */
    more_than_256(evpl);

    evpl_destroy(evpl);
    return 0;
} /* main */
