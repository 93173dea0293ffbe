/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * Core statement 6: with evpl_global_config_set_core_mech(SELECT) the loop
 * services behave as with epoll.  A representative pass over timers,
 * deferrals, hooks, cross-thread doorbells (and their fd), fd events on a
 * pipe (latching, mark_readable, write interest, removal from a callback,
 * hang-up), polls, and evpl_stop from another thread, all on the real
 * clock.  (Any other loop test can also be run over select by setting
 * T_CORE_MECH=select.)
 */
#include "t_loop.h"

#include <poll.h>

#define MS 1000000ull

/* ---- timers ------------------------------------------------------------ */

struct tmr {
    struct evpl_timer t;
    uint64_t added;
    uint64_t delay_ns;
    int fires;
    int id;
};

static int order[16], norder;
static int early;

/* armed by timer callbacks so that the pass that fired does not sleep */
static struct evpl_deferral kick;

static void
nop(struct evpl *evpl, void *p)
{
} /* nop */

static void
on_tm(struct evpl *evpl, struct evpl_timer *t)
{
    struct tmr *x = t_container_of(t, struct tmr, t);

    if (x->fires == 0 && t_now_ns() < x->added + x->delay_ns) {
        early++;
    }
    x->fires++;
    if (norder < 16) {
        order[norder++] = x->id;
    }
    evpl_defer(evpl, &kick);
} /* on_tm */

static void
add_tm(struct evpl *evpl, struct tmr *x, int id, uint64_t us, int periodic)
{
    memset(x, 0, sizeof(*x));
    x->id = id;
    x->delay_ns = us * 1000;
    x->added = t_now_ns();
    if (periodic) {
        evpl_add_timer(evpl, &x->t, on_tm, us);
    } else {
        evpl_add_oneshot_timer(evpl, &x->t, on_tm, us);
    }
} /* add_tm */

static void
timers(void)
{
    struct evpl *evpl = t_loop_create(0, -1);
    struct tmr a, b, p, sub;
    uint64_t t0 = t_now_ns();
    int n;

    add_tm(evpl, &b, 2, 30000, 0);
    add_tm(evpl, &a, 1, 15000, 0);
    add_tm(evpl, &p, 3, 5000, 1);
    while (b.fires == 0) {
        T_LT(t_now_ns() - t0, 2000 * MS);
        evpl_continue(evpl);
    }
    T_EQ(a.fires, 1); /* loop 1 */
    T_EQ(early, 0);   /* loop 1 */
    {
        int pos1 = -1, pos2 = -1;

        for (n = 0; n < norder; n++) {
            if (order[n] == 1) {
                pos1 = n;
            }
            if (order[n] == 2) {
                pos2 = n;
            }
        }
        T_EQ(order[0], 3); /* the 5 ms periodic came first */
        T_GE(pos1, 0);
        T_GT(pos2, pos1); /* loop 5 */
    }
    T_GE(p.fires, 3); /* loop 3 */
    evpl_remove_timer(evpl, &p.t);
    n = p.fires;
    add_tm(evpl, &sub, 4, 600, 0); /* sub-millisecond: 0 ms waits */
    while (sub.fires == 0) {
        T_LT(t_now_ns() - t0, 4000 * MS);
        evpl_continue(evpl);
    }
    T_EQ(early, 0);   /* loop 1 */
    T_EQ(p.fires, n); /* loop 3 */
    evpl_destroy(evpl);
} /* timers */

/* ---- deferrals and hooks ------------------------------------------------ */

static int d_calls, d_rearm;
static char hook_log[64];
static int hook_len;

static void
on_d(struct evpl *evpl, void *p)
{
    d_calls++;
    if (d_rearm) {
        d_rearm--;
        evpl_defer(evpl, p);
    }
    if (hook_len < 63) {
        hook_log[hook_len++] = 'D';
    }
} /* on_d */

static void
hk(struct evpl *evpl, void *p)
{
    if (hook_len < 63) {
        hook_log[hook_len++] = *(const char *) p;
    }
} /* hk */

static void
hk_post(struct evpl *evpl, void *p)
{
    if (hook_len < 63) {
        hook_log[hook_len++] = 'W';
    }
} /* hk_post */

static void
hk_iter(struct evpl *evpl, void *p)
{
    if (hook_len < 63) {
        hook_log[hook_len++] = 'I';
    }
} /* hk_iter */

