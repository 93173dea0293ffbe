/* SPDX-License-Identifier: LGPL-2.1-only */
/* evpl_metrics_scrape: Prometheus text exposition format 0.0.4. */
#include <stdarg.h>
#include <stdio.h>

#include "block/block.h"
#include "core/internal.h"
#include "core/metrics_source.h"

#define MAX_SOURCES 8

struct out {
    char *buf;
    int size;
    int len;
    int overflow;
};

static pthread_mutex_t sources_lock = PTHREAD_MUTEX_INITIALIZER;
static evpl_metrics_source_fn sources[MAX_SOURCES];

EVPL_API int
evpl__metrics_source_add(evpl_metrics_source_fn fn)
{
    int free_slot = -1;

    pthread_mutex_lock(&sources_lock);
    for (int i = 0; i < MAX_SOURCES; i++) {
        if (sources[i] == fn) {
            pthread_mutex_unlock(&sources_lock);
            return 0;
        }
        if (!sources[i] && free_slot < 0) {
            free_slot = i;
        }
    }
    if (free_slot >= 0) {
        sources[free_slot] = fn;
    }
    pthread_mutex_unlock(&sources_lock);
    return free_slot >= 0 ? 0 : -1;
} /* evpl__metrics_source_add */

EVPL_API void
evpl__metrics_source_remove(evpl_metrics_source_fn fn)
{
    pthread_mutex_lock(&sources_lock);
    for (int i = 0; i < MAX_SOURCES; i++) {
        if (sources[i] == fn) {
            sources[i] = NULL;
        }
    }
    pthread_mutex_unlock(&sources_lock);
} /* evpl__metrics_source_remove */

/* Appends what a source writes; marks the output short when it does not fit. */
static void
append(struct out *o, evpl_metrics_source_fn fn)
{
    int n;

    if (o->overflow) {
        return;
    }
    n = fn(o->buf + o->len, o->size - o->len);
    if (n < 0 || n >= o->size - o->len) {
        o->overflow = 1;
    } else {
        o->len += n;
    }
} /* append */

static void __attribute__((format(printf, 2, 3))) emit(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->overflow) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->len, (size_t) (o->size - o->len), fmt, ap);
    va_end(ap);
    if (n < 0 || n >= o->size - o->len) {
        o->overflow = 1;
        return;
    }
    o->len += n;
} /* emit */

static void
family(struct out *o, const char *name, const char *type, const char *help, const char *value)
{
    emit(o, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, type, name, value);
} /* family */

static void
family_u64(struct out *o, const char *name, const char *type, const char *help, uint64_t v)
{
    char value[32];

    snprintf(value, sizeof(value), "%llu", (unsigned long long) v);
    family(o, name, type, help, value);
} /* family_u64 */

