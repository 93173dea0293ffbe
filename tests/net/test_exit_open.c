/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The exit-time leak check (memory.md §8, statement 13) counts what the
 * application holds, not what a live loop keeps as receive space: a
 * program that received data on every protocol, released every iovec it
 * was given, and exits with its loop and binds still open passes it.
 * (It found the UDP socket backend's kept receive slots counted as leaks.)
 * The test returns from main with everything open: the leak check runs
 * in the library's atexit handler and aborts (the test fails) on a leak.
 */
/* MATRIX: stream datagram cdatagram */
#include "t_net.h"

static enum evpl_protocol_id proto;

/* kept reachable from here, so that the sanitizer's own leak check does
 * not report what the open loop holds */
static struct evpl *loop;
static struct t_server srv;
static struct t_conn a, b;
static struct evpl_endpoint *epa, *epb;

static void
datagrams(void)
{
    t_dgram_pair(loop, proto, &epa, &epb, &a, &b);
    b.keep_msgs = 1;
    for (int i = 0; i < 10; i++) {
        evpl_sendtoep(loop, b.bind, epa, "to-a", 4);
        evpl_sendtoep(loop, a.bind, epb, "to-b!", 5);
    }
    T_PUMP(loop, a.nmsg_len >= 10 && b.nmsg_len >= 10, 20000);
    t_pump_for(loop, 50);
} /* datagrams */

static void
connected(void)
{
    epa = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1;
    srv.autodrain = 1;
    t_server_start(&srv, loop, proto, epa, 1);
    t_connect(loop, proto, epa, &a, NULL);
    a.keep_msgs = 1;
    a.autodrain = 1;
    T_PUMP(loop, a.connected && srv.n == 1 && srv.conns[0].connected, 20000);
    for (int i = 0; i < 10; i++) {
        evpl_send(loop, a.bind, "to-server", 9);
        evpl_send(loop, srv.conns[0].bind, "to-client", 9);
    }
    T_PUMP(loop, srv.conns[0].rxlen == 90 && a.rxlen == 90, 20000);
    t_pump_for(loop, 50);
} /* connected */

int
main(void)
{
    t_net_guard(60);
    proto = t_proto(T_NET_KIND_STREAM | T_NET_KIND_DATAGRAM | T_NET_KIND_CDGRAM);
    loop = t_net_loop();
    if (!evpl_protocol_is_stream(proto) && !t_proto_is_connected_datagram(proto)) {
        datagrams();
    } else {
        connected();
    }
    return 0; /* loop and binds open: only the leak check runs */
}