static void
deferrals_and_hooks(void)
{
    static const char P = 'P';
    struct evpl *evpl = t_loop_create(0, -1);
    struct evpl_deferral d;
    struct evpl_loop_hooks h = {.iteration_end = hk_iter,
                                .pre_wait = hk,
                                .post_wait = hk_post,
                                .private_data = (void *) &P};
    uint64_t t0;

    memset(&d, 0, sizeof(d));
    evpl_deferral_init(&d, on_d, &d);
    evpl_set_loop_hooks(evpl, &h);
    /* statements 8, 11, 22: armed twice outside a pass, runs once in the
     * next (non-blocking) pass, after the wait and before iteration_end */
    evpl_defer(evpl, &d);
    evpl_defer(evpl, &d);
    t0 = t_now_ns();
    evpl_continue(evpl);
    T_LT(t_now_ns() - t0, 1000 * MS); /* loop 11 */
    T_EQ(d_calls, 1);                 /* loop 8 */
    hook_log[hook_len] = '\0';
    T_STR_EQ(hook_log, "PWDI"); /* loop 22 */
    /* statement 9: re-armed once -> two calls in the same pass */
    d_rearm = 1;
    evpl_defer(evpl, &d);
    evpl_continue(evpl);
    T_EQ(d_calls, 3); /* loop 9 */
    /* statement 10 */
    evpl_defer(evpl, &d);
    evpl_remove_deferral(evpl, &d);
    evpl_remove_deferral(evpl, &d);
    T_EQ(d_calls, 3); /* loop 10 */
    evpl_set_loop_hooks(evpl, NULL);
    evpl_destroy(evpl);
} /* deferrals_and_hooks */

/* ---- doorbells ---------------------------------------------------------- */

static pthread_t owner;
static atomic_int db_calls, db_wrong_thread;

static void
on_db(struct evpl *evpl, struct evpl_doorbell *db)
{
    if (!pthread_equal(owner, pthread_self())) {
        atomic_fetch_add(&db_wrong_thread, 1);
    }
    atomic_fetch_add(&db_calls, 1);
} /* on_db */

static void *
ring_later(void *arg)
{
    t_sleep_ms(200);
    evpl_ring_doorbell(arg);
    return NULL;
} /* ring_later */

static void
doorbells(void)
{
    struct evpl *evpl = t_loop_create(1, -1);
    struct evpl_doorbell db;
    struct pollfd pfd;
    pthread_t tid;
    uint64_t t0;
    int late = 0;

    owner = pthread_self();
    evpl_add_doorbell(evpl, &db, on_db);
    t0 = t_now_ns();
    T_EQ(pthread_create(&tid, NULL, ring_later, &db), 0);
    while (atomic_load(&db_calls) == 0) {
        T_LT(t_now_ns() - t0, 5000 * MS);
        if (t_now_ns() - t0 > 100 * MS) {
            late++;
        }
        evpl_continue(evpl);
    }
    pthread_join(tid, NULL);
    T_EQ(late, 0);                          /* loop 12 */
    T_EQ(atomic_load(&db_wrong_thread), 0); /* loop 12 */
    evpl_remove_doorbell(evpl, &db);
    evpl_destroy(evpl);

    /* statement 15 on a loop that never busy-polls */
    evpl = t_loop_create(0, 10);
    evpl_add_doorbell(evpl, &db, on_db);
    pfd.fd = evpl_doorbell_fd(&db);
    pfd.events = POLLIN;
    T_EQ(poll(&pfd, 1, 0), 0);
    evpl_ring_doorbell(&db);
    T_EQ(poll(&pfd, 1, 0), 1); /* loop 15 */
    evpl_continue(evpl);
    T_EQ(atomic_load(&db_calls), 2);
    evpl_remove_doorbell(evpl, &db);
    evpl_destroy(evpl);
} /* doorbells */

/* ---- fd events ---------------------------------------------------------- */

struct rd {
    struct evpl_fd_event ev;
    int fd, calls, bytes, eof, errors;
};

static void
rd_one(struct evpl *evpl, struct evpl_fd_event *ev)
{
    struct rd *r = t_container_of(ev, struct rd, ev);
    char c;
    ssize_t n = read(r->fd, &c, 1);

    r->calls++;
    if (n == 1) {
        r->bytes++;
    } else {
        if (n == 0) {
            r->eof = 1;
        }
        evpl_fd_event_mark_unreadable(evpl, ev);
    }
} /* rd_one */

static void
rd_err(struct evpl *evpl, struct evpl_fd_event *ev)
{
    t_container_of(ev, struct rd, ev)->errors++;
} /* rd_err */

static int wr_calls, freed_reads;

static void
wr_cb(struct evpl *evpl, struct evpl_fd_event *ev)
{
    wr_calls++;
} /* wr_cb */

static void
rd_free(struct evpl *evpl, struct evpl_fd_event *ev)
{
    freed_reads++;
    evpl_remove_fd_event(evpl, ev);
    free(ev);
} /* rd_free */

