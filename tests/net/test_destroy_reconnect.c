/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A client that reconnects from its DISCONNECTED callback (a common
 * pattern) must not keep evpl_destroy, or a worker thread's exit, from
 * ending: once the loop closes its binds for good, evpl_connect and
 * evpl_bind return NULL (docs/BEHAVIOUR.md).  Each bind still gets exactly
 * one DISCONNECTED (core.md statement 15).  Before, every reconnect was
 * closed and reconnected again, for ever (helper-76: 2 million reconnects
 * in 15 s).
 */
/* MATRIX: stream cdatagram datagram */
/* LABELS: threads */
#include "t_net.h"

static enum evpl_protocol_id proto;
static struct evpl_endpoint *ep;
static _Atomic int ndisc, nrefused, nmade;

static void reconnecting(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n,
                         void *priv);

static struct evpl_bind *
open_bind(struct evpl *evpl)
{
    if (evpl_protocol_is_stream(proto) || t_proto_is_connected_datagram(proto)) {
        return evpl_connect(evpl, proto, NULL, ep, reconnecting, NULL, NULL);
    }
    return evpl_bind(evpl, proto, ep, reconnecting, NULL);
}

static void
reconnecting(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) bind;
    (void) priv;
    if (n->notify_type != EVPL_NOTIFY_DISCONNECTED) {
        return;
    }
    ndisc++;
    /* bounded, so the old behaviour fails here instead of hanging */
    T_OK(ndisc < 50);
    if (open_bind(evpl)) {
        nmade++;
    } else {
        nrefused++;
    }
}

static void *
thread_init(struct evpl *evpl, void *arg)
{
    T_OK(open_bind(evpl) != NULL);
    return arg;
}

int
main(void)
{
    struct t_server srv;
    struct evpl_thread *thread;
    struct evpl *evpl;
    int listening;

    t_net_guard(60);
    proto = t_proto(T_NET_KIND_STREAM | T_NET_KIND_CDGRAM | T_NET_KIND_DATAGRAM);
    ep = t_endpoint(proto);
    listening = evpl_protocol_is_stream(proto) || t_proto_is_connected_datagram(proto);

    /* 1: evpl_destroy with a reconnecting client open */
    evpl = t_net_loop();
    memset(&srv, 0, sizeof(srv));
    if (listening) {
        t_server_start(&srv, evpl, proto, ep, 8);
    }
    T_OK(open_bind(evpl) != NULL);
    if (listening) {
        T_PUMP(evpl, srv.n == 1 && srv.conns[0].connected, 5000);
        /* the server's end goes first: the client's DISCONNECTED follows
         * and reconnects while the loop is still alive */
        evpl_close(evpl, srv.conns[0].bind);
        T_PUMP(evpl, ndisc == 1 && srv.n == 2 && srv.conns[1].connected, 5000);
        T_EQ(nmade, 1);
        evpl_listener_detach(evpl, srv.binding);
        srv.binding = NULL;
    }
    evpl_destroy(evpl);
    /* the bind open at destroy got one DISCONNECTED; its reconnect was
     * refused */
    T_EQ(ndisc, listening ? 2 : 1);
    T_EQ(nrefused, 1);
    if (listening) {
        t_server_stop(&srv);
    }

    /* 2: a worker thread's exit (its binds are closed before its
     * shutdown callback); the server is on this thread's loop */
    ndisc = nrefused = nmade = 0;
    evpl = t_net_loop();
    memset(&srv, 0, sizeof(srv));
    if (listening) {
        t_server_start(&srv, evpl, proto, ep, 8);
    }
    thread = evpl_thread_create(NULL, thread_init, NULL, NULL);
    T_OK(thread != NULL);
    if (listening) {
        T_PUMP(evpl, srv.n == 1 && srv.conns[0].connected, 5000);
    }
    evpl_thread_destroy(thread);
    T_EQ(ndisc, 1);
    T_EQ(nrefused, 1);
    T_EQ(nmade, 0);
    if (listening) {
        T_PUMP(evpl, srv.conns[0].disconnected, 5000);
        t_server_stop(&srv);
    }
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    fprintf(stderr, "PASS\n");
    return 0;
}
