/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Slabs and the global buffer pool.
 *
 * A slab is one anonymous mapping (hugetlb when asked and available) of
 * slab_size bytes, mapped with MAP_NORESERVE on first need: untouched
 * pages cost nothing, so a process that never sends pays only for what it
 * touches.  Each slab is carved into buffer_size buffers whose descriptors
 * live outside the mapping.  Every registered framework gets every slab,
 * existing and future; slabs are never unmapped before exit because any
 * thread may still hold references.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/internal.h"
#include "mem/mem.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

uint64_t evpl__buffer_size;
static uint64_t buffer_stride; /* buffer_size rounded up to whole pages */
_Atomic int64_t evpl__buffers_in_use;
int evpl__mem_capped;

static struct {
    pthread_mutex_t lock;
    struct evpl_buffer *free;
    uint64_t nfree;
    /* GLOBAL buffers their owners freed: handed out again only as GLOBAL
     * (evpl__mem_global_freed_get) */
    struct evpl_buffer *global_free;
    uint64_t nglobal_free;
    struct evpl_slab *slabs;
    uint64_t nslabs;
    uint64_t mapped_bytes;
    uint64_t slab_size;        /* mapped: whole pages, at least one buffer */
    uint64_t slab_size_config; /* as configured */
    uint64_t huge_page_size;
    unsigned int max_slabs; /* 0 = unlimited */
    int huge;               /* cleared after a failed hugetlb map */
    const struct evpl_mem_framework *fw[EVPL_MEM_MAX_FRAMEWORKS];
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

void
evpl__mem_init(const struct evpl_global_config *config)
{
    const char *env = getenv("EVPL_MAX_SLABS");

    evpl__buffer_size = config->buffer_size;
    pool.slab_size = config->slab_size;
    pool.slab_size_config = config->slab_size;
    pool.huge = config->huge_pages;
    pool.huge_page_size = config->huge_page_size;
    pool.max_slabs = config->max_slabs;
    if (env && *env) {
        pool.max_slabs = (unsigned int) strtoul(env, NULL, 0);
    }
    evpl__mem_capped = pool.max_slabs != 0;

    buffer_stride = (evpl__buffer_size + 4095) & ~(uint64_t) 4095;
    /* slabs are mapped as configured (whole pages) and carved into as many
     * whole buffers as fit; evpl_get_slab_size reports the configured size,
     * and an evpl_slab_alloc slab is at least that large */
    pool.slab_size = (pool.slab_size + 4095) & ~(uint64_t) 4095;
    if (pool.slab_size < buffer_stride) {
        evpl_log_info("mem", "slab_size %llu < buffer_size %llu: using one buffer per slab",
                      (unsigned long long) config->slab_size,
                      (unsigned long long) evpl__buffer_size);
        pool.slab_size = buffer_stride;
    }
} /* evpl__mem_init */

void
evpl__buffer_poison(struct evpl_buffer *buf)
{
#if defined(__SANITIZE_ADDRESS__)
    /* a released buffer must not be touched until it is handed out again */
    ASAN_POISON_MEMORY_REGION(buf->data, evpl__buffer_size);
#else
    (void) buf;
#endif
} /* evpl__buffer_poison */

void
evpl__buffer_unpoison(struct evpl_buffer *buf)
{
#if defined(__SANITIZE_ADDRESS__)
    ASAN_UNPOISON_MEMORY_REGION(buf->data, evpl__buffer_size);
#else
    (void) buf;
#endif
} /* evpl__buffer_unpoison */

static void *
map_slab(uint64_t size, int *huge)
{
    void *p;

    if (pool.huge) {
        int shift = __builtin_ctzll(pool.huge_page_size);

        p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (shift << MAP_HUGE_SHIFT), -1, 0);
        if (p != MAP_FAILED) {
            *huge = 1;
            return p;
        }
        evpl_log_info("mem",
                      "hugetlb mapping of %llu bytes (%llu-byte pages) failed: %s; "
                      "using normal pages from now on",
                      (unsigned long long) size, (unsigned long long) pool.huge_page_size,
                      strerror(errno));
        pool.huge = 0;
    }
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
             0);
    *huge = 0;
    return p == MAP_FAILED ? NULL : p;
} /* map_slab */

