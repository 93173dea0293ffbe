/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Endpoints and protocol queries: net.md §2 and §14 statements 13, 14,
 * 41 (the address round-trip; the in-process listener part is skipped:
 * no in-process backend yet), 42; core.md §11 statements 7 and 8; our
 * extensions (DESIGN §9): evpl_endpoint_create(NULL, port) is "0.0.0.0".
 */
#include "t_net.h"

static void
noop_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *p)
{
    (void) evpl;
    (void) bind;
    (void) n;
    (void) p;
}

static void
connect_udp(void *arg)
{
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_endpoint *ep = evpl_endpoint_create("127.0.0.1", t_free_port(SOCK_DGRAM));

    (void) arg;
    /* 13: connect with an unconnected protocol aborts */
    evpl_connect(evpl, EVPL_DATAGRAM_SOCKET_UDP, NULL, ep, noop_notify, NULL, NULL);
    _exit(0);
}

static void
bind_tcp(void *arg)
{
    enum evpl_protocol_id proto = (enum evpl_protocol_id)(uintptr_t) arg;
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_endpoint *ep = t_endpoint(proto); /* the right kind: only the protocol is wrong */

    /* 13: bind with a connection-oriented protocol aborts */
    evpl_bind(evpl, proto, ep, noop_notify, NULL);
    _exit(0);
}

