/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Review regression: evpl_listener_detach may run on the binding's loop,
 * and the attach callback runs there; a server that stops accepting after
 * its first client detaches from inside the attach callback.  binding_ring
 * (listener.c) kept walking the connections it had taken from the inbox
 * and read b->attach_callback / b->private_data from the binding the
 * detach just freed: heap-use-after-free when two connections arrive in
 * one batch.  The rest of the batch, never shown to the application, goes
 * to the loops still attached or is closed (none here: the clients see
 * EOF).  Second round: the callback also destroys the listener ("may run on
 * any thread", net.md §4); handing the rest of the batch on used to read
 * the freed listener (heap-use-after-free).
 */
#include "t_net.h"

static struct evpl_listener_binding *binding;
static struct evpl_listener *listener_to_destroy;
static struct t_conn conns[8];
static int nconns;

static void
attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_cb,
       evpl_segment_callback_t *segment_cb, void **conn_private, void *private_data)
{
    struct t_conn *c = &conns[nconns++];

    T_OK(nconns <= 8);
    t_conn_init(c);
    c->bind = bind;
    c->evpl = evpl;
    *notify_cb = t_conn_notify;
    *segment_cb = NULL;
    *conn_private = c;
    if (binding) {
        evpl_listener_detach(evpl, binding); /* stop accepting more */
        binding = NULL;
        if (listener_to_destroy) {
            evpl_listener_destroy(listener_to_destroy);
            listener_to_destroy = NULL;
        }
    }
}

/* Read until EOF or reset: the connection was closed by the server. */
static void
expect_closed(int fd)
{
    char b[16];
    struct timeval tv = {5, 0};

    T_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    T_OK(read(fd, b, sizeof(b)) <= 0);
}

/* net.md §4: detach must run on the binding's loop; from another thread it
 * is a program bug (DESIGN §7: abort), not a silent race */
static void *
detach_elsewhere(void *arg)
{
    evpl_listener_detach(((struct t_conn *) arg)->evpl, binding);
    return NULL;
}

static void
wrong_thread_child(void *arg)
{
    pthread_t t;

    pthread_create(&t, NULL, detach_elsewhere, arg);
    pthread_join(t, NULL);
    _exit(0);
}

int
main(void)
{
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct evpl_listener *l;
    int f1, f2;

    t_net_guard(30);
    evpl = t_net_loop();
    ep = t_endpoint(EVPL_STREAM_SOCKET_TCP);
    l = t_listen(EVPL_STREAM_SOCKET_TCP, ep);
    binding = evpl_listener_attach(evpl, l, attach, NULL);
    T_OK(binding != NULL);

    /* both connections reach the inbox before the loop runs */
    f1 = t_raw_connect(ep);
    f2 = t_raw_connect(ep);
    T_OK(f1 >= 0 && f2 >= 0);
    usleep(200000);

    t_pump_for(evpl, 100);
    T_EQ(nconns, 1);
    expect_closed(f2); /* taken in the batch, never attached: closed */
    close(f1);
    close(f2);
    for (int i = 0; i < nconns; i++) {
        T_PUMP(evpl, conns[i].disconnected, 5000);
        T_EQ(conns[i].errors, 0);
        t_conn_free(&conns[i]);
    }
    evpl_listener_destroy(l);

    /* again, destroying the listener from the callback too */
    {
        int f[4];

        nconns = 0;
        l = t_listen(EVPL_STREAM_SOCKET_TCP, ep);
        listener_to_destroy = l;
        binding = evpl_listener_attach(evpl, l, attach, NULL);
        for (int i = 0; i < 4; i++) {
            f[i] = t_raw_connect(ep);
            T_OK(f[i] >= 0);
        }
        usleep(200000);
        t_pump_for(evpl, 100);
        T_EQ(nconns, 1);
        for (int i = 1; i < 4; i++) {
            expect_closed(f[i]);
        }
        for (int i = 0; i < 4; i++) {
            close(f[i]);
        }
        T_PUMP(evpl, conns[0].disconnected, 5000);
        t_conn_free(&conns[0]);
    }
    {
        struct t_conn owner = {.evpl = evpl};

        l = t_listen(EVPL_STREAM_SOCKET_TCP, ep);
        binding = evpl_listener_attach(evpl, l, attach, NULL);
        T_EQ(t_child_signal(wrong_thread_child, &owner), SIGABRT);
        evpl_listener_detach(evpl, binding);
        binding = NULL;
        evpl_listener_destroy(l);
    }
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
