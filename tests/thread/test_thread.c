/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * evpl_thread (thread.md statements 1, 2, 3, 7; statement 4 needs binds
 * and is covered with the network layer).  Plain (non-atomic) variables
 * written by the worker and read by the creator after evpl_thread_create /
 * evpl_thread_destroy return rely on the library's synchronization, which
 * ThreadSanitizer checks.
 */
#include "../core/t_loop.h"

#include <sys/syscall.h>

#define MS 1000000ull

/* ---- statements 1, 2, 3 ------------------------------------------------- */

struct worker {
    int init_value; /* written by init after a delay */
    pthread_t init_thread;
    int init_calls;
    void *init_arg;
    int shutdown_calls;
    void *shutdown_arg;
    struct evpl *init_evpl, *shutdown_evpl;
    pthread_t shutdown_thread;
    int shutdown_done; /* written last by shutdown, after a delay */
    int thread_exited; /* written by a TSD destructor at exit */
};

static struct worker w;
static int creator_arg;
static pthread_key_t exit_key;

static void
on_thread_exit(void *p)
{
    ((struct worker *) p)->thread_exited = 1;
} /* on_thread_exit */

static void *
init_cb(struct evpl *evpl, void *private_data)
{
    w.init_calls++;
    w.init_arg = private_data;
    w.init_thread = pthread_self();
    w.init_evpl = evpl;
    pthread_setspecific(exit_key, &w);
    t_sleep_ms(100); /* creation must wait for this */
    w.init_value = 42;
    return &w; /* replaces the thread's private data */
} /* init_cb */

static void
shutdown_cb(struct evpl *evpl, void *private_data)
{
    w.shutdown_calls++;
    w.shutdown_arg = private_data;
    w.shutdown_evpl = evpl;
    w.shutdown_thread = pthread_self();
    t_sleep_ms(100); /* destroy must wait for this */
    w.shutdown_done = 1;
} /* shutdown_cb */

static void
lifecycle(void)
{
    struct evpl_thread *t;

    T_EQ(pthread_key_create(&exit_key, on_thread_exit), 0);
    t = evpl_thread_create(NULL, init_cb, shutdown_cb, &creator_arg);
    T_OK(t != NULL);
    /* statement 1: init has run (on another thread) and its writes are
     * visible */
    T_EQ(w.init_calls, 1);  /* thread 1 */
    T_EQ(w.init_value, 42); /* thread 1 */
    T_EQ_PTR(w.init_arg, &creator_arg);
    T_OK(!pthread_equal(w.init_thread, pthread_self())); /* thread 1 */
    T_OK(w.init_evpl != NULL);
    T_EQ(w.shutdown_calls, 0);

    t_sleep_ms(50);
    evpl_thread_destroy(t);
    /* statement 3: shutdown has completed and the thread has exited */
    T_EQ(w.shutdown_calls, 1); /* thread 3 */
    T_EQ(w.shutdown_done, 1);  /* thread 3 */
    T_EQ(w.thread_exited, 1);  /* thread 3 */
    /* statement 2: shutdown got init's return value, on the same loop and
     * thread */
    T_EQ_PTR(w.shutdown_arg, &w); /* thread 2 */
    T_EQ_PTR(w.shutdown_evpl, w.init_evpl);
    T_OK(pthread_equal(w.shutdown_thread, w.init_thread));
    pthread_key_delete(exit_key);
} /* lifecycle */

/* ---- NULL callbacks ----------------------------------------------------- */

static void *null_shutdown_arg;
static int null_shutdown_calls;

static void
shutdown_record(struct evpl *evpl, void *private_data)
{
    null_shutdown_calls++;
    null_shutdown_arg = private_data;
} /* shutdown_record */

static void *
init_returns_null(struct evpl *evpl, void *private_data)
{
    return NULL;
} /* init_returns_null */

