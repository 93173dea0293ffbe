/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_thread.h directly, include evpl/evpl.h instead"
#endif

struct evpl_thread;
struct evpl_threadpool;

/* Runs on the new thread after its loop is created; its return value
 * becomes the thread's private data. */
typedef void *(*evpl_thread_init_callback_t)(struct evpl *evpl, void *private_data);

/* Runs on the thread after its loop stopped and its binds closed. */
typedef void (*evpl_thread_shutdown_callback_t)(struct evpl *evpl, void *private_data);

/*
 * Start a thread running one loop.  Borrows config (copied; NULL: global
 * thread defaults).  Returns owned, after init_function has returned.
 * Any thread.
 */
EVPL_API struct evpl_thread *evpl_thread_create(struct evpl_thread_config *config,
                                                evpl_thread_init_callback_t init_function,
                                                evpl_thread_shutdown_callback_t shutdown_function,
                                                void *private_data);

/*
 * Stop the thread, run its shutdown sequence, join it and free the handle.
 * Any thread except the target thread.
 */
EVPL_API void evpl_thread_destroy(struct evpl_thread *thread);

/* nthreads threads, each with its own copy of config (borrowed). */
EVPL_API struct evpl_threadpool *
evpl_threadpool_create(struct evpl_thread_config *config, int nthreads,
                       evpl_thread_init_callback_t init_function,
                       evpl_thread_shutdown_callback_t shutdown_function, void *private_data);

/* Destroy the threads in creation order, then the pool. */
EVPL_API void evpl_threadpool_destroy(struct evpl_threadpool *threadpool);
