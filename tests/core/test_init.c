/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * Process initialization: evpl_init(NULL) versus auto-initialization
 * (core §11 statement 1), double / late evpl_init aborting (statement 2),
 * and mechanism validation at evpl_init (core §1).  Every scenario needs a
 * pristine process, so each runs in a forked child.
 */
#include "../core/t_loop.h"

/* ---- statement 2: misuse aborts ---------------------------------------- */

static void
init_twice(void *arg)
{
    evpl_init(NULL);
    evpl_init(NULL);
} /* init_twice */

static void
init_twice_with_configs(void *arg)
{
    struct evpl_global_config *a = evpl_global_config_init();
    struct evpl_global_config *b = evpl_global_config_init();

    evpl_init(a);
    evpl_init(b);
} /* init_twice_with_configs */

static void
init_after_create(void *arg)
{
    struct evpl *evpl = evpl_create(NULL);

    (void) evpl;
    evpl_init(NULL);
} /* init_after_create */

static void
init_cfg_after_create(void *arg)
{
    /* evpl_global_config_init itself does not initialize the library */
    struct evpl_global_config *cfg = evpl_global_config_init();
    struct evpl *evpl = evpl_create(NULL);

    (void) evpl;
    evpl_init(cfg);
} /* init_cfg_after_create */

static void
init_after_scrape(void *arg)
{
    char buf[1 << 16];

    (void) evpl_metrics_scrape(buf, sizeof(buf));
    evpl_init(NULL);
} /* init_after_scrape */

static void
init_after_thread_config_init(void *arg)
{
    /* our header: evpl_thread_config_init auto-initialises (spec SHOULD) */
    struct evpl_thread_config *tc = evpl_thread_config_init();

    (void) tc;
    evpl_init(NULL);
} /* init_after_thread_config_init */

static void
init_after_thread_create(void *arg)
{
    struct evpl_thread *t = evpl_thread_create(NULL, NULL, NULL, NULL);

    (void) t;
    evpl_init(NULL);
} /* init_after_thread_create */

static void
init_after_threadpool_create(void *arg)
{
    struct evpl_threadpool *p = evpl_threadpool_create(NULL, 2, NULL, NULL, NULL);

    (void) p;
    evpl_init(NULL);
} /* init_after_threadpool_create */

/* endpoint constructors initialize the library even for text they refuse */
static void
init_after_refused_local(void *arg)
{
    T_OK(evpl_endpoint_create_local("") == NULL);
    evpl_init(NULL);
} /* init_after_refused_local */

static void
init_after_refused_inproc(void *arg)
{
    T_OK(evpl_endpoint_create_inproc("") == NULL);
    evpl_init(NULL);
} /* init_after_refused_inproc */

static void
init_kqueue_on_linux(void *arg)
{
    struct evpl_global_config *cfg = evpl_global_config_init();

    /* kqueue does not exist on Linux: an unavailable mechanism aborts */
    evpl_global_config_set_core_mech(cfg, EVPL_CORE_MECH_KQUEUE);
    evpl_init(cfg);
} /* init_kqueue_on_linux */

static void
init_unknown_mech(void *arg)
{
    struct evpl_global_config *cfg = evpl_global_config_init();

    /* not a mechanism at all: stored, and evpl_init aborts on it */
    evpl_global_config_set_core_mech(cfg, (enum evpl_core_mech) 99);
    evpl_init(cfg);
} /* init_unknown_mech */

static void
init_after_failed_lookup(void *arg)
{
    enum evpl_protocol_id id;

    /* a lookup initializes the library whether or not the name exists */
    T_EQ(evpl_protocol_lookup(&id, "NO_SUCH_PROTOCOL"), -1);
    evpl_init(NULL);
} /* init_after_failed_lookup */

static void
init_after_null_lookup(void *arg)
{
    enum evpl_protocol_id id;

    T_EQ(evpl_protocol_lookup(&id, NULL), -1);
    evpl_init(NULL);
} /* init_after_null_lookup */

/* ---- statement 1: evpl_init(NULL) behaves like auto-init ---------------- */

struct observed {
    int timer_fired;
    int deferral_ran;
    int doorbell_ran;
    int scrape_ok;
    int enter_calls;
    int exit_calls;
    int exit_after_spin;  /* exit came >= 1 ms (default spin_ns) after creation */
    int pass_period;      /* passes between full passes while pinned */
    int blocks_when_idle; /* default wait_ms=-1: an idle pass sleeps */
};

static int pre_waits;
static int enters, exits;

static void
count_pre_wait(struct evpl *evpl, void *p)
{
    pre_waits++;
} /* count_pre_wait */

