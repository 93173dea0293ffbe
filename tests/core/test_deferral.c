/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Deferrals (loop.md §3, statements 8-11): coalescing, self re-arm within
 * the same evpl_continue, removal, a deferral armed outside a pass making
 * the next pass non-blocking; plus init clearing `armed` (not while queued), many armed at
 * once (no fixed capacity), deferrals armed from other callbacks running in
 * the same pass, and removal of another armed deferral from a callback.
 */
#include "t_loop.h"

#define MS 1000000ull

struct counted {
    struct evpl_deferral d;
    int calls;
    int rearm_left;
    int pass_seen;
};

static int current_pass;

static void
on_count(struct evpl *evpl, void *p)
{
    struct counted *c = p;

    c->calls++;
    c->pass_seen = current_pass;
    T_EQ_U(c->d.armed, 0); /* cleared just before the callback */
    if (c->rearm_left > 0) {
        c->rearm_left--;
        evpl_defer(evpl, &c->d);
    }
} /* on_count */

static void
counted_init(struct counted *c)
{
    memset(c, 0, sizeof(*c));
    evpl_deferral_init(&c->d, on_count, c);
} /* counted_init */

static void
pass(struct evpl *evpl)
{
    uint64_t t0 = t_now_ns();

    current_pass++;
    evpl_continue(evpl);
    /* the loops below use wait_ms = -1 and poll_mode = 0, so a pass with
     * nothing to do would sleep forever; every pass here has work */
    T_LT(t_now_ns() - t0, 1000 * MS);
} /* pass */

/* remove-other scenario */
static struct counted victim;
static struct evpl_deferral remover;
static int remover_calls;

static void
on_remover(struct evpl *evpl, void *p)
{
    remover_calls++;
    evpl_remove_deferral(evpl, &victim.d);
} /* on_remover */

/* a deferral armed from a timer callback runs in that same pass */
static struct counted from_timer;

static void
on_timer(struct evpl *evpl, struct evpl_timer *t)
{
    evpl_defer(evpl, &from_timer.d);
} /* on_timer */

/* chain: A arms B, which arms C, all in one pass */
static struct counted chain[3];

static void
on_chain(struct evpl *evpl, void *p)
{
    struct counted *c = p;

    c->calls++;
    if (c < &chain[2]) {
        evpl_defer(evpl, &(c + 1)->d);
    }
} /* on_chain */

