/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A GLOBAL buffer sent over an in-process transport reaches the receiver
 * as a counted copy (BEHAVIOUR.md, Memory).  With no buffer memory left
 * for that copy, the sending bind ends with DISCONNECTED (-ENOMEM), the
 * receiver gets nothing of it, and the program goes on: running out of
 * buffer memory is an error, not an abort (it aborted: helper-100).  The
 * GLOBAL buffers are the owner's to release, afterwards as before.
 */
/* MATRIX: stream cdatagram */
/* MATRIX_ONLY: STREAM_INPROC DATAGRAM_INPROC */
#include "t_net.h"

enum { MAXG = 64, MAXL = 256 };

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c, *s;
    struct evpl_iovec g[MAXG], l[MAXL];
    int ng = 0, nl = 0, stream;

    t_net_guard(60);
    t_init_memory_cap(64 << 10, 2); /* 32 buffers of 64 KiB */
    proto = t_proto(T_NET_KIND_STREAM | T_NET_KIND_CDGRAM);
    if (!evpl_protocol_is_inproc(proto)) {
        T_SKIP("only the in-process transports copy a GLOBAL buffer");
    }
    stream = evpl_protocol_is_stream(proto);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1;
    t_server_start(&srv, evpl, proto, ep, 1);
    t_conn_init(&c);
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 10000);
    s = &srv.conns[0];

    /* every buffer left, as GLOBAL ones */
    while (ng < MAXG) {
        evpl_iovec_alloc_global(evpl, &g[ng]);
        if (!g[ng].data) {
            break;
        }
        ng++;
    }
    T_GT(ng, 0);
    T_OK(ng < MAXG); /* memory ran out */
    /* and what is left of the loop's current buffers, where the copy
     * could otherwise go */
    while (nl < MAXL && evpl_iovec_alloc(evpl, 1000, 0, 1, 0, &l[nl]) == 1) {
        nl++;
    }
    T_OK(nl < MAXL);
    while (nl < MAXL && evpl_iovec_alloc(evpl, 1000, 0, 1, EVPL_IOVEC_FLAG_SHARED, &l[nl]) == 1) {
        nl++;
    }
    T_OK(nl < MAXL);
    memset(g[0].data, 'x', 1000);
    evpl_sendv(evpl, c.bind, &g[0], 1, 1000, 0);
    T_PUMP(evpl, c.disconnected, 5000);
    T_EQ(c.disconnect_status, -ENOMEM);
    T_PUMP(evpl, s->disconnected, 5000);
    T_EQ((int) (stream ? s->rxlen : (size_t) s->nrecv_msg), 0);
    fprintf(stderr,
            "ok: %d GLOBAL buffers took the memory; the send ended its bind with "
            "-ENOMEM\n",
            ng);
    for (int i = 0; i < ng; i++) {
        evpl_iovec_release(evpl, &g[i]);
    }
    for (int i = 0; i < nl; i++) {
        evpl_iovec_release(evpl, &l[i]);
    }

    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    t_conn_free(&c);
    return 0;
}
