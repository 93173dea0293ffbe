/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * evpl_threadpool (thread.md statements 5 and 6): 16 threads with a NULL
 * config run init 16 times on distinct threads with the caller's argument
 * and fini 16 times (in creation order, each with its init's return value,
 * on its own thread); a non-NULL config is copied for every thread (no
 * double free), released by the caller afterwards, reusable, and every
 * thread honours it.
 */
#include "../core/t_loop.h"

#define MS 1000000ull
#define NT 16

struct slot {
    int index;
    pthread_t tid;
    int fini_calls;
    int fini_on_own_thread;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[NT];
static int ninit, nfini;
static int fini_order[NT];
static int wrong_arg;
static int pool_arg;

static void *
pool_init(struct evpl *evpl, void *arg)
{
    struct slot *s;

    pthread_mutex_lock(&lock);
    if (arg != &pool_arg) {
        wrong_arg++;
    }
    T_LT(ninit, NT);
    s = &slots[ninit];
    s->index = ninit++;
    s->tid = pthread_self();
    pthread_mutex_unlock(&lock);
    return s; /* per-thread private data */
} /* pool_init */

static void
pool_fini(struct evpl *evpl, void *arg)
{
    struct slot *s = arg;

    pthread_mutex_lock(&lock);
    s->fini_calls++;
    s->fini_on_own_thread = pthread_equal(s->tid, pthread_self());
    if (nfini < NT) {
        fini_order[nfini] = s->index;
    }
    nfini++;
    pthread_mutex_unlock(&lock);
} /* pool_fini */

static void
sixteen_threads(void)
{
    struct evpl_threadpool *pool;
    int i, j;

    pool = evpl_threadpool_create(NULL, NT, pool_init, pool_fini, &pool_arg);
    T_OK(pool != NULL);
    pthread_mutex_lock(&lock);
    T_EQ(ninit, NT); /* returns after every init */ /* thread 5 */
    T_EQ(wrong_arg, 0);                             /* thread 5 */
    for (i = 0; i < NT; i++) {
        T_OK(!pthread_equal(slots[i].tid, pthread_self()));
        for (j = 0; j < i; j++) {
            T_OK(!pthread_equal(slots[i].tid, slots[j].tid)); /* thread 5 */
        }
    }
    T_EQ(nfini, 0);
    pthread_mutex_unlock(&lock);

    evpl_threadpool_destroy(pool);
    pthread_mutex_lock(&lock);
    T_EQ(nfini, NT); /* thread 5 */
    for (i = 0; i < NT; i++) {
        T_EQ(slots[i].fini_calls, 1); /* thread 5 */
        T_EQ(slots[i].fini_on_own_thread, 1);
        T_EQ(fini_order[i], i); /* destroyed in creation order */
    }
    pthread_mutex_unlock(&lock);
} /* sixteen_threads */

/* ---- statement 6 -------------------------------------------------------- */

struct cfg_worker {
    struct evpl_poll *poll;
    struct evpl_timer timer;
};

static atomic_int poll_calls, timer_calls, cfg_inits, cfg_finis;

static void
counting_poll(struct evpl *evpl, void *p)
{
    atomic_fetch_add(&poll_calls, 1);
} /* counting_poll */

static void
counting_timer(struct evpl *evpl, struct evpl_timer *t)
{
    atomic_fetch_add(&timer_calls, 1);
} /* counting_timer */

/* Every worker pins poll mode: unless its config says poll_mode = 0, its
 * poll callback runs continuously. */
static void *
cfg_init(struct evpl *evpl, void *arg)
{
    struct cfg_worker *w = calloc(1, sizeof(*w));

    w->poll = evpl_add_poll(evpl, NULL, NULL, counting_poll, NULL);
    evpl_poll_pin(evpl);
    evpl_activity(evpl);
    evpl_add_timer(evpl, &w->timer, counting_timer, 10000);
    atomic_fetch_add(&cfg_inits, 1);
    return w;
} /* cfg_init */

static void
cfg_fini(struct evpl *evpl, void *arg)
{
    struct cfg_worker *w = arg;

    evpl_poll_unpin(evpl);
    evpl_remove_poll(evpl, w->poll);
    evpl_remove_timer(evpl, &w->timer);
    free(w);
    atomic_fetch_add(&cfg_finis, 1);
} /* cfg_fini */

static void
config_per_thread(void)
{
    struct evpl_thread_config *cfg = evpl_thread_config_init();
    struct evpl_threadpool *pool, *pool2;
    uint64_t t0;

    /* control: with the default config the pinned polls do run, so the
     * check below can tell a thread that ignored cfg */
    pool = evpl_threadpool_create(NULL, 2, cfg_init, cfg_fini, NULL);
    t0 = t_now_ns();
    while (atomic_load(&poll_calls) == 0) {
        T_LT(t_now_ns() - t0, 5000 * MS);
        t_sleep_ms(1);
    }
    evpl_threadpool_destroy(pool);
    T_EQ(atomic_load(&cfg_finis), 2);

    /* statement 6: cfg (poll_mode = 0) shared by 4 threads: each gets its
     * own copy (ASan flags a double free / use after free otherwise) and
     * none of them polls */
    evpl_thread_config_set_poll_mode(cfg, 0);
    atomic_store(&poll_calls, 0);
    atomic_store(&timer_calls, 0);
    pool = evpl_threadpool_create(cfg, 4, cfg_init, cfg_fini, NULL); /* thread 6 */
    T_OK(pool != NULL);
    T_EQ(atomic_load(&cfg_inits), 6);
    /* the same object again (it was borrowed, not consumed) */
    pool2 = evpl_threadpool_create(cfg, 3, cfg_init, cfg_fini, NULL); /* thread 6 */
    T_EQ(atomic_load(&cfg_inits), 9);
    evpl_thread_config_release(cfg); /* the pools keep their own copies */
    t0 = t_now_ns();
    while (atomic_load(&timer_calls) < 7 * 5) {
        T_LT(t_now_ns() - t0, 5000 * MS);
        t_sleep_ms(5);
    }
    T_EQ(atomic_load(&poll_calls), 0); /* thread 6 */
    evpl_threadpool_destroy(pool);
    evpl_threadpool_destroy(pool2);
    T_EQ(atomic_load(&cfg_finis), 9);
    T_EQ(atomic_load(&poll_calls), 0); /* thread 6 */
} /* config_per_thread */

/* a pool of one, and a pool with NULL callbacks */
static void
small_pools(void)
{
    struct evpl_thread_config *cfg = evpl_thread_config_init();
    struct evpl_threadpool *pool;

    pool = evpl_threadpool_create(cfg, 1, NULL, NULL, NULL);
    evpl_thread_config_release(cfg);
    evpl_threadpool_destroy(pool);
    pool = evpl_threadpool_create(NULL, 3, NULL, NULL, NULL);
    evpl_threadpool_destroy(pool);
} /* small_pools */

int
main(void)
{
    alarm(60);
    evpl_init(t_global_config());
    sixteen_threads();   /* thread 5 */
    config_per_thread(); /* thread 6 */
    small_pools();
    return 0;
} /* main */