int
main(void)
{
    struct evpl *evpl;
    struct counted a, b, c;
    struct counted *many;
    struct evpl_timer t;
    int i;
    const int N = 10000;

    alarm(30);
    evpl_init(t_global_config());
    evpl = t_loop_create(0, -1);

    /* statement 8: armed twice (and more) before the loop runs -> one call */
    counted_init(&a);
    evpl_defer(evpl, &a.d);
    T_NE(a.d.armed, 0);     /* non-zero while queued */
    evpl_defer(evpl, &a.d); /* loop 8 */
    evpl_defer(evpl, &a.d);
    pass(evpl);
    T_EQ(a.calls, 1); /* loop 8 */
    T_EQ_U(a.d.armed, 0);
    counted_init(&b);
    evpl_defer(evpl, &b.d); /* keeps the next pass non-blocking */
    pass(evpl);
    T_EQ(a.calls, 1); /* loop 8 */
    T_EQ(b.calls, 1);

    /* statement 9: re-armed once from its callback -> two calls, both in
     * the same evpl_continue */
    counted_init(&a);
    a.rearm_left = 1;
    evpl_defer(evpl, &a.d);
    pass(evpl);
    T_EQ(a.calls, 2);                /* loop 9 */
    T_EQ(a.pass_seen, current_pass); /* loop 9 */
    counted_init(&b);
    evpl_defer(evpl, &b.d);
    pass(evpl);
    T_EQ(a.calls, 2); /* loop 9 */

    /* ... and re-armed 100 times -> 101 calls in one pass */
    counted_init(&a);
    a.rearm_left = 100;
    evpl_defer(evpl, &a.d);
    pass(evpl);
    T_EQ(a.calls, 101);

    /* statement 10: removing an armed deferral prevents its callback */
    counted_init(&a);
    counted_init(&b);
    evpl_defer(evpl, &a.d);
    evpl_defer(evpl, &b.d);
    evpl_remove_deferral(evpl, &a.d); /* loop 10 */
    T_EQ_U(a.d.armed, 0);
    pass(evpl);
    T_EQ(a.calls, 0); /* loop 10 */
    T_EQ(b.calls, 1);
    /* ... removing an idle one is a no-op, twice, and it stays usable */
    evpl_remove_deferral(evpl, &a.d); /* loop 10 */
    evpl_remove_deferral(evpl, &b.d); /* loop 10 */
    counted_init(&c);
    evpl_remove_deferral(evpl, &c.d); /* never armed */ /* loop 10 */
    evpl_defer(evpl, &a.d);
    pass(evpl);
    T_EQ(a.calls, 1);
    T_EQ(b.calls, 1);
    T_EQ(c.calls, 0);
    /* removal of the only armed deferral: the pass must not run it (and
     * may block, so arm another one to keep the pass short) */
    evpl_defer(evpl, &a.d);
    evpl_remove_deferral(evpl, &a.d);
    evpl_defer(evpl, &b.d);
    pass(evpl);
    T_EQ(a.calls, 1); /* loop 10 */
    T_EQ(b.calls, 2);

    /* removing another armed deferral from inside a callback */
    counted_init(&victim);
    memset(&remover, 0, sizeof(remover));
    evpl_deferral_init(&remover, on_remover, NULL);
    evpl_defer(evpl, &remover);
    pass(evpl);
    T_EQ(remover_calls, 1);
    evpl_defer(evpl, &remover);
    evpl_defer(evpl, &victim.d);
    pass(evpl);
    T_EQ(remover_calls, 2);
    /* order is unspecified: the victim ran (before the remover) or not */
    T_LE(victim.calls, 1);
    counted_init(&b);
    evpl_defer(evpl, &b.d);
    pass(evpl);
    T_LE(victim.calls, 1);
    T_EQ_U(victim.d.armed, 0);

    /* statement 11: armed outside a pass -> runs in the next evpl_continue,
     * which does not block although wait_ms = -1 and nothing else is due;
     * pass() fails on a blocking pass and alarm() catches a hang */
    counted_init(&a);
    evpl_defer(evpl, &a.d);
    pass(evpl);       /* loop 11 */
    T_EQ(a.calls, 1); /* loop 11 */
    for (i = 0; i < 20; i++) {
        evpl_defer(evpl, &a.d);
        pass(evpl); /* loop 11 */
    }
    T_EQ(a.calls, 21);

    /* evpl_deferral_init clears `armed` (our header; spec SHOULD): storage
     * full of garbage still works */
    memset(&c, 0xa5, sizeof(c));
    c.calls = 0;
    c.rearm_left = 0;
    evpl_deferral_init(&c.d, on_count, &c);
    T_EQ_U(c.d.armed, 0);
    evpl_defer(evpl, &c.d);
    pass(evpl);
    T_EQ(c.calls, 1);

    /* ... but not while it is armed: it stays queued once.  Cleared, the
     * next defer queued it twice (two calls), and a removal found nothing
     * to remove, so it ran on storage freed after the removal
     * (helper-118) */
    counted_init(&a);
    evpl_defer(evpl, &a.d);
    evpl_deferral_init(&a.d, on_count, &a);
    T_NE(a.d.armed, 0);
    evpl_defer(evpl, &a.d);
    pass(evpl);
    T_EQ(a.calls, 1);
    {
        struct counted *gone = calloc(1, sizeof(*gone));

        T_OK(gone != NULL);
        evpl_deferral_init(&gone->d, on_count, gone);
        evpl_defer(evpl, &gone->d);
        evpl_deferral_init(&gone->d, on_count, gone);
        evpl_remove_deferral(evpl, &gone->d);
        T_EQ_U(gone->d.armed, 0);
        free(gone); /* loop.md §3: removed, its storage may go */
        counted_init(&b);
        evpl_defer(evpl, &b.d);
        pass(evpl); /* (ASan: a use after free here before) */
        T_EQ(b.calls, 1);
    }

    /* no fixed capacity: 10000 armed at once, each runs exactly once */
    many = calloc(N, sizeof(*many));
    for (i = 0; i < N; i++) {
        evpl_deferral_init(&many[i].d, on_count, &many[i]);
        evpl_defer(evpl, &many[i].d);
        evpl_defer(evpl, &many[i].d);
    }
    /* remove every third one */
    for (i = 0; i < N; i += 3) {
        evpl_remove_deferral(evpl, &many[i].d);
    }
    pass(evpl);
    for (i = 0; i < N; i++) {
        T_EQ(many[i].calls, i % 3 == 0 ? 0 : 1);
        T_EQ(many[i].pass_seen, i % 3 == 0 ? 0 : current_pass);
    }
    free(many);

    /* armed from a timer callback: runs in the same pass */
    counted_init(&from_timer);
    memset(&t, 0, sizeof(t));
    evpl_add_oneshot_timer(evpl, &t, on_timer, 1000);
    while (from_timer.calls == 0) {
        uint64_t t0 = t_now_ns();

        current_pass++;
        evpl_continue(evpl);
        T_LT(t_now_ns() - t0, 1000 * MS);
    }
    T_EQ(from_timer.calls, 1);
    T_EQ(from_timer.pass_seen, current_pass);

    /* a deferral armed by another deferral runs in the same pass */
    for (i = 0; i < 3; i++) {
        memset(&chain[i], 0, sizeof(chain[i]));
        evpl_deferral_init(&chain[i].d, on_chain, &chain[i]);
    }
    evpl_defer(evpl, &chain[0].d);
    pass(evpl);
    T_EQ(chain[0].calls, 1);
    T_EQ(chain[1].calls, 1);
    T_EQ(chain[2].calls, 1);

    evpl_destroy(evpl);
    return 0;
} /* main */
