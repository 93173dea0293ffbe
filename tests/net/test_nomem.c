/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Buffer memory runs out (a slab cap of 4 MiB): a clear error and a closed
 * connection, never a hole in a stream or a stall.
 *  1. evpl_send (the copying form) beyond the cap: the bind ends with
 *     DISCONNECTED -ENOMEM; what the peer received is an intact prefix of
 *     what was sent (it used to drop the send and go on, leaving a hole).
 *  2. Receiving: a segmented connection whose peer announces a huge
 *     message holds the memory while it waits for the rest.  It must end
 *     (-ENOMEM, or when its peer goes) and a healthy connection on the same
 *     loop must echo again afterwards.  On io_uring TCP every receive of
 *     the loop stalled on the shared buffer ring instead.
 */
/* MATRIX: stream */
#include "t_net.h"

#define BUF (64u * 1024)

int
main(void)
{
    static uint8_t m[30000], junk[65536];
    enum evpl_protocol_id proto;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c, good;
    struct evpl *evpl;
    uint64_t off = 0;

    t_net_guard(60);
    /* 4 MiB in all: io_uring's receive ring alone keeps 2 MiB posted on
     * kernels without incremental buffer consumption (6.1) */
    t_init_memory_cap(BUF, 4);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    t_server_start_framed(&srv, evpl, proto, ep, 3);

    /* 1: a framed sender queues more than memory holds in one pass */
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 5000);
    for (int i = 0; i < 200 && !c.disconnected; i++) { /* 6 MB */
        t_pattern_fill(1, off, m, sizeof(m));
        t_put_be32(m, sizeof(m)); /* one framed message per send */
        evpl_send(evpl, c.bind, m, sizeof(m));
        off += sizeof(m);
    }
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 5000);
    T_EQ(c.disconnect_status, -ENOMEM);
    /* every message that arrived is whole and in order */
    for (int i = 0; i < srv.conns[0].nmsg_len; i++) {
        T_EQ(srv.conns[0].msg_len[i], sizeof(m));
    }
    t_conn_free(&c);

    if (proto == EVPL_STREAM_SOCKET_TLS) {
        /* TLS records need memory of their own: which connection meets the
         * empty pool first is not the hog's alone, so part 2 is not run */
        goto out;
    }

    /* 2: a hog announces 200 MB and sends far more than memory holds */
    t_connect(evpl, proto, ep, &good, t_segment_be32);
    good.keep_msgs = 1;
    T_PUMP(evpl, good.connected && srv.n == 2 && srv.conns[1].connected, 5000);
    srv.conns[1].echo_msgs = 1;
    /* the hog is a raw socket: its sending needs none of our memory, so
     * only the receiving side can run out, and it must end the hog */
    {
        int fd = t_raw_connect(ep);
        uint64_t sent = 0;

        T_OK(fd >= 0);
        T_PUMP(evpl, srv.n == 3 && srv.conns[2].connected, 5000);
        t_put_be32(junk, 200u << 20);
        for (int k = 0; k < 2000 && !srv.conns[2].disconnected && sent < (10u << 20); k++) {
            ssize_t w = send(fd, junk, sizeof(junk), MSG_DONTWAIT | MSG_NOSIGNAL);

            if (w > 0) {
                sent += (uint64_t) w;
            }
            t_pump_for(evpl, 2);
        }
        T_PUMP(evpl, srv.conns[2].disconnected, 10000);
        T_EQ(srv.conns[2].disconnect_status, -ENOMEM);
        close(fd);
    }

    /* the healthy connection echoes framed messages again */
    {
        uint8_t msg[2000];

        t_put_be32(msg, sizeof(msg));
        memset(msg + 4, 'g', sizeof(msg) - 4);
        for (int k = 0; k < 10; k++) {
            evpl_send(evpl, good.bind, msg, sizeof(msg));
        }
        T_PUMP(evpl, good.nmsg_len == 10, 10000);
        T_EQ(good.disconnected, 0);
    }

    evpl_close(evpl, good.bind);
    T_PUMP(evpl, good.disconnected && srv.conns[1].disconnected, 5000);
    t_conn_free(&good);
out:
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
