/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_logging.h directly, include evpl/evpl.h instead"
#endif

/*
 * A log sink.  level is "debug", "info", "error" or "fatal"; module names
 * the subsystem; srcfile/lineno the call site.
 */
typedef void (*evpl_log_fn)(const char *level, const char *module, const char *srcfile, int lineno,
                            const char *fmt, va_list argp);

typedef void (*evpl_flush_fn)(void);

/*
 * Replace the process-wide log sink (log_fn must not be NULL) and the
 * optional flush hook.  Call before starting threads.  A custom sink gets
 * every message at or above EVPL_LOG_LEVEL (all levels when unset); the
 * default sink writes logfmt lines to stderr and is silent below "fatal"
 * unless EVPL_LOG_LEVEL (debug|info|error|fatal|none) asks for more.
 */
EVPL_API void evpl_set_log_fn(evpl_log_fn log_fn, evpl_flush_fn flush_fn);

/*
 * Extension, for the protocol modules and applications: one message at
 * level "debug", "info" or "error" through the same sink and threshold as
 * the library's own.  Any thread.
 */
EVPL_API void evpl_log_message(const char *level, const char *module, const char *srcfile,
                               int lineno, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Log at level "fatal", flush, abort().  Never returns.  Any thread. */
EVPL_API __attribute__((noreturn)) void evpl_abort(const char *mod, const char *srcfile, int lineno,
                                                   const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
