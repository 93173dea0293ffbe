/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * Randomised stress of SHARED references across two threads: each thread
 * allocates, clones, segments and moves references, hands some to the
 * other thread and releases the rest (with its loop or NULL).  Every view
 * is checked against the byte pattern its allocation was filled with, so
 * a buffer recycled while still referenced is caught.  At the end every
 * buffer must be free again.
 */
#include <evpl/evpl.h>

#include <pthread.h>
#include <stdatomic.h>

#include "t.h"

#if defined(__SANITIZE_THREAD__)
#define OPS 1200000 /* per thread; TSan is ~10x slower */
#else
#define OPS 3000000
#endif

struct msg {
    struct evpl_iovec iov;
    uint8_t pattern;
};

/* a mutex-protected queue: the subject here is the reference counts */
struct queue {
    pthread_mutex_t lock;
    struct msg *items;
    size_t len, cap;
};

static struct queue queues[2];
static _Atomic uint64_t refs_made;

static void check(const struct msg *m);

/* Bounded: when the other side lags, the reference is released here
 * instead (on this thread, with NULL), which exercises that path too. */
static void
q_push(struct queue *q, struct msg *m)
{
    pthread_mutex_lock(&q->lock);
    if (q->len >= 512) {
        pthread_mutex_unlock(&q->lock);
        check(m);
        evpl_iovec_release(NULL, &m->iov);
        return;
    }
    if (q->len == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 1024;
        q->items = realloc(q->items, q->cap * sizeof(*q->items));
        T_OK(q->items != NULL);
    }
    q->items[q->len++] = *m;
    pthread_mutex_unlock(&q->lock);
}

static int
q_pop(struct queue *q, struct msg *m)
{
    int ok = 0;

    pthread_mutex_lock(&q->lock);
    if (q->len) {
        *m = q->items[--q->len];
        ok = 1;
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

static void
check(const struct msg *m)
{
    const uint8_t *p = m->iov.data;

    if (m->iov.length == 0) {
        return;
    }
    /* first, last and middle byte: cheap and catches recycling */
    if (p[0] != m->pattern || p[m->iov.length - 1] != m->pattern ||
        p[m->iov.length / 2] != m->pattern) {
        T_FAIL("pattern mismatch on a live reference: %u %u %u vs %u", p[0], p[m->iov.length - 1],
               p[m->iov.length / 2], m->pattern);
    }
}

static void
drop(struct evpl *evpl, struct msg *m, unsigned r)
{
    check(m);
    evpl_iovec_release(r & 1 ? evpl : NULL, &m->iov);
}

static void *
worker(void *arg)
{
    int me = (int) (intptr_t) arg;
    struct queue *in = &queues[me], *out = &queues[!me];
    unsigned seed = 12345u + (unsigned) me;
    struct evpl *evpl = evpl_create(NULL);
    struct msg held[64], m, n;
    int nheld = 0;

    for (int op = 0; op < OPS; op++) {
        unsigned r = (unsigned) rand_r(&seed);

        switch (r % 8) {
            case 0: /* allocate and fill */
                if (nheld < 64) {
                    unsigned len = 1 + (unsigned) rand_r(&seed) % 65536;

                    T_EQ(
                        evpl_iovec_alloc(evpl, len, 0, 1, EVPL_IOVEC_FLAG_SHARED, &held[nheld].iov),
                        1);
                    held[nheld].pattern = (uint8_t) r;
                    memset(held[nheld].iov.data, held[nheld].pattern, len);
                    nheld++;
                    atomic_fetch_add_explicit(&refs_made, 1, memory_order_relaxed);
                }
                break;
            case 1: /* clone and send */
            case 2:
                if (nheld) {
                    struct msg *h = &held[(unsigned) rand_r(&seed) % (unsigned) nheld];

                    evpl_iovec_clone(&n.iov, &h->iov);
                    n.pattern = h->pattern;
                    q_push(out, &n);
                    atomic_fetch_add_explicit(&refs_made, 1, memory_order_relaxed);
                }
                break;
            case 3: /* segment and send */
                if (nheld && held[0].iov.length) {
                    struct msg *h = &held[0];
                    unsigned off = (unsigned) rand_r(&seed) % h->iov.length;
                    unsigned len = (unsigned) rand_r(&seed) % (h->iov.length - off + 1);

                    evpl_iovec_clone_segment(&n.iov, &h->iov, off, len);
                    n.pattern = h->pattern;
                    q_push(out, &n);
                    atomic_fetch_add_explicit(&refs_made, 1, memory_order_relaxed);
                }
                break;
            case 4: /* move one we hold over to the other side */
                if (nheld) {
                    int i = (int) ((unsigned) rand_r(&seed) % (unsigned) nheld);

                    evpl_iovec_move(&n.iov, &held[i].iov);
                    T_OK(held[i].iov.data == NULL);
                    n.pattern = held[i].pattern;
                    held[i] = held[--nheld];
                    q_push(out, &n);
                }
                break;
            case 5: /* release one we hold */
                if (nheld) {
                    int i = (int) ((unsigned) rand_r(&seed) % (unsigned) nheld);

                    drop(evpl, &held[i], r >> 8);
                    held[i] = held[--nheld];
                }
                break;
            default: /* receive: release, keep, or bounce a segment back */
                if (q_pop(in, &m)) {
                    check(&m);
                    if ((r >> 8) % 3 == 0 && nheld < 64) {
                        held[nheld++] = m;
                    } else if ((r >> 8) % 3 == 1 && m.iov.length) {
                        evpl_iovec_move_segment(&n.iov, &m.iov, 0, m.iov.length / 2);
                        n.pattern = m.pattern;
                        q_push(out, &n);
                    } else {
                        drop(evpl, &m, r >> 10);
                    }
                }
                break;
        }
    }

    while (nheld) {
        drop(evpl, &held[--nheld], 1);
    }
    /* what the other side sent us may still arrive after it stops: main
     * drains the queues once both are done */
    evpl_destroy(evpl);
    return NULL;
}

int
main(void)
{
    pthread_t th[2];
    struct msg m;

    for (int i = 0; i < 2; i++) {
        pthread_mutex_init(&queues[i].lock, NULL);
    }
    for (int i = 0; i < 2; i++) {
        T_EQ(pthread_create(&th[i], NULL, worker, (void *) (intptr_t) i), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    for (int i = 0; i < 2; i++) {
        while (q_pop(&queues[i], &m)) {
            check(&m);
            evpl_iovec_release(NULL, &m.iov);
        }
        free(queues[i].items);
    }
    fprintf(stderr, "%llu references made\n", (unsigned long long) atomic_load(&refs_made));
    T_GE(atomic_load(&refs_made), OPS / 2);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 0);
    return 0;
}
