/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Logging.  The library is silent unless asked: the default sink only
 * prints fatal messages (the reason for an abort) unless EVPL_LOG_LEVEL
 * lowers the threshold.  A custom sink receives every level unless
 * EVPL_LOG_LEVEL raises it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"

int evpl__log_threshold = EVPL_LOG_FATAL;

static const char *const level_names[] = {"debug", "info", "error", "fatal"};

static int env_threshold = -1; /* -1: EVPL_LOG_LEVEL not set */
static evpl_log_fn log_fn;
static evpl_flush_fn flush_fn;

static int
parse_level(const char *s)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            return i;
        }
    }
    if (strcasecmp(s, "none") == 0) {
        return EVPL_LOG_NONE;
    }
    return -1;
} /* parse_level */

__attribute__((constructor)) static void
log_env_init(void)
{
    const char *s = getenv("EVPL_LOG_LEVEL");

    if (s && *s) {
        env_threshold = parse_level(s);
        if (env_threshold < 0) {
            fprintf(stderr,
                    "evpl: ignoring unknown EVPL_LOG_LEVEL=\"%s\" "
                    "(want debug, info, error, fatal or none)\n",
                    s);
        }
    }
    evpl__log_threshold = env_threshold >= 0 ? env_threshold : EVPL_LOG_FATAL;
} /* log_env_init */

static void
default_sink(const char *level, const char *module, const char *srcfile, int lineno,
             const char *fmt, va_list argp)
{
    struct timespec ts;
    struct tm tm;
    char msg[1024];
    const char *base = strrchr(srcfile, '/');

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    vsnprintf(msg, sizeof(msg), fmt, argp);
    /* one write per line so concurrent threads do not interleave */
    fprintf(stderr,
            "time=%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ message=\"%s\" "
            "process=%d thread=%ld level=%s module=%s file=\"%s:%d\"\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec, msg, (int) getpid(), (long) syscall(SYS_gettid), level, module,
            base ? base + 1 : srcfile, lineno);
} /* default_sink */

EVPL_API void
evpl_set_log_fn(evpl_log_fn fn, evpl_flush_fn flush)
{
    if (!fn) {
        /* upstream would crash on the first message; restore the default */
        log_fn = NULL;
        flush_fn = flush;
        evpl__log_threshold = env_threshold >= 0 ? env_threshold : EVPL_LOG_FATAL;
        return;
    }
    log_fn = fn;
    flush_fn = flush;
    evpl__log_threshold = env_threshold >= 0 ? env_threshold : EVPL_LOG_DEBUG;
} /* evpl_set_log_fn */

static void
vlog(int level, const char *module, const char *file, int line, const char *fmt, va_list ap)
{
    if (log_fn) {
        log_fn(level_names[level], module, file, line, fmt, ap);
    } else {
        default_sink(level_names[level], module, file, line, fmt, ap);
    }
} /* vlog */

void
evpl__log(int level, const char *module, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(level, module, file, line, fmt, ap);
    va_end(ap);
} /* evpl__log */

EVPL_API void
evpl_log_message(const char *level, const char *module, const char *srcfile, int lineno,
                 const char *fmt, ...)
{
    int lvl = EVPL_LOG_ERROR;
    va_list ap;

    for (int i = 0; i < EVPL_LOG_FATAL; i++) {
        if (level && strcmp(level, level_names[i]) == 0) {
            lvl = i;
        }
    }
    if (lvl < evpl__log_threshold) {
        return;
    }
    va_start(ap, fmt);
    vlog(lvl, module ? module : "app", srcfile, lineno, fmt, ap);
    va_end(ap);
} /* evpl_log_message */

EVPL_API void
evpl_abort(const char *mod, const char *srcfile, int lineno, const char *fmt, ...)
{
    va_list ap;

    if (EVPL_LOG_FATAL >= evpl__log_threshold) {
        va_start(ap, fmt);
        vlog(EVPL_LOG_FATAL, mod, srcfile, lineno, fmt, ap);
        va_end(ap);
    }
    if (flush_fn) {
        flush_fn();
    }
    fflush(stderr);
    abort();
} /* evpl_abort */

void *
evpl__zalloc(size_t size)
{
    void *p = calloc(1, size);

    if (!p) {
        evpl_bug("core", "out of memory allocating %zu bytes", size);
    }
    return p;
} /* evpl__zalloc */

void *
evpl__realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size);

    if (!p) {
        evpl_bug("core", "out of memory growing to %zu bytes", size);
    }
    return p;
} /* evpl__realloc */
