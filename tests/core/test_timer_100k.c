/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * 100,000 timers (half one-shot, half periodic) with pseudo-random first
 * deadlines within 200 ms; exactly half of them are removed from inside
 * timer callbacks: periodic timers removing themselves (on their 1st, 2nd
 * or 3rd firing) and timers (one-shot and periodic) removing others before
 * those are due.  Checks: every firing is on the first pass at or after
 * its deadline (never early, never late), no firing after removal,
 * non-removed one-shots fire exactly once, non-removed periodic timers are
 * never dropped, removed victims never fire.  Covers loop.md statements 1,
 * 3, 6 at scale and the "no fixed capacity" rule (DESIGN §9.4, §9.7).
 * Virtual clock, poll_mode = 0 (every pass is a full pass), 100 us steps.
 */
#include "t_loop.h"

#define N       100000
#define DOOMED  50000
#define STEP_NS 100000ull    /* 100 us per pass */
#define END_NS  250000000ull /* run 250 ms */

enum { KEEP = 0, SELF_REMOVER = 1, VICTIM = 2 };

struct ent {
    struct evpl_timer t;
    uint64_t next_due;
    uint32_t d_us;
    uint32_t fires;
    int32_t first_victim;
    int32_t next_victim;
    uint8_t periodic;
    uint8_t kind;
    uint8_t self_at;
    uint8_t removed;
};

static struct ent *ents;
static uint64_t t0;
static long early, late, after_removal, double_oneshot, victim_fired_first;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(void)
{
    /* xorshift64*: deterministic across runs and platforms */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t) ((rng_state * 2685821657736338717ull) >> 32);
} /* rnd */

static void
on_timer(struct evpl *evpl, struct evpl_timer *t)
{
    struct ent *e = t_container_of(t, struct ent, t);
    uint64_t now = evpl_virtual_clock_now();
    int32_t v;

    if (e->removed) {
        after_removal++;
    }
    if (now < e->next_due) {
        early++;
    }
    if (now >= e->next_due + STEP_NS) {
        late++;
    }
    e->fires++;
    if (e->periodic) {
        /* re-armed for (time after the callback) + interval */
        e->next_due = now + (uint64_t) e->d_us * 1000;
    } else if (e->fires > 1) {
        double_oneshot++;
    }
    if (e->fires == 1) {
        for (v = e->first_victim; v >= 0; v = ents[v].next_victim) {
            if (ents[v].fires != 0) {
                victim_fired_first++;
            }
            evpl_remove_timer(evpl, &ents[v].t);
            ents[v].removed = 1;
        }
    }
    if (e->kind == SELF_REMOVER && e->fires == e->self_at) {
        evpl_remove_timer(evpl, t);
        e->removed = 1;
    }
} /* on_timer */

static int
cmp_by_delay(const void *a, const void *b)
{
    uint32_t da = ents[*(const int32_t *) a].d_us;
    uint32_t db = ents[*(const int32_t *) b].d_us;

    return da < db ? -1 : da > db;
} /* cmp_by_delay */

