/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Process initialisation and the loop itself: creation, one pass
 * (evpl_continue), run/stop, destroy, hooks.
 */
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

struct evpl_shared *evpl_shared;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

static void
evpl_atexit(void)
{
    /* Loops still alive at exit belong to threads we cannot stop safely;
     * free only what is ours alone. */
    evpl__thread_config_free_adopted();
    evpl__mem_exit_check();
} /* evpl_atexit */

/* Called with init_lock held. */
static void
shared_init(struct evpl_global_config *config)
{
    struct evpl_shared *s;

    if (!config) {
        config = evpl_global_config_init();
    }

    s = evpl__zalloc(sizeof(*s));
    s->config = config;
    pthread_mutex_init(&s->lock, NULL);

    /* EVPL_CORE_MECH=epoll|select|io_uring picks one when the config did not */
    if (config->core_mech == EVPL_CORE_MECH_DEFAULT && getenv("EVPL_CORE_MECH")) {
        const char *m = getenv("EVPL_CORE_MECH");

        config->core_mech = strcmp(m, "io_uring") == 0 ? EVPL_CORE_MECH_IO_URING
                            : strcmp(m, "select") == 0 ? EVPL_CORE_MECH_SELECT
                                                       : EVPL_CORE_MECH_EPOLL;
    }
    switch (config->core_mech) {
        case EVPL_CORE_MECH_DEFAULT:
        case EVPL_CORE_MECH_EPOLL:
            s->mech = &evpl_mech_epoll;
            break;
        case EVPL_CORE_MECH_SELECT:
            s->mech = &evpl_mech_select;
            break;
#ifdef HAVE_IO_URING
        case EVPL_CORE_MECH_IO_URING:
            s->mech = &evpl_mech_io_uring;
            break;
#endif
        default:
            evpl_bug("core", "core mechanism %d is not available on this platform",
                     (int) config->core_mech);
    }

    evpl__global_config_effective(config);
    s->virtual_clock = config->virtual_clock;
    atomic_init(&s->virtual_now, 0);
    evpl__clock_init(config->hf_time_mode);
    evpl__mem_init(config);

    signal(SIGPIPE, SIG_IGN);

    __atomic_store_n(&evpl_shared, s, __ATOMIC_RELEASE);
    atexit(evpl_atexit);
} /* shared_init */

EVPL_API void
evpl_init(struct evpl_global_config *global_config)
{
    pthread_mutex_lock(&init_lock);
    if (evpl_shared) {
        pthread_mutex_unlock(&init_lock);
        evpl_bug("core", "evpl_init called after the library was already initialised");
    }
    shared_init(global_config);
    pthread_mutex_unlock(&init_lock);
} /* evpl_init */

void
evpl__ensure_init(void)
{
    pthread_mutex_lock(&init_lock);
    if (!evpl_shared) {
        shared_init(NULL);
    }
    pthread_mutex_unlock(&init_lock);
} /* evpl__ensure_init */

/* the loops this thread owns: a deferral's init asks them whether it is
 * armed (deferral.c) */
static __thread struct evpl *thread_loops;

struct evpl *
evpl__thread_loops(void)
{
    return thread_loops;
} /* evpl__thread_loops */

static void
wake_callback(struct evpl *evpl, struct evpl_doorbell *doorbell)
{
    /* nothing to do: waking up was the point (evpl_stop) */
} /* wake_callback */

