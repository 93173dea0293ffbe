/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * Doorbells (loop.md §5, statements 12-15): cross-thread wakeup of a
 * sleeping loop, coalescing and ring-after-start, removal (and freeing)
 * from its own and from another doorbell's callback, the readable fd.
 */
#include "t_loop.h"

#include <poll.h>

#define MS 1000000ull

/* ---- statement 12 ------------------------------------------------------- */

static pthread_t loop_thread_id;
static atomic_int db_calls;
static atomic_int wrong_thread;

static void
on_db(struct evpl *evpl, struct evpl_doorbell *db)
{
    if (!pthread_equal(pthread_self(), loop_thread_id)) {
        atomic_fetch_add(&wrong_thread, 1);
    }
    atomic_fetch_add(&db_calls, 1);
} /* on_db */

struct ringer {
    struct evpl_doorbell *db;
    unsigned int delay_ms;
    int times;
    atomic_ullong rung_at;
};

static void *
ringer_main(void *arg)
{
    struct ringer *r = arg;

    t_sleep_ms(r->delay_ms);
    atomic_store(&r->rung_at, t_now_ns());
    for (int i = 0; i < r->times; i++) {
        evpl_ring_doorbell(r->db);
    }
    return NULL;
} /* ringer_main */

static void
wakes_sleeping_loop(void)
{
    struct evpl *evpl = t_loop_create(1, -1); /* wait_ms = -1 */
    struct evpl_doorbell db;
    struct ringer r = {.db = &db, .delay_ms = 300, .times = 1};
    pthread_t tid;
    uint64_t t0, late = 0;

    loop_thread_id = pthread_self();
    atomic_store(&db_calls, 0);
    evpl_add_doorbell(evpl, &db, on_db);
    t0 = t_now_ns();
    T_EQ(pthread_create(&tid, NULL, ringer_main, &r), 0);
    while (atomic_load(&db_calls) == 0) {
        if (t_now_ns() - t0 > 5000 * MS) {
            T_FAIL("doorbell rung from another thread did not wake the loop");
        }
        if (t_now_ns() - t0 > 100 * MS) {
            late++;
        }
        evpl_continue(evpl);
    }
    pthread_join(tid, NULL);
    /* the loop really slept (no pass started between 100 ms and the ring),
     * and the ring woke it */
    T_EQ(late, 0); /* loop 12 */
    T_GE(t_now_ns() - t0, 250 * MS);
    T_LT(t_now_ns() - atomic_load(&r.rung_at), 1000 * MS); /* loop 12 */
    T_EQ(atomic_load(&db_calls), 1);                       /* loop 12 */
    T_EQ(atomic_load(&wrong_thread), 0);                   /* loop 12 */
    evpl_remove_doorbell(evpl, &db);
    evpl_destroy(evpl);
} /* wakes_sleeping_loop */

/* ---- statement 13 ------------------------------------------------------- */

struct rab {
    struct evpl_doorbell db;
    int calls;
    int self_ring_left;
    atomic_int started;
    atomic_int other_rang;
};

static void
on_rab(struct evpl *evpl, struct evpl_doorbell *db)
{
    struct rab *s = t_container_of(db, struct rab, db);

    s->calls++;
    if (s->self_ring_left > 0) {
        /* a ring after the callback started (same thread) */
        s->self_ring_left--;
        evpl_ring_doorbell(db);
    }
    if (s->calls == 1 && !atomic_load(&s->started)) {
        /* let the other thread ring while this callback is running */
        atomic_store(&s->started, 1);
        for (int i = 0; i < 5000 && !atomic_load(&s->other_rang); i++) {
            t_sleep_ms(1);
        }
    }
} /* on_rab */

static void *
ring_when_started(void *arg)
{
    struct rab *s = arg;

    while (!atomic_load(&s->started)) {
        t_sleep_ms(1);
    }
    evpl_ring_doorbell(&s->db);
    atomic_store(&s->other_rang, 1);
    return NULL;
} /* ring_when_started */

/* Run passes until calls reaches want (fails after 5 s). */
static void
pump_until(struct evpl *evpl, int *calls, int want)
{
    uint64_t t0 = t_now_ns();

    while (*calls < want) {
        if (t_now_ns() - t0 > 5000 * MS) {
            T_FAIL("doorbell callback count %d, expected %d", *calls, want);
        }
        evpl_continue(evpl);
    }
} /* pump_until */