/* Register a new slab with every framework; on failure undo and fail. */
static int
register_slab(struct evpl_slab *slab)
{
    for (int i = 0; i < EVPL_MEM_MAX_FRAMEWORKS; i++) {
        const struct evpl_mem_framework *fw = pool.fw[i];

        if (!fw) {
            continue;
        }
        slab->reg[i] = fw->register_slab(fw->arg, slab->base, slab->size);
        if (!slab->reg[i]) {
            evpl_log_error("mem", "framework %s could not register a %llu-byte slab", fw->name,
                           (unsigned long long) slab->size);
            for (int j = 0; j < i; j++) {
                if (pool.fw[j] && slab->reg[j] && pool.fw[j]->unregister_slab) {
                    pool.fw[j]->unregister_slab(pool.fw[j]->arg, slab->base, slab->size,
                                                slab->reg[j]);
                }
            }
            return -ENOMEM;
        }
    }
    return 0;
} /* register_slab */

/* The slab list for readers without the lock: slabs are only ever added
 * (at the head, fully built) and stay mapped until exit. */
static _Atomic(struct evpl_slab *) published;

struct evpl_buffer *
evpl__mem_buffer_of(const void *data, uint64_t len)
{
    const char *p = data;

    for (struct evpl_slab *s = atomic_load_explicit(&published, memory_order_acquire); s;
         s = s->next) {
        if (s->nbuffers && p >= s->base && p < s->base + (uint64_t) s->nbuffers * buffer_stride) {
            struct evpl_buffer *b = &s->buffers[(uint64_t) (p - s->base) / buffer_stride];

            return p + len <= b->data + evpl__buffer_size ? b : NULL;
        }
    }
    return NULL;
} /* evpl__mem_buffer_of */

/* Map, register and (when carve) split a new slab.  Called with pool.lock. */
static struct evpl_slab *
slab_create(int carve)
{
    struct evpl_slab *slab;
    uint64_t size = pool.slab_size;

    if (pool.max_slabs && pool.nslabs >= pool.max_slabs) {
        static unsigned int hits; /* under pool.lock */

        /* a transport retrying for receive space hits this often: say it
         * once per 1024 */
        if (hits++ % 1024 == 0) {
            evpl_log_error("mem", "slab limit reached (%u slabs of %llu bytes)", pool.max_slabs,
                           (unsigned long long) size);
        }
        return NULL;
    }
    slab = calloc(1, sizeof(*slab));
    if (!slab) {
        evpl_log_error("mem", "out of memory for a slab descriptor");
        return NULL;
    }
    slab->size = size;
    slab->base = map_slab(size, &slab->huge);
    if (!slab->base) {
        evpl_log_error("mem", "cannot map a %llu-byte slab: %s", (unsigned long long) size,
                       strerror(errno));
        free(slab);
        return NULL;
    }
    if (carve) {
        slab->nbuffers = (uint32_t) (size / buffer_stride);
        slab->buffers = calloc(slab->nbuffers, sizeof(*slab->buffers));
        if (!slab->buffers) {
            evpl_log_error("mem", "out of memory for %u buffer descriptors", slab->nbuffers);
            munmap(slab->base, size);
            free(slab);
            return NULL;
        }
    }
    if (register_slab(slab) < 0) {
        munmap(slab->base, size);
        free(slab->buffers);
        free(slab);
        return NULL;
    }

    for (uint32_t i = 0; i < slab->nbuffers; i++) {
        struct evpl_buffer *b = &slab->buffers[i];

        b->ref.slab = slab;
        b->ref.release = evpl__buffer_release;
        b->data = slab->base + (uint64_t) i * buffer_stride;
        b->index = i;
        /* not poisoned here: that would touch the whole slab's ASan shadow
         * (1/8 of its size) at once; buffers are poisoned when released */
    }
    /* push in reverse so buffers are handed out in address order */
    for (uint32_t i = slab->nbuffers; i-- > 0;) {
        slab->buffers[i].next = pool.free;
        pool.free = &slab->buffers[i];
    }
    pool.nfree += slab->nbuffers;
    slab->next = pool.slabs;
    pool.slabs = slab;
    atomic_store_explicit(&published, slab, memory_order_release);
    pool.nslabs++;
    pool.mapped_bytes += size;
    evpl_log_debug("mem", "mapped slab %llu: %llu bytes, %u buffers%s",
                   (unsigned long long) pool.nslabs, (unsigned long long) size, slab->nbuffers,
                   slab->huge ? ", huge pages" : "");
    return slab;
} /* slab_create */

