/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Review regression: evpl_listener_detach may run on the binding's loop,
 * and the attach callback runs there; a server that stops accepting after
 * its first client detaches from inside the attach callback.  binding_ring
 * (listener.c) kept walking the connections it had taken from the inbox
 * and read b->attach_callback / b->private_data from the binding the
 * detach just freed: heap-use-after-free when two connections arrive in
 * one batch.  Connections already taken stay "already accepted" (net.md §4)
 * and must still be served.
 */
#include "t_net.h"

static struct evpl_listener_binding *binding;
static struct t_conn conns[4];
static int nconns;

static void
attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_cb,
       evpl_segment_callback_t *segment_cb, void **conn_private, void *private_data)
{
    struct t_conn *c = &conns[nconns++];

    T_OK(nconns <= 4);
    t_conn_init(c);
    c->bind = bind;
    c->evpl = evpl;
    *notify_cb = t_conn_notify;
    *segment_cb = NULL;
    *conn_private = c;
    if (binding) {
        evpl_listener_detach(evpl, binding); /* stop accepting more */
        binding = NULL;
    }
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
    T_OK(nconns >= 1);
    close(f1);
    close(f2);
    for (int i = 0; i < nconns; i++) {
        T_PUMP(evpl, conns[i].disconnected, 5000);
        T_EQ(conns[i].errors, 0);
        t_conn_free(&conns[i]);
    }
    evpl_listener_destroy(l);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