static void
on_enter(struct evpl *evpl, void *p)
{
    enters++;
} /* on_enter */

static void
nop_deferral(struct evpl *evpl, void *p)
{
} /* nop_deferral */

static struct evpl_deferral after_exit;

static void
on_exit_cb(struct evpl *evpl, void *p)
{
    exits++;
    /* the exit callback runs before the wait timeout is computed: an armed
     * deferral keeps this pass from sleeping (default wait_ms = -1) */
    evpl_defer(evpl, &after_exit);
} /* on_exit_cb */

static void
on_poll(struct evpl *evpl, void *p)
{
} /* on_poll */

static int timer_fired, deferral_ran, doorbell_ran;

static void
on_timer(struct evpl *evpl, struct evpl_timer *t)
{
    timer_fired++;
} /* on_timer */

static void
on_deferral(struct evpl *evpl, void *p)
{
    deferral_ran++;
} /* on_deferral */

static void
on_doorbell(struct evpl *evpl, struct evpl_doorbell *db)
{
    doorbell_ran++;
} /* on_doorbell */

static struct evpl_doorbell *ring_target;

static void *
ring_later(void *arg)
{
    t_sleep_ms(300);
    evpl_ring_doorbell(ring_target);
    return NULL;
} /* ring_later */

static void
exercise(struct observed *o)
{
    struct evpl *evpl;
    struct evpl_timer timer;
    struct evpl_deferral deferral;
    struct evpl_doorbell db;
    struct evpl_loop_hooks hooks = {.pre_wait = count_pre_wait};
    struct evpl_poll *poll;
    char *buf = malloc(1 << 20);
    uint64_t created, start, deadline;
    int n, before;
    pthread_t tid;

    memset(o, 0, sizeof(*o));
    created = t_now_ns();
    evpl = evpl_create(NULL);
    evpl_set_loop_hooks(evpl, &hooks);

    /* polls with the default thread config: the spin window (default
     * spin_ns = 1 ms) starts at creation; pin to measure poll_iterations */
    memset(&after_exit, 0, sizeof(after_exit));
    evpl_deferral_init(&after_exit, nop_deferral, NULL);
    poll = evpl_add_poll(evpl, on_enter, on_exit_cb, on_poll, NULL);
    evpl_poll_pin(evpl);
    for (n = 0; n < 5000 && pre_waits < 2; n++) {
        evpl_continue(evpl);
    }
    before = pre_waits;
    for (n = 0; pre_waits == before && n < 5000;) {
        evpl_continue(evpl);
        n++;
    }
    o->pass_period = n;
    evpl_poll_unpin(evpl);
    deadline = t_now_ns() + 2000000000ull;
    while (exits == 0 && t_now_ns() < deadline) {
        evpl_continue(evpl);
    }
    o->enter_calls = enters;
    o->exit_calls = exits;
    o->exit_after_spin = exits > 0 && t_now_ns() - created >= 1000000ull;
    evpl_remove_poll(evpl, poll);

    memset(&deferral, 0, sizeof(deferral));
    evpl_deferral_init(&deferral, on_deferral, NULL);
    evpl_defer(evpl, &deferral);
    evpl_continue(evpl);
    o->deferral_ran = deferral_ran;

    memset(&timer, 0, sizeof(timer));
    evpl_add_oneshot_timer(evpl, &timer, on_timer, 1000);
    deadline = t_now_ns() + 2000000000ull;
    while (!timer_fired && t_now_ns() < deadline) {
        evpl_continue(evpl);
    }
    o->timer_fired = timer_fired;

    /* default wait_ms = -1: idle passes sleep until a ring from a thread */
    evpl_add_doorbell(evpl, &db, on_doorbell);
    ring_target = &db;
    T_EQ(pthread_create(&tid, NULL, ring_later, NULL), 0);
    start = t_now_ns();
    n = 0; /* passes that started more than 50 ms after start */
    while (!doorbell_ran && t_now_ns() - start < 3000000000ull) {
        if (t_now_ns() - start > 50000000ull) {
            n++;
        }
        evpl_continue(evpl);
    }
    o->doorbell_ran = doorbell_ran;
    /* the spin window is long over after 50 ms: one pass sleeps until the
     * ring at 300 ms (a finite wait_ms would start more passes) */
    o->blocks_when_idle = doorbell_ran && t_now_ns() - start >= 200000000ull && n == 0;
    pthread_join(tid, NULL);
    evpl_remove_doorbell(evpl, &db);

    o->scrape_ok = evpl_metrics_scrape(buf, 1 << 20) > 0;
    free(buf);
    evpl_destroy(evpl);
} /* exercise */