/* Pop the head of a free list (pool.lock held), or NULL */
static struct evpl_buffer *
list_pop_locked(struct evpl_buffer **list, uint64_t *n)
{
    struct evpl_buffer *buf = *list;

    if (buf) {
        *list = buf->next;
        --*n;
        buf->next = NULL;
    }
    return buf;
} /* list_pop_locked */

struct evpl_buffer *
evpl__mem_global_get(void)
{
    struct evpl_buffer *buf;

    pthread_mutex_lock(&pool.lock);
    if (pool.free || slab_create(1)) {
        buf = list_pop_locked(&pool.free, &pool.nfree);
    } else {
        /* the memory cap is reached: buffers freed from GLOBAL use are
         * the last resort (evpl__buffer_release keeps them apart) */
        buf = list_pop_locked(&pool.global_free, &pool.nglobal_free);
    }
    pthread_mutex_unlock(&pool.lock);
    return buf;
} /* evpl__mem_global_get */

void
evpl__mem_global_put_list(struct evpl_buffer *head, struct evpl_buffer *tail, uint32_t n)
{
    pthread_mutex_lock(&pool.lock);
    tail->next = pool.free;
    pool.free = head;
    pool.nfree += n;
    pthread_mutex_unlock(&pool.lock);
} /* evpl__mem_global_put_list */

void
evpl__mem_global_put(struct evpl_buffer *buf)
{
    evpl__mem_global_put_list(buf, buf, 1);
} /* evpl__mem_global_put */

void
evpl__mem_global_freed_put(struct evpl_buffer *buf)
{
    pthread_mutex_lock(&pool.lock);
    buf->next = pool.global_free;
    pool.global_free = buf;
    pool.nglobal_free++;
    pthread_mutex_unlock(&pool.lock);
} /* evpl__mem_global_freed_put */

struct evpl_buffer *
evpl__mem_global_freed_get(void)
{
    struct evpl_buffer *buf;

    pthread_mutex_lock(&pool.lock);
    buf = list_pop_locked(&pool.global_free, &pool.nglobal_free);
    pthread_mutex_unlock(&pool.lock);
    return buf;
} /* evpl__mem_global_freed_get */

int
evpl__mem_framework_register(const struct evpl_mem_framework *fw)
{
    int id = -1;

    evpl_auto_init();
    pthread_mutex_lock(&pool.lock);
    for (int i = 0; i < EVPL_MEM_MAX_FRAMEWORKS; i++) {
        if (!pool.fw[i]) {
            id = i;
            break;
        }
    }
    if (id < 0) {
        pthread_mutex_unlock(&pool.lock);
        return -ENOSPC;
    }
    /* existing slabs first; new ones are registered by slab_create */
    for (struct evpl_slab *s = pool.slabs; s; s = s->next) {
        s->reg[id] = fw->register_slab(fw->arg, s->base, s->size);
        if (!s->reg[id]) {
            for (struct evpl_slab *u = pool.slabs; u != s; u = u->next) {
                if (fw->unregister_slab) {
                    fw->unregister_slab(fw->arg, u->base, u->size, u->reg[id]);
                }
                u->reg[id] = NULL;
            }
            pthread_mutex_unlock(&pool.lock);
            evpl_log_error("mem", "framework %s could not register an existing slab", fw->name);
            return -ENOMEM;
        }
    }
    pool.fw[id] = fw;
    pthread_mutex_unlock(&pool.lock);
    return id;
} /* evpl__mem_framework_register */

void
evpl__mem_framework_unregister(int id)
{
    const struct evpl_mem_framework *fw;

    pthread_mutex_lock(&pool.lock);
    fw = pool.fw[id];
    if (fw) {
        for (struct evpl_slab *s = pool.slabs; s; s = s->next) {
            if (fw->unregister_slab && s->reg[id]) {
                fw->unregister_slab(fw->arg, s->base, s->size, s->reg[id]);
            }
            s->reg[id] = NULL;
        }
        pool.fw[id] = NULL;
    }
    pthread_mutex_unlock(&pool.lock);
} /* evpl__mem_framework_unregister */

