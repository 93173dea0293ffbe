/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * evpl_thread / evpl_threadpool: a pthread running one loop with an init
 * and a shutdown callback.  Each thread gets its own copy of the config.
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

struct evpl_thread {
    pthread_t tid;
    struct evpl *evpl;
    struct evpl_thread_config config;
    int has_config;
    evpl_thread_init_callback_t init;
    evpl_thread_shutdown_callback_t shutdown;
    void *private_data;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready;
    int exiting; /* stop doorbell is gone */

    /* private wakeup: evpl_thread_destroy never calls into the loop */
    struct evpl_doorbell stop;
};

struct evpl_threadpool {
    int nthreads;
    struct evpl_thread *threads[];
};

static void
stop_callback(struct evpl *evpl, struct evpl_doorbell *doorbell)
{
    evpl_stop(evpl);
} /* stop_callback */

static void *
thread_main(void *arg)
{
    struct evpl_thread *t = arg;

    t->evpl = evpl__create(t->has_config ? &t->config : NULL);
    evpl_add_doorbell(t->evpl, &t->stop, stop_callback);

    if (t->init) {
        t->private_data = t->init(t->evpl, t->private_data);
    }

    pthread_mutex_lock(&t->lock);
    t->ready = 1;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);

    evpl_run(t->evpl);

    /* open binds get their DISCONNECTED before the shutdown callback, and
     * no new ones are made from here (evpl__binds_close_all) */
    t->evpl->destroying = 1;
    if (t->evpl->binds) {
        evpl__binds_close_all(t->evpl);
    }

    if (t->shutdown) {
        t->shutdown(t->evpl, t->private_data);
    }

    pthread_mutex_lock(&t->lock);
    t->exiting = 1;
    pthread_mutex_unlock(&t->lock);
    evpl_remove_doorbell(t->evpl, &t->stop);

    evpl_destroy(t->evpl);
    return NULL;
} /* thread_main */

static struct evpl_thread *
thread_start(const struct evpl_thread_config *config, evpl_thread_init_callback_t init_function,
             evpl_thread_shutdown_callback_t shutdown_function, void *private_data)
{
    struct evpl_thread *t = evpl__zalloc(sizeof(*t));
    pthread_attr_t attr;
    int rc;

    if (config) {
        evpl__thread_config_copy(&t->config, config);
        t->has_config = 1;
    }
    t->init = init_function;
    t->shutdown = shutdown_function;
    t->private_data = private_data;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 8 * 1024 * 1024);
    rc = pthread_create(&t->tid, &attr, thread_main, t);
    pthread_attr_destroy(&attr);
    if (rc) {
        evpl_bug("thread", "pthread_create: %s", strerror(rc));
    }

    pthread_mutex_lock(&t->lock);
    while (!t->ready) {
        pthread_cond_wait(&t->cond, &t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return t;
} /* thread_start */

EVPL_API struct evpl_thread *
evpl_thread_create(struct evpl_thread_config *config, evpl_thread_init_callback_t init_function,
                   evpl_thread_shutdown_callback_t shutdown_function, void *private_data)
{
    struct evpl_thread *t;

    evpl_auto_init();
    t = thread_start(config, init_function, shutdown_function, private_data);
    evpl__thread_config_adopt(config);
    return t;
} /* evpl_thread_create */

EVPL_API void
evpl_thread_destroy(struct evpl_thread *t)
{
    if (pthread_equal(t->tid, pthread_self())) {
        evpl_bug("thread", "evpl_thread_destroy called from the thread itself");
    }

    pthread_mutex_lock(&t->lock);
    if (!t->exiting) {
        evpl_ring_doorbell(&t->stop);
    }
    pthread_mutex_unlock(&t->lock);

    pthread_join(t->tid, NULL);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    free(t);
} /* evpl_thread_destroy */

EVPL_API struct evpl_threadpool *
evpl_threadpool_create(struct evpl_thread_config *config, int nthreads,
                       evpl_thread_init_callback_t init_function,
                       evpl_thread_shutdown_callback_t shutdown_function, void *private_data)
{
    struct evpl_threadpool *pool;

    evpl_auto_init();
    if (nthreads < 0) {
        nthreads = 0;
    }
    pool = evpl__zalloc(sizeof(*pool) + (size_t) nthreads * sizeof(pool->threads[0]));
    pool->nthreads = nthreads;
    /* every thread gets its own copy (upstream frees one object N times) */
    for (int i = 0; i < nthreads; i++) {
        pool->threads[i] = thread_start(config, init_function, shutdown_function, private_data);
    }
    evpl__thread_config_adopt(config);
    return pool;
} /* evpl_threadpool_create */

EVPL_API void
evpl_threadpool_destroy(struct evpl_threadpool *pool)
{
    for (int i = 0; i < pool->nthreads; i++) {
        evpl_thread_destroy(pool->threads[i]);
    }
    free(pool);
} /* evpl_threadpool_destroy */
