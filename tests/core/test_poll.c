/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Polls and the hybrid event/poll mode (loop.md §4, statements 16-21),
 * under the virtual clock with spin_ns = S = 2 ms so that every timing is
 * exact.  Decisions are made on full passes (pre_wait hook), which come at
 * least every poll_iterations + 1 = 1001 passes.
 */
#include "t_loop.h"

#define US 1000ull
#define S  2000000ull /* spin_ns */

#define FULL(evpl, ps, k) t_full_passes((evpl), (ps), (k), 1001)

/* Enter/exit strictly alternate, starting with enter (statement 20). */
static void
check_alternation(const struct t_pstate *ps)
{
    for (int i = 0; i < ps->nseq; i++) {
        if (ps->seq[i] != (i % 2 == 0 ? 'E' : 'X')) {
            T_FAIL("enter/exit sequence \"%.*s\" does not alternate", ps->nseq, ps->seq);
        }
    }
    T_EQ(ps->enter - ps->exit, ps->in_poll_mode);
} /* check_alternation */

/* poll callback that reports activity once when asked */
static int activity_requests;

static void
poll_with_activity(struct evpl *evpl, void *p)
{
    struct t_pstate *ps = p;

    ps->polls++;
    if (activity_requests > 0) {
        activity_requests--;
        evpl_activity(evpl);
    }
} /* poll_with_activity */

static void
spin_window(void)
{
    struct evpl *evpl = t_loop_create(1, -1);
    struct t_pstate ps = {0};
    struct evpl_poll *poll;
    int polls;

    t_ps_hooks(evpl, &ps);
    /* statement 16: one poll registered right after evpl_create */
    poll = evpl_add_poll(evpl, t_ps_enter, t_ps_exit, poll_with_activity, &ps);
    T_OK(poll != NULL);
    T_EQ(ps.enter, 0); /* registering alone does not enter poll mode */

    FULL(evpl, &ps, 1);
    T_EQ(ps.enter, 1); /* loop 16 */
    t_passes(evpl, 3000);
    T_GE(ps.polls, 2900); /* loop 16 */
    T_EQ(ps.enter, 1);    /* loop 16 */
    T_EQ(ps.exit, 0);

    /* still in the window 1 us before S */
    evpl_virtual_clock_advance(S - 1 * US);
    FULL(evpl, &ps, 2);
    T_EQ(ps.exit, 0); /* loop 16 */
    /* past S without activity: exit once */
    evpl_virtual_clock_advance(2 * US);
    FULL(evpl, &ps, 2);
    T_EQ(ps.exit, 1); /* loop 16 */
    /* out of poll mode: the poll callback is not called any more */
    polls = ps.polls;
    t_passes(evpl, 3000);
    T_EQ(ps.polls, polls); /* loop 16 */
    T_EQ(ps.exit, 1);      /* loop 16 */
    T_EQ(ps.enter, 1);
    check_alternation(&ps); /* loop 20 */

    /* statement 17: activity re-enters, and activity during poll mode
     * extends the window by another S from the activity */
    evpl_activity(evpl);
    FULL(evpl, &ps, 1);
    T_EQ(ps.enter, 2);
    evpl_virtual_clock_advance(S - 1 * US); /* A1 + S - 1us */
    activity_requests = 1;
    while (activity_requests) {
        evpl_continue(evpl); /* the poll callback reports it */
    }
    FULL(evpl, &ps, 1); /* ... and a full pass sees it */
    T_EQ(ps.exit, 1);
    evpl_virtual_clock_advance(2 * US); /* past A1 + S, A2 + 2 us */
    FULL(evpl, &ps, 2);
    T_EQ(ps.exit, 1);                       /* loop 17 */
    evpl_virtual_clock_advance(S - 3 * US); /* A2 + S - 1 us */
    FULL(evpl, &ps, 2);
    T_EQ(ps.exit, 1);                   /* loop 17 */
    evpl_virtual_clock_advance(2 * US); /* A2 + S + 1 us */
    FULL(evpl, &ps, 2);
    T_EQ(ps.exit, 2);       /* loop 17 */
    check_alternation(&ps); /* loop 20 */

    /* statement 18: pinned, it stays in poll mode indefinitely; pins nest */
    evpl_poll_pin(evpl);
    FULL(evpl, &ps, 1);
    T_EQ(ps.enter, 3); /* loop 18 */
    evpl_poll_pin(evpl);
    evpl_virtual_clock_advance(1000 * S);
    FULL(evpl, &ps, 3);
    T_EQ(ps.exit, 2);      /* loop 18 */
    evpl_poll_unpin(evpl); /* one pin still held */
    evpl_virtual_clock_advance(1000 * S);
    FULL(evpl, &ps, 3);
    T_EQ(ps.exit, 2); /* loop 18 */
    polls = ps.polls;
    t_passes(evpl, 100);
    T_GE(ps.polls, polls + 90); /* still polling */
    evpl_poll_unpin(evpl);      /* last pin released */
    FULL(evpl, &ps, 1);         /* (may restart the window) */
    evpl_virtual_clock_advance(S + 1 * US);
    FULL(evpl, &ps, 2);
    T_EQ(ps.exit, 3);       /* loop 18 */
    check_alternation(&ps); /* loop 20 */

    /* a pin released before any pass saw it, on an idle loop: no
     * activity of its own, so no poll mode (upstream's model owes
     * nothing in that window) */
    {
        int e = ps.enter, x = ps.exit, pl = ps.polls;

        evpl_virtual_clock_advance(2 * S);
        FULL(evpl, &ps, 2);
        T_EQ(ps.enter, e);
        evpl_poll_pin(evpl);
        evpl_poll_unpin(evpl);
        FULL(evpl, &ps, 3);
        T_EQ(ps.enter, e);
        T_EQ(ps.exit, x);
        T_EQ(ps.polls, pl);
    }

    /* several more cycles, all alternating */
    for (int i = 0; i < 5; i++) {
        evpl_activity(evpl);
        FULL(evpl, &ps, 1);
        evpl_virtual_clock_advance(S + 1 * US);
        FULL(evpl, &ps, 2);
    }
    T_EQ(ps.enter, 8);
    T_EQ(ps.exit, 8);
    check_alternation(&ps); /* loop 20 */

    evpl_remove_poll(evpl, poll);
    evpl_set_loop_hooks(evpl, NULL);
    evpl_destroy(evpl);
} /* spin_window */

