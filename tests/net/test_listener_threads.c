/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Two evpl_thread workers attached to one listener (issue item (h)) over
 * every stream protocol: net.md §14 statements 17 (round robin: N
 * connections split evenly and alternate), 18 (attach callback on the
 * worker's thread), 43 (socket part: every callback of a bind on its
 * loop's thread); thread.md statement 4 (binds open at thread destroy get
 * DISCONNECTED before the shutdown callback).
 */
/* MATRIX: stream */
/* LABELS: threads */
#include "t_net.h"

#define N 20

struct worker {
    struct t_server srv;
    struct evpl_listener *listener;
    atomic_int accepted;
    int shutdown_ok; /* every bind disconnected when shutdown ran */
    int shutdown_ran;
};

static struct worker workers[2];
static struct evpl_listener *listener;

static void
count_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *ncb,
             evpl_segment_callback_t *scb, void **cp, void *priv)
{
    struct worker *w = priv;

    t_server_attach(evpl, bind, ncb, scb, cp, &w->srv);
    atomic_fetch_add(&w->accepted, 1);
}

static void *
worker_init(struct evpl *evpl, void *arg)
{
    struct worker *w = arg;

    w->srv.evpl = evpl;
    w->srv.max = N;
    w->srv.owner = pthread_self();
    w->srv.segment = t_segment_be32;
    w->srv.echo_msgs = 1;
    w->srv.keep_msgs = 1;
    w->srv.conns = calloc(N, sizeof(struct t_conn));
    w->srv.binding = evpl_listener_attach(evpl, listener, count_attach, w);
    return w;
}

static void
worker_shutdown(struct evpl *evpl, void *arg)
{
    struct worker *w = arg;

    w->shutdown_ran = 1;
    w->shutdown_ok = 1;
    for (int i = 0; i < w->srv.n; i++) {
        if (w->srv.conns[i].disconnected != 1) {
            w->shutdown_ok = 0;
        }
    }
    evpl_listener_detach(evpl, w->srv.binding);
}

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct evpl_thread *th[2];
    struct t_conn c[N];
    int last = -1;

    t_net_guard(60);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    listener = t_listen(proto, ep);
    for (int i = 0; i < 2; i++) {
        th[i] = evpl_thread_create(NULL, worker_init, worker_shutdown, &workers[i]);
        T_OK(th[i] != NULL);
    }

    for (int i = 0; i < N; i++) {
        int a0 = atomic_load(&workers[0].accepted), a1 = atomic_load(&workers[1].accepted);
        int which;
        uint8_t m[8];

        t_connect(evpl, proto, ep, &c[i], t_segment_be32);
        t_put_be32(m, 8);
        t_put_be32(m + 4, (uint32_t) i);
        evpl_send(evpl, c[i].bind, m, 8);
        T_PUMP(evpl, c[i].nrecv_msg == 1, 5000); /* echoed by a worker */
        T_EQ(t_get_be32(c[i].rx + 4), i);
        T_EQ(atomic_load(&workers[0].accepted) + atomic_load(&workers[1].accepted), a0 + a1 + 1);
        which = atomic_load(&workers[0].accepted) > a0 ? 0 : 1;
        if (i > 0) {
            T_NE(which, last); /* 17: alternate */
        }
        last = which;
    }
    T_EQ(atomic_load(&workers[0].accepted), N / 2);
    T_EQ(atomic_load(&workers[1].accepted), N / 2);

    /* close half from the client side; the rest stay open until the
     * workers are destroyed */
    for (int i = 0; i < N / 2; i++) {
        evpl_close(evpl, c[i].bind);
    }
    T_PUMP(evpl, ({
                     int d = 0;
                     for (int i = 0; i < N / 2; i++)
                         d += c[i].disconnected;
                     d;
                 }) == N / 2,
           5000);
    /* wait until the workers saw those closes (their echo of a last
     * message is not needed: give them time through the clients' EOF) */
    t_pump_for(evpl, 100);

    evpl_listener_destroy(listener);
    for (int i = 0; i < 2; i++) {
        evpl_thread_destroy(th[i]);
    }
    /* thread.md 4 */
    for (int i = 0; i < 2; i++) {
        T_EQ(workers[i].shutdown_ran, 1);
        T_EQ(workers[i].shutdown_ok, 1);
        T_EQ(workers[i].srv.attach_wrong_thread, 0); /* 18 */
        for (int k = 0; k < workers[i].srv.n; k++) {
            struct t_conn *s = &workers[i].srv.conns[k];

            T_EQ(s->errors, 0); /* 43: includes the owner-thread check */
            T_EQ(s->connected, 1);
            T_EQ(s->disconnected, 1);
            T_EQ(s->cb_after_disconnect, 0);
        }
    }
    /* the clients still open see the peers go away */
    T_PUMP(evpl, ({
                     int d = 0;
                     for (int i = 0; i < N; i++)
                         d += c[i].disconnected;
                     d;
                 }) == N,
           5000);
    for (int i = 0; i < N; i++) {
        T_EQ(c[i].errors, 0);
        t_conn_free(&c[i]);
    }
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < workers[i].srv.n; k++) {
            t_conn_free(&workers[i].srv.conns[k]);
        }
        free(workers[i].srv.conns);
    }
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
