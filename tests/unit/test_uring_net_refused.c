/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit */
/*
 * io_uring TCP when the kernel takes no submission entry (the framework's
 * fault hook refuses them, as the kernel would under memory pressure):
 *  - a listener whose multishot accept cannot be armed tries again, and
 *    the connection waiting in the backlog is accepted;
 *  - a connect that cannot be submitted ends that bind with an error
 *    (one DISCONNECTED, nothing else), and the next connect works;
 *  - a send that cannot be submitted closes that connection with an
 *    error; the other connection on the loop keeps working.
 */
#include "core/internal.h"
#include "backends/io_uring/uring.h"

#include "../net/t_net.h"

static const enum evpl_protocol_id proto = EVPL_STREAM_IO_URING_TCP;

static void
refuse(unsigned n)
{
    __atomic_store_n(&evpl__uring_refuse_sqes, n, __ATOMIC_RELAXED);
}

static unsigned
refusals_left(void)
{
    return __atomic_load_n(&evpl__uring_refuse_sqes, __ATOMIC_RELAXED);
}

static void
echo_check(struct evpl *evpl, struct t_server *srv, struct t_conn *c, int idx)
{
    static const char msg[] = "hello through io_uring";
    size_t before = srv->conns[idx].rxlen;

    evpl_send(evpl, c->bind, msg, sizeof(msg));
    T_PUMP(evpl, srv->conns[idx].rxlen == before + sizeof(msg), 5000);
    T_OK(memcmp(srv->conns[idx].rx + before, msg, sizeof(msg)) == 0);
}

int
main(void)
{
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn a, b, d;

    t_net_guard(60);
    evpl = t_net_loop();
    if (!evpl_protocol_available(proto)) {
        T_SKIP("io_uring TCP unavailable");
    }
    ep = t_endpoint(proto);

    /* accept: the listener's first arm is refused */
    refuse(1);
    memset(&srv, 0, sizeof(srv));
    srv.autodrain = 1;
    t_server_start(&srv, evpl, proto, ep, 4);
    T_PUMP(evpl, refusals_left() == 0, 5000);
    t_connect(evpl, proto, ep, &a, NULL);
    T_PUMP(evpl, srv.n == 1 && a.connected, 5000);
    echo_check(evpl, &srv, &a, 0);

    /* connect: its request is refused */
    refuse(1);
    t_connect(evpl, proto, ep, &b, NULL);
    T_PUMP(evpl, b.disconnected, 5000);
    T_EQ(refusals_left(), 0);
    T_EQ(b.connected, 0);
    T_NE(b.disconnect_status, 0);
    T_EQ(b.cb_after_disconnect, 0);
    t_pump_for(evpl, 50);
    T_EQ(b.disconnected, 1);
    T_EQ(srv.n, 1);

    /* a send is refused: that connection closes with an error, the first
     * one keeps working */
    t_connect(evpl, proto, ep, &d, NULL);
    T_PUMP(evpl, srv.n == 2 && d.connected, 5000);
    refuse(1);
    evpl_send(evpl, d.bind, "x", 1);
    T_PUMP(evpl, d.disconnected, 5000);
    T_EQ(refusals_left(), 0);
    T_NE(d.disconnect_status, 0);
    T_PUMP(evpl, srv.conns[1].disconnected, 5000);
    echo_check(evpl, &srv, &a, 0);

    evpl_close(evpl, a.bind);
    T_PUMP(evpl, a.disconnected && srv.conns[0].disconnected, 5000);
    T_EQ(a.errors + b.errors + d.errors, 0);
    t_conn_free(&a);
    t_conn_free(&b);
    t_conn_free(&d);
    t_server_stop(&srv);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
    return 0;
}
