/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: rdma */
/*
 * RDMA CM limits and endings (rdma.md §5), on both RC protocols:
 *
 *  - a completion queue smaller than what is queued (64 entries here, 4
 *    connections each queuing 300 messages): sends wait for room instead of
 *    overrunning it, and every message arrives once, in order, with SENT
 *    adding up;
 *  - evpl_finish after an RDMA write alone closes once the write is done;
 *  - evpl_finish with messages queued hands every one over, then the peer
 *    sees DISCONNECTED with status 0;
 *  - a datagram larger than a receive buffer closes the sending bind with
 *    EMSGSIZE and nothing reaches the peer.
 *
 * Needs an RDMA device: soft-RoCE in the test VM (tests/vm); skips (77)
 * elsewhere.
 */
#include "../net/t_net.h"

#define NCONN 4
#define NMSG  300

static enum evpl_protocol_id proto;

static void
op_done(int status, void *arg)
{
    int *st = arg;

    *st = status;
}

/* message k of connection i: 100 + (k % 50) * 37 bytes of a pattern */
static unsigned int
msg_len(int k)
{
    return 100u + (unsigned int) (k % 50) * 37u;
}

static void
small_cq(struct evpl *evpl, struct evpl_endpoint *ep)
{
    struct t_server srv;
    struct t_conn c[NCONN];
    unsigned char buf[2000];
    uint64_t total = 0;
    int srv_of[NCONN];

    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1;
    if (evpl_protocol_is_stream(proto)) {
        srv.autodrain = 1;
    }
    t_server_start(&srv, evpl, proto, ep, NCONN);
    for (int i = 0; i < NCONN; i++) {
        t_connect(evpl, proto, ep, &c[i], NULL);
        evpl_bind_request_send_notifications(evpl, c[i].bind);
    }
    for (int i = 0; i < NCONN; i++) {
        T_PUMP(evpl, c[i].connected, 10000);
    }
    /* everything queued in one pass: far more than the queue holds */
    for (int k = 0; k < NMSG; k++) {
        for (int i = 0; i < NCONN; i++) {
            t_pattern_fill((unsigned) (i * 1000 + k), 0, buf, msg_len(k));
            evpl_send(evpl, c[i].bind, buf, msg_len(k));
        }
    }
    for (int k = 0; k < NMSG; k++) {
        total += msg_len(k);
    }
    T_PUMP(evpl, ({
               int done = srv.n == NCONN;
               for (int i = 0; i < NCONN && done; i++)
                   done = srv.conns[i].rxlen == total;
               done;
           }),
           60000);
    for (int i = 0; i < NCONN; i++) {
        struct t_conn *s = NULL;
        uint64_t off = 0, want = 0;
        unsigned char expect[2000];
        int owner = -1;

        /* which client this server conn belongs to: its first bytes */
        for (int j = 0; j < NCONN && owner < 0; j++) {
            t_pattern_fill((unsigned) (j * 1000), 0, expect, msg_len(0));
            if (memcmp(srv.conns[i].rx, expect, msg_len(0)) == 0) {
                owner = j;
            }
        }
        T_OK(owner >= 0);
        srv_of[owner] = i;
        s = &srv.conns[i];
        for (int k = 0; k < NMSG; k++) {
            t_pattern_fill((unsigned) (owner * 1000 + k), 0, expect, msg_len(k));
            if (memcmp(s->rx + off, expect, msg_len(k)) != 0) {
                T_FAIL("conn %d message %d corrupt or out of order", i, k);
            }
            off += msg_len(k);
            want += msg_len(k);
        }
        if (!evpl_protocol_is_stream(proto)) {
            T_EQ(s->nmsg_len, NMSG);
        }
        T_EQ(s->errors, 0);
        T_PUMP(evpl, c[owner].sent_bytes == want, 10000);
        if (!evpl_protocol_is_stream(proto)) {
            T_EQ(c[owner].sent_msgs, NMSG);
        }
    }

    /* evpl_finish with 50 messages queued: all of them arrive, then the
     * peer sees a clean end */
    {
        struct t_conn *s = &srv.conns[srv_of[0]];

        memset(buf, 'f', 1000);
        for (int k = 0; k < 50; k++) {
            evpl_send(evpl, c[0].bind, buf, 1000);
        }
        evpl_finish(evpl, c[0].bind);
        T_PUMP(evpl, c[0].disconnected && s->disconnected, 10000);
        T_EQ(c[0].disconnect_status, 0);
        T_EQ(s->disconnect_status, 0);
        T_EQ(s->rxlen, total + 50 * 1000);
        for (uint64_t off = total; off < s->rxlen; off++) {
            if (s->rx[off] != 'f') {
                T_FAIL("byte %llu after the finish is %u", (unsigned long long) off, s->rx[off]);
            }
        }
    }
    for (int i = 0; i < NCONN; i++) {
        if (!c[i].disconnected) {
            evpl_close(evpl, c[i].bind);
        }
    }
    for (int i = 0; i < NCONN; i++) {
        T_PUMP(evpl, c[i].disconnected && srv.conns[i].disconnected, 10000);
        T_EQ(c[i].errors, 0);
        T_EQ(c[i].cb_after_disconnect, 0);
        t_conn_free(&c[i]);
    }
    t_server_stop(&srv);
}