static void
null_callbacks(void)
{
    struct evpl_thread *t;
    int arg;

    /* both NULL */
    t = evpl_thread_create(NULL, NULL, NULL, NULL);
    T_OK(t != NULL);
    evpl_thread_destroy(t);

    /* init NULL: shutdown receives the original private_data */
    t = evpl_thread_create(NULL, NULL, shutdown_record, &arg);
    evpl_thread_destroy(t);
    T_EQ(null_shutdown_calls, 1);
    T_EQ_PTR(null_shutdown_arg, &arg); /* thread 2 */

    /* init returning NULL: that NULL is what shutdown receives */
    t = evpl_thread_create(NULL, init_returns_null, shutdown_record, &arg);
    evpl_thread_destroy(t);
    T_EQ(null_shutdown_calls, 2);
    T_EQ_PTR(null_shutdown_arg, NULL); /* thread 2 */
} /* null_callbacks */

/* ---- statement 7 -------------------------------------------------------- */

struct svc {
    struct evpl_timer timer;
    struct evpl_deferral deferral;
    struct evpl_doorbell doorbell;
    struct evpl_fd_event fdev;
    struct evpl_poll *poll;
    int fds[2];
    pthread_t worker;
    atomic_int timer_calls, deferral_calls, doorbell_calls, fd_calls;
    atomic_int poll_calls, wrong_thread;
};

static struct svc svc;

static void
check_thread(void)
{
    if (!pthread_equal(pthread_self(), svc.worker)) {
        atomic_fetch_add(&svc.wrong_thread, 1);
    }
} /* check_thread */

static void
svc_timer(struct evpl *evpl, struct evpl_timer *t)
{
    check_thread();
    atomic_fetch_add(&svc.timer_calls, 1);
} /* svc_timer */

static void
svc_deferral(struct evpl *evpl, void *p)
{
    check_thread();
    atomic_fetch_add(&svc.deferral_calls, 1);
} /* svc_deferral */

static void
svc_doorbell(struct evpl *evpl, struct evpl_doorbell *db)
{
    check_thread();
    atomic_fetch_add(&svc.doorbell_calls, 1);
    /* a deferral armed from a callback also runs on the worker */
    evpl_defer(evpl, &svc.deferral);
    /* activity: the loop polls (calls svc_poll) for spin_ns after this */
    evpl_activity(evpl);
} /* svc_doorbell */

static void
svc_read(struct evpl *evpl, struct evpl_fd_event *ev)
{
    char buf[64];

    check_thread();
    while (read(svc.fds[0], buf, sizeof(buf)) > 0) {
    }
    evpl_fd_event_mark_unreadable(evpl, ev);
    atomic_fetch_add(&svc.fd_calls, 1);
} /* svc_read */

static void
svc_poll(struct evpl *evpl, void *p)
{
    check_thread();
    atomic_fetch_add(&svc.poll_calls, 1);
} /* svc_poll */

static void *
svc_init(struct evpl *evpl, void *p)
{
    struct svc *s = p;

    s->worker = pthread_self();
    evpl_add_timer(evpl, &s->timer, svc_timer, 5000);
    memset(&s->deferral, 0, sizeof(s->deferral));
    evpl_deferral_init(&s->deferral, svc_deferral, s);
    evpl_defer(evpl, &s->deferral);
    evpl_add_doorbell(evpl, &s->doorbell, svc_doorbell);
    evpl_add_fd_event(evpl, &s->fdev, s->fds[0], svc_read, NULL, NULL);
    evpl_fd_event_read_interest(evpl, &s->fdev);
    s->poll = evpl_add_poll(evpl, NULL, NULL, svc_poll, s);
    return s;
} /* svc_init */

static void
svc_shutdown(struct evpl *evpl, void *p)
{
    struct svc *s = p;

    check_thread();
    evpl_remove_timer(evpl, &s->timer);
    evpl_remove_deferral(evpl, &s->deferral);
    evpl_remove_doorbell(evpl, &s->doorbell);
    evpl_remove_fd_event(evpl, &s->fdev);
    evpl_remove_poll(evpl, s->poll);
} /* svc_shutdown */

