/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * Review: evpl_thread_config_init copies the global thread_default by
 * value without evpl_shared->lock, but thread_default.adopted_next is the
 * head of the adopted-config list, written under that lock by
 * evpl__thread_config_adopt (evpl_create on another thread).  Core
 * functions that create loops or configs may be called from any thread,
 * each with its own objects, so this is a data race (TSan reports it).
 */
#include <evpl/evpl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "t.h"

#define ROUNDS 2000

static atomic_int go;

static void *
creator(void *arg)
{
    (void) arg;
    while (!atomic_load(&go)) {
    }
    for (int i = 0; i < ROUNDS / 10; i++) {
        struct evpl_thread_config *tc = evpl_thread_config_init();
        struct evpl *evpl = evpl_create(tc); /* adopts tc */

        evpl_destroy(evpl);
        evpl_thread_config_release(tc);
    }
    return NULL;
}

static void *
initer(void *arg)
{
    (void) arg;
    while (!atomic_load(&go)) {
    }
    for (int i = 0; i < ROUNDS; i++) {
        evpl_thread_config_release(evpl_thread_config_init());
    }
    return NULL;
}

int
main(void)
{
    pthread_t a, b;

    evpl_init(NULL);
    T_EQ(pthread_create(&a, NULL, creator, NULL), 0);
    T_EQ(pthread_create(&b, NULL, initer, NULL), 0);
    atomic_store(&go, 1);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return 0;
}
