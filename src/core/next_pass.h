/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Work bounded per loop pass, for the module libraries (libevpl_http,
 * libevpl_rpc2): a connection that has done its share of a pass puts the
 * rest off to the next one, so one busy peer cannot hold the loop.  Internal to our
 * libraries: exported by libevpl.so for them, declared in no public header.
 */
#ifndef EVPL_CORE_NEXT_PASS_H
#define EVPL_CORE_NEXT_PASS_H

#include <stdint.h>

#include <evpl/evpl.h>

/* Arm deferral to run in the next pass's deferral dispatch, not in this
 * pass's (evpl_defer re-runs a deferral armed from a deferral in the same
 * pass).  A loop with one armed does not sleep.  No-op when the deferral
 * is armed already; evpl_defer brings it forward to this pass,
 * evpl_remove_deferral disarms it.  Owning thread. */
EVPL_API void evpl__defer_next(struct evpl *evpl, struct evpl_deferral *deferral);

/* The number of the loop's current pass (never 0): a per-pass budget is
 * reset when it changes.  Owning thread. */
EVPL_API uint64_t evpl__pass(struct evpl *evpl);

/* Work done in one loop pass, by one party or by all of them together. */
struct evpl__budget {
    uint64_t pass; /* the pass the work was counted in */
    unsigned int work;
};

/* Counters of an earlier pass start again from 0. */
static inline void
evpl__budget_fresh(uint64_t pass, struct evpl__budget *b)
{
    if (b->pass != pass) {
        b->pass = pass;
        b->work = 0;
    }
}

/* Units of work a party may still do in pass `pass` (evpl__pass): at most
 * own_max of its own, and of what all parties together may do (all_max)
 * what is left, but never fewer than min_share of its own while all have
 * used theirs up (so none waits for ever behind the others). */

static inline unsigned int
evpl__budget_left(uint64_t pass, struct evpl__budget *own, unsigned int own_max,
                  struct evpl__budget *all, unsigned int all_max, unsigned int min_share)
{
    unsigned int mine, shared;

    evpl__budget_fresh(pass, own);
    evpl__budget_fresh(pass, all);
    mine = own->work < own_max ? own_max - own->work : 0;
    shared = all->work < all_max ? all_max - all->work : 0;
    if (own->work < min_share && shared < min_share - own->work) {
        shared = min_share - own->work;
    }
    return mine < shared ? mine : shared;
}

/* Count cost units of work in pass `pass` against a party and all
 * parties. */
static inline void
evpl__budget_spend(uint64_t pass, struct evpl__budget *own, struct evpl__budget *all,
                   unsigned int cost)
{
    evpl__budget_fresh(pass, own);
    evpl__budget_fresh(pass, all);
    own->work += cost;
    all->work += cost;
}

#endif