struct evpl *
evpl__create(const struct evpl_thread_config *config)
{
    struct evpl *evpl;
    int rc;

    evpl_auto_init();

    evpl = aligned_alloc(EVPL_CACHELINE, sizeof(*evpl));
    if (!evpl) {
        evpl_bug("core", "out of memory creating a loop");
    }
    memset(evpl, 0, sizeof(*evpl));

    evpl__thread_config_copy(&evpl->config, config ? config : &evpl_shared->config->thread_default);

    evpl__timers_init(&evpl->timers);
    evpl__mem_loop_init(evpl);

    evpl->mech = evpl_shared->mech;
    rc = evpl->mech->create(evpl);
#ifdef HAVE_IO_URING
    if (rc < 0 && evpl->mech == &evpl_mech_io_uring) {
        /* disabled by sysctl, refused by seccomp, or too old a kernel */
        evpl_log_error("core", "io_uring wait mechanism unavailable (%s): using epoll",
                       strerror(-rc));
        evpl->mech = &evpl_mech_epoll;
        rc = evpl->mech->create(evpl);
    }
#endif
    if (rc < 0) {
        evpl_bug("core", "cannot create the %s wait mechanism: %s", evpl->mech->name,
                 strerror(-rc));
    }

    evpl->now = evpl__now(evpl);
    evpl->last_activity = evpl->now; /* the spin window starts at creation */
    evpl->owner = pthread_self();

    evpl_add_doorbell(evpl, &evpl->wake, wake_callback);

    pthread_mutex_lock(&evpl_shared->lock);
    evpl->next = evpl_shared->loops;
    if (evpl->next) {
        evpl->next->prev = evpl;
    }
    evpl_shared->loops = evpl;
    pthread_mutex_unlock(&evpl_shared->lock);

    evpl->thread_next = thread_loops;
    if (thread_loops) {
        thread_loops->thread_prev = evpl;
    }
    thread_loops = evpl;
    return evpl;
} /* evpl__create */

EVPL_API struct evpl *
evpl_create(struct evpl_thread_config *config)
{
    struct evpl *evpl = evpl__create(config);

    evpl__thread_config_adopt(config);
    return evpl;
} /* evpl_create */

EVPL_API void
evpl_destroy(struct evpl *evpl)
{
    EVPL_OWNER_ONLY(evpl);
    struct evpl_shared *s = evpl_shared;

    /* an evpl_stop from another thread that let evpl_run return may still
     * be ringing the wake doorbell (evpl_stop) */
    while (atomic_load_explicit(&evpl->stoppers, memory_order_acquire)) {
        sched_yield();
    }

    /* every bind gets its DISCONNECTED, then block queues left open are
     * closed, their I/O done (callbacks run here: a DISCONNECTED callback
     * may still use a queue; any callback may open more queues, but no
     * more binds: evpl__binds_close_all) */
    evpl->destroying = 1;
    while (evpl->binds || evpl->block_queues) {
        if (evpl->binds) {
            evpl__binds_close_all(evpl);
        }
        if (evpl->block_queues) {
            evpl__block_loop_cleanup(evpl);
        }
    }

    /* no exit callbacks (core.md §5: polls are not retired here): a
     * thread's shutdown callback has already run and may have freed
     * their contexts */
    evpl->poll_mode = 0;

    evpl__net_loop_cleanup(evpl);
#ifdef HAVE_IO_URING
    if (evpl->uring) {
        evpl__uring_loop_cleanup(evpl); /* waits for requests still in flight */
    }
#endif
    evpl_remove_doorbell(evpl, &evpl->wake);

    /* The spec leaves removal of doorbells to the application; close the
     * descriptors of any it forgot so they do not leak. */
    while (evpl->doorbells_len) {
        struct evpl_doorbell_impl *db = evpl->doorbells[evpl->doorbells_len - 1];

        evpl_log_error("core", "evpl_destroy: doorbell %p still registered", (void *) db);
        evpl_remove_doorbell(evpl, (struct evpl_doorbell *) db);
    }

    if (evpl->thread_prev) {
        evpl->thread_prev->thread_next = evpl->thread_next;
    } else {
        thread_loops = evpl->thread_next;
    }
    if (evpl->thread_next) {
        evpl->thread_next->thread_prev = evpl->thread_prev;
    }

    pthread_mutex_lock(&s->lock);
    if (evpl->prev) {
        evpl->prev->next = evpl->next;
    } else {
        s->loops = evpl->next;
    }
    if (evpl->next) {
        evpl->next->prev = evpl->prev;
    }
    s->retired_passes += atomic_load(&evpl->counters.passes);
    s->retired_events += atomic_load(&evpl->counters.events);
    s->retired_sleeps += atomic_load(&evpl->counters.sleeps);
    s->retired_poll_ns += atomic_load(&evpl->counters.poll_ns);
    s->retired_switches += atomic_load(&evpl->counters.switches);
    s->retired_timers += atomic_load(&evpl->counters.timers);
    s->retired_cache_hits += atomic_load(&evpl->mem.hits);
    s->retired_cache_misses += atomic_load(&evpl->mem.misses);
    pthread_mutex_unlock(&s->lock);

    evpl__mem_loop_cleanup(evpl);
    evpl__polls_destroy(evpl);
    evpl__timers_destroy(&evpl->timers);
    evpl->mech->destroy(evpl);
    free(evpl->active);
    free(evpl->deferrals);
    free(evpl->deferrals_next);
    free(evpl->doorbells);
    free(evpl);
} /* evpl_destroy */

