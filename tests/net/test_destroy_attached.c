/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A loop destroyed while still attached to a listener (net.md §4 asks the
 * program to detach first; upstream then hands the next connection to the
 * freed loop).  evpl_destroy detaches the binding itself, with an error:
 * the next connection goes to a loop still attached, and with none left
 * it is closed.  (Before: heap-use-after-free ringing the freed loop's
 * doorbell from the listener thread: helper-116.)
 */
/* MATRIX: stream */
/* LABELS: threads */
#include "t_net.h"

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *gone, *kept;
    struct evpl_endpoint *ep;
    struct t_server sg, sk;
    struct t_conn c;
    char byte;
    int fd;

    t_net_guard(30);
    t_count_log_lines("still attached");
    proto = t_proto(T_NET_KIND_STREAM);
    ep = t_endpoint(proto);
    gone = t_net_loop();
    kept = t_net_loop();
    memset(&sg, 0, sizeof(sg));
    memset(&sk, 0, sizeof(sk));
    t_server_start(&sg, gone, proto, ep, 2);
    sk.evpl = kept;
    sk.max = 4;
    sk.owner = pthread_self();
    sk.autodrain = sk.keep_msgs = 1;
    sk.conns = calloc(4, sizeof(*sk.conns));
    T_OK(sk.conns != NULL);
    sk.binding = evpl_listener_attach(kept, sg.listener, t_server_attach, &sk);

    /* the program forgets to detach `gone` */
    evpl_destroy(gone);
    sg.binding = NULL;
    T_EQ(t_log_lines, 1);

    /* every connection now goes to the loop still attached */
    for (int i = 0; i < 2; i++) {
        t_connect(kept, proto, ep, &c, NULL);
        T_PUMP(kept, c.connected && sk.n == i + 1 && sk.conns[i].connected, 5000);
        evpl_close(kept, c.bind);
        T_PUMP(kept, c.disconnected && sk.conns[i].disconnected, 5000);
        t_conn_free(&c);
    }
    T_EQ(sg.n, 0);

    /* and with no loop attached, a connection is closed */
    evpl_listener_detach(kept, sk.binding);
    sk.binding = NULL;
    if (proto == EVPL_STREAM_SOCKET_TCP || proto == EVPL_STREAM_SOCKET_UNIX ||
        proto == EVPL_STREAM_IO_URING_TCP) { /* (a raw socket peer; the others did the above) */
        struct timeval tv = {.tv_sec = 5};

        fd = t_raw_connect(ep);
        T_OK(fd >= 0);
        T_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        T_OK(read(fd, &byte, 1) <= 0 && errno != EAGAIN);
        close(fd);
    }

    t_server_stop(&sk);
    t_server_stop(&sg);
    evpl_destroy(kept);
    evpl_endpoint_close(ep);
    return 0;
}