static void
coalesce_and_ring_after_start(void)
{
    /* wait_ms = 50 so that checking "no more callbacks" cannot hang */
    struct evpl *evpl = t_loop_create(1, 50);
    struct rab *s = calloc(1, sizeof(*s));
    pthread_t tid;
    int i;

    evpl_add_doorbell(evpl, &s->db, on_rab);
    atomic_store(&s->started, 1); /* no cross-thread part yet */

    /* rung twice before the loop runs: at least one callback */
    evpl_ring_doorbell(&s->db);
    evpl_ring_doorbell(&s->db);
    pump_until(evpl, &s->calls, 1); /* loop 13 */
    for (i = 0; i < 5; i++) {
        evpl_continue(evpl);
    }
    T_GE(s->calls, 1); /* loop 13 */
    T_LE(s->calls, 2);

    /* rung from inside the callback (after it started): another follows */
    s->calls = 0;
    s->self_ring_left = 1;
    evpl_ring_doorbell(&s->db);
    pump_until(evpl, &s->calls, 2); /* loop 13 */
    for (i = 0; i < 5; i++) {
        evpl_continue(evpl);
    }
    T_EQ(s->calls, 2);

    /* rung by another thread while the callback runs: another follows */
    s->calls = 0;
    atomic_store(&s->started, 0);
    atomic_store(&s->other_rang, 0);
    T_EQ(pthread_create(&tid, NULL, ring_when_started, s), 0);
    evpl_ring_doorbell(&s->db);
    pump_until(evpl, &s->calls, 2); /* loop 13 */
    pthread_join(tid, NULL);

    /* many rings from many threads: at least one callback after the last */
    {
        struct ringer r[4];
        pthread_t t4[4];

        for (i = 0; i < 4; i++) {
            r[i].db = &s->db;
            r[i].delay_ms = 10;
            r[i].times = 1000;
            atomic_store(&r[i].rung_at, 0);
            T_EQ(pthread_create(&t4[i], NULL, ringer_main, &r[i]), 0);
        }
        for (i = 0; i < 4; i++) {
            pthread_join(t4[i], NULL);
        }
        s->calls = 0;
        pump_until(evpl, &s->calls, 1); /* loop 13 */
    }

    evpl_remove_doorbell(evpl, &s->db);
    free(s);
    evpl_destroy(evpl);
} /* coalesce_and_ring_after_start */

/* ---- statement 14 ------------------------------------------------------- */

static int calls_by_id[4];

struct owned_db {
    struct evpl_doorbell db;
    int id;
    struct owned_db **slot;  /* where the owner keeps this pointer */
    struct owned_db **other; /* the doorbell to remove besides itself */
};

static void
on_self_remove(struct evpl *evpl, struct evpl_doorbell *db)
{
    struct owned_db *o = t_container_of(db, struct owned_db, db);

    calls_by_id[o->id]++;
    evpl_remove_doorbell(evpl, db);
    *o->slot = NULL;
    free(o);
} /* on_self_remove */

static void
on_remove_other(struct evpl *evpl, struct evpl_doorbell *db)
{
    struct owned_db *o = t_container_of(db, struct owned_db, db);
    struct owned_db *victim;

    calls_by_id[o->id]++;
    victim = *o->other;
    if (victim) {
        evpl_remove_doorbell(evpl, &victim->db);
        *victim->slot = NULL;
        free(victim);
    }
} /* on_remove_other */

static void
removal_from_callbacks(void)
{
    struct evpl *evpl = t_loop_create(1, 20);
    struct owned_db *x, *a, *b;
    int i;

    /* removed and freed from its own callback, rung again before that */
    x = calloc(1, sizeof(*x));
    x->id = 0;
    x->slot = &x;
    evpl_add_doorbell(evpl, &x->db, on_self_remove);
    evpl_ring_doorbell(&x->db);
    evpl_ring_doorbell(&x->db);
    for (i = 0; i < 20 && x; i++) {
        evpl_continue(evpl);
    }
    T_OK(x == NULL);
    for (i = 0; i < 10; i++) {
        evpl_continue(evpl);
    }
    T_EQ(calls_by_id[0], 1); /* loop 14 */

    /* two doorbells ready in the same pass; whichever runs first removes
     * and frees the other (ASan reports any later use) */
    a = calloc(1, sizeof(*a));
    b = calloc(1, sizeof(*b));
    a->id = 1;
    b->id = 2;
    a->slot = &a;
    b->slot = &b;
    a->other = &b;
    b->other = &a;
    evpl_add_doorbell(evpl, &a->db, on_remove_other);
    evpl_add_doorbell(evpl, &b->db, on_remove_other);
    evpl_ring_doorbell(&a->db);
    evpl_ring_doorbell(&b->db);
    evpl_continue(evpl);
    for (i = 0; i < 10; i++) {
        evpl_continue(evpl);
    }
    /* exactly one of them ran, once; the other was removed first */
    T_EQ(calls_by_id[1] + calls_by_id[2], 1); /* loop 14 */
    T_OK((a == NULL) != (b == NULL));
    if (a) {
        evpl_remove_doorbell(evpl, &a->db);
        free(a);
    }
    if (b) {
        evpl_remove_doorbell(evpl, &b->db);
        free(b);
    }
    evpl_destroy(evpl);
} /* removal_from_callbacks */

/* ---- statement 15 ------------------------------------------------------- */

static int fd_db_calls;

static void
on_fd_db(struct evpl *evpl, struct evpl_doorbell *db)
{
    fd_db_calls++;
} /* on_fd_db */

