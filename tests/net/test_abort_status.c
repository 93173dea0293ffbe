/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * evpl_close is abortive, and what the peer sees must not depend on the
 * transport or the wait mechanism (it did: a TCP peer saw a reset on an
 * epoll loop and an orderly end on an io_uring one, and an io_uring TCP
 * peer saw -EPIPE).  With received bytes the closing side never read, a
 * TCP or AF_UNIX peer gets DISCONNECTED -ECONNRESET (a reset, as close(2)
 * gives); with nothing unread, 0.  TLS too: no close_notify then (the
 * peer read one first and ended 0, its data silently lost: helper-115),
 * so the peer's end is not orderly.  evpl_finish
 * with data unread is an orderly end: the peer gets what was queued, then
 * 0 (TCP lingers; the in-process transport reset: helper-106).
 */
/* MATRIX: stream */
#include "t_net.h"

#define BIG (32u << 20)

int
main(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    enum evpl_protocol_id proto;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c;
    struct evpl *evpl;
    static char big[BIG];

    t_net_guard(60);
    /* the server stops reading above 256 KiB buffered: the rest stays
     * unread in the kernel, whatever the timing */
    evpl_global_config_set_stream_recv_limit(gc, 256 * 1024);
    evpl_init(gc);
    proto = t_proto(T_NET_KIND_STREAM);
    /* AF_UNIX resets too (ECONNRESET), and so does an in-process end that
     * closes with data unread; TLS sends no close_notify then, and its
     * peer ends with the reset */
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.autodrain = 0; /* never read: the data stays buffered */
    srv.keep_msgs = 1; /* (else t_server_start turns autodrain on) */
    t_server_start(&srv, evpl, proto, ep, 3);

    /* 1: unread data at the closer */
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 5000);
    memset(big, 'x', sizeof(big));
    evpl_send(evpl, c.bind, big, BIG);
    t_pump_for(evpl, 300); /* the server's ring fills, then it stops reading */
    T_EQ(c.disconnected, 0);
    evpl_close(evpl, srv.conns[0].bind);
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 5000);
    T_EQ(c.disconnected, 1);
    T_EQ(c.disconnect_status, -ECONNRESET);
    t_conn_free(&c);

    /* 2: nothing unread: an orderly end */
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 2 && srv.conns[1].connected, 5000);
    evpl_close(evpl, srv.conns[1].bind);
    T_PUMP(evpl, c.disconnected && srv.conns[1].disconnected, 5000);
    T_EQ(c.disconnect_status, 0);
    t_conn_free(&c);

    /* 3: unread data at the closer, but a finish with 1 MiB queued */
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 3 && srv.conns[2].connected, 5000);
    evpl_send(evpl, c.bind, big, 1000);
    T_PUMP(evpl, srv.conns[2].nrecv_data > 0, 5000);
    evpl_send(evpl, srv.conns[2].bind, big, 1u << 20);
    evpl_finish(evpl, srv.conns[2].bind);
    T_PUMP(evpl, c.disconnected && srv.conns[2].disconnected, 5000);
    T_EQ_U(c.rxlen, 1u << 20);
    T_EQ(c.disconnect_status, 0);
    t_conn_free(&c);

    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
