/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Review regression (net.md §10 ordering, §14 statement 2): on the connect
 * side, CONNECTED must come before any data notification.  When the peer
 * speaks first (a banner written right after accept), the first readiness
 * report carries EPOLLIN and EPOLLOUT together; the dispatcher runs read_cb
 * before write_cb, so stream_read delivered RECV_DATA (and could even
 * deliver the EOF close) before stream_write reported the connect
 * completion: events "RC" instead of "CR", or "RD" with no CONNECTED when
 * the peer closes right after its banner.
 */
/* MATRIX: stream */
#include "t_net.h"

static void
run(struct evpl *evpl, enum evpl_protocol_id proto, int close_after_banner)
{
    struct evpl_endpoint *ep = t_endpoint(proto);
    struct sockaddr_storage ss;
    socklen_t len = t_endpoint_sockaddr(ep, &ss);
    int lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), fd;
    struct t_conn c;

    T_OK(lfd >= 0);
    T_EQ(bind(lfd, (struct sockaddr *) &ss, len), 0);
    T_EQ(listen(lfd, 4), 0);

    t_connect(evpl, proto, ep, &c, NULL);
    /* the kernel completes the handshake without the loop running */
    fd = accept(lfd, NULL, NULL);
    T_OK(fd >= 0);
    t_write_all(fd, "hello", 5);
    if (close_after_banner) {
        close(fd);
        fd = -1;
    }
    usleep(20000);

    if (close_after_banner) {
        T_PUMP(evpl, c.disconnected, 5000);
        T_STR_EQ(c.events, "CRD");
    } else {
        T_PUMP(evpl, c.connected && c.rxlen == 5, 5000);
        T_STR_EQ(c.events, "CR");
        evpl_close(evpl, c.bind);
        T_PUMP(evpl, c.disconnected, 5000);
    }
    T_EQ(c.rxlen, 5);
    T_OK(memcmp(c.rx, "hello", 5) == 0);
    T_EQ(c.errors, 0);
    if (fd >= 0) {
        close(fd);
    }
    close(lfd);
    t_conn_free(&c);
    evpl_endpoint_close(ep);
}

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;

    t_net_guard(30);
    proto = t_proto(T_NET_KIND_STREAM);
    if (proto == EVPL_STREAM_SOCKET_TLS) {
        T_SKIP("a raw-socket peer cannot speak TLS");
    }
    evpl = t_net_loop();
    run(evpl, proto, 0);
    run(evpl, proto, 1);
    evpl_destroy(evpl);
    return 0;
}