/* Enter or leave poll mode (loop.md §4.2 with DESIGN §9.1). */
static void
update_poll_mode(struct evpl *evpl, uint64_t now)
{
    int want;

    if (evpl->activity) {
        evpl->activity = 0;
        evpl->last_activity = now;
    }

    want = evpl->config.poll_mode &&
           (evpl->pins > 0 || now - evpl->last_activity <= evpl->config.spin_ns);

    if (want == evpl->poll_mode) {
        if (want) {
            evpl__polls_enter(evpl); /* polls added since entering, dormancy */
            if (evpl->in_run && !atomic_load_explicit(&evpl->polling, memory_order_relaxed)) {
                atomic_store(&evpl->polling, 1); /* evpl_run began while polling */
            }
        }
        return;
    }

    evpl_counter_add(&evpl->counters.switches, 1);
    if (want) {
        evpl->poll_mode = 1;
        evpl->poll_since = now;
        /* Ringers may now skip the eventfd; doorbells_pending is checked
         * every pass while polling.  Only inside evpl_run: a loop driven by
         * hand may wait on evpl_doorbell_fd between calls. */
        if (evpl->in_run) {
            atomic_store(&evpl->polling, 1);
        }
        evpl__polls_enter(evpl);
    } else {
        evpl->poll_mode = 0;
        /* seq_cst store, then the pending check before sleeping: a ringer
         * either sees polling == 0 and writes the eventfd, or we see its
         * doorbells_pending increment. */
        atomic_store(&evpl->polling, 0);
        evpl_counter_add(&evpl->counters.poll_ns, now - evpl->poll_since);
        evpl__polls_exit(evpl);
    }
} /* update_poll_mode */

static int64_t
wait_timeout_ns(struct evpl *evpl, uint64_t now)
{
    int64_t timeout = evpl->config.wait_ms < 0 ? -1 : (int64_t) evpl->config.wait_ms * 1000000;
    uint64_t next = evpl__timers_next(&evpl->timers);

    if (evpl->poll_mode || evpl_shared->virtual_clock || evpl->mech_full || evpl->deferrals_len ||
        evpl->deferrals_next_len || evpl->closing || (evpl->activity && evpl->config.poll_mode) ||
        atomic_load(&evpl->doorbells_pending) || (evpl->active_len && evpl__events_compact(evpl))) {
        return 0;
    }

    if (next != UINT64_MAX) {
        uint64_t gap = next > now ? next - now : 0;
        int64_t until = gap > (uint64_t) INT64_MAX ? INT64_MAX : (int64_t) gap;

        if (timeout < 0 || until < timeout) {
            timeout = until;
        }
    }
    return timeout;
} /* wait_timeout_ns */

static void
full_pass(struct evpl *evpl)
{
    uint64_t now;
    int64_t timeout;
    int n;

    now = evpl__now(evpl);
    evpl->now = now;

    if (evpl->timers.heap_len && evpl__timers_next(&evpl->timers) <= now) {
        unsigned fired = evpl__timers_run(evpl, now);

        if (fired) {
            evpl->activity = 1;
            evpl_counter_add(&evpl->counters.timers, fired);
        }
    }

    update_poll_mode(evpl, now);

    timeout = wait_timeout_ns(evpl, now);

    if (evpl->hooks.pre_wait) {
        evpl->hooks.pre_wait(evpl, evpl->hooks.private_data);
    }
#ifdef HAVE_IO_URING
    if (evpl->uring) {
        evpl__uring_pre_wait(evpl);
    }
#endif
    if (timeout != 0) {
        evpl_counter_add(&evpl->counters.sleeps, 1);
    }
    n = evpl->mech->wait(evpl, timeout);
    if (evpl->hooks.post_wait) {
        evpl->hooks.post_wait(evpl, evpl->hooks.private_data);
    }
    if (evpl->mech->reap) {
        /* a wait can collect what is no news: the cancel of a removed
         * fd's poll, or that poll's last word (io_uring) */
        n = evpl->mech->reap(evpl);
    }

    if (n > 0) {
        evpl->activity = 1;
    }

    /* binds closed on an earlier pass get their DISCONNECTED now */
    if (evpl->closing) {
        evpl__binds_finalize(evpl);
    }

    evpl->poll_passes = 0;
} /* full_pass */

