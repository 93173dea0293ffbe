/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * IPv6 literals (DESIGN §9: "::1" works, net.md QUIRK 4 decided for IPv6)
 * over TCP, and the "[addr]:port" address text (§3).
 */
#include "t_net.h"

int
main(void)
{
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c;
    char str[EVPL_ADDRESS_STRLEN], want[EVPL_ADDRESS_STRLEN];
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};

    t_net_guard(30);
    /* no IPv6 loopback on this machine: skip */
    if (fd < 0 || bind(fd, (struct sockaddr *) &s6, sizeof(s6)) != 0) {
        T_SKIP("no IPv6 loopback");
    }
    close(fd);

    evpl = t_net_loop();
    ep = evpl_endpoint_create("::1", t_free_port_af(AF_INET6, SOCK_STREAM));
    T_OK(ep != NULL);
    memset(&srv, 0, sizeof(srv));
    t_server_start(&srv, evpl, EVPL_STREAM_SOCKET_TCP, ep, 1);
    t_connect(evpl, EVPL_STREAM_SOCKET_TCP, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 5000);
    evpl_bind_get_remote_address(c.bind, str, sizeof(str));
    snprintf(want, sizeof(want), "[::1]:%d", evpl_endpoint_port(ep));
    T_STR_EQ(str, want);
    evpl_bind_get_local_address(srv.conns[0].bind, str, sizeof(str));
    T_STR_EQ(str, want);
    evpl_send(evpl, c.bind, "six", 3);
    T_PUMP(evpl, srv.conns[0].rxlen == 3, 5000);
    evpl_close(evpl, c.bind);
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 5000);
    evpl_listener_detach(evpl, srv.binding);
    srv.binding = NULL;
    t_server_stop(&srv);
    t_conn_free(&c);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
