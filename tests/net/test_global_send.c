/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * memory.md §12 statement 12 where the receiver gets iovecs (RECV_MSG: a
 * segmented stream, or connected datagrams) and releases them with
 * evpl_iovec_release: a GLOBAL buffer sent without TAKE_REF, released once
 * by its owner after the peer received it, arrives intact and passes the
 * exit-time leak check.  The in-process transports used to hand the GLOBAL
 * buffer itself to the receiver, whose release freed it under its owner
 * (then the owner's release aborted).
 */
/* MATRIX: stream cdatagram */
#include "t_net.h"

int
main(void)
{
    enum evpl_protocol_id proto = t_proto(T_NET_KIND_STREAM | T_NET_KIND_CDGRAM);
    int stream = evpl_protocol_is_stream(proto);
    struct evpl *evpl = t_net_loop();
    struct evpl_endpoint *ep = t_endpoint(proto);
    struct t_server srv;
    struct t_conn c, *s;
    struct evpl_iovec g;
    const unsigned len = 4096;

    t_net_guard(60);
    if (stream) {
        t_server_start_framed(&srv, evpl, proto, ep, 1);
    } else {
        memset(&srv, 0, sizeof(srv));
        srv.keep_msgs = 1;
        t_server_start(&srv, evpl, proto, ep, 1);
    }
    t_conn_init(&c);
    t_connect(evpl, proto, ep, &c, stream ? t_segment_be32 : NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 10000);
    s = &srv.conns[0];

    for (int round = 0; round < 3; round++) {
        evpl_iovec_alloc_global(evpl, &g);
        T_OK(g.data != NULL);
        t_pattern_fill(40 + (uint64_t) round, 0, g.data, len);
        if (stream) {
            t_put_be32(g.data, len); /* the frame header */
        }
        evpl_sendv(evpl, c.bind, &g, 1, (int) len, 0);
        T_PUMP(evpl, s->nrecv_msg == round + 1, 10000);
        T_EQ(s->msg_len[round], len);
        T_EQ(memcmp(s->rx + (size_t) round * len, g.data, len), 0);
        evpl_iovec_release(evpl, &g); /* the owner's one release */
    }
    T_EQ(c.errors + s->errors, 0);

    evpl_close(evpl, c.bind);
    T_PUMP(evpl, c.disconnected && s->disconnected, 10000);
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    t_conn_free(&c);
    fprintf(stderr, "PASS\n");
    return 0;
}