EVPL_API void
evpl_continue(struct evpl *evpl)
{
    EVPL_OWNER_ONLY(evpl);
    unsigned ran;

    /* what an earlier pass put off runs in this one's deferral dispatch;
     * what this pass puts off (from timers, the wait's reaps, polls,
     * events or deferrals) waits for the next (helper-92: promoted after
     * the wait, a deferral put off by a reap ran in the pass that armed
     * it) */
    if (evpl->deferrals_next_len) {
        evpl__deferrals_promote(evpl);
    }

    if (evpl->poll_mode && evpl->polls_len && evpl->poll_passes < evpl->config.poll_iterations &&
        evpl__polls_settled(evpl)) {
        /* poll-only pass: no clock, no syscall */
        evpl->poll_passes++;
        evpl__polls_run(evpl);
    } else {
        full_pass(evpl);
    }

    if (atomic_load_explicit(&evpl->doorbells_pending, memory_order_relaxed)) {
        evpl__doorbells_collect(evpl);
    }

    if (evpl->active_len) {
        ran = evpl__events_dispatch(evpl);
        if (ran) {
            evpl_counter_add(&evpl->counters.events, ran);
        }
    }

    if (evpl->deferrals_len) {
        evpl__deferrals_run(evpl);
    }

#ifdef HAVE_IO_URING
    if (evpl->uring || evpl->mech == &evpl_mech_io_uring) {
        evpl__uring_pass_end(evpl);
    }
#endif

    if (evpl->hooks.iteration_end) {
        /* block requests made here reach the kernel in this pass too
         * (block.md §3 rule 1: helper-114) */
        evpl->pass_tail = 1;
        evpl->hooks.iteration_end(evpl, evpl->hooks.private_data);
        evpl->pass_tail = 0;
#ifdef HAVE_IO_URING
        if (evpl->uring || evpl->mech == &evpl_mech_io_uring) {
            evpl__uring_pass_end(evpl);
        }
#endif
    }

    evpl_counter_add(&evpl->counters.passes, 1);
} /* evpl_continue */

EVPL_API void
evpl_run(struct evpl *evpl)
{
    EVPL_OWNER_ONLY(evpl);
    evpl->in_run = 1;
    while (!atomic_load_explicit(&evpl->stopped, memory_order_acquire)) {
        evpl_continue(evpl);
    }
    evpl->in_run = 0;
    evpl__doorbells_quiesce(evpl);
} /* evpl_run */

EVPL_API void
evpl_stop(struct evpl *evpl)
{
    /* Counted while it runs: the owner may see stopped, return from
     * evpl_run and destroy the loop while this thread is still ringing
     * (writing to the eventfd destroy closes, whose number may by then be
     * another file's); evpl_destroy waits for the count to drop. */
    atomic_fetch_add_explicit(&evpl->stoppers, 1, memory_order_seq_cst);
    if (!atomic_exchange_explicit(&evpl->stopped, 1, memory_order_acq_rel)) {
        evpl_ring_doorbell(&evpl->wake);
    }
    atomic_fetch_sub_explicit(&evpl->stoppers, 1, memory_order_release);
} /* evpl_stop */

EVPL_API void
evpl_set_loop_hooks(struct evpl *evpl, const struct evpl_loop_hooks *hooks)
{
    EVPL_OWNER_ONLY(evpl);
    if (hooks) {
        evpl->hooks = *hooks;
    } else {
        memset(&evpl->hooks, 0, sizeof(evpl->hooks));
    }
} /* evpl_set_loop_hooks */