static void
collect(int explicit_init, struct observed *o)
{
    int fds[2];
    pid_t pid;
    int status;

    T_EQ(pipe(fds), 0);
    fflush(stderr);
    pid = fork();
    if (pid == 0) {
        struct observed r;

        alarm(20);
        close(fds[0]);
        if (explicit_init) {
            evpl_init(NULL);
        }
        exercise(&r);
        if (write(fds[1], &r, sizeof(r)) != (ssize_t) sizeof(r)) {
            _exit(2);
        }
        close(fds[1]);
        exit(0);
    }
    T_OK(pid > 0);
    close(fds[1]);
    T_EQ(read(fds[0], o, sizeof(*o)), (ssize_t) sizeof(*o));
    close(fds[0]);
    T_EQ(waitpid(pid, &status, 0), pid);
    T_OK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
} /* collect */

static void
check_sane(const struct observed *o)
{
    T_EQ(o->timer_fired, 1);
    T_EQ(o->deferral_ran, 1);
    T_EQ(o->doorbell_ran, 1);
    T_EQ(o->scrape_ok, 1);
    T_EQ(o->enter_calls, 1);
    T_EQ(o->exit_calls, 1);
    T_EQ(o->exit_after_spin, 1);
    T_EQ(o->pass_period, 1001); /* default poll_iterations = 1000 */
    T_EQ(o->blocks_when_idle, 1);
} /* check_sane */

static void
explicit_config_works(void *arg)
{
    struct evpl_global_config *cfg = t_global_config();
    struct evpl *evpl;
    struct evpl_deferral d;

    evpl_init(cfg);
    evpl = evpl_create(NULL);
    memset(&d, 0, sizeof(d));
    evpl_deferral_init(&d, on_deferral, NULL);
    evpl_defer(evpl, &d);
    evpl_continue(evpl);
    T_EQ(deferral_ran, 1);
    evpl_destroy(evpl);
} /* explicit_config_works */

static void
epoll_explicit_works(void *arg)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    struct evpl *evpl;

    evpl_global_config_set_core_mech(cfg, EVPL_CORE_MECH_EPOLL);
    evpl_init(cfg);
    evpl = evpl_create(NULL);
    evpl_destroy(evpl);
} /* epoll_explicit_works */

int
main(void)
{
    struct observed a, b;

    alarm(60);

    /* statement 2: a second evpl_init aborts */
    T_EQ(t_child_signal(init_twice, NULL), SIGABRT);              /* core 2 */
    T_EQ(t_child_signal(init_twice_with_configs, NULL), SIGABRT); /* core 2 */
    /* statement 2: evpl_init after any auto-initializing call aborts */
    T_EQ(t_child_signal(init_after_create, NULL), SIGABRT);             /* core 2 */
    T_EQ(t_child_signal(init_cfg_after_create, NULL), SIGABRT);         /* core 2 */
    T_EQ(t_child_signal(init_after_scrape, NULL), SIGABRT);             /* core 2 */
    T_EQ(t_child_signal(init_after_thread_config_init, NULL), SIGABRT); /* core 2 */
    T_EQ(t_child_signal(init_after_thread_create, NULL), SIGABRT);      /* core 2 */
    T_EQ(t_child_signal(init_after_threadpool_create, NULL), SIGABRT);  /* core 2 */
    T_EQ(t_child_signal(init_after_failed_lookup, NULL), SIGABRT);      /* core 2 */
    T_EQ(t_child_signal(init_after_null_lookup, NULL), SIGABRT);        /* core 2 */
    T_EQ(t_child_signal(init_after_refused_local, NULL), SIGABRT);      /* core 2 */
    T_EQ(t_child_signal(init_after_refused_inproc, NULL), SIGABRT);     /* core 2 */

    /* core §1: an unavailable mechanism aborts at evpl_init; epoll works */
    T_EQ(t_child_signal(init_kqueue_on_linux, NULL), SIGABRT);
    T_EQ(t_child_signal(init_unknown_mech, NULL), SIGABRT);
    t_run_child("epoll explicit", epoll_explicit_works, NULL);
    /* a single evpl_init with a config is fine */
    t_run_child("explicit config", explicit_config_works, NULL);

    /* statement 1: evpl_init(NULL) + use == auto-init + use */
    collect(1, &a); /* core 1 */
    collect(0, &b); /* core 1 */
    check_sane(&a);
    check_sane(&b);
    T_EQ(memcmp(&a, &b, sizeof(a)), 0); /* core 1 */

    return 0;
} /* main */
