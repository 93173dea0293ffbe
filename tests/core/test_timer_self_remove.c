/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Statement 6 (loop.md §2): removing a periodic timer from its own
 * callback stops it and leaves the other timers firing (upstream corrupts
 * its heap here).  Also: a periodic callback removing other timers that are
 * due in the same pass, and removing itself then re-adding (DESIGN §9.4).
 * Virtual clock, poll_mode = 0: every pass is a full pass.
 */
#include "t_loop.h"

#define MS 1000000ull

struct ptimer {
    struct evpl_timer t;
    int fires;
    int remove_self_at;        /* remove itself on this firing */
    int readd_oneshot_us;      /* ... then re-add as a one-shot */
    struct ptimer *victims[4]; /* removed on the first firing */
};

static void
on_periodic(struct evpl *evpl, struct evpl_timer *t)
{
    struct ptimer *p = t_container_of(t, struct ptimer, t);

    p->fires++;
    if (p->fires == 1) {
        for (int i = 0; i < 4; i++) {
            if (p->victims[i]) {
                evpl_remove_timer(evpl, &p->victims[i]->t);
            }
        }
    }
    if (p->remove_self_at && p->fires == p->remove_self_at) {
        evpl_remove_timer(evpl, t); /* loop 6 */
        /* removing it twice is still a no-op */
        evpl_remove_timer(evpl, t);
        if (p->readd_oneshot_us) {
            evpl_add_oneshot_timer(evpl, t, on_periodic, p->readd_oneshot_us);
        }
    }
} /* on_periodic */

static void
run_ms(struct evpl *evpl, int ms)
{
    for (int i = 0; i < ms; i++) {
        evpl_virtual_clock_advance(1 * MS);
        evpl_continue(evpl);
    }
} /* run_ms */

int
main(void)
{
    struct evpl_global_config *cfg = t_global_config();
    struct evpl *evpl;
    struct ptimer solo, a, b, c, d, e, killer, v1, v2, o;

    alarm(30);
    evpl_global_config_set_virtual_clock(cfg, 1);
    evpl_init(cfg);
    evpl = t_loop_create(0, -1);

    /* the only timer removes itself on its 3rd firing (upstream: heap
     * underflow) */
    memset(&solo, 0, sizeof(solo));
    solo.remove_self_at = 3;
    evpl_add_timer(evpl, &solo.t, on_periodic, 2000);
    run_ms(evpl, 50);
    T_EQ(solo.fires, 3); /* loop 6 */

    /* several timers; A removes itself on its first firing, the others
     * keep their exact rates */
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&c, 0, sizeof(c));
    memset(&d, 0, sizeof(d));
    a.remove_self_at = 1;
    evpl_add_timer(evpl, &a.t, on_periodic, 1000);
    evpl_add_timer(evpl, &b.t, on_periodic, 2000);
    evpl_add_timer(evpl, &c.t, on_periodic, 5000);
    evpl_add_timer(evpl, &d.t, on_periodic, 7000);
    run_ms(evpl, 70);
    T_EQ(a.fires, 1);  /* loop 6 */
    T_EQ(b.fires, 35); /* loop 6 */
    T_EQ(c.fires, 14); /* loop 6 */
    T_EQ(d.fires, 10); /* loop 6 */

    /* B removes itself in a pass where C and D are also due: its 70th
     * firing is 140 ms after they were added, a multiple of 2, 5 and 7 */
    b.remove_self_at = 70;
    run_ms(evpl, 70);
    T_EQ(b.fires, 70); /* loop 6 */
    T_EQ(c.fires, 28); /* loop 6 */
    T_EQ(d.fires, 20); /* loop 6 */
    evpl_remove_timer(evpl, &c.t);
    evpl_remove_timer(evpl, &d.t);
    run_ms(evpl, 20);
    T_EQ(b.fires, 70); /* loop 6 */
    T_EQ(c.fires, 28);
    T_EQ(d.fires, 20);

    /* a periodic removes itself and re-adds itself as a one-shot */
    memset(&e, 0, sizeof(e));
    e.remove_self_at = 2;
    e.readd_oneshot_us = 10000;
    evpl_add_timer(evpl, &e.t, on_periodic, 3000);
    run_ms(evpl, 6);
    T_EQ(e.fires, 2);
    run_ms(evpl, 9);
    T_EQ(e.fires, 2);
    run_ms(evpl, 1);
    T_EQ(e.fires, 3); /* DESIGN 9.4 */
    run_ms(evpl, 30);
    T_EQ(e.fires, 3);

    /* a periodic removes two timers that are due in the same pass (later
     * deadlines) and one not yet due, then itself */
    memset(&killer, 0, sizeof(killer));
    memset(&v1, 0, sizeof(v1));
    memset(&v2, 0, sizeof(v2));
    memset(&o, 0, sizeof(o));
    killer.victims[0] = &v1;
    killer.victims[1] = &v2;
    killer.victims[2] = &o;
    killer.remove_self_at = 1;
    evpl_add_timer(evpl, &killer.t, on_periodic, 1000);
    evpl_add_oneshot_timer(evpl, &v1.t, on_periodic, 1500);
    evpl_add_timer(evpl, &v2.t, on_periodic, 1800);
    evpl_add_timer(evpl, &o.t, on_periodic, 50000);
    evpl_virtual_clock_advance(2 * MS); /* all three of the first are due */
    evpl_continue(evpl);
    T_EQ(killer.fires, 1);
    T_EQ(v1.fires, 0); /* loop 6 */
    T_EQ(v2.fires, 0); /* loop 6 */
    run_ms(evpl, 100);
    T_EQ(killer.fires, 1); /* loop 6 */
    T_EQ(v1.fires, 0);
    T_EQ(v2.fires, 0);
    T_EQ(o.fires, 0);

    evpl_destroy(evpl);
    return 0;
} /* main */