void
evpl__mem_stats(struct evpl_mem_stats *st)
{
    pthread_mutex_lock(&pool.lock);
    st->slabs = pool.nslabs;
    st->mapped_bytes = pool.mapped_bytes;
    st->free_buffers = pool.nfree + pool.nglobal_free;
    pthread_mutex_unlock(&pool.lock);
    st->buffers_in_use =
        (uint64_t) atomic_load_explicit(&evpl__buffers_in_use, memory_order_relaxed);
    st->buffer_size = evpl__buffer_size;
} /* evpl__mem_stats */

/*
 * Exit-time leak check (memory.md §8): every buffer must be back to a count
 * of zero, except the current buffers that live loops hold themselves.
 */
void
evpl__mem_exit_check(void)
{
    uint64_t leaked = 0, loop_refs = 0;
    const char *env = getenv("EVPL_LEAK_CHECK");

    if (env && strcmp(env, "0") == 0) {
        return;
    }
    pthread_mutex_lock(&evpl_shared->lock);
    for (struct evpl *evpl = evpl_shared->loops; evpl; evpl = evpl->next) {
        loop_refs += (evpl->mem.local.current != NULL) + (evpl->mem.shared.current != NULL) +
                     (evpl->mem.compact.current != NULL) + evpl->mem.pooled;
    }
    pthread_mutex_unlock(&evpl_shared->lock);

    pthread_mutex_lock(&pool.lock);
    for (struct evpl_slab *s = pool.slabs; s; s = s->next) {
        for (uint32_t i = 0; i < s->nbuffers; i++) {
            struct evpl_buffer *b = &s->buffers[i];

            /* (a GLOBAL buffer counts 1 from its allocation to its release) */
            leaked += atomic_load_explicit(&b->ref.refcnt_atomic, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&pool.lock);

    if (leaked > loop_refs) {
        evpl_bug("mem", "leak check at exit: %llu buffer reference(s) were never released",
                 (unsigned long long) (leaked - loop_refs));
    }
} /* evpl__mem_exit_check */

/*
 * Loop teardown (debug builds): report buffers this loop handed out that
 * are still referenced, and forget the loop as their owner.
 */
uint64_t
evpl__mem_report_owned(struct evpl *evpl)
{
    uint64_t bufs = 0, refs = 0;

    pthread_mutex_lock(&pool.lock);
    for (struct evpl_slab *s = pool.slabs; s; s = s->next) {
        for (uint32_t i = 0; i < s->nbuffers; i++) {
            struct evpl_buffer *b = &s->buffers[i];
            unsigned int n;

            struct evpl *expect = evpl;

            /* a CAS: another loop may be taking this buffer right now */
            if (!atomic_compare_exchange_strong_explicit(
                    &b->owner, &expect, NULL, memory_order_relaxed, memory_order_relaxed)) {
                continue;
            }
            n = atomic_load_explicit(&b->ref.refcnt_atomic, memory_order_relaxed);
            if (n) {
                bufs++;
                refs += n;
            }
        }
    }
    pthread_mutex_unlock(&pool.lock);
    if (bufs) {
        evpl_log_error("mem",
                       "evpl_destroy: %llu buffer(s) allocated by this loop still hold %llu "
                       "reference(s) (leaked iovecs, or still in use by another thread)",
                       (unsigned long long) bufs, (unsigned long long) refs);
    }
    return bufs;
} /* evpl__mem_report_owned */

EVPL_API uint64_t
evpl_get_slab_size(void)
{
    evpl_auto_init();
    return pool.slab_size_config;
} /* evpl_get_slab_size */

EVPL_API void *
evpl_slab_alloc(void **slab_private)
{
    struct evpl_slab *slab;

    evpl_auto_init();
    pthread_mutex_lock(&pool.lock);
    slab = slab_create(0);
    pthread_mutex_unlock(&pool.lock);
    if (!slab) {
        *slab_private = NULL;
        return NULL;
    }
    *slab_private = slab;
    return slab->base;
} /* evpl_slab_alloc */

EVPL_API void
evpl_iovec_profile_dump(const char *reason)
{
    (void) reason; /* profiling is not compiled into this build */
} /* evpl_iovec_profile_dump */
