/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * net.md §14 statement 38: data queued in a pass is transmitted after the
 * pass's event processing, i.e. by the time evpl_continue returns: a raw
 * peer receives it with the loop not run again.  A polling io_uring loop
 * used to leave the send queued in its ring until the next pass.
 */
/* MATRIX: stream datagram */
/* ALSO_MECH: io_uring */
#include "t_net.h"

#include <poll.h>

/* Wait (without running any loop) for fd to become readable. */
static int
readable_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static enum evpl_protocol_id proto;

static void
check_on(struct evpl *evpl)
{
    struct evpl_endpoint *ep = t_endpoint(proto);
    char buf[64];
    int fd;

    if (evpl_protocol_is_stream(proto)) {
        struct t_server srv = {0};

        srv.autodrain = 1;
        t_server_start(&srv, evpl, proto, ep, 1);
        fd = t_raw_connect(ep);
        T_OK(fd >= 0);
        T_PUMP(evpl, srv.n == 1 && srv.conns[0].connected, 5000);
        for (int i = 0; i < 5; i++) {
            t_pump_for(evpl, 5); /* idle a little first */
            evpl_send(evpl, srv.conns[0].bind, "ping", 4);
            evpl_continue(evpl);
            T_OK(readable_within(fd, 1000));
            T_EQ(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 4);
        }
        close(fd);
        T_PUMP(evpl, srv.conns[0].disconnected, 5000);
        t_server_stop(&srv);
    } else {
        struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(me);
        struct evpl_endpoint *dest;
        struct t_conn c;

        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        T_OK(fd >= 0);
        T_EQ(bind(fd, (struct sockaddr *) &me, sizeof(me)), 0);
        T_EQ(getsockname(fd, (struct sockaddr *) &me, &sl), 0);
        dest = evpl_endpoint_create("127.0.0.1", ntohs(me.sin_port));
        t_conn_init(&c);
        c.bind = evpl_bind(evpl, proto, ep, t_conn_notify, &c);
        T_OK(c.bind != NULL);
        c.evpl = evpl;
        for (int i = 0; i < 5; i++) {
            t_pump_for(evpl, 5);
            evpl_sendtoep(evpl, c.bind, dest, "ping", 4);
            evpl_continue(evpl);
            T_OK(readable_within(fd, 1000));
            T_EQ(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 4);
        }
        evpl_close(evpl, c.bind);
        T_PUMP(evpl, c.disconnected, 5000);
        t_conn_free(&c);
        evpl_endpoint_close(dest);
        close(fd);
    }
    evpl_endpoint_close(ep);
}

int
main(void)
{
    struct evpl *evpl;

    t_net_guard(30);
    proto = t_proto(T_NET_KIND_STREAM | T_NET_KIND_DATAGRAM);
    /* a loop that sleeps when idle, and one that busy-polls */
    evpl = t_net_loop();
    check_on(evpl);
    evpl_destroy(evpl);
    {
        struct evpl_thread_config *tc = evpl_thread_config_init();

        evpl_thread_config_set_wait_ms(tc, 5); /* poll mode stays on */
        evpl = evpl_create(tc);
        evpl_thread_config_release(tc);
    }
    T_OK(evpl != NULL);
    check_on(evpl);
    evpl_destroy(evpl);
    return 0;
}
