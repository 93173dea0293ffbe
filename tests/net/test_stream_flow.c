/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Stream flow control between two ends of this library, on every stream
 * protocol (DESIGN §9.3): a receiver that does not read holds its sender
 * back, so the bytes it buffers stay bounded, as with a full TCP window;
 * once it reads, every byte arrives once and in order.  The sender sees
 * the hold-up as SENT notifications that stop, as with a socket whose
 * buffer is full.
 *
 * RDMA RC has no flow control of its own (receives come from the loop's
 * shared queue): the two ends agree on pause/resume messages when they
 * connect, and what the sender had posted before the pause reached it
 * still lands.
 */
/* MATRIX: stream */
#include "t_net.h"

#define CHUNK (1u << 20)
#define TOTAL (64ull << 20)
#define LIMIT (1u << 20)
#define SEED  0xf10e
/* bytes a receiver that reads nothing may buffer: its limit plus one read
 * budget (sockets, TLS), or the in-process window, or on RDMA RC what the
 * sender had posted when the pause reached it: twice the 4 MiB a sender
 * keeps in flight at most, one in flight when the receiver paused and one
 * posted as that completed while the pause was on its way (with the
 * default send queue, 256 messages of 64 KiB, that was 32 MiB) */
#define BUFFERED_BOUND (LIMIT + 2 * (4u << 20) + (1u << 20))
/* in-process: the receive ring (limit + one chunk) and the in-flight
 * window (4 MiB) plus one chunk the sender may hand over at its edge */
#define INPROC_SENT_BOUND (LIMIT + CHUNK + (4u << 20) + CHUNK)

int
main(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c;
    static unsigned char buf[CHUNK];
    static unsigned char peekbuf[TOTAL];
    uint64_t queued = 0, got = 0, last, stall_start, deadline, quiet_ns;
    int buffered;

    t_net_guard(150);
    evpl_global_config_set_stream_recv_limit(gc, LIMIT);
    evpl_init(gc);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.autodrain = 0;
    srv.keep_msgs = 1; /* (else t_server_start turns autodrain on) */
    t_server_start(&srv, evpl, proto, ep, 1);
    t_connect(evpl, proto, ep, &c, NULL);
    evpl_bind_request_send_notifications(evpl, c.bind);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 10000);

    /* queue it all; the receiver does not read: run until the sender stalls */
    while (queued < TOTAL) {
        t_pattern_fill(SEED, queued, buf, CHUNK);
        evpl_send(evpl, c.bind, buf, CHUNK);
        queued += CHUNK;
    }
    /* (soft-RoCE under emulation, in the test VM, is slow: a second) */
    quiet_ns = (t_proto_is_rdmacm(proto) ? 1000ull : 300ull) * 1000000ull;
    last = 0;
    stall_start = t_now_ns();
    deadline = t_now_ns() + 60ull * 1000000000ull;
    for (;;) {
        evpl_continue(evpl);
        if (c.sent_bytes != last) {
            last = c.sent_bytes;
            stall_start = t_now_ns();
        } else if (last && t_now_ns() - stall_start > quiet_ns) {
            break; /* no progress for a while, after some */
        }
        if (c.sent_bytes >= TOTAL) {
            T_FAIL("all %llu bytes went to a receiver that reads nothing: no flow control",
                   (unsigned long long) TOTAL);
        }
        T_OK(t_now_ns() < deadline);
    }
    buffered = evpl_peek(evpl, srv.conns[0].bind, peekbuf, sizeof(peekbuf));
    fprintf(stderr, "stalled: sent %llu, receiver buffers %d\n", (unsigned long long) c.sent_bytes,
            buffered);
    T_OK(c.sent_bytes > 0);
    T_OK(srv.conns[0].nrecv_data > 0);
    T_OK(buffered > 0);
    T_LE(buffered, BUFFERED_BOUND);
    if (evpl_protocol_is_inproc(proto)) {
        T_LE(c.sent_bytes, INPROC_SENT_BOUND);
    } else if (t_proto_is_rdmacm(proto)) {
        T_LE(c.sent_bytes, BUFFERED_BOUND); /* (SENT: the peer's device has it) */
    }
    /* (kernel sockets: their buffers, sized by the host's settings, hold
     * the rest; the sender stalled before TOTAL, checked above) */
    T_EQ(c.disconnected, 0);
    T_EQ(srv.conns[0].disconnected, 0);

    /* now read: everything arrives, in order */
    deadline = t_now_ns() + 60ull * 1000000000ull;
    while (got < TOTAL) {
        evpl_continue(evpl);
        t_recv_pattern(evpl, srv.conns[0].bind, SEED, &got);
        T_OK(t_now_ns() < deadline);
    }
    T_PUMP(evpl, c.sent_bytes == TOTAL, 10000);
    T_EQ(got, TOTAL);
    T_EQ(c.errors, 0);
    T_EQ(srv.conns[0].errors, 0);

    evpl_close(evpl, c.bind);
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 10000);
    T_EQ(srv.conns[0].disconnect_status, 0);
    t_conn_free(&c);
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