EVPL_API int
evpl_metrics_scrape(char *buffer, int buffer_size)
{
    struct evpl_shared *s;
    struct evpl *evpl;
    struct out o = {buffer, buffer_size, 0, 0};
    uint64_t passes, events, sleeps, poll_ns, switches, timers, loops = 0;
    uint64_t hits, misses;
    struct evpl_mem_stats mem;
    char secs[32];

    evpl_auto_init();
    if (!buffer || buffer_size <= 0) {
        return -1;
    }
    s = evpl_shared;

    pthread_mutex_lock(&s->lock);
    passes = s->retired_passes;
    events = s->retired_events;
    sleeps = s->retired_sleeps;
    poll_ns = s->retired_poll_ns;
    switches = s->retired_switches;
    timers = s->retired_timers;
    hits = s->retired_cache_hits;
    misses = s->retired_cache_misses;
    for (evpl = s->loops; evpl; evpl = evpl->next) {
        loops++;
        passes += atomic_load_explicit(&evpl->counters.passes, memory_order_relaxed);
        events += atomic_load_explicit(&evpl->counters.events, memory_order_relaxed);
        sleeps += atomic_load_explicit(&evpl->counters.sleeps, memory_order_relaxed);
        poll_ns += atomic_load_explicit(&evpl->counters.poll_ns, memory_order_relaxed);
        switches += atomic_load_explicit(&evpl->counters.switches, memory_order_relaxed);
        timers += atomic_load_explicit(&evpl->counters.timers, memory_order_relaxed);
        hits += atomic_load_explicit(&evpl->mem.hits, memory_order_relaxed);
        misses += atomic_load_explicit(&evpl->mem.misses, memory_order_relaxed);
    }
    pthread_mutex_unlock(&s->lock);

    family_u64(&o, "evpl_loops", "gauge", "Event loops alive.", loops);
    family_u64(&o, "evpl_loop_passes_total", "counter", "Loop passes (evpl_continue calls).",
               passes);
    family_u64(&o, "evpl_loop_events_total", "counter",
               "Event callbacks dispatched (fd readiness, doorbells).", events);
    family_u64(&o, "evpl_loop_sleeps_total", "counter",
               "Readiness waits that were allowed to block.", sleeps);
    snprintf(secs, sizeof(secs), "%.9f", (double) poll_ns / 1e9);
    family(&o, "evpl_loop_poll_mode_seconds_total", "counter",
           "Time spent in poll (busy-spin) mode, completed periods.", secs);
    family_u64(&o, "evpl_loop_mode_switches_total", "counter",
               "Transitions between event (sleeping) and poll mode.", switches);
    family_u64(&o, "evpl_loop_timers_fired_total", "counter", "Timer callbacks run.", timers);

    evpl__mem_stats(&mem);
    family_u64(&o, "evpl_allocator_slabs_inline_total", "counter",
               "Slabs built synchronously by an allocating thread.", mem.slabs);
    family_u64(&o, "evpl_allocator_slabs_prealloc_total", "counter",
               "Slabs built by preallocation threads.", 0);
    family_u64(&o, "evpl_allocator_consumer_waits_total", "counter",
               "Times an allocating thread waited for a preallocated buffer.", 0);
    family_u64(&o, "evpl_allocator_consumer_wait_ns_total", "counter",
               "Nanoseconds spent in those waits.", 0);
    family_u64(&o, "evpl_allocator_free_buffers", "gauge", "Buffers on the global free list.",
               mem.free_buffers);
    family_u64(&o, "evpl_allocator_outstanding_slabs", "gauge",
               "Slab builds requested and not finished.", 0);
    family_u64(&o, "evpl_allocator_target_buffers", "gauge", "Preallocation target.", 0);
    family_u64(&o, "evpl_allocator_total_slabs", "gauge", "Slabs ever allocated.", mem.slabs);
    family_u64(&o, "evpl_allocator_mapped_bytes", "gauge", "Bytes of slab address space mapped.",
               mem.mapped_bytes);
    family_u64(&o, "evpl_allocator_buffers_in_use", "gauge",
               "Buffers referenced by someone (on no free list).", mem.buffers_in_use);
    family_u64(&o, "evpl_allocator_bytes_in_use", "gauge", "Bytes of the buffers in use.",
               mem.buffers_in_use * mem.buffer_size);
    family_u64(&o, "evpl_allocator_cache_hits_total", "counter",
               "Buffers a loop took from its own free lists.", hits);
    family_u64(&o, "evpl_allocator_cache_misses_total", "counter",
               "Buffers a loop had to take from the global pool.", misses);

    append(&o, evpl__block_metrics);
    pthread_mutex_lock(&sources_lock);
    for (int i = 0; i < MAX_SOURCES; i++) {
        if (sources[i]) {
            append(&o, sources[i]);
        }
    }
    pthread_mutex_unlock(&sources_lock);
    if (o.overflow) {
        if (buffer_size > 0) {
            buffer[0] = '\0';
        }
        return -1;
    }
    return o.len;
} /* evpl_metrics_scrape */