static void
poll_mode_off(void)
{
    struct evpl *evpl = t_loop_create(0, -1);
    struct t_pstate ps = {0};
    struct evpl_poll *poll;

    /* statement 19: poll_mode = 0 -> poll callbacks never run, not even
     * with activity or a pin */
    t_ps_hooks(evpl, &ps);
    poll = t_ps_add_poll(evpl, &ps);
    evpl_activity(evpl);
    t_passes(evpl, 2000);
    evpl_poll_pin(evpl);
    evpl_activity(evpl);
    t_passes(evpl, 2000);
    evpl_virtual_clock_advance(10 * S);
    t_passes(evpl, 100);
    T_EQ(ps.polls, 0); /* loop 19 */
    T_EQ(ps.enter, 0); /* loop 19 */
    T_EQ(ps.exit, 0);
    evpl_poll_unpin(evpl);
    evpl_remove_poll(evpl, poll);
    evpl_set_loop_hooks(evpl, NULL);
    evpl_destroy(evpl);
} /* poll_mode_off */

/* ---- statement 21 ------------------------------------------------------- */

#define NP 6
static int calls[NP];
static struct evpl_poll *handles[NP];
static int remove_self_id = -1;
static int remove_other_by, remove_other_id = -1;

static void
numbered_poll(struct evpl *evpl, void *p)
{
    int id = (int) (intptr_t) p;

    calls[id]++;
    if (id == remove_self_id) {
        remove_self_id = -1;
        evpl_remove_poll(evpl, handles[id]);
        handles[id] = NULL;
    }
    if (id == remove_other_by && remove_other_id >= 0) {
        int victim = remove_other_id;

        remove_other_id = -1;
        evpl_remove_poll(evpl, handles[victim]);
        handles[victim] = NULL;
    }
} /* numbered_poll */

/* Run passes and check that exactly the polls still registered run. */
static void
check_live(struct evpl *evpl)
{
    int before[NP], i;

    memcpy(before, calls, sizeof(before));
    t_passes(evpl, 200);
    for (i = 0; i < NP; i++) {
        if (handles[i]) {
            T_GE(calls[i], before[i] + 150); /* loop 21 */
        } else {
            T_EQ(calls[i], before[i]); /* loop 21 */
        }
    }
} /* check_live */

static void
stable_handles(void)
{
    struct evpl *evpl = t_loop_create(1, -1);
    int i;

    for (i = 0; i < NP; i++) {
        handles[i] = evpl_add_poll(evpl, NULL, NULL, numbered_poll, (void *) (intptr_t) i);
        T_OK(handles[i] != NULL);
    }
    evpl_poll_pin(evpl);
    check_live(evpl);

    /* statement 21: remove in an order that moves slots upstream: a middle
     * one, then the most recently added, then the first ... */
    evpl_remove_poll(evpl, handles[1]);
    handles[1] = NULL;
    check_live(evpl);
    evpl_remove_poll(evpl, handles[5]);
    handles[5] = NULL;
    check_live(evpl);
    evpl_remove_poll(evpl, handles[0]);
    handles[0] = NULL;
    check_live(evpl);

    /* ... from inside poll callbacks: one removes itself, one removes
     * another (legal from any poll callback, our header) */
    remove_self_id = 3;
    remove_other_by = 4;
    remove_other_id = 2;
    t_passes(evpl, 5);
    T_OK(handles[3] == NULL);
    T_OK(handles[2] == NULL);
    check_live(evpl);

    /* a poll added after removals gets a fresh, valid handle */
    handles[0] = evpl_add_poll(evpl, NULL, NULL, numbered_poll, (void *) (intptr_t) 0);
    t_passes(evpl, 1001); /* a poll added while polling may start at the
                           * next full pass */
    check_live(evpl);
    evpl_remove_poll(evpl, handles[4]);
    handles[4] = NULL;
    check_live(evpl);
    evpl_remove_poll(evpl, handles[0]);
    handles[0] = NULL;
    check_live(evpl);
    evpl_poll_unpin(evpl);
    evpl_destroy(evpl);
} /* stable_handles */