static void
fd_events(void)
{
    struct evpl *evpl = t_loop_create(0, 0);
    struct rd r;
    struct evpl_fd_event w, *heap;
    int fds[2], wfds[2], i;
    uint64_t t0;

    /* statement 23 */
    memset(&r, 0, sizeof(r));
    t_pipe(fds);
    r.fd = fds[0];
    evpl_add_fd_event(evpl, &r.ev, fds[0], rd_one, NULL, rd_err);
    evpl_fd_event_read_interest(evpl, &r.ev);
    t_passes(evpl, 3);
    T_EQ(r.calls, 0);
    T_EQ(write(fds[1], "abc", 3), 3);
    t_passes(evpl, 4);
    T_EQ(r.calls, 4); /* loop 23 */
    T_EQ(r.bytes, 3);
    t_passes(evpl, 10);
    T_EQ(r.calls, 4); /* loop 23 */
    /* statement 24 */
    evpl_fd_event_mark_readable(evpl, &r.ev);
    t_passes(evpl, 3);
    T_EQ(r.calls, 5); /* loop 24 */

    /* statement 25 (select is level-triggered: stop via disinterest) */
    t_pipe(wfds);
    evpl_add_fd_event(evpl, &w, wfds[1], NULL, wr_cb, NULL);
    evpl_fd_event_write_interest(evpl, &w);
    t_passes(evpl, 5);
    T_EQ(wr_calls, 5); /* loop 25 */
    evpl_fd_event_write_disinterest(evpl, &w);
    t_passes(evpl, 5);
    T_EQ(wr_calls, 5); /* loop 25 */
    evpl_remove_fd_event(evpl, &w);
    close(wfds[0]);
    close(wfds[1]);

    /* statement 26 */
    t_pipe(wfds);
    heap = calloc(1, sizeof(*heap));
    evpl_add_fd_event(evpl, heap, wfds[0], rd_free, NULL, NULL);
    evpl_fd_event_read_interest(evpl, heap);
    T_EQ(write(wfds[1], "x", 1), 1);
    t_passes(evpl, 5);
    T_EQ(freed_reads, 1); /* loop 26 */
    T_NE(fcntl(wfds[0], F_GETFD), -1);
    close(wfds[0]);
    close(wfds[1]);

    /* statement 28: hang-up -> error callback or a read of 0 */
    close(fds[1]);
    t0 = t_now_ns();
    for (i = 0; !r.eof && r.errors == 0; i++) {
        T_LT(t_now_ns() - t0, 2000 * MS);
        evpl_continue(evpl);
    }
    T_OK(r.eof || r.errors > 0); /* loop 28 */
    evpl_remove_fd_event(evpl, &r.ev);
    close(fds[0]);
    evpl_destroy(evpl);
} /* fd_events */

/* ---- polls -------------------------------------------------------------- */

static void
polls(void)
{
    struct evpl *evpl = t_loop_create(1, 10);
    struct t_pstate ps = {0};
    struct evpl_poll *p;
    uint64_t t0;
    int n;

    t_ps_hooks(evpl, &ps);
    p = t_ps_add_poll(evpl, &ps);
    evpl_poll_pin(evpl);
    t_passes(evpl, 3000);
    T_EQ(ps.enter, 1);    /* loop 16 */
    T_GE(ps.polls, 2900); /* loop 16 */
    t_full_passes(evpl, &ps, 1, 1001);
    n = t_full_passes(evpl, &ps, 1, 1001);
    T_EQ(n, 1001);
    evpl_poll_unpin(evpl);
    t0 = t_now_ns();
    while (ps.exit == 0) {
        T_LT(t_now_ns() - t0, 2000 * MS);
        evpl_continue(evpl);
    }
    T_EQ(ps.exit, 1); /* loop 16, 18 */
    n = ps.polls;
    t_passes(evpl, 20);
    T_EQ(ps.polls, n);
    evpl_remove_poll(evpl, p);
    evpl_set_loop_hooks(evpl, NULL);
    evpl_destroy(evpl);
} /* polls */

/* ---- stop from another thread ------------------------------------------ */

static struct evpl *stop_loop;
static atomic_int stop_ready, stop_returned;

static void *
run_loop(void *arg)
{
    stop_loop = t_loop_create(1, -1);
    atomic_store(&stop_ready, 1);
    evpl_run(stop_loop);
    atomic_store(&stop_returned, 1);
    evpl_destroy(stop_loop);
    return NULL;
} /* run_loop */

static void
stop(void)
{
    pthread_t tid;
    uint64_t t0;

    T_EQ(pthread_create(&tid, NULL, run_loop, NULL), 0);
    while (!atomic_load(&stop_ready)) {
        t_sleep_ms(1);
    }
    t_sleep_ms(200);
    T_EQ(atomic_load(&stop_returned), 0);
    t0 = t_now_ns();
    evpl_stop(stop_loop); /* core 9 */
    while (!atomic_load(&stop_returned)) {
        T_LT(t_now_ns() - t0, 2000 * MS); /* core 9 */
        t_sleep_ms(1);
    }
    pthread_join(tid, NULL);
} /* stop */

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();

    alarm(60);
    evpl_global_config_set_core_mech(cfg, EVPL_CORE_MECH_SELECT); /* core 6 */
    evpl_init(cfg);
    memset(&kick, 0, sizeof(kick));
    evpl_deferral_init(&kick, nop, NULL);
    timers();
    deferrals_and_hooks();
    doorbells();
    fd_events();
    polls();
    stop();
    return 0;
} /* main */
