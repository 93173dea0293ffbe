/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit core */
/*
 * evpl__defer_next (core/next_pass.h), what a module uses to put the rest
 * of a connection's work off to the next loop pass: a deferral armed with
 * it from a callback does not run in that pass but in the next one; one
 * that re-arms itself that way runs once per pass; evpl_defer brings it
 * forward to the current pass; evpl_remove_deferral disarms it (with
 * others armed either way untouched); one armed from a timer waits for
 * the next pass too; a loop with one armed does not sleep
 * (wait_ms -1 would otherwise block for ever); evpl__pass counts passes.
 */
#include <evpl/evpl.h>

#include <string.h>

#include "core/next_pass.h"

#include "t.h"

#define MS 1000000ull

struct item {
    struct evpl_deferral d;
    int calls;
    uint64_t last_pass;
    int again; /* re-arm with evpl__defer_next this many more times */
};

static void
on_item(struct evpl *evpl, void *p)
{
    struct item *it = p;

    it->calls++;
    it->last_pass = evpl__pass(evpl);
    T_EQ_U(it->d.armed, 0);
    if (it->again > 0) {
        it->again--;
        evpl__defer_next(evpl, &it->d);
        T_OK(it->d.armed != 0);
    }
} /* on_item */

static void
item_init(struct item *it)
{
    memset(it, 0, sizeof(*it));
    evpl_deferral_init(&it->d, on_item, it);
} /* item_init */

static struct evpl *
loop_create(void)
{
    struct evpl_thread_config *tc = evpl_thread_config_init();
    struct evpl *evpl;

    T_OK(tc != NULL);
    evpl_thread_config_set_poll_mode(tc, 0);
    evpl_thread_config_set_wait_ms(tc, -1); /* a pass with nothing to do blocks */
    evpl = evpl_create(tc);
    T_OK(evpl != NULL);
    evpl_thread_config_release(tc);
    return evpl;
} /* loop_create */

/* One pass, which must not block. */
static void
pass(struct evpl *evpl)
{
    uint64_t t0 = t_now_ns();

    evpl_continue(evpl);
    T_LT(t_now_ns() - t0, 2000 * MS);
} /* pass */

/* A deferral (the "trigger") that arms others for the next pass or this one. */
static struct item *arm_next[4];
static struct item *bring_forward;

static void
on_trigger(struct evpl *evpl, void *p)
{
    (void) p;
    for (int i = 0; i < 4 && arm_next[i]; i++) {
        evpl__defer_next(evpl, &arm_next[i]->d);
    }
    if (bring_forward) {
        evpl_defer(evpl, &bring_forward->d); /* armed for the next pass: now */
    }
} /* on_trigger */

/* a one-shot timer that arms timer_item for the next pass */
static struct item *timer_item;
static int timer_fired;

static void
on_timer(struct evpl *evpl, struct evpl_timer *timer)
{
    (void) timer;
    timer_fired = 1;
    evpl__defer_next(evpl, &timer_item->d);
} /* on_timer */

int
main(void)
{
    struct evpl *evpl;
    struct evpl_deferral trigger;
    struct item a, b, c, self;
    uint64_t p0;

    evpl_init(NULL);
    evpl = loop_create();
    evpl_deferral_init(&trigger, on_trigger, NULL);

    /* pass numbers advance by one per evpl_continue and are never 0 */
    p0 = evpl__pass(evpl);
    T_OK(p0 != 0);
    evpl_defer(evpl, &trigger); /* (so the pass does not block) */
    pass(evpl);
    T_EQ_U(evpl__pass(evpl), p0 + 1);

    /* armed from a deferral: not in that pass, in the next; and a loop
     * with it armed does not sleep (wait_ms -1) */
    item_init(&a);
    item_init(&b);
    arm_next[0] = &a;
    arm_next[1] = &b;
    evpl_defer(evpl, &trigger);
    p0 = evpl__pass(evpl);
    pass(evpl);
    T_EQ(a.calls, 0);
    T_EQ(b.calls, 0);
    T_OK(a.d.armed && b.d.armed);
    pass(evpl);
    T_EQ(a.calls, 1);
    T_EQ(b.calls, 1);
    T_EQ_U(a.last_pass, p0 + 1);
    arm_next[0] = arm_next[1] = NULL;

    /* re-armed from its own callback: once per pass, not looping */
    item_init(&self);
    self.again = 5;
    evpl__defer_next(evpl, &self.d); /* outside a pass: the next pass */
    for (int i = 1; i <= 6; i++) {
        pass(evpl);
        T_EQ(self.calls, i);
    }
    T_EQ_U(self.d.armed, 0);

    /* removal: the middle of three armed for the next pass */
    item_init(&a);
    item_init(&b);
    item_init(&c);
    arm_next[0] = &a;
    arm_next[1] = &b;
    arm_next[2] = &c;
    evpl_defer(evpl, &trigger);
    pass(evpl);
    arm_next[0] = arm_next[1] = arm_next[2] = NULL;
    evpl_remove_deferral(evpl, &b.d);
    T_EQ_U(b.d.armed, 0);
    evpl_remove_deferral(evpl, &b.d); /* again: no-op */
    pass(evpl);
    T_EQ(a.calls, 1);
    T_EQ(b.calls, 0);
    T_EQ(c.calls, 1);

    /* armed for the next pass and removed before it */
    item_init(&a);
    evpl__defer_next(evpl, &a.d);
    evpl_remove_deferral(evpl, &a.d);
    evpl_defer(evpl, &trigger); /* (so the pass does not block) */
    pass(evpl);
    T_EQ(a.calls, 0);

    /* evpl_defer on one armed for the next pass runs it in this pass, once */
    item_init(&a);
    arm_next[0] = &a;
    bring_forward = &a;
    evpl_defer(evpl, &trigger);
    p0 = evpl__pass(evpl);
    pass(evpl);
    arm_next[0] = NULL;
    bring_forward = NULL;
    T_EQ(a.calls, 1);
    T_EQ_U(a.last_pass, p0);
    T_EQ_U(a.d.armed, 0);
    evpl_defer(evpl, &trigger);
    pass(evpl);
    T_EQ(a.calls, 1);

    /* evpl__defer_next on one armed for this pass leaves it for this pass */
    item_init(&a);
    evpl_defer(evpl, &a.d);
    evpl__defer_next(evpl, &a.d);
    p0 = evpl__pass(evpl);
    pass(evpl);
    T_EQ(a.calls, 1);
    T_EQ_U(a.last_pass, p0);

    /* armed from a timer (before the pass's wait, as from the wait's own
     * completions): not in that pass either, in the next (helper-92: it
     * ran in the same pass) */
    {
        struct evpl_timer tm;

        item_init(&a);
        arm_next[0] = &a;
        timer_item = &a;
        evpl_add_oneshot_timer(evpl, &tm, on_timer, 1000);
        while (!timer_fired) {
            pass(evpl); /* (the wait ends at the deadline) */
        }
        T_EQ(a.calls, 0);
        T_OK(a.d.armed != 0);
        p0 = evpl__pass(evpl);
        pass(evpl);
        T_EQ(a.calls, 1);
        T_EQ_U(a.last_pass, p0);
        arm_next[0] = NULL;
    }

    evpl_destroy(evpl);
    return 0;
} /* main */