/* more than 256 polls (no fixed capacity, DESIGN §9.7) */
static int many_calls[600];

static void
many_poll(struct evpl *evpl, void *p)
{
    many_calls[(int) (intptr_t) p]++;
} /* many_poll */

static void
many_polls(void)
{
    struct evpl *evpl = t_loop_create(1, -1);
    struct evpl_poll *h[600];
    int i;

    for (i = 0; i < 600; i++) {
        h[i] = evpl_add_poll(evpl, NULL, NULL, many_poll, (void *) (intptr_t) i);
    }
    evpl_poll_pin(evpl);
    t_passes(evpl, 50);
    for (i = 0; i < 600; i++) {
        T_GE(many_calls[i], 40);
    }
    for (i = 599; i >= 0; i -= 2) {
        evpl_remove_poll(evpl, h[i]);
    }
    for (i = 0; i < 600; i += 2) {
        evpl_remove_poll(evpl, h[i]);
    }
    evpl_poll_unpin(evpl);
    evpl_destroy(evpl);
} /* many_polls */

/* A poll added while the loop polls is entered and called within a few
 * passes (it waited for the next full pass, up to poll_iterations) */
static void
added_while_polling(void)
{
    struct evpl *evpl = t_loop_create(1, -1);
    struct t_pstate a = {0}, b = {0};
    struct evpl_poll *pa, *pb;

    t_ps_hooks(evpl, &a);
    pa = evpl_add_poll(evpl, t_ps_enter, t_ps_exit, poll_with_activity, &a);
    evpl_poll_pin(evpl);
    FULL(evpl, &a, 1);
    T_EQ(a.enter, 1);
    t_passes(evpl, 10); /* well inside the 1000 poll-only passes */
    pb = evpl_add_poll(evpl, t_ps_enter, t_ps_exit, poll_with_activity, &b);
    T_EQ(b.enter, 0); /* never from inside evpl_add_poll */
    t_passes(evpl, 3);
    T_EQ(b.enter, 1);
    T_GE(b.polls, 1);
    T_EQ(a.enter, 1); /* the poll already in it is not entered again */
    evpl_poll_unpin(evpl);
    evpl_remove_poll(evpl, pa);
    evpl_remove_poll(evpl, pb);
    evpl_destroy(evpl);
} /* added_while_polling */

/* core.md §5: evpl_destroy does not retire polls, nor call back into
 * them: a program may free a poll's context (here in a worker's shutdown
 * callback, which thread.md runs before the loop's destroy) without
 * removing the poll, and the loop must not touch it afterwards */
struct owned_ctx {
    int exits;
};

static void
owned_exit(struct evpl *evpl, void *p)
{
    ((struct owned_ctx *) p)->exits++; /* a use after free under ASan */
}

static void
owned_poll(struct evpl *evpl, void *p)
{
    evpl_activity(evpl); /* a busy backend: the loop stays polling */
}

static void *
owned_init(struct evpl *evpl, void *arg)
{
    struct owned_ctx *c = calloc(1, sizeof(*c));

    T_OK(c != NULL);
    evpl_add_poll(evpl, NULL, owned_exit, owned_poll, c);
    evpl_poll_pin(evpl);
    atomic_store((atomic_int *) arg, 1);
    return c;
}

static void
owned_shutdown(struct evpl *evpl, void *c)
{
    free(c);
}

static void
destroy_leaves_polls(void)
{
    struct evpl *evpl = t_loop_create(1, -1);
    struct owned_ctx *c = calloc(1, sizeof(*c));
    atomic_int started = 0;
    struct evpl_thread *t;

    evpl_add_poll(evpl, NULL, owned_exit, owned_poll, c);
    evpl_poll_pin(evpl);
    t_passes(evpl, 3);
    T_EQ(c->exits, 0);
    free(c);
    evpl_destroy(evpl);

    t = evpl_thread_create(NULL, owned_init, owned_shutdown, &started);
    T_OK(t != NULL);
    while (!atomic_load(&started)) {
        usleep(1000);
    }
    evpl_thread_destroy(t);
} /* destroy_leaves_polls */

int
main(void)
{
    struct evpl_global_config *cfg = t_global_config();

    alarm(60);
    evpl_global_config_set_virtual_clock(cfg, 1);
    evpl_global_config_set_spin_ns(cfg, S);
    evpl_init(cfg);

    spin_window();    /* loop 16, 17, 18, 20 */
    poll_mode_off();  /* loop 19 */
    stable_handles(); /* loop 21 */
    many_polls();
    added_while_polling();
    destroy_leaves_polls();
    return 0;
} /* main */
