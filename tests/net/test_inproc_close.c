/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * In-process closing (net.md §14 statement 8) and one-sided completions
 * around a close:
 *  - data sent in the same pass as evpl_close / evpl_finish reaches the
 *    peer before its DISCONNECTED, on both in-process protocols, also when
 *    the close comes right after evpl_connect (before CONNECTED) and when
 *    there is more than the in-process window;
 *  - DATAGRAM_INPROC: completions are never reported inside the call, a
 *    chain of operations issued from completions does not hold the loop
 *    (one link per pass), an operation issued from a completion while
 *    both ends close fails with ECONNRESET (no use after free), and every
 *    completion of a bind comes before its DISCONNECTED.
 */
#include "t_net.h"

struct chain {
    struct evpl *evpl;
    struct t_conn *c;
    uint32_t key;
    uint64_t address;
    struct evpl_iovec v;
    int done, limit, last_status, disconnected_seen;
    int statuses[4];
};

static void
chain_cb(int status, void *priv)
{
    struct chain *ch = priv;

    if (ch->c->disconnected) {
        ch->disconnected_seen++;
    }
    if (ch->done < 4) {
        ch->statuses[ch->done] = status;
    }
    ch->done++;
    ch->last_status = status;
    if (ch->done < ch->limit) {
        evpl_rdma_write(ch->evpl, ch->c->bind, ch->key, ch->address, &ch->v, 1, 0, chain_cb, ch);
    }
}

/* Send size bytes (64 KiB at a time; one message each on DATAGRAM_INPROC)
 * then close or finish; early: before the connection's CONNECTED, in the
 * same breath as evpl_connect.  The peer gets every byte, then its
 * DISCONNECTED. */
static void
close_with_data(struct evpl *evpl, enum evpl_protocol_id proto, int finish, int early, size_t size)
{
    struct evpl_endpoint *ep = t_endpoint(proto);
    struct t_server srv;
    struct t_conn c;
    static uint8_t buf[64 * 1024];
    size_t chunks = 0;

    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1;
    srv.autodrain = 1;
    t_server_start(&srv, evpl, proto, ep, 1);
    t_connect(evpl, proto, ep, &c, NULL);
    if (!early) {
        T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 5000);
    }

    for (size_t off = 0; off < size; off += sizeof(buf), chunks++) {
        size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);

        t_pattern_fill(7, off, buf, n);
        evpl_send(evpl, c.bind, buf, n);
    }
    if (finish) {
        evpl_finish(evpl, c.bind);
    } else {
        evpl_close(evpl, c.bind);
    }
    T_PUMP(evpl, srv.n == 1 && srv.conns[0].disconnected && c.disconnected, 5000);
    T_EQ(srv.conns[0].rxlen, size);
    T_EQ(t_pattern_check(7, 0, srv.conns[0].rx, size), -1);
    if (proto == EVPL_DATAGRAM_INPROC) {
        T_EQ(srv.conns[0].nmsg_len, (int) chunks);
    }
    /* the data came first */
    T_EQ(srv.conns[0].events[strlen(srv.conns[0].events) - 1], 'D');
    T_EQ(srv.conns[0].disconnect_status, 0);
    T_EQ(srv.conns[0].cb_after_disconnect, 0);
    t_conn_free(&c);
    t_server_stop(&srv);
    evpl_endpoint_close(ep);
}

int
main(void)
{
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c;
    struct evpl_iovec region;
    struct chain ch;
    int before;

    t_net_guard(60);
    if (!evpl_protocol_available(EVPL_STREAM_INPROC) ||
        !evpl_protocol_available(EVPL_DATAGRAM_INPROC)) {
        T_SKIP("in-process protocols unavailable");
    }
    evpl = t_net_loop();

    /* statement 8, abortive and graceful, both protocols */
    for (int early = 0; early <= 1; early++) {
        for (int finish = 0; finish <= 1; finish++) {
            close_with_data(evpl, EVPL_STREAM_INPROC, finish, early, 10);
            close_with_data(evpl, EVPL_DATAGRAM_INPROC, finish, early, 10);
            /* more than the in-process window holds */
            close_with_data(evpl, EVPL_STREAM_INPROC, finish, early, 2 << 20);
            close_with_data(evpl, EVPL_DATAGRAM_INPROC, finish, early, 2 << 20);
        }
    }

    ep = t_endpoint(EVPL_DATAGRAM_INPROC);
    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1;
    t_server_start(&srv, evpl, EVPL_DATAGRAM_INPROC, ep, 2);
    T_EQ(evpl_iovec_alloc(evpl, 4096, 0, 1, 0, &region), 1);

    /* a chain of 1000 writes, each issued from the previous completion */
    t_connect(evpl, EVPL_DATAGRAM_INPROC, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 5000);
    memset(&ch, 0, sizeof(ch));
    ch.evpl = evpl;
    ch.c = &c;
    ch.limit = 1000;
    evpl_rdma_get_address(evpl, srv.conns[0].bind, &region, &ch.key, &ch.address);
    T_EQ(evpl_iovec_alloc(evpl, 64, 0, 1, 0, &ch.v), 1);
    memset(ch.v.data, 0x33, 64);
    evpl_rdma_write(evpl, c.bind, ch.key, ch.address, &ch.v, 1, 0, chain_cb, &ch);
    T_EQ(ch.done, 0); /* never inside the call */
    evpl_send(evpl, srv.conns[0].bind, "ping", 4);
    evpl_continue(evpl);
    evpl_continue(evpl);
    T_LE(ch.done, 4); /* one link per look at the loop, not the whole chain */
    T_PUMP(evpl, c.nmsg_len == 1, 5000);
    T_LT(ch.done, ch.limit); /* the peer's message got through meanwhile */
    T_PUMP(evpl, ch.done == ch.limit, 10000);
    T_EQ(ch.last_status, 0);
    T_EQ(((unsigned char *) region.data)[63], 0x33);

    /* a write whose completion issues another, then both ends close in
     * the same pass: the second fails with ECONNRESET, both are reported
     * before the closing bind's DISCONNECTED, and nothing is touched
     * after the channel is gone (ASan) */
    evpl_close(evpl, c.bind);
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 5000);
    before = srv.n;
    t_conn_free(&c);
    t_connect(evpl, EVPL_DATAGRAM_INPROC, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == before + 1 && srv.conns[before].connected, 5000);
    memset(&ch.statuses, 0, sizeof(ch.statuses));
    ch.done = 0;
    ch.limit = 2;
    evpl_rdma_get_address(evpl, srv.conns[before].bind, &region, &ch.key, &ch.address);
    evpl_rdma_write(evpl, c.bind, ch.key, ch.address, &ch.v, 1, 0, chain_cb, &ch);
    evpl_close(evpl, c.bind);
    evpl_close(evpl, srv.conns[before].bind);
    T_PUMP(evpl, c.disconnected && srv.conns[before].disconnected, 5000);
    T_EQ(ch.done, 2);
    T_EQ(ch.statuses[0], 0);          /* copied before the close */
    T_EQ(ch.statuses[1], ECONNRESET); /* issued on a closing bind */
    T_EQ(ch.disconnected_seen, 0);

    evpl_iovec_release(evpl, &ch.v);
    evpl_iovec_release(evpl, &region);
    t_conn_free(&c);
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