static void
wait_for(atomic_int *counter, int want, const char *what)
{
    uint64_t t0 = t_now_ns();

    while (atomic_load(counter) < want) {
        if (t_now_ns() - t0 > 5000 * MS) {
            T_FAIL("%s callbacks: %d, expected >= %d", what, atomic_load(counter), want);
        }
        t_sleep_ms(1);
    }
} /* wait_for */

static void
callbacks_on_worker(void)
{
    struct evpl_thread *t;
    struct evpl_thread_config *tc = evpl_thread_config_init();

    t_pipe(svc.fds);
    /* a non-NULL config is borrowed (copied): released right after */
    evpl_thread_config_set_wait_ms(tc, 50);
    t = evpl_thread_create(tc, svc_init, svc_shutdown, &svc);
    evpl_thread_config_release(tc);

    wait_for(&svc.deferral_calls, 1, "deferral");
    wait_for(&svc.timer_calls, 3, "timer");
    evpl_ring_doorbell(&svc.doorbell);
    wait_for(&svc.doorbell_calls, 1, "doorbell");
    wait_for(&svc.deferral_calls, 2, "deferral");
    T_EQ(write(svc.fds[1], "ping", 4), 4);
    wait_for(&svc.fd_calls, 1, "fd event");
    /* the doorbell callback reported activity: the poll ran */
    wait_for(&svc.poll_calls, 1, "poll");

    evpl_thread_destroy(t);
    T_EQ(atomic_load(&svc.wrong_thread), 0); /* thread 7 */
    close(svc.fds[0]);
    close(svc.fds[1]);
} /* callbacks_on_worker */

/* ---- destroy from a thread other than the creator ----------------------- */

static void *
destroyer(void *arg)
{
    evpl_thread_destroy(arg);
    return NULL;
} /* destroyer */

static int other_shutdown_calls;

static void
other_shutdown(struct evpl *evpl, void *p)
{
    other_shutdown_calls++;
} /* other_shutdown */

static void
destroy_elsewhere(void)
{
    struct evpl_thread *t = evpl_thread_create(NULL, NULL, other_shutdown, NULL);
    pthread_t tid;

    T_EQ(pthread_create(&tid, NULL, destroyer, t), 0);
    pthread_join(tid, NULL);
    T_EQ(other_shutdown_calls, 1);
} /* destroy_elsewhere */

/* ---- step 1: an 8 MiB stack; a loop stopped early still shuts down ---- */

static size_t stack_size;
static int early_shutdown_calls;
static int early_exited; /* set by the shutdown callback, read after destroy */

static void *
stack_init(struct evpl *evpl, void *p)
{
    pthread_attr_t attr;

    T_EQ(pthread_getattr_np(pthread_self(), &attr), 0);
    T_EQ(pthread_attr_getstacksize(&attr, &stack_size), 0);
    pthread_attr_destroy(&attr);
    evpl_stop(evpl); /* thread.md: the thread goes to its shutdown early */
    return p;
} /* stack_init */

static void
early_shutdown(struct evpl *evpl, void *p)
{
    early_shutdown_calls++;
    early_exited = 1;
} /* early_shutdown */

static void
stack_and_early_stop(void)
{
    struct evpl_thread *t = evpl_thread_create(NULL, stack_init, early_shutdown, NULL);

    T_OK(stack_size >= 8ull << 20);
    t_sleep_ms(20); /* the worker has likely shut down by now; destroy still joins */
    evpl_thread_destroy(t);
    T_EQ(early_shutdown_calls, 1);
    T_EQ(early_exited, 1);
} /* stack_and_early_stop */

int
main(void)
{
    alarm(60);
    evpl_init(t_global_config());
    lifecycle();           /* thread 1, 2, 3 */
    null_callbacks();      /* thread 2 */
    callbacks_on_worker(); /* thread 7 */
    destroy_elsewhere();
    stack_and_early_stop();
    /* thread 4 (binds closed before shutdown) needs the network layer */
    return 0;
} /* main */