static void
finish_after_write(struct evpl *evpl, struct evpl_endpoint *ep)
{
    struct t_server srv;
    struct t_conn c;
    struct evpl_iovec region, w;
    uint32_t key;
    uint64_t addr;
    int st = -1;

    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1;
    t_server_start(&srv, evpl, proto, ep, 1);
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 10000);
    T_EQ(evpl_iovec_alloc(evpl, 4096, 0, 1, 0, &region), 1);
    memset(region.data, 0, 4096);
    evpl_rdma_get_address(evpl, srv.conns[0].bind, &region, &key, &addr);
    T_NE(key, 0);
    T_EQ(evpl_iovec_alloc(evpl, 4096, 0, 1, 0, &w), 1);
    memset(w.data, 0x77, 4096);
    /* only a one-sided operation in flight: the finish waits for it */
    evpl_rdma_write(evpl, c.bind, key, addr, &w, 1, 0, op_done, &st);
    evpl_finish(evpl, c.bind);
    T_PUMP(evpl, c.disconnected && st != -1, 10000);
    T_EQ(st, 0);
    T_EQ(c.disconnect_status, 0);
    T_EQ(((unsigned char *) region.data)[4095], 0x77);
    T_PUMP(evpl, srv.conns[0].disconnected, 10000);
    evpl_iovec_release(evpl, &w);
    evpl_iovec_release(evpl, &region);
    t_conn_free(&c);
    t_server_stop(&srv);
}

static void
oversized(struct evpl *evpl, struct evpl_endpoint *ep)
{
    struct t_server srv;
    struct t_conn c;
    size_t big = 65536 + 1;
    char *b = calloc(1, big);

    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1;
    t_server_start(&srv, evpl, proto, ep, 1);
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1, 10000);
    evpl_send(evpl, c.bind, b, (unsigned int) big);
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 10000);
    T_EQ(c.disconnect_status, -EMSGSIZE);
    T_EQ(srv.conns[0].nmsg_len, 0);
    free(b);
    t_conn_free(&c);
    t_server_stop(&srv);
}

int
main(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    struct evpl *evpl;

    t_net_guard(240);
    /* a completion queue far smaller than what the test queues */
    evpl_global_config_set_rdmacm_cq_size(gc, 64);
    evpl_global_config_set_max_datagram_size(gc, 65536);
    evpl_init(gc);
    proto = t_proto(T_NET_KIND_STREAM | T_NET_KIND_CDGRAM);
    if (!t_proto_is_rdmacm(proto)) {
        fprintf(stderr, "not an RDMA CM protocol: skipped\n");
        return 77;
    }
    evpl = t_net_loop();
    small_cq(evpl, t_endpoint(proto));
    finish_after_write(evpl, t_endpoint(proto));
    if (!evpl_protocol_is_stream(proto)) {
        oversized(evpl, t_endpoint(proto));
    }
    evpl_destroy(evpl);
    return 0;
}
