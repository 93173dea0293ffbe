/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Helpers shared by the loop-layer test programs (core and thread groups).
 * Not a test program itself: only files named test_*.c are.
 *
 * T_CORE_MECH=select in the environment makes t_global_config() ask for the
 * select(2) mechanism, so any loop test can be registered a second time to
 * run over select (core conformance statement 6).
 */
#pragma once

#include <evpl/evpl.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "t.h"

#define t_container_of(ptr, type, member) ((type *) ((char *) (ptr) -offsetof(type, member)))

static inline int
t_mech_is_select(void)
{
    const char *m = getenv("T_CORE_MECH");

    return m && strcmp(m, "select") == 0;
} /* t_mech_is_select */

/* A fresh global config honouring T_CORE_MECH; returns owned. */
static inline struct evpl_global_config *
t_global_config(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();

    T_OK(cfg != NULL);
    if (getenv("T_CORE_MECH") && strcmp(getenv("T_CORE_MECH"), "io_uring") == 0) {
        evpl_global_config_set_core_mech(cfg, EVPL_CORE_MECH_IO_URING);
    }
    if (t_mech_is_select()) {
        evpl_global_config_set_core_mech(cfg, EVPL_CORE_MECH_SELECT);
    }
    return cfg;
} /* t_global_config */

/*
 * Create a loop with the given poll_mode / wait_ms (everything else from
 * the global thread defaults).  evpl_create copies its config (our
 * behaviour, DESIGN §9.5), so the object is released right away.
 */
static inline struct evpl *
t_loop_create(int poll_mode, int wait_ms)
{
    struct evpl_thread_config *tc = evpl_thread_config_init();
    struct evpl *evpl;

    T_OK(tc != NULL);
    evpl_thread_config_set_poll_mode(tc, poll_mode);
    evpl_thread_config_set_wait_ms(tc, wait_ms);
    evpl = evpl_create(tc);
    T_OK(evpl != NULL);
    evpl_thread_config_release(tc);
    return evpl;
} /* t_loop_create */

/*
 * Run fn(arg) in a forked child (e.g. to install another global config) and
 * fail unless it exits with status 0.  A T_* failure in the child exits 1.
 */
static inline void
t_run_child(const char *name, void (*fn)(void *), void *arg)
{
    pid_t pid;
    int status;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == 0) {
        alarm(30);
        fn(arg);
        fflush(stdout);
        fflush(stderr);
        exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        T_FAIL("fork/waitpid: %s", strerror(errno));
    }
    if (WIFSIGNALED(status)) {
        T_FAIL("child '%s' killed by signal %d", name, WTERMSIG(status));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        T_FAIL("child '%s' exited with status %d", name, WEXITSTATUS(status));
    }
} /* t_run_child */

/* Sleep for ms milliseconds. */
static inline void
t_sleep_ms(unsigned int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
} /* t_sleep_ms */

/* The library's monotonic clock in ns (what timers are measured against). */
static inline uint64_t
t_hf_ns(void)
{
    struct timespec ts;

    evpl_get_hf_monotonic_time(NULL, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
} /* t_hf_ns */

/* A non-blocking, close-on-exec pipe. */
static inline void
t_pipe(int fds[2])
{
    T_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
} /* t_pipe */

/*
 * Observation of poll mode through one registered poll plus loop hooks:
 * enter/exit/poll callback counts, full passes (pre_wait), all passes
 * (iteration_end) and the enter/exit sequence ("EXEX...").
 */
struct t_pstate {
    int enter, exit, polls;
    int pre, post, iter;
    int in_poll_mode;
    char seq[256];
    int nseq;
};

static inline void
t_ps_enter(struct evpl *evpl, void *p)
{
    struct t_pstate *ps = p;

    ps->enter++;
    ps->in_poll_mode = 1;
    if (ps->nseq < (int) sizeof(ps->seq) - 1) {
        ps->seq[ps->nseq++] = 'E';
    }
} /* t_ps_enter */

static inline void
t_ps_exit(struct evpl *evpl, void *p)
{
    struct t_pstate *ps = p;

    ps->exit++;
    ps->in_poll_mode = 0;
    if (ps->nseq < (int) sizeof(ps->seq) - 1) {
        ps->seq[ps->nseq++] = 'X';
    }
} /* t_ps_exit */

static inline void
t_ps_poll(struct evpl *evpl, void *p)
{
    ((struct t_pstate *) p)->polls++;
} /* t_ps_poll */

static inline void
t_ps_pre(struct evpl *evpl, void *p)
{
    ((struct t_pstate *) p)->pre++;
} /* t_ps_pre */

static inline void
t_ps_post(struct evpl *evpl, void *p)
{
    ((struct t_pstate *) p)->post++;
} /* t_ps_post */

static inline void
t_ps_iter(struct evpl *evpl, void *p)
{
    ((struct t_pstate *) p)->iter++;
} /* t_ps_iter */

/* Install counting hooks for ps on evpl. */
static inline void
t_ps_hooks(struct evpl *evpl, struct t_pstate *ps)
{
    struct evpl_loop_hooks h = {
        .iteration_end = t_ps_iter,
        .pre_wait = t_ps_pre,
        .post_wait = t_ps_post,
        .private_data = ps,
    };

    evpl_set_loop_hooks(evpl, &h);
} /* t_ps_hooks */

/* Register a poll reporting into ps. */
static inline struct evpl_poll *
t_ps_add_poll(struct evpl *evpl, struct t_pstate *ps)
{
    struct evpl_poll *p = evpl_add_poll(evpl, t_ps_enter, t_ps_exit, t_ps_poll, ps);

    T_OK(p != NULL);
    return p;
} /* t_ps_add_poll */

/*
 * Run passes until k more full passes (pre_wait hooks) have happened.  With
 * poll_iterations = P a full pass comes at least every P + 1 passes; fail
 * when none comes within max_per_full passes.  Returns the passes run.
 */
static inline int
t_full_passes(struct evpl *evpl, struct t_pstate *ps, int k, int max_per_full)
{
    int target = ps->pre + k;
    int n = 0;

    while (ps->pre < target) {
        if (n > max_per_full * k) {
            T_FAIL("no full pass within %d passes", max_per_full);
        }
        evpl_continue(evpl);
        n++;
    }
    return n;
} /* t_full_passes */

/* Run n passes. */
static inline void
t_passes(struct evpl *evpl, int n)
{
    for (int i = 0; i < n; i++) {
        evpl_continue(evpl);
    }
} /* t_passes */
