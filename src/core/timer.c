/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Timers: a binary min-heap of (deadline, node) pairs.
 *
 * struct evpl_timer is caller storage with no room for a heap index, so
 * each armed timer owns a node (index in the heap) found through an
 * open-addressing hash keyed by the timer's address.  Add, remove and fire
 * are O(log n) with no allocation in steady state, and any callback may
 * remove or re-add any timer, its own included (upstream corrupts its heap
 * when a periodic timer removes itself).
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define FIRING  UINT32_MAX
#define LATER   (UINT32_MAX - 1)
#define NO_NODE UINT32_MAX

/* ---- hash: timer address -> node ---- */

static inline uint32_t
hash_ptr(const struct evpl_timers *t, const struct evpl_timer *timer)
{
    uint64_t h = (uint64_t) (uintptr_t) timer * 0x9E3779B97F4A7C15ull;

    return (uint32_t) (h >> 32) & t->hash_mask;
} /* hash_ptr */

static uint32_t
hash_find(const struct evpl_timers *t, const struct evpl_timer *timer)
{
    uint32_t i;

    if (!t->hash) {
        return NO_NODE;
    }
    for (i = hash_ptr(t, timer); t->hash[i].timer; i = (i + 1) & t->hash_mask) {
        if (t->hash[i].timer == timer) {
            return t->hash[i].node;
        }
    }
    return NO_NODE;
} /* hash_find */

static void hash_insert(struct evpl_timers *t, struct evpl_timer *timer, uint32_t node);

static void
hash_grow(struct evpl_timers *t)
{
    struct evpl_timer_hash_slot *old = t->hash;
    uint32_t old_cap = old ? t->hash_mask + 1 : 0;
    uint32_t cap = old_cap ? old_cap * 2 : 64;

    t->hash = evpl__zalloc(cap * sizeof(*t->hash));
    t->hash_mask = cap - 1;
    t->hash_count = 0;
    for (uint32_t i = 0; i < old_cap; i++) {
        if (old[i].timer) {
            hash_insert(t, old[i].timer, old[i].node);
        }
    }
    free(old);
} /* hash_grow */

static void
hash_insert(struct evpl_timers *t, struct evpl_timer *timer, uint32_t node)
{
    uint32_t i;

    /* keep the load factor at or below 1/2 */
    if (!t->hash || (t->hash_count + 1) * 2 > t->hash_mask + 1) {
        hash_grow(t);
    }
    for (i = hash_ptr(t, timer); t->hash[i].timer; i = (i + 1) & t->hash_mask) {
    }
    t->hash[i].timer = timer;
    t->hash[i].node = node;
    t->hash_count++;
} /* hash_insert */

/* Linear-probing delete with backward shift: no tombstones. */
static void
hash_delete(struct evpl_timers *t, struct evpl_timer *timer)
{
    uint32_t i = hash_ptr(t, timer), j, home;

    while (t->hash[i].timer != timer) {
        i = (i + 1) & t->hash_mask;
    }
    t->hash_count--;
    for (j = (i + 1) & t->hash_mask; t->hash[j].timer; j = (j + 1) & t->hash_mask) {
        home = hash_ptr(t, t->hash[j].timer);
        /* move j into the hole at i unless its home lies in (i, j] */
        if (((j - home) & t->hash_mask) >= ((j - i) & t->hash_mask)) {
            t->hash[i] = t->hash[j];
            i = j;
        }
    }
    t->hash[i].timer = NULL;
} /* hash_delete */

/* ---- nodes ---- */

static uint32_t
node_alloc(struct evpl_timers *t, struct evpl_timer *timer)
{
    uint32_t id;

    if (t->free_node != NO_NODE) {
        id = t->free_node;
        t->free_node = t->nodes[id].next_free;
    } else {
        evpl_array_reserve(t->nodes, t->nodes_cap, t->nodes_len);
        id = t->nodes_len++;
    }
    t->nodes[id].timer = timer;
    t->nodes[id].heap_idx = FIRING;
    t->nodes[id].next_free = NO_NODE;
    return id;
} /* node_alloc */

static void
node_free(struct evpl_timers *t, uint32_t id)
{
    hash_delete(t, t->nodes[id].timer);
    t->nodes[id].timer = NULL;
    t->nodes[id].heap_idx = FIRING; /* in no heap, no held-back list */
    t->nodes[id].next_free = t->free_node;
    t->free_node = id;
} /* node_free */

/* ---- heap ---- */

static inline void
heap_place(struct evpl_timers *t, uint32_t i, struct evpl_timer_heap_entry e)
{
    t->heap[i] = e;
    t->nodes[e.node].heap_idx = i;
} /* heap_place */

static void
sift_up(struct evpl_timers *t, uint32_t i)
{
    struct evpl_timer_heap_entry e = t->heap[i];

    while (i > 0) {
        uint32_t parent = (i - 1) / 2;

        if (t->heap[parent].deadline <= e.deadline) {
            break;
        }
        heap_place(t, i, t->heap[parent]);
        i = parent;
    }
    heap_place(t, i, e);
} /* sift_up */

static void
sift_down(struct evpl_timers *t, uint32_t i)
{
    struct evpl_timer_heap_entry e = t->heap[i];

    for (;;) {
        uint32_t c = 2 * i + 1;

        if (c >= t->heap_len) {
            break;
        }
        if (c + 1 < t->heap_len && t->heap[c + 1].deadline < t->heap[c].deadline) {
            c++;
        }
        if (e.deadline <= t->heap[c].deadline) {
            break;
        }
        heap_place(t, i, t->heap[c]);
        i = c;
    }
    heap_place(t, i, e);
} /* sift_down */

