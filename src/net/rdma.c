/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * One-sided operations.  A protocol with RDMA semantics (rdma.md §1)
 * supplies them through its operation table; every other bind takes the
 * documented non-RDMA path: address 0/0, and ENOTSUP reported to the
 * callback before the call returns (rdma.md §1, statement 1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "mem/mem.h"
#include "net/net.h"

/*
 * The process-local registration table of the emulated protocols
 * (in-process, TCP-RDMA): every slab is registered (as with an RDMA
 * device).  Its key is its index in the low 16 bits under a random
 * non-zero tag: a TCP-RDMA peer cannot count through the keys to other
 * slabs (they were the index + 1), it has to guess a tag for each.  Slabs
 * are never unmapped, so an entry never changes once published.
 */
#define RDMA_MAX_KEYS   65536
#define RDMA_INDEX_BITS 16

struct rdma_region {
    char *base;
    uint32_t tag;          /* the key's upper bits */
    _Atomic uint64_t size; /* 0: unregistered (the key names nothing) */
};

static struct rdma_region rdma_regions[RDMA_MAX_KEYS];
static _Atomic uint32_t rdma_nregions;
static int rdma_fw_id = -1;
static pthread_once_t rdma_once = PTHREAD_ONCE_INIT;

static uint32_t
rdma_tag(void)
{
    uint16_t t = 0;

    while (t == 0) {
        if (getrandom(&t, sizeof(t), GRND_NONBLOCK) != (ssize_t) sizeof(t)) {
            /* no entropy yet (early boot) or no source: still never 0,
             * still not a count */
            t = (uint16_t) (evpl__hf_now_ns() * 0x9e3779b97f4a7c15ull >> 48);
            t = t ? t : 1;
        }
    }
    return t;
} /* rdma_tag */

static void *
rdma_register_slab(void *arg, void *base, uint64_t size)
{
    uint32_t n = atomic_load_explicit(&rdma_nregions, memory_order_relaxed);

    (void) arg;
    if (n >= RDMA_MAX_KEYS) {
        return NULL;
    }
    rdma_regions[n].base = base;
    rdma_regions[n].tag = rdma_tag();
    atomic_store_explicit(&rdma_regions[n].size, size, memory_order_relaxed);
    /* published after the region is written: readers check the count */
    atomic_store_explicit(&rdma_nregions, n + 1, memory_order_release);
    return (void *) (uintptr_t) (rdma_regions[n].tag << RDMA_INDEX_BITS | n);
} /* rdma_register_slab */

/* A slab given back (or never fully registered, when another framework
 * refused it): its key stops naming memory.  Keys are not reused. */
static void
rdma_unregister_slab(void *arg, void *base, uint64_t size, void *handle)
{
    uintptr_t key = (uintptr_t) handle;

    (void) arg;
    (void) base;
    (void) size;
    if (key) {
        atomic_store_explicit(&rdma_regions[key & (RDMA_MAX_KEYS - 1)].size, 0,
                              memory_order_release);
    }
} /* rdma_unregister_slab */

static const struct evpl_mem_framework rdma_fw = {
    .name = "rdma-keys",
    .register_slab = rdma_register_slab,
    .unregister_slab = rdma_unregister_slab,
};

static void
rdma_init(void)
{
    rdma_fw_id = evpl__mem_framework_register(&rdma_fw);
    if (rdma_fw_id < 0) {
        evpl_log_error("net", "cannot register memory for one-sided operations: %s",
                       strerror(-rdma_fw_id));
    }
} /* rdma_init */

/* The registered memory [address, address + len), or NULL. */
static char *
rdma_target(uint32_t key, uint64_t address, uint64_t len)
{
    uint32_t n = atomic_load_explicit(&rdma_nregions, memory_order_acquire);
    struct rdma_region *r;
    uint64_t off, size;

    if ((key & (RDMA_MAX_KEYS - 1)) >= n) {
        return NULL;
    }
    r = &rdma_regions[key & (RDMA_MAX_KEYS - 1)];
    if (r->tag != key >> RDMA_INDEX_BITS) {
        return NULL;
    }
    size = atomic_load_explicit(&r->size, memory_order_acquire);
    if (size == 0 || address < (uint64_t) (uintptr_t) r->base) {
        return NULL;
    }
    off = address - (uint64_t) (uintptr_t) r->base;
    if (off > size || len > size - off) {
        return NULL;
    }
    return r->base + off;
} /* rdma_target */

void
evpl__rdma_local_address(const struct evpl_iovec *iovec, uint32_t *key, uint64_t *address)
{
    *key = 0;
    *address = 0;
    pthread_once(&rdma_once, rdma_init);
    if (rdma_fw_id < 0 || !iovec || !iovec->ref || !iovec->ref->slab) {
        return; /* not library memory: 0/0 */
    }
    *key = (uint32_t) (uintptr_t) evpl__iovec_mem_handle(iovec, rdma_fw_id);
    *address = *key ? (uint64_t) (uintptr_t) iovec->data : 0;
} /* evpl__rdma_local_address */

void
evpl__rdma_local_bind_address(struct evpl_bind *bind, const struct evpl_iovec *iovec, uint32_t *key,
                              uint64_t *address)
{
    (void) bind;
    evpl__rdma_local_address(iovec, key, address);
} /* evpl__rdma_local_bind_address */

char *
evpl__rdma_local_target(uint32_t key, uint64_t address, uint64_t len)
{
    pthread_once(&rdma_once, rdma_init);
    return rdma_target(key, address, len);
} /* evpl__rdma_local_target */

/* ---- completions reported on the loop's next look ---- */

struct rdma_done {
    struct rdma_done *next;
    struct evpl_bind *bind;
    void (*callback)(int status, void *private_data);
    void *private_data;
    int status;
};

/* Per loop, owner thread only. */
struct rdma_loop {
    struct evpl_doorbell bell;
    struct rdma_done *head, *tail;
};

static void
done_run(struct rdma_done *d)
{
    while (d) {
        struct rdma_done *next = d->next;

        d->callback(d->status, d->private_data);
        free(d);
        d = next;
    }
} /* done_run */

/* Those queued before this look run; those their callbacks queue wait for
 * the next one, so a chain of operations cannot hold the loop. */
static void
done_ring(struct evpl *evpl, struct evpl_doorbell *bell)
{
    struct rdma_loop *l = container_of(bell, struct rdma_loop, bell);
    struct rdma_done *d = l->head;

    (void) evpl;
    l->head = l->tail = NULL;
    done_run(d);
} /* done_ring */

void
evpl__rdma_complete_later(struct evpl *evpl, struct evpl_bind *bind, int status,
                          void (*callback)(int status, void *private_data), void *private_data)
{
    struct rdma_loop *l = evpl->rdma;
    struct rdma_done *d;

    if (!callback) {
        return;
    }
    if (!l) {
        l = evpl->rdma = evpl__zalloc(sizeof(*l));
        evpl_add_doorbell(evpl, &l->bell, done_ring);
    }
    d = malloc(sizeof(*d));
    if (!d) {
        evpl_log_error("net", "out of memory queuing a completion: reported at once");
        callback(ENOMEM, private_data);
        return;
    }
    d->next = NULL;
    d->bind = bind;
    d->callback = callback;
    d->private_data = private_data;
    d->status = status;
    if (l->tail) {
        l->tail->next = d;
    } else {
        l->head = d;
    }
    l->tail = d;
    evpl_ring_doorbell(&l->bell);
} /* evpl__rdma_complete_later */

void
evpl__rdma_complete_bind(struct evpl_bind *bind)
{
    struct rdma_loop *l = bind->evpl->rdma;

    /* operations the callbacks issue on the closing bind fail and queue
     * again: report until none is left */
    while (l) {
        struct rdma_done *mine = NULL, **tail = &mine, **p = &l->head;

        l->tail = NULL;
        while (*p) {
            struct rdma_done *d = *p;

            if (d->bind == bind) {
                *p = d->next;
                d->next = NULL;
                *tail = d;
                tail = &d->next;
            } else {
                l->tail = d;
                p = &d->next;
            }
        }
        if (!mine) {
            return;
        }
        done_run(mine);
    }
} /* evpl__rdma_complete_bind */

void
evpl__rdma_loop_cleanup(struct evpl *evpl)
{
    struct rdma_loop *l = evpl->rdma;

    if (!l) {
        return;
    }
    while (l->head) {
        done_ring(evpl, &l->bell);
    }
    evpl_remove_doorbell(evpl, &l->bell);
    free(l);
    evpl->rdma = NULL;
} /* evpl__rdma_loop_cleanup */

EVPL_API void
evpl_rdma_get_address(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *iovec,
                      uint32_t *r_key, uint64_t *r_address)
{
    EVPL_OWNER_ONLY(evpl);
    *r_key = 0;
    *r_address = 0;
    if (bind->protocol->rdma_address) {
        bind->protocol->rdma_address(bind, iovec, r_key, r_address);
    }
}

/* Every iovec has a reference to take (an iovec the library did not make,
 * with ref NULL, cannot be held while the operation runs). */
static int
iovecs_counted(const struct evpl_iovec *iov, int niov)
{
    for (int i = 0; i < niov; i++) {
        if (!iov[i].ref) {
            return 0;
        }
    }
    return 1;
} /* iovecs_counted */

EVPL_API void
evpl_rdma_read(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
               uint64_t remote_address, struct evpl_iovec *iov, int niov,
               void (*callback)(int status, void *private_data), void *private_data)
{
    EVPL_OWNER_ONLY(evpl);
    if (bind->protocol->rdma_read) {
        if (!iovecs_counted(iov, niov)) {
            evpl__rdma_complete_later(evpl, bind, EINVAL, callback, private_data);
            return;
        }
        bind->protocol->rdma_read(evpl, bind, remote_key, remote_address, iov, niov, callback,
                                  private_data);
        return;
    }
    if (callback) {
        callback(ENOTSUP, private_data);
    }
}

EVPL_API void
evpl_rdma_write(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
                uint64_t remote_address, struct evpl_iovec *iov, int niov, unsigned int flags,
                void (*callback)(int status, void *private_data), void *private_data)
{
    EVPL_OWNER_ONLY(evpl);
    if (bind->protocol->rdma_write) {
        if (niov <= 0) {
            return; /* nothing queued, no callback (rdma.md §4 QUIRK, as upstream) */
        }
        if (!iovecs_counted(iov, niov)) {
            for (int i = 0; (flags & EVPL_RDMA_FLAG_TAKE_REF) && i < niov; i++) {
                if (iov[i].ref) {
                    evpl_iovec_release_internal(evpl, &iov[i]);
                }
            }
            evpl__rdma_complete_later(evpl, bind, EINVAL, callback, private_data);
            return;
        }
        bind->protocol->rdma_write(evpl, bind, remote_key, remote_address, iov, niov, flags,
                                   callback, private_data);
        return;
    }
    /* not an RDMA bind: ENOTSUP whatever the iovecs (statement 1) */
    if ((flags & EVPL_RDMA_FLAG_TAKE_REF) && niov > 0) {
        evpl_iovecs_release_internal(evpl, iov, niov);
    }
    if (callback) {
        callback(ENOTSUP, private_data);
    }
}
