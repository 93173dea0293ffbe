/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Failed connects over every stream protocol: net.md §14 statements 1, 3,
 * 4, 16 (address in use); DESIGN §9.2: exactly one DISCONNECTED with a
 * negative errno, no CONNECTED, no abort; data queued before the failure is
 * discarded without leaking; data queued before a successful connect
 * completes is delivered (§5).
 */
/* MATRIX: stream */
/* ALSO_MECH: io_uring */
#include "t_net.h"

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_conn c[3];

    t_net_guard(30);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();

    /* 3: nobody listens (a free port / an unused abstract name) */
    ep = t_endpoint(proto);
    for (int i = 0; i < 3; i++) {
        struct evpl_iovec iov;

        t_connect(evpl, proto, ep, &c[i], NULL);
        T_EQ(c[i].nevents, 0); /* 1: nothing from inside evpl_connect */
        /* queued data is discarded with the bind (leak check at exit) */
        evpl_send(evpl, c[i].bind, "queued", 6);
        T_EQ(evpl_iovec_alloc(evpl, 1000, 0, 1, 0, &iov), 1);
        evpl_sendv(evpl, c[i].bind, &iov, 1, 1000, EVPL_SEND_FLAG_TAKE_REF);
    }
    for (int i = 0; i < 3; i++) {
        T_PUMP(evpl, c[i].disconnected, 5000);
    }
    t_pump_for(evpl, 50);
    for (int i = 0; i < 3; i++) {
        T_EQ(c[i].disconnected, 1);
        T_EQ(c[i].connected, 0);
        T_STR_EQ(c[i].events, "D");
        T_LT(c[i].disconnect_status, 0);
        T_EQ(c[i].disconnect_status, -ECONNREFUSED);
        T_EQ(c[i].cb_after_disconnect, 0);
        t_conn_free(&c[i]);
    }

    /* 16: the address is taken by a plain socket (in-process, RDMA CM: by
     * another listener, in a port space of their own): evpl_listen returns -1 */
    if (evpl_protocol_is_inproc(proto) || t_proto_is_rdmacm(proto)) {
        struct evpl_listener *l1 = evpl_listener_create(), *l2 = evpl_listener_create();

        T_EQ(evpl_listen(l1, proto, ep), 0);
        T_EQ(evpl_listen(l2, proto, ep), -1);
        /* one name space for both in-process protocols (and both RC ones) */
        T_EQ(evpl_listen(l2,
                         evpl_protocol_is_inproc(proto) ? EVPL_DATAGRAM_INPROC
                                                        : EVPL_DATAGRAM_RDMACM_RC,
                         ep),
             -1);
        evpl_listener_destroy(l2);
        evpl_listener_destroy(l1);
    } else {
        struct sockaddr_storage ss;
        socklen_t len = t_endpoint_sockaddr(ep, &ss);
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct evpl_listener *l = evpl_listener_create();

        T_OK(fd >= 0);
        T_EQ(bind(fd, (struct sockaddr *) &ss, len), 0);
        T_EQ(listen(fd, 4), 0);
        T_EQ(evpl_listen(l, proto, ep), -1);
        evpl_listener_destroy(l);
        close(fd);
    }

    /* §5: data sent right after evpl_connect is delivered once connected */
    {
        struct t_server srv;

        memset(&srv, 0, sizeof(srv));
        t_server_start(&srv, evpl, proto, ep, 1);
        t_connect(evpl, proto, ep, &c[0], NULL);
        evpl_send(evpl, c[0].bind, "early", 5);
        T_PUMP(evpl, srv.n == 1 && srv.conns[0].rxlen == 5, 5000);
        T_OK(memcmp(srv.conns[0].rx, "early", 5) == 0);
        T_EQ(c[0].connected, 1);
        evpl_close(evpl, c[0].bind);
        T_PUMP(evpl, c[0].disconnected && srv.conns[0].disconnected, 5000);
        T_EQ(c[0].disconnect_status, 0); /* a local close is not an error */
        evpl_listener_detach(evpl, srv.binding);
        srv.binding = NULL;
        t_server_stop(&srv);
        t_conn_free(&c[0]);
    }

    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