static void
plan(void)
{
    int32_t *perm = malloc(N * sizeof(*perm));
    int32_t *cand = malloc(N * sizeof(*cand));
    int i, doomed = 0, ncand = 0;

    for (i = 0; i < N; i++) {
        ents[i].d_us = 1000 + rnd() % 199001; /* 1 .. 200 ms */
        ents[i].periodic = rnd() & 1;
        ents[i].first_victim = -1;
        ents[i].next_victim = -1;
        perm[i] = i;
    }
    for (i = N - 1; i > 0; i--) {
        int j = rnd() % (i + 1);
        int32_t tmp = perm[i];

        perm[i] = perm[j];
        perm[j] = tmp;
    }
    /* choose exactly DOOMED timers to be removed from callbacks */
    for (i = 0; i < N && doomed < DOOMED; i++) {
        struct ent *e = &ents[perm[i]];

        if (e->periodic && (rnd() & 1)) {
            e->kind = SELF_REMOVER;
            /* must get that many firings within the run */
            e->self_at = e->d_us <= 80000 ? 1 + rnd() % 3 : 1;
            doomed++;
        } else if (e->d_us >= 20000) {
            e->kind = VICTIM;
            doomed++;
        }
    }
    T_EQ(doomed, DOOMED);

    /* every victim gets a killer (a timer that fires at least once) whose
     * first firing comes >= 1 ms before the victim's deadline */
    for (i = 0; i < N; i++) {
        if (ents[i].kind != VICTIM) {
            cand[ncand++] = i;
        }
    }
    qsort(cand, ncand, sizeof(*cand), cmp_by_delay);
    for (i = 0; i < N; i++) {
        struct ent *v = &ents[i];
        int lo = 0, hi = ncand, k;

        if (v->kind != VICTIM) {
            continue;
        }
        while (lo < hi) { /* count candidates with d <= v->d - 1 ms */
            int mid = (lo + hi) / 2;

            if (ents[cand[mid]].d_us + 1000 <= v->d_us) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        T_GT(lo, 0);
        k = cand[rnd() % lo];
        v->next_victim = ents[k].first_victim;
        ents[k].first_victim = i;
    }
    free(perm);
    free(cand);
} /* plan */

int
main(void)
{
    struct evpl_global_config *cfg = t_global_config();
    struct evpl *evpl;
    uint64_t now;
    long removed = 0, oneshot_fired = 0, periodic_alive = 0;
    int i;

    alarm(60);
    evpl_global_config_set_virtual_clock(cfg, 1);
    evpl_init(cfg);
    evpl = t_loop_create(0, -1);

    ents = calloc(N, sizeof(*ents));
    plan();

    t0 = evpl_virtual_clock_now();
    for (i = 0; i < N; i++) {
        struct ent *e = &ents[i];

        e->next_due = t0 + (uint64_t) e->d_us * 1000;
        if (e->periodic) {
            evpl_add_timer(evpl, &e->t, on_timer, e->d_us);
        } else {
            evpl_add_oneshot_timer(evpl, &e->t, on_timer, e->d_us);
        }
    }

    for (now = 0; now < END_NS; now += STEP_NS) {
        evpl_virtual_clock_advance(STEP_NS);
        evpl_continue(evpl);
    }
    now = evpl_virtual_clock_now();
    T_EQ_U(now, t0 + END_NS);

    T_EQ(victim_fired_first, 0); /* test plan sanity */
    T_EQ(early, 0);              /* loop 1, 3 */
    T_EQ(late, 0);
    T_EQ(after_removal, 0);  /* loop 3, 6 */
    T_EQ(double_oneshot, 0); /* loop 1 */

    for (i = 0; i < N; i++) {
        struct ent *e = &ents[i];

        switch (e->kind) {
            case VICTIM:
                T_EQ(e->removed, 1);
                T_EQ(e->fires, 0); /* removed before its deadline */
                removed++;
                break;
            case SELF_REMOVER:
                T_EQ(e->removed, 1);
                T_EQ(e->fires, e->self_at); /* loop 6 */
                removed++;
                break;
            default:
                T_EQ(e->removed, 0);
                if (e->periodic) {
                    /* fired, and not dropped: not overdue at the end */
                    T_GE(e->fires, 1);
                    T_GT(e->next_due, now); /* loop 3, 6 */
                    periodic_alive++;
                } else {
                    T_EQ(e->fires, 1); /* loop 1 */
                    oneshot_fired++;
                }
        }
    }
    T_EQ(removed, DOOMED);
    T_EQ(oneshot_fired + periodic_alive, N - DOOMED);

    for (i = 0; i < N; i++) {
        if (ents[i].periodic && !ents[i].removed) {
            evpl_remove_timer(evpl, &ents[i].t);
        }
    }
    /* nothing fires once everything is removed */
    {
        long fired_before = 0, fired_after = 0;

        for (i = 0; i < N; i++) {
            fired_before += ents[i].fires;
        }
        for (i = 0; i < 2000; i++) {
            evpl_virtual_clock_advance(STEP_NS);
            evpl_continue(evpl);
        }
        for (i = 0; i < N; i++) {
            fired_after += ents[i].fires;
        }
        T_EQ(fired_after, fired_before);
    }
    fprintf(stderr, "%d timers, %ld one-shots fired, %ld periodic kept, %ld removed\n", N,
            oneshot_fired, periodic_alive, removed);
    evpl_destroy(evpl);
    free(ents);
    return 0;
} /* main */
