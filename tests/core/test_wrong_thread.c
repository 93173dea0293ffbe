/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * A struct evpl-scoped call made off the loop's owning thread (spec README,
 * cross-cutting rule 1) is a programming error: debug builds abort on it
 * (DESIGN §7) instead of racing the loop.  The calls the rule lets any
 * thread make (evpl_stop, evpl_ring_doorbell) must not abort.  A block
 * queue is used with the loop that opened it: another thread's loop with
 * it aborts too (only that loop was checked: helper-114).
 */
#include "t_loop.h"

#ifdef NDEBUG
int
main(void)
{
    printf("SKIP: the owning-thread check is compiled into debug builds only\n");
    return 77;
} /* main */
#else

enum call {
    CALL_TIMER,
    CALL_CONTINUE,
    CALL_DEFER,
    CALL_CONNECT,
    CALL_ACTIVITY,
    CALL_STOP,
    CALL_BLOCK_QUEUE
};

static struct evpl *loop;
static enum call which;
static struct evpl_timer timer;
static struct evpl_deferral deferral;
static struct evpl_block_queue *queue; /* of loop */
static char block_path[64];

static void
on_timer(struct evpl *evpl, struct evpl_timer *t)
{
} /* on_timer */

static void
on_deferral(struct evpl *evpl, void *arg)
{
} /* on_deferral */

static void
on_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *arg)
{
} /* on_notify */

static void *
foreign_thread(void *arg)
{
    struct evpl_endpoint *ep;

    switch (which) {
        case CALL_TIMER:
            evpl_add_timer(loop, &timer, on_timer, 1000);
            break;
        case CALL_CONTINUE:
            evpl_continue(loop);
            break;
        case CALL_DEFER:
            evpl_deferral_init(&deferral, on_deferral, NULL);
            evpl_defer(loop, &deferral);
            break;
        case CALL_CONNECT:
            ep = evpl_endpoint_create("127.0.0.1", 9);
            evpl_connect(loop, EVPL_STREAM_SOCKET_TCP, NULL, ep, on_notify, NULL, NULL);
            break;
        case CALL_ACTIVITY:
            evpl_activity(loop);
            break;
        case CALL_STOP:
            evpl_stop(loop); /* any thread: must not abort */
            break;
        case CALL_BLOCK_QUEUE: {
            struct evpl *mine = evpl_create(NULL);

            evpl_block_flush(mine, queue, NULL, NULL); /* loop's queue */
            evpl_destroy(mine);
            break;
        }
    }
    return NULL;
} /* foreign_thread */

static void
child(void *arg)
{
    pthread_t tid;

    which = (enum call)(intptr_t) arg;
    evpl_init(t_global_config());
    loop = t_loop_create(0, 0);
    if (which == CALL_BLOCK_QUEUE) {
        struct evpl_block_device *dev =
            evpl_block_open_device(EVPL_BLOCK_PROTOCOL_IO_URING, block_path);

        if (!dev) {
            dev = evpl_block_open_device(EVPL_BLOCK_PROTOCOL_LIBAIO, block_path);
        }
        T_OK(dev != NULL);
        queue = evpl_block_open_queue(loop, dev);
    }
    pthread_create(&tid, NULL, foreign_thread, NULL);
    pthread_join(tid, NULL);
    evpl_destroy(loop);
} /* child */

int
main(void)
{
    alarm(30);
    T_EQ(t_child_signal(child, (void *) (intptr_t) CALL_TIMER), SIGABRT);
    T_EQ(t_child_signal(child, (void *) (intptr_t) CALL_CONTINUE), SIGABRT);
    T_EQ(t_child_signal(child, (void *) (intptr_t) CALL_DEFER), SIGABRT);
    T_EQ(t_child_signal(child, (void *) (intptr_t) CALL_CONNECT), SIGABRT);
    T_EQ(t_child_signal(child, (void *) (intptr_t) CALL_ACTIVITY), SIGABRT);
    T_EQ(t_child_signal(child, (void *) (intptr_t) CALL_STOP), 0);
    {
        /* a file O_DIRECT can open (/var/tmp: not tmpfs) */
        int fd;

        snprintf(block_path, sizeof(block_path), "/var/tmp/evpl-wrong-thread-XXXXXX");
        fd = mkstemp(block_path);
        T_OK(fd >= 0);
        T_EQ(ftruncate(fd, 1 << 20), 0);
        close(fd);
        T_EQ(t_child_signal(child, (void *) (intptr_t) CALL_BLOCK_QUEUE), SIGABRT);
        unlink(block_path);
    }
    return 0;
} /* main */
#endif /* NDEBUG */
