/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * net.md §4: after evpl_listener_detach "already-accepted connections are
 * unaffected".  Connections the listener had already accepted and queued
 * for the detached binding, but which its loop had not taken yet, go to
 * the loops still attached (round robin), not closed; with no loop left
 * attached they are closed.  Checked with raw clients that must get an
 * echo back from whichever binding took them.
 */
/* LABELS: threads */
#include "t_net.h"

#define N 6

static struct t_conn conns[N];
static int nconns, per_binding[2];

static void
notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    if (n->notify_type == EVPL_NOTIFY_RECV_DATA) {
        char buf[64];
        int len = evpl_recv(evpl, bind, buf, sizeof(buf), 0);

        if (len > 0) {
            evpl_send(evpl, bind, buf, (unsigned int) len); /* echo */
        }
    }
    t_conn_notify(evpl, bind, n, priv);
}

static void
attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_cb,
       evpl_segment_callback_t *segment_cb, void **conn_private, void *private_data)
{
    struct t_conn *c = &conns[nconns++];

    T_OK(nconns <= N);
    t_conn_init(c);
    c->bind = bind;
    c->evpl = evpl;
    per_binding[(int) (intptr_t) private_data]++;
    *notify_cb = notify;
    *segment_cb = NULL;
    *conn_private = c;
}

int
main(void)
{
    struct evpl_listener_binding *a, *b;
    struct evpl_endpoint *ep;
    struct evpl_listener *l;
    struct evpl *evpl;
    int fds[N];

    t_net_guard(30);
    evpl = t_net_loop();
    ep = t_endpoint(EVPL_STREAM_SOCKET_TCP);
    l = t_listen(EVPL_STREAM_SOCKET_TCP, ep);
    a = evpl_listener_attach(evpl, l, attach, (void *) (intptr_t) 0);
    b = evpl_listener_attach(evpl, l, attach, (void *) (intptr_t) 1);
    T_OK(a && b);

    /* accepted and queued alternately to a and b before the loop runs */
    for (int i = 0; i < N; i++) {
        fds[i] = t_raw_connect(ep);
        T_OK(fds[i] >= 0);
    }
    usleep(200000);
    evpl_listener_detach(evpl, b); /* b's queued connections move to a */

    T_PUMP(evpl, nconns == N, 5000);
    T_EQ(per_binding[0], N);
    T_EQ(per_binding[1], 0);
    for (int i = 0; i < N; i++) {
        char buf[8];

        T_EQ(write(fds[i], "ping", 4), 4);
        for (int k = 0; k < 5000; k++) {
            ssize_t r;

            evpl_continue(evpl);
            r = recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT);
            if (r > 0) {
                T_EQ(r, 4);
                T_OK(memcmp(buf, "ping", 4) == 0);
                break;
            }
            T_OK(r < 0 && errno == EAGAIN); /* never EOF: not closed */
            T_OK(k < 4999);
        }
    }

    /* with nobody left attached, queued connections are closed */
    {
        int f = t_raw_connect(ep), before = nconns;
        char c;

        T_OK(f >= 0);
        usleep(100000);
        evpl_listener_detach(evpl, a);
        t_pump_for(evpl, 50);
        T_EQ(nconns, before);
        T_EQ(recv(f, &c, 1, 0), 0); /* EOF */
        close(f);
    }

    for (int i = 0; i < N; i++) {
        close(fds[i]);
    }
    for (int i = 0; i < N; i++) {
        T_PUMP(evpl, conns[i].disconnected, 5000);
        t_conn_free(&conns[i]);
    }
    evpl_listener_destroy(l);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