int
main(void)
{
    enum evpl_protocol_id id;
    struct evpl_endpoint *ep;
    struct evpl *evpl;
    char longpath[200];

    t_net_guard(20);
    /* "no-such-host.invalid" is looked up below: never off this machine */
    if (t_private_netns() < 0) {
        T_SKIP("needs a private network namespace (root)");
    }

    /* core 7: exact, case-sensitive lookup */
    T_EQ(evpl_protocol_lookup(&id, "STREAM_SOCKET_TCP"), 0);
    T_EQ(id, EVPL_STREAM_SOCKET_TCP);
    T_EQ(evpl_protocol_lookup(&id, "STREAM_SOCKET_UNIX"), 0);
    T_EQ(id, EVPL_STREAM_SOCKET_UNIX);
    T_EQ(evpl_protocol_lookup(&id, "DATAGRAM_SOCKET_UDP"), 0);
    T_EQ(id, EVPL_DATAGRAM_SOCKET_UDP);
    T_EQ(evpl_protocol_lookup(&id, "stream_socket_tcp"), -1);
    T_EQ(evpl_protocol_lookup(&id, "STREAM_SOCKET_TCPX"), -1);
    T_EQ(evpl_protocol_lookup(&id, "NO_SUCH_PROTOCOL"), -1);
    T_EQ(evpl_protocol_lookup(&id, ""), -1);
    T_EQ(evpl_protocol_lookup(&id, NULL), -1);
    T_EQ(evpl_protocol_lookup(NULL, "STREAM_SOCKET_TCP"), -1); /* wrote through NULL */

    /* predicates on the socket protocols */
    T_EQ(evpl_protocol_available(EVPL_STREAM_SOCKET_TCP), 1);
    T_EQ(evpl_protocol_is_stream(EVPL_STREAM_SOCKET_TCP), 1);
    T_EQ(evpl_protocol_is_stream(EVPL_STREAM_SOCKET_UNIX), 1);
    T_EQ(evpl_protocol_is_stream(EVPL_DATAGRAM_SOCKET_UDP), 0);
    T_EQ(evpl_protocol_is_local(EVPL_STREAM_SOCKET_UNIX), 1);
    T_EQ(evpl_protocol_is_local(EVPL_STREAM_SOCKET_TCP), 0);
    T_EQ(evpl_protocol_is_inproc(EVPL_STREAM_SOCKET_TCP), 0);

    /* core 8: out-of-range ids give 0 everywhere */
    T_EQ(evpl_protocol_available(EVPL_NUM_PROTO), 0);
    T_EQ(evpl_protocol_is_stream(EVPL_NUM_PROTO), 0);
    T_EQ(evpl_protocol_is_local(EVPL_NUM_PROTO), 0);
    T_EQ(evpl_protocol_is_inproc(EVPL_NUM_PROTO), 0);
    T_EQ(evpl_protocol_available((enum evpl_protocol_id) - 1), 0);
    T_EQ(evpl_protocol_is_stream((enum evpl_protocol_id) 1000), 0);
    T_EQ(evpl_protocol_is_local((enum evpl_protocol_id) - 5), 0);
    T_EQ(evpl_protocol_is_inproc((enum evpl_protocol_id) 1000), 0);

    /* §2 classification */
    ep = evpl_endpoint_create("127.0.0.1", 8080);
    T_OK(ep != NULL);
    T_STR_EQ(evpl_endpoint_address(ep), "127.0.0.1");
    T_EQ(evpl_endpoint_port(ep), 8080);
    T_EQ(evpl_endpoint_is_local(ep), 0);
    T_EQ(evpl_endpoint_is_inproc(ep), 0);
    evpl_endpoint_close(ep);

    ep = evpl_endpoint_create("no-such-host.invalid", 1); /* never fails, lazily resolved */
    T_OK(ep != NULL);
    evpl_endpoint_close(ep);

    ep = evpl_endpoint_create("/tmp/evpl-test-sock", 99);
    T_OK(ep != NULL);
    T_EQ(evpl_endpoint_is_local(ep), 1);
    T_EQ(evpl_endpoint_port(ep), 0);
    T_STR_EQ(evpl_endpoint_address(ep), "/tmp/evpl-test-sock");
    evpl_endpoint_close(ep);

    ep = evpl_endpoint_create("@abstract-name", 99);
    T_OK(ep != NULL);
    T_EQ(evpl_endpoint_is_local(ep), 1);
    T_STR_EQ(evpl_endpoint_address(ep), "@abstract-name");
    evpl_endpoint_close(ep);

    /* DESIGN §9: NULL address is the IPv4 wildcard */
    ep = evpl_endpoint_create(NULL, 1234);
    T_OK(ep != NULL);
    T_STR_EQ(evpl_endpoint_address(ep), "0.0.0.0");
    T_EQ(evpl_endpoint_port(ep), 1234);
    evpl_endpoint_close(ep);

    /* 41: in-process names round-trip through evpl_endpoint_create */
    ep = evpl_endpoint_create_inproc("x");
    T_OK(ep != NULL);
    T_STR_EQ(evpl_endpoint_address(ep), "inproc://x");
    T_EQ(evpl_endpoint_is_inproc(ep), 1);
    T_EQ(evpl_endpoint_is_local(ep), 0);
    T_EQ(evpl_endpoint_port(ep), 0);
    {
        struct evpl_endpoint *ep2 = evpl_endpoint_create(evpl_endpoint_address(ep), 7);

        T_OK(ep2 != NULL);
        T_EQ(evpl_endpoint_is_inproc(ep2), 1);
        T_STR_EQ(evpl_endpoint_address(ep2), "inproc://x");
        evpl_endpoint_close(ep2);
    }
    evpl_endpoint_close(ep);
    T_OK(evpl_endpoint_create_inproc("") == NULL);
    memset(longpath, 'n', 108);
    longpath[108] = '\0';
    T_OK(evpl_endpoint_create_inproc(longpath) == NULL); /* 108 bytes */
    longpath[107] = '\0';
    ep = evpl_endpoint_create_inproc(longpath); /* 107 bytes */
    T_OK(ep != NULL);
    evpl_endpoint_close(ep);

    /* 42: relative, empty and too-long local paths are rejected */
    T_OK(evpl_endpoint_create_local("relative/path") == NULL);
    T_OK(evpl_endpoint_create_local("") == NULL);
    T_OK(evpl_endpoint_create_local("/") == NULL); /* the root names no socket */
    T_OK(evpl_endpoint_create("/", 0) == NULL);
    T_OK(evpl_endpoint_create_local("@") == NULL);
    longpath[0] = '/';
    memset(longpath + 1, 'p', 107);
    longpath[108] = '\0'; /* 108 bytes: one too many for a pathname */
    T_OK(evpl_endpoint_create_local(longpath) == NULL);
    T_OK(evpl_endpoint_create(longpath, 0) == NULL);
    longpath[107] = '\0'; /* 107 bytes: fits */
    ep = evpl_endpoint_create_local(longpath);
    T_OK(ep != NULL);
    T_STR_EQ(evpl_endpoint_address(ep), longpath);
    evpl_endpoint_close(ep);
    longpath[0] = '@';
    memset(longpath + 1, 'a', 108);
    longpath[109] = '\0'; /* abstract: 109 bytes with '@' is too long */
    T_OK(evpl_endpoint_create_local(longpath) == NULL);
    longpath[108] = '\0'; /* 108 with '@' fits */
    ep = evpl_endpoint_create_local(longpath);
    T_OK(ep != NULL);
    evpl_endpoint_close(ep);

    evpl = t_net_loop();

    /* 14: kind mismatch and unavailable protocols return NULL / -1, no abort */
    {
        struct evpl_endpoint *net = evpl_endpoint_create("127.0.0.1", t_free_port(SOCK_STREAM));
        struct evpl_endpoint *loc = evpl_endpoint_create_local("@evpl-test-mismatch");
        struct evpl_endpoint *inp = evpl_endpoint_create_inproc("mismatch");
        struct evpl_listener *l = evpl_listener_create();

        T_OK(evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, loc, noop_notify, NULL, NULL) ==
             NULL);
        T_OK(evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, inp, noop_notify, NULL, NULL) ==
             NULL);
        T_OK(evpl_connect(evpl, EVPL_STREAM_SOCKET_UNIX, NULL, net, noop_notify, NULL, NULL) ==
             NULL);
        T_OK(evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, loc, noop_notify, NULL) == NULL);
        T_OK(evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, inp, noop_notify, NULL) == NULL);
        T_EQ(evpl_listen(l, EVPL_STREAM_SOCKET_TCP, loc), -1);
        T_EQ(evpl_listen(l, EVPL_STREAM_SOCKET_UNIX, net), -1);
        /* 16 (UDP part): a datagram protocol has no listening side */
        T_EQ(evpl_listen(l, EVPL_DATAGRAM_SOCKET_UDP, net), -1);
        /* an unresolvable host: NULL at once */
        {
            struct evpl_endpoint *bad = evpl_endpoint_create("no-such-host.invalid", 1);

            struct t_conn x;
            struct evpl_bind *b;

            /* a host name may be resolved after return (evpl_bind.h): then
             * 3: one DISCONNECTED with a negative status, no CONNECTED */
            t_conn_init(&x);
            b = evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, bad, t_conn_notify, NULL, &x);
            if (b) {
                T_PUMP(evpl, x.disconnected, 10000);
                t_pump_for(evpl, 20);
                T_EQ(x.disconnected, 1);
                T_EQ(x.connected, 0);
                T_LT(x.disconnect_status, 0);
            }
            T_EQ(evpl_listen(l, EVPL_STREAM_SOCKET_TCP, bad), -1);
            evpl_endpoint_close(bad);
        }
        for (int p = 0; p < EVPL_NUM_PROTO; p++) {
            if (evpl_protocol_available((enum evpl_protocol_id) p)) {
                continue;
            }
            /* an unavailable protocol: NULL / -1, whatever the kind */
            T_OK(evpl_connect(evpl, (enum evpl_protocol_id) p, NULL, net, noop_notify, NULL,
                              NULL) == NULL);
            T_OK(evpl_bind(evpl, (enum evpl_protocol_id) p, net, noop_notify, NULL) == NULL);
            T_EQ(evpl_listen(l, (enum evpl_protocol_id) p, net), -1);
        }
        evpl_listener_destroy(l);
        evpl_endpoint_close(net);
        evpl_endpoint_close(loc);
        evpl_endpoint_close(inp);
    }

    /* the protocols present "always" (README table): in-process and TCP-RDMA */
    {
        T_EQ(evpl_protocol_lookup(&id, "STREAM_INPROC"), 0);
        T_EQ(id, EVPL_STREAM_INPROC);
        T_EQ(evpl_protocol_lookup(&id, "DATAGRAM_INPROC"), 0);
        T_EQ(id, EVPL_DATAGRAM_INPROC);
        T_EQ(evpl_protocol_lookup(&id, "DATAGRAM_TCP_RDMA"), 0);
        T_EQ(id, EVPL_DATAGRAM_TCP_RDMA);
        T_EQ(evpl_protocol_is_stream(EVPL_STREAM_INPROC), 1);
        T_EQ(evpl_protocol_is_stream(EVPL_DATAGRAM_INPROC), 0);
        T_EQ(evpl_protocol_is_stream(EVPL_DATAGRAM_TCP_RDMA), 0);
        T_EQ(evpl_protocol_is_inproc(EVPL_STREAM_INPROC), 1);
        T_EQ(evpl_protocol_is_inproc(EVPL_DATAGRAM_INPROC), 1);
        T_EQ(evpl_protocol_is_inproc(EVPL_DATAGRAM_TCP_RDMA), 0);
        T_EQ(evpl_protocol_is_local(EVPL_STREAM_INPROC), 0);
        T_EQ(evpl_protocol_best("INPROC", &id), 0);
        T_EQ(id, EVPL_STREAM_INPROC);
        T_EQ(evpl_protocol_best("rdma", &id), 0);
        T_OK(id == EVPL_DATAGRAM_TCP_RDMA || !evpl_protocol_is_inproc(id));
    }

    /* 41: "inproc://x" through evpl_endpoint_create names the listener of
     * evpl_endpoint_create_inproc("x"); a network endpoint is the wrong kind */
    {
        struct evpl_endpoint *a = evpl_endpoint_create_inproc("evpl-test-41");
        struct evpl_endpoint *b = evpl_endpoint_create("inproc://evpl-test-41", 0);
        struct evpl_endpoint *net = evpl_endpoint_create("127.0.0.1", 1);
        struct evpl_listener *l = evpl_listener_create();
        struct t_server srv;
        struct t_conn x;

        T_EQ(evpl_listen(l, EVPL_STREAM_INPROC, net), -1);
        T_OK(evpl_connect(evpl, EVPL_STREAM_INPROC, NULL, net, noop_notify, NULL, NULL) == NULL);
        evpl_listener_destroy(l);
        memset(&srv, 0, sizeof(srv));
        t_server_start(&srv, evpl, EVPL_STREAM_INPROC, a, 1);
        t_connect(evpl, EVPL_STREAM_INPROC, b, &x, NULL);
        T_PUMP(evpl, x.connected && srv.n == 1 && srv.conns[0].connected, 5000);
        evpl_send(evpl, x.bind, "41", 2);
        T_PUMP(evpl, srv.conns[0].rxlen == 2, 5000);
        evpl_close(evpl, x.bind);
        T_PUMP(evpl, x.disconnected && srv.conns[0].disconnected, 5000);
        t_conn_free(&x);
        t_server_stop(&srv);
        evpl_endpoint_close(a);
        evpl_endpoint_close(b);
        evpl_endpoint_close(net);
    }

    /* 13: wrong-kind protocol for connect/bind aborts */
    T_EQ(t_child_signal(connect_udp, NULL), SIGABRT);
    T_EQ(t_child_signal(bind_tcp, (void *) (uintptr_t) EVPL_STREAM_SOCKET_TCP), SIGABRT);
    T_EQ(t_child_signal(bind_tcp, (void *) (uintptr_t) EVPL_STREAM_SOCKET_UNIX), SIGABRT);

    evpl_destroy(evpl);

    /* §2: an in-process name is a bare name, "otherwise NULL": a name
     * carrying the scheme is rejected (kept last: a minor point) */
    T_OK(evpl_endpoint_create_inproc("inproc://x") == NULL);
    return 0;
}
