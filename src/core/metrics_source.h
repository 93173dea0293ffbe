/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Metric families of the module libraries (libevpl_rpc2, ...), which
 * evpl_metrics_scrape appends after the core's own.  Internal to our
 * libraries: exported by libevpl.so for them, declared in no public header.
 */
#ifndef EVPL_CORE_METRICS_SOURCE_H
#define EVPL_CORE_METRICS_SOURCE_H

#include <evpl/evpl.h>

/* Appends text exposition lines to buf (size bytes, NUL-terminated);
 * returns the bytes written, or -1 when they do not fit.  Called from any
 * thread that scrapes, one call at a time. */
typedef int (*evpl_metrics_source_fn)(char *buf, int size);

/* 0, or -1 when every slot is taken.  Adding a source twice adds it once. */
EVPL_API int evpl__metrics_source_add(evpl_metrics_source_fn fn);

/* After it returns, fn is no longer called (a module unloading). */
EVPL_API void evpl__metrics_source_remove(evpl_metrics_source_fn fn);

#endif