static void
heap_push(struct evpl_timers *t, uint32_t node, uint64_t deadline)
{
    evpl_array_reserve(t->heap, t->heap_cap, t->heap_len);
    t->heap[t->heap_len].deadline = deadline;
    t->heap[t->heap_len].node = node;
    t->heap_len++;
    sift_up(t, t->heap_len - 1);
} /* heap_push */

static void
heap_delete(struct evpl_timers *t, uint32_t i)
{
    uint32_t node = t->heap[i].node;

    t->nodes[node].heap_idx = FIRING;
    t->heap_len--;
    if (i == t->heap_len) {
        return;
    }
    heap_place(t, i, t->heap[t->heap_len]);
    if (i > 0 && t->heap[i].deadline < t->heap[(i - 1) / 2].deadline) {
        sift_up(t, i);
    } else {
        sift_down(t, i);
    }
} /* heap_delete */

/* ---- API ---- */

static void
arm(struct evpl *evpl, struct evpl_timer *timer, evpl_timer_callback_t callback, uint64_t us,
    int oneshot)
{
    struct evpl_timers *t = &evpl->timers;
    uint64_t deadline;
    uint32_t node;

    /* about 290 years at most: deadlines stay far from overflowing */
    if (us > (1ull << 53) / 1000) {
        us = (1ull << 53) / 1000;
    }
    deadline = evpl__now(evpl) + us * 1000;

    timer->callback = callback;
    timer->interval = us;
    timer->deadline = deadline;
    timer->oneshot = oneshot;

    node = hash_find(t, timer);
    if (node == NO_NODE) {
        node = node_alloc(t, timer);
        hash_insert(t, timer, node);
    } else if (t->nodes[node].heap_idx != FIRING && t->nodes[node].heap_idx != LATER) {
        /* re-adding an armed timer: move it */
        heap_delete(t, t->nodes[node].heap_idx);
    }
    /* a timer armed by a timer callback never fires in the same run, even
     * when due (a 0 delay, the virtual clock): evpl__timers_run holds it
     * back and it fires on the next pass, its deadline unchanged */
    t->nodes[node].armed_run = t->firing ? t->run : t->run - 1;
    heap_push(t, node, deadline);
} /* arm */

EVPL_API void
evpl_add_timer(struct evpl *evpl, struct evpl_timer *timer, evpl_timer_callback_t callback,
               uint64_t interval_us)
{
    EVPL_OWNER_ONLY(evpl);
    /* 0 would re-fire forever within one pass under the virtual clock */
    arm(evpl, timer, callback, interval_us ? interval_us : 1, 0);
} /* evpl_add_timer */

EVPL_API void
evpl_add_oneshot_timer(struct evpl *evpl, struct evpl_timer *timer, evpl_timer_callback_t callback,
                       uint64_t delay_us)
{
    EVPL_OWNER_ONLY(evpl);
    arm(evpl, timer, callback, delay_us, 1);
} /* evpl_add_oneshot_timer */

EVPL_API void
evpl_remove_timer(struct evpl *evpl, struct evpl_timer *timer)
{
    EVPL_OWNER_ONLY(evpl);
    struct evpl_timers *t = &evpl->timers;
    uint32_t node = hash_find(t, timer);

    if (node == NO_NODE) {
        return;
    }
    if (t->nodes[node].heap_idx != FIRING && t->nodes[node].heap_idx != LATER) {
        heap_delete(t, t->nodes[node].heap_idx);
    }
    node_free(t, node);
} /* evpl_remove_timer */

unsigned
evpl__timers_run(struct evpl *evpl, uint64_t now)
{
    struct evpl_timers *t = &evpl->timers;
    unsigned fired = 0;

    t->firing = 1;
    t->run++;
    t->later_len = 0;
    while (t->heap_len && t->heap[0].deadline <= now) {
        uint32_t node = t->heap[0].node;
        struct evpl_timer *timer = t->nodes[node].timer;

        heap_delete(t, 0);
        if (t->nodes[node].armed_run == t->run) {
            /* armed by a callback of this run: the next pass fires it */
            evpl_array_reserve(t->later, t->later_cap, t->later_len);
            t->later[t->later_len++] = node;
            t->nodes[node].heap_idx = LATER;
            continue;
        }
        fired++;

        if (timer->oneshot) {
            /* disarmed before the callback: it may free or re-add it */
            node_free(t, node);
            timer->callback(evpl, timer);
            continue;
        }

        timer->callback(evpl, timer);

        /* still armed and not re-added by its callback: next period,
         * measured from the end of the callback (no catch-up) */
        node = hash_find(t, timer);
        if (node != NO_NODE && t->nodes[node].heap_idx == FIRING) {
            uint64_t deadline = evpl__now(evpl) + timer->interval * 1000;

            timer->deadline = deadline;
            t->nodes[node].armed_run = t->run;
            heap_push(t, node, deadline);
        }
    }
    for (uint32_t i = 0; i < t->later_len; i++) {
        uint32_t node = t->later[i];

        /* skip nodes removed meanwhile, or re-armed (then already pushed) */
        if (t->nodes[node].heap_idx == LATER) {
            heap_push(t, node, t->nodes[node].timer->deadline);
        }
    }
    t->firing = 0;
    return fired;
} /* evpl__timers_run */

void
evpl__timers_init(struct evpl_timers *t)
{
    memset(t, 0, sizeof(*t));
    t->free_node = NO_NODE;
} /* evpl__timers_init */

void
evpl__timers_destroy(struct evpl_timers *t)
{
    free(t->heap);
    free(t->nodes);
    free(t->hash);
    free(t->later);
    memset(t, 0, sizeof(*t));
} /* evpl__timers_destroy */