static int
readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    T_GE(poll(&p, 1, 0), 0);
    return (p.revents & POLLIN) != 0;
} /* readable */

static void
doorbell_fd(void)
{
    /* poll_mode = 0: the loop never busy-polls, so a ring writes the fd */
    struct evpl *evpl = t_loop_create(0, 20);
    struct evpl_doorbell db;
    int fd;

    evpl_add_doorbell(evpl, &db, on_fd_db);
    fd = evpl_doorbell_fd(&db);
    T_GE(fd, 0);
    T_EQ(readable(fd), 0);
    evpl_ring_doorbell(&db);
    T_EQ(readable(fd), 1); /* loop 15 */
    evpl_continue(evpl);
    T_EQ(fd_db_calls, 1);
    T_EQ(readable(fd), 0); /* consumed by the loop */
    evpl_ring_doorbell(&db);
    T_EQ(readable(fd), 1); /* loop 15 */
    evpl_continue(evpl);
    T_EQ(fd_db_calls, 2);
    T_EQ(evpl_doorbell_fd(&db), fd);
    evpl_remove_doorbell(evpl, &db);
    evpl_destroy(evpl);
} /* doorbell_fd */

/* A loop that busy-polls (the default), driven by hand from a foreign
 * loop that waits on the descriptor: after evpl_continue returns, a ring
 * (here from another thread) still makes the descriptor readable. */
static struct evpl_doorbell *fd_ring_target;

static void *
ring_from_thread(void *arg)
{
    evpl_ring_doorbell(fd_ring_target);
    return NULL;
} /* ring_from_thread */

static void
doorbell_fd_polling_loop(void)
{
    struct evpl *evpl = t_loop_create(1, 20);
    struct evpl_doorbell db;
    struct pollfd p;
    pthread_t th;
    int fd;

    fd_db_calls = 0;
    evpl_add_doorbell(evpl, &db, on_fd_db);
    fd = evpl_doorbell_fd(&db);
    for (int i = 0; i < 3; i++) {
        evpl_continue(evpl); /* in poll mode: activity just now */
    }
    fd_ring_target = &db;
    T_EQ(pthread_create(&th, NULL, ring_from_thread, NULL), 0);
    p = (struct pollfd){.fd = fd, .events = POLLIN};
    T_EQ(poll(&p, 1, 5000), 1); /* the foreign loop wakes */
    T_EQ(pthread_join(th, NULL), 0);
    evpl_continue(evpl);
    T_EQ(fd_db_calls, 1);
    /* rung between passes, from the loop thread: readable each time */
    evpl_ring_doorbell(&db);
    evpl_continue(evpl);
    evpl_ring_doorbell(&db);
    T_EQ(readable(fd), 1);
    evpl_continue(evpl);
    T_EQ(fd_db_calls, 3);
    evpl_remove_doorbell(evpl, &db);
    evpl_destroy(evpl);
} /* doorbell_fd_polling_loop */

/* many doorbells on one loop, all rung from one thread */
#define NDB 300
static int multi_calls[NDB];

struct multi {
    struct evpl_doorbell db;
    int i;
};

static void
on_multi(struct evpl *evpl, struct evpl_doorbell *db)
{
    multi_calls[t_container_of(db, struct multi, db)->i]++;
} /* on_multi */

static void *
ring_all(void *arg)
{
    struct multi *m = arg;

    for (int i = 0; i < NDB; i++) {
        evpl_ring_doorbell(&m[i].db);
    }
    return NULL;
} /* ring_all */

static void
many_doorbells(void)
{
    struct evpl *evpl = t_loop_create(1, 20);
    struct multi *m = calloc(NDB, sizeof(*m));
    pthread_t tid;
    uint64_t t0;
    int i, done = 0;

    for (i = 0; i < NDB; i++) {
        m[i].i = i;
        evpl_add_doorbell(evpl, &m[i].db, on_multi);
    }
    T_EQ(pthread_create(&tid, NULL, ring_all, m), 0);
    pthread_join(tid, NULL);
    t0 = t_now_ns();
    while (!done) {
        T_LT(t_now_ns() - t0, 5000 * MS);
        evpl_continue(evpl);
        done = 1;
        for (i = 0; i < NDB; i++) {
            if (multi_calls[i] == 0) {
                done = 0;
            }
        }
    }
    for (i = 0; i < NDB; i++) {
        evpl_remove_doorbell(evpl, &m[i].db);
    }
    free(m);
    evpl_destroy(evpl);
} /* many_doorbells */

int
main(void)
{
    alarm(60);
    T_OK(sizeof(struct evpl_doorbell) == 64);
    evpl_init(t_global_config());
    wakes_sleeping_loop();           /* loop 12 */
    coalesce_and_ring_after_start(); /* loop 13 */
    removal_from_callbacks();        /* loop 14 */
    doorbell_fd();                   /* loop 15 */
    doorbell_fd_polling_loop();      /* loop 15, busy-polling loop */
    many_doorbells();
    return 0;
} /* main */
