/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A send queue that waits for a peer that reads nothing must not hold the
 * buffers other connections' data went through.  Connection A's server
 * side gets a 57-byte message after every 4 KiB sent on connection B,
 * whose client reads everything; A's client reads nothing.  Each of A's
 * messages is a slice of a 2 MiB buffer that B's data filled and left: a
 * few MiB waiting on A held every such buffer (one per 36 messages), ~80
 * buffers here.  Queues that wait are compacted (evpl_iovec_ring_waits):
 * the buffers in use stay near what A's bytes need.  Then A reads: every
 * byte arrives once, in order.  In-process streams hand bytes to the
 * peer by reference within a 4 MiB window (nearly all of A's here): a
 * peer that pauses moves what waits for it out of those buffers (149
 * held here before it did).
 */
/* MATRIX: stream */
/* ALSO_MECH: io_uring */
#include "t_net.h"

#define SMALL      57
#define BIG        4096
#define SEED       0x5157
#define RECV_LIMIT (64u << 10)

static uint64_t a_checked, b_read;

/* A: off until told; then check every byte against the pattern. */
static void
a_reader(struct t_conn *c, struct evpl_notify *n)
{
    if (n->notify_type != EVPL_NOTIFY_RECV_DATA || !c->user) {
        return;
    }
    t_recv_pattern(c->evpl, c->bind, SEED, &a_checked);
}

/* B: read and drop. */
static void
b_reader(struct t_conn *c, struct evpl_notify *n)
{
    static uint8_t buf[1 << 16];
    int r;

    if (n->notify_type != EVPL_NOTIFY_RECV_DATA) {
        return;
    }
    while ((r = evpl_recv(c->evpl, c->bind, buf, sizeof(buf), 0)) > 0) {
        b_read += (uint64_t) r;
    }
}

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn a, b;
    struct evpl_bind *sa, *sb;
    static uint8_t big[BIG];
    uint8_t small[SMALL];
    uint64_t steps, a_total, held, base;

    t_net_guard(120);
    evpl_global_config_set_stream_recv_limit(cfg, RECV_LIMIT);
    evpl_init(cfg);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.autodrain = 1;
    srv.keep_msgs = 1;
    t_server_start(&srv, evpl, proto, ep, 2);

    t_connect(evpl, proto, ep, &a, NULL);
    a.autodrain = 0;
    a.hook = a_reader;
    T_PUMP(evpl, a.connected && srv.n == 1 && srv.conns[0].connected, 10000);
    t_connect(evpl, proto, ep, &b, NULL);
    b.autodrain = 0;
    b.hook = b_reader;
    T_PUMP(evpl, b.connected && srv.n == 2 && srv.conns[1].connected, 10000);
    sa = srv.conns[0].bind;
    sb = srv.conns[1].bind;
    memset(big, 0x42, sizeof(big));
    base = (uint64_t) t_metric("evpl_allocator_buffers_in_use");

    /* ~4.5 MiB for A (more than loopback's socket buffers take from a
     * peer that reads nothing), 320 MiB through B */
    steps = t_vm_scale(80000, 8);
    a_total = steps * SMALL;
    for (uint64_t i = 0; i < steps; i++) {
        t_pattern_fill(SEED, i * SMALL, small, SMALL);
        evpl_send(evpl, sa, small, SMALL);
        evpl_send(evpl, sb, big, BIG);
        if (i % 16 == 15) {
            evpl_continue(evpl);
        }
        while (b_read + 8 * 1024 * 1024 < (i + 1) * BIG) {
            evpl_continue(evpl); /* B keeps up: its data is short-lived */
        }
    }
    T_PUMP(evpl, b_read == steps * BIG, 30000);
    t_pump_for(evpl, 50);
    held = (uint64_t) t_metric("evpl_allocator_buffers_in_use") - base;
    fprintf(stderr, "A queued %llu bytes in %llu messages; buffers in use +%llu\n",
            (unsigned long long) a_total, (unsigned long long) steps, (unsigned long long) held);
    /* A's bytes (~4.5 MiB: 3 buffers, wherever they wait), the loop's
     * current buffers and A's client's read-ahead */
    T_LE(held, 12);
    T_EQ(a.disconnected, 0);
    T_EQ(b.disconnected, 0);

    /* A reads now: every byte once, in order */
    a.user = &a;
    {
        struct evpl_notify n = {.notify_type = EVPL_NOTIFY_RECV_DATA};

        a_reader(&a, &n); /* what its client holds already */
    }
    T_PUMP(evpl, a_checked == a_total, 60000);
    t_pump_for(evpl, 20);
    T_EQ_U(a_checked, a_total);
    T_EQ(a.errors, 0);
    T_EQ(b.errors, 0);

    evpl_close(evpl, a.bind);
    evpl_close(evpl, b.bind);
    T_PUMP(evpl,
           a.disconnected && b.disconnected && srv.conns[0].disconnected &&
               srv.conns[1].disconnected,
           10000);
    t_server_stop(&srv);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
    t_conn_free(&a);
    t_conn_free(&b);
    return 0;
}
